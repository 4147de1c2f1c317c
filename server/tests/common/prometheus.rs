//! A strict reader of the Prometheus text format (0.0.4), for the tests that scrape
//! `/metrics`: it refuses what a scraper could misread instead of skipping it.
//!
//! Checked on every line: names match `[a-zA-Z_:][a-zA-Z0-9_:]*` and label names
//! `[a-zA-Z_][a-zA-Z0-9_]*`; label values are quoted with only `\\`, `\"` and `\n`
//! escapes; values are numbers; every sample belongs to a family declared by a `# TYPE`
//! line before it (a histogram's `_bucket`, `_sum` and `_count` to the histogram); a
//! family is declared once; counters end in `_total`; no series appears twice;
//! a histogram's buckets carry `le`, are cumulative and end with `+Inf`, which equals
//! its `_count`.

use std::collections::{BTreeMap, HashMap};

/// One scrape, read.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Family name → its type (`counter`, `gauge`, `histogram`, ...).
    pub families: HashMap<String, String>,
    /// Family name → its help text.
    pub help: HashMap<String, String>,
    /// `name{label="value",...}` (labels sorted by name) → value.
    pub samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of a series, 0 when it is absent (a counter nobody touched yet).
    pub fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// Whether a series exists.
    pub fn has(&self, series: &str) -> bool {
        self.samples.contains_key(series)
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|e| format!("value {text:?}: {e}")),
    }
}

/// Reads `{a="b",c="d"}` from the start of `rest`; returns the labels and what follows.
fn parse_labels(rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut s = rest
        .strip_prefix('{')
        .ok_or_else(|| "expected {".to_owned())?;
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s
            .find('=')
            .ok_or_else(|| format!("no = in labels {rest:?}"))?;
        let name = &s[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name} is not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label {name}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err(format!("line break in label {name}")),
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label {name}")),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        s = &s[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        }
    }
}

/// The family a sample named `name` belongs to, given the declared families.
fn family_of<'a>(name: &'a str, families: &HashMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        matches!(
            families.get(base).map(String::as_str),
            Some("histogram" | "summary")
        )
        .then_some(base)
    })
}

/// The key of a series: its name and sorted labels.
pub fn series(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// Reads a whole scrape, or says which line breaks the format and why.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    // Histogram series (name without `_bucket` and its labels without `le`) → buckets.
    let mut buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            if !valid_metric_name(name) {
                return Err(at("bad name in HELP".into()));
            }
            if scrape
                .help
                .insert(name.to_owned(), help.to_owned())
                .is_some()
            {
                return Err(at("HELP twice".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type".into()))?;
            if !valid_metric_name(name) {
                return Err(at("bad name in TYPE".into()));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at(format!("unknown type {kind}")));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("a counter's name must end in _total".into()));
            }
            if scrape
                .families
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
            {
                return Err(at("family declared twice".into()));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("a comment that is neither HELP nor TYPE".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut parts = rest.split_whitespace();
        let value = parse_value(parts.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>()
                .map_err(|e| at(format!("bad timestamp: {e}")))?;
        }
        if parts.next().is_some() {
            return Err(at("text after the value".into()));
        }
        let family = family_of(name, &scrape.families)
            .ok_or_else(|| at("sample without a # TYPE family before it".into()))?;
        let kind = scrape.families[family].as_str();
        if kind == "histogram" && name.ends_with("_bucket") {
            let le = labels
                .get("le")
                .ok_or_else(|| at("bucket without le".into()))?;
            let le = parse_value(le).map_err(at)?;
            let mut rest_labels = labels.clone();
            rest_labels.remove("le");
            buckets
                .entry(series(family, &rest_labels))
                .or_default()
                .push((le, value));
        }
        let key = series(name, &labels);
        if scrape.samples.insert(key, value).is_some() {
            return Err(at("series twice".into()));
        }
    }
    for (histogram, mut bs) in buckets {
        bs.sort_by(|a, b| a.0.total_cmp(&b.0));
        if bs.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{histogram}: buckets are not cumulative: {bs:?}"));
        }
        let last = bs.last().copied().unwrap_or((0.0, 0.0));
        if last.0 != f64::INFINITY {
            return Err(format!("{histogram}: no +Inf bucket"));
        }
        let (name, labels) = histogram
            .split_once('{')
            .map_or((histogram.as_str(), ""), |(n, l)| (n, l));
        let count_key = if labels.is_empty() {
            format!("{name}_count")
        } else {
            format!("{name}_count{{{labels}")
        };
        if scrape.samples.get(&count_key) != Some(&last.1) {
            return Err(format!("{histogram}: +Inf bucket is not _count"));
        }
    }
    Ok(scrape)
}

//! The search query language: what a person types into the search box, parsed into a
//! [`Query`] or refused with a sentence saying why.
//!
//! Every string is either a query or a [`QueryError`]: there is no input the index
//! itself gets to reject. That holds because user text never reaches an index as
//! syntax. The parser keeps only words (runs of letters and digits), and [`fts_match`]
//! writes each word, prefix and phrase as an FTS5 string in double quotes (a quote
//! inside doubled, though words cannot hold one), so `NEAR`, `OR`, `-`, `^`, column
//! filters and unbalanced parentheses are just text. The filters become SQL parameters,
//! never part of the MATCH string. (PostgreSQL gets the typed terms as parameters and
//! makes its `tsquery` from them with its own functions: store/postgres/search.rs.)
//!
//! Pure and without I/O, so it is fuzzed (`fuzz/fuzz_targets/search_query.rs`) and
//! property-tested against a real FTS5 table on its own.

use confab_shared::{GUEST_PREFIX, Username, limits};

/// One thing the text must contain. Every term must match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word, in any case, accents ignored.
    Word(String),
    /// A word starting with this.
    Prefix(String),
    /// These words next to each other, in this order.
    Phrase(Vec<String>),
}

/// A parsed search: what the text must contain and the filters that narrow it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// At least one.
    pub terms: Vec<Term>,
    /// `in:` values as written (without a leading `#`): a room id or title, resolved
    /// against the rooms the person sees by the hub. Several: any of them.
    pub rooms: Vec<String>,
    /// `from:` usernames, lower-cased. Several: any of them.
    pub from: Vec<String>,
    /// Only messages sent at or after this time (ms since the Unix epoch, UTC).
    pub since_ms: Option<i64>,
    /// Only messages sent before this time.
    pub until_ms: Option<i64>,
}

/// Why a query cannot be run, as a sentence for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(String);

impl QueryError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

const DAY_MS: i64 = 86_400_000;

/// Parses what a person typed. See the module documentation and docs/PROTOCOL.md.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.chars().count() > limits::MAX_QUERY_CHARS {
        return Err(QueryError::new(format!(
            "a search is at most {} characters",
            limits::MAX_QUERY_CHARS
        )));
    }
    let mut query = Query::default();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(after_quote) = rest.strip_prefix('"') {
            // A phrase runs to the next quote; one never closed runs to the end.
            let (inside, next) = after_quote.split_once('"').unwrap_or((after_quote, ""));
            let words = words(inside);
            match words.len() {
                0 => {}
                1 => query.terms.extend(words.into_iter().map(Term::Word)),
                _ => query.terms.push(Term::Phrase(words)),
            }
            rest = next;
            continue;
        }
        if let Some((key, value, next)) = filter(rest) {
            query.add_filter(&key, &value)?;
            rest = next;
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        query.add_words(&rest[..end]);
        rest = &rest[end..];
    }
    if query.terms.is_empty() {
        return Err(QueryError::new(
            "search for at least one word (filters such as in: or from: only narrow a search)",
        ));
    }
    if let (Some(since), Some(until)) = (query.since_ms, query.until_ms)
        && since >= until
    {
        return Err(QueryError::new("those dates leave no day to search"));
    }
    Ok(query)
}

/// The filter at the start of `text` (`key:value`, the value possibly in quotes), with
/// what follows it; `None` when `text` does not start with a known filter.
fn filter(text: &str) -> Option<(String, String, &str)> {
    let (key, after) = text.split_once(':')?;
    let key = key.to_ascii_lowercase();
    if !matches!(key.as_str(), "in" | "from" | "before" | "after" | "on") {
        return None;
    }
    if let Some(quoted) = after.strip_prefix('"') {
        let (value, next) = quoted.split_once('"').unwrap_or((quoted, ""));
        return Some((key, value.trim().to_owned(), next));
    }
    let end = after
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(after.len());
    Some((key, after[..end].to_owned(), &after[end..]))
}

/// The words of `text`: runs of letters and digits; everything else separates them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Query {
    /// One unquoted piece of the query: words, the last a prefix if a `*` follows it
    /// directly.
    fn add_words(&mut self, piece: &str) {
        let mut words = words(piece);
        let prefix = piece.ends_with('*')
            && piece
                .trim_end_matches('*')
                .chars()
                .last()
                .is_some_and(char::is_alphanumeric);
        let last = if prefix { words.pop() } else { None };
        self.terms.extend(words.into_iter().map(Term::Word));
        self.terms.extend(last.map(Term::Prefix));
    }

    fn add_filter(&mut self, key: &str, value: &str) -> Result<(), QueryError> {
        if value.is_empty() {
            let example = match key {
                "in" => "in:general",
                "from" => "from:ada",
                _ => "on:2026-12-01",
            };
            return Err(QueryError::new(format!(
                "{key}: needs a value, like {example}"
            )));
        }
        match key {
            "in" => self
                .rooms
                .push(value.strip_prefix('#').unwrap_or(value).to_owned()),
            "from" => {
                let value = value.strip_prefix('@').unwrap_or(value);
                let user = if value.starts_with(GUEST_PREFIX) {
                    value.to_lowercase()
                } else {
                    Username::parse(value)
                        .map_err(|_| {
                            QueryError::new(format!(
                                "from: takes a username, like from:ada, not {value:?}"
                            ))
                        })?
                        .as_str()
                        .to_owned()
                };
                self.from.push(user);
            }
            _ => {
                let day = day_start_ms(value).ok_or_else(|| {
                    QueryError::new(format!(
                        "{key}: takes a date as YYYY-MM-DD (UTC), like {key}:2026-12-01, not {value:?}"
                    ))
                })?;
                let (since, until) = match key {
                    "before" => (None, Some(day)),
                    "after" => (Some(day + DAY_MS), None),
                    _ => (Some(day), Some(day + DAY_MS)),
                };
                if let Some(since) = since {
                    self.since_ms = Some(self.since_ms.map_or(since, |s| s.max(since)));
                }
                if let Some(until) = until {
                    self.until_ms = Some(self.until_ms.map_or(until, |u| u.min(until)));
                }
            }
        }
        Ok(())
    }

    /// The FTS5 MATCH expression of the query's terms (see [`fts_match`]).
    pub fn fts_match(&self) -> String {
        fts_match(&self.terms)
    }
}

/// The FTS5 MATCH expression of `terms`: every term a double-quoted string (so no user
/// text is ever FTS5 syntax), a prefix's followed by `*`, all of them required. How the
/// SQLite store renders a search; PostgreSQL renders the same terms its own way
/// (store/postgres/search.rs).
pub fn fts_match(terms: &[Term]) -> String {
    fn quoted(text: &str) -> String {
        format!("\"{}\"", text.replace('"', "\"\""))
    }
    terms
        .iter()
        .map(|term| match term {
            Term::Word(word) => quoted(word),
            Term::Prefix(prefix) => format!("{}*", quoted(prefix)),
            Term::Phrase(words) => quoted(&words.join(" ")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The start of a UTC day written `YYYY-MM-DD`, in ms since the Unix epoch.
fn day_start_ms(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || m.len() != 2
        || d.len() != 2
        || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || !(1..=days_in_month).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(text: &str) -> Query {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(q) => panic!("{text:?} parsed as {q:?}"),
        }
    }

    fn word(w: &str) -> Term {
        Term::Word(w.into())
    }

    #[test]
    fn words_prefixes_and_phrases() {
        assert_eq!(ok("rust").terms, [word("rust")]);
        assert_eq!(
            ok("from:Ada \"borrow  checker\" rus*").terms,
            [
                Term::Phrase(vec!["borrow".into(), "checker".into()]),
                Term::Prefix("rus".into())
            ]
        );
        assert_eq!(
            ok("can't stop-me*").terms,
            [
                word("can"),
                word("t"),
                word("stop"),
                Term::Prefix("me".into())
            ]
        );
        assert_eq!(ok("\"one\"").terms, [word("one")], "a phrase of one word");
        assert_eq!(
            ok("\"never closed").terms,
            [Term::Phrase(vec!["never".into(), "closed".into()])]
        );
        assert_eq!(ok("*x **").terms, [word("x")], "a star alone is nothing");
        assert_eq!(ok("Zürich").terms, [word("Zürich")]);
        // Unknown filters and FTS5's syntax are words.
        assert_eq!(
            ok("title:x NEAR(a b) -c ^d").terms,
            ["title", "x", "NEAR", "a", "b", "c", "d"].map(word)
        );
    }

    #[test]
    fn filters() {
        let q = ok("deploy in:#ops in:\"plans\" from:@Ada from:~Grace on:2026-12-01");
        assert_eq!(q.rooms, ["ops", "plans"]);
        assert_eq!(q.from, ["ada", "~grace"]);
        let day = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        assert_eq!((q.since_ms, q.until_ms), (Some(day), Some(day + DAY_MS)));
        let q = ok("x after:2026-11-01 before:2026-12-01 after:2026-10-01");
        assert_eq!(
            (q.since_ms, q.until_ms),
            (Some(day - 29 * DAY_MS), Some(day)),
            "the narrowest range"
        );
        assert_eq!(ok("x before:1970-01-01").until_ms, Some(0));
        assert_eq!(
            ok("x on:2024-02-29").since_ms,
            Some(days_from_civil(2024, 2, 29) * DAY_MS)
        );
    }

    #[test]
    fn refusals_say_why() {
        assert!(err("").contains("at least one word"));
        assert!(err("   ").contains("at least one word"));
        assert!(err("in:general").contains("at least one word"));
        assert!(err("?! -- *").contains("at least one word"));
        assert!(err(&"x".repeat(257)).contains("at most 256"));
        assert!(err("x from:").contains("from: needs"));
        assert!(err("x from:a!b").contains("username"));
        assert!(err("x on:2026-02-29").contains("YYYY-MM-DD"));
        assert!(err("x on:2026-13-01").contains("YYYY-MM-DD"));
        assert!(err("x before:yesterday").contains("YYYY-MM-DD"));
        assert!(err("x after:2026-12-01 before:2026-12-01").contains("no day"));
    }

    #[test]
    fn the_match_string_is_quoted_strings_only() {
        assert_eq!(ok("a \"b c\" d* in:x").fts_match(), "\"a\" \"b c\" \"d\"*");
    }

    #[test]
    fn days_count_from_1970() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for day in [-1, 0, 59, 11_017, 20_088, 20_454, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(20_088), (2024, 12, 31));
    }

    /// A real FTS5 table as the store makes it, for the match strings to run on.
    fn fts_table() -> rusqlite::Connection {
        let db = rusqlite::Connection::open_in_memory().expect("in-memory database");
        db.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body,
                 tokenize = 'unicode61 remove_diacritics 2', columnsize = 0);
             INSERT INTO t (body) VALUES ('hello world'), ('Zürich café'),
                 ('NEAR AND OR NOT'), ('日本語のテキスト'), ('borrow checker');",
        )
        .expect("fts5 table");
        db
    }

    fn runs(db: &rusqlite::Connection, q: &Query) -> Result<usize, String> {
        db.prepare_cached("SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY rowid DESC LIMIT 21")
            .and_then(|mut s| {
                s.query_map([q.fts_match()], |_| Ok(()))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map(|rows| rows.len())
            .map_err(|e| format!("{:?} -> {:?}: {e}", q.terms, q.fts_match()))
    }

    #[test]
    fn match_strings_find_what_they_say() {
        let db = fts_table();
        let found = |text: &str| runs(&db, &ok(text)).expect("runs");
        assert_eq!(found("hello"), 1);
        assert_eq!(found("HELLO wor*"), 1);
        assert_eq!(found("zurich cafe"), 1, "accents ignored");
        assert_eq!(found("\"checker borrow\""), 0, "a phrase keeps its order");
        assert_eq!(found("\"borrow checker\""), 1);
        assert_eq!(found("near and or not"), 1, "FTS5 keywords are words");
        assert_eq!(
            found("(hello) -world^"),
            1,
            "syntax is punctuation between words"
        );
    }

    /// Text like people type into a search box, with FTS5's syntax, quotes, filters and
    /// odd characters mixed in.
    fn queryish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("*".to_owned()),
            Just(" ".to_owned()),
            Just("in:".to_owned()),
            Just("from:".to_owned()),
            Just("on:2026-12-01".to_owned()),
            Just("before:".to_owned()),
            Just("NEAR(".to_owned()),
            Just(")".to_owned()),
            Just("AND".to_owned()),
            Just("-".to_owned()),
            Just("^".to_owned()),
            Just(":".to_owned()),
            Just("\u{0345}".to_owned()),
            Just("\u{0301}".to_owned()),
            "[a-z]{1,6}",
            "\\PC{1,4}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_text_is_a_query_or_a_reason(text in queryish()) {
            match parse(&text) {
                Ok(q) => {
                    prop_assert!(!q.terms.is_empty());
                    let m = q.fts_match();
                    prop_assert!(m.starts_with('"'), "{}", m);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn every_query_runs_on_a_real_index(text in queryish()) {
            thread_local!(static DB: rusqlite::Connection = fts_table());
            if let Ok(q) = parse(&text) {
                let ran = DB.with(|db| runs(db, &q));
                prop_assert!(ran.is_ok(), "{:?}", ran);
            }
        }

        #[test]
        fn any_string_at_all(text in any::<String>()) {
            if let Ok(q) = parse(&text) {
                let ran = runs(&fts_table(), &q);
                prop_assert!(ran.is_ok(), "{:?}", ran);
            }
        }
    }
}

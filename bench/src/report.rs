//! A scenario's figures: one row of named values, printed as a table and written as
//! JSON. Every scenario reports through this, so all of them print and export alike.

use std::{path::Path, time::Duration};

use anyhow::Context;
use hdrhistogram::Histogram;
use nix::unistd::{SysconfVar, sysconf};
use serde_json::{Map, Value, json};

/// The outcome of one run.
#[derive(Debug, Default)]
pub struct Report {
    /// The scenario's name and settings, for the JSON only.
    pub meta: Map<String, Value>,
    /// The figures, in table order: (column heading, value).
    pub columns: Vec<(&'static str, Value)>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        let mut meta = Map::new();
        meta.insert("scenario".into(), json!(scenario));
        Self {
            meta,
            columns: Vec::new(),
        }
    }

    pub fn meta(&mut self, key: &str, value: impl Into<Value>) {
        self.meta.insert(key.into(), value.into());
    }

    /// Records where the server and the bench ran (`null` when unpinned).
    pub fn pinning(&mut self, placement: Option<crate::pin::Placement>) {
        let value = match placement {
            Some(p) => json!({"server_core": p.server_core, "bench_core": p.bench_core}),
            None => json!(null),
        };
        self.meta("pinning", value);
    }

    pub fn column(&mut self, heading: &'static str, value: impl Into<Value>) {
        self.columns.push((heading, value.into()));
    }

    /// The table: a heading line and a value line, columns aligned.
    pub fn table(&self) -> String {
        let cells: Vec<(String, String)> = self
            .columns
            .iter()
            .map(|(h, v)| ((*h).to_owned(), cell(v)))
            .collect();
        let mut head = String::new();
        let mut row = String::new();
        for (h, v) in &cells {
            let width = h.chars().count().max(v.chars().count());
            head.push_str(&format!("{h:>width$}  "));
            row.push_str(&format!("{v:>width$}  "));
        }
        format!("{}\n{}\n", head.trim_end(), row.trim_end())
    }

    pub fn print_table(&self) {
        print!("\n{}", self.table());
    }

    pub fn to_json(&self) -> Value {
        let mut out = self.meta.clone();
        let figures: Map<String, Value> = self
            .columns
            .iter()
            .map(|(h, v)| ((*h).to_owned(), v.clone()))
            .collect();
        out.insert("figures".into(), Value::Object(figures));
        Value::Object(out)
    }
}

pub fn write_json(path: &Path, json: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(json).context("cannot encode the figures as JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// CPU time of the server, the bench and everything else over a measured period.
pub struct CpuMeter {
    server_pid: u32,
    wall_from: std::time::Instant,
    server_from: Duration,
    bench_from: Duration,
    machine_from: Duration,
}

/// What [`CpuMeter`] measured.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub wall: Duration,
    pub server: Duration,
    pub bench: Duration,
    /// Other processes: anything well above zero means they competed for the cores.
    pub other: Duration,
}

impl CpuMeter {
    pub fn start(server_pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            server_pid,
            wall_from: std::time::Instant::now(),
            server_from: cpu_time_of(&format!("/proc/{server_pid}/stat"))?,
            bench_from: cpu_time_of("/proc/self/stat")?,
            machine_from: machine_busy_time()?,
        })
    }

    pub fn finish(self) -> anyhow::Result<CpuUse> {
        let server = cpu_time_of(&format!("/proc/{}/stat", self.server_pid))?
            .saturating_sub(self.server_from);
        let bench = cpu_time_of("/proc/self/stat")?.saturating_sub(self.bench_from);
        let other = machine_busy_time()?
            .saturating_sub(self.machine_from)
            .saturating_sub(server + bench);
        Ok(CpuUse {
            wall: self.wall_from.elapsed(),
            server,
            bench,
            other,
        })
    }
}

impl CpuUse {
    /// Adds the three CPU columns every scenario reports.
    pub fn columns(&self, report: &mut Report) {
        report.column("server CPU %", cpu_percent(self.server, self.wall));
        report.column("bench CPU %", cpu_percent(self.bench, self.wall));
        report.column("other CPU %", cpu_percent(self.other, self.wall));
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Milliseconds with two decimals, as a JSON number.
pub fn ms(micros: u64) -> Value {
    json!((micros as f64 / 10.0).round() / 100.0)
}

/// A latency histogram in microseconds, from 1 µs to 60 s at 3 significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("cannot make a histogram")
}

/// User + system CPU time of the process whose `stat` file is at `path`.
pub fn cpu_time_of(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_cpu_ticks(&stat).with_context(|| format!("cannot parse {path}"))?;
    Ok(ticks_to_time(ticks))
}

/// CPU time of the children the process whose `stat` file is at `path` has waited for
/// (cutime + cstime): where the work of exited children is counted.
pub fn children_cpu_time_of(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_children_cpu_ticks(&stat).with_context(|| format!("cannot parse {path}"))?;
    Ok(ticks_to_time(ticks))
}

/// CPU time every core of the machine has spent busy, whoever for. Other processes'
/// share of it tells whether a run was disturbed.
pub fn machine_busy_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let ticks = parse_busy_ticks(&stat).context("cannot parse /proc/stat")?;
    Ok(ticks_to_time(ticks))
}

fn ticks_to_time(ticks: u64) -> Duration {
    let per_sec = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// The all-cores `cpu` line of /proc/stat: everything but idle and iowait. Guest time is
/// already counted in user time, so it is left out.
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields.try_into().ok()?;
    Some(user + nice + system + irq + softirq + steal)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its closing one.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// cutime + cstime (fields 16 and 17) of a /proc/PID/stat line.
fn parse_children_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(13);
    let cutime: u64 = fields.next()?.parse().ok()?;
    let cstime: u64 = fields.next()?.parse().ok()?;
    Some(cutime + cstime)
}

/// Share of one core a process used: CPU time over wall time, in percent.
pub fn cpu_percent(cpu: Duration, wall: Duration) -> Value {
    if wall.is_zero() {
        return Value::Null;
    }
    json!((cpu.as_secs_f64() / wall.as_secs_f64() * 100.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_headings_and_values() {
        let mut r = Report::new("x");
        r.column("senders", 50);
        r.column("p99 ms", 1.25);
        r.column("note", Value::Null);
        assert_eq!(r.table(), "senders  p99 ms  note\n     50    1.25     -\n");
        assert_eq!(r.to_json()["figures"]["p99 ms"], json!(1.25));
        assert_eq!(r.to_json()["scenario"], json!("x"));
    }

    #[test]
    fn cpu_ticks_skip_a_command_with_spaces() {
        let stat = "42 (confab (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        let stat = "42 (postgres: a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 4 0";
        assert_eq!(parse_children_cpu_ticks(stat), Some(10));
    }

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 2 30 5000 40 1 2 3 0 0\ncpu0 50 1 15 2500 20 0 1 1 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(138));
    }

    #[test]
    fn milliseconds_keep_two_decimals() {
        assert_eq!(ms(1_234), json!(1.23));
        assert_eq!(ms(20_000), json!(20.0));
    }
}

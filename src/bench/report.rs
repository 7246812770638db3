//! How results are shown: result lines for one run, and for `bench mux` a
//! table, a chart in the terminal, CSV and SVG.
//!
//! Results are printed with `startup`, so they appear even with `--quiet`:
//! they are what the command is for.

use serde_json::json;

use super::mux::{Point, PointResult, FD_SETSIZE};
use super::outcome::{Outcome, ServerUsage};
use crate::narrate::Narrator;

/// The result lines of one run.
pub fn announce(nar: &Narrator, outcome: &Outcome) {
    nar.startup(
        "round_trips",
        json!({
            "round_trips": outcome.round_trips,
            "seconds": round(outcome.seconds, 3),
            "per_second": round(outcome.per_second(), 1),
            "active": outcome.active_open,
            "stalled": outcome.stalled,
        }),
        format!(
            "{} round trips in {:.1} s: {} a second over {} connections",
            thousands(outcome.round_trips as f64),
            outcome.seconds,
            thousands(outcome.per_second()),
            outcome.active_open
        ),
    );
    let micros = |fraction: f64| {
        outcome
            .latency
            .percentile(fraction)
            .map(|ns| round(ns as f64 / 1000.0, 1))
    };
    let (p50, p99) = (micros(0.5), micros(0.99));
    let max =
        (outcome.latency.count() > 0).then(|| round(outcome.latency.max() as f64 / 1000.0, 1));
    nar.startup(
        "latency",
        json!({ "p50_us": p50, "p99_us": p99, "max_us": max }),
        match (p50, p99, max) {
            (Some(p50), Some(p99), Some(max)) => {
                format!("latency: p50 {p50} µs, p99 {p99} µs, max {max} µs")
            }
            _ => "latency: no round trip completed".to_string(),
        },
    );
    nar.startup(
        "errors",
        json!({
            "total": outcome.error_count(),
            "kinds": outcome.errors,
            "idle": outcome.idle_open,
            "idle_lost": outcome.idle_lost,
        }),
        format!(
            "errors: {}; idle connections: {} open, {} lost",
            describe_errors(outcome),
            outcome.idle_open,
            outcome.idle_lost
        ),
    );
    match &outcome.server {
        ServerUsage::Measured {
            pids,
            cpu_seconds,
            rss_kib,
        } => {
            let per_trip = outcome.server_cpu_us();
            nar.startup(
                "server_usage",
                json!({
                    "pids": pids,
                    "cpu_seconds": round(*cpu_seconds, 3),
                    "cpu_us_per_round_trip": per_trip.map(|us| round(us, 3)),
                    "rss_kib": rss_kib,
                    "source": "/proc/PID/stat (utime + stime), /proc/PID/status (VmRSS)",
                }),
                format!(
                    "server (pid {}): {:.2} s of CPU, {} per round trip; resident memory {}",
                    pids.iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    cpu_seconds,
                    per_trip.map_or("n/a".to_string(), |us| format!("{us:.2} µs")),
                    rss_kib.map_or("unavailable".to_string(), mib)
                ),
            );
        }
        ServerUsage::Unavailable(why) => nar.startup(
            "server_usage",
            json!({ "available": false, "reason": why }),
            format!("server CPU and memory: unavailable ({why})"),
        ),
    }
    nar.startup(
        "client_usage",
        json!({
            "cpu_seconds": round(outcome.client_cpu_seconds, 3),
            "cpu_us_per_round_trip": outcome.client_cpu_us().map(|us| round(us, 3)),
        }),
        format!(
            "this load generator: {:.2} s of CPU, {} per round trip",
            outcome.client_cpu_seconds,
            outcome
                .client_cpu_us()
                .map_or("n/a".to_string(), |us| format!("{us:.2} µs"))
        ),
    );
}

/// The figures of one point, or None when it was not measured.
pub(super) struct Figures {
    pub per_second: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub cpu_us: Option<f64>,
    pub rss_kib: Option<u64>,
    pub errors: u64,
}

pub(super) fn figures(point: &Point) -> Option<Figures> {
    let PointResult::Measured(outcome) = &point.result else {
        return None;
    };
    let micros = |fraction| {
        outcome
            .latency
            .percentile(fraction)
            .map(|ns| ns as f64 / 1000.0)
    };
    Some(Figures {
        per_second: outcome.per_second(),
        p50_us: micros(0.5),
        p99_us: micros(0.99),
        cpu_us: outcome.server_cpu_us(),
        rss_kib: outcome.server_rss_kib(),
        errors: outcome.error_count(),
    })
}

/// What a point that has no figures says instead.
fn status(point: &Point) -> String {
    match &point.result {
        PointResult::Measured(_) => "ok".into(),
        PointResult::NotPossible => format!("not possible (FD_SETSIZE {FD_SETSIZE})"),
        PointResult::Failed(why) => format!("failed: {why}"),
        PointResult::Skipped => "skipped (interrupted)".into(),
    }
}

fn status_key(point: &Point) -> &'static str {
    match &point.result {
        PointResult::Measured(_) => "ok",
        PointResult::NotPossible => "not_possible",
        PointResult::Failed(_) => "failed",
        PointResult::Skipped => "skipped",
    }
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The results table, one `mux_row` line per point.
pub fn mux_table(nar: &Narrator, points: &[Point]) {
    nar.startup(
        "mux_table",
        json!([
            "server",
            "idle",
            "round_trips_per_second",
            "p50_us",
            "p99_us",
            "server_cpu_us_per_round_trip",
            "server_rss_kib",
            "errors"
        ]),
        format!(
            "{:<12} {:>6} {:>13} {:>8} {:>8} {:>14} {:>10} {:>6}",
            "server",
            "idle",
            "round trips/s",
            "p50 µs",
            "p99 µs",
            "CPU µs/trip",
            "RSS MiB",
            "errors"
        ),
    );
    for point in points {
        let (value, text) = match figures(point) {
            Some(f) => (
                json!({
                    "server": point.server, "idle": point.idle, "status": "ok",
                    "round_trips_per_second": round(f.per_second, 1),
                    "p50_us": f.p50_us.map(|v| round(v, 1)),
                    "p99_us": f.p99_us.map(|v| round(v, 1)),
                    "server_cpu_us_per_round_trip": f.cpu_us.map(|v| round(v, 3)),
                    "server_rss_kib": f.rss_kib,
                    "errors": f.errors,
                }),
                format!(
                    "{:<12} {:>6} {:>13} {:>8} {:>8} {:>14} {:>10} {:>6}",
                    point.server,
                    point.idle,
                    thousands(f.per_second),
                    opt(f.p50_us, 0),
                    opt(f.p99_us, 0),
                    opt(f.cpu_us, 2),
                    opt(f.rss_kib.map(|kib| kib as f64 / 1024.0), 1),
                    f.errors
                ),
            ),
            None => (
                json!({ "server": point.server, "idle": point.idle, "status": status_key(point), "reason": status(point) }),
                format!("{:<12} {:>6}   {}", point.server, point.idle, status(point)),
            ),
        };
        nar.startup("mux_row", value, text);
    }
}

/// Bar width of the terminal chart, in character cells.
const BAR_CELLS: f64 = 40.0;

/// A bar of `fraction` (0 to 1) of BAR_CELLS, in eighths of a cell.
fn bar(fraction: f64) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (fraction.clamp(0.0, 1.0) * BAR_CELLS * 8.0).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    out.push_str(EIGHTHS[eighths % 8]);
    out
}

/// The chart: server CPU per round trip, grouped by idle connections.
pub fn mux_chart(nar: &Narrator, points: &[Point]) {
    let most = points
        .iter()
        .filter_map(|point| figures(point)?.cpu_us)
        .fold(0.0f64, f64::max);
    nar.startup(
        "mux_chart",
        json!({ "title": "server CPU per round trip (µs) against idle connections" }),
        "server CPU time per round trip, in µs (shorter is cheaper):",
    );
    let mut idle_counts: Vec<u32> = points.iter().map(|point| point.idle).collect();
    idle_counts.sort_unstable();
    idle_counts.dedup();
    for idle in idle_counts {
        for (index, point) in points.iter().filter(|point| point.idle == idle).enumerate() {
            let label = if index == 0 {
                format!("{idle} idle")
            } else {
                String::new()
            };
            let cpu = figures(point).and_then(|f| f.cpu_us);
            let drawn = match cpu {
                Some(us) if most > 0.0 => format!("{} {us:.2}", bar(us / most)),
                _ => status(point),
            };
            nar.startup(
                "mux_chart",
                json!({ "server": point.server, "idle": idle, "cpu_us_per_round_trip": cpu.map(|v| round(v, 3)) }),
                format!("{label:>10}  {:<12} {drawn}", point.server),
            );
        }
    }
}

/// The same results as CSV (empty fields where nothing was measured).
pub fn mux_csv(points: &[Point]) -> String {
    let mut out = String::from(
        "server,idle,status,round_trips_per_second,p50_us,p99_us,server_cpu_us_per_round_trip,server_rss_kib,errors\n",
    );
    let field = |value: Option<f64>, digits: usize| {
        value.map_or(String::new(), |v| format!("{v:.digits$}"))
    };
    for point in points {
        let line = match figures(point) {
            Some(f) => format!(
                "{},{},ok,{:.1},{},{},{},{},{}\n",
                point.server,
                point.idle,
                f.per_second,
                field(f.p50_us, 1),
                field(f.p99_us, 1),
                field(f.cpu_us, 3),
                f.rss_kib.map_or(String::new(), |kib| kib.to_string()),
                f.errors
            ),
            None => format!(
                "{},{},{},,,,,,\n",
                point.server,
                point.idle,
                status_key(point)
            ),
        };
        out.push_str(&line);
    }
    out
}

/// "0", or "3 (echo mismatch 2, ECONNRESET 1)".
pub fn describe_errors(outcome: &Outcome) -> String {
    let total = outcome.error_count();
    if total == 0 {
        return "0".to_string();
    }
    let mut kinds: Vec<String> = outcome
        .errors
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    if outcome.idle_lost > 0 {
        kinds.push(format!("idle connections lost {}", outcome.idle_lost));
    }
    format!("{total} ({})", kinds.join(", "))
}

/// Round to `digits` decimals, for JSON values people read.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// 12345.6 as "12,346".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, ch) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// KiB as "5.1 MiB".
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(mib(5120), "5.0 MiB");
        assert_eq!(round(1.23456, 2), 1.23);
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.0), "");
        assert_eq!(bar(1.0).chars().count(), 40);
        assert_eq!(bar(0.5 / 40.0), "▌");
    }

    #[test]
    fn points_without_figures_say_why_in_every_format() {
        let points = vec![
            Point {
                server: "select-demo",
                idle: 5000,
                result: PointResult::NotPossible,
            },
            Point {
                server: "poll-demo",
                idle: 0,
                result: PointResult::Failed("no".into()),
            },
        ];
        let csv = mux_csv(&points);
        assert!(csv.contains("select-demo,5000,not_possible,,,,,,\n"));
        assert!(csv.contains("poll-demo,0,failed,"));
        let svg = super::super::svg::mux_svg(&points, 50);
        assert!(svg.starts_with("<?xml") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("FD_SETSIZE"));
    }
}

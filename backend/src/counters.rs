//! The numbers the process reports, each named once.
//!
//! Every stage keeps its own counters (relaxed atomics, written where the event happens) and
//! lists them as [`Reading`]s: one row per number with its place in `GET /api/v1/status` and its
//! Prometheus name. The status API and `/metrics` are both rendered from that one list.
//! Durations are counted in a [`Histogram`] (fixed [`BOUNDS`]), listed as its cumulative buckets,
//! sum and count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

/// Upper bounds of every duration histogram's buckets, in seconds (Prometheus's `le`); one more
/// bucket takes the rest.
pub const BOUNDS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// Durations counted per bucket of [`BOUNDS`], and their sum. Lock-free: one atomic add per
/// bucket and one for the sum per observation.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one for everything past the bounds.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        if let Some(b) = self.buckets.get(bucket).or(self.buckets.last()) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// How many observations were at most each bound of [`BOUNDS`], then how many there were.
    pub fn cumulative(&self) -> [u64; BOUNDS.len() + 1] {
        let mut at_most = 0u64;
        self.buckets.each_ref().map(|b| {
            at_most = at_most.saturating_add(b.load(Ordering::Relaxed));
            at_most
        })
    }

    /// The observed durations' sum, in ns.
    pub fn sum_nanos(&self) -> u64 {
        self.sum_nanos.load(Ordering::Relaxed)
    }
}

/// How a number behaves, for Prometheus (`counter`, `gauge`) and JSON (a flag is `true`/`false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
    /// 0 or 1; `false`/`true` in the status API.
    Flag,
    /// A duration kept in µs, shown in seconds (a Prometheus gauge).
    Seconds,
    /// A histogram's cumulative bucket: how many observations were at most its bound. Its
    /// Prometheus name is the sample's, `<name>_bucket{le="<bound>"}`; the first bucket of a
    /// histogram carries the `# TYPE <name> histogram` line.
    Bucket,
    /// A histogram's sum of observed durations, kept in ns, shown in seconds (`<name>_sum`).
    Sum,
    /// A histogram's count of observations (`<name>_count`).
    Count,
}

/// One number as the process reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Where it sits in the status API's JSON: a key, or a path of keys into nested objects.
    pub status: &'static [&'static str],
    /// Its Prometheus name.
    pub metric: &'static str,
    pub kind: Kind,
    pub value: u64,
}

impl Reading {
    pub const fn counter(status: &'static [&'static str], metric: &'static str, value: u64) -> Reading {
        Reading { status, metric, kind: Kind::Counter, value }
    }

    pub const fn gauge(status: &'static [&'static str], metric: &'static str, value: u64) -> Reading {
        Reading { status, metric, kind: Kind::Gauge, value }
    }

    pub const fn flag(status: &'static [&'static str], metric: &'static str, on: bool) -> Reading {
        Reading { status, metric, kind: Kind::Flag, value: on as u64 }
    }

    pub const fn seconds(status: &'static [&'static str], metric: &'static str, micros: u64) -> Reading {
        Reading { status, metric, kind: Kind::Seconds, value: micros }
    }

    pub const fn of(
        kind: Kind,
        status: &'static [&'static str],
        metric: &'static str,
        value: u64,
    ) -> Reading {
        Reading { status, metric, kind, value }
    }
}

/// Puts each reading at its place in `object` (nested objects made as needed).
pub fn status_json(readings: &[Reading], object: &mut Map<String, Value>) {
    'readings: for r in readings {
        let Some((last, path)) = r.status.split_last() else { continue };
        let mut at = &mut *object;
        for key in path {
            // A path through a key that holds a number is a naming mistake: that reading is left out.
            match at.entry(*key).or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(inner) => at = inner,
                _ => continue 'readings,
            }
        }
        let value = match r.kind {
            Kind::Flag => Value::Bool(r.value != 0),
            Kind::Counter | Kind::Gauge | Kind::Bucket | Kind::Count => Value::from(r.value),
            Kind::Seconds => Value::from(r.value as f64 / 1e6),
            Kind::Sum => Value::from(r.value as f64 / 1e9),
        };
        at.insert((*last).to_owned(), value);
    }
}

/// The Prometheus text of `readings`.
pub fn prometheus(readings: &[Reading], out: &mut String) {
    let mut histogram = "";
    for r in readings {
        let name = r.metric;
        let _ = match r.kind {
            Kind::Counter => write!(out, "# TYPE {name} counter\n{name} {}\n", r.value),
            Kind::Gauge | Kind::Flag => write!(out, "# TYPE {name} gauge\n{name} {}\n", r.value),
            Kind::Seconds => write!(out, "# TYPE {name} gauge\n{name} {}\n", r.value as f64 / 1e6),
            Kind::Bucket => {
                let family = name.split_once("_bucket{").map_or(name, |(family, _)| family);
                if family != histogram {
                    histogram = family;
                    let _ = writeln!(out, "# TYPE {family} histogram");
                }
                writeln!(out, "{name} {}", r.value)
            }
            Kind::Sum => writeln!(out, "{name} {}", r.value as f64 / 1e9),
            Kind::Count => writeln!(out, "{name} {}", r.value),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_two_faces() {
        let readings = [
            Reading::counter(&["ReportsAccepted"], "sumstorm_relay_reports_total", 7),
            Reading::gauge(&["FilesWaiting", "statesys.box/incoming"], "sumstorm_statesys_files_waiting", 3),
            Reading::flag(&["CheckpointFailing"], "sumstorm_statesys_checkpoint_failing", true),
        ];
        let mut object = Map::new();
        status_json(&readings, &mut object);
        assert_eq!(
            Value::Object(object),
            serde_json::json!({
                "ReportsAccepted": 7,
                "FilesWaiting": { "statesys.box/incoming": 3 },
                "CheckpointFailing": true,
            })
        );
        let mut text = String::new();
        prometheus(&readings, &mut text);
        assert_eq!(
            text,
            "# TYPE sumstorm_relay_reports_total counter\nsumstorm_relay_reports_total 7\n\
             # TYPE sumstorm_statesys_files_waiting gauge\nsumstorm_statesys_files_waiting 3\n\
             # TYPE sumstorm_statesys_checkpoint_failing gauge\nsumstorm_statesys_checkpoint_failing 1\n"
        );
    }

    #[test]
    fn a_histogram_is_one_family_in_prometheus_and_one_object_in_the_status() {
        let readings = [
            Reading::of(Kind::Bucket, &["Sync", "AtMost", "0.001"], "s_seconds_bucket{le=\"0.001\"}", 2),
            Reading::of(Kind::Bucket, &["Sync", "AtMost", "+Inf"], "s_seconds_bucket{le=\"+Inf\"}", 3),
            Reading::of(Kind::Sum, &["Sync", "Seconds"], "s_seconds_sum", 1_500_000_000),
            Reading::of(Kind::Count, &["Sync", "Count"], "s_seconds_count", 3),
        ];
        let mut object = Map::new();
        status_json(&readings, &mut object);
        assert_eq!(
            Value::Object(object),
            serde_json::json!({ "Sync": { "AtMost": { "0.001": 2, "+Inf": 3 }, "Seconds": 1.5, "Count": 3 } })
        );
        let mut text = String::new();
        prometheus(&readings, &mut text);
        assert_eq!(
            text,
            "# TYPE s_seconds histogram\ns_seconds_bucket{le=\"0.001\"} 2\ns_seconds_bucket{le=\"+Inf\"} 3\n\
             s_seconds_sum 1.5\ns_seconds_count 3\n"
        );
    }
}

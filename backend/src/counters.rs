//! The numbers the process reports, each named once.
//!
//! Every stage keeps its own counters (relaxed atomics, written where the event happens) and
//! lists them as [`Reading`]s: one row per number with its place in `GET /api/v1/status` and its
//! Prometheus name. The status API and `/metrics` are both rendered from that one list.

use std::fmt::Write as _;

use serde_json::{Map, Value};

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
            Kind::Counter | Kind::Gauge => Value::from(r.value),
            Kind::Seconds => Value::from(r.value as f64 / 1e6),
        };
        at.insert((*last).to_owned(), value);
    }
}

/// The Prometheus text of `readings`.
pub fn prometheus(readings: &[Reading], out: &mut String) {
    for r in readings {
        let kind = match r.kind {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::Flag | Kind::Seconds => "gauge",
        };
        let _ = match r.kind {
            Kind::Seconds => {
                write!(out, "# TYPE {name} {kind}\n{name} {}\n", r.value as f64 / 1e6, name = r.metric)
            }
            _ => write!(out, "# TYPE {name} {kind}\n{name} {value}\n", name = r.metric, value = r.value),
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
}

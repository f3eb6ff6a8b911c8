//! Result files (contract §3.5): `summary.json`, `latency-<kind>.hgrm`, `latency.hlog` (written
//! as the run goes, see [`HlogWriter`]), and a line in `results/history.jsonl`.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde_json::{Value, json};

use crate::metrics::{Figures, KindStats};
use crate::profile::{Kind, Metric, Plan, Threshold};

/// Latency statistics in ms, from a µs histogram.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99.9": ms(h.value_at_quantile(0.999)),
        "p99.99": ms(h.value_at_quantile(0.9999)),
        "max": ms(h.max()),
        "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

/// One latency statistic in ms (`p99`, `max`, `mean`, ...).
pub fn stat_ms(h: &Histogram<u64>, stat: &str) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Some(match stat {
        "p50" => q(0.5),
        "p90" => q(0.9),
        "p99" => q(0.99),
        "p99.9" => q(0.999),
        "p99.99" => q(0.9999),
        "max" => h.max() as f64 / 1000.0,
        _ => h.mean() / 1000.0,
    })
}

/// The percentile distribution in the 4-column format HdrHistogram's plotter reads (values in ms).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / 1000.0;
        let p = v.quantile_iterated_to();
        if p < 1.0 {
            let _ = writeln!(out, "{value:12.3} {p:2.12} {total:10} {:14.2}", 1.0 / (1.0 - p));
        } else {
            let _ = writeln!(out, "{value:12.3} {p:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]\n#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0,
        h.max() as f64 / 1000.0,
        h.len(),
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// The interval log: one compressed V2 histogram per request kind per interval, tagged with the
/// kind, values in µs (`MaxValueDivisor` 1000 makes the max column ms, as the Java tools show).
#[derive(Debug, Default)]
pub struct HlogWriter {
    pub bytes: Vec<u8>,
}

impl HlogWriter {
    pub fn begin(start_unix_secs: f64) -> HlogWriter {
        let mut bytes = b"#[Histogram log format version 1.3]\n".to_vec();
        let mut serializer = V2DeflateSerializer::new();
        let start = std::time::UNIX_EPOCH + Duration::from_secs_f64(start_unix_secs);
        let _ = IntervalLogWriterBuilder::new()
            .add_comment("sumstorm loadgen: latency from the intended send time (corrected), microseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut bytes, &mut serializer);
        bytes.extend_from_slice(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        );
        HlogWriter { bytes }
    }

    /// Appends an interval (`start` since the base time) of every kind that saw requests: the
    /// corrected histograms, or the service times with `uncorrected`.
    pub fn interval(&mut self, start: Duration, length: Duration, figures: &Figures) {
        self.interval_of(start, length, figures, false);
    }

    pub fn interval_of(&mut self, start: Duration, length: Duration, figures: &Figures, uncorrected: bool) {
        for kind in Kind::ALL {
            let k = figures.kind(kind);
            let h = if uncorrected { &k.uncorrected } else { &k.corrected };
            if h.is_empty() {
                continue;
            }
            let mut line = Vec::new();
            let mut s2 = V2DeflateSerializer::new();
            let Ok(mut w) = IntervalLogWriterBuilder::new()
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut line, &mut s2)
            else {
                continue;
            };
            let _ = w.write_histogram(h, start, length, Tag::new(kind.name()));
            // The builder wrote a MaxValueDivisor comment first; keep only the interval line.
            let text = String::from_utf8_lossy(&line);
            if let Some(interval) = text.lines().find(|l| !l.starts_with('#')) {
                self.bytes.extend_from_slice(interval.as_bytes());
                self.bytes.push(b'\n');
            }
        }
    }
}

/// A threshold's outcome.
#[derive(Debug, Clone)]
pub struct Checked {
    pub threshold: Threshold,
    pub actual: Option<f64>,
    pub passed: bool,
}

/// Evaluates thresholds on the merged whole-run figures.
pub fn check(thresholds: &[Threshold], f: &Figures, wall: Duration) -> Vec<Checked> {
    thresholds
        .iter()
        .map(|t| {
            let actual = match &t.metric {
                Metric::Latency { kind, stat, uncorrected } => {
                    let k = f.kind(*kind);
                    stat_ms(if *uncorrected { &k.uncorrected } else { &k.corrected }, stat)
                }
                Metric::ErrorRate(None) => Some(f.errors() as f64 / (f.requests().max(1)) as f64),
                Metric::ErrorRate(Some(kind)) => {
                    let k = f.kind(*kind);
                    Some(k.errors as f64 / k.requests().max(1) as f64)
                }
                Metric::StateMessagesPerSecond => {
                    Some(f.messages_acked as f64 / wall.as_secs_f64().max(1e-9))
                }
                // Judged from the run's convergence once it has settled (`run`).
                Metric::Convergence { .. } => None,
            };
            // A latency threshold on a kind with no requests cannot pass: nothing was measured.
            let passed = actual.is_some_and(|a| if t.less_than { a < t.value } else { a > t.value });
            Checked { threshold: t.clone(), actual, passed }
        })
        .collect()
}

/// Per request kind: counts, rates and latency, corrected and uncorrected.
pub fn kinds_json(f: &Figures, wall: Duration) -> Value {
    let mut out = serde_json::Map::new();
    for kind in Kind::ALL {
        let k: &KindStats = f.kind(kind);
        if k.requests() == 0 {
            continue;
        }
        out.insert(
            kind.name().into(),
            json!({
                "count": k.requests(),
                "errors": k.errors,
                "per_second": k.requests() as f64 / wall.as_secs_f64().max(1e-9),
                "latency_ms": latency_json(&k.corrected),
                "service_time_ms": latency_json(&k.uncorrected),
                // The generator's time building one request of this kind (its CPU, but for
                // sending it), µs.
                "generator_build_us": if k.built == 0 { Value::Null } else { json!((k.build_nanos as f64 / k.built as f64 / 1000.0 * 10.0).round() / 10.0) },
            }),
        );
    }
    Value::Object(out)
}

/// The thresholds as `summary.json` lists them.
pub fn thresholds_json(checked: &[Checked]) -> Value {
    Value::Array(
        checked
            .iter()
            .map(|c| json!({ "metric": c.threshold.name, "condition": c.threshold.text, "actual": c.actual, "passed": c.passed }))
            .collect(),
    )
}

/// The host as `summary.json` describes it.
pub fn host_json() -> Value {
    let memory_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        let line = c.lines().find(|l| l.starts_with("model name"))?;
        Some(line.split_once(':')?.1.split_whitespace().collect::<Vec<_>>().join(" "))
    });
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_gib": memory_kb.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "hostname": std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default(),
    })
}

/// The profile's shape, for the summary.
pub fn plan_json(plan: &Plan) -> Value {
    json!({
        "name": plan.name,
        "clients": plan.clients,
        "seed": plan.seed,
        "time_scale": plan.time_scale,
        "simulated_seconds": plan.duration.as_secs_f64(),
        "wire": format!("{:?}", plan.wire).to_ascii_lowercase(),
        "zlib_level": plan.zlib_level,
        "connections": plan.connections,
        "reports": plan.open_model.map(|(arrivals, messages)| match arrivals {
            crate::profile::Arrivals::Open { rate } =>
                json!({ "model": "open", "rate": rate, "messages_per_report": messages }),
            crate::profile::Arrivals::Closed { in_flight } =>
                json!({ "model": "closed", "in_flight": in_flight, "messages_per_report": messages }),
        }),
    })
}

/// The table printed at the end of a run: per kind count, errors, p50/p99/p99.9/max.
pub fn console_summary(s: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "request kind", "count", "errors", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (kind, k) in s["requests"].as_object().into_iter().flatten() {
        let l = &k["latency_ms"];
        let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "{kind:<20} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10}",
            k["count"].as_u64().unwrap_or(0),
            k["errors"].as_u64().unwrap_or(0),
            f(&l["p50"]),
            f(&l["p99"]),
            f(&l["p99.9"]),
            f(&l["max"])
        );
    }
    let _ = writeln!(
        out,
        "state messages acknowledged: {} ({:.0}/s); backend applied {} records, peak backlog {} files",
        s["state_messages"]["acknowledged"],
        s["state_messages"]["acknowledged_per_second"].as_f64().unwrap_or(0.0),
        s["backend"]["records_processed"],
        s["backend"]["peak_backlog_files"]
    );
    // Say so when the generator, not the server, set the pace.
    let late = s["generator"]["late_sends_over_10ms"].as_u64().unwrap_or(0);
    let sends: u64 =
        s["requests"].as_object().into_iter().flatten().filter_map(|(_, k)| k["count"].as_u64()).sum();
    if s["generator"]["behind"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "GENERATOR-BOUND: the generator fell behind its schedule (lateness p99 {} ms, bound {} ms; {late} of \
             {sends} sends more than 10 ms late). These figures describe the generator, not the target{}.",
            s["generator"]["lateness_ms"]["p99"],
            s["generator"]["max_lateness_p99_ms"],
            if s["exit"].as_u64() == Some(4) {
                " (exit 4; --allow-late exits as the thresholds say)"
            } else {
                ""
            }
        );
    } else if sends > 0 && late * 100 > sends {
        let _ = writeln!(
            out,
            "WARNING: {late} of {sends} sends started more than 10 ms late (lateness p99 {} ms); latency \
             figures include the generator's own delay.",
            s["generator"]["lateness_ms"]["p99"]
        );
    }
    for c in s["convergence"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{}", crate::convergence::console_line(c));
    }
    let v = &s["verification"];
    let _ = write!(
        out,
        "verification: {}",
        match (v["checked"].as_bool(), v["exact"].as_bool()) {
            (Some(true), Some(true)) if v["sql"].as_bool() == Some(true) => {
                "exact (the API's views and the site database's)".to_owned()
            }
            (Some(true), Some(true)) => "exact".to_owned(),
            (Some(true), _) => format!("FAILED ({} differences, see verify.json)", v["differences"]),
            _ => "not run".to_owned(),
        }
    );
    for t in s["thresholds"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "\nthreshold {} {}: {} ({})",
            t["metric"].as_str().unwrap_or(""),
            t["condition"].as_str().unwrap_or(""),
            if t["passed"].as_bool() == Some(true) { "pass" } else { "FAIL" },
            t["actual"]
        );
    }
    out
}

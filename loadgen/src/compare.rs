//! `loadgen compare` and baselines (issue 6): key figures of a run against a baseline that may
//! hold several runs of the same profile, noise-aware: a figure is a regression only when it
//! falls outside the baseline's own spread [min, max] widened by the larger of the tolerance (of
//! the median) and twice the spread itself (a few runs understate a noisy figure's range), and a
//! percentile measured on too few samples is not judged at all.
//!
//! A baseline file (`results/baselines/<profile>.json`):
//! `{ "profile": "ci", "runs": [ { "dir", "commit", "date", "figures": { "<name>": { "value", "samples" } } } ] }`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};

/// A run's key figures: name → (value, samples it was measured on).
pub type Figures = BTreeMap<String, (f64, u64)>;

/// A figure's direction.
fn lower_is_better(name: &str) -> bool {
    !name.ends_with("per_second")
}

/// Percentiles need this many samples before a change in them means anything.
fn min_samples(name: &str) -> u64 {
    if name.ends_with(".p99.9") {
        2000
    } else if name.ends_with(".p99") {
        200
    } else if name.ends_with(".p50") {
        // A median of a few dozen requests that wait for a disk flush (registrations, since
        // they are made durable) moved 11 % between identical runs: too few to judge.
        50
    } else {
        1
    }
}

/// Latency differences below this are timer noise, whatever the ratio (ms).
const LATENCY_FLOOR_MS: f64 = 0.05;

/// The key figures of a run's `summary.json`: per kind p50/p99/p99.9 (corrected, ms) and
/// request rate, state messages/s acknowledged, backend records/s.
pub fn key_figures(summary: &Value) -> Figures {
    let mut out = BTreeMap::new();
    for (kind, k) in summary["requests"].as_object().into_iter().flatten() {
        let count = k["count"].as_u64().unwrap_or(0);
        for p in ["p50", "p99", "p99.9"] {
            if let Some(v) = k["latency_ms"][p].as_f64() {
                out.insert(format!("{kind}.{p}"), (v, count));
            }
        }
        if let Some(v) = k["per_second"].as_f64() {
            out.insert(format!("{kind}.requests_per_second"), (v, count));
        }
    }
    let messages = summary["state_messages"]["acknowledged"].as_u64().unwrap_or(0);
    if let Some(v) = summary["state_messages"]["acknowledged_per_second"].as_f64() {
        out.insert("state_messages_per_second".into(), (v, messages));
    }
    if let Some(v) = summary["backend"]["records_per_second"].as_f64() {
        out.insert(
            "backend_records_per_second".into(),
            (v, summary["backend"]["records_processed"].as_u64().unwrap_or(0)),
        );
    }
    out
}

/// A baseline entry for a run.
pub fn baseline_entry(dir: &Path, summary: &Value) -> Value {
    let figures: serde_json::Map<String, Value> = key_figures(summary)
        .into_iter()
        .map(|(k, (v, n))| (k, json!({ "value": v, "samples": n })))
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "commit": summary["commit"],
        "date": summary["finished"],
        "figures": figures,
    })
}

/// The baseline's runs' figures, from a baseline file or a run folder.
pub fn load_baseline(path: &Path) -> anyhow::Result<(String, Vec<Figures>)> {
    let read = |p: &Path| -> anyhow::Result<Value> {
        serde_json::from_slice(&std::fs::read(p).with_context(|| p.display().to_string())?)
            .with_context(|| p.display().to_string())
    };
    if path.is_dir() {
        let s = read(&path.join("summary.json"))?;
        return Ok((s["profile"]["name"].as_str().unwrap_or("").to_owned(), vec![key_figures(&s)]));
    }
    let b = read(path)?;
    let runs = b["runs"]
        .as_array()
        .with_context(|| format!("{}: not a baseline (no runs)", path.display()))?
        .iter()
        .map(|r| {
            r["figures"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, f)| {
                    Some((k.clone(), (f["value"].as_f64()?, f["samples"].as_u64().unwrap_or(0))))
                })
                .collect()
        })
        .collect::<Vec<_>>();
    if runs.is_empty() {
        return Err(anyhow!("{}: the baseline holds no runs", path.display()));
    }
    Ok((b["profile"].as_str().unwrap_or("").to_owned(), runs))
}

/// Adds a run to the baseline file at `path` (created if absent), keeping the newest `keep`.
pub fn promote(run_dir: &Path, path: &Path, keep: usize) -> anyhow::Result<usize> {
    let summary: Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("summary.json")).with_context(|| run_dir.display().to_string())?,
    )?;
    let profile = summary["profile"]["name"].as_str().unwrap_or("").to_owned();
    let mut baseline = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).with_context(|| path.display().to_string())?,
        Err(_) => json!({ "profile": profile, "runs": [] }),
    };
    if baseline["profile"].as_str() != Some(profile.as_str()) {
        return Err(anyhow!(
            "{} is the baseline of {}, the run is of {profile}",
            path.display(),
            baseline["profile"]
        ));
    }
    let runs = baseline["runs"].as_array_mut().context("the baseline has no runs list")?;
    runs.push(baseline_entry(run_dir, &summary));
    let excess = runs.len().saturating_sub(keep.max(1));
    runs.drain(..excess);
    let n = runs.len();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&baseline)?)?;
    Ok(n)
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub value: f64,
    /// Baseline median, min and max.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Change against the median, in percent.
    pub change: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Improvement,
    Regression,
    /// Too few samples to judge the percentile.
    FewSamples,
}

/// Compares `run`'s figures with the baseline runs' at `tolerance` (0.10 = 10 %).
pub fn compare(
    run: &BTreeMap<String, (f64, u64)>,
    baseline: &[BTreeMap<String, (f64, u64)>],
    tolerance: f64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, &(value, samples)) in run {
        let mut values: Vec<f64> = baseline.iter().filter_map(|b| b.get(name).map(|f| f.0)).collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let (min, max) = (values[0], values[values.len() - 1]);
        let median = values[values.len() / 2];
        let change = if median == 0.0 { 0.0 } else { (value / median - 1.0) * 100.0 };
        let fewest = baseline.iter().filter_map(|b| b.get(name).map(|f| f.1)).min().unwrap_or(0).min(samples);
        // The noise band around the baseline's spread.
        let widen = (tolerance * median.abs()).max(2.0 * (max - min));
        let verdict = if fewest < min_samples(name) {
            Verdict::FewSamples
        } else if lower_is_better(name) {
            if value > max + widen && value - max > LATENCY_FLOOR_MS {
                Verdict::Regression
            } else if value < min - widen && min - value > LATENCY_FLOOR_MS {
                Verdict::Improvement
            } else {
                Verdict::Ok
            }
        } else if value < min - widen {
            Verdict::Regression
        } else if value > max + widen {
            Verdict::Improvement
        } else {
            Verdict::Ok
        };
        rows.push(Row { name: name.clone(), value, median, min, max, change, verdict });
    }
    rows
}

/// The comparison as a table.
pub fn table(rows: &[Row], baseline_runs: usize, tolerance: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<42} {:>12} {:>12} {:>23} {:>8}  verdict   (baseline: {baseline_runs} runs, tolerance {:.0}%)",
        "figure",
        "run",
        "baseline",
        "baseline spread",
        "change",
        tolerance * 100.0
    );
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Improvement => "better",
            Verdict::Regression => "REGRESSION",
            Verdict::FewSamples => "few samples",
        };
        let _ = writeln!(
            out,
            "{:<42} {:>12.3} {:>12.3} {:>11.3} - {:<9.3} {:>+7.1}%  {verdict}",
            r.name, r.value, r.median, r.min, r.max, r.change
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p50: f64, rate: f64) -> BTreeMap<String, (f64, u64)> {
        [
            ("state_report.p50".to_owned(), (p50, 5000)),
            ("state_report.p99.9".to_owned(), (p50 * 9.0, 500)),
            ("state_messages_per_second".to_owned(), (rate, 5000)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn inside_the_spread_is_not_a_regression_outside_it_is() {
        let baseline = vec![figures(2.0, 1000.0), figures(2.1, 980.0), figures(2.05, 1010.0)];
        let verdict = |run: BTreeMap<String, (f64, u64)>| {
            compare(&run, &baseline, 0.10)
                .into_iter()
                .map(|r| (r.name, r.verdict))
                .collect::<BTreeMap<_, _>>()
        };
        let same = verdict(figures(2.3, 900.0)); // inside the widened spread
        assert_eq!(same["state_report.p50"], Verdict::Ok);
        assert_eq!(same["state_messages_per_second"], Verdict::Ok);
        assert_eq!(same["state_report.p99.9"], Verdict::FewSamples);
        let slow = verdict(figures(2.05 * 1.3, 1000.0 / 1.3));
        assert_eq!(slow["state_report.p50"], Verdict::Regression);
        assert_eq!(slow["state_messages_per_second"], Verdict::Regression);
        assert_eq!(verdict(figures(1.5, 1200.0))["state_report.p50"], Verdict::Improvement);
        // A noisy baseline widens its own band: the same 2.7 ms is noise against runs that
        // themselves ranged from 2.0 to 2.6.
        let noisy = vec![figures(2.0, 1000.0), figures(2.6, 1000.0), figures(2.3, 1000.0)];
        assert_eq!(compare(&figures(2.7, 1000.0), &noisy, 0.10)[1].verdict, Verdict::Ok);
        // Below the noise floor a ratio means nothing.
        let tiny = vec![figures(0.010, 1.0)];
        assert_eq!(compare(&figures(0.020, 1.0), &tiny, 0.10)[1].verdict, Verdict::Ok);
    }
}

//! `loadgen compare` and baselines (issue 6): key figures of a run against a baseline that may
//! hold several runs of the same profile, noise-aware: a figure is a regression only when it
//! falls outside the baseline's own spread [min, max] widened by the larger of the tolerance (of
//! the median) and twice the spread itself (a few runs understate a noisy figure's range), and a
//! percentile measured on too few samples (fewer than 20 beyond it) is not judged at all.
//!
//! The comparison prints as a table, as Markdown or as JUnit XML ([`Format`]).
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

/// A figure's direction: latencies are better lower, rates (`..._per_second`) higher.
pub fn lower_is_better(name: &str) -> bool {
    !name.ends_with("per_second")
}

/// Percentiles need this many samples before a change in them means anything: at least 20 of the
/// run's samples beyond the percentile (a p99 of 1,000 requests is its ten slowest, and one
/// scheduling hiccup of the machine moves it: 20 pairs of identical ci runs here flagged 5 of
/// them at 50 % when the p99 of 1,200 requests was judged).
fn min_samples(name: &str) -> u64 {
    if name.ends_with(".p99.9") {
        20_000
    } else if name.ends_with(".p99") {
        2_000
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

impl Verdict {
    /// The verdict as the tables print it.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improvement => "better",
            Verdict::Regression => "REGRESSION",
            Verdict::FewSamples => "few samples",
        }
    }
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
        let _ = writeln!(
            out,
            "{:<42} {:>12.3} {:>12.3} {:>11.3} - {:<9.3} {:>+7.1}%  {}",
            r.name,
            r.value,
            r.median,
            r.min,
            r.max,
            r.change,
            r.verdict.word()
        );
    }
    out
}

/// The output formats of `loadgen compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The table above, for a terminal.
    Text,
    /// GitHub-flavoured Markdown: the run's thresholds, the comparison as a table and its
    /// changes as a Mermaid bar chart (GitHub renders both), for `$GITHUB_STEP_SUMMARY` or a
    /// pull request comment.
    Markdown,
    /// JUnit XML: each threshold, the verification and each compared figure a test case, so a
    /// CI system lists them without our help.
    Junit,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "markdown" | "md" => Ok(Format::Markdown),
            "junit" => Ok(Format::Junit),
            other => Err(format!("{other:?}: the formats are text, markdown and junit")),
        }
    }
}

/// The run's thresholds as `(metric, condition, actual, passed)`.
fn thresholds(summary: &Value) -> Vec<(String, String, Option<f64>, bool)> {
    summary["thresholds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["metric"].as_str().unwrap_or("?").to_owned(),
                t["condition"].as_str().unwrap_or("?").to_owned(),
                t["actual"].as_f64(),
                t["passed"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// A number as the outputs print it: three decimals, fewer digits for large values.
fn num(v: f64) -> String {
    if v.abs() >= 1000.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// The comparison (and the run's thresholds and verification) as GitHub-flavoured Markdown.
pub fn markdown(summary: &Value, rows: &[Row], baseline_runs: usize, tolerance: f64) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let profile = summary["profile"]["name"].as_str().unwrap_or("run");
    let commit = summary["commit"].as_str().unwrap_or("unknown");
    let regressions: Vec<&str> =
        rows.iter().filter(|r| r.verdict == Verdict::Regression).map(|r| r.name.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "### loadgen compare: `{}` at `{}`\n", cell(profile), cell(commit));
    let _ = writeln!(
        out,
        "**{}** against a baseline of {baseline_runs} run(s), tolerance {:.0} % beyond the \
         baseline's spread.\n",
        if regressions.is_empty() {
            "No regression".to_owned()
        } else {
            format!("{} regression(s): {}", regressions.len(), regressions.join(", "))
        },
        tolerance * 100.0
    );
    let limits = thresholds(summary);
    if !limits.is_empty() || summary["verification"].is_object() {
        let _ = writeln!(out, "| check | condition | actual | result |\n|---|---|---:|---|");
        for (metric, condition, actual, passed) in &limits {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(metric),
                cell(condition),
                actual.map_or("-".to_owned(), num),
                if *passed { "pass" } else { "FAIL" }
            );
        }
        if let Some(exact) = summary["verification"]["exact"].as_bool() {
            let _ = writeln!(
                out,
                "| verification | exact | {} differences | {} |",
                summary["verification"]["differences"].as_array().map_or(0, Vec::len),
                if exact { "pass" } else { "FAIL" }
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| figure | run | baseline median | baseline spread | change | verdict |\n|---|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} – {} | {:+.1} % | {} |",
            cell(&r.name),
            num(r.value),
            num(r.median),
            num(r.min),
            num(r.max),
            r.change,
            r.verdict.word()
        );
    }
    // Mermaid's bar chart: the change of each judged figure against the baseline median.
    let judged: Vec<&Row> = rows.iter().filter(|r| r.verdict != Verdict::FewSamples).collect();
    if !judged.is_empty() {
        let bound = judged.iter().map(|r| r.change.abs()).fold(tolerance * 100.0, f64::max).ceil();
        let names: Vec<String> = judged.iter().map(|r| format!("\"{}\"", r.name.replace('"', "'"))).collect();
        let bars: Vec<String> = judged.iter().map(|r| format!("{:.1}", r.change)).collect();
        let _ = writeln!(
            out,
            "\n```mermaid\nxychart-beta\n    title \"Change against the baseline median (%), judged figures\"\n    \
             x-axis [{}]\n    y-axis \"change %\" -{bound} --> {bound}\n    bar [{}]\n```",
            names.join(", "),
            bars.join(", ")
        );
    }
    out
}

/// The comparison (and the run's thresholds and verification) as JUnit XML: one test suite for
/// the run's own checks, one for the comparison. A figure with too few samples is skipped.
pub fn junit(summary: &Value, rows: &[Row], baseline_runs: usize, tolerance: f64) -> String {
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    let profile = summary["profile"]["name"].as_str().unwrap_or("run");
    let timestamp = summary["finished"].as_str().unwrap_or("");
    // (name, failure message, skipped)
    let mut checks: Vec<(String, Option<String>, bool)> = thresholds(summary)
        .into_iter()
        .map(|(metric, condition, actual, passed)| {
            let actual = actual.map_or("-".to_owned(), num);
            (
                format!("threshold {metric} {condition}"),
                (!passed).then(|| format!("{metric} was {actual}, the threshold is {condition}")),
                false,
            )
        })
        .collect();
    if let Some(exact) = summary["verification"]["exact"].as_bool() {
        let n = summary["verification"]["differences"].as_array().map_or(0, Vec::len);
        checks.push(("verification exact".into(), (!exact).then(|| format!("{n} differences")), false));
    }
    let compared: Vec<(String, Option<String>, bool)> = rows
        .iter()
        .map(|r| {
            let failure = (r.verdict == Verdict::Regression).then(|| {
                format!(
                    "{} is {} against a baseline median of {} (spread {} - {}, {:+.1} %), beyond the \
                     tolerance of {:.0} %",
                    r.name,
                    num(r.value),
                    num(r.median),
                    num(r.min),
                    num(r.max),
                    r.change,
                    tolerance * 100.0
                )
            });
            (r.name.clone(), failure, r.verdict == Verdict::FewSamples)
        })
        .collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = checks.len() + compared.len();
    let failures = checks.iter().chain(&compared).filter(|c| c.1.is_some()).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"loadgen {}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\">",
        esc(profile)
    );
    for (suite, cases) in [(format!("{profile}.checks"), &checks), (format!("{profile}.compare"), &compared)]
    {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"0\" \
             timestamp=\"{}\">",
            esc(&suite),
            cases.len(),
            cases.iter().filter(|c| c.1.is_some()).count(),
            cases.iter().filter(|c| c.2).count(),
            esc(timestamp)
        );
        if suite.ends_with(".compare") {
            let _ = writeln!(
                out,
                "    <properties><property name=\"baseline_runs\" value=\"{baseline_runs}\"/>\
                 <property name=\"tolerance\" value=\"{tolerance}\"/></properties>"
            );
        }
        for (name, failure, skipped) in cases.iter() {
            let _ =
                write!(out, "    <testcase name=\"{}\" classname=\"{}\" time=\"0\"", esc(name), esc(&suite));
            match (failure, skipped) {
                (Some(message), _) => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{0}\" type=\"{1}\">{0}</failure>\n    </testcase>",
                        esc(message),
                        if suite.ends_with(".compare") { "regression" } else { "check" }
                    );
                }
                (None, true) => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"too few samples to judge this percentile\"/>\n    </testcase>"
                    );
                }
                (None, false) => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
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

    fn sample() -> (Value, Vec<Row>) {
        let summary = json!({
            "profile": { "name": "ci" },
            "commit": "abc123",
            "finished": "2026-12-02T22:00:00Z",
            "thresholds": [
                { "metric": "state_report.p99", "condition": "< 2s", "actual": 4.5, "passed": true },
                { "metric": "error_rate", "condition": "< 1%", "actual": 2.5, "passed": false },
            ],
            "verification": { "exact": true, "differences": [] },
        });
        let row = |name: &str, value: f64, verdict| Row {
            name: name.to_owned(),
            value,
            median: 10.0,
            min: 9.0,
            max: 11.0,
            change: (value / 10.0 - 1.0) * 100.0,
            verdict,
        };
        let rows = vec![
            row("state_report.p50", 10.5, Verdict::Ok),
            row("state_report.p99", 30.0, Verdict::Regression),
            row("state_report.p99.9", 12.0, Verdict::FewSamples),
            row("state_messages_per_second", 12_000.0, Verdict::Improvement),
        ];
        (summary, rows)
    }

    /// Splits a Markdown table row into its cells (`\|` is a pipe inside a cell).
    fn cells(line: &str) -> Vec<String> {
        let inner = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|')).expect("a table row");
        let mut out = vec![String::new()];
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => out.last_mut().unwrap().push(chars.next().unwrap()),
                '|' => out.push(String::new()),
                c => out.last_mut().unwrap().push(c),
            }
        }
        out.into_iter().map(|c| c.trim().to_owned()).collect()
    }

    #[test]
    fn markdown_tables_parse_back_to_the_comparison() {
        let (summary, rows) = sample();
        let md = markdown(&summary, &rows, 3, 0.5);
        let lines: Vec<&str> = md.lines().collect();
        let table = |header: &str| -> Vec<Vec<String>> {
            let at = lines.iter().position(|l| l.starts_with(header)).expect(header);
            assert!(cells(lines[at + 1]).iter().all(|c| c.trim_matches(':').chars().all(|c| c == '-')));
            lines[at + 2..].iter().take_while(|l| l.starts_with('|')).map(|l| cells(l)).collect()
        };
        let compared = table("| figure |");
        assert_eq!(compared.len(), rows.len());
        for (cells, row) in compared.iter().zip(&rows) {
            assert_eq!(cells.len(), 6, "{cells:?}");
            assert_eq!(cells[0], row.name);
            assert!((cells[1].parse::<f64>().unwrap() - row.value).abs() < 1e-3 * row.value.max(1.0));
            assert_eq!(cells[5], row.verdict.word());
        }
        let checks = table("| check |");
        assert_eq!(checks.len(), 3);
        assert_eq!((checks[1][0].as_str(), checks[1][3].as_str()), ("error_rate", "FAIL"));
        assert_eq!((checks[2][0].as_str(), checks[2][3].as_str()), ("verification", "pass"));
        assert!(md.contains("1 regression(s): state_report.p99"), "{md}");
        // The chart: one bar per judged figure.
        let bar = lines.iter().find(|l| l.trim_start().starts_with("bar [")).expect("a bar line");
        assert_eq!(
            bar.matches(',').count() + 1,
            rows.iter().filter(|r| r.verdict != Verdict::FewSamples).count()
        );
        assert!(md.contains("```mermaid\nxychart-beta") && md.trim_end().ends_with("```"));
    }

    #[test]
    fn junit_has_the_schema_required_elements() {
        use quick_xml::events::Event;
        let (summary, rows) = sample();
        let xml = junit(&summary, &rows, 3, 0.5);
        let mut reader = quick_xml::Reader::from_str(&xml);
        let attrs = |e: &quick_xml::events::BytesStart| -> BTreeMap<String, String> {
            e.attributes()
                .map(|a| {
                    let a = a.unwrap();
                    let key: &str = a.key.as_ref();
                    (
                        key.to_owned(),
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned(),
                    )
                })
                .collect()
        };
        // (suite attributes, its cases: (attributes, failure message, skipped))
        type Case = (BTreeMap<String, String>, Option<String>, bool);
        let mut suites: Vec<(BTreeMap<String, String>, Vec<Case>)> = Vec::new();
        let mut root = None;
        let mut stack: Vec<String> = Vec::new();
        loop {
            let (e, empty) = match reader.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => {
                    stack.pop();
                    continue;
                }
                _ => continue,
            };
            let qname = e.name();
            let name: &str = qname.as_ref();
            let name = name.to_owned();
            match (stack.last().map(String::as_str), name.as_str()) {
                (None, "testsuites") => root = Some(attrs(&e)),
                (Some("testsuites"), "testsuite") => suites.push((attrs(&e), Vec::new())),
                (Some("testsuite"), "testcase") => {
                    suites.last_mut().unwrap().1.push((attrs(&e), None, false))
                }
                (Some("testsuite"), "properties") | (Some("properties"), "property") => {}
                (Some("testcase"), "failure") => {
                    suites.last_mut().unwrap().1.last_mut().unwrap().1 = attrs(&e).get("message").cloned();
                }
                (Some("testcase"), "skipped") => suites.last_mut().unwrap().1.last_mut().unwrap().2 = true,
                (parent, child) => panic!("<{child}> is not allowed in {parent:?}"),
            }
            if !empty {
                stack.push(name);
            }
        }
        let root = root.expect("a <testsuites> root");
        assert_eq!(suites.len(), 2);
        let mut all = 0;
        for (suite, cases) in &suites {
            for key in ["name", "tests", "failures", "errors", "skipped", "time"] {
                assert!(suite.contains_key(key), "testsuite needs {key}: {suite:?}");
            }
            assert_eq!(suite["tests"].parse::<usize>().unwrap(), cases.len());
            assert_eq!(
                suite["failures"].parse::<usize>().unwrap(),
                cases.iter().filter(|c| c.1.is_some()).count()
            );
            assert_eq!(suite["skipped"].parse::<usize>().unwrap(), cases.iter().filter(|c| c.2).count());
            for (case, _, _) in cases {
                assert!(case.contains_key("name") && case.contains_key("classname"), "{case:?}");
            }
            all += cases.len();
        }
        assert_eq!(root["tests"].parse::<usize>().unwrap(), all);
        assert_eq!(all, 3 + rows.len(), "two thresholds, the verification and every figure");
        let failed: Vec<&str> = suites
            .iter()
            .flat_map(|s| &s.1)
            .filter(|c| c.1.is_some())
            .map(|c| c.0["name"].as_str())
            .collect();
        assert_eq!(failed, ["threshold error_rate < 1%", "state_report.p99"]);
        assert_eq!(root["failures"], "2");
    }
}

//! The tools around a run: merge (4 shards = one run), the HTML report and the trends page
//! rendered in headless Chromium, and the closed model feeding the history trends read. (Compare has its own test binary, so its runs do not share the machine with these.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{chromium, plots_rendered, run_small};
use loadgen::merge::{merge, read_hlog};
use loadgen::run::EXIT_OK;
use serde_json::Value;

fn counts(s: &Value) -> BTreeMap<String, (u64, u64)> {
    s["requests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), (v["count"].as_u64().unwrap(), v["errors"].as_u64().unwrap())))
        .collect()
}

/// Per kind, the sum of an interval log's histograms as (value, count) pairs.
fn summed(path: &Path) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut by_kind: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    for (tag, _, _, h) in read_hlog(path).unwrap() {
        let e = by_kind.entry(tag).or_insert_with(loadgen::metrics::histogram);
        e.add(&h).unwrap();
    }
    by_kind
        .into_iter()
        .map(|(k, h)| (k, h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()))
        .collect()
}

#[test]
fn four_shards_merged_equal_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = run_small(&tmp.path().join("whole"), None);
    let shards: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("shard{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        run_small(dir, Some((i as u64, 4)));
    }
    let out = tmp.path().join("merged");
    let (merged, exit) = merge(&shards, &out).unwrap();
    assert_eq!(exit, EXIT_OK);
    assert_eq!(merged["clients"], whole["clients"]);
    assert_eq!(counts(&merged), counts(&whole), "every request kind, every count");
    for key in ["sent", "acknowledged"] {
        assert_eq!(merged["state_messages"][key], whole["state_messages"][key], "state messages {key}");
    }
    assert_eq!(merged["backend"]["records_processed"], whole["backend"]["records_processed"]);
    // Histograms are added, not averaged: the merged log holds exactly the shards' samples.
    let mut expected: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
    for dir in &shards {
        for (kind, values) in summed(&dir.join("latency.hlog")) {
            for (v, n) in values {
                *expected.entry(kind.clone()).or_default().entry(v).or_default() += n;
            }
        }
    }
    let got: BTreeMap<String, BTreeMap<u64, u64>> =
        summed(&out.join("latency.hlog")).into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
    assert_eq!(got, expected);
    // And their sample counts equal the unsharded run's.
    let whole_counts: BTreeMap<String, u64> = summed(&tmp.path().join("whole/latency.hlog"))
        .into_iter()
        .map(|(k, v)| (k, v.iter().map(|x| x.1).sum()))
        .collect();
    let merged_counts: BTreeMap<String, u64> =
        got.iter().map(|(k, v)| (k.clone(), v.values().sum())).collect();
    assert_eq!(merged_counts, whole_counts);
    assert!(out.join("report.html").exists() || loadgen::report::write(&out).is_ok());
}

/// A closed-model run (Reports back to back) writes a history line with every key figure and a
/// machine description; `loadgen trends` over that history and a synthetic one (a known step
/// in noise, another machine, a broken line) finds the step at its commit, nothing else, and its
/// page renders every plot in headless Chromium.
#[test]
fn a_closed_model_run_feeds_the_history_and_trends_find_a_step() {
    use loadgen::profile::Plan;
    use loadgen::run::{Options, run};
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.jsonl");
    let profile = r#"
        [population]
        clients = 300
        seed = 5
        [run]
        time_scale = 1
        duration = "3s"
        [transport]
        connections = 8
        [closed_model]
        messages_per_report = 20
        [backend]
        statesys_pause = 0
    "#;
    let opts = Options {
        out: Some(tmp.path().join("run")),
        history: Some(history.clone()),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("ingest", profile).unwrap(), profile, &opts).unwrap();
    let s = &outcome.summary;
    assert_eq!(outcome.exit, EXIT_OK, "{s:#}");
    assert_eq!(s["verification"]["exact"], true, "{:#}", s["verification"]);
    let acked = s["state_messages"]["acknowledged"].as_u64().unwrap();
    assert!(acked >= 20 * 300, "every client reported at least once in 3 s: {acked}");
    assert_eq!(s["backend"]["records_processed"].as_u64(), Some(acked), "durable and applied");
    assert_eq!(s["profile"]["reports"]["model"], "closed");
    let line: Value = serde_json::from_str(std::fs::read_to_string(&history).unwrap().trim()).unwrap();
    for figure in ["backend_records_per_second", "state_messages_per_second", "state_report.p99"] {
        assert!(line["figures"][figure]["value"].as_f64().is_some_and(|v| v > 0.0), "{figure}: {line}");
    }
    assert_eq!(line["target"], "embedded");

    // Synthetic history: 24 commits of 3 runs each on one machine kind, ±3 % noise, the
    // throughput 20 % lower from commit c14 on; the same profile on another machine, flat.
    let noise = |i: u64| (loadgen::sim::mix(i) % 2000) as f64 / 1000.0 - 1.0;
    let mut text = std::fs::read_to_string(&history).unwrap();
    for c in 0..24u64 {
        for r in 0..3u64 {
            let rate = if c < 14 { 900_000.0 } else { 720_000.0 } * (1.0 + 0.03 * noise(c * 7 + r));
            let p99 = 40.0 * (1.0 + 0.03 * noise(1000 + c * 7 + r));
            for (cpu, rate) in
                [("Synthetic CPU", rate), ("Other CPU", 500_000.0 * (1.0 + 0.03 * noise(c + 99 * r)))]
            {
                text.push_str(
                    &serde_json::json!({
                        "profile": "ingest", "commit": format!("c{c:02}"), "date": format!("2026-12-{:02}", 1 + c),
                        "host": { "cpu": cpu, "cores": 2, "memory_gib": 23.5 }, "target": "embedded",
                        "figures": { "backend_records_per_second": { "value": rate, "samples": 1 },
                                     "state_report.p99": { "value": p99, "samples": 5000 } },
                    })
                    .to_string(),
                );
                text.push('\n');
            }
        }
        if c == 5 {
            text.push_str("{\"profile\": \"ingest\", truncated\n");
        }
    }
    std::fs::write(&history, text).unwrap();
    let out = tmp.path().join("trends");
    let written = loadgen::trends::write(&history, &out, None, &loadgen::trends::Detect::default()).unwrap();
    assert_eq!(written.warnings.len(), 1, "{:?}", written.warnings);
    assert!(written.warnings[0].starts_with("line 38:"), "{:?}", written.warnings);
    assert_eq!(written.groups, 3, "the real run's machine, and the two synthetic ones");
    let doc: Value = serde_json::from_slice(&std::fs::read(&written.json).unwrap()).unwrap();
    let mut found = Vec::new();
    for g in doc["groups"].as_array().unwrap() {
        for f in g["figures"].as_array().unwrap() {
            for c in f["changes"].as_array().unwrap() {
                found.push((
                    g["machine"].as_str().unwrap().to_owned(),
                    f["name"].as_str().unwrap().to_owned(),
                    c.clone(),
                ));
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:#?}");
    let (machine, figure, change) = &found[0];
    assert!(machine.starts_with("Synthetic CPU") && figure == "backend_records_per_second");
    assert_eq!((change["commit"].as_str(), change["direction"].as_str()), (Some("c14"), Some("regression")));
    assert_eq!(change["link"], "#commit-c14");

    let html = std::fs::read_to_string(&written.html).unwrap();
    for fetch in ["src=", "<link", "@import", "url("] {
        assert!(!html.contains(fetch), "trends.html must be self-contained, found {fetch:?}");
    }
    assert!(html.contains("id=\"commit-c14\"") && html.contains("href=\"#commit-c14\""));
    let plots = html.matches("<svg class=\"plot\"").count();
    let real = line["figures"].as_object().unwrap().len();
    assert_eq!(plots, real + 2 + 2, "every figure of every group is plotted");
    if let Some(rendered) = plots_rendered(&written.html) {
        assert_eq!(rendered, plots, "every plot drew its lines");
    }
}

/// A threshold that fails for its abort stretch stops the run early: every result file is
/// written up to then and readable, the run exits 1 naming the threshold; a windowed threshold
/// that holds in its share of windows passes, scored by that share.
#[test]
fn an_abort_stops_the_run_and_leaves_readable_files() {
    use loadgen::profile::Plan;
    use loadgen::run::{EXIT_THRESHOLD, Options, run};
    let tmp = tempfile::tempdir().unwrap();
    let profile = r#"
        [population]
        clients = 200
        seed = 3
        [client]
        policy_poll = "1m"
        [run]
        time_scale = 60
        duration = "40m"
        ramp_up = "30s"
        [thresholds]
        "policy_assignments.p99" = "< 10s in 90% of 1s windows"
        "policy_assignments.p50" = "< 1us in 50% of 1s windows, abort after 2s"
    "#;
    let opts = Options {
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("abort", profile).unwrap(), profile, &opts).unwrap();
    let s = &outcome.summary;
    assert_eq!(outcome.exit, EXIT_THRESHOLD, "{s:#}");
    assert_eq!(s["aborted"]["threshold"], "policy_assignments.p50", "{s:#}");
    let at = s["aborted"]["at_seconds"].as_f64().unwrap();
    assert!((2.0..10.0).contains(&at), "aborted {at} s in");
    assert!(s["wall_seconds"].as_f64().unwrap() < 15.0, "stopped long before its 40 s");
    assert_eq!(s["verification"]["exact"], true, "what was acknowledged up to the abort is applied");
    let by = |m: &str| s["thresholds"].as_array().unwrap().iter().find(|t| t["metric"] == m).unwrap().clone();
    assert_eq!(by("policy_assignments.p50")["passed"], false);
    let windowed = by("policy_assignments.p99");
    assert_eq!(
        (windowed["passed"].clone(), windowed["actual"].as_f64()),
        (true.into(), Some(1.0)),
        "{windowed}"
    );
    for file in ["summary.json", "timeline.json", "verify.json"] {
        let _: Value = serde_json::from_slice(&std::fs::read(outcome.dir.join(file)).unwrap()).unwrap();
    }
    let intervals = read_hlog(&outcome.dir.join("latency.hlog")).unwrap();
    assert!(!intervals.is_empty(), "the interval log up to the abort");
    assert!(std::fs::read_to_string(outcome.dir.join("report.html")).unwrap().contains("<svg"));
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_small(&dir, None);
    let page = dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Nothing that fetches: no src/href attributes, stylesheets, imports or url() references.
    for fetch in ["src=", "href=", "<link", "@import", "url("] {
        assert!(!html.contains(fetch), "report.html must be self-contained, found {fetch:?}");
    }
    // Spectrum, throughput, backlog, and the sync's convergence curves.
    assert_eq!(html.matches("<svg class=\"plot\"").count(), 4);
    let Some(chromium) = chromium() else {
        // CI installs Chromium and sets this, so there the test cannot pass without it.
        assert!(
            std::env::var_os("SUMSTORM_REQUIRE_CHROMIUM").is_none(),
            "chromium is required here but missing"
        );
        eprintln!("SKIPPED the Chromium check: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let url = format!("file://{}", page.display());
    let common =
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"];
    let dom = Command::new(&chromium)
        .args(common)
        .args(["--virtual-time-budget=3000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-plots-rendered=\"4\""),
        "every plot drew its lines: {}",
        &dom[..dom.len().min(400)]
    );
    let shot = tmp.path().join("report.png");
    let status = Command::new(&chromium)
        .args(common)
        .args(["--window-size=1000,2400", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(status.status.success() && std::fs::metadata(&shot).unwrap().len() > 10_000);
    if let Ok(keep) = std::env::var("SUMSTORM_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

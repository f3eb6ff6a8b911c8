//! The tools around a run: merge (4 shards = one run) and the HTML report rendered in headless
//! Chromium. (Compare has its own test binary, so its runs do not share the machine with these.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::run_small;
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

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
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
    assert_eq!(html.matches("<svg class=\"plot\"").count(), 3);
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
        dom.contains("data-plots-rendered=\"3\""),
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

//! `loadgen search` against a stand-in MP whose capacity is known by construction: the null MP
//! with a capacity (`loadgen sink --capacity`) takes that many relayed Reports a second and
//! answers the rest 503, so a rate above it fails the error-rate SLO. The search's bracket must
//! hold the capacity; a trial in which the generator fell behind is void, never the target's
//! failure; bounds that cannot be searched are refused with every finished trial kept.
//! Real sockets; the stand-in runs in this process. Its own test binary, and its tests take
//! turns ([`one_at_a_time`]), so that nothing else loads the machine while trials are timed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use loadgen::profile::Plan;
use loadgen::search::{Config, Over, SearchError, search};

mod common;
use serde_json::Value;

const OPEN: &str = r#"
[population]
clients = 1000
seed = 9
[run]
time_scale = 1
duration = "3s"
max_lateness_p99_ms = LATE
[transport]
wire = "plain"
connections = 16
[open_model]
rate = 200
messages_per_report = 5
[thresholds]
"error_rate" = "< 1%"
"#;

/// A stand-in MP taking at most `capacity` relayed Reports a second (unbounded: `None`).
fn stand_in(capacity: Option<f64>) -> SocketAddr {
    common::sink(capacity)
}

fn config(out: &Path, target: SocketAddr, lower: f64, upper: f64, width: f64) -> Config {
    Config {
        over: Over::Rate,
        lower,
        upper,
        goal_width: width,
        short: Duration::from_secs(2),
        full: Duration::from_secs(3),
        repeats: 2,
        target: Some(format!("http://{target}")),
        out: out.to_owned(),
        progress: false,
        // One pacer: its Reports arrive evenly spaced.
        arbiters: Some(1),
        spectra: false,
    }
}

/// Trials are timed: the tests of this binary run one at a time (the harness would otherwise run
/// them side by side on a 2-core machine, and one test's trials would make the other's late).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_answer_brackets_a_known_capacity() {
    let _turn = one_at_a_time();
    let capacity = 400.0;
    let target = stand_in(Some(capacity));
    let tmp = tempfile::tempdir().unwrap();
    let text = OPEN.replace("LATE", "50");
    let plan = Plan::parse("stand-in", &text).unwrap();
    let cfg = config(tmp.path(), target, 100.0, 1600.0, 0.08);
    let found = search(&plan, &text, &cfg).unwrap();
    let doc = read(&found.json);
    for b in &found.brackets {
        // Above the capacity the excess is refused (503): past 1 % of the Reports, the error
        // rate fails; the bucket's 20 ms burst lets a 3 s trial run up to 1.7 % over.
        assert!(!b.at_least && !b.generator_bound, "{b:?}");
        assert!(b.lower <= capacity * 1.03 && b.upper >= capacity, "{} holds {capacity}? {b:?}", b.goal.name);
        assert!((b.upper - b.lower) / b.upper <= 0.08, "within the goal width: {b:?}");
    }
    let trials = doc["trials"].as_array().unwrap();
    assert!(trials.iter().any(|t| t["verdict"] == "fail") && trials.iter().any(|t| t["verdict"] == "pass"));
    assert!(trials.iter().all(|t| t["verdict"] != "void"), "{doc:#}");
    // Every trial's SLOs are named with figures; the stand-in has no StateSys counters.
    let slos = trials[0]["slos"].as_array().unwrap();
    assert!(slos.iter().any(|s| s["slo"] == "threshold error_rate"));
    assert!(slos.iter().any(|s| s["verdict"].as_str().unwrap().starts_with("n/a")));
    let events = std::fs::read_to_string(tmp.path().join("search-events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), trials.len(), "an event per trial");
    // The page draws every plot it has (in headless Chromium, where there is one).
    let plots = std::fs::read_to_string(&found.html).unwrap().matches("<svg class=\"plot\"").count();
    assert!(plots >= 1, "{plots}");
    if let Some(drawn) = common::plots_rendered(&found.html) {
        assert_eq!(drawn, plots);
    }
}

#[test]
fn a_generator_bound_trial_is_void_not_the_targets_limit() {
    let _turn = one_at_a_time();
    // An unbounded stand-in, and a generator allowed 25 ms of lateness: far above what one
    // arbiter paces on time, trials are void. (The lower bound's trial has 50 samples, so its
    // p99 is nearly its maximum: a tighter allowance makes one scheduling hiccup of a shared CI
    // host void the lower bound, which the search rightly refuses to search from.)
    let target = stand_in(None);
    let tmp = tempfile::tempdir().unwrap();
    let text = OPEN.replace("LATE", "25");
    let plan = Plan::parse("stand-in", &text).unwrap();
    let mut cfg = config(tmp.path(), target, 50.0, 400_000.0, 0.5);
    (cfg.short, cfg.full, cfg.repeats) = (Duration::from_secs(1), Duration::from_secs(1), 1);
    let found = search(&plan, &text, &cfg).unwrap();
    let doc = read(&found.json);
    let trials = doc["trials"].as_array().unwrap();
    assert!(trials.iter().any(|t| t["verdict"] == "void"), "{doc:#}");
    assert!(trials.iter().all(|t| t["verdict"] != "fail"), "the target never failed: {doc:#}");
    for b in &found.brackets {
        assert!(b.generator_bound, "the upper bound is the generator's: {b:?}");
    }
    assert!(doc["answer"][0]["generator_bound"] == true);
}

#[test]
fn a_lower_bound_that_already_fails_is_refused_and_its_trial_kept() {
    let _turn = one_at_a_time();
    let target = stand_in(Some(50.0));
    let tmp = tempfile::tempdir().unwrap();
    let text = OPEN.replace("LATE", "50");
    let plan = Plan::parse("stand-in", &text).unwrap();
    let mut cfg = config(tmp.path(), target, 400.0, 800.0, 0.1);
    cfg.short = Duration::from_secs(1);
    match search(&plan, &text, &cfg) {
        Err(SearchError::Unsearchable(why)) => assert!(why.contains("lower bound"), "{why}"),
        other => panic!("{other:?}"),
    }
    let doc = read(&tmp.path().join("search.json"));
    assert_eq!(doc["complete"], false);
    assert!(doc["error"].as_str().unwrap().contains("lower bound"), "{doc:#}");
    assert_eq!(doc["trials"][0]["verdict"], "fail");
    // Bounds the wrong way round: refused before any trial.
    let cfg = config(&tmp.path().join("backwards"), target, 800.0, 400.0, 0.1);
    assert!(matches!(search(&plan, &text, &cfg), Err(SearchError::Unsearchable(_))));
}

//! `loadgen run` end to end over real sockets: against the embedded backend (files, exact
//! verification, the same truth twice from one seed, the histogram files readable), against a
//! test server that stalls for a second (coordinated omission), and the shipped profiles.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use loadgen::profile::Plan;
use loadgen::run::{EXIT_GENERATOR, EXIT_OK, Options, run};
use serde_json::Value;

const SMALL: &str = r#"
# A small site for the tests: 60 clients, short timers, a sync, one simulated hour at 600x.
[population]
clients = 60
seed = 11
ad_sites = ["CM12-R2-PS1", "BRANCH-01"]
subnets = ["192.168.2.0/24", "10.1.0.0/16"]
[client]
policy_poll = "10m"
reporting_cycle = "2m"
scan_window = "10m"
scan_duration = "1m"
[run]
time_scale = 600
duration = "1h"
ramp_up = "2m"
[[event]]
at = "12m"
sync = { new_updates = 6, superseded = 2 }
[transport]
connections = 4
[thresholds]
"error_rate" = "< 1%"
"#;

fn options(out: &Path) -> Options {
    Options {
        target: None,
        out: Some(out.to_owned()),
        shard: None,
        verify: true,
        progress: false,
        history: None,
        arbiters: Some(2),
        // What these tests check is not the generator's pace (a shared CI machine).
        allow_late: true,
        ..Options::default()
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_small_site_end_to_end_exact_and_the_same_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for round in 0..2 {
        let dir = tmp.path().join(format!("run{round}"));
        let plan = Plan::parse("small", SMALL).unwrap();
        let outcome = run(plan, SMALL, &options(&dir)).unwrap();
        assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
        for file in
            ["summary.json", "verify.json", "profile.toml", "latency.hlog", "latency-state_report.hgrm"]
        {
            assert!(dir.join(file).exists(), "{file} missing");
        }
        let verify = read_json(&dir.join("verify.json"));
        assert_eq!(verify["exact"], true, "{verify:#}");
        assert_eq!(verify["clients_known"], 60);
        assert!(verify["clients_with_acknowledged_scans"].as_u64().unwrap() >= 55, "{verify:#}");
        let summary = read_json(&dir.join("summary.json"));
        assert_eq!(summary["syncs"].as_array().unwrap().len(), 1);
        assert!(summary["state_messages"]["acknowledged"].as_u64().unwrap() > 60 * 100);
        assert_eq!(summary["state_messages"]["acknowledged"], summary["backend"]["records_processed"]);
        for kind in
            ["registration", "policy_assignments", "policy_body", "wsus_location", "catalog", "state_report"]
        {
            assert!(summary["requests"][kind]["count"].as_u64().unwrap() > 0, "{kind}");
        }
        expected.push(verify["expected"].clone());

        // The .hgrm: 4 numeric columns (the last line of the distribution has 3: 1/(1-p) is
        // infinite there), then the # footer.
        let hgrm = std::fs::read_to_string(dir.join("latency-state_report.hgrm")).unwrap();
        let rows: Vec<Vec<f64>> = hgrm
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|x| x.parse::<f64>().unwrap()).collect())
            .collect();
        assert!(rows.len() > 10);
        assert!(rows[..rows.len() - 1].iter().all(|r| r.len() == 4), "{hgrm}");
        assert_eq!(rows.last().unwrap()[1], 1.0);
        let total = summary["requests"]["state_report"]["count"].as_u64().unwrap();
        assert_eq!(rows.last().unwrap()[2] as u64, total);

        // The .hlog decodes with the hdrhistogram crate's reader; per tag, counts add up to the
        // summary's.
        let hlog = std::fs::read(dir.join("latency.hlog")).unwrap();
        let mut per_tag = std::collections::HashMap::<String, u64>::new();
        let mut d = Deserializer::new();
        for entry in IntervalLogIterator::new(&hlog) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                let bytes = base64::engine::general_purpose::STANDARD.decode(h.encoded_histogram()).unwrap();
                let hist: hdrhistogram::Histogram<u64> = d.deserialize(&mut bytes.as_slice()).unwrap();
                *per_tag.entry(h.tag().unwrap().as_str().to_owned()).or_default() += hist.len();
            }
        }
        for (kind, count) in &per_tag {
            assert_eq!(Some(*count), summary["requests"][kind]["count"].as_u64(), "{kind}");
        }
        assert_eq!(per_tag.len(), 6);
    }
    assert_eq!(expected[0], expected[1], "the same seed gives the same truth and summaries");
}

/// A stand-in MP: answers the site API and accepts every relayed Report, but one second in it
/// holds one answer back for a second.
async fn stalling_server(listener: tokio::net::TcpListener, started: Instant) {
    let stalled = Arc::new(AtomicBool::new(false));
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let stalled = Arc::clone(&stalled);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let stalled = Arc::clone(&stalled);
                async move {
                    let body = match req.uri().path() {
                        "/api/v1/site" => {
                            r#"{"SiteCode":"PS1","UpdateSourceID":"{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"}"#
                        }
                        "/api/v1/catalog" => {
                            r#"{"Updates":[{"Index":0,"UpdateID":"{0D2B6E1A-2D4C-4F7B-9B6E-1A2D4C4F7B9B}","RevisionNumber":200}]}"#
                        }
                        "/api/v1/status" => "{}",
                        _ => {
                            if started.elapsed() > Duration::from_secs(1)
                                && !stalled.swap(true, Ordering::SeqCst)
                            {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            "{}"
                        }
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The embedded backend's StateSys runs at nice 10, not a standalone backend's 19: the
/// generator shares the process and its cores (README, the profile's `[backend]` section).
#[test]
fn the_embedded_backends_statesys_runs_at_nice_10() {
    let nice_of = |task: &Path| -> Option<(String, i32)> {
        let comm = std::fs::read_to_string(task.join("comm")).ok()?;
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        // The nice value is the 17th field after the name in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some((comm.trim().to_owned(), fields.get(16)?.parse().ok()?))
    };
    let ours = nice_of(Path::new("/proc/thread-self")).unwrap().1;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                    if let Some(("statesys", nice)) =
                        nice_of(&task.path()).as_ref().map(|(n, v)| (n.as_str(), *v))
                    {
                        seen.push(nice);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let outcome = run(Plan::parse("small", SMALL).unwrap(), SMALL, &options(tmp.path())).unwrap();
    done.store(true, Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    // StateSys lowers itself as it starts, so the first samples may precede it: judge the lowest
    // priority it reached (other tests' embedded backends in this process run at 10 too).
    assert_eq!(seen.iter().max(), Some(&ours.max(10)), "{} samples", seen.len());
}

#[test]
fn a_stall_shows_in_corrected_latency_not_in_service_time() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(stalling_server(listener, Instant::now()));
    let profile = r#"
        [population]
        clients = 50
        [run]
        duration = "3s"
        [transport]
        wire = "plain"
        connections = 1
        [open_model]
        rate = 100
        messages_per_report = 1
    "#;
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(tmp.path());
    opts.target = Some(format!("http://{addr}"));
    opts.verify = false;
    opts.arbiters = Some(1);
    let outcome = run(Plan::parse("stall", profile).unwrap(), profile, &opts).unwrap();
    let report = &outcome.summary["requests"]["state_report"];
    let corrected = report["latency_ms"]["p99"].as_f64().unwrap();
    let uncorrected = report["service_time_ms"]["p99"].as_f64().unwrap();
    assert!(report["count"].as_u64().unwrap() >= 280, "{report:#}");
    assert!(corrected >= 500.0, "the stall must show from the intended send time: {report:#}");
    assert!(uncorrected < 200.0, "service time hides it (only one request waited): {report:#}");
    assert!(report["service_time_ms"]["max"].as_f64().unwrap() >= 900.0, "{report:#}");
}

#[test]
fn every_shipped_profile_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with('#'), "{} opens with a comment saying what it models", path.display());
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            Plan::parse(&name, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen.push(name);
        }
    }
    seen.sort();
    for want in ["ci", "mp-25k", "quickstart", "rate-state-report", "site-150k", "storm-175k"] {
        assert!(seen.iter().any(|s| s == want), "profiles/{want}.toml missing: {seen:?}");
    }
}

/// A run whose generator fell behind past the profile's bound says so: exit 4, and the summary
/// and console say the figures describe the generator; `--allow-late` exits as the thresholds
/// say. (The bound here is one nanosecond: no timer fires that exactly.)
#[test]
fn a_generator_bound_run_exits_4_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let text = SMALL.replace("[run]\n", "[run]\nmax_lateness_p99_ms = 0.000001\n");
    for allow_late in [false, true] {
        let dir = tmp.path().join(format!("late-{allow_late}"));
        let plan = Plan::parse("late", &text).unwrap();
        assert_eq!(plan.max_lateness_p99_ms, 0.000001);
        let outcome = run(plan, &text, &Options { allow_late, ..options(&dir) }).unwrap();
        let s = &outcome.summary;
        assert_eq!(s["generator"]["behind"], true, "{s:#}");
        assert_eq!(s["verification"]["exact"], true, "{s:#}");
        let console = loadgen::results::console_summary(s);
        assert!(console.contains("GENERATOR-BOUND"), "{console}");
        if allow_late {
            assert_eq!(outcome.exit, EXIT_OK);
        } else {
            assert_eq!(outcome.exit, EXIT_GENERATOR);
            assert_eq!(s["exit"], EXIT_GENERATOR, "the summary records the exit");
            assert!(console.contains("exit 4"), "{console}");
        }
    }
}

/// Clients that sign with the bare padding (no DigestInfo, as some clients sign) against the
/// embedded backend, which then requires signing: exact, every client's key kept.
#[test]
fn a_signing_run_in_process_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = format!("{}\n[signing]\nenabled = true\npadding = \"bare\"\nkeys = 4\n", SMALL);
    let opts = Options {
        out: Some(tmp.path().to_owned()),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small-signed", &profile).unwrap(), &profile, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    let signing = &outcome.summary["signing"];
    assert_eq!(
        (signing["on"].as_bool(), signing["keys"].as_u64(), signing["padding"].as_str()),
        (Some(true), Some(4), Some("Bare"))
    );
    let kept = std::fs::metadata(tmp.path().join("backend-data/mp/keys.log")).unwrap().len();
    assert_eq!(kept, 60 * 300);
    for kind in ["registration", "policy_assignments", "state_report"] {
        assert_eq!(outcome.summary["requests"][kind]["errors"], 0, "{kind}");
    }
}

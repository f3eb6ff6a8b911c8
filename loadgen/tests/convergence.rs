//! Compliance convergence against each party's own record: the clients' (when the answer to the
//! Report with their results came), the backend's (when StateSys applied each client's results,
//! `GET /api/v1/clients/<id>`) and the view's (when the Update Status summarization that first
//! counted each client published). The run's figures must be exactly the k-th of those times.

use std::time::Duration;

use loadgen::convergence::{PERCENTS, rank};
use loadgen::profile::Plan;
use loadgen::run::{EXIT_THRESHOLD, Options, run};
use loadgen::transport::get_json;
use serde_json::Value;

mod common;

/// 60 clients; the sync at 10m; every client has scanned and reported by about 35m, and the
/// summarizer (every 5m) has shown them all well before the run ends at 60m.
const PROFILE: &str = r#"
[population]
clients = 60
seed = 5
ad_sites = ["CM12-R2-PS1"]
subnets = ["192.168.2.0/24"]
[client]
policy_poll = "10m"
reporting_cycle = "2m"
scan_window = "8m"
scan_duration = "1m"
[run]
time_scale = 600
duration = "60m"
ramp_up = "2m"
[[event]]
at = "10m"
sync = { new_updates = 4, superseded = 1 }
[transport]
connections = 4
[thresholds]
"convergence.t95" = "< 1h"
"convergence.acknowledged.t100" = "< 10s"
"#;

/// The `k`-th smallest of `times` (1-based), if there are that many.
fn kth(times: &[f64], k: u64) -> Option<f64> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(k.max(1) as usize - 1).copied()
}

fn assert_stage(stage: &Value, times: &[f64], n: u64, what: &str) {
    assert_eq!(stage["clients"].as_u64(), Some(times.len() as u64), "{what}: {stage:#}");
    for p in PERCENTS {
        assert_eq!(stage[format!("t{p}")].as_f64(), kth(times, rank(p, n)), "{what} t{p}");
    }
}

#[test]
fn convergence_figures_are_exactly_each_partys_own_times() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = backend::server::Config::new(tmp.path().join("backend"));
    config.time_scale = 600.0;
    config.site.schedules.update_status = Duration::from_secs(300);
    let server = common::Backend::start(config);
    let base = format!("http://{}", server.addr);
    let plan = Plan::parse("convergence", PROFILE).unwrap();
    let opts = Options {
        target: Some(base.clone()),
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(plan.clone(), PROFILE, &opts).unwrap();
    // One threshold is meant to fail (below): exit 1, with exact verification.
    assert_eq!(outcome.exit, EXIT_THRESHOLD, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    let summary = &outcome.summary;
    let c = &summary["convergence"][0];
    let version = c["content_version"].as_u64().unwrap() as u32;
    let scanned: Vec<u64> =
        outcome.truths.iter().filter(|t| t.scanned.is_some_and(|v| v >= version)).map(|t| t.index).collect();
    let n = scanned.len() as u64;
    assert_eq!(n, 60, "every client rescanned after the sync");
    assert_eq!(c["clients"].as_u64(), Some(n));

    // (a) The clients' record: the first acknowledgement reaching the sync's version.
    let sync_at = summary["syncs"][0]["answered_simulated_seconds"].as_f64().unwrap();
    let acked: Vec<f64> =
        outcome.acks.iter().filter(|a| a.from < version && version <= a.to).map(|a| a.at - sync_at).collect();
    assert!(acked.iter().all(|&t| t > 0.0));
    assert_stage(&c["acknowledged"], &acked, n, "acknowledged");

    // (b) and (c): the backend's record of each client, and of the sync.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (synced, clients) = rt.block_on(async move {
        let conv = get_json(&base, "/api/v1/convergence").await.unwrap();
        let synced = conv["Syncs"][0]["SyncMicros"].as_i64().unwrap();
        let site = backend::site::Site::default_site();
        let mut clients = Vec::new();
        for &index in &scanned {
            let id = loadgen::sim::identity(&plan, index);
            let guid = backend::mp::sms_id(&site, &id.netbios_name, &id.fqdn);
            clients.push(get_json(&base, &format!("/api/v1/clients/GUID:{guid}")).await.unwrap());
        }
        (synced, clients)
    });
    let since = |micros: i64| (micros - synced) as f64 / 1e6;
    let seen: Vec<&Value> = clients.iter().map(|c| &c["Convergence"]).collect();
    assert!(
        seen.iter().all(|s| s["ContentVersion"] == version && s["CountedVersion"] == version),
        "{seen:#?}"
    );
    let applied: Vec<f64> = seen.iter().map(|s| since(s["AppliedMicros"].as_i64().unwrap())).collect();
    let visible: Vec<f64> = seen.iter().map(|s| since(s["CountedMicros"].as_i64().unwrap())).collect();
    assert_stage(&c["applied"], &applied, n, "applied");
    assert_stage(&c["visible"], &visible, n, "visible");
    // Each client was shown after it was applied, by a summarization on the 5-minute schedule.
    assert!(applied.iter().zip(&visible).all(|(a, v)| a < v), "{applied:?} {visible:?}");
    let t100 = c["visible"]["t100"].as_f64().unwrap();
    assert!(t100 < 3600.0, "{t100}");

    // The thresholds judged the same figures: visible t95 under an hour passes; every client
    // acknowledged within 10 site seconds of the sync cannot (they poll every 10 minutes).
    let thresholds = summary["thresholds"].as_array().unwrap();
    let t95 = thresholds.iter().find(|t| t["metric"] == "convergence.t95").unwrap();
    assert_eq!((t95["actual"].as_f64(), &t95["passed"]), (c["visible"]["t95"].as_f64(), &Value::Bool(true)));
    let ack = thresholds.iter().find(|t| t["metric"] == "convergence.acknowledged.t100").unwrap();
    assert_eq!(ack["passed"], false);
    assert!(ack["actual"].as_f64().unwrap() > 10.0);
}

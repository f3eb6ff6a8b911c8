//! The null MP answers what a run sends, on both wires, so a run against it has no errors: the
//! closed model's every request kind (registration, policy, body, location, catalog, Reports)
//! and the open model's Reports. Real sockets; the sink runs in this process.

use std::net::SocketAddr;
use std::path::Path;

use loadgen::profile::Plan;
use loadgen::run::{Options, run};

mod common;

const CLOSED: &str = r#"
[population]
clients = 40
seed = 5
[client]
policy_poll = "10m"
reporting_cycle = "2m"
scan_window = "10m"
scan_duration = "1m"
[run]
time_scale = 600
duration = "30m"
ramp_up = "1m"
[transport]
wire = "WIRE"
connections = 4
"#;

const OPEN: &str = r#"
[population]
clients = 100
[run]
time_scale = 1
duration = "2s"
[transport]
wire = "WIRE"
connections = 8
[open_model]
rate = 200
messages_per_report = 150
"#;

fn sink() -> SocketAddr {
    common::sink(None)
}

fn options(out: &Path, target: SocketAddr) -> Options {
    Options {
        target: Some(format!("http://{target}")),
        out: Some(out.to_owned()),
        shard: None,
        verify: false,
        progress: false,
        history: None,
        arbiters: Some(1),
        allow_late: true,
        ..Options::default()
    }
}

#[test]
fn every_request_a_run_sends_is_answered_on_both_wires() {
    let target = sink();
    let tmp = tempfile::tempdir().unwrap();
    for wire in ["ccm", "plain"] {
        for (name, profile) in [("closed", CLOSED), ("open", OPEN)] {
            let text = profile.replace("WIRE", wire);
            let plan = Plan::parse(name, &text).unwrap();
            let outcome =
                run(plan, &text, &options(&tmp.path().join(format!("{name}-{wire}")), target)).unwrap();
            let s = &outcome.summary;
            let requests = s["requests"].as_object().unwrap();
            let errors: u64 = requests.values().map(|k| k["errors"].as_u64().unwrap()).sum();
            assert_eq!(errors, 0, "{name} on {wire}: {s:#}");
            assert!(requests["state_report"]["count"].as_u64().unwrap() > 0, "{name} on {wire}: {s:#}");
            for (kind, k) in requests {
                let build = k["generator_build_us"].as_f64().unwrap_or(0.0);
                assert!(build > 0.0, "{kind} on {wire}: the generator's build time per request: {k:#}");
            }
            if name == "closed" {
                for kind in ["registration", "policy_assignments", "policy_body", "wsus_location", "catalog"]
                {
                    assert!(requests[kind]["count"].as_u64().unwrap() > 0, "{kind} on {wire}: {s:#}");
                }
            }
            assert_eq!(s["state_messages"]["sent"], s["state_messages"]["acknowledged"], "{s:#}");
        }
    }
}

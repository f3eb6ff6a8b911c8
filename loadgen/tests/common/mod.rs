//! What the load-run test binaries share: a small site profile and a run of it against the
//! embedded backend that must exit 0 with exact verification.

use std::path::Path;

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};
use serde_json::Value;

pub(crate) const SMALL: &str = r#"
# A small site for the tests: 40 clients, short timers, a sync, 40 simulated minutes at 600x.
[population]
clients = 40
seed = 21
ad_sites = ["CM12-R2-PS1", "BRANCH-01"]
subnets = ["192.168.2.0/24", "10.1.0.0/16"]
[client]
policy_poll = "10m"
reporting_cycle = "2m"
scan_window = "8m"
scan_duration = "1m"
[run]
time_scale = 600
duration = "40m"
ramp_up = "2m"
[[event]]
at = "10m"
sync = { new_updates = 4, superseded = 1 }
[transport]
connections = 4
"#;

pub(crate) fn run_small(dir: &Path, shard: Option<(u64, u64)>) -> Value {
    let opts = Options {
        out: Some(dir.to_owned()),
        shard,
        arbiters: Some(2),
        // What these tests check is not the generator's pace (a shared CI machine).
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small", SMALL).unwrap(), SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["exact"], true);
    outcome.summary
}

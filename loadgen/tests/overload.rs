//! Overload (issue 7 §3), short: Reports offered at three times what the embedded StateSys may
//! apply. The relay must answer 503 with Retry-After past its high-water mark, the clients wait
//! and send again, and once the arrivals stop everything acknowledged is applied: verification
//! exact, and every Report offered acknowledged in the end.

use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};

const OVERLOAD: &str = r#"
[population]
clients = 500
seed = 5
[run]
time_scale = 1
duration = "4s"
[transport]
wire = "plain"
connections = 8
[open_model]
rate = 40                 # x 150 = 6,000 state messages a second...
messages_per_report = 150
[backend]
statesys_rate = 2000      # ...against 2,000 a second: 3x
high_water_files = 1
retry_after = 1
statesys_pause = 0
"#;

#[test]
fn three_times_capacity_is_refused_retried_and_applied_in_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        target: None,
        out: Some(tmp.path().to_owned()),
        shard: None,
        verify: true,
        progress: false,
        history: None,
        arbiters: Some(1),
        // What these tests check is not the generator's pace (a shared CI machine).
        allow_late: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("overload", OVERLOAD).unwrap(), OVERLOAD, &opts).unwrap();
    let s = &outcome.summary;
    assert_eq!(outcome.exit, EXIT_OK, "{s:#}");
    assert_eq!(s["verification"]["exact"], true);
    let busy = s["backend"]["busy_answers"].as_u64().unwrap();
    assert!(busy > 10, "the relay pushed back ({busy} 503s): {s:#}");
    assert!(s["backend"]["peak_backlog_files"].as_u64().unwrap() <= 4, "backlog bounded: {s:#}");
    let offered = 40 * 4 * 150;
    let acked = s["state_messages"]["acknowledged"].as_u64().unwrap();
    assert!(acked as f64 >= 0.97 * offered as f64, "retries got (nearly) all {offered} through: {acked}");
    assert_eq!(s["backend"]["records_processed"], acked, "every acknowledged message applied");
}

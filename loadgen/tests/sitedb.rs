//! `--verify-sql`: a run against the embedded backend keeping a real PostgreSQL site database,
//! whose views are compared with the clients' truth; and the comparison fails when the database
//! says something else.

mod common;
#[path = "../../backend/tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use common::SMALL;
use loadgen::profile::Plan;
use loadgen::run::{EXIT_OK, Options, run};

#[test]
fn the_site_database_holds_the_clients_truth() {
    let Some(url) = postgres::database("loadgen_verify_sql") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        database: Some(url.clone()),
        verify_sql: true,
        ..Options::default()
    };
    let outcome = run(Plan::parse("small-sql", SMALL).unwrap(), SMALL, &opts).unwrap();
    assert_eq!(outcome.exit, EXIT_OK, "{:#}", outcome.summary);
    assert_eq!(outcome.summary["verification"]["sql"], true, "{:#}", outcome.summary);
    let verify: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("run/verify.json")).unwrap()).unwrap();
    assert_eq!(verify["sql"]["exact"], true, "{verify:#}");

    // The same comparison against a database that says otherwise fails, naming the view.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (pg, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        pg.batch_execute(
            "UPDATE sumstorm_update_status SET status = 3 WHERE status = 2;
             UPDATE sumstorm_update_summary SET num_missing = num_missing + 1",
        )
        .await
        .unwrap();
        let expected = &verify["expected"];
        let (differences, _) =
            loadgen::verify::verify_sql(&url, None, expected, std::time::Duration::ZERO).await.unwrap();
        assert!(differences.iter().any(|d| d.contains("v_Update_ComplianceStatusAll")), "{differences:?}");
        assert!(differences.iter().any(|d| d.contains("v_Update_ComplianceSummary")), "{differences:?}");
    });
}

//! The site database against a real PostgreSQL server: the views equal the API's summaries and
//! each client's truth after Reports are relayed and summarized; Microsoft's documented sample
//! query runs unchanged; a restart keeps every `ResourceID`; the database away for 10 s mid-run
//! loses nothing and catches up; tables lost as in a database crash are loaded again; a wrong URL
//! stops the start with a clear error.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, postgres};
use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp};
use serde_json::Value;

const RELAY: [(&str, &str); 2] = [("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")];

fn client(i: u32) -> Guid {
    Guid(0x5157_0000_0000_4000_8000_0000_0000_0000 | u128::from(i))
}

/// Client `i`'s Report: a scan (501) and a state for each of `updates` (500), the state and time
/// depending on `round`.
fn report(i: u32, updates: &[Guid], round: u32, update_source: Guid) -> Vec<u8> {
    let mut w = ReportWriter::new();
    let netbios = format!("PC{i:04}");
    w.begin(
        &ReportIdentity {
            client: client(i),
            netbios_name: &netbios,
            client_version: "5.00.9128.1000",
            priority: 5,
        },
        Timestamp(0),
    );
    let base = 1_795_000_000_000_000 + i64::from(round) * 60_000_000;
    let mut serial = u64::from(round) * 1000;
    serial += 1;
    w.push(&OutMessage {
        time: Timestamp(base),
        serial,
        topic_id: update_source,
        topic_style: GuidStyle::UpperBraced,
        topic_type: 501,
        id_type: 3,
        state: 3,
        criticality: 0,
        params: &[Param::Number(1)],
    });
    for (k, u) in updates.iter().enumerate() {
        serial += 1;
        w.push(&OutMessage {
            time: Timestamp(base + k as i64),
            serial,
            topic_id: *u,
            topic_style: GuidStyle::Lower,
            topic_type: 500,
            id_type: 3,
            state: (i + k as u32 + round) % 4,
            criticality: 0,
            params: &[Param::Number(200)],
        });
    }
    w.finish().to_vec()
}

fn relay(server: &Server, body: &[u8]) {
    let (status, _, reply) = server.call("POST", "/ccm_system/request", &RELAY, body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

fn pg(url: &str) -> (tokio::runtime::Runtime, tokio_postgres::Client) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    });
    (runtime, client)
}

/// Waits until the mirror has applied every frame StateSys wrote, the summaries included.
fn settled(server: &Server) -> Value {
    server.json("POST", "/api/v1/drain?timeout=60", b"");
    server.json("POST", "/api/v1/summarize", b"");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = server.json("GET", "/api/v1/status", b"");
        let db = &status["Database"];
        // Every change the store holds is framed and applied (the summaries follow within a
        // pass of the mirror's loop).
        if db["CaughtUp"] == true {
            std::thread::sleep(Duration::from_millis(500));
            return status;
        }
        assert!(Instant::now() < deadline, "the mirror never caught up: {status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every client's states as the API has them: (netbios, update) → status.
fn api_truth(server: &Server, clients: u32) -> HashMap<(String, String), i64> {
    let mut truth = HashMap::new();
    for i in 0..clients {
        let c = server.json("GET", &format!("/api/v1/clients/{}", client(i)), b"");
        for u in c["Updates"].as_array().unwrap() {
            let status = u["Status"].as_i64().unwrap();
            truth.insert((format!("PC{i:04}"), u["UpdateID"].as_str().unwrap().to_uppercase()), status);
        }
    }
    truth
}

/// The database's: every (client, update) with a status above "not required" (what
/// `v_UpdateComplianceStatus` holds), and every other status through `v_Update_ComplianceStatusAll`.
fn db_truth(
    runtime: &tokio::runtime::Runtime,
    db: &tokio_postgres::Client,
) -> HashMap<(String, String), i64> {
    let rows = runtime
        .block_on(db.query(
            "SELECT s.Netbios_Name0, u.CI_UniqueID, a.Status::bigint
               FROM v_Update_ComplianceStatusAll a
               JOIN v_R_System s ON s.ResourceID = a.ResourceID
               JOIN v_UpdateInfo u ON u.CI_ID = a.CI_ID
              WHERE a.LastStatusCheckTime IS NOT NULL",
            &[],
        ))
        .unwrap();
    rows.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect()
}

fn summaries_match(server: &Server, runtime: &tokio::runtime::Runtime, db: &tokio_postgres::Client) {
    let api = server.json("GET", "/api/v1/summary/updates", b"");
    let rows = runtime
        .block_on(db.query(
            "SELECT u.CI_UniqueID, s.NumTotal, s.NumUnknown, s.NumNotApplicable, s.NumMissing, s.NumPresent
               FROM v_Update_ComplianceSummary s JOIN v_UpdateInfo u ON u.CI_ID = s.CI_ID",
            &[],
        ))
        .unwrap();
    let db: HashMap<String, [i32; 5]> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]))
        .collect();
    let api = api.as_array().unwrap();
    assert_eq!(db.len(), api.len());
    for u in api {
        let key = u["UpdateID"].as_str().unwrap().to_uppercase();
        let n = |k: &str| u[k].as_i64().unwrap() as i32;
        assert_eq!(
            db[&key],
            [n("NumTotal"), n("NumUnknown"), n("NumNotApplicable"), n("NumMissing"), n("NumPresent")],
            "{key}"
        );
    }
}

#[test]
fn the_views_hold_the_site_s_truth_through_a_restart_and_an_outage() {
    let Some(url) = postgres::database("sumstorm_views") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let start = |url: &str| {
        let url = url.to_owned();
        Server::start(&data, move |c| c.database = Some(url))
    };
    let server = start(&url);
    let catalog = server.json("GET", "/api/v1/catalog", b"");
    let site = server.json("GET", "/api/v1/site", b"");
    let update_source: Guid = site["UpdateSourceID"].as_str().unwrap().parse().unwrap();
    let updates: Vec<Guid> = catalog["Updates"]
        .as_array()
        .unwrap()
        .iter()
        .take(40)
        .map(|u| u["UpdateID"].as_str().unwrap().parse().unwrap())
        .collect();
    let clients = 24;
    for i in 0..clients {
        relay(&server, &report(i, &updates, 0, update_source));
    }
    settled(&server);
    let (runtime, db) = pg(&url);
    let truth = api_truth(&server, clients);
    assert_eq!(truth.len(), clients as usize * updates.len());
    assert_eq!(db_truth(&runtime, &db), truth);
    summaries_match(&server, &runtime, &db);
    // v_UpdateComplianceStatus holds the required and installed rows, as the product's does.
    let required: i64 = runtime
        .block_on(db.query_one("SELECT count(*) FROM v_UpdateComplianceStatus WHERE Status IN (2, 3)", &[]))
        .unwrap()
        .get(0);
    assert_eq!(required, truth.values().filter(|&&s| s > 1).count() as i64);
    // Microsoft's documented sample (software updates, discovery and status views) runs unchanged.
    runtime
        .block_on(db.query(
            "SELECT v_UpdateInfo.ArticleID, v_UpdateInfo.BulletinID, v_UpdateInfo.Title,
               v_StateNames.StateName, v_UpdateComplianceStatus.LastStatusCheckTime,
               v_UpdateComplianceStatus.LastEnforcementMessageTime
             FROM v_R_System INNER JOIN v_UpdateComplianceStatus ON
               v_R_System.ResourceID = v_UpdateComplianceStatus.ResourceID INNER JOIN v_UpdateInfo ON
               v_UpdateComplianceStatus.CI_ID = v_UpdateInfo.CI_ID INNER JOIN v_StateNames ON
               v_UpdateComplianceStatus.LastEnforcementMessageID = v_StateNames.StateID
             WHERE (v_StateNames.TopicType = 402) AND (v_R_System.Netbios_Name0 LIKE 'PC0001')
             ORDER BY v_StateNames.StateName, v_UpdateInfo.DateLastModified",
            &[],
        ))
        .unwrap();
    // The scan state, per client.
    let scanned: i64 = runtime
        .block_on(db.query_one("SELECT count(*) FROM v_UpdateScanStatus WHERE LastScanState = 3", &[]))
        .unwrap()
        .get(0);
    assert_eq!(scanned, i64::from(clients));
    let ids = |db: &tokio_postgres::Client| -> HashMap<String, i32> {
        let rows =
            runtime.block_on(db.query("SELECT Netbios_Name0, ResourceID FROM v_R_System", &[])).unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let before = ids(&db);
    assert_eq!(before.len(), clients as usize);
    drop(server);

    // A restart: the same ResourceIDs, the same truth.
    let server = start(&url);
    settled(&server);
    assert_eq!(ids(&db), before);
    assert_eq!(db_truth(&runtime, &db), api_truth(&server, clients));

    // The database away for 10 s while Reports keep coming: nothing lost, it catches up.
    let (runtime2, admin) = pg(&url.replace("/sumstorm_views", "/postgres"));
    runtime2
        .block_on(admin.batch_execute(
            "ALTER DATABASE sumstorm_views ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'sumstorm_views';",
        ))
        .unwrap();
    let away = Instant::now();
    for i in 0..clients {
        relay(&server, &report(i, &updates, 1, update_source));
    }
    server.json("POST", "/api/v1/drain?timeout=60", b"");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(away.elapsed()));
    let status = server.json("GET", "/api/v1/status", b"");
    assert_eq!(status["Database"]["Connected"], false, "{status:#}");
    assert!(status["Database"]["LagSeconds"].as_f64().unwrap() > 5.0, "{status:#}");
    runtime2.block_on(admin.batch_execute("ALTER DATABASE sumstorm_views ALLOW_CONNECTIONS true")).unwrap();
    let (runtime, db) = pg(&url);
    settled(&server);
    let truth = api_truth(&server, clients);
    assert_eq!(db_truth(&runtime, &db), truth);
    assert!(truth.iter().any(|((n, _), s)| n == "PC0000" && *s == 1), "round 1's states are there");
    summaries_match(&server, &runtime, &db);

    // The database server loses its unlogged tables (as crash recovery empties them): the mirror
    // finds its load marker gone when it reconnects, and loads everything again.
    runtime
        .block_on(db.batch_execute(
            "TRUNCATE sumstorm_mirror, sumstorm_client, sumstorm_update_status, sumstorm_update_summary;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = 'sumstorm_views' AND pid <> pg_backend_pid();",
        ))
        .unwrap();
    let loads = server.json("GET", "/api/v1/status", b"")["Database"]["FullLoads"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.json("GET", "/api/v1/status", b"")["Database"]["FullLoads"].as_u64() == Some(loads) {
        assert!(Instant::now() < deadline, "no full load after the tables were lost");
        std::thread::sleep(Duration::from_millis(100));
    }
    settled(&server);
    assert_eq!(db_truth(&runtime, &db), api_truth(&server, clients));
    summaries_match(&server, &runtime, &db);
}

#[test]
fn a_wrong_database_url_stops_the_start_and_says_what_failed() {
    let Some(url) = postgres::database("sumstorm_wrong") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let wrong = url.replace("/sumstorm_wrong", "/no_such_database");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backend"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--database", &wrong])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the site database") && stderr.contains("no_such_database"),
        "{stderr}"
    );
}

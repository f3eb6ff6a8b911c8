//! Kill -9 at random moments: every acknowledged state message is applied, exactly once.
//!
//! Clients send Reports one after another (each a state for one update with a rising serial and
//! time) and, as real clients do, resend a Report that was not acknowledged after the backend
//! comes back. The real `backend` binary is killed with SIGKILL several times mid-stream and
//! restarted on the same data directory. At the end every client's store state must equal what
//! it last reported, per update, with the right serials.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp};
use serde_json::Value;

const CLIENTS: u128 = 6;
const UPDATES: usize = 5;
const KILLS: usize = 6;

fn start(data: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backend"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--checkpoint-ms",
            "30",
            "--statesys-pause",
            "0",
            "--data-dir",
        ])
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the backend binary starts");
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

fn report(client: Guid, update: Guid, serial: u64, state: u32) -> String {
    let mut w = ReportWriter::new();
    w.begin(
        &ReportIdentity { client, netbios_name: "PC", client_version: "5.00.7958.1000", priority: 5 },
        Timestamp(0),
    );
    w.push(&OutMessage {
        time: Timestamp(1_390_238_335_000_000 + serial as i64 * 1_000_000),
        serial,
        topic_id: update,
        topic_style: GuidStyle::Lower,
        topic_type: 500,
        id_type: 3,
        state,
        criticality: 0,
        params: &[Param::Number(200)],
    });
    String::from_utf8(w.finish().to_vec()).unwrap()
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(tmp.path());
    let catalog: Value =
        serde_json::from_slice(&common::call(addr, "GET", "/api/v1/catalog", &[], b"").unwrap().2).unwrap();
    let updates: Vec<Guid> =
        (0..UPDATES).map(|i| catalog["Updates"][i]["UpdateID"].as_str().unwrap().parse().unwrap()).collect();
    let target = Arc::new(Mutex::new(addr));
    let done = Arc::new(AtomicBool::new(false));
    // Each client: Reports 1..=n, one at a time, each resent until acknowledged.
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|c| {
            let (target, done, updates) = (Arc::clone(&target), Arc::clone(&done), updates.clone());
            std::thread::spawn(move || {
                let client = Guid(0xC11E_0000_0000_0000_0000_0000_0000_0000 | c);
                let mut serial = 0u64;
                let mut acked = 0u64;
                while !done.load(Ordering::Relaxed) || acked < serial {
                    if acked == serial {
                        serial += 1;
                    }
                    let update = updates[(serial as usize + c as usize) % UPDATES];
                    let body = report(client, update, serial, 1 + (serial % 3) as u32);
                    let addr = *target.lock().unwrap();
                    let headers = [("Content-Type", "text/xml"), ("X-Target-Endpoint", "MP_RelayEndpoint")];
                    match common::call(addr, "POST", "/ccm_system/request", &headers, body.as_bytes()) {
                        Ok((200, _, _)) => acked = serial,
                        // Refused, reset, 503 while coming back: retry, as a client's queue does.
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                (client, serial)
            })
        })
        .collect();
    // Kill at random moments (a cheap LCG is random enough for timing).
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..KILLS {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(50 + (x >> 33) % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        let (next, addr) = start(tmp.path());
        child = next;
        *target.lock().unwrap() = addr;
    }
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    let sent: Vec<(Guid, u64)> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let addr = *target.lock().unwrap();
    let (status, _, body) = common::call(addr, "POST", "/api/v1/drain?timeout=60", &[], b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let deadline = Instant::now() + Duration::from_secs(30);
    for (client, last) in sent {
        assert!(last > 3, "each client got several Reports through ({last})");
        // What the client last reported per update: the highest serial that named it.
        let mut want = std::collections::HashMap::new();
        for serial in 1..=last {
            let c = (client.0 & 0xFF) as usize;
            want.insert(updates[(serial as usize + c) % UPDATES], (serial, 1 + (serial % 3)));
        }
        let json = loop {
            let (status, _, body) =
                common::call(addr, "GET", &format!("/api/v1/clients/{client}"), &[], b"").unwrap();
            if status == 200 || Instant::now() > deadline {
                break serde_json::from_slice::<Value>(&body).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(json["LastSerialNumber"], last, "{client}");
        assert_eq!(json["MissingSerialRanges"], serde_json::json!([]), "{client}: every serial arrived");
        let rows = json["Updates"].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{client}");
        for row in rows {
            let id: Guid = row["UpdateID"].as_str().unwrap().parse().unwrap();
            let (serial, state) = want[&id];
            assert_eq!(
                (row["SerialNumber"].as_u64(), row["Status"].as_u64()),
                (Some(serial), Some(state)),
                "{client} {id:?}"
            );
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

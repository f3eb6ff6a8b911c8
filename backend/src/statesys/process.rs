//! One Report into the store: scan it ([`Scanned`]), resolve each valid record against the
//! catalog, and apply the Report's records under one lock, only once the whole Report scanned
//! well (a bad file applies nothing). The relay scans every Report it accepts into a
//! [`Scanned`] too, and co-located it hands that to StateSys in memory ([`super::handoff`]), so a
//! relayed Report is scanned once, not read back and scanned again.
//!
//! A record whose `MessageTime` is more than [`MAX_CLOCK_SKEW`] past the site time its Report
//! was accepted at is invalid: a client's clock may be off by hours, but a record from the
//! future would otherwise stay in force forever (nothing newer could replace it) and keep its
//! client from ever ageing out. A Report with no usable record creates no client.

use std::collections::HashMap;

use protocol::Guid;
use protocol::report::{self, ReportHeader, ReportSink, ScanError, StateMessage};
use protocol::statenames::{TOPIC_SCAN, TOPIC_UPDATE_DETECTION};

use super::state::{Applied, Record, Target};
use super::store::Store;
use crate::site::Catalog;

/// How far past the site time a `MessageTime` may be.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The latest usable `MessageTime` (µs) for a Report accepted at site time `accepted` (µs).
pub fn not_after(accepted: i64) -> i64 {
    accepted.saturating_add(MAX_CLOCK_SKEW.as_micros() as i64)
}

/// Update ID → dense catalog index.
#[derive(Debug, Clone, Default)]
pub struct UpdateIndex(HashMap<Guid, u32>);

impl UpdateIndex {
    pub fn new(catalog: &Catalog) -> UpdateIndex {
        UpdateIndex(catalog.updates().iter().enumerate().map(|(i, u)| (u.id, i as u32)).collect())
    }

    pub fn get(&self, id: Guid) -> Option<u32> {
        self.0.get(&id).copied()
    }

    /// Adds or moves an update (tests, and catalogs built by hand).
    pub fn insert(&mut self, id: Guid, index: u32) {
        self.0.insert(id, index);
    }
}

/// What processing one Report did, for StateSys's counters and batch log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Processed {
    /// Records in the Report.
    pub records: u64,
    /// Records that could not be used: unusable fields, or a Report without a client ID.
    pub invalid: u64,
    /// Valid 500 records for updates the catalog does not have (counted, not stored).
    pub unknown_updates: u64,
    pub applied: Applied,
}

impl std::ops::AddAssign for Processed {
    fn add_assign(&mut self, o: Processed) {
        self.records += o.records;
        self.invalid += o.invalid;
        self.unknown_updates += o.unknown_updates;
        self.applied += o.applied;
    }
}

/// One state message of a Report, as StateSys needs it: owned and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Whether the record is usable (`StateMessage::is_valid`).
    pub valid: bool,
    pub time: i64,
    pub serial: u64,
    pub topic_type: u32,
    pub topic_id: Guid,
    pub state: u32,
    /// The first Param of a scan state message (topic type 501): the content version.
    pub content_version: u32,
}

/// A Report as one scan leaves it: who sent it and its state messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub client: Option<Guid>,
    /// `NetBIOSName`, trimmed.
    pub netbios: String,
    pub messages: Vec<Message>,
}

impl<'a> ReportSink<'a> for Scanned {
    fn on_header(&mut self, h: &ReportHeader<'a>) {
        self.client = h.client;
        self.netbios.clear();
        self.netbios.push_str(h.netbios_name.as_deref().unwrap_or_default().trim());
    }

    fn on_state_message(&mut self, m: &StateMessage<'a>) {
        let content_version = if m.topic_type == TOPIC_SCAN {
            m.params.get(0).and_then(|p| p.trim().parse().ok()).unwrap_or(0)
        } else {
            0
        };
        self.messages.push(Message {
            valid: m.is_valid(),
            time: m.time.0,
            serial: m.serial,
            topic_type: m.topic_type,
            topic_id: m.topic_id,
            state: m.state,
            content_version,
        });
    }
}

impl Scanned {
    /// Room for the state messages a Report of `bytes` usually holds (one per 256 bytes or
    /// more), so a fresh one does not grow as it fills.
    pub fn for_report_of(bytes: usize) -> Scanned {
        Scanned { messages: Vec::with_capacity(bytes / 256), ..Scanned::default() }
    }

    /// Scans `report` into this one (its buffers reused).
    pub fn scan(&mut self, report: &[u8]) -> Result<(), ScanError> {
        self.clear();
        report::scan(report, self).map(|_| ())
    }

    /// [`Scanned::scan`] of text already known to be UTF-8 (the MP's decoded request).
    pub fn scan_str(&mut self, report: &str) -> Result<(), ScanError> {
        self.clear();
        report::scan_str(report, self).map(|_| ())
    }

    fn clear(&mut self) {
        self.client = None;
        self.netbios.clear();
        self.messages.clear();
    }
}

/// Applies a scanned Report; records timed past `not_after` (µs, see [`not_after`]) are
/// invalid. `scratch` is reused between Reports (no allocation per record).
pub fn apply_scanned(
    store: &Store,
    index: &UpdateIndex,
    report: &Scanned,
    scratch: &mut Vec<Record>,
    not_after: i64,
) -> Processed {
    let records = report.messages.len() as u64;
    let Some(client) = report.client else {
        // Without a client ID no record can be attributed.
        return Processed { records, invalid: records, ..Processed::default() };
    };
    scratch.clear();
    let (mut invalid, mut unknown) = (0, 0);
    for m in &report.messages {
        if !m.valid || m.time > not_after {
            invalid += 1;
            continue;
        }
        let target = match m.topic_type {
            TOPIC_UPDATE_DETECTION => match index.get(m.topic_id) {
                Some(index) => Target::Update { index, state: m.state as u8 },
                None => {
                    unknown += 1;
                    continue;
                }
            },
            TOPIC_SCAN => Target::Scan { state: m.state as u8, content_version: m.content_version },
            _ => Target::Other,
        };
        scratch.push(Record { time: m.time, serial: m.serial, target });
    }
    let applied = store.apply(client, &report.netbios, scratch);
    Processed { records, invalid, unknown_updates: unknown, applied }
}

/// Scans `report` (into `scanned`, reused) and applies it (see [`apply_scanned`]). A malformed
/// Report returns the scan error and applies nothing.
pub fn process_report(
    store: &Store,
    index: &UpdateIndex,
    report: &[u8],
    scanned: &mut Scanned,
    scratch: &mut Vec<Record>,
    not_after: i64,
) -> Result<Processed, ScanError> {
    scanned.scan(report)?;
    Ok(apply_scanned(store, index, scanned, scratch, not_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use crate::site::Site;

    /// A catalog holding the fixtures' two update IDs at indexes 0 and 1.
    fn index() -> UpdateIndex {
        let mut index = UpdateIndex::new(&Site::default_site().catalog);
        index.insert("505fda07-b4f3-45fb-83d9-8642554e2773".parse().unwrap(), 0);
        index.insert("4ae85c00-0eaa-4be0-b81b-dbd7053d5fae".parse().unwrap(), 1);
        index
    }

    #[test]
    fn fixtures_apply_as_their_readme_says() {
        let store = Store::new(2, 200);
        let index = index();
        let (mut scanned, mut scratch) = (Scanned::default(), Vec::new());
        let mut process =
            |name: &str| process_report(&store, &index, &fixture(name), &mut scanned, &mut scratch, i64::MAX);
        let three = process("report-three-messages.xml").unwrap();
        assert_eq!((three.records, three.invalid, three.applied.applied), (3, 0, 3));
        let client: Guid = "A1006D0E-CF56-41D1-A006-6330EFC39381".parse().unwrap();
        let (c, row) = store.client(client).unwrap();
        assert_eq!((row[0].state, row[1].state), (2, 3), "505fda07 required, 4ae85c00 installed");
        assert_eq!(c.scan.map(|s| (s.state, s.content_version)), Some((2, 38)));
        assert_eq!(c.netbios_name, "PS1WIN7X64");

        let bad = process("report-bad-records.xml").unwrap();
        assert_eq!((bad.records, bad.invalid, bad.applied.applied), (4, 3, 1));
        let other: Guid = "B2006D0E-CF56-41D1-A006-6330EFC39382".parse().unwrap();
        assert_eq!(store.client(other).unwrap().1[0].state, 3, "505fda07 installed for B2006D0E");

        let clients = store.clients();
        assert!(process("report-truncated.xml").is_err());
        assert_eq!(store.clients(), clients, "a bad file applies nothing");

        // Replaying a file changes nothing.
        let again = process("report-three-messages.xml").unwrap();
        assert_eq!((again.applied.applied, again.applied.stale), (0, 3));
    }

    #[test]
    fn unknown_updates_and_reports_without_a_client() {
        let store = Store::new(0, 200);
        let index = UpdateIndex::new(&Site::default_site().catalog);
        let (mut scanned, mut scratch) = (Scanned::default(), Vec::new());
        let p = process_report(
            &store,
            &index,
            &fixture("report-one-message.xml"),
            &mut scanned,
            &mut scratch,
            i64::MAX,
        )
        .unwrap();
        assert_eq!((p.records, p.unknown_updates, p.applied.applied), (1, 1, 0));
        let anonymous = String::from_utf8(fixture("report-one-message.xml")).unwrap().replace(
            "<ClientID>GUID: A1006D0E-CF56-41D1-A006-6330EFC39381</ClientID>",
            "<ClientID>not an id</ClientID>",
        );
        let p = process_report(&store, &index, anonymous.as_bytes(), &mut scanned, &mut scratch, i64::MAX)
            .unwrap();
        assert_eq!((p.records, p.invalid), (1, 1));
    }
}

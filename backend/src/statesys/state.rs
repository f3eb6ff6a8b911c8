//! What StateSys knows of one client, as plain data: the 24-byte (client, update) state, the
//! scan state, the records StateSys resolves from state messages, and the client row. The store
//! ([`super::store`]) keeps them; the checkpoint, the summary and the site API read them.

use compact_str::CompactString;
use protocol::Guid;

use super::serials::Serials;
use crate::site::Location;

/// "No record yet" in a time field.
pub const NO_TIME: i64 = i64::MIN;

/// One (client, update) state: 24 bytes.
#[derive(Debug, Clone, Copy)]
pub struct UpdateState {
    /// MessageTime of the record in force (µs since the epoch) = LastStatusCheckTime; [`NO_TIME`]
    /// when the client has not reported this update.
    pub time: i64,
    /// LastStatusChangeTime.
    pub changed: i64,
    /// The in-force record's serial, saturated at `u32::MAX` (serials past 4 billion only break
    /// ties between records of the same MessageTime, and then compare equal).
    pub serial: u32,
    /// Topic type 500 state: 0 unknown, 1 not required, 2 required, 3 installed.
    pub state: u8,
    /// Summarization's bookkeeping, not state: the summary bucket this entry had at the last
    /// summarization, and whether it has been marked changed since.
    pub(crate) seen: u8,
    /// Changed since the last checkpoint wrote it (the store's change tracking, not state).
    pub(crate) unsaved: bool,
}

const _: () = assert!(std::mem::size_of::<UpdateState>() == 24);

/// Equal states: the summarization and checkpoint bookkeeping is not part of a state.
impl PartialEq for UpdateState {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.changed, self.serial, self.state) == (o.time, o.changed, o.serial, o.state)
    }
}

impl Eq for UpdateState {}

impl UpdateState {
    pub const EMPTY: UpdateState =
        UpdateState { time: NO_TIME, changed: NO_TIME, serial: 0, state: 0, seen: 0, unsaved: false };

    pub const fn new(time: i64, changed: i64, serial: u32, state: u8) -> UpdateState {
        UpdateState { time, changed, serial, state, seen: 0, unsaved: false }
    }

    pub fn is_known(&self) -> bool {
        self.time != NO_TIME
    }
}

/// The client's last scan state (topic type 501).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanState {
    pub time: i64,
    pub serial: u64,
    pub state: u8,
    /// The content version the scan reported (first Param of a 501 message), 0 if none.
    pub content_version: u32,
}

/// A record ready to apply: resolved from a state message by StateSys, compact and owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub time: i64,
    pub serial: u64,
    pub target: Target,
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Topic type 500 for the catalog update at this dense index.
    Update { index: u32, state: u8 },
    /// Topic type 501.
    Scan { state: u8, content_version: u32 },
    /// A valid record the store keeps no state for (402, 300-302): only its serial counts.
    Other,
}

/// One client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: Guid,
    /// Inline (no allocation of its own) up to 24 bytes, which every NetBIOS name of ASCII
    /// characters fits: a checkpoint reads the names of thousands of clients, and each behind
    /// a pointer of its own was a cache miss (a third of a 1 % checkpoint's time).
    pub netbios_name: CompactString,
    pub scan: Option<ScanState>,
    pub serials: Serials,
    /// The newest MessageTime reported (or site time of a registration or location request),
    /// [`NO_TIME`] before any: what aged status goes by.
    pub last_seen: i64,
    /// Where the client last said it is: what collections go by.
    pub location: Option<Location>,
    /// SUM Delete Aged Status dropped this client's status; it counts again once it reports.
    pub retired: bool,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records that changed the store.
    pub applied: u64,
    /// Records older than, or identical to, what is in force.
    pub stale: u64,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, o: Applied) {
        self.applied += o.applied;
        self.stale += o.stale;
    }
}

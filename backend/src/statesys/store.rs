//! The state store: what StateSys knows of every client.
//!
//! Layout: clients are spread over shards by a hash of their SMS ID; each shard (one mutex) holds
//! its clients in a `Vec` and, for the dense update catalog, one row of [`UpdateState`] per client
//! (`stride` entries of 24 bytes; room for the first 4 MiB of rows taken at once, as address
//! space, then grown by at most a quarter at a time), so a (client, update) state costs at most
//! 32 bytes of memory with slack, and a Report's records for one client touch one lock and one
//! row.
//!
//! Applying a record (flow.md §5): per (client, update) the record with the greatest
//! `MessageTime` is in force, equal times going to the greater serial; an identical or older
//! record changes nothing, so replays and duplicates are harmless and state, time, serial and
//! check time do not depend on delivery order. `LastStatusCheckTime` is the in-force record's
//! MessageTime; `LastStatusChangeTime` moves when a newer record brings a different state (the
//! product's rule, exact when each update's records arrive in order, as StateSys reads a client's
//! files). The scan state (topic type 501) follows the same rule per client.
//!
//! Each shard also carries its part of the summarization ([`super::summary`]): its partial
//! counts and what changed since they were taken, marked as records apply (one byte per state,
//! kept in the padding of [`UpdateState`]), so a summarization after a small change costs in
//! proportion to the change.
//!
//! And each shard tracks what changed since the last checkpoint took it: the clients (a list of
//! slots) and, in each row, the entries (a flag in the padding, and a list of them while they
//! are few, so a checkpoint need not look through whole rows), so a checkpoint
//! ([`super::checkpoint`]) costs in proportion to the change, never the whole store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use compact_str::CompactString;
use protocol::Guid;

use super::convergence::{self, Convergence, Moves, Seen};
use super::serials::Serials;
use super::state::{Applied, Client, NO_TIME, Record, ScanState, Target, UpdateState};
use super::summary::{ShardSummary, SummaryPlan, Tally};
use crate::site::Location;

/// Topic type 501's state "Scan completed".
const SCAN_COMPLETED: u8 = 3;

/// The room each shard takes for its rows at its first client (with 256 shards and 200
/// updates, about 870 clients a shard, 220 k in the store, before rows are ever copied).
const RESERVED_BYTES: usize = 4 << 20;

pub(super) struct Shard {
    index: HashMap<Guid, u32>,
    pub(super) clients: Vec<Client>,
    /// `clients.len() * stride` states, one row per client.
    pub(super) rows: Vec<UpdateState>,
    pub(super) stride: usize,
    pub(super) summary: ShardSummary,
    /// Slots of the clients changed since the last checkpoint, each once...
    unsaved: Vec<u32>,
    /// ...as marked here, one flag per client.
    listed: Vec<bool>,
    /// The entries changed since the last checkpoint (slot, update index), each once, while
    /// they are fewer than a sixteenth of the shard's states; past that (or after a task
    /// changed entries wholesale), `None`: the rows' flags alone say.
    entries: Option<Vec<(u32, u32)>>,
    /// Per client slot, its convergence ([`super::convergence`]), not saved...
    seen: Vec<Seen>,
    /// ...and the slots whose newest completed scan no Update Status summarization counted yet.
    uncounted: Vec<u32>,
}

impl Shard {
    fn slot(&mut self, id: Guid, netbios: &str) -> usize {
        // The MP refuses longer names; anything else (a file dropped in the inbox by hand) is
        // kept within the same bound, never cut inside a character.
        let netbios = protocol::names::clip(netbios, protocol::names::MAX_NAME_BYTES);
        if let Some(&i) = self.index.get(&id) {
            let i = i as usize;
            if self.clients[i].netbios_name != netbios && !netbios.is_empty() {
                self.clients[i].netbios_name = CompactString::from(netbios);
            }
            if self.clients[i].retired {
                self.clients[i].retired = false;
                self.summary.client_changed(i);
            }
            return i;
        }
        let i = self.clients.len();
        self.index.insert(id, i as u32);
        self.clients.push(Client {
            id,
            netbios_name: CompactString::from(netbios),
            scan: None,
            serials: Serials::default(),
            last_seen: NO_TIME,
            location: None,
            retired: false,
        });
        self.summary.client_changed(i);
        self.listed.push(false);
        self.seen.push(Seen::NEW);
        if self.rows.len() + self.stride > self.rows.capacity() {
            // Room for the first `RESERVED_BYTES` of rows at once: address space, not memory
            // (a page is resident once written), and no rows copied while a shard fills (with
            // every Report from a new client, growing step by step copied each shard's rows
            // several times over and faulted in every new copy). Past it, a quarter more at a
            // time, not double: the slack stays under a quarter of a row set.
            let reserved = RESERVED_BYTES / std::mem::size_of::<UpdateState>();
            let more =
                if self.rows.len() < reserved { reserved - self.rows.len() } else { self.rows.len() / 4 };
            self.rows.reserve_exact(more.max(self.stride));
        }
        self.rows.resize(self.rows.len() + self.stride, UpdateState::EMPTY);
        i
    }

    /// Notes an entry newly marked `unsaved`.
    fn note_entry(&mut self, slot: usize, index: usize) {
        let cap = (self.rows.len() / 16).max(1024);
        if let Some(list) = &mut self.entries {
            if list.len() < cap {
                list.push((slot as u32, index as u32));
            } else {
                self.entries = None;
            }
        }
    }

    /// Marks a client changed since the last checkpoint.
    fn touch(&mut self, slot: usize) {
        if !self.listed[slot] {
            self.listed[slot] = true;
            self.unsaved.push(slot as u32);
        }
    }

    /// Widens every row to hold update `index` (the catalog grew with a sync).
    fn widen(&mut self, index: usize) {
        // Never wider than the largest catalog, which the checkpoint loader takes.
        let stride = (index + 1).max((self.stride + 64).min(crate::site::catalog::MAX_UPDATES));
        let mut rows = vec![UpdateState::EMPTY; self.clients.len() * stride];
        for (new, old) in rows.chunks_exact_mut(stride).zip(self.rows.chunks_exact(self.stride.max(1))) {
            new[..old.len()].copy_from_slice(old);
        }
        self.rows = rows;
        self.stride = stride;
    }
}

/// The sharded store. Shared by StateSys's processing threads and the summarizers.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    shift: u32,
    convergence: Convergence,
    /// Entries marked changed since the last [`Store::take_unsaved`] began (about: marks made
    /// while it runs may be counted twice): how large the next checkpoint's frame will be.
    unsaved_entries: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("shards", &self.shards.len()).field("clients", &self.clients()).finish()
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave a half-applied record (fields are set last), so
    // the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// A store of `2^shard_bits` shards with rows for `updates` catalog entries.
    pub fn new(shard_bits: u32, updates: usize) -> Store {
        let shards = (0..1usize << shard_bits)
            .map(|_| {
                Mutex::new(Shard {
                    index: HashMap::new(),
                    clients: Vec::new(),
                    rows: Vec::new(),
                    stride: updates,
                    summary: ShardSummary::default(),
                    unsaved: Vec::new(),
                    listed: Vec::new(),
                    entries: Some(Vec::new()),
                    seen: Vec::new(),
                    uncounted: Vec::new(),
                })
            })
            .collect();
        let convergence = Convergence::new(crate::clock::SiteClock::real_time());
        Store { shards, shift: 64 - shard_bits, convergence, unsaved_entries: AtomicU64::new(0) }
    }

    /// The store, stamping convergence on the site's clock.
    pub fn with_clock(mut self, clock: crate::clock::SiteClock) -> Store {
        self.convergence = Convergence::new(clock);
        self
    }

    /// After each sync, when clients' results were applied and counted.
    pub fn convergence(&self) -> &Convergence {
        &self.convergence
    }

    fn shard(&self, id: Guid) -> &Mutex<Shard> {
        let h = ((id.0 as u64) ^ ((id.0 >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[if self.shift == 64 { 0 } else { (h >> self.shift) as usize }]
    }

    /// Applies one client's records (one Report's worth) under one lock. No records, no change:
    /// a client is never created without a usable record.
    pub fn apply(&self, client: Guid, netbios: &str, records: &[Record]) -> Applied {
        if records.is_empty() {
            return Applied::default();
        }
        let mut guard = lock(self.shard(client));
        let shard = &mut *guard;
        let slot = shard.slot(client, netbios);
        let (mut done, mut marked) = (Applied::default(), 0);
        for r in records {
            let changed = match r.target {
                Target::Update { index, state } => {
                    let index = index as usize;
                    if index >= shard.stride {
                        shard.widen(index);
                    }
                    let stride = shard.stride;
                    let e = &mut shard.rows[slot * stride + index];
                    let serial = u32::try_from(r.serial).unwrap_or(u32::MAX);
                    let newer = !e.is_known() || (r.time, serial) > (e.time, e.serial);
                    if newer {
                        if !e.is_known() || e.state != state {
                            e.changed = r.time;
                        }
                        (e.time, e.serial, e.state) = (r.time, serial, state);
                        let first = !e.unsaved;
                        e.unsaved = true;
                        shard.summary.state_changed(slot, index, e);
                        if first {
                            shard.note_entry(slot, index);
                            marked += 1;
                        }
                    }
                    newer
                }
                Target::Scan { state, content_version } => {
                    let c = &mut shard.clients[slot];
                    let newer = c.scan.is_none_or(|s| (r.time, r.serial) > (s.time, s.serial));
                    if newer {
                        c.scan = Some(ScanState { time: r.time, serial: r.serial, state, content_version });
                    }
                    // Results for a newer content version, in force or not: convergence.
                    let seen = &mut shard.seen[slot];
                    if state == SCAN_COMPLETED && content_version > seen.version {
                        if !seen.pending() {
                            shard.uncounted.push(slot as u32);
                        }
                        seen.applied_at = self.convergence.applied(seen.version, content_version);
                        seen.version = content_version;
                    }
                    newer
                }
                Target::Other => false,
            };
            let c = &mut shard.clients[slot];
            c.serials.record(r.serial);
            c.last_seen = c.last_seen.max(r.time);
            if changed {
                done.applied += 1;
            } else if !matches!(r.target, Target::Other) {
                done.stale += 1;
            }
        }
        // Serials and last-seen moved with every record.
        shard.touch(slot);
        drop(guard);
        self.count_marked(marked);
        done
    }

    fn count_marked(&self, marked: u64) {
        if marked > 0 {
            self.unsaved_entries.fetch_add(marked, Ordering::Relaxed);
        }
    }

    /// About how many entries changed since the last checkpoint took them (each is a state in
    /// the next log frame).
    pub fn unsaved_entries(&self) -> u64 {
        self.unsaved_entries.load(Ordering::Relaxed)
    }

    /// A client the MP heard from (registration, location request) at site time `now`: known
    /// from now on, with its location when it said where it is.
    /// Returns whether the site learned something: a client it did not know, or a new place.
    pub fn discover(&self, client: Guid, netbios: &str, location: Option<Location>, now: i64) -> bool {
        let location = location.map(|l| Location {
            ad_site: protocol::names::clip(&l.ad_site, protocol::names::MAX_NAME_BYTES).into(),
            ..l
        });
        let mut guard = lock(self.shard(client));
        let shard = &mut *guard;
        let known = shard.index.contains_key(&client);
        let slot = shard.slot(client, netbios);
        shard.touch(slot);
        let c = &mut shard.clients[slot];
        c.last_seen = c.last_seen.max(now);
        if let Some(location) = location
            && c.location.as_ref() != Some(&location)
        {
            c.location = Some(location);
            shard.summary.client_changed(slot);
            return true;
        }
        !known
    }

    /// SUM Delete Aged Status: drops the status of every client not heard from since `cutoff`
    /// (it leaves the counts until it reports again). Returns the clients dropped.
    pub fn retire_aged(&self, cutoff: i64) -> u64 {
        let mut dropped = 0;
        for m in self.shards.iter() {
            let mut guard = lock(m);
            let shard = &mut *guard;
            let stride = shard.stride;
            for slot in 0..shard.clients.len() {
                let c = &mut shard.clients[slot];
                if c.retired || c.last_seen >= cutoff {
                    continue;
                }
                c.retired = true;
                c.scan = None;
                self.count_marked(stride as u64);
                for e in &mut shard.rows[slot * stride..(slot + 1) * stride] {
                    // What was summarized stays in `seen`, for the summarizer to take back.
                    let unsaved = e.unsaved || e.is_known();
                    *e = UpdateState { seen: e.seen, unsaved, ..UpdateState::EMPTY };
                }
                shard.summary.client_changed(slot);
                shard.touch(slot);
                shard.entries = None;
                dropped += 1;
            }
        }
        dropped
    }

    /// SUM Migrate Update Status: moves every client's status off the updates at `indexes`.
    /// Returns the states moved.
    pub fn clear_updates(&self, indexes: &[usize]) -> u64 {
        let mut moved = 0;
        for m in self.shards.iter() {
            let mut guard = lock(m);
            let shard = &mut *guard;
            let stride = shard.stride;
            for slot in 0..shard.clients.len() {
                for &i in indexes.iter().filter(|&&i| i < stride) {
                    let e = &mut shard.rows[slot * stride + i];
                    if e.is_known() {
                        *e = UpdateState { seen: e.seen, unsaved: true, ..UpdateState::EMPTY };
                        shard.summary.state_changed(slot, i, e);
                        shard.touch(slot);
                        shard.entries = None;
                        moved += 1;
                    }
                }
            }
        }
        self.count_marked(moved);
        moved
    }

    /// Whether anything changed since the last [`Store::take_unsaved`].
    pub fn has_unsaved(&self) -> bool {
        self.shards.iter().any(|m| !lock(m).unsaved.is_empty())
    }

    /// Hands every client changed since the last call to `f`, with its row, whose entries
    /// changed since are marked `unsaved`, and (when the shard kept the list) the indexes of
    /// those entries, in order, with their states; then clears the marks. One shard locked at a
    /// time, `f` called under its lock (so it should only copy).
    pub fn take_unsaved(&self, mut f: impl FnMut(&Client, &[UpdateState], Option<(&[u32], &[UpdateState])>)) {
        self.unsaved_entries.store(0, Ordering::Relaxed);
        let (mut indexes, mut states) = (Vec::new(), Vec::new());
        for m in self.shards.iter() {
            let mut guard = lock(m);
            let shard = &mut *guard;
            let stride = shard.stride;
            shard.unsaved.sort_unstable();
            let list = shard.entries.take().map(|mut list| {
                list.sort_unstable();
                // The listed states first, in one tight pass: they are scattered over the rows,
                // and loads that do not wait on each other overlap their cache misses (handed
                // to `f` one by one, each would wait for its own).
                states.clear();
                states.extend(list.iter().map(|&(s, i)| shard.rows[s as usize * stride + i as usize]));
                list
            });
            let mut at = 0;
            for &slot in &shard.unsaved {
                let slot = slot as usize;
                let row = &mut shard.rows[slot * stride..(slot + 1) * stride];
                match &list {
                    Some(list) => {
                        while list.get(at).is_some_and(|&(s, _)| (s as usize) < slot) {
                            at += 1;
                        }
                        let from = at;
                        indexes.clear();
                        while let Some(&(_, i)) = list.get(at).filter(|&&(s, _)| s as usize == slot) {
                            indexes.push(i);
                            at += 1;
                        }
                        f(&shard.clients[slot], row, Some((&indexes, &states[from..at])));
                        for &i in &indexes {
                            row[i as usize].unsaved = false;
                        }
                    }
                    None => {
                        f(&shard.clients[slot], row, None);
                        for e in row.iter_mut() {
                            e.unsaved = false;
                        }
                    }
                }
                shard.listed[slot] = false;
            }
            shard.unsaved.clear();
            shard.entries = Some(Vec::new());
        }
    }

    /// Marks every client and every known entry changed (tests of the log's format).
    #[cfg(test)]
    pub(super) fn mark_all_unsaved(&self) {
        for m in self.shards.iter() {
            let mut guard = lock(m);
            let shard = &mut *guard;
            for e in shard.rows.iter_mut().filter(|e| e.is_known()) {
                e.unsaved = true;
            }
            for slot in 0..shard.clients.len() {
                shard.touch(slot);
            }
            shard.entries = None;
        }
    }

    /// The number of shards (for visiting them one at a time).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Visits every client of shard `shard` with its row, under that shard's lock.
    pub fn for_each_in_shard(&self, shard: usize, mut f: impl FnMut(&Client, &[UpdateState])) {
        let Some(m) = self.shards.get(shard) else { return };
        let shard = lock(m);
        for (i, c) in shard.clients.iter().enumerate() {
            f(c, &shard.rows[i * shard.stride..(i + 1) * shard.stride]);
        }
    }

    /// Brings every shard's partial summary up to date with `plan` (incrementally where it
    /// can) on `threads` threads, and returns their sum.
    pub fn summarize(&self, plan: &SummaryPlan, threads: usize) -> Tally {
        self.summarize_counting(plan, threads, None).0
    }

    /// [`Store::summarize`]; for the Update Status summarization `run` (of
    /// [`Convergence::next_run`]), also the clients whose newest results it counts for the first
    /// time (marking them counted in `run`).
    pub fn summarize_counting(&self, plan: &SummaryPlan, threads: usize, run: Option<u32>) -> (Tally, Moves) {
        let threads = threads.clamp(1, self.shards.len());
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let mut sum = Tally::zero(plan);
                        let mut moves = Moves::new();
                        for m in self.shards.iter().skip(t).step_by(threads) {
                            let mut guard = lock(m);
                            let Shard { clients, rows, stride, summary, seen, uncounted, .. } = &mut *guard;
                            summary.update(clients, rows, *stride, plan);
                            sum.add(summary.tally());
                            if let Some(run) = run {
                                for slot in uncounted.drain(..) {
                                    let s = &mut seen[slot as usize];
                                    convergence::add_move(&mut moves, s.counted, s.version, 1);
                                    (s.counted, s.counted_in) = (s.version, run);
                                }
                            }
                        }
                        (sum, moves)
                    })
                })
                .collect();
            let mut total = Tally::zero(plan);
            let mut moves = Moves::new();
            for w in workers {
                match w.join() {
                    Ok((t, m)) => {
                        total.add(&t);
                        for ((from, to), n) in m {
                            convergence::add_move(&mut moves, from, to, n);
                        }
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (total, moves)
        })
    }

    /// A client's convergence, as this process saw it.
    pub fn seen(&self, id: Guid) -> Option<Seen> {
        let shard = lock(self.shard(id));
        shard.index.get(&id).map(|&i| shard.seen[i as usize])
    }

    /// One client and its update states (a copy, taken under its shard's lock).
    pub fn client(&self, id: Guid) -> Option<(Client, Vec<UpdateState>)> {
        let shard = lock(self.shard(id));
        let &i = shard.index.get(&id)?;
        let i = i as usize;
        Some((shard.clients[i].clone(), shard.rows[i * shard.stride..(i + 1) * shard.stride].to_vec()))
    }

    /// Visits every client with its row, one shard locked at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Client, &[UpdateState])) {
        for m in self.shards.iter() {
            let shard = lock(m);
            for (i, c) in shard.clients.iter().enumerate() {
                f(c, &shard.rows[i * shard.stride..(i + 1) * shard.stride]);
            }
        }
    }

    /// Catalog entries per client row (the widest shard's).
    pub fn stride(&self) -> usize {
        self.shards.iter().map(|m| lock(m).stride).max().unwrap_or(0)
    }

    /// Puts back a client as a checkpoint's log recorded a change to it: the client as it was
    /// then, and the entries that changed (`(index, state)`); other entries stay as they are.
    pub fn restore_changes(&self, client: Client, entries: &[(u32, UpdateState)]) {
        let mut shard = lock(self.shard(client.id));
        let slot = shard.slot(client.id, "");
        if let Some(widest) = entries.iter().map(|&(i, _)| i as usize).max()
            && widest >= shard.stride
        {
            shard.widen(widest);
        }
        let stride = shard.stride;
        for &(i, e) in entries {
            shard.rows[slot * stride + i as usize] = UpdateState { unsaved: false, ..e };
        }
        shard.clients[slot] = client;
        shard.summary.invalidate();
    }

    /// Puts back a client as a checkpoint recorded it (replacing any client with the same ID).
    pub fn restore(&self, client: Client, row: &[UpdateState]) {
        let mut shard = lock(self.shard(client.id));
        let id = client.id;
        let slot = shard.slot(id, "");
        if row.len() > shard.stride {
            shard.widen(row.len() - 1);
        }
        let stride = shard.stride;
        let dest = &mut shard.rows[slot * stride..(slot + 1) * stride];
        dest[..row.len()].copy_from_slice(row);
        dest[row.len()..].fill(UpdateState::EMPTY);
        shard.clients[slot] = client;
        // A restored store is summarized in full the first time.
        shard.summary.invalidate();
    }

    pub fn clients(&self) -> usize {
        self.shards.iter().map(|m| lock(m).clients.len()).sum()
    }

    /// Bytes held for update states (row capacity: the part never written is address space,
    /// not memory), for the sizing figure.
    pub fn state_bytes(&self) -> usize {
        self.shards.iter().map(|m| lock(m).rows.capacity() * std::mem::size_of::<UpdateState>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn update(time: i64, serial: u64, index: u32, state: u8) -> Record {
        Record { time, serial, target: Target::Update { index, state } }
    }

    #[test]
    fn newest_wins_ties_by_serial_replays_change_nothing() {
        let store = Store::new(2, 4);
        let c = Guid(42);
        assert_eq!(store.apply(c, "PC", &[update(100, 1, 2, 2)]), Applied { applied: 1, stale: 0 });
        assert_eq!(store.apply(c, "PC", &[update(100, 1, 2, 2)]), Applied { applied: 0, stale: 1 }, "replay");
        assert_eq!(store.apply(c, "PC", &[update(50, 9, 2, 3)]), Applied { applied: 0, stale: 1 }, "older");
        assert_eq!(store.apply(c, "PC", &[update(100, 0, 2, 3)]).stale, 1, "same time, lower serial");
        store.apply(c, "PC", &[update(100, 5, 2, 2)]);
        let (_, row) = store.client(c).unwrap();
        assert_eq!(row[2], UpdateState::new(100, 100, 5, 2), "same state: no change");
        // Serials past u32 saturate: they still win over smaller ones at the same time.
        let big = Guid(43);
        store.apply(big, "PC", &[update(100, u64::MAX, 1, 1), update(100, 7, 1, 2)]);
        assert_eq!(store.client(big).unwrap().1[1].state, 1);
        store.apply(c, "PC", &[update(200, 6, 2, 3)]);
        let (client, row) = store.client(c).unwrap();
        assert_eq!(row[2], UpdateState::new(200, 200, 6, 3));
        assert!(!row[0].is_known());
        assert_eq!((client.serials.first(), client.serials.last()), (Some(0), Some(9)));
        assert_eq!(client.last_seen, 200);
    }

    #[test]
    fn scan_state_and_other_topics() {
        let store = Store::new(0, 4);
        let c = Guid(7);
        let scan =
            |t, s, st| Record { time: t, serial: s, target: Target::Scan { state: st, content_version: 38 } };
        store.apply(c, "PC", &[scan(10, 1, 2), scan(20, 2, 3), scan(15, 3, 5)]);
        assert_eq!(store.client(c).unwrap().0.scan.map(|s| s.state), Some(3));
        let done = store.apply(c, "PC", &[Record { time: 30, serial: 4, target: Target::Other }]);
        assert_eq!(done, Applied::default());
        assert_eq!(store.client(c).unwrap().0.serials.last(), Some(4));
    }

    #[test]
    fn convergence_counts_completed_scans_once_and_the_summarization_that_shows_them() {
        let store = Store::new(2, 4).with_clock(crate::clock::SiteClock::new(protocol::Timestamp(0), 1.0));
        let scan = |t, s, st, v| Record {
            time: t,
            serial: s,
            target: Target::Scan { state: st, content_version: v },
        };
        store.convergence().synced(39);
        // Client 1: running, then completed for 39; a replay changes nothing.
        store.apply(Guid(1), "A", &[scan(10, 1, 2, 39)]);
        assert_eq!(store.seen(Guid(1)).unwrap().version, 0, "a running scan is not results");
        store.apply(Guid(1), "A", &[scan(20, 2, 3, 39)]);
        let applied = store.seen(Guid(1)).unwrap().applied_at;
        store.apply(Guid(1), "A", &[scan(20, 2, 3, 39)]);
        // Client 2 completes for 38 (before the sync's version: not counted), then 39.
        store.apply(Guid(2), "B", &[scan(10, 1, 3, 38)]);
        let plan = SummaryPlan::new(&crate::site::Site::default_site(), 1);
        let run = store.convergence().next_run();
        let (_, moves) = store.summarize_counting(&plan, 2, Some(run));
        let shown = store.convergence().published(run, &moves);
        store.apply(Guid(2), "B", &[scan(30, 3, 3, 39)]);
        let curves = store.convergence().curves();
        assert_eq!(curves[0].applied.iter().map(|s| s.1).sum::<u64>(), 2);
        assert_eq!(curves[0].applied[0], (applied, 1));
        assert_eq!(curves[0].visible, [(shown, 1)], "client 2's 39 came after the summarization");
        let seen = store.seen(Guid(1)).unwrap();
        assert_eq!(
            (seen.version, seen.counted, store.convergence().run_time(seen.counted_in)),
            (39, 39, Some(shown))
        );
        assert!(store.seen(Guid(2)).unwrap().pending());
        // A summarization that is not Update Status's counts nobody.
        store.summarize(&plan, 1);
        assert!(store.seen(Guid(2)).unwrap().pending());
        let run = store.convergence().next_run();
        let (_, moves) = store.summarize_counting(&plan, 1, Some(run));
        assert_eq!(moves, [((38, 39), 1)]);
        let later = store.convergence().published(run, &moves);
        assert_eq!(store.convergence().curves()[0].visible, [(shown, 1), (later, 1)]);
    }

    #[test]
    fn rows_widen_when_the_catalog_grows() {
        let store = Store::new(1, 2);
        store.apply(Guid(1), "A", &[update(1, 1, 0, 1), update(1, 2, 1, 2)]);
        store.apply(Guid(2), "B", &[update(1, 1, 1, 3)]);
        store.apply(Guid(1), "A", &[update(2, 3, 200, 2)]);
        let (_, a) = store.client(Guid(1)).unwrap();
        assert_eq!((a[0].state, a[1].state, a[200].state), (1, 2, 2));
        assert_eq!(store.client(Guid(2)).unwrap().1[1].state, 3, "other clients keep their states");
    }

    #[test]
    fn a_shard_fills_its_first_reservation_without_moving_its_rows() {
        let store = Store::new(0, 200);
        let records: Vec<Record> = (0..200).map(|i| update(1, i, i as u32, 2)).collect();
        store.apply(Guid(1), "PC", &records);
        let (first, room) = {
            let shard = lock(&store.shards[0]);
            (shard.rows.as_ptr(), shard.rows.capacity() / 200)
        };
        assert_eq!(room, RESERVED_BYTES / std::mem::size_of::<UpdateState>() / 200);
        for c in 2..=room as u128 {
            store.apply(Guid(c), "PC", &records);
        }
        assert_eq!(lock(&store.shards[0]).rows.as_ptr(), first, "rows copied while the shard filled");
        store.apply(Guid(u128::MAX), "PC", &records);
        assert_eq!(store.clients(), room + 1, "and past it, the shard grows");
    }

    #[test]
    fn at_most_thirty_two_bytes_per_state() {
        // One shard, so it grows past its first reservation.
        let store = Store::new(0, 200);
        let records: Vec<Record> = (0..200).map(|i| update(1, i, i as u32, 2)).collect();
        for c in 0..5_000u128 {
            store.apply(Guid(c * 0x1_0000_0001), "PC", &records);
        }
        assert_eq!(store.clients(), 5_000);
        let per_state = store.state_bytes() as f64 / (5_000.0 * 200.0);
        assert!(per_state <= 32.0, "{per_state} bytes per state, growth slack included");
    }

    type Snapshot = Vec<(Client, Vec<UpdateState>)>;

    fn snapshot(store: &Store) -> Snapshot {
        let mut all = Vec::new();
        store.for_each(|c, row| all.push((c.clone(), row.to_vec())));
        all.sort_by_key(|(c, _)| c.id);
        all
    }

    proptest! {
        /// Shuffled (each update's records kept in order), duplicated and split into other batches:
        /// the same store as in-order delivery, change times included. Fully shuffled: the same
        /// but for change times.
        #[test]
        fn delivery_order_and_duplicates_do_not_matter(
            records in prop::collection::vec((0u128..4, 0u32..6, 0i64..50, 0u8..4), 1..120),
            seed: u64,
        ) {
            // In order: by time, serial = position.
            let mut ordered: Vec<(Guid, Record)> = records.iter().enumerate()
                .map(|(i, &(c, u, t, s))| (Guid(c), update(t * 1000, i as u64, u, s)))
                .collect();
            ordered.sort_by_key(|(_, r)| (r.time, r.serial));
            let in_order = Store::new(2, 6);
            for (c, r) in &ordered {
                in_order.apply(*c, "PC", std::slice::from_ref(r));
            }
            let mut x = seed | 1;
            let mut next = |n: usize| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x % n as u64) as usize };
            // Interleave keeping each (client, update)'s order, with duplicates.
            let mut queues: Vec<Vec<(Guid, Record)>> = Vec::new();
            for (c, r) in &ordered {
                let key = |q: &Vec<(Guid, Record)>| q[0].0 == *c && q[0].1.target == r.target
                    || matches!((q[0].1.target, r.target), (Target::Update { index: a, .. }, Target::Update { index: b, .. }) if a == b && q[0].0 == *c);
                match queues.iter_mut().find(|q| key(q)) {
                    Some(q) => q.push((*c, *r)),
                    None => queues.push(vec![(*c, *r)]),
                }
            }
            let mut interleaved = Vec::new();
            while !queues.is_empty() {
                let q = next(queues.len());
                let item = queues[q].remove(0);
                interleaved.push(item);
                if next(4) == 0 { interleaved.push(item); }
                if queues[q].is_empty() { queues.swap_remove(q); }
            }
            let batched = Store::new(2, 6);
            let mut i = 0;
            while i < interleaved.len() {
                // A batch is one client's consecutive records, as in one Report.
                let c = interleaved[i].0;
                let len = interleaved[i..].iter().take_while(|(k, _)| *k == c).count().min(1 + next(5));
                let batch: Vec<Record> = interleaved[i..i + len].iter().map(|(_, r)| *r).collect();
                batched.apply(c, "PC", &batch);
                i += len;
            }
            prop_assert_eq!(snapshot(&in_order), snapshot(&batched));

            // Fully shuffled: all but change times agree.
            let mut shuffled = ordered.clone();
            for i in (1..shuffled.len()).rev() { let j = next(i + 1); shuffled.swap(i, j); }
            let any = Store::new(2, 6);
            for (c, r) in &shuffled { any.apply(*c, "PC", std::slice::from_ref(r)); }
            let strip = |s: Snapshot| {
                s.into_iter()
                    .map(|(c, row)| (c, row.into_iter().map(|u| (u.time, u.serial, u.state)).collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(strip(snapshot(&in_order)), strip(snapshot(&any)));
        }
    }
}

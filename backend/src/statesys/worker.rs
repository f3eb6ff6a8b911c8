//! StateSys's file loop: inbox files in, store updated, files gone once a durable checkpoint
//! covers them.
//!
//! - Files are taken from `incoming/high/`, then `incoming/`, then `incoming/low/`, each in name
//!   order (not arrival order), in chunks of bounded size.
//! - A segment ([`crate::inbox::segment`]) holds many Reports; any other `.SMX` file holds one.
//!   A record of a segment that does not read (a Report that does not scan, a discovery record
//!   that does not decode) condemns only itself: it is skipped and counted, the others apply. A
//!   file that does not read (a plain file's Report that does not scan, a segment corrupt before
//!   its end) is a **bad file**: its readable Reports are applied and it moves to `corrupt/`
//!   with the next checkpoint (so a crash before it replays them).
//! - MessageTimes are judged against the site time the Report was accepted at (a segment's
//!   opening time; for other files, now): see [`super::process::MAX_CLOCK_SKEW`].
//! - Processed files stay until [`Worker::checkpoint`] has made what they changed durable (a
//!   frame of the store's log, [`super::checkpoint`]); then they are deleted. After a crash,
//!   [`Worker::open`] loads the store's base and log, and [`Worker::recover`] processes every
//!   file that was in the inbox again, which is harmless: applying a record twice changes
//!   nothing. The relay may already be writing new segments while `recover` runs; those are
//!   left to the file loop.
//! - Each batch logs the product's lines: `Processed N records with M invalid records.` and
//!   `Processed K message files in this batch, with B bad files.`

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Paths;
use super::checkpoint::{Compaction, Durable, LoadError, Loaded};
use super::handoff::Parsed;
use super::process::{Processed, Scanned, UpdateIndex, apply_scanned, not_after, process_report};
use super::state::Record;
use super::store::Store;
use crate::clock::SiteClock;
use crate::faults::Faults;
use crate::inbox::discovery;
use crate::inbox::segment::{self, SEALED};
use crate::logs::{ComponentLog, Severity};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    pub files: u64,
    /// Reports taken out of the files (one per plain file, many per segment).
    pub reports: u64,
    /// Of those, the ones from segments: what the relay wrote.
    pub relayed: u64,
    /// Files still waiting in the inboxes after this batch's chunk was taken.
    pub left: u64,
    pub bad_files: u64,
    /// Records of segments that did not read (skipped, the rest of the file applied).
    pub bad_records: u64,
    pub processed: Processed,
}

/// The file loop's state; driven by a processing thread (or a test).
#[derive(Debug)]
pub struct Worker {
    paths: Paths,
    store: Arc<Store>,
    /// The store's durable form, once [`Worker::load`] has read it.
    durable: Option<Durable>,
    /// Takes each checkpoint's frame (the site database's mirror).
    pub sink: Option<Arc<dyn super::checkpoint::FrameSink>>,
    faults: Arc<Faults>,
    /// The files that were in the inboxes at open, for [`Worker::recover`].
    backlog: Vec<PathBuf>,
    index: UpdateIndex,
    log: Arc<ComponentLog>,
    clock: SiteClock,
    /// Files applied but not yet covered by a checkpoint: skipped when listing, deleted after
    /// (bad ones moved to `corrupt/`).
    applied: HashSet<PathBuf>,
    condemned: HashSet<PathBuf>,
    /// Segments (by name, without extension) the relay is handing over in memory: not read
    /// while their records come that way, until they are sealed.
    handing: HashSet<std::ffi::OsString>,
    /// Reports applied in memory per segment not yet known to be complete: when such a segment
    /// is read after all, those are not counted as relayed twice.
    handed: std::collections::HashMap<std::ffi::OsString, u64>,
    /// At most this many bytes of files per batch.
    pub chunk_bytes: u64,
    /// Each processing thread's buffers, kept from batch to batch.
    scratch: Vec<Scratch>,
    /// The records of a Report handed over in memory (reused).
    records: Vec<Record>,
    /// Processing threads a batch's files are spread over (the store is sharded, so they rarely
    /// contend). Records of one update in files processed at the same time may apply in either
    /// order; only LastStatusChangeTime can tell (see `store`).
    pub threads: usize,
}

impl Worker {
    /// Opens StateSys's inboxes: segments a crash left open sealed, and the files waiting noted
    /// for [`Worker::recover`]; the store is empty (rows for the catalog) until [`Worker::load`].
    /// `clock` is the site's; `faults` the checkpoint's fault seam.
    pub fn open(
        paths: Paths,
        index: UpdateIndex,
        updates: usize,
        log: Arc<ComponentLog>,
        clock: SiteClock,
        faults: Arc<Faults>,
    ) -> io::Result<Worker> {
        for dir in paths.inboxes().iter().chain([&paths.corrupt(), &paths.state]) {
            fs::create_dir_all(dir)?;
        }
        let store = Arc::new(Store::new(8, updates).with_clock(clock));
        // Segments a crash left being written: cut back to their whole records and seal.
        for dir in paths.inboxes() {
            for path in list(&dir, "part")? {
                segment::recover(&path)?;
            }
        }
        let mut worker = Worker {
            paths,
            store,
            durable: None,
            sink: None,
            faults,
            backlog: Vec::new(),
            index,
            log,
            clock,
            applied: HashSet::new(),
            condemned: HashSet::new(),
            handing: HashSet::new(),
            handed: Default::default(),
            chunk_bytes: 64 << 20,
            scratch: Vec::new(),
            records: Vec::new(),
            threads: 1,
        };
        worker.backlog = worker.waiting()?;
        Ok(worker)
    }

    /// Loads the store's base and log into the store (before anything else touches it).
    pub fn load(&mut self) -> Result<Loaded, LoadError> {
        let (mut durable, loaded) = Durable::open(&self.paths.state, &self.store, Arc::clone(&self.faults))?;
        durable.sink = self.sink.clone();
        self.durable = Some(durable);
        if loaded.bytes > 0 {
            self.log.info(&format!(
                "Loaded the state store: {} clients, base generation {} and {} log frames ({:.1} MB) in {:.3} seconds.",
                self.store.clients(),
                loaded.generation,
                loaded.frames,
                loaded.bytes as f64 / 1e6,
                loaded.took.as_secs_f64()
            ));
        }
        Ok(loaded)
    }

    /// Processes the files that were waiting at open (what a previous run acknowledged and had
    /// not made durable in the store), then checkpoints. Files the relay seals meanwhile are
    /// left for [`Worker::run_batch`].
    pub fn recover(&mut self) -> io::Result<Batch> {
        let mut recovered = Batch::default();
        let mut backlog = std::mem::take(&mut self.backlog);
        while !backlog.is_empty() {
            let take = self.chunk_len(&backlog);
            let rest = backlog.split_off(take);
            let batch = self.run_files(backlog, rest.len() as u64)?;
            recovered.files += batch.files;
            recovered.reports += batch.reports;
            recovered.relayed += batch.relayed;
            recovered.bad_files += batch.bad_files;
            recovered.bad_records += batch.bad_records;
            recovered.processed += batch.processed;
            backlog = rest;
        }
        self.checkpoint()?;
        Ok(recovered)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, to share with readers (the site API, summarizers).
    pub fn store_handle(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// StateSys's log.
    pub fn log(&self) -> &ComponentLog {
        &self.log
    }

    /// Replaces the catalog index after a sync.
    pub fn set_index(&mut self, index: UpdateIndex) {
        self.index = index;
    }

    /// Files processed since the last checkpoint.
    pub fn pending(&self) -> usize {
        self.applied.len()
    }

    /// Whether a checkpoint has anything to save: files applied, or changes in the store (a
    /// task's, or discovery's) or kept from a checkpoint that failed.
    pub fn needs_checkpoint(&self) -> bool {
        !self.applied.is_empty()
            || self.durable.as_ref().is_some_and(Durable::has_pending)
            || self.store.has_unsaved()
    }

    /// The files waiting in the inboxes, in processing order (not counting applied ones, nor
    /// segments being handed over in memory).
    pub fn waiting(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for dir in self.paths.inboxes() {
            out.extend(list(&dir, SEALED)?.into_iter().filter(|p| !self.skipped(p)));
        }
        Ok(out)
    }

    fn skipped(&self, path: &Path) -> bool {
        self.applied.contains(path) || path.file_stem().is_some_and(|s| self.handing.contains(s))
    }

    /// Processes one chunk of waiting files; `files == 0` means there was nothing to do.
    /// `refresh` runs after the inboxes are listed: there the caller notes what the relay
    /// handed over meanwhile ([`Worker::handing`]), so a segment sealed just then is not read.
    pub fn run_batch(&mut self, refresh: impl FnOnce(&mut Worker)) -> io::Result<Batch> {
        let mut waiting = self.waiting()?;
        refresh(self);
        waiting.retain(|p| !self.skipped(p));
        let rest = waiting.split_off(self.chunk_len(&waiting));
        self.run_files(waiting, rest.len() as u64)
    }

    /// How many of `files` make one chunk: within `chunk_bytes`, at least one.
    fn chunk_len(&self, files: &[PathBuf]) -> usize {
        let mut bytes = 0;
        for (i, path) in files.iter().enumerate() {
            let len = fs::metadata(path).map_or(0, |m| m.len());
            if i > 0 && bytes + len > self.chunk_bytes {
                return i;
            }
            bytes += len;
        }
        files.len()
    }

    /// Processes `chunk`; `left` files wait after it.
    fn run_files(&mut self, chunk: Vec<PathBuf>, left: u64) -> io::Result<Batch> {
        if chunk.is_empty() {
            return Ok(Batch::default());
        }
        // "chucks": the product's own spelling (seed, StateSys.log), kept so log readers match it.
        self.log.info(&format!("total chucks loaded ({})", chunk.len().div_ceil(64)));
        let mut batch = Batch { left, ..Batch::default() };
        let per_thread = chunk.len().div_ceil(self.threads.max(1));
        let threads = chunk.len().div_ceil(per_thread);
        if self.scratch.len() < threads {
            self.scratch.resize_with(threads, Scratch::default);
        }
        let (store, index, now) = (&*self.store, &self.index, self.clock.now().0);
        let results: Vec<(PathBuf, io::Result<FileOutcome>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = chunk
                .chunks(per_thread)
                .zip(self.scratch.iter_mut())
                .map(|(part, scratch)| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|p| (p.clone(), process_file(store, index, p, scratch, now)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        for (path, outcome) in results {
            let FileOutcome { processed, reports, segment, bad, bad_records } = outcome?;
            batch.files += 1;
            batch.reports += reports;
            if segment {
                // Those handed over in memory already counted.
                let handed = path.file_stem().and_then(|s| self.handed.remove(s)).unwrap_or(0);
                batch.relayed += reports.saturating_sub(handed);
            }
            batch.processed += processed;
            batch.bad_records += bad_records;
            if bad {
                batch.bad_files += 1;
                self.condemned.insert(path.clone());
            }
            self.applied.insert(path);
        }
        if batch.bad_records > 0 {
            self.log.log(
                crate::logs::Severity::Warning,
                &format!(
                    "Skipped {} records that could not be read; the rest of their files applied.",
                    batch.bad_records
                ),
            );
        }
        self.log.info(&format!(
            "CMessageProcessor - Processed {} records with {} invalid records.",
            batch.processed.records, batch.processed.invalid
        ));
        self.log.info(&format!(
            "CMessageProcessor - Processed {} message files in this batch, with {} bad files.",
            batch.files, batch.bad_files
        ));
        Ok(batch)
    }

    /// Makes what changed in the store durable (a frame of its log), then deletes the files it
    /// covers. Returns the bytes appended to the log.
    pub fn checkpoint(&mut self) -> io::Result<u64> {
        let Some(durable) = self.durable.as_mut() else {
            return Err(io::Error::other("the state store was not loaded"));
        };
        let saved = durable.save(&self.store)?;
        self.log_compaction(saved.compaction);
        for path in self.applied.drain() {
            let done = if self.condemned.remove(&path) {
                fs::rename(&path, self.paths.corrupt().join(path.file_name().unwrap_or_default()))
            } else {
                fs::remove_file(&path)
            };
            match done {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(saved.bytes)
    }

    /// Applies Reports the relay handed over in memory, durable in `segment` opened at site
    /// time `opened` (µs).
    pub fn apply_handed(&mut self, segment: &Path, opened: i64, records: &[Parsed]) -> Batch {
        let limit = not_after(opened);
        let mut batch = Batch::default();
        let scratch = &mut self.records;
        for record in records {
            match record {
                Parsed::Report(report) => {
                    batch.reports += 1;
                    batch.processed += apply_scanned(&self.store, &self.index, report, scratch, limit);
                }
                Parsed::Discovery(d) => {
                    self.store.discover(d.client, &d.netbios_name, d.location.clone(), d.time);
                }
                Parsed::Applied => {}
            }
        }
        batch.relayed = batch.reports;
        if let Some(stem) = segment.file_stem() {
            self.handing.insert(stem.to_owned());
            *self.handed.entry(stem.to_owned()).or_default() += batch.reports;
        }
        batch
    }

    /// The relay is handing over the records of `segment` in memory: it is not read (unless
    /// [`Worker::sealed`] says it must be).
    pub fn handing(&mut self, segment: &Path) {
        if let Some(stem) = segment.file_stem() {
            self.handing.insert(stem.to_owned());
        }
    }

    /// A segment was sealed at `path`; `complete` when every record in it was applied another
    /// way (handed over in memory, all of it applied before this call): it goes with the next
    /// checkpoint, unread. Otherwise it is read.
    pub fn sealed(&mut self, path: PathBuf, complete: bool) {
        if let Some(stem) = path.file_stem() {
            self.handing.remove(stem);
            if complete {
                self.handed.remove(stem);
            }
        }
        if complete {
            self.applied.insert(path);
        }
    }

    /// Waits for a compaction of the store's log under way (at shutdown).
    pub fn finish(&mut self) {
        let news = self.durable.as_mut().and_then(Durable::finish);
        self.log_compaction(news);
    }

    /// StateSys.log's line for news of the compaction.
    fn log_compaction(&self, news: Option<Compaction>) {
        match news {
            Some(Compaction::Started { generation }) => self.log.info(&format!(
                "Compacting the state store's log into base generation {generation} in the background."
            )),
            Some(Compaction::Done { generation, bytes, took }) => self.log.info(&format!(
                "Wrote the state store's base generation {generation} ({:.1} MB) in {:.3} seconds.",
                bytes as f64 / 1e6,
                took.as_secs_f64()
            )),
            Some(Compaction::Failed(e)) => {
                self.log.log(Severity::Error, &format!("Cannot compact the state store's log: {e}"))
            }
            None => {}
        }
    }
}

/// What processing one file did.
struct FileOutcome {
    processed: Processed,
    /// Reports in the file (one for a plain file).
    reports: u64,
    /// Whether it is a segment (written by the relay).
    segment: bool,
    /// Whether it is a bad file (to move to `corrupt/`).
    bad: bool,
    /// Records of a segment that did not read, skipped.
    bad_records: u64,
}

/// A processing thread's buffers, reused from file to file and Report to Report (no fresh pages
/// per file).
#[derive(Debug, Default)]
struct Scratch {
    bytes: Vec<u8>,
    /// A compressed record, decompressed.
    record: Vec<u8>,
    scanned: Scanned,
    records: Vec<Record>,
}

/// Applies one file's Reports; `now` is the site time (µs) for files that do not say when they
/// were accepted.
fn process_file(
    store: &Store,
    index: &UpdateIndex,
    path: &Path,
    scratch: &mut Scratch,
    now: i64,
) -> io::Result<FileOutcome> {
    use std::io::Read as _;
    let Scratch { bytes, record: plain, scanned, records: scratch } = scratch;
    bytes.clear();
    fs::File::open(path)?.read_to_end(bytes)?;
    let bytes = &bytes[..];
    let outcome = |reports, segment, bad| FileOutcome {
        processed: Processed::default(),
        reports,
        segment,
        bad,
        bad_records: 0,
    };
    if !segment::is_segment(bytes) {
        return Ok(match process_report(store, index, bytes, scanned, scratch, not_after(now)) {
            Ok(processed) => FileOutcome { processed, ..outcome(1, false, false) },
            Err(_) => outcome(1, false, true),
        });
    }
    let limit = not_after(segment::created(bytes).unwrap_or(now));
    let mut outcome = outcome(0, true, false);
    for record in segment::records(bytes) {
        let Ok(record) = record else {
            // Corrupt before its end: what follows cannot be found.
            outcome.bad = true;
            break;
        };
        // Whole but not decompressing (written by hand, or damaged before its checksum): it
        // alone is lost.
        let Ok(record) = record.bytes(plain) else {
            outcome.bad_records += 1;
            continue;
        };
        if discovery::is_discovery(record) {
            match discovery::Discovery::decode(record) {
                Some(d) => {
                    store.discover(d.client, &d.netbios_name, d.location, d.time);
                }
                None => outcome.bad_records += 1,
            }
            continue;
        }
        outcome.reports += 1;
        match process_report(store, index, record, scanned, scratch, limit) {
            Ok(p) => outcome.processed += p,
            // The relay checked every Report; one that does not scan now was damaged on disk,
            // or written by hand. It alone is lost.
            Err(_) => outcome.bad_records += 1,
        }
    }
    Ok(outcome)
}

/// Files in `dir` with extension `ext` (any case), sorted by name.
fn list(dir: &Path, ext: &str) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use crate::inbox::segment::SegmentWriter;
    use crate::logs::Format;
    use crate::site::Site;
    use protocol::Guid;

    fn open(root: &Path) -> (Worker, Batch) {
        let paths = Paths { statesys_box: root.join("inboxes/auth/statesys.box"), state: root.join("state") };
        let log = ComponentLog::open(
            &root.join("logs"),
            "StateSys.log",
            "SMS_STATE_SYSTEM",
            Format::Site,
            SiteClock::real_time(),
        )
        .unwrap();
        let mut index = UpdateIndex::new(&Site::default_site().catalog);
        index.insert("505fda07-b4f3-45fb-83d9-8642554e2773".parse().unwrap(), 0);
        index.insert("4ae85c00-0eaa-4be0-b81b-dbd7053d5fae".parse().unwrap(), 1);
        let mut w =
            Worker::open(paths, index, 200, Arc::new(log), SiteClock::real_time(), Arc::default()).unwrap();
        w.load().unwrap();
        let recovered = w.recover().unwrap();
        (w, recovered)
    }

    const A: Guid = Guid(0xA1006D0E_CF56_41D1_A006_6330EFC39381);
    const B: Guid = Guid(0xB2006D0E_CF56_41D1_A006_6330EFC39382);

    fn now() -> i64 {
        SiteClock::real_time().now().0
    }

    /// A record of a segment that does not read (a discovery record cut inside a name, a Report
    /// damaged on disk) condemns only itself: the other records apply and the file is not bad.
    #[test]
    fn a_record_that_does_not_read_condemns_only_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut w, _) = open(tmp.path());
        let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
        let good =
            discovery::Discovery { client: Guid(77), netbios_name: "PC77".into(), location: None, time: 5 };
        let mut cut = discovery::Discovery { netbios_name: "é".into(), ..good.clone() }.encode();
        let at = cut.len() - 2; // inside the `é`
        cut.remove(at);
        let len_at = cut.len() - 4;
        cut[len_at] = 1; // the name's length now ends inside the character
        assert_eq!(discovery::Discovery::decode(&cut), None);
        let mut seg = SegmentWriter::create(&incoming, "0000000000000003", now()).unwrap();
        let three = fixture("report-three-messages.xml");
        let truncated = fixture("report-truncated.xml");
        let bad_records = fixture("report-bad-records.xml");
        seg.append_all([
            cut.as_slice(),
            three.as_slice(),
            truncated.as_slice(),
            &good.encode(),
            bad_records.as_slice(),
        ])
        .unwrap();
        seg.seal().unwrap();
        let batch = w.run_batch(|_| {}).unwrap();
        assert_eq!((batch.files, batch.bad_files, batch.bad_records), (1, 0, 2));
        assert_eq!(batch.reports, 3);
        assert_eq!(w.store().client(A).unwrap().1[0].state, 2);
        assert_eq!(w.store().client(B).unwrap().1[0].state, 3);
        assert_eq!(w.store().client(Guid(77)).unwrap().0.netbios_name, "PC77");
        w.checkpoint().unwrap();
        assert_eq!(fs::read_dir(tmp.path().join("inboxes/auth/statesys.box/corrupt")).unwrap().count(), 0);
    }

    /// MessageTimes are judged against when the segment was opened, whenever it is read: a
    /// record a day and more past that is invalid, on the first read and on every replay.
    #[test]
    fn message_times_are_judged_against_the_segment_not_the_reader() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut w, _) = open(tmp.path());
        let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
        // The fixtures are from 2014-01-20: a segment opened the day before sees them as future.
        let t2014 = protocol::Timestamp::parse_iso(b"2014-01-20T00:00:00Z").unwrap().0;
        for (name, opened, invalid) in [("01", t2014 - 2 * 86_400_000_000, 3), ("02", t2014, 0)] {
            let mut seg = SegmentWriter::create(&incoming, name, opened).unwrap();
            seg.append_all([fixture("report-three-messages.xml").as_slice()]).unwrap();
            seg.seal().unwrap();
            let batch = w.run_batch(|_| {}).unwrap();
            assert_eq!((batch.processed.records, batch.processed.invalid), (3, invalid), "segment {name}");
        }
    }

    #[test]
    fn plain_files_segments_bad_files_and_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut w, _) = open(tmp.path());
        let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
        fs::write(incoming.join("TAZGYTSJ.SMX"), fixture("report-bad-records.xml")).unwrap();
        fs::write(incoming.join("TRUNCATD.SMX"), fixture("report-truncated.xml")).unwrap();
        let mut seg = SegmentWriter::create(&incoming.join("high"), "0000000000000001", now()).unwrap();
        seg.append_all([fixture("report-three-messages.xml").as_slice()]).unwrap();
        seg.seal().unwrap();

        let batch = w.run_batch(|_| {}).unwrap();
        assert_eq!((batch.files, batch.reports, batch.bad_files), (3, 3, 1));
        assert_eq!((batch.processed.records, batch.processed.invalid), (7, 3));
        assert_eq!(w.run_batch(|_| {}).unwrap(), Batch::default(), "applied files are not taken twice");
        assert_eq!(w.store().client(B).unwrap().1[0].state, 3);
        assert_eq!(w.store().client(A).unwrap().1[0].state, 2);
        assert_eq!(w.pending(), 3);
        // The bad file moves to corrupt/ once a checkpoint covers what was applied before it.
        assert!(incoming.join("TRUNCATD.SMX").exists());
        w.checkpoint().unwrap();
        assert!(tmp.path().join("inboxes/auth/statesys.box/corrupt/TRUNCATD.SMX").exists());
        assert_eq!(fs::read_dir(&incoming).unwrap().flatten().filter(|e| e.path().is_file()).count(), 0);
        let log = fs::read_to_string(tmp.path().join("logs/StateSys.log")).unwrap();
        assert!(log.contains("CMessageProcessor - Processed 7 records with 3 invalid records."), "{log}");
        assert!(
            log.contains("CMessageProcessor - Processed 3 message files in this batch, with 1 bad files.")
        );
    }

    #[test]
    fn a_crash_before_the_checkpoint_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let incoming = tmp.path().join("inboxes/auth/statesys.box/incoming");
        {
            let (mut w, _) = open(tmp.path());
            fs::write(incoming.join("AAAAAAAA.SMX"), fixture("report-three-messages.xml")).unwrap();
            w.run_batch(|_| {}).unwrap();
            w.checkpoint().unwrap();
            fs::write(incoming.join("BBBBBBBB.SMX"), fixture("report-bad-records.xml")).unwrap();
            // A half-written segment: one whole Report, then a torn one.
            let mut seg = SegmentWriter::create(&incoming, "0000000000000002", now()).unwrap();
            seg.append_all([fixture("report-one-message.xml").as_slice()]).unwrap();
            seg.sync().unwrap();
            drop(seg);
            let part = incoming.join("0000000000000002.part");
            let mut bytes = fs::read(&part).unwrap();
            bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'<']);
            fs::write(&part, bytes).unwrap();
            w.run_batch(|_| {}).unwrap();
            // Crash: no checkpoint after the second batch.
        }
        let (w, recovered) = open(tmp.path());
        assert_eq!(recovered.files, 2, "the unchecked file and the recovered segment are processed again");
        assert_eq!(w.store().client(B).unwrap().1[0].state, 3);
        let (a, row) = w.store().client(A).unwrap();
        assert_eq!((row[0].state, row[1].state), (2, 3));
        assert_eq!(a.serials.last(), Some(239));
        assert_eq!(w.waiting().unwrap(), Vec::<PathBuf>::new());
        assert_eq!(fs::read_dir(&incoming).unwrap().flatten().filter(|e| e.path().is_file()).count(), 0);
    }
}

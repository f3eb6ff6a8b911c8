//! SMX segments: many Reports in one inbox file, so one fsync makes a whole batch durable.
//!
//! ```text
//! "SUMSTORM-SMX-SEGMENT/2\n" | created: i64 LE    magic (a plain .SMX file starts with '<' or a
//!                                                 BOM) and the site time the segment was opened
//! ( len: u32 LE | crc32: u32 LE | len bytes of Report XML )*
//! ```
//! `created` (µs) is when the relay opened the segment, so every record in it was acknowledged
//! at or after that site time: StateSys judges MessageTimes against it, the same way at every
//! replay. Version 1 (no `created`) still reads.
//! A segment is written as `<name>.part` and renamed to `<name>.SMX` when sealed, so StateSys
//! never reads a file still being written. A crash can leave a `.part` whose last record is torn
//! (never acknowledged: acks follow the fsync); [`recover`] cuts it back to its last whole record
//! and seals it. A bad checksum before the tail is corruption, not a tear.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::faults::{Disk, Faults};

pub const MAGIC: &[u8] = b"SUMSTORM-SMX-SEGMENT/2\n";
const MAGIC_V1: &[u8] = b"SUMSTORM-SMX-SEGMENT/1\n";
/// The bytes before the first record of a segment written now.
pub const HEADER: usize = MAGIC.len() + 8;
const RECORD_HEAD: usize = 8;
/// A record larger than this is refused (the relay's body limit is far below it).
pub const MAX_RECORD: usize = 64 << 20;

/// The extension of a sealed inbox file.
pub const SEALED: &str = "SMX";
/// The extension of a segment being written.
pub const PART: &str = "part";

/// What is wrong with a segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("not a segment (no magic)")]
    NotASegment,
    #[error("record at byte {0} is corrupt (bad length or checksum) and is not the last")]
    Corrupt(usize),
    #[error("the last record, at byte {offset}, is incomplete (torn write); {valid} bytes are whole")]
    TornTail { offset: usize, valid: usize },
}

/// Whether `bytes` are a segment (rather than a plain one-Report SMX file).
pub fn is_segment(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V1)
}

/// Where a segment's records start; `None` if it is not a (whole-headed) segment.
fn header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(MAGIC_V1) {
        Some(MAGIC_V1.len())
    } else {
        (bytes.starts_with(MAGIC) && bytes.len() >= HEADER).then_some(HEADER)
    }
}

/// The site time (µs) a version-2 segment was opened; `None` for version 1 and non-segments.
pub fn created(bytes: &[u8]) -> Option<i64> {
    let raw = bytes.strip_prefix(MAGIC)?.first_chunk::<8>()?;
    Some(i64::from_le_bytes(*raw))
}

/// The Reports of a segment, in order. Stops at the first bad record: corrupt if more bytes
/// follow it, torn if it is the tail.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Result<&[u8], SegmentError>> {
    let mut at = header_len(bytes).unwrap_or(usize::MAX);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if at == usize::MAX {
            done = true;
            return Some(Err(SegmentError::NotASegment));
        }
        if at == bytes.len() {
            return None;
        }
        let record = read_record(bytes, at);
        match record {
            Ok((payload, next)) => {
                at = next;
                Some(Ok(payload))
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

fn read_record(bytes: &[u8], at: usize) -> Result<(&[u8], usize), SegmentError> {
    let torn = SegmentError::TornTail { offset: at, valid: at };
    let head = bytes.get(at..at + RECORD_HEAD).ok_or(torn)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let end = at + RECORD_HEAD + len;
    if len > MAX_RECORD {
        return Err(SegmentError::Corrupt(at));
    }
    let Some(payload) = bytes.get(at + RECORD_HEAD..end) else {
        return Err(torn);
    };
    if crc32fast::hash(payload) != crc {
        // A checksum that fails on the last record is a tear; before it, corruption.
        return Err(if end == bytes.len() { torn } else { SegmentError::Corrupt(at) });
    }
    Ok((payload, end))
}

/// The length of the whole-record prefix of a segment.
pub fn valid_len(bytes: &[u8]) -> Result<usize, SegmentError> {
    let mut at = header_len(bytes).ok_or(SegmentError::NotASegment)?;
    for r in records(bytes) {
        match r {
            Ok(payload) => at += RECORD_HEAD + payload.len(),
            Err(SegmentError::TornTail { .. }) => return Ok(at),
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// Appends records to `<dir>/<name>.part`; [`SegmentWriter::seal`] makes it `<name>.SMX`.
#[derive(Debug)]
pub struct SegmentWriter {
    file: File,
    part: PathBuf,
    /// Bytes written; all of them are whole records.
    len: u64,
    /// Bytes known to be on disk (the last successful sync).
    synced: u64,
    records: u64,
    /// The fault-injection seam (nothing set outside tests).
    faults: Option<Arc<Faults>>,
}

impl SegmentWriter {
    /// A new segment `<dir>/<name>.part`, opened at site time `created` (µs).
    pub fn create(dir: &Path, name: &str, created: i64) -> io::Result<SegmentWriter> {
        let part = dir.join(format!("{name}.{PART}"));
        let mut file = OpenOptions::new().create_new(true).write(true).open(&part)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&created.to_le_bytes());
        file.write_all(&header)?;
        Ok(SegmentWriter { file, part, len: HEADER as u64, synced: 0, records: 0, faults: None })
    }

    /// Lets `faults` fail this segment's syncs.
    pub fn with_faults(mut self, faults: Arc<Faults>) -> SegmentWriter {
        self.faults = Some(faults);
        self
    }

    /// Bytes in the segment.
    /// Where it is being written (the `.part` file).
    pub fn path(&self) -> &Path {
        &self.part
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no record has been appended.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends several Reports with vectored writes (no copy of the Reports). On error the file
    /// is cut back to what was there, so the segment stays whole.
    pub fn append_all<'r>(&mut self, reports: impl IntoIterator<Item = &'r [u8]>) -> io::Result<()> {
        let reports: Vec<&[u8]> = reports.into_iter().collect();
        if reports.iter().any(|r| r.len() > MAX_RECORD) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "record too large for a segment"));
        }
        let heads: Vec<[u8; RECORD_HEAD]> = reports
            .iter()
            .map(|r| {
                let mut head = [0u8; RECORD_HEAD];
                head[..4].copy_from_slice(&(r.len() as u32).to_le_bytes());
                head[4..].copy_from_slice(&crc32fast::hash(r).to_le_bytes());
                head
            })
            .collect();
        let mut slices: Vec<IoSlice<'_>> =
            heads.iter().zip(&reports).flat_map(|(h, r)| [IoSlice::new(h), IoSlice::new(r)]).collect();
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.file.write_vectored(rest) {
                Ok(0) => {
                    self.cut_back();
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "the inbox file took no bytes"));
                }
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.cut_back();
                    return Err(e);
                }
            }
        }
        self.len += total as u64;
        self.records += reports.len() as u64;
        Ok(())
    }

    /// Makes everything appended durable (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        let injected = self.faults.as_ref().map_or(Ok(()), |f| f.check(Disk::Inbox));
        match injected.and_then(|()| self.file.sync_data()) {
            Ok(()) => {
                self.synced = self.len;
                Ok(())
            }
            Err(e) => {
                // What was not synced is not acknowledged; drop it so later records stay whole.
                self.len = self.synced.max(HEADER as u64);
                self.cut_back();
                Err(e)
            }
        }
    }

    fn cut_back(&mut self) {
        // Best effort: if this fails too, the checksums still mark the tail as torn on recovery.
        let _ =
            self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
    }

    /// Syncs, renames `.part` to `.SMX`, syncs the directory, and returns the sealed path.
    pub fn seal(mut self) -> io::Result<PathBuf> {
        self.sync()?;
        seal_path(&self.part)
    }
}

fn seal_path(part: &Path) -> io::Result<PathBuf> {
    let sealed = part.with_extension(SEALED);
    fs::rename(part, &sealed)?;
    if let Some(dir) = part.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(sealed)
}

/// After a crash: cuts a `.part` segment back to its whole records and seals it (an empty one is
/// removed). Returns the sealed path, if any. A segment corrupt before its tail is sealed as is,
/// for StateSys to move to `corrupt/`.
pub fn recover(part: &Path) -> io::Result<Option<PathBuf>> {
    let bytes = fs::read(part)?;
    let keep = match valid_len(&bytes) {
        Ok(n) => n,
        // A crash while the header was written: nothing was acknowledged here.
        Err(SegmentError::NotASegment)
            if bytes.len() < HEADER && bytes.starts_with(&MAGIC[..bytes.len().min(MAGIC.len())]) =>
        {
            fs::remove_file(part)?;
            return Ok(None);
        }
        Err(_) => bytes.len(),
    };
    if header_len(&bytes) == Some(keep) {
        fs::remove_file(part)?;
        return Ok(None);
    }
    if keep < bytes.len() {
        let file = OpenOptions::new().write(true).open(part)?;
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    seal_path(part).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("<Report>{}</Report>", "x".repeat(i * 7)).into_bytes()).collect()
    }

    #[test]
    fn write_seal_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let all = reports(20);
        let mut w = SegmentWriter::create(dir, "0000000000000001", 42).unwrap();
        w.append_all(all[..5].iter().map(Vec::as_slice)).unwrap();
        w.sync().unwrap();
        w.append_all(all[5..].iter().map(Vec::as_slice)).unwrap();
        let sealed = w.seal().unwrap();
        assert_eq!(sealed.file_name().unwrap(), "0000000000000001.SMX");
        assert!(!dir.join("0000000000000001.part").exists());
        let bytes = fs::read(&sealed).unwrap();
        let got: Vec<&[u8]> = records(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, all.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(matches!(records(b"<Report/>").next(), Some(Err(SegmentError::NotASegment))));
        assert_eq!(created(&bytes), Some(42));
        // Version 1, written by earlier builds, still reads (with no opening time).
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&bytes[HEADER..]);
        assert_eq!(records(&v1).collect::<Result<Vec<_>, _>>().unwrap(), got);
        assert_eq!((created(&v1), valid_len(&v1)), (None, Ok(v1.len())));
    }

    /// A crash at any byte of the last record leaves every earlier record, and recovery seals
    /// exactly those.
    #[test]
    fn every_torn_tail_recovers_to_the_whole_records() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let all = reports(4);
        let mut w = SegmentWriter::create(dir, "A", 42).unwrap();
        w.append_all(all.iter().map(Vec::as_slice)).unwrap();
        let full = fs::read(dir.join("A.part")).unwrap();
        let last_start = full.len() - RECORD_HEAD - all[3].len();
        drop(w);
        for cut in last_start..full.len() {
            let part = dir.join("B.part");
            fs::write(&part, &full[..cut]).unwrap();
            let sealed = recover(&part).unwrap().unwrap();
            let bytes = fs::read(&sealed).unwrap();
            let got: Vec<&[u8]> = records(&bytes).collect::<Result<_, _>>().unwrap();
            assert_eq!(got.len(), 3, "cut at {cut}");
            fs::remove_file(sealed).unwrap();
        }
        // A flipped byte in the last record is a tear too; in an earlier one, corruption.
        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(valid_len(&flipped), Ok(last_start));
        let mut early = full.clone();
        early[HEADER + RECORD_HEAD] ^= 1;
        assert_eq!(valid_len(&early), Err(SegmentError::Corrupt(HEADER)));
        // Nothing whole, or a torn header: removed.
        for cut in [HEADER + 3, HEADER, MAGIC.len() + 3, 5] {
            let part = dir.join("C.part");
            fs::write(&part, &full[..cut]).unwrap();
            assert_eq!(recover(&part).unwrap(), None, "cut at {cut}");
            assert!(!part.exists());
        }
    }

    proptest::proptest! {
        /// Whatever records the writer takes (any bytes, any sizes, in any batches, synced or
        /// not before the seal), the reader gives back, in order.
        #[test]
        fn whatever_is_written_reads_back(
            batches in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), 0..6),
                0..6,
            ),
            opened in proptest::prelude::any::<i64>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let mut w = SegmentWriter::create(tmp.path(), "P", opened).unwrap();
            for batch in &batches {
                w.append_all(batch.iter().map(Vec::as_slice)).unwrap();
                w.sync().unwrap();
            }
            let sealed = w.seal().unwrap();
            let bytes = fs::read(&sealed).unwrap();
            let back: Vec<&[u8]> = records(&bytes).collect::<Result<_, _>>().unwrap();
            let sent: Vec<&[u8]> = batches.iter().flatten().map(Vec::as_slice).collect();
            proptest::prop_assert_eq!(back, sent);
            proptest::prop_assert_eq!(created(&bytes), Some(opened));
            proptest::prop_assert_eq!(valid_len(&bytes), Ok(bytes.len()));
        }

        /// Any bytes after the magic: records stop at the first bad one, never panic, and
        /// `valid_len` agrees with what they yield.
        #[test]
        fn arbitrary_segments_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), v1: bool) {
            let mut bytes = if v1 { MAGIC_V1.to_vec() } else { MAGIC.to_vec() };
            bytes.extend_from_slice(&tail);
            let whole: usize = records(&bytes).take_while(Result::is_ok).map(|r| RECORD_HEAD + r.unwrap().len()).sum();
            let Some(start) = header_len(&bytes) else {
                proptest::prop_assert_eq!(valid_len(&bytes), Err(SegmentError::NotASegment));
                return Ok(());
            };
            match valid_len(&bytes) {
                Ok(n) => proptest::prop_assert_eq!(n, start + whole),
                Err(e) => proptest::prop_assert!(matches!(e, SegmentError::Corrupt(_))),
            }
        }
    }
}

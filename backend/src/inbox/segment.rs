//! SMX segments: many Reports in one inbox file, so one fsync makes a whole batch durable.
//!
//! ```text
//! "SUMSTORM-SMX-SEGMENT/3\n" | created: i64 LE    magic (a plain .SMX file starts with '<' or a
//!                                                 BOM) and the site time the segment was opened
//! ( len: u32 LE | crc32: u32 LE | len' bytes of payload )*
//!   len's top bit clear: the payload is the record itself (a Report's XML, a discovery record)
//!   len's top bit set:   the payload is  raw_len: u32 LE | an LZ4 block of the raw_len bytes
//!   len' = len without its top bit; crc32 covers the payload as stored
//! ```
//! `created` (µs) is when the relay opened the segment, so every record in it was acknowledged
//! at or after that site time: StateSys judges MessageTimes against it, the same way at every
//! replay. Reports are XML that repeats itself (150 state messages are mostly the same
//! elements), so while the inbox's disk is what paces the relay it stores them LZ4-compressed
//! ([`Codec::Lz4`], about a tenth of the bytes; [`crate::inbox::adaptive`] decides when). Versions 1 (no `created`) and 2
//! (no compression) still read.
//! A segment is written as `<name>.part` and renamed to `<name>.SMX` when sealed, so StateSys
//! never reads a file still being written. A crash can leave a `.part` whose last record is torn
//! (never acknowledged: acks follow the fsync); [`recover`] cuts it back to its last whole record
//! and seals it. A bad checksum before the tail is corruption, not a tear.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::faults::{Disk, Faults};

pub const MAGIC: &[u8] = b"SUMSTORM-SMX-SEGMENT/3\n";
const MAGIC_V2: &[u8] = b"SUMSTORM-SMX-SEGMENT/2\n";
const MAGIC_V1: &[u8] = b"SUMSTORM-SMX-SEGMENT/1\n";
/// The bytes before the first record of a segment written now.
pub const HEADER: usize = MAGIC.len() + 8;
const RECORD_HEAD: usize = 8;
/// In a version-3 record's length: the payload is an LZ4 block.
const LZ4: u32 = 1 << 31;
/// Records shorter than this are stored as they are (discovery records: nothing to gain).
const COMPRESS_FROM: usize = 128;
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
    #[error("record at byte {0} is whole but does not decompress")]
    Undecodable(usize),
}

/// Largest compression buffer a thread keeps between records (a bigger record gets its own).
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    static COMPRESS_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How a record is stored (the relay chooses per record: [`crate::inbox::adaptive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// As received.
    Plain,
    /// LZ4 blocks (a record that would not shrink is stored as received).
    Lz4,
}

impl Codec {
    /// `record` as this codec stores it.
    pub fn encode(self, record: Vec<u8>) -> Encoded {
        match self {
            Codec::Lz4 if record.len() >= COMPRESS_FROM && record.len() <= MAX_RECORD => {
                let room = lz4_flex::block::get_maximum_output_size(record.len());
                // Into a buffer of the thread's, zeroed once, not per record (a fresh one of the
                // block's worst-case size cost more to clear than the block took to write).
                let payload = if room <= SCRATCH_KEPT {
                    COMPRESS_SCRATCH.with_borrow_mut(|scratch| {
                        if scratch.len() < room {
                            scratch.resize(room, 0);
                        }
                        lz4_payload(&record, scratch)
                    })
                } else {
                    lz4_payload(&record, &mut vec![0; room])
                };
                match payload {
                    Some(payload) => Encoded { payload, lz4: true },
                    None => Encoded { payload: record, lz4: false },
                }
            }
            _ => Encoded { payload: record, lz4: false },
        }
    }
}

/// `raw_len | LZ4 block` of `record`, compressed through `out` (room for the worst case), when
/// that is smaller than the record.
fn lz4_payload(record: &[u8], out: &mut [u8]) -> Option<Vec<u8>> {
    let n = lz4_flex::block::compress_into(record, out).ok()?;
    (4 + n < record.len()).then(|| {
        let mut payload = Vec::with_capacity(4 + n);
        payload.extend_from_slice(&(record.len() as u32).to_le_bytes());
        payload.extend_from_slice(&out[..n]);
        payload
    })
}

/// A record as a segment stores it ([`Codec::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    payload: Vec<u8>,
    lz4: bool,
}

impl Encoded {
    /// Bytes it takes in a segment, past its 8-byte head.
    pub fn stored_len(&self) -> usize {
        self.payload.len()
    }
}

/// What [`SegmentWriter::append_all`] takes: a record's bytes as they are, or [`Encoded`].
#[derive(Debug, Clone, Copy)]
pub struct Stored<'r> {
    payload: &'r [u8],
    lz4: bool,
}

impl<'r> From<&'r [u8]> for Stored<'r> {
    fn from(payload: &'r [u8]) -> Stored<'r> {
        Stored { payload, lz4: false }
    }
}

impl<'r> From<&'r Encoded> for Stored<'r> {
    fn from(e: &'r Encoded) -> Stored<'r> {
        Stored { payload: &e.payload, lz4: e.lz4 }
    }
}

/// A whole record read from a segment (its checksum held).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    payload: &'a [u8],
    lz4: bool,
    /// Where its head starts in the segment.
    at: usize,
}

impl<'a> Record<'a> {
    /// The record's bytes: borrowed from the segment when stored as they are, decompressed into
    /// `scratch` (reused from record to record) otherwise.
    pub fn bytes<'b>(&self, scratch: &'b mut Vec<u8>) -> Result<&'b [u8], SegmentError>
    where
        'a: 'b,
    {
        if !self.lz4 {
            return Ok(self.payload);
        }
        let bad = SegmentError::Undecodable(self.at);
        let (len, block) = self.payload.split_first_chunk::<4>().ok_or(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_RECORD {
            return Err(bad);
        }
        scratch.clear();
        scratch.resize(len, 0);
        match lz4_flex::block::decompress_into(block, scratch) {
            Ok(n) if n == len => Ok(&scratch[..]),
            _ => Err(bad),
        }
    }

    /// The record's bytes, owned.
    pub fn to_vec(&self) -> Result<Vec<u8>, SegmentError> {
        let mut scratch = Vec::new();
        self.bytes(&mut scratch).map(<[u8]>::to_vec)
    }

    /// Bytes it takes in the segment, head included.
    fn extent(&self) -> usize {
        RECORD_HEAD + self.payload.len()
    }
}

/// Whether `bytes` are a segment (rather than a plain one-Report SMX file).
pub fn is_segment(bytes: &[u8]) -> bool {
    [MAGIC, MAGIC_V2, MAGIC_V1].iter().any(|m| bytes.starts_with(m))
}

/// Where a segment's records start; `None` if it is not a (whole-headed) segment.
fn header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(MAGIC_V1) {
        Some(MAGIC_V1.len())
    } else {
        ((bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V2)) && bytes.len() >= HEADER).then_some(HEADER)
    }
}

/// The site time (µs) a segment of version 2 or later was opened; `None` for version 1 and
/// non-segments.
pub fn created(bytes: &[u8]) -> Option<i64> {
    let raw = bytes.strip_prefix(MAGIC).or_else(|| bytes.strip_prefix(MAGIC_V2))?.first_chunk::<8>()?;
    Some(i64::from_le_bytes(*raw))
}

/// The records of a segment, in order. Stops at the first bad record: corrupt if more bytes
/// follow it, torn if it is the tail.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Result<Record<'_>, SegmentError>> {
    // Only version 3 compresses: in earlier versions a length with its top bit set is corrupt.
    let compressed = bytes.starts_with(MAGIC);
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
        let record = read_record(bytes, at, compressed);
        match record {
            Ok(record) => {
                at += record.extent();
                Some(Ok(record))
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

fn read_record(bytes: &[u8], at: usize, compressed: bool) -> Result<Record<'_>, SegmentError> {
    let torn = SegmentError::TornTail { offset: at, valid: at };
    let head = bytes.get(at..at + RECORD_HEAD).ok_or(torn)?;
    let mut len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let lz4 = compressed && len & LZ4 != 0;
    if lz4 {
        len &= !LZ4;
    }
    let len = len as usize;
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
    Ok(Record { payload, lz4, at })
}

/// The length of the whole-record prefix of a segment.
pub fn valid_len(bytes: &[u8]) -> Result<usize, SegmentError> {
    let mut at = header_len(bytes).ok_or(SegmentError::NotASegment)?;
    for r in records(bytes) {
        match r {
            Ok(record) => at += record.extent(),
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

    /// Where it is being written (the `.part` file).
    pub fn path(&self) -> &Path {
        &self.part
    }

    /// Whether no record has been appended.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends several records (a Report's bytes, or as [`Codec::encode`] stored them) with
    /// vectored writes (no copy of the records). On error the file is cut back to what was
    /// there, so the segment stays whole.
    pub fn append_all<'r, R: Into<Stored<'r>>>(
        &mut self,
        records: impl IntoIterator<Item = R>,
    ) -> io::Result<()> {
        let records: Vec<Stored<'r>> = records.into_iter().map(Into::into).collect();
        if records.iter().any(|r| r.payload.len() > MAX_RECORD) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "record too large for a segment"));
        }
        let heads: Vec<[u8; RECORD_HEAD]> = records
            .iter()
            .map(|r| {
                let len = r.payload.len() as u32 | if r.lz4 { LZ4 } else { 0 };
                let mut head = [0u8; RECORD_HEAD];
                head[..4].copy_from_slice(&len.to_le_bytes());
                head[4..].copy_from_slice(&crc32fast::hash(r.payload).to_le_bytes());
                head
            })
            .collect();
        let mut slices: Vec<IoSlice<'_>> = heads
            .iter()
            .zip(&records)
            .flat_map(|(h, r)| [IoSlice::new(h), IoSlice::new(r.payload)])
            .collect();
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
        self.records += records.len() as u64;
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

    /// Every record of a segment, decoded.
    fn read_all(bytes: &[u8]) -> Result<Vec<Vec<u8>>, SegmentError> {
        records(bytes).map(|r| r.and_then(|r| r.to_vec())).collect()
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
        assert_eq!(read_all(&bytes).unwrap(), all);
        assert!(matches!(records(b"<Report/>").next(), Some(Err(SegmentError::NotASegment))));
        assert_eq!(created(&bytes), Some(42));
        // Versions 1 and 2, written by earlier builds, still read (1 with no opening time).
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&bytes[HEADER..]);
        assert_eq!(read_all(&v1).unwrap(), all);
        assert_eq!((created(&v1), valid_len(&v1)), (None, Ok(v1.len())));
        let mut v2 = MAGIC_V2.to_vec();
        v2.extend_from_slice(&bytes[MAGIC.len()..]);
        assert_eq!(read_all(&v2).unwrap(), all);
        assert_eq!((created(&v2), valid_len(&v2)), (Some(42), Ok(v2.len())));
    }

    /// LZ4 records read back as the bytes that went in, beside plain ones; a Report's repeated
    /// XML takes a fraction of its size; a short or incompressible record is stored as it is.
    #[test]
    fn compressed_records_read_back_as_they_went_in() {
        let tmp = tempfile::tempdir().unwrap();
        let report = crate::fixtures::fixture("report-three-messages.xml");
        let short = b"<Report/>".to_vec();
        // xorshift: bytes without repeats for LZ4 to find.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let encoded: Vec<Encoded> =
            [&report, &short, &noise].into_iter().map(|r| Codec::Lz4.encode(r.clone())).collect();
        assert!(
            encoded[0].lz4 && encoded[0].stored_len() * 4 < report.len() * 3,
            "{}",
            encoded[0].stored_len()
        );
        assert!(!encoded[1].lz4 && !encoded[2].lz4);
        assert_eq!(Codec::Plain.encode(report.clone()), Encoded { payload: report.clone(), lz4: false });
        let mut w = SegmentWriter::create(tmp.path(), "Z", 7).unwrap();
        w.append_all(&encoded).unwrap();
        w.append_all([report.as_slice()]).unwrap();
        let bytes = fs::read(w.seal().unwrap()).unwrap();
        assert_eq!(read_all(&bytes).unwrap(), [report.clone(), short, noise, report.clone()]);
        assert_eq!(valid_len(&bytes), Ok(bytes.len()));
        // One scratch buffer serves every record.
        let mut scratch = Vec::new();
        for r in records(&bytes) {
            assert!(!r.unwrap().bytes(&mut scratch).unwrap().is_empty());
        }
        // A version-2 reader's view of the same bytes: the flagged length is corrupt, not a
        // record to decompress.
        let mut v2 = MAGIC_V2.to_vec();
        v2.extend_from_slice(&bytes[MAGIC.len()..]);
        assert_eq!(read_all(&v2), Err(SegmentError::Corrupt(HEADER)));
    }

    /// A whole record (its checksum holds) whose block does not decompress, or says it holds
    /// more than a record may, is named with its offset; the records around it still read.
    #[test]
    fn an_undecodable_record_is_named_and_the_rest_read() {
        let tmp = tempfile::tempdir().unwrap();
        let report = crate::fixtures::fixture("report-three-messages.xml");
        let good = Codec::Lz4.encode(report.clone());
        let mut bad_block = good.clone();
        bad_block.payload.truncate(bad_block.payload.len() / 2);
        let mut too_long = good.clone();
        too_long.payload[..4].copy_from_slice(&(MAX_RECORD as u32 + 1).to_le_bytes());
        let mut w = SegmentWriter::create(tmp.path(), "U", 0).unwrap();
        w.append_all([&good, &bad_block, &too_long, &good]).unwrap();
        let bytes = fs::read(w.seal().unwrap()).unwrap();
        let got: Vec<_> = records(&bytes).map(|r| r.unwrap().to_vec()).collect();
        let second = HEADER + RECORD_HEAD + good.stored_len();
        let third = second + RECORD_HEAD + bad_block.stored_len();
        assert_eq!(
            got,
            [
                Ok(report.clone()),
                Err(SegmentError::Undecodable(second)),
                Err(SegmentError::Undecodable(third)),
                Ok(report)
            ]
        );
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
            assert_eq!(read_all(&bytes).unwrap().len(), 3, "cut at {cut}");
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
        /// Whatever records the writer takes (any bytes, any sizes, in any batches, stored as
        /// they are or compressed, synced or not before the seal), the reader gives back, in
        /// order.
        #[test]
        fn whatever_is_written_reads_back(
            batches in proptest::collection::vec(
                proptest::collection::vec(
                    (proptest::collection::vec(0u8..4, 0..600), proptest::prelude::any::<bool>()),
                    0..6,
                ),
                0..6,
            ),
            noisy in proptest::prelude::any::<bool>(),
            opened in proptest::prelude::any::<i64>(),
        ) {
            // Bytes from a small alphabet compress; `noisy` spreads them over every value.
            let record = |r: &Vec<u8>| -> Vec<u8> {
                if noisy { r.iter().enumerate().map(|(i, b)| b.wrapping_mul(67).wrapping_add(i as u8)).collect() } else { r.clone() }
            };
            let tmp = tempfile::tempdir().unwrap();
            let mut w = SegmentWriter::create(tmp.path(), "P", opened).unwrap();
            for batch in &batches {
                let encoded: Vec<Encoded> = batch
                    .iter()
                    .map(|(r, lz4)| if *lz4 { Codec::Lz4 } else { Codec::Plain }.encode(record(r)))
                    .collect();
                w.append_all(&encoded).unwrap();
                w.sync().unwrap();
            }
            let sealed = w.seal().unwrap();
            let bytes = fs::read(&sealed).unwrap();
            let sent: Vec<Vec<u8>> = batches.iter().flatten().map(|(r, _)| record(r)).collect();
            proptest::prop_assert_eq!(read_all(&bytes).unwrap(), sent);
            proptest::prop_assert_eq!(created(&bytes), Some(opened));
            proptest::prop_assert_eq!(valid_len(&bytes), Ok(bytes.len()));
        }

        /// Any bytes after the magic (of each version): records stop at the first bad one,
        /// never panic, decoding one never panics, and `valid_len` agrees with what they yield.
        #[test]
        fn arbitrary_segments_never_panic(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            version in 1..=3usize,
        ) {
            let mut bytes = [MAGIC_V1, MAGIC_V2, MAGIC][version - 1].to_vec();
            bytes.extend_from_slice(&tail);
            let mut scratch = Vec::new();
            let mut whole = 0;
            for r in records(&bytes).take_while(Result::is_ok) {
                let r = r.unwrap();
                whole += r.extent();
                let _ = r.bytes(&mut scratch);
            }
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

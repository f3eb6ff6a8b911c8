//! Appends that skip the page cache, for files written once and read back only when the
//! process starts again: the store's log and its base ([`crate::statesys::checkpoint`]).
//!
//! A buffered write copies every byte into freshly allocated page-cache pages (the kernel zeroes
//! them first), which the `fdatasync` then writes and nobody reads. Opened with `O_DIRECT`, the
//! file takes the bytes straight from the writer's buffer to the device. `O_DIRECT` wants the
//! offset, the length and the buffer aligned to the device's blocks, so writes here are whole
//! blocks from a [`BlockBuf`] (bytes that start on a block in memory, padded with zeros to the
//! next one) at a multiple of [`BLOCK`]; the formats written through it say where their records
//! start. A filesystem that refuses `O_DIRECT` (tmpfs, some overlay
//! filesystems) gets the same bytes through the page cache.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The alignment of direct writes (a page: every block device's logical block divides it).
pub const BLOCK: usize = 4096;
const ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Direct writes go to the device in pieces of this size, each waited for before the next, so
/// a checkpoint frame of tens of megabytes never queues ahead of the inbox's `fdatasync` for
/// more than a piece's time (about a millisecond on these disks).
pub const DIRECT_PIECE: usize = 1 << 20;

/// `n` rounded up to a multiple of [`BLOCK`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A file written in whole blocks, directly when the filesystem allows it.
#[derive(Debug)]
pub struct BlockFile {
    file: File,
    path: PathBuf,
    direct: bool,
}

impl BlockFile {
    /// Opens an existing file for reading and writing, directly if the filesystem allows it.
    pub fn open(path: &Path) -> io::Result<BlockFile> {
        let direct = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path);
        let (file, direct) = match direct {
            Ok(file) => (file, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (Self::buffered(path)?, false),
            Err(e) => return Err(e),
        };
        Ok(BlockFile { file, path: path.to_path_buf(), direct })
    }

    fn buffered(path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether writes skip the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes whole blocks (as [`BlockBuf::blocks`] gives them) at `at`, a multiple of
    /// [`BLOCK`].
    pub fn write_blocks(&mut self, at: u64, blocks: &[u8]) -> io::Result<()> {
        debug_assert!(at.is_multiple_of(BLOCK as u64) && blocks.len().is_multiple_of(BLOCK), "whole blocks");
        if self.direct {
            let mut written = 0;
            // Piece by piece, each waited for: a direct write of the whole would queue all of it
            // at the device at once, ahead of the inbox's next `fdatasync`.
            for piece in blocks.chunks(DIRECT_PIECE) {
                match self.file.write_all_at(piece, at + written as u64) {
                    Ok(()) => written += piece.len(),
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) && written == 0 => {
                        // Opened, but the filesystem will not write directly after all.
                        self.file = Self::buffered(&self.path)?;
                        self.direct = false;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.direct {
                return Ok(());
            }
        }
        self.file.write_all_at(blocks, at)
    }

    /// Writes `bytes` at `at` and zeros to the next multiple of [`BLOCK`], through the page
    /// cache (a file's header, written once).
    pub fn write_padded(file: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
        file.write_all_at(bytes, at)?;
        let end = at + bytes.len() as u64;
        file.write_all_at(&ZEROS[..(align_up(end) - end) as usize], end)
    }
}

/// A growable buffer whose bytes start on a block in memory, so that a direct write takes them
/// where they are (no copy into a staging buffer). The bytes before the start are slack.
#[derive(Debug, Default)]
pub struct BlockBuf {
    buf: Vec<u8>,
    start: usize,
}

impl BlockBuf {
    /// The bytes held.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// Appends `bytes`.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.buf.capacity() == 0 {
            self.clear();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Where encoders append. Only appending is allowed (the bytes before the start are slack).
    pub fn vec(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.clear();
        }
        &mut self.buf
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.reserve(2 * BLOCK);
        self.start = self.buf.as_ptr().align_offset(BLOCK);
        self.buf.resize(self.start, 0);
    }

    /// The bytes padded with zeros to whole blocks, starting on a block in memory (moved there
    /// if the buffer grew and moved), as [`BlockFile::write_blocks`] wants them.
    pub fn blocks(&mut self) -> &[u8] {
        let padded = align_up(self.len() as u64) as usize;
        self.realign(padded - self.len());
        self.buf.resize(self.start + padded, 0);
        &self.buf[self.start..]
    }

    /// Moves the bytes back onto a block if the buffer grew and moved, with room for `more`.
    fn realign(&mut self, more: usize) {
        let len = self.len();
        // Room for `more` and for moving: the resizes below stay in place.
        self.buf.reserve(more + BLOCK);
        let want = self.buf.as_ptr().align_offset(BLOCK);
        if want != self.start {
            let (old, end) = (self.start, self.buf.len());
            if want > old {
                self.buf.resize(want + len, 0);
            }
            self.buf.copy_within(old..end, want);
            self.buf.truncate(want + len);
            self.start = want;
        }
    }

    /// Writes the whole blocks it holds to `file` at `at` and keeps the rest (less than a
    /// block): the bytes written. For a stream written in pieces.
    pub fn write_whole_blocks(&mut self, file: &mut BlockFile, at: u64) -> io::Result<u64> {
        let whole = self.len() / BLOCK * BLOCK;
        if whole > 0 {
            self.realign(0);
            file.write_blocks(at, &self.buf[self.start..self.start + whole])?;
            let (rest, end) = (self.start + whole, self.buf.len());
            self.buf.copy_within(rest..end, self.start);
            self.buf.truncate(self.start + end - rest);
        }
        Ok(whole as u64)
    }

    /// Hands `range` of the bytes over without a copy, leaving the buffer empty (and without
    /// memory).
    pub fn take(&mut self, range: std::ops::Range<usize>) -> bytes::Bytes {
        let start = self.start;
        self.start = 0;
        bytes::Bytes::from(std::mem::take(&mut self.buf)).slice(start + range.start..start + range.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever is appended (in whatever pieces, however the buffer grows), the blocks are
        /// those bytes and zeros to the block, start on a block in memory, and land in the file
        /// where they are written, directly or not.
        #[test]
        fn what_is_written_is_there(
            writes in proptest::collection::vec(
                (0u64..4, proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9000), 0..4)),
                1..5,
            ),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("f");
            std::fs::write(&path, b"").unwrap();
            let mut f = BlockFile::open(&path).unwrap();
            let (mut expect, mut buf) = (Vec::new(), BlockBuf::default());
            for (block, parts) in &writes {
                buf.clear();
                for (k, part) in parts.iter().enumerate() {
                    if k % 2 == 0 { buf.extend(part) } else { buf.vec().extend_from_slice(part) }
                }
                let data: Vec<u8> = parts.concat();
                proptest::prop_assert_eq!(buf.bytes(), &data[..]);
                let blocks = buf.blocks();
                proptest::prop_assert_eq!(blocks.as_ptr().align_offset(BLOCK), 0);
                proptest::prop_assert_eq!(blocks.len() as u64, align_up(data.len() as u64));
                proptest::prop_assert_eq!(&blocks[..data.len()], &data[..]);
                proptest::prop_assert!(blocks[data.len()..].iter().all(|&b| b == 0));
                let at = (block * BLOCK as u64) as usize;
                f.write_blocks(at as u64, blocks).unwrap();
                if !blocks.is_empty() {
                    expect.resize(expect.len().max(at + blocks.len()), 0);
                    expect[at..at + blocks.len()].copy_from_slice(blocks);
                }
                let taken = buf.take(1.min(data.len())..data.len());
                proptest::prop_assert_eq!(&taken[..], &data[1.min(data.len())..]);
            }
            f.file().sync_data().unwrap();
            proptest::prop_assert_eq!(std::fs::read(&path).unwrap(), expect);
        }
    }

    proptest::proptest! {
        /// A stream written in pieces (whole blocks as they fill, the rest padded at the end)
        /// is the stream, then zeros.
        #[test]
        fn a_stream_in_pieces_is_the_stream(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12000), 0..8),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("f");
            std::fs::write(&path, b"").unwrap();
            let (mut f, mut buf, mut at) = (BlockFile::open(&path).unwrap(), BlockBuf::default(), 0);
            for piece in &pieces {
                buf.extend(piece);
                at += buf.write_whole_blocks(&mut f, at).unwrap();
                proptest::prop_assert!(buf.len() < BLOCK);
            }
            f.write_blocks(at, buf.blocks()).unwrap();
            let stream = pieces.concat();
            let back = std::fs::read(&path).unwrap();
            proptest::prop_assert_eq!(&back[..stream.len()], &stream[..]);
            proptest::prop_assert!(back[stream.len()..].iter().all(|&b| b == 0));
        }
    }

    /// Where the filesystem allows it (ext4, xfs: this machine's and CI's disks), writes are
    /// direct, in pieces of [`DIRECT_PIECE`] (here four and a short one, each where it
    /// belongs); a buffer that grew and moved is moved back onto a block.
    #[test]
    fn grown_buffers_realign() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let mut f = BlockFile::open(&path).unwrap();
        let mut buf = BlockBuf::default();
        let big: Vec<u8> = (0..4 * DIRECT_PIECE + 77).map(|i| (i % 251) as u8).collect();
        for piece in big.chunks(1000) {
            buf.extend(piece);
        }
        f.write_blocks(BLOCK as u64, buf.blocks()).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[BLOCK..BLOCK + big.len()], &big[..]);
        assert!(back[..BLOCK].iter().chain(&back[BLOCK + big.len()..]).all(|&b| b == 0));
        eprintln!("direct writes: {}", f.is_direct());
    }
}

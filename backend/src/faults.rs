//! Disk trouble on demand (issue 7 §2): the one seam where the inbox writer's `fdatasync` and
//! the checkpoint's `fsync` ask whether to fail, so tests can fill or break the disk without a
//! small filesystem. Off unless `backend serve --fault-injection`; then `POST /api/v1/faults`
//! (an admin call) sets it. Each check is one relaxed atomic load.
//!
//! A failure is injected where the real one bites hardest: after the bytes were written and
//! before they are known to be on disk, so the error paths (cut the segment back to what was
//! synced, keep the old checkpoint) run as they would on a full or failing disk.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

/// What fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// The relay's inbox segments (and the MP outbox when remote).
    Inbox,
    /// StateSys's checkpoint.
    Checkpoint,
}

/// How it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `ENOSPC`: no space left on device.
    NoSpace,
    /// `EIO`: an I/O error.
    Io,
}

impl Fault {
    /// `"enospc"` or `"eio"`.
    pub fn parse(name: &str) -> Option<Fault> {
        match name.to_ascii_lowercase().as_str() {
            "enospc" => Some(Fault::NoSpace),
            "eio" => Some(Fault::Io),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::NoSpace => "enospc",
            Fault::Io => "eio",
        }
    }

    fn error(self) -> io::Error {
        let (kind, what) = match self {
            Fault::NoSpace => (io::ErrorKind::StorageFull, "No space left on device (injected)"),
            Fault::Io => (io::ErrorKind::Other, "Input/output error (injected)"),
        };
        io::Error::new(kind, what)
    }

    fn code(f: Option<Fault>) -> u8 {
        match f {
            None => 0,
            Some(Fault::NoSpace) => 1,
            Some(Fault::Io) => 2,
        }
    }

    fn from_code(c: u8) -> Option<Fault> {
        match c {
            1 => Some(Fault::NoSpace),
            2 => Some(Fault::Io),
            _ => None,
        }
    }
}

/// The faults in force.
#[derive(Debug, Default)]
pub struct Faults {
    inbox: AtomicU8,
    checkpoint: AtomicU8,
}

impl Faults {
    fn cell(&self, disk: Disk) -> &AtomicU8 {
        match disk {
            Disk::Inbox => &self.inbox,
            Disk::Checkpoint => &self.checkpoint,
        }
    }

    pub fn set(&self, disk: Disk, fault: Option<Fault>) {
        self.cell(disk).store(Fault::code(fault), Ordering::Relaxed);
    }

    pub fn get(&self, disk: Disk) -> Option<Fault> {
        Fault::from_code(self.cell(disk).load(Ordering::Relaxed))
    }

    /// `Err` while a fault is set for `disk`.
    pub fn check(&self, disk: Disk) -> io::Result<()> {
        self.get(disk).map_or(Ok(()), |f| Err(f.error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_check_clear() {
        let f = Faults::default();
        assert!(f.check(Disk::Inbox).is_ok());
        f.set(Disk::Inbox, Fault::parse("ENOSPC"));
        assert_eq!(f.check(Disk::Inbox).unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert!(f.check(Disk::Checkpoint).is_ok());
        f.set(Disk::Checkpoint, Some(Fault::Io));
        assert!(f.check(Disk::Checkpoint).unwrap_err().to_string().contains("Input/output"));
        f.set(Disk::Inbox, None);
        assert!(f.check(Disk::Inbox).is_ok());
        assert_eq!(Fault::parse("full"), None);
    }
}

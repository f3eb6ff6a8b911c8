//! MP File Dispatch Manager, for an MP that is not on the site server (seed, "State message
//! processing flow", step 4): the relay writes into `mp/outboxes/StateMsg.box`, and MPFDM moves each
//! sealed file into the site's `statesys.box/incoming`, logging
//! `Moved file <outbox>\X.SMX to <inbox>\X.SMX`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::inbox::segment::{self, PART, SEALED};
use crate::logs::ComponentLog;

/// Moves one sealed file from the outbox into `incoming`, durably (the rename is synced in both
/// folders before the file counts as moved). Returns where it went.
pub fn dispatch(file: &Path, incoming: &Path, log: &ComponentLog) -> io::Result<PathBuf> {
    let name = file.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let to = incoming.join(name);
    match fs::rename(file, &to) {
        Ok(()) => {}
        // Another filesystem (a real remote MP's share): copy, sync, then remove the original.
        Err(e) if e.raw_os_error() == Some(18) => {
            fs::copy(file, &to)?;
            File::open(&to)?.sync_all()?;
            fs::remove_file(file)?;
        }
        Err(e) => return Err(e),
    }
    File::open(incoming)?.sync_all()?;
    if let Some(outbox) = file.parent() {
        File::open(outbox)?.sync_all()?;
    }
    log.info(&format!("Moved file {} to {}", file.display(), to.display()));
    Ok(to)
}

/// At start: recovers segments a crash left being written in the outbox, then moves every sealed
/// file on. Returns how many were moved.
pub fn dispatch_all(outbox: &Path, incoming: &Path, log: &ComponentLog) -> io::Result<usize> {
    let mut moved = 0usize;
    let mut entries: Vec<PathBuf> = match fs::read_dir(outbox) {
        Ok(e) => e.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    entries.sort();
    for path in entries {
        let ext = path.extension().map(|x| x.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let sealed = if ext == PART {
            segment::recover(&path)?
        } else if ext == SEALED.to_ascii_lowercase() {
            Some(path)
        } else {
            None
        };
        if let Some(file) = sealed {
            dispatch(&file, incoming, log)?;
            moved = moved.saturating_add(1);
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SiteClock;
    use crate::inbox::segment::SegmentWriter;
    use crate::logs::Format;

    #[test]
    fn moves_sealed_files_and_recovers_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let (outbox, incoming) = (tmp.path().join("mp/outboxes/StateMsg.box"), tmp.path().join("incoming"));
        fs::create_dir_all(&outbox).unwrap();
        fs::create_dir_all(&incoming).unwrap();
        let log = ComponentLog::open(
            &tmp.path().join("logs"),
            "MPFDM.log",
            "SMS_MP_FILE_DISPATCH_MANAGER",
            Format::Site,
            SiteClock::real_time(),
        )
        .unwrap();
        fs::write(outbox.join("TAZGYTSJ.SMX"), b"<Report/>").unwrap();
        let mut seg = SegmentWriter::create(&outbox, "0000000000000001", 0).unwrap();
        seg.append_all([b"<Report/>".as_slice()]).unwrap();
        seg.sync().unwrap();
        drop(seg);
        assert_eq!(dispatch_all(&outbox, &incoming, &log).unwrap(), 2);
        assert_eq!(fs::read_dir(&outbox).unwrap().count(), 0);
        assert!(incoming.join("TAZGYTSJ.SMX").exists());
        assert!(incoming.join("0000000000000001.SMX").exists());
        let text = fs::read_to_string(tmp.path().join("logs/MPFDM.log")).unwrap();
        assert!(text.contains("Moved file ") && text.contains("TAZGYTSJ.SMX to "), "{text}");
        assert!(text.contains("$$<SMS_MP_FILE_DISPATCH_MANAGER>"));
    }
}

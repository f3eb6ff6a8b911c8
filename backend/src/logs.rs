//! Component logs in the product's two formats (flow.md §9), rolled over at 250,000 bytes to
//! `.lo_` as ConfigMgr does, so CMTrace and OneTrace read them. Components log per batch, never
//! per message; a line is formatted outside the lock and written under it.
//!
//! - MP components (`MP_Relay.log`, `MP_Location.log`):
//!   `<![LOG[message]LOG]!><time="HH:mm:ss.fff+000" date="MM-dd-yyyy" component="MP_RelayEndpoint" context="" type="1" thread="4316" file="">`
//! - Site-server components (`StateSys.log`, `PolicyPv.log`, `SMSDBMON.log`, `MPFDM.log`,
//!   `WSyncMgr.log`): `message~  $$<SMS_STATE_SYSTEM><MM-DD-YYYY HH:MM:SS.mmm+000><thread=4316 (0x10DC)>`

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use protocol::Timestamp;
use protocol::cimtime::civil_from_days;

use crate::clock::SiteClock;

/// The size at which a log rolls over.
pub const ROLLOVER_BYTES: u64 = 250_000;

/// Which of the product's two line formats a log uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Client and MP components: the CMTrace `<![LOG[...]LOG]!>` form.
    Mp,
    /// Site-server components: `message~  $$<COMPONENT><date time><thread=...>`.
    Site,
}

/// Line severity (`type` in the MP format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// A small number per OS thread, stable for the thread's life, for the `thread` field.
fn thread_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(4316);
    thread_local!(static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

/// One component log file.
#[derive(Debug)]
pub struct ComponentLog {
    path: PathBuf,
    component: String,
    format: Format,
    clock: SiteClock,
    /// The open file and its size; the lock is held only to write a formatted line and to roll
    /// over, so components logging per batch never contend for long.
    file: Mutex<(File, u64)>,
}

impl ComponentLog {
    /// Opens (appending to) `dir/<file_name>`, e.g. `StateSys.log`, for `component`
    /// (`SMS_STATE_SYSTEM`, `MP_RelayEndpoint`, ...).
    pub fn open(
        dir: &Path,
        file_name: &str,
        component: &str,
        format: Format,
        clock: SiteClock,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(file_name);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(ComponentLog {
            path,
            component: component.to_owned(),
            format,
            clock,
            file: Mutex::new((file, size)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs an informational line.
    pub fn info(&self, message: &str) {
        self.log(Severity::Info, message);
    }

    /// Logs a line. I/O errors go to stderr: a full disk must not stop the component.
    pub fn log(&self, severity: Severity, message: &str) {
        let line = self.format_line(severity, message, self.clock.now(), thread_number());
        if let Err(e) = self.write(&line) {
            eprintln!("sumstorm: cannot write {}: {e}", self.path.display());
        }
    }

    fn write(&self, line: &str) -> io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (file, size) = &mut *guard;
        if *size > 0 && *size + line.len() as u64 > ROLLOVER_BYTES {
            file.flush()?;
            fs::rename(&self.path, self.path.with_extension("lo_"))?;
            *file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            *size = 0;
        }
        file.write_all(line.as_bytes())?;
        *size += line.len() as u64;
        Ok(())
    }

    /// A line in this log's format, newline included.
    fn format_line(&self, severity: Severity, message: &str, at: Timestamp, thread: u32) -> String {
        let message = &*safe_message(message);
        let secs = at.unix_seconds();
        let millis = at.0.rem_euclid(1_000_000) / 1000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
        let mut line = String::with_capacity(message.len() + 160);
        // Writing into a String cannot fail.
        let _ = match self.format {
            Format::Mp => writeln!(
                line,
                "<![LOG[{message}]LOG]!><time=\"{h:02}:{mi:02}:{s:02}.{millis:03}+000\" date=\"{mo:02}-{d:02}-{y:04}\" \
                 component=\"{}\" context=\"\" type=\"{}\" thread=\"{thread}\" file=\"\">",
                self.component, severity as u8
            ),
            Format::Site => writeln!(
                line,
                "{message}~  $$<{}><{mo:02}-{d:02}-{y:04} {h:02}:{mi:02}:{s:02}.{millis:03}+000><thread={thread} (0x{thread:X})>",
                self.component
            ),
        };
        line
    }
}

/// The longest message a line holds; longer ones are cut and marked.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// `message` made safe to write into a line: what a client sent may reach a log, so line ends
/// are escaped (`\n`, `\r`), other control characters become `?`, the two formats' entry
/// delimiters (`<![LOG[`, `]LOG]!>`, `$$<`) are defused, and the message is cut at
/// [`MAX_MESSAGE_BYTES`]. One call is one entry, whatever the message holds.
pub fn safe_message(message: &str) -> std::borrow::Cow<'_, str> {
    let clean = !message.contains(|c: char| c.is_control() && c != '\t')
        && !message.contains("]LOG]!>")
        && !message.contains("$$<")
        && !message.contains("<![LOG[");
    if clean && message.len() <= MAX_MESSAGE_BYTES {
        return std::borrow::Cow::Borrowed(message);
    }
    let cut = protocol::names::clip(message, MAX_MESSAGE_BYTES);
    let mut out = String::with_capacity(cut.len() + 32);
    for c in cut.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    let mut out =
        out.replace("]LOG]!>", "]LOG]!&gt;").replace("<![LOG[", "&lt;![LOG[").replace("$$<", "$$&lt;");
    if cut.len() < message.len() {
        out.push_str(" <Message Truncated>");
    }
    std::borrow::Cow::Owned(out)
}

/// A log for events that come per message (location requests, relayed Reports): at most one
/// entry group per `every` of real time, written for the message that finds the slot free, with
/// how many messages went by unlogged since the last group. Per-message logging at storm rates
/// would be the bottleneck it is meant to observe.
#[derive(Debug)]
pub struct SampledLog {
    log: std::sync::Arc<ComponentLog>,
    every_micros: u64,
    origin: Instant,
    /// Microseconds since `origin` of the last group, and messages since.
    last: AtomicU64,
    skipped: AtomicU64,
}

impl SampledLog {
    /// Over `log`, which others may share (a component's unsampled lines go to the same file).
    pub fn new(log: impl Into<std::sync::Arc<ComponentLog>>, every: std::time::Duration) -> SampledLog {
        SampledLog {
            log: log.into(),
            every_micros: every.as_micros() as u64,
            origin: Instant::now(),
            last: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Logs the lines `lines()` makes, if this message gets the slot; otherwise counts it.
    pub fn sample<I: IntoIterator<Item = String>>(&self, lines: impl FnOnce() -> I) {
        let now = self.origin.elapsed().as_micros() as u64 + self.every_micros;
        let last = self.last.load(Ordering::Relaxed);
        if now < last + self.every_micros
            || self.last.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let skipped = self.skipped.swap(0, Ordering::Relaxed);
        if skipped > 0 {
            self.log.info(&format!("({skipped} more messages handled since the last entry)"));
        }
        for line in lines() {
            self.log.info(&line);
        }
    }

    pub fn log(&self) -> &ComponentLog {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client sends cannot forge an entry in either format, nor make a giant line.
    #[test]
    fn client_text_stays_one_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = SiteClock::new(Timestamp(0), 1.0);
        let at = Timestamp(0);
        let forged =
            "x]LOG]!><time=\"00:00:00.000+000\">\r\n<![LOG[Forged entry]LOG]!> $$<SMS_STATE_SYSTEM>\u{7}";
        for format in [Format::Mp, Format::Site] {
            let log = ComponentLog::open(tmp.path(), "X.log", "X", format, clock).unwrap();
            let line = log.format_line(Severity::Info, forged, at, 1);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert!(!line.contains('\r') && !line.contains('\u{7}'));
            assert_eq!(line.matches("]LOG]!>").count(), usize::from(format == Format::Mp), "{line}");
            assert_eq!(line.matches("$$<").count(), usize::from(format == Format::Site), "{line}");
            let long = log.format_line(Severity::Info, &"é".repeat(MAX_MESSAGE_BYTES), at, 1);
            assert!(long.len() < MAX_MESSAGE_BYTES + 300 && long.contains("<Message Truncated>"));
        }
        assert!(matches!(safe_message("Processed 3 records."), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn both_formats_match_the_product() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let clock = SiteClock::new(Timestamp(0), 1.0);
        let at = Timestamp::parse_iso(b"2014-01-20T17:18:55.573Z").unwrap();
        let site = ComponentLog::open(dir, "StateSys.log", "SMS_STATE_SYSTEM", Format::Site, clock).unwrap();
        assert_eq!(
            site.format_line(Severity::Info, "Processed 1 records with 0 invalid records.", at, 4316),
            "Processed 1 records with 0 invalid records.~  $$<SMS_STATE_SYSTEM><01-20-2014 17:18:55.573+000><thread=4316 (0x10DC)>\n"
        );
        let mp = ComponentLog::open(dir, "MP_Relay.log", "MP_RelayEndpoint", Format::Mp, clock).unwrap();
        assert_eq!(
            mp.format_line(Severity::Warning, "Relay: Outbox dir: x", at, 7),
            "<![LOG[Relay: Outbox dir: x]LOG]!><time=\"17:18:55.573+000\" date=\"01-20-2014\" component=\"MP_RelayEndpoint\" context=\"\" type=\"2\" thread=\"7\" file=\"\">\n"
        );
    }

    #[test]
    fn sampled_logs_write_one_group_per_interval_and_count_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let log = ComponentLog::open(
            tmp.path(),
            "MP_Location.log",
            "MP_LocationManager",
            Format::Mp,
            SiteClock::real_time(),
        )
        .unwrap();
        let sampled = SampledLog::new(log, std::time::Duration::from_secs(3600));
        for i in 0..100 {
            sampled.sample(|| [format!("MP LM: message {i}")]);
        }
        let text = fs::read_to_string(tmp.path().join("MP_Location.log")).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("MP LM: message 0"));
        let fast = SampledLog::new(
            ComponentLog::open(
                tmp.path(),
                "MP_Relay.log",
                "MP_RelayEndpoint",
                Format::Mp,
                SiteClock::real_time(),
            )
            .unwrap(),
            std::time::Duration::ZERO,
        );
        fast.sample(|| ["a".to_owned()]);
        fast.sample(|| ["b".to_owned()]);
        let text = fs::read_to_string(tmp.path().join("MP_Relay.log")).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn rolls_over_at_250000_bytes_to_lo_() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let log =
            ComponentLog::open(dir, "StateSys.log", "SMS_STATE_SYSTEM", Format::Site, SiteClock::real_time())
                .unwrap();
        let message = "x".repeat(900);
        for _ in 0..300 {
            log.info(&message);
        }
        let old = fs::metadata(dir.join("StateSys.lo_")).unwrap().len();
        let new = fs::metadata(dir.join("StateSys.log")).unwrap().len();
        assert!(old <= ROLLOVER_BYTES && old > ROLLOVER_BYTES - 1000, "{old}");
        let line = log.format_line(Severity::Info, &message, Timestamp(0), thread_number()).len() as u64;
        assert_eq!(old + new, 300 * line, "nothing lost across the rollover");
        // Reopening appends.
        drop(log);
        let again =
            ComponentLog::open(dir, "StateSys.log", "SMS_STATE_SYSTEM", Format::Site, SiteClock::real_time())
                .unwrap();
        again.info("one more");
        assert!(fs::metadata(dir.join("StateSys.log")).unwrap().len() > new);
    }
}

//! `--inbox-compression auto`: Reports are LZ4-compressed only while the disk is what limits the
//! relay.
//!
//! Compression stores a tenth of a plain Report's bytes and a fifth of a faithful one's, for
//! CPU on the request's thread. Where the disk is the limit (two cores ingesting plain Reports
//! at ~450 MB/s on a ~550 MB/s disk) that raises what the relay acknowledges; where the CPU is
//! (one core at 190 MB/s), it only takes CPU from the relay and StateSys, and the stall test's
//! slowest answer doubled (`results/bench/session19-2026-12-04.md`).
//!
//! `auto` compresses while the raw Reports arriving at the writer exceed a rate
//! (`--inbox-compress-above`, 300 MB/s by default: seven thousand 43 KB Reports a second, over
//! half of what this machine's disk takes with a flush per batch) for half a second
//! ([`STREAK_ON`] windows), and stops once they stay under two thirds of it for two seconds
//! ([`STREAK_OFF`]). Telling the disk's load
//! from the writer's own commit times was tried first: it worked with CPU to spare, but where
//! the CPU is short the writer's commits stretch while it waits for a core, which looks the same
//! (on one core at 190 MB/s it estimated this disk at 330 MB/s instead of ~550 and turned
//! compression on just where it hurts).
//!
//! The decision is the writer's, logged in `MP_Relay.log`; the request threads read it (one
//! relaxed atomic) when they encode. Records of both kinds share a segment (each record says
//! how it is stored).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::segment::Codec;
use crate::logs::ComponentLog;

/// How the relay stores Reports (`serve --inbox-compression`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// LZ4 while Reports arrive faster than `--inbox-compress-above` (where the disk becomes
    /// the limit), as received otherwise.
    #[default]
    Auto,
    /// Always LZ4 (a record that would not shrink is stored as received).
    Lz4,
    /// Always as received.
    None,
}

/// The default `--inbox-compress-above`, bytes/s.
pub const COMPRESS_ABOVE: u64 = 300_000_000;
/// Windows running above the rate that turn compression on (half a second: the disk is the
/// limit now)...
pub const STREAK_ON: u32 = 2;
/// ...and under two thirds of it that turn it off (two seconds: a lull between bursts is not a
/// light load).
pub const STREAK_OFF: u32 = 8;
/// A window's length (it closes at the first commit past it).
pub const WINDOW: Duration = Duration::from_millis(250);

/// The decision, shared by the writer (which makes it) and the request threads (which read it).
#[derive(Debug, Default)]
pub struct Switch {
    compress: AtomicBool,
    /// How often compression turned on or off.
    switches: AtomicU64,
}

impl Switch {
    pub fn new(compression: Compression) -> Switch {
        Switch { compress: AtomicBool::new(compression == Compression::Lz4), switches: AtomicU64::new(0) }
    }

    /// The codec a record submitted now is stored with.
    pub fn codec(&self) -> Codec {
        if self.compress.load(Ordering::Relaxed) { Codec::Lz4 } else { Codec::Plain }
    }

    pub fn compressing(&self) -> bool {
        self.compress.load(Ordering::Relaxed)
    }

    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }
}

/// The writer's side of `auto`: fed every commit, it flips the [`Switch`].
#[derive(Debug)]
pub struct Gauge {
    switch: Arc<Switch>,
    /// Compress above this many raw bytes/s...
    on_above: f64,
    /// ...and stop under this many (two thirds of it).
    off_below: f64,
    started: Instant,
    /// Bytes of the window's records as submitted.
    raw: u64,
    /// Windows running that argued for a change.
    streak: u32,
    /// Where each change is logged.
    log: Option<Arc<ComponentLog>>,
}

impl Gauge {
    pub fn new(switch: Arc<Switch>, above: u64, now: Instant, log: Option<Arc<ComponentLog>>) -> Gauge {
        let on_above = above as f64;
        Gauge { switch, on_above, off_below: on_above * 2.0 / 3.0, started: now, raw: 0, streak: 0, log }
    }

    /// One commit of `raw` bytes (as submitted), finished at `now`.
    pub fn commit(&mut self, now: Instant, raw: usize) {
        self.raw += raw as u64;
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= WINDOW {
            let rate = self.raw as f64 / elapsed.as_secs_f64();
            let compressing = self.switch.compressing();
            let change = if compressing { rate < self.off_below } else { rate > self.on_above };
            self.streak = if change { self.streak + 1 } else { 0 };
            if self.streak >= if compressing { STREAK_OFF } else { STREAK_ON } {
                self.switch.compress.store(!compressing, Ordering::Relaxed);
                self.switch.switches.fetch_add(1, Ordering::Relaxed);
                self.streak = 0;
                if let Some(log) = &self.log {
                    let (turned, side, bound) = if compressing {
                        ("off", "under", self.off_below)
                    } else {
                        ("on", "over", self.on_above)
                    };
                    log.info(&format!(
                        "Inbox compression {turned}: {:.0} MB/s of Reports arriving, {side} {:.0} MB/s",
                        rate / 1e6,
                        bound / 1e6
                    ));
                }
            }
            (self.started, self.raw) = (now, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `windows` of commits of Reports arriving at `rate` bytes/s, a commit per ms.
    fn run(gauge: &mut Gauge, now: &mut Instant, windows: u32, rate: u64) {
        for _ in 0..windows * WINDOW.as_millis() as u32 {
            *now += Duration::from_millis(1);
            gauge.commit(*now, (rate / 1000) as usize);
        }
    }

    #[test]
    fn a_high_rate_turns_compression_on_and_a_low_one_off() {
        let switch = Arc::new(Switch::new(Compression::Auto));
        let mut now = Instant::now();
        let mut gauge = Gauge::new(Arc::clone(&switch), COMPRESS_ABOVE, now, None);
        run(&mut gauge, &mut now, 10, 190_000_000);
        assert!(!switch.compressing());
        // On after the streak (the window open when the rate rose may argue for it already).
        run(&mut gauge, &mut now, STREAK_ON - 1, 450_000_000);
        assert!(!switch.compressing());
        run(&mut gauge, &mut now, 2, 450_000_000);
        assert!(switch.compressing());
        assert_eq!(switch.switches(), 1);
        // Between two thirds and the threshold: stays as it is.
        run(&mut gauge, &mut now, 10, 250_000_000);
        assert!(switch.compressing());
        run(&mut gauge, &mut now, STREAK_OFF - 1, 190_000_000);
        assert!(switch.compressing());
        run(&mut gauge, &mut now, 2, 190_000_000);
        assert!(!switch.compressing());
        assert_eq!(switch.switches(), 2);
        run(&mut gauge, &mut now, 10, 250_000_000);
        assert!(!switch.compressing());
        assert_eq!(switch.switches(), 2);
    }

    #[test]
    fn one_busy_window_is_not_a_streak_and_an_idle_spell_counts_as_low() {
        let switch = Arc::new(Switch::new(Compression::Auto));
        let mut now = Instant::now();
        let mut gauge = Gauge::new(Arc::clone(&switch), COMPRESS_ABOVE, now, None);
        for _ in 0..5 {
            run(&mut gauge, &mut now, STREAK_ON - 1, 500_000_000);
            run(&mut gauge, &mut now, 1, 100_000_000);
        }
        assert!(!switch.compressing());
        assert_eq!(switch.switches(), 0);
        run(&mut gauge, &mut now, 5, 500_000_000);
        assert!(switch.compressing());
        // Lulls shorter than the off streak between bursts keep it on.
        for _ in 0..5 {
            run(&mut gauge, &mut now, STREAK_OFF - 1, 100_000_000);
            run(&mut gauge, &mut now, 1, 500_000_000);
        }
        assert!(switch.compressing());
        // Ten idle seconds, then a light load: the first window (mostly idle) counts as low.
        now += Duration::from_secs(10);
        run(&mut gauge, &mut now, STREAK_OFF, 100_000_000);
        assert!(!switch.compressing());
    }

    #[test]
    fn fixed_settings_start_as_set() {
        for compression in [Compression::Lz4, Compression::None, Compression::Auto] {
            assert_eq!(Switch::new(compression).compressing(), compression == Compression::Lz4);
        }
    }
}

//! Measurement (contract §3.4): per arbiter (thread-local, never per actor, no message per
//! request), per request kind, two HdrHistograms: latency from the **intended** send time
//! (corrected: a stalled generator or server shows) and service time from the actual send
//! (uncorrected). Each arbiter keeps whole-run and current-interval histograms; the run
//! collects and merges the intervals every second and the totals at the end.

use std::cell::RefCell;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::profile::Kind;

/// Microseconds, 3 significant digits, growing to the largest value recorded (so an idle
/// interval's histogram stays small).
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
}

/// One request kind's figures.
#[derive(Debug, Clone)]
pub struct KindStats {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Connection errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// Requests built, and the generator's time building them (the message, its encoding,
    /// compression and envelope), ns: its CPU per request of this kind.
    pub built: u64,
    pub build_nanos: u64,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            corrected: histogram(),
            uncorrected: histogram(),
            ok: 0,
            errors: 0,
            built: 0,
            build_nanos: 0,
        }
    }

    pub fn add(&mut self, o: &KindStats) {
        // Same bounds everywhere: adding cannot fail.
        let _ = self.corrected.add(&o.corrected);
        let _ = self.uncorrected.add(&o.uncorrected);
        self.ok += o.ok;
        self.errors += o.errors;
        self.built += o.built;
        self.build_nanos += o.build_nanos;
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }
}

/// A set of figures: a whole run's, or an interval's.
#[derive(Debug, Clone)]
pub struct Figures {
    pub kinds: Vec<KindStats>,
    /// How late sends started after their intended time, µs (generator saturation).
    pub lateness: Histogram<u64>,
    /// State messages in Reports sent, and in Reports acknowledged.
    pub messages_sent: u64,
    pub messages_acked: u64,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            kinds: Kind::ALL.iter().map(|_| KindStats::new()).collect(),
            lateness: histogram(),
            messages_sent: 0,
            messages_acked: 0,
        }
    }
}

impl Figures {
    pub fn add(&mut self, o: &Figures) {
        for (a, b) in self.kinds.iter_mut().zip(&o.kinds) {
            a.add(b);
        }
        let _ = self.lateness.add(&o.lateness);
        self.messages_sent += o.messages_sent;
        self.messages_acked += o.messages_acked;
    }

    pub fn kind(&self, k: Kind) -> &KindStats {
        &self.kinds[k.index()]
    }

    pub fn requests(&self) -> u64 {
        self.kinds.iter().map(KindStats::requests).sum()
    }

    pub fn errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum()
    }
}

#[derive(Debug, Default)]
struct Local {
    total: Figures,
    interval: Figures,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).clamp(1, 3_600_000_000)
}

fn both(f: impl Fn(&mut Figures)) {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        f(&mut l.total);
        f(&mut l.interval);
    });
}

/// The generator gets to a send: how late against its intended time (before waiting for a
/// connection, which is the target's doing and counts only in the latency).
pub fn started(intended: Instant, started: Instant) {
    let late = micros(intended, started);
    both(|f| {
        let _ = f.lateness.record(late);
    });
}

/// A request of `kind` was built in `took`.
pub fn built(kind: Kind, took: std::time::Duration) {
    let nanos = took.as_nanos().min(u128::from(u64::MAX)) as u64;
    both(|f| {
        let k = &mut f.kinds[kind.index()];
        k.built += 1;
        k.build_nanos = k.build_nanos.saturating_add(nanos);
    });
}

/// A request finished (`answered`: a response came back, whatever its status).
pub fn finished(kind: Kind, intended: Instant, started: Instant, done: Instant, answered: bool, ok: bool) {
    let (corrected, uncorrected) = (micros(intended, done), micros(started, done));
    both(|f| {
        let k = &mut f.kinds[kind.index()];
        if answered {
            let _ = k.corrected.record(corrected);
            let _ = k.uncorrected.record(uncorrected);
        }
        if ok {
            k.ok += 1;
        } else {
            k.errors += 1;
        }
    });
}

/// State messages in a Report sent, and whether it was acknowledged.
pub fn messages(sent: u64, acked: bool) {
    both(|f| {
        f.messages_sent += sent;
        if acked {
            f.messages_acked += sent;
        }
    });
}

/// This thread's interval figures, starting a new interval.
pub fn take_interval() -> Figures {
    LOCAL.with(|l| std::mem::take(&mut l.borrow_mut().interval))
}

/// This thread's whole-run figures.
pub fn total() -> Figures {
    LOCAL.with(|l| l.borrow().total.clone())
}

/// CPU seconds this thread has used (user + system), from `/proc/thread-self/stat`; `None`
/// where that file does not exist.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/self/stat")
}

fn cpu_seconds(stat: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((utime + stime) / 100.0)
}

/// The process's peak resident set size in MiB (`VmHWM`), where `/proc` tells.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

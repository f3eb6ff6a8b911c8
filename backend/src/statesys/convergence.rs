//! Compliance convergence: after each sync, when each client's results for it were applied by
//! StateSys and when the SUM Update Status view first counted them (`GET /api/v1/convergence`).
//!
//! A client's results for a sync are its "Scan completed" (topic type 501, state 3) for the
//! sync's content version or a later one, with the update states reported beside it. The store
//! keeps, per client, a [`Seen`]: the newest content version whose completed scan StateSys
//! applied and when, and the version the last Update Status summarization counted. Each time a
//! client's version rises, every sync it reaches gets one more client on its `applied` curve, at
//! the site time of the apply; each Update Status summarization adds the clients it counted for
//! the first time to the `visible` curve, at the site time its view was published.
//!
//! What this process saw since it started: a restart starts the curves over (a sync before it is
//! not tracked; what is replayed from the inbox after it is not counted for a later one twice).

use std::sync::{Mutex, MutexGuard};

use protocol::Timestamp;

use crate::clock::SiteClock;

/// What the store knows of one client's convergence (kept beside the client, not saved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// The newest content version whose "Scan completed" was applied (0: none yet).
    pub version: u32,
    /// Site time of that apply (µs since the epoch).
    pub applied_at: i64,
    /// The version the last Update Status summarization counted.
    pub counted: u32,
    /// Which Update Status summarization counted it first (an index into the runs; `u32::MAX`:
    /// none yet).
    pub counted_in: u32,
}

impl Seen {
    pub const NEW: Seen = Seen { version: 0, applied_at: 0, counted: 0, counted_in: u32::MAX };

    /// Waiting for a summarization to count its newest version.
    pub fn pending(&self) -> bool {
        self.version > self.counted
    }
}

/// One step of a curve: at this site time (µs), this many more clients.
pub type Step = (i64, u64);

/// One sync's convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curve {
    pub content_version: u32,
    /// Site time of the sync (µs).
    pub synced_at: i64,
    /// Clients whose results were applied, in site-time order, one step per distinct time.
    pub applied: Vec<Step>,
    /// Clients whose results the SUM Update Status view counted, one step per summarization.
    pub visible: Vec<Step>,
}

/// How many clients a summarization counted for the first time, by (version counted before,
/// version counted now).
pub type Moves = Vec<((u32, u32), u64)>;

/// Adds `n` clients moving from `from` to `to` to `moves`.
pub fn add_move(moves: &mut Moves, from: u32, to: u32, n: u64) {
    match moves.iter_mut().find(|(k, _)| *k == (from, to)) {
        Some((_, c)) => *c += n,
        None => moves.push(((from, to), n)),
    }
}

#[derive(Debug, Default)]
struct Inner {
    curves: Vec<Curve>,
    /// Site time each Update Status summarization published its view, by index.
    runs: Vec<i64>,
}

/// The curves of every sync since this process started, and the clock that stamps them.
#[derive(Debug)]
pub struct Convergence {
    clock: SiteClock,
    inner: Mutex<Inner>,
}

fn add(curve: &mut Vec<Step>, at: i64, n: u64) {
    match curve.last_mut() {
        Some((t, c)) if *t == at => *c += n,
        _ => curve.push((at, n)),
    }
}

impl Convergence {
    pub fn new(clock: SiteClock) -> Convergence {
        Convergence { clock, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sync published `content_version` now; returns its site time.
    pub fn synced(&self, content_version: u32) -> Timestamp {
        let mut inner = self.lock();
        let at = self.clock.now();
        inner.curves.push(Curve {
            content_version,
            synced_at: at.0,
            applied: Vec::new(),
            visible: Vec::new(),
        });
        at
    }

    /// A client's completed scan moved from version `from` to `to` now: one more client for
    /// every sync in between. Returns the site time stamped.
    pub(crate) fn applied(&self, from: u32, to: u32) -> i64 {
        let mut inner = self.lock();
        // Stamped under the lock, so every curve's steps come in time order.
        let at = self.clock.now().0;
        for c in inner.curves.iter_mut().filter(|c| from < c.content_version && c.content_version <= to) {
            add(&mut c.applied, at, 1);
        }
        at
    }

    /// The index the next Update Status summarization will have.
    pub fn next_run(&self) -> u32 {
        u32::try_from(self.lock().runs.len()).unwrap_or(u32::MAX)
    }

    /// Update Status summarization `run` published its view now, having counted `moves` for
    /// the first time. Returns the site time stamped.
    pub fn published(&self, run: u32, moves: &Moves) -> i64 {
        let mut inner = self.lock();
        let at = self.clock.now().0;
        if inner.runs.len() == run as usize {
            inner.runs.push(at);
        }
        for &((from, to), n) in moves {
            for c in inner.curves.iter_mut().filter(|c| from < c.content_version && c.content_version <= to) {
                add(&mut c.visible, at, n);
            }
        }
        at
    }

    /// When Update Status summarization `run` published its view.
    pub fn run_time(&self, run: u32) -> Option<i64> {
        self.lock().runs.get(run as usize).copied()
    }

    /// Every sync's curves, oldest first.
    pub fn curves(&self) -> Vec<Curve> {
        self.lock().curves.clone()
    }
}

/// The site time (µs) by which `count` clients were on `curve` (`None`: never).
pub fn time_to(curve: &[Step], count: u64) -> Option<i64> {
    let mut total = 0;
    for &(at, n) in curve {
        total += n;
        if total >= count {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_count_each_client_once_per_sync_it_reaches() {
        let conv = Convergence::new(SiteClock::new(Timestamp(1_000_000), 1.0));
        conv.applied(0, 38); // before any sync: no curve
        let s39 = conv.synced(39).0;
        let a = conv.applied(38, 39);
        let s40 = conv.synced(40).0;
        let b = conv.applied(0, 40); // a new client reaches both
        conv.applied(39, 40); // the first reaches 40 only
        let curves = conv.curves();
        assert_eq!(curves.len(), 2);
        assert_eq!((curves[0].content_version, curves[0].synced_at), (39, s39));
        assert_eq!(curves[0].applied.iter().map(|s| s.1).sum::<u64>(), 2);
        assert_eq!(curves[1].applied.iter().map(|s| s.1).sum::<u64>(), 2);
        assert!(s39 <= a && a <= s40 && s40 <= b);
        let run = conv.next_run();
        let mut moves = Moves::new();
        add_move(&mut moves, 0, 40, 1);
        add_move(&mut moves, 38, 40, 1);
        add_move(&mut moves, 0, 40, 1);
        assert_eq!(moves, [((0, 40), 2), ((38, 40), 1)]);
        let at = conv.published(run, &moves);
        assert_eq!(conv.run_time(run), Some(at));
        let curves = conv.curves();
        assert_eq!(curves[0].visible, [(at, 3)]);
        assert_eq!(curves[1].visible, [(at, 3)]);
        assert_eq!(time_to(&curves[0].visible, 3), Some(at));
        assert_eq!(time_to(&curves[0].visible, 4), None);
        assert_eq!(time_to(&[(5, 2), (9, 1)], 1), Some(5));
        assert_eq!(time_to(&[(5, 2), (9, 1)], 3), Some(9));
    }
}

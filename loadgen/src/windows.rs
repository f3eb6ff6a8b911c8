//! Thresholds over time: a threshold held over consecutive windows (`"state_report.p99" = "< 2s in
//! 99% of 10s windows"`, the share of windows that met it, as Gatling Enterprise scores SLOs),
//! windows before the ramp-up's end skipped on request (`after ramp-up`), and the run aborted
//! when a threshold has failed without a break for a stretch (`, abort after 30s`), judged each
//! second over its window (10 s when it has none). A window in which nothing of the metric's kind
//! was measured is not judged. Fed the run's one-second intervals as they
//! are merged ([`crate::run`]'s observe loop), so an abort happens live.

use std::collections::VecDeque;
use std::time::Duration;

use crate::metrics::Figures;
use crate::profile::Threshold;
use crate::results;

/// One threshold's windows so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Windows that met the condition, and all windows judged.
    pub met: u64,
    pub total: u64,
    /// The window being filled, and its intervals so far.
    current: Option<Figures>,
    filled: usize,
    /// Real seconds the abort check has failed without a break.
    failing_for: f64,
}

/// Why the run stopped early.
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub threshold: String,
    /// Real seconds after the start.
    pub at: f64,
    /// The figure over the last window when it aborted.
    pub actual: Option<f64>,
}

/// The windowed and aborting thresholds of a run, judged as its intervals come.
#[derive(Debug)]
pub struct Windows {
    thresholds: Vec<Threshold>,
    pub tallies: Vec<Tally>,
    /// The last intervals, as many as the longest abort window needs.
    recent: VecDeque<Figures>,
    keep: usize,
    /// Real seconds after the start at which the ramp-up ends.
    ramp_end: f64,
}

fn intervals(d: Duration) -> usize {
    (d.as_secs_f64().round() as usize).max(1)
}

impl Windows {
    pub fn new(thresholds: &[Threshold], ramp_end: f64) -> Windows {
        let keep =
            thresholds.iter().filter(|t| t.abort_after.is_some()).map(|t| intervals(t.abort_window())).max();
        Windows {
            thresholds: thresholds.to_vec(),
            tallies: vec![Tally::default(); thresholds.len()],
            recent: VecDeque::new(),
            keep: keep.unwrap_or(0),
            ramp_end,
        }
    }

    /// Adds the interval that ended `t` real seconds after the start and lasted `length`
    /// seconds; returns the abort, when a threshold has now failed long enough.
    pub fn add(&mut self, interval: &Figures, t: f64, length: f64) -> Option<Abort> {
        if self.keep > 0 {
            self.recent.push_back(interval.clone());
            while self.recent.len() > self.keep {
                self.recent.pop_front();
            }
        }
        let mut abort = None;
        for (threshold, tally) in self.thresholds.iter().zip(&mut self.tallies) {
            let counts = !threshold.after_ramp || t - length >= self.ramp_end - 1e-9;
            if let (Some(w), true) = (threshold.window, counts) {
                let current = tally.current.get_or_insert_with(Figures::default);
                current.add(interval);
                tally.filled += 1;
                if tally.filled >= intervals(w.length) {
                    let window = tally.current.take().unwrap_or_default();
                    let checked = results::check(std::slice::from_ref(threshold), &window, w.length);
                    // A window in which nothing of the kind was measured is not judged.
                    if checked[0].actual.is_some() {
                        tally.total += 1;
                        tally.met += u64::from(checked[0].passed);
                    }
                    tally.filled = 0;
                }
            }
            let Some(after) = threshold.abort_after else { continue };
            let n = intervals(threshold.abort_window());
            if !counts || self.recent.len() < n {
                continue;
            }
            let mut window = Figures::default();
            for f in self.recent.iter().rev().take(n) {
                window.add(f);
            }
            let checked = results::check(std::slice::from_ref(threshold), &window, threshold.abort_window());
            if checked[0].actual.is_none() {
                // Nothing measured: no evidence either way.
            } else if checked[0].passed {
                tally.failing_for = 0.0;
            } else {
                tally.failing_for += length;
                if tally.failing_for >= after.as_secs_f64() - 1e-9 && abort.is_none() {
                    abort =
                        Some(Abort { threshold: threshold.name.clone(), at: t, actual: checked[0].actual });
                }
            }
        }
        abort
    }

    /// The windowed thresholds' verdicts: `(index, share of windows met, passed)`; a threshold
    /// with no complete window cannot pass.
    pub fn verdicts(&self) -> Vec<(usize, Option<f64>, bool)> {
        self.thresholds
            .iter()
            .zip(&self.tallies)
            .enumerate()
            .filter_map(|(i, (t, tally))| {
                let w = t.window?;
                let share = (tally.total > 0).then(|| tally.met as f64 / tally.total as f64);
                Some((i, share, share.is_some_and(|s| s >= w.share - 1e-12)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Kind, Plan};

    /// One second of state Reports, every one answered in `ms`.
    fn second(ms: u64) -> Figures {
        let mut f = Figures::default();
        let k = &mut f.kinds[Kind::ALL.iter().position(|k| *k == Kind::StateReport).unwrap()];
        for _ in 0..100 {
            k.corrected.record(ms * 1000).unwrap();
            k.uncorrected.record(ms * 1000).unwrap();
        }
        k.ok = 100;
        f
    }

    fn thresholds(condition: &str) -> Vec<Threshold> {
        let text = format!(
            "[population]\nclients = 10\n[run]\nduration = \"1h\"\nramp_up = \"4s\"\ntime_scale = 1\n\
             [thresholds]\n\"state_report.p99\" = \"{condition}\"\n"
        );
        Plan::parse("w", &text).unwrap().thresholds
    }

    #[test]
    fn windows_are_scored_by_the_share_that_met_the_condition() {
        let t = thresholds("< 50ms in 75% of 2s windows");
        assert_eq!(t[0].window.map(|w| (w.length.as_secs(), w.share)), Some((2, 0.75)));
        // 10 seconds: 5 windows, one of them slow (seconds 5 and 6).
        let mut w = Windows::new(&t, 0.0);
        for s in 1..=10u64 {
            assert_eq!(w.add(&second(if s == 5 || s == 6 { 80 } else { 10 }), s as f64, 1.0), None);
        }
        assert_eq!(w.verdicts(), vec![(0, Some(0.8), true)]);
        // The same at 90 %: fails.
        let t = thresholds("< 50ms in 90% of 2s windows");
        let mut w = Windows::new(&t, 0.0);
        for s in 1..=10u64 {
            w.add(&second(if s == 5 { 80 } else { 10 }), s as f64, 1.0);
        }
        assert_eq!(w.verdicts(), vec![(0, Some(0.8), false)]);
        // Skipping the ramp-up (4 s): the slow start is not counted.
        let t = thresholds("< 50ms in 100% of 2s windows after ramp-up");
        assert!(t[0].after_ramp);
        let mut w = Windows::new(&t, 4.0);
        for s in 1..=10u64 {
            w.add(&second(if s <= 4 { 500 } else { 10 }), s as f64, 1.0);
        }
        assert_eq!(w.verdicts(), vec![(0, Some(1.0), true)]);
    }

    #[test]
    fn an_abort_comes_after_the_stretch_of_failure_not_before() {
        let t = thresholds("< 50ms in 50% of 2s windows, abort after 3s");
        assert_eq!(t[0].abort_after, Some(Duration::from_secs(3)));
        let mut w = Windows::new(&t, 0.0);
        // Fast for 4 s, one slow second (not long enough), fast again, then slow for good.
        let slow = |s: u64| s == 5 || s >= 8;
        let mut aborted = None;
        for s in 1..=20u64 {
            if let Some(a) = w.add(&second(if slow(s) { 80 } else { 10 }), s as f64, 1.0) {
                aborted = Some(a);
                break;
            }
        }
        let a = aborted.expect("an abort");
        assert_eq!(a.threshold, "state_report.p99");
        // Slow from second 8: the 2 s window fails from second 8 on (it holds a slow second), so
        // the third failing second is 10 (second 5's failure was broken by 7, all fast).
        assert_eq!(a.at, 10.0, "{a:?}");
        assert!(a.actual.is_some_and(|v| v >= 50.0));
    }

    #[test]
    fn bad_window_syntax_names_the_key() {
        for bad in ["< 2s in 99% of windows", "< 2s in 120% of 10s windows", "< 2s, abort after soon"] {
            let text = format!(
                "[population]\nclients = 10\n[run]\nduration = \"1h\"\n[thresholds]\n\"state_report.p99\" = \"{bad}\"\n"
            );
            let e = Plan::parse("w", &text).unwrap_err().to_string();
            assert!(e.contains("state_report.p99"), "{bad}: {e}");
        }
    }
}

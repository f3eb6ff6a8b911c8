//! Which serial numbers of a client StateSys has seen: the span from the lowest to the highest,
//! less the missing ranges. The same set whatever order records arrive in (a replay changes
//! nothing); the site would ask for a resync of a gap that stays open.

/// Missing ranges kept per client at most; past this the lowest (oldest) are forgotten.
pub const MAX_GAPS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Serials {
    /// `(lowest, highest)` seen, once any has been.
    span: Option<(u64, u64)>,
    /// Inclusive ranges inside the span not seen yet, ascending and disjoint.
    missing: Vec<(u64, u64)>,
}

impl Serials {
    pub fn record(&mut self, s: u64) {
        let Some((lo, hi)) = self.span else {
            self.span = Some((s, s));
            return;
        };
        if s > hi {
            if s - hi > 1 {
                self.missing.push((hi + 1, s - 1));
                self.bound();
            }
            self.span = Some((lo, s));
        } else if s < lo {
            if lo - s > 1 {
                self.missing.insert(0, (s + 1, lo - 1));
                self.bound();
            }
            self.span = Some((s, hi));
        } else {
            self.fill(s);
        }
    }

    fn fill(&mut self, s: u64) {
        let i = self.missing.partition_point(|&(_, end)| end < s);
        let Some(&(a, b)) = self.missing.get(i) else { return };
        if s < a {
            return;
        }
        match (s == a, s == b) {
            (true, true) => {
                self.missing.remove(i);
            }
            (true, false) => self.missing[i].0 = s + 1,
            (false, true) => self.missing[i].1 = s - 1,
            (false, false) => {
                self.missing[i].1 = s - 1;
                self.missing.insert(i + 1, (s + 1, b));
                self.bound();
            }
        }
    }

    fn bound(&mut self) {
        if self.missing.len() > MAX_GAPS {
            let drop = self.missing.len() - MAX_GAPS;
            self.missing.drain(..drop);
        }
    }

    /// The highest serial seen.
    pub fn last(&self) -> Option<u64> {
        self.span.map(|(_, hi)| hi)
    }

    /// The lowest serial seen.
    pub fn first(&self) -> Option<u64> {
        self.span.map(|(lo, _)| lo)
    }

    /// Inclusive ranges between the lowest and highest serial not seen.
    pub fn missing(&self) -> &[(u64, u64)] {
        &self.missing
    }

    /// Rebuilds a tracker from its parts (a checkpoint); `None` if they are not consistent.
    pub fn from_parts(span: Option<(u64, u64)>, missing: Vec<(u64, u64)>) -> Option<Serials> {
        let inside = |&(a, b): &(u64, u64)| span.is_some_and(|(lo, hi)| lo < a && a <= b && b < hi);
        let ordered = missing.windows(2).all(|w| w[0].1 < w[1].0);
        (missing.iter().all(inside) && ordered && missing.len() <= MAX_GAPS)
            .then_some(Serials { span, missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gaps_open_and_close() {
        let mut s = Serials::default();
        for n in [230, 231, 239] {
            s.record(n);
        }
        assert_eq!(s.missing(), [(232, 238)]);
        s.record(235);
        assert_eq!(s.missing(), [(232, 234), (236, 238)]);
        for n in [232, 233, 234, 236, 237, 238] {
            s.record(n);
        }
        assert_eq!(s.missing(), []);
        s.record(225);
        assert_eq!((s.first(), s.last(), s.missing()), (Some(225), Some(239), &[(226, 229)][..]));
        s.record(u64::MAX);
        s.record(0);
        assert_eq!(s.missing().first(), Some(&(1, 224)));
        assert_eq!(s.missing().last(), Some(&(240, u64::MAX - 1)));
    }

    proptest! {
        /// Any order, any duplicates: the same set; and it is the set seen.
        #[test]
        fn order_and_replays_do_not_matter(mut v in prop::collection::vec(0u64..200, 1..60), seed: u64) {
            let mut a = Serials::default();
            v.iter().for_each(|&n| a.record(n));
            let mut shuffled = v.clone();
            shuffled.extend_from_slice(&v[..v.len() / 2]);
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut b = Serials::default();
            shuffled.iter().for_each(|&n| b.record(n));
            prop_assert_eq!(&a, &b);
            v.sort_unstable();
            v.dedup();
            let (lo, hi) = (v[0], v[v.len() - 1]);
            let unseen: Vec<u64> = (lo..=hi).filter(|n| v.binary_search(n).is_err()).collect();
            let from_gaps: Vec<u64> = a.missing().iter().flat_map(|&(x, y)| x..=y).collect();
            prop_assert_eq!(unseen, from_gaps);
        }
    }
}

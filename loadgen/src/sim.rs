//! What is deterministic about the population: every client's name, place and scan outcome is a
//! function of the seed, so a run's ground truth can be recomputed, and two runs with one seed
//! agree. Also the simulated clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use protocol::{Guid, Timestamp};

use crate::profile::{Plan, ScanSpread};

/// SplitMix64's finalizer: a well-mixed hash of a 64-bit value.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of (seed, client, what, extra) in [0, 1).
pub fn unit(seed: u64, client: u64, what: u64, extra: u64) -> f64 {
    let h = mix(mix(mix(seed ^ 0x5EED) ^ client) ^ what.rotate_left(32) ^ extra);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

const WHAT_SITE: u64 = 1;
const WHAT_SUBNET: u64 = 2;
const WHAT_HOST: u64 = 3;
const WHAT_INTERNET: u64 = 4;
const WHAT_STATE: u64 = 5;
const WHAT_SCAN_AT: u64 = 6;
const WHAT_CYCLE: u64 = 7;
const WHAT_START: u64 = 8;
const WHAT_POLL: u64 = 9;
const WHAT_SUP: u64 = 10;

/// Where a simulated client is and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub index: u64,
    pub netbios_name: String,
    pub fqdn: String,
    pub ad_site: usize,
    pub subnet: usize,
    pub address: Ipv4Addr,
    pub on_internet: bool,
}

pub fn identity(plan: &Plan, index: u64) -> Identity {
    let pick = |what, n: usize| ((unit(plan.seed, index, what, 0) * n as f64) as usize).min(n - 1);
    let subnet = pick(WHAT_SUBNET, plan.subnets.len());
    let host = (unit(plan.seed, index, WHAT_HOST, 0) * (1u64 << 32) as f64) as u64;
    let netbios_name = format!("SSTM{:07}", index);
    Identity {
        index,
        fqdn: format!("{}.contoso.com", netbios_name.to_ascii_lowercase()),
        netbios_name,
        ad_site: pick(WHAT_SITE, plan.ad_sites.len()),
        subnet,
        address: plan.subnets[subnet].host(host.wrapping_add(index)),
        on_internet: unit(plan.seed, index, WHAT_INTERNET, 0) < plan.internet_fraction,
    }
}

/// The state a client's scan finds for an update: 3 installed, 1 not required, 2 required,
/// 0 unknown, drawn from the profile's probabilities.
pub fn update_state(plan: &Plan, client: u64, update: Guid) -> u8 {
    let u = unit(plan.seed, client, WHAT_STATE, (update.0 as u64) ^ ((update.0 >> 64) as u64));
    if u < plan.installed {
        3
    } else if u < plan.installed + plan.not_required {
        1
    } else if u < plan.installed + plan.not_required + plan.required {
        2
    } else {
        0
    }
}

/// A fraction of `d` for the client's `what` (and `extra`, e.g. a policy version).
fn part(plan: &Plan, client: u64, what: u64, extra: u64, d: Duration) -> Duration {
    d.mul_f64(unit(plan.seed, client, what, extra))
}

/// When the client starts, within the ramp-up.
pub fn start_offset(plan: &Plan, client: u64) -> Duration {
    part(plan, client, WHAT_START, 0, plan.ramp_up)
}

/// The client's offset into its reporting cycle and policy poll interval.
pub fn cycle_offset(plan: &Plan, client: u64) -> Duration {
    part(plan, client, WHAT_CYCLE, 0, plan.reporting_cycle)
}

pub fn poll_offset(plan: &Plan, client: u64) -> Duration {
    part(plan, client, WHAT_POLL, 0, plan.policy_poll)
}

/// When, after a new policy arrives, the client scans: a random moment in the scan window (with
/// [`ScanSpread::Even`], a random moment of the client's own slice of it).
pub fn scan_delay(plan: &Plan, client: u64, policy_major: u64) -> Duration {
    match plan.scan_spread {
        ScanSpread::Random => part(plan, client, WHAT_SCAN_AT, policy_major, plan.scan_window),
        ScanSpread::Even => {
            let n = plan.clients.max(1);
            let slice = permuted(client % n, n, mix(plan.seed ^ WHAT_SCAN_AT.rotate_left(40) ^ policy_major));
            let u = unit(plan.seed, client, WHAT_SCAN_AT, policy_major);
            plan.scan_window.mul_f64((slice as f64 + u) / n as f64)
        }
    }
}

/// `i`'s place in a permutation of `0..n` chosen by `key`: `(a·i + b) mod n` with `a` coprime
/// to `n`.
fn permuted(i: u64, n: u64, key: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut a = (key % n).max(1);
    while gcd(a, n) != 1 {
        a += 1;
    }
    let b = mix(key) % n;
    ((u128::from(a) * u128::from(i) + u128::from(b)) % u128::from(n)) as u64
}

/// Which of `n` SUPs a client without affinity takes.
pub fn sup_choice(plan: &Plan, client: u64, n: usize) -> usize {
    ((unit(plan.seed, client, WHAT_SUP, 0) * n as f64) as usize).min(n.saturating_sub(1))
}

/// Simulated time: starts at the real UTC time the run starts and runs `scale` times faster.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    pub real_start: Instant,
    pub sim_start: Timestamp,
    pub scale: f64,
}

impl SimClock {
    pub fn new(scale: f64) -> SimClock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        SimClock { real_start: Instant::now(), sim_start: Timestamp(now), scale }
    }

    /// Simulated time elapsed at real instant `at`.
    pub fn sim_elapsed(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.real_start).mul_f64(self.scale)
    }

    /// The simulated timestamp at real instant `at`.
    pub fn timestamp(&self, at: Instant) -> Timestamp {
        Timestamp(self.sim_start.0 + self.sim_elapsed(at).as_micros() as i64)
    }

    /// The real instant at which `sim` simulated time has elapsed.
    pub fn real_at(&self, sim: Duration) -> Instant {
        self.real_start + sim.div_f64(self.scale)
    }

    /// Real time for a simulated span.
    pub fn real(&self, sim: Duration) -> Duration {
        sim.div_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_probabilities_and_the_seed() {
        let text = "[population]\nclients = 10\nseed = 9\n[run]\nduration = \"1h\"";
        let plan = Plan::parse("t", text).unwrap();
        let mut counts = [0u32; 4];
        for c in 0..200u64 {
            for u in 0..100u128 {
                counts[update_state(&plan, c, Guid(u * 7919)) as usize] += 1;
            }
        }
        // 20,000 draws: 60 / 25 / 10 / 5 % within a percent.
        let share = |n: u32| f64::from(n) / 20_000.0;
        assert!((share(counts[3]) - 0.60).abs() < 0.01, "{counts:?}");
        assert!((share(counts[1]) - 0.25).abs() < 0.01, "{counts:?}");
        assert!((share(counts[2]) - 0.10).abs() < 0.01, "{counts:?}");
        assert_eq!(identity(&plan, 5), identity(&plan, 5));
        let other = Plan { seed: 10, ..plan.clone() };
        assert_ne!(
            (0..50).map(|c| update_state(&plan, c, Guid(1))).collect::<Vec<_>>(),
            (0..50).map(|c| update_state(&other, c, Guid(1))).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_even_spread_puts_one_client_in_each_slice_whatever_the_seed() {
        for (n, seed) in [(1u64, 1u64), (12, 3), (1000, 7), (24_000, 16), (24_000, 2)] {
            let text = format!(
                "[population]\nclients = {n}\nseed = {seed}\n[client]\nscan_window = \"8h\"\nscan_spread = \"even\"\n[run]\nduration = \"1h\""
            );
            let plan = Plan::parse("t", &text).unwrap();
            assert_eq!(plan.scan_spread, ScanSpread::Even);
            let slice = plan.scan_window.as_secs_f64() / n as f64;
            let mut taken = vec![false; n as usize];
            for c in 0..n {
                let k = (scan_delay(&plan, c, 1).as_secs_f64() / slice) as usize;
                assert!(!std::mem::replace(&mut taken[k.min(n as usize - 1)], true), "slice {k} twice");
            }
            // So every stretch of the window holds its share to within one client.
            if n == 24_000 {
                let in_half_hour =
                    (0..n).filter(|&c| scan_delay(&plan, c, 1) < Duration::from_secs(1800)).count();
                assert!((1499..=1501).contains(&in_half_hour), "{in_half_hour}");
            }
        }
        let random = Plan::parse("t", "[population]\nclients = 10\n[run]\nduration = \"1h\"").unwrap();
        assert_eq!(random.scan_spread, ScanSpread::Random);
        assert!(
            Plan::parse(
                "t",
                "[population]\nclients = 10\n[client]\nscan_spread = \"wide\"\n[run]\nduration = \"1h\""
            )
            .is_err()
        );
    }
}

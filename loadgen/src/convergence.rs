//! Compliance convergence (`summary.json`'s `convergence`, the report's curves): after each sync,
//! how much site time passed until 50, 90, 95, 99 and 100 % of the clients that scanned after it
//! had their results
//! - **acknowledged** by the MP (the clients' own record: when the answer to the first Report
//!   carrying a "Scan completed" for the sync's content version, or a later one, came back;
//!   any target),
//! - **applied** by StateSys, and
//! - **visible** in the SUM Update Status view (the site time its summarization published the
//!   view that first counted them): both from our backend's `GET /api/v1/convergence`, on its
//!   own clock, measured from its own record of the sync.
//!
//! "The clients that scanned after the sync" are the run's clients whose newest completed scan
//! is for the sync's content version or later (a client whose scan would end after the run is
//! not counted; one whose Report was never acknowledged is, and keeps `t100` from being
//! reached). `tP` is the time by which `ceil(P % × clients)` of them were there; `null` when that
//! many never were. With `--shard` the backend's curves count every shard's clients, so only
//! `acknowledged` is given.

use serde_json::{Value, json};

use crate::client::Truth;

/// The shares of the clients convergence is reported for.
pub const PERCENTS: [u32; 5] = [50, 90, 95, 99, 100];

/// The stages, as `summary.json` and thresholds name them.
pub const STAGES: [&str; 3] = ["acknowledged", "applied", "visible"];

/// A client's acknowledged results moved from content version `from` to `to`, `at` simulated
/// seconds into the run (a client's own record).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    pub index: u64,
    pub from: u32,
    pub to: u32,
    pub at: f64,
}

/// A sync the run fired: the content version it published, `at` simulated seconds into the run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sync {
    pub version: u32,
    pub at: f64,
}

/// How many of `n` clients make `percent` %: rounded up.
pub fn rank(percent: u32, n: u64) -> u64 {
    (n * u64::from(percent)).div_ceil(100)
}

/// At most this many points of each curve go to `summary.json` (the figures are exact either way).
const CURVE_POINTS: usize = 400;

/// One stage from its steps (`(seconds after the sync, clients)`, in time order) for `n` clients.
fn stage(steps: &[(f64, u64)], n: u64) -> Value {
    let mut cumulative = Vec::with_capacity(steps.len());
    let mut total = 0;
    for &(t, k) in steps {
        total += k;
        cumulative.push((t, total));
    }
    let time_to = |k: u64| cumulative.iter().find(|&&(_, c)| c >= k).map(|&(t, _)| t);
    let mut out = serde_json::Map::new();
    out.insert("clients".into(), json!(total));
    for p in PERCENTS {
        let k = rank(p, n);
        out.insert(format!("t{p}"), if n == 0 { Value::Null } else { json!(time_to(k.max(1))) });
    }
    let every = cumulative.len().div_ceil(CURVE_POINTS).max(1);
    let mut curve: Vec<Value> = cumulative.iter().step_by(every).map(|&(t, c)| json!([t, c])).collect();
    if let Some(&(t, c)) = cumulative.last()
        && (cumulative.len() - 1) % every != 0
    {
        curve.push(json!([t, c]));
    }
    out.insert("curve".into(), Value::Array(curve));
    Value::Object(out)
}

/// Steps from single times.
fn steps_of(mut times: Vec<f64>) -> Vec<(f64, u64)> {
    times.sort_by(f64::total_cmp);
    let mut steps: Vec<(f64, u64)> = Vec::new();
    for t in times {
        match steps.last_mut() {
            Some((last, k)) if *last == t => *k += 1,
            _ => steps.push((t, 1)),
        }
    }
    steps
}

/// The backend's steps for one stage (`[µs after its sync, clients]`), as seconds.
fn backend_steps(sync: &Value, key: &str) -> Option<Vec<(f64, u64)>> {
    sync[key].as_array()?.iter().map(|s| Some((s[0].as_i64()? as f64 / 1e6, s[1].as_u64()?))).collect()
}

/// The run's convergence, one entry per sync: `truths` and `acks` are the clients' records,
/// `backend` our backend's `GET /api/v1/convergence` (absent from other targets, or with shards).
pub fn compute(syncs: &[Sync], truths: &[Truth], acks: &[Ack], backend: Option<&Value>) -> Value {
    let entries = syncs.iter().map(|s| {
        let n = truths.iter().filter(|t| t.scanned.is_some_and(|v| v >= s.version)).count() as u64;
        let acked: Vec<f64> =
            acks.iter().filter(|a| a.from < s.version && s.version <= a.to).map(|a| a.at - s.at).collect();
        let theirs = backend.and_then(|b| {
            b["Syncs"].as_array()?.iter().find(|c| c["ContentVersion"].as_u64() == Some(u64::from(s.version)))
        });
        let from_backend =
            |key| theirs.and_then(|c| backend_steps(c, key)).map_or(Value::Null, |st| stage(&st, n));
        json!({
            "content_version": s.version,
            "sync_simulated_seconds": s.at,
            "clients": n,
            "acknowledged": stage(&steps_of(acked), n),
            "applied": from_backend("AppliedSteps"),
            "visible": from_backend("VisibleSteps"),
        })
    });
    Value::Array(entries.collect())
}

/// A convergence threshold's figure: the worst over the run's syncs of `stage`'s `t<percent>`,
/// in site seconds; `None` when there was no sync, or one never got there.
pub fn worst(convergence: &Value, stage: &str, percent: u32) -> Option<f64> {
    let syncs = convergence.as_array().filter(|s| !s.is_empty())?;
    syncs.iter().map(|s| s[stage][format!("t{percent}")].as_f64()).try_fold(f64::MIN, |w, t| Some(w.max(t?)))
}

/// A span of site seconds as `1h02m`, `3m20s` or `12.5s`.
pub fn span(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let whole = s.round() as u64;
    match (whole / 3600, whole / 60 % 60, whole % 60) {
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The console's line for one sync's convergence.
pub fn console_line(c: &Value) -> String {
    let stage = |name: &str| {
        let s = &c[name];
        if s.is_null() {
            return format!("{name} -");
        }
        let t = |p: u32| s[format!("t{p}")].as_f64().map_or("never".to_owned(), span);
        format!("{name} {} / {} / {}", t(50), t(95), t(100))
    };
    format!(
        "convergence after the sync to {} ({} clients scanned after it; t50 / t95 / t100): {}, {}, {}",
        c["content_version"],
        c["clients"],
        stage("acknowledged"),
        stage("applied"),
        stage("visible")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(index: u64, scanned: Option<u32>) -> Truth {
        Truth { index, registered: true, located: true, acked_version: scanned, reported_first: 0, scanned }
    }

    #[test]
    fn ranks_round_up_and_times_are_the_kth_smallest() {
        assert_eq!((rank(50, 3), rank(90, 10), rank(99, 10), rank(100, 7), rank(95, 1)), (2, 9, 10, 7, 1));
        // Four clients scanned for 39 or later; three were acknowledged, one for 40 only.
        let truths = [
            truth(0, Some(39)),
            truth(1, Some(40)),
            truth(2, Some(39)),
            truth(3, Some(39)),
            truth(4, Some(38)),
        ];
        let acks = [
            Ack { index: 0, from: 38, to: 39, at: 130.0 },
            Ack { index: 1, from: 0, to: 40, at: 110.0 },
            Ack { index: 2, from: 38, to: 39, at: 150.0 },
            Ack { index: 4, from: 0, to: 38, at: 90.0 },
        ];
        let backend = json!({ "Syncs": [{ "ContentVersion": 39, "AppliedSteps": [[5_000_000, 1], [40_000_000, 2]], "VisibleSteps": [] }] });
        let c = compute(&[Sync { version: 39, at: 100.0 }], &truths, &acks, Some(&backend));
        let s = &c[0];
        assert_eq!(s["clients"], 4);
        assert_eq!(s["acknowledged"]["clients"], 3);
        assert_eq!(
            (s["acknowledged"]["t50"].as_f64(), s["acknowledged"]["t90"].as_f64()),
            (Some(30.0), None)
        );
        assert_eq!(s["acknowledged"]["t95"], Value::Null);
        assert_eq!(s["acknowledged"]["curve"], json!([[10.0, 1], [30.0, 2], [50.0, 3]]));
        assert_eq!((s["applied"]["t50"].as_f64(), s["applied"]["t90"].as_f64()), (Some(40.0), None));
        assert_eq!(s["visible"]["clients"], 0);
        assert_eq!(worst(&c, "acknowledged", 50), Some(30.0));
        assert_eq!(worst(&c, "acknowledged", 100), None);
        assert_eq!(worst(&json!([]), "visible", 50), None, "no sync, nothing measured");
        let no_backend = compute(&[Sync { version: 39, at: 100.0 }], &truths, &acks, None);
        assert_eq!(no_backend[0]["applied"], Value::Null);
    }

    #[test]
    fn long_curves_are_thinned_but_keep_their_ends_and_exact_figures() {
        let steps: Vec<(f64, u64)> = (1..=1000).map(|i| (f64::from(i), 1)).collect();
        let s = stage(&steps, 1000);
        let curve = s["curve"].as_array().unwrap();
        assert!(curve.len() <= CURVE_POINTS + 1, "{}", curve.len());
        assert_eq!(curve.last().unwrap(), &json!([1000.0, 1000]));
        assert_eq!(
            (s["t50"].as_f64(), s["t99"].as_f64(), s["t100"].as_f64()),
            (Some(500.0), Some(990.0), Some(1000.0))
        );
    }
}

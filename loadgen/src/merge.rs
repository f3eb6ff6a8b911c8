//! `loadgen merge <RUN>... --out DIR` (issue 6): sharded runs (`--shard I/N`) become one run by
//! **adding** their histograms (never averaging percentiles) and summing their counts; the
//! profile's thresholds are evaluated again on the merge (convergence thresholds excepted: they
//! need every client's record, which only each shard's own run has).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::{Value, json};

use crate::metrics::{self, Figures};
use crate::profile::{Kind, Metric, Plan};
use crate::results::{self, HlogWriter};
use crate::run::{EXIT_OK, EXIT_THRESHOLD, EXIT_VERIFY};

fn read_json(path: &Path) -> anyhow::Result<Value> {
    serde_json::from_slice(&std::fs::read(path).with_context(|| path.display().to_string())?)
        .with_context(|| path.display().to_string())
}

/// One interval of an interval log: (tag, start since the log's base, length, histogram).
pub type Interval = (String, Duration, Duration, Histogram<u64>);

/// Every interval of an interval log.
pub fn read_hlog(path: &Path) -> anyhow::Result<Vec<Interval>> {
    use base64::Engine as _;
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    let mut d = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow!("{}: {e:?}", path.display()))?;
        if let LogEntry::Interval(h) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .with_context(|| path.display().to_string())?;
            let hist: Histogram<u64> =
                d.deserialize(&mut raw.as_slice()).map_err(|e| anyhow!("{}: {e:?}", path.display()))?;
            let tag = h.tag().map(|t| t.as_str().to_owned()).unwrap_or_default();
            out.push((tag, h.start_timestamp(), h.duration(), hist));
        }
    }
    Ok(out)
}

/// Merges the runs in `dirs` into `out`. Returns the merged summary and the exit status a run
/// with those figures would have.
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<(Value, u8)> {
    if dirs.is_empty() {
        anyhow::bail!("merge: no runs given");
    }
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let profile_text = std::fs::read_to_string(dirs[0].join("profile.toml"))?;
    let summaries = dirs.iter().map(|d| read_json(&d.join("summary.json"))).collect::<Result<Vec<_>, _>>()?;
    let name = summaries[0]["profile"]["name"].as_str().unwrap_or("merged").to_owned();
    if summaries.iter().any(|s| s["profile"]["name"].as_str() != Some(name.as_str())) {
        anyhow::bail!("merge: the runs are of different profiles");
    }
    let plan = Plan::parse(&name, &profile_text)?;

    // Histograms: the sum of every run's intervals, per kind; intervals kept for the merged log.
    let mut figures = Figures::default();
    let mut hlog = HlogWriter::begin(0.0);
    for d in dirs {
        for (tag, start, length, h) in read_hlog(&d.join("latency.hlog"))? {
            let Some(kind) = Kind::from_name(&tag) else { continue };
            let _ = figures.kinds[kind.index()].corrected.add(&h);
            let mut one = Figures::default();
            let _ = one.kinds[kind.index()].corrected.add(&h);
            hlog.interval(start, length, &one);
        }
        if d.join("service-time.hlog").exists() {
            for (tag, _, _, h) in read_hlog(&d.join("service-time.hlog"))? {
                if let Some(kind) = Kind::from_name(&tag) {
                    let _ = figures.kinds[kind.index()].uncorrected.add(&h);
                }
            }
        }
    }
    // Counts: sums. Shards run side by side, so rates are sums over the longest wall time.
    let wall = summaries.iter().filter_map(|s| s["wall_seconds"].as_f64()).fold(0.0, f64::max);
    for s in &summaries {
        for kind in Kind::ALL {
            let k = &s["requests"][kind.name()];
            let count = k["count"].as_u64().unwrap_or(0);
            let errors = k["errors"].as_u64().unwrap_or(0);
            figures.kinds[kind.index()].ok += count - errors.min(count);
            figures.kinds[kind.index()].errors += errors;
        }
        figures.messages_sent += s["state_messages"]["sent"].as_u64().unwrap_or(0);
        figures.messages_acked += s["state_messages"]["acknowledged"].as_u64().unwrap_or(0);
    }
    let wall = Duration::from_secs_f64(wall.max(1e-9));
    for kind in Kind::ALL {
        let h = &figures.kind(kind).corrected;
        if !h.is_empty() {
            std::fs::write(out.join(format!("latency-{}.hgrm", kind.name())), results::hgrm(h))?;
        }
    }
    std::fs::write(out.join("latency.hlog"), &hlog.bytes)?;
    std::fs::write(out.join("profile.toml"), &profile_text)?;
    // Convergence needs every client's record (and one backend's), which shards do not share:
    // each shard's own summary judges what it saw.
    let judged: Vec<_> =
        plan.thresholds.iter().filter(|t| !matches!(t.metric, Metric::Convergence { .. })).cloned().collect();
    let checked = results::check(&judged, &figures, wall);
    let exact = summaries.iter().all(|s| s["verification"]["exact"].as_bool() != Some(false));
    let checked_all = summaries.iter().all(|s| s["verification"]["checked"].as_bool() == Some(true));
    let sum = |path: &[&str]| -> u64 {
        summaries.iter().map(|s| path.iter().fold(s, |v, k| &v[*k]).as_u64().unwrap_or(0)).sum()
    };
    let summary = json!({
        "profile": summaries[0]["profile"],
        "merged_from": dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "shards": summaries.iter().map(|s| s["shard"].clone()).collect::<Vec<_>>(),
        "version": env!("CARGO_PKG_VERSION"),
        "host": results::host_json(),
        "clients": sum(&["clients"]),
        "wall_seconds": wall.as_secs_f64(),
        "requests": results::kinds_json(&figures, wall),
        "state_messages": {
            "sent": figures.messages_sent,
            "acknowledged": figures.messages_acked,
            "acknowledged_per_second": figures.messages_acked as f64 / wall.as_secs_f64(),
        },
        "backend": {
            "records_processed": sum(&["backend", "records_processed"]),
            "records_per_second": summaries.iter().filter_map(|s| s["backend"]["records_per_second"].as_f64()).sum::<f64>(),
            "per_shard": summaries.iter().map(|s| s["backend"].clone()).collect::<Vec<_>>(),
        },
        "verification": { "checked": checked_all, "exact": exact },
        "thresholds": results::thresholds_json(&checked),
        "peak_rss_mib_here": metrics::peak_rss_mib(),
    });
    std::fs::write(out.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    let exit = if !exact {
        EXIT_VERIFY
    } else if checked.iter().any(|c| !c.passed) {
        EXIT_THRESHOLD
    } else {
        EXIT_OK
    };
    Ok((summary, exit))
}

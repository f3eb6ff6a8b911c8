//! `loadgen trends`: every key figure across commits, from `results/history.jsonl` (a line per
//! run, see [`crate::run`]), with the commits where a figure changed.
//!
//! Runs are grouped by profile, machine description (CPU model, cores, memory) and target kind:
//! figures are compared within one group only, because another machine is another baseline. In
//! a group, each figure is a series of commits in the order they first appear; a commit's point
//! is the median of its runs with their spread (min and max).
//!
//! Change points: E-divisive means (Matteson and James, 2014; the method MongoDB uses on its
//! performance history, Daly et al., ICPE 2020) over every run of the series, splits allowed
//! only between commits. The split that maximises the energy statistic is kept when a
//! permutation test finds it significant (p ≤ [`Detect::significance`], with
//! [`Detect::permutations`] shuffles of the same runs, seeded by the data so the answer is
//! reproducible) and the medians either side differ by at least [`Detect::min_change`]; then
//! each side is searched again. The test takes noise into account by construction: a step must
//! stand out from how much the runs themselves vary, including those of one commit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::compare::lower_is_better;
use crate::report::{esc, ticks_between, trim, y_grid};

/// One run as the history holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its line in the history (1-based).
    pub line: usize,
    pub profile: String,
    pub machine: String,
    /// "embedded" (the backend in loadgen's process) or "remote" (`--target`).
    pub target: String,
    pub commit: String,
    pub date: String,
    pub figures: BTreeMap<String, f64>,
}

/// A machine as a history line describes it: CPU model, cores and memory (not the hostname:
/// fresh CI machines of one kind have others).
pub fn machine(host: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = host["cpu"].as_str().filter(|c| !c.is_empty()) {
        parts.push(cpu.to_owned());
    }
    if let Some(cores) = host["cores"].as_u64() {
        parts.push(format!("{cores} cores"));
    }
    if let Some(gib) = host["memory_gib"].as_f64() {
        parts.push(format!("{gib} GiB"));
    }
    if parts.is_empty() { "unknown machine".to_owned() } else { parts.join(", ") }
}

/// The runs of a history file's text, and a warning (naming its line) for each line skipped.
pub fn parse_history(text: &str) -> (Vec<Run>, Vec<String>) {
    let (mut runs, mut warnings) = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                warnings.push(format!("line {line}: skipped, not JSON ({e})"));
                continue;
            }
        };
        let Some(profile) = v["profile"].as_str().filter(|p| !p.is_empty()) else {
            warnings.push(format!("line {line}: skipped, no profile"));
            continue;
        };
        let mut figures = BTreeMap::new();
        // Lines written before the figures object held these three.
        for (old, name) in [
            ("state_messages_per_second", "state_messages_per_second"),
            ("backend_records_per_second", "backend_records_per_second"),
            ("state_report_p99_ms", "state_report.p99"),
        ] {
            if let Some(x) = v[old].as_f64() {
                figures.insert(name.to_owned(), x);
            }
        }
        for (name, f) in v["figures"].as_object().into_iter().flatten() {
            if let Some(x) = f["value"].as_f64().or_else(|| f.as_f64()) {
                figures.insert(name.clone(), x);
            }
        }
        figures.retain(|_, x| x.is_finite());
        if figures.is_empty() {
            warnings.push(format!("line {line}: skipped, no figures"));
            continue;
        }
        runs.push(Run {
            line,
            profile: profile.to_owned(),
            machine: machine(&v["host"]),
            target: v["target"].as_str().unwrap_or("embedded").to_owned(),
            commit: v["commit"].as_str().filter(|c| !c.is_empty()).unwrap_or("unknown").to_owned(),
            date: v["date"].as_str().unwrap_or("").to_owned(),
            figures,
        });
    }
    (runs, warnings)
}

/// How changes are detected.
#[derive(Debug, Clone, Copy)]
pub struct Detect {
    /// A change is kept when its permutation p-value is at most this.
    pub significance: f64,
    /// Shuffles per test.
    pub permutations: usize,
    /// Smallest relative change of the median kept (0.05 = 5 %): smaller steps may be real but
    /// are not worth a reviewer's time.
    pub min_change: f64,
    /// Fewest runs either side of a split.
    pub min_runs: usize,
}

impl Default for Detect {
    fn default() -> Self {
        Detect { significance: 0.01, permutations: 199, min_change: 0.05, min_runs: 3 }
    }
}

/// A detected change: the series' level moved at commit `at` (the first commit of the new level).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub at: usize,
    /// Medians of the runs of the segments before and after.
    pub before: f64,
    pub after: f64,
    pub p_value: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The energy statistic of every allowed split of `x`: splits are run offsets in `cuts`.
/// Returns the best (offset, statistic).
fn best_split(x: &[f64], cuts: &[usize]) -> Option<(usize, f64)> {
    let n = x.len();
    // prefix[i][j] = sum of |x_a - x_b| over a < i, b < j, row-major.
    let w = n + 1;
    let mut prefix = vec![0.0f64; w * w];
    for i in 0..n {
        let mut row = 0.0;
        for j in 0..n {
            row += (x[i] - x[j]).abs();
            prefix[(i + 1) * w + j + 1] = prefix[i * w + j + 1] + row;
        }
    }
    let block = |a0: usize, a1: usize, b0: usize, b1: usize| {
        prefix[a1 * w + b1] - prefix[a0 * w + b1] - prefix[a1 * w + b0] + prefix[a0 * w + b0]
    };
    cuts.iter()
        .map(|&t| {
            let (m, k) = (t as f64, (n - t) as f64);
            let between = 2.0 * block(0, t, t, n) / (m * k);
            let pairs = |s: f64| s * (s - 1.0) / 2.0;
            // A block over one side counts each pair twice.
            let left = if t > 1 { block(0, t, 0, t) / 2.0 / pairs(m) } else { 0.0 };
            let right = if n - t > 1 { block(t, n, t, n) / 2.0 / pairs(k) } else { 0.0 };
            (t, m * k / n as f64 * (between - left - right))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Change points of a series given as each commit's runs, in commit order.
pub fn change_points(commits: &[Vec<f64>], detect: &Detect) -> Vec<Change> {
    let mut out = Vec::new();
    search(commits, 0, detect, &mut out);
    out.sort_by_key(|c| c.at);
    out
}

fn search(commits: &[Vec<f64>], offset: usize, detect: &Detect, out: &mut Vec<Change>) {
    let x: Vec<f64> = commits.iter().flatten().copied().collect();
    // Splits between commits with enough runs either side: (run offset, commit index).
    let mut cuts = Vec::new();
    let mut seen = 0;
    for (c, runs) in commits.iter().enumerate() {
        if seen >= detect.min_runs && x.len() - seen >= detect.min_runs && c > 0 {
            cuts.push((seen, c));
        }
        seen += runs.len();
    }
    if cuts.is_empty() {
        return;
    }
    let offsets: Vec<usize> = cuts.iter().map(|c| c.0).collect();
    let Some((t, observed)) = best_split(&x, &offsets) else { return };
    let (mut before, mut after) = (x[..t].to_vec(), x[t..].to_vec());
    let (before, after) = (median(&mut before), median(&mut after));
    let relative = if before == 0.0 { 0.0 } else { (after / before - 1.0).abs() };
    // The permutation test: how often do the same runs, shuffled, split as well?
    let mut seed = x.iter().fold(0x5EED_u64, |h, v| crate::sim::mix(h ^ v.to_bits()));
    let mut shuffled = x.clone();
    let mut as_good = 0usize;
    for _ in 0..detect.permutations {
        for i in (1..shuffled.len()).rev() {
            seed = crate::sim::mix(seed);
            shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        if best_split(&shuffled, &offsets).is_some_and(|(_, q)| q >= observed) {
            as_good += 1;
        }
    }
    let p_value = (as_good + 1) as f64 / (detect.permutations + 1) as f64;
    if p_value > detect.significance || relative < detect.min_change {
        return;
    }
    let at = cuts.iter().find(|c| c.0 == t).map_or(0, |c| c.1);
    out.push(Change { at: offset + at, before, after, p_value });
    search(&commits[..at], offset, detect, out);
    search(&commits[at..], offset + at, detect, out);
}

/// One commit's runs of one figure.
#[derive(Debug, Clone)]
struct Point {
    commit: String,
    date: String,
    values: Vec<f64>,
}

/// A group's figure across commits.
struct Series {
    name: String,
    points: Vec<Point>,
    changes: Vec<Change>,
}

/// Runs of one profile on one machine kind against one target kind.
struct Group {
    profile: String,
    machine: String,
    target: String,
    /// Commits in order of first appearance, with their date and run count.
    commits: Vec<(String, String, usize)>,
    series: Vec<Series>,
}

/// Figures in the order a reader looks for them: throughput, the state Reports, the rest.
fn figure_order(name: &str) -> (u8, String) {
    let rank = match name {
        "backend_records_per_second" => 0,
        "state_messages_per_second" => 1,
        n if n.starts_with("state_report.") => 2,
        _ => 3,
    };
    (rank, name.to_owned())
}

fn groups(runs: &[Run], detect: &Detect) -> Vec<Group> {
    let mut by_key: BTreeMap<(String, String, String), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by_key.entry((r.profile.clone(), r.machine.clone(), r.target.clone())).or_default().push(r);
    }
    by_key
        .into_iter()
        .map(|((profile, machine, target), runs)| {
            let mut commits: Vec<(String, String, usize)> = Vec::new();
            for r in &runs {
                match commits.iter_mut().find(|c| c.0 == r.commit) {
                    Some(c) => c.2 += 1,
                    None => commits.push((r.commit.clone(), r.date.clone(), 1)),
                }
            }
            let mut names: Vec<&String> = runs.iter().flat_map(|r| r.figures.keys()).collect();
            names.sort_by_key(|n| figure_order(n));
            names.dedup();
            let series = names
                .into_iter()
                .map(|name| {
                    let points: Vec<Point> = commits
                        .iter()
                        .filter_map(|(commit, date, _)| {
                            let values: Vec<f64> = runs
                                .iter()
                                .filter(|r| &r.commit == commit)
                                .filter_map(|r| r.figures.get(name).copied())
                                .collect();
                            (!values.is_empty()).then(|| Point {
                                commit: commit.clone(),
                                date: date.clone(),
                                values,
                            })
                        })
                        .collect();
                    let values: Vec<Vec<f64>> = points.iter().map(|p| p.values.clone()).collect();
                    let changes = change_points(&values, detect);
                    Series { name: name.clone(), points, changes }
                })
                .collect();
            Group { profile, machine, target, commits, series }
        })
        .collect()
}

/// What `trends` wrote.
#[derive(Debug)]
pub struct Written {
    pub html: PathBuf,
    pub json: PathBuf,
    /// Lines skipped, each naming its line.
    pub warnings: Vec<String>,
    /// One line per detected change, for the console.
    pub changes: Vec<String>,
    pub groups: usize,
    pub runs: usize,
}

/// Reads `history`, writes `trends.html` and `trends.json` into `out`. `commit_url` (with
/// `{commit}` in it) links each change to its commit; without it, to the page's commit list.
pub fn write(
    history: &Path,
    out: &Path,
    commit_url: Option<&str>,
    detect: &Detect,
) -> anyhow::Result<Written> {
    let text = std::fs::read_to_string(history).with_context(|| history.display().to_string())?;
    let (runs, warnings) = parse_history(&text);
    let groups = groups(&runs, detect);
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let link = |commit: &str| match commit_url {
        Some(t) => t.replace("{commit}", commit),
        None => format!("#commit-{}", esc(commit)),
    };
    let mut changes = Vec::new();
    let json_groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let figures: Vec<Value> = g
                .series
                .iter()
                .map(|s| {
                    let points: Vec<Value> = s
                        .points
                        .iter()
                        .map(|p| {
                            let mut v = p.values.clone();
                            json!({
                                "commit": p.commit, "date": p.date, "runs": p.values.len(),
                                "median": median(&mut v), "min": v[0], "max": v[v.len() - 1],
                            })
                        })
                        .collect();
                    let found: Vec<Value> = s
                        .changes
                        .iter()
                        .map(|c| {
                            let commit = &s.points[c.at].commit;
                            let percent = (c.after / c.before - 1.0) * 100.0;
                            let worse = (c.after > c.before) == lower_is_better(&s.name);
                            let direction = if worse { "regression" } else { "improvement" };
                            changes.push(format!(
                                "{} [{}] {}: {direction} {percent:+.1} % at {commit} ({} -> {}, p = {:.3})",
                                g.profile,
                                g.machine,
                                s.name,
                                trim(c.before),
                                trim(c.after),
                                c.p_value
                            ));
                            json!({
                                "commit": commit, "index": c.at, "before": c.before, "after": c.after,
                                "change_percent": percent, "direction": direction, "p_value": c.p_value,
                                "link": link(commit),
                            })
                        })
                        .collect();
                    json!({
                        "name": s.name, "lower_is_better": lower_is_better(&s.name),
                        "points": points, "changes": found,
                    })
                })
                .collect();
            json!({
                "profile": g.profile, "machine": g.machine, "target": g.target,
                "commits": g.commits.iter().map(|c| json!({ "commit": c.0, "date": c.1, "runs": c.2 })).collect::<Vec<_>>(),
                "figures": figures,
            })
        })
        .collect();
    let doc = json!({
        "history": history.display().to_string(),
        "runs": runs.len(),
        "skipped": warnings,
        "method": {
            "name": "E-divisive means, permutation test",
            "significance": detect.significance, "permutations": detect.permutations,
            "min_change": detect.min_change, "min_runs": detect.min_runs,
        },
        "groups": json_groups,
    });
    let json_path = out.join("trends.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| json_path.display().to_string())?;
    let html_path = out.join("trends.html");
    let html = page(history, &groups, &warnings, &link, detect);
    std::fs::write(&html_path, html).with_context(|| html_path.display().to_string())?;
    Ok(Written {
        html: html_path,
        json: json_path,
        warnings,
        changes,
        groups: groups.len(),
        runs: runs.len(),
    })
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// One figure's plot: each commit's median (the line), its runs' spread (a bar), and each
/// change as a dashed line before its commit, linked to it.
fn plot(s: &Series, link: &dyn Fn(&str) -> String) -> String {
    let n = s.points.len();
    let stats: Vec<(f64, f64, f64)> = s
        .points
        .iter()
        .map(|p| {
            let mut v = p.values.clone();
            let m = median(&mut v);
            (m, v[0], v[v.len() - 1])
        })
        .collect();
    let lo = stats.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let hi = stats.iter().map(|s| s.2).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.01);
    let ticks = ticks_between((lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }), hi + pad);
    let (y0, y1) = (ticks[0], ticks[ticks.len() - 1].max(ticks[0] + 1e-9));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |i: f64| LEFT + if n > 1 { i / (n - 1) as f64 * pw } else { pw / 2.0 };
    let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let better = if lower_is_better(&s.name) { "lower is better" } else { "higher is better" };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11"><text x="{LEFT}" y="18" font-size="13" font-weight="bold">{} <tspan font-weight="normal" fill="#666">({better})</tspan></text>"##,
        esc(&s.name)
    );
    y_grid(&mut svg, &ticks, LEFT, pw, sy);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle">commits, oldest to newest ({n})</text>"##,
        LEFT + pw / 2.0,
        H - 8.0,
    );
    // Commit labels: as many as fit.
    let every = n.div_ceil(12).max(1);
    for (i, p) in s.points.iter().enumerate().filter(|(i, _)| i % every == 0 || *i == n - 1) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            sx(i as f64),
            TOP + ph + 14.0,
            esc(&p.commit.chars().take(8).collect::<String>())
        );
    }
    for c in &s.changes {
        let x = sx(c.at as f64 - 0.5);
        let commit = &s.points[c.at].commit;
        let percent = (c.after / c.before - 1.0) * 100.0;
        let worse = (c.after > c.before) == lower_is_better(&s.name);
        let color = if worse { "#d62728" } else { "#2ca02c" };
        let _ = write!(
            svg,
            r##"<a href="{}"><line class="change" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="5,3"/><text x="{:.1}" y="{}" fill="{color}">{percent:+.1} % at {}</text></a>"##,
            esc(&link(commit)),
            TOP + ph,
            x + 4.0,
            TOP + 12.0,
            esc(&commit.chars().take(8).collect::<String>())
        );
    }
    for (i, &(_, lo, hi)) in stats.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<line class="spread" x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-opacity="0.45" stroke-width="5"/>"##,
            sy(lo),
            sy(hi),
            x = sx(i as f64)
        );
    }
    let d: Vec<String> = stats
        .iter()
        .enumerate()
        .map(|(i, &(m, _, _))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, sx(i as f64), sy(m)))
        .collect();
    // A single commit draws a short stroke so that it still shows.
    let d = if n == 1 {
        let y = sy(stats[0].0);
        format!("M{:.1},{y:.1} L{:.1},{y:.1}", sx(0.0) - 6.0, sx(0.0) + 6.0)
    } else {
        d.join(" ")
    };
    let _ =
        write!(svg, r##"<path class="series" d="{d}" fill="none" stroke="#1f77b4" stroke-width="1.8"/>"##);
    for (i, (p, &(m, lo, hi))) in s.points.iter().zip(&stats).enumerate() {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f77b4"><title>{}: median {} (runs {}, {} to {})</title></circle>"##,
            sx(i as f64),
            sy(m),
            esc(&p.commit),
            trim(m),
            p.values.len(),
            trim(lo),
            trim(hi)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn page(
    history: &Path,
    groups: &[Group],
    warnings: &[String],
    link: &dyn Fn(&str) -> String,
    detect: &Detect,
) -> String {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sumstorm trends</title><style>\
         body{font-family:sans-serif;margin:24px;max-width:820px}table{border-collapse:collapse;margin:8px 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f4f4f4}\
         .worse{color:#d62728}.better{color:#2ca02c}.warn{color:#a60}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>Trends</h1><p>From <code>{}</code>. Each point is a commit: the median of its runs, the bar their \
         spread. Dashed lines mark changes found by E-divisive means with a permutation test (p &le; {}, {} \
         shuffles, at least {} % apart, at least {} runs either side), within one profile, machine and target only.</p>",
        esc(&history.display().to_string()),
        detect.significance,
        detect.permutations,
        trim(detect.min_change * 100.0),
        detect.min_runs
    );
    if !warnings.is_empty() {
        html.push_str("<p class=\"warn\">Skipped:</p><ul class=\"warn\">");
        for w in warnings {
            let _ = write!(html, "<li>{}</li>", esc(w));
        }
        html.push_str("</ul>");
    }
    for g in groups {
        let _ = write!(
            html,
            "<h2>{} <small>on {} ({} target)</small></h2><p>{} commits, {} runs.</p>",
            esc(&g.profile),
            esc(&g.machine),
            esc(&g.target),
            g.commits.len(),
            g.commits.iter().map(|c| c.2).sum::<usize>()
        );
        let found: Vec<(&Series, &Change)> =
            g.series.iter().flat_map(|s| s.changes.iter().map(move |c| (s, c))).collect();
        if found.is_empty() {
            html.push_str("<p>No change detected.</p>");
        } else {
            html.push_str("<table><tr><th>figure</th><th>commit</th><th>before</th><th>after</th><th>change</th><th>p</th></tr>");
            for (s, c) in found {
                let commit = &s.points[c.at].commit;
                let worse = (c.after > c.before) == lower_is_better(&s.name);
                let _ = write!(
                    html,
                    "<tr class=\"{}\"><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{:+.1} %</td><td>{:.3}</td></tr>",
                    if worse { "worse" } else { "better" },
                    esc(&s.name),
                    esc(&link(commit)),
                    esc(commit),
                    trim(c.before),
                    trim(c.after),
                    (c.after / c.before - 1.0) * 100.0,
                    c.p_value
                );
            }
            html.push_str("</table>");
        }
        for s in &g.series {
            html.push_str(&plot(s, link));
        }
    }
    html.push_str(
        "<h2>Commits</h2><table><tr><th>commit</th><th>first run</th><th>runs</th><th>group</th></tr>",
    );
    for g in groups {
        for (commit, date, runs) in &g.commits {
            let _ = write!(
                html,
                "<tr id=\"commit-{}\"><td><code>{}</code></td><td>{}</td><td>{runs}</td><td>{}</td></tr>",
                esc(commit),
                esc(commit),
                esc(date),
                esc(&g.profile)
            );
        }
    }
    html.push_str("</table>");
    html.push_str(crate::report::RENDER_CHECK);
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise in [-1, 1).
    fn noise(i: u64) -> f64 {
        (crate::sim::mix(i) % 2_000_000) as f64 / 1_000_000.0 - 1.0
    }

    #[test]
    fn a_step_is_found_at_its_commit_and_noise_is_not_a_change() {
        // 30 commits, 3 runs each, ±4 % noise; the level drops 15 % at commit 18.
        let series: Vec<Vec<f64>> = (0..30u64)
            .map(|c| {
                let level = if c < 18 { 1000.0 } else { 850.0 };
                (0..3).map(|r| level * (1.0 + 0.04 * noise(c * 10 + r))).collect()
            })
            .collect();
        let found = change_points(&series, &Detect::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].at, 18);
        assert!(found[0].p_value <= 0.01 && found[0].after < found[0].before);
        // Pure noise, several seeds: nothing.
        for seed in 0..5u64 {
            let flat: Vec<Vec<f64>> = (0..40u64)
                .map(|c| (0..3).map(|r| 1000.0 * (1.0 + 0.04 * noise((seed << 32) | (c * 10 + r)))).collect())
                .collect();
            assert!(change_points(&flat, &Detect::default()).is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn history_lines_that_do_not_parse_are_skipped_by_line_number() {
        let text = "{\"profile\":\"ci\",\"commit\":\"a\",\"host\":{\"cores\":2,\"memory_gib\":23.5},\"state_report_p99_ms\":4.0}\n\
                    not json\n\n{\"commit\":\"b\"}\n\
                    {\"profile\":\"ci\",\"commit\":\"b\",\"host\":{\"cpu\":\"X\",\"cores\":2},\"target\":\"embedded\",\"figures\":{\"state_report.p99\":{\"value\":5.0,\"samples\":9}}}\n";
        let (runs, warnings) = parse_history(text);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].figures["state_report.p99"], 4.0);
        assert_eq!(runs[1].figures["state_report.p99"], 5.0);
        assert_eq!((runs[0].machine.as_str(), runs[1].machine.as_str()), ("2 cores, 23.5 GiB", "X, 2 cores"));
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].starts_with("line 2:") && warnings[1].starts_with("line 4:"), "{warnings:?}");
    }
}

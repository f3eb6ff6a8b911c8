//! `loadgen report <RUN>` (issue 6): one self-contained `report.html` (no network fetches): the
//! summary table, the latency percentile spectrum per request kind (x: 1/(1-p) on a log scale,
//! as HdrHistogram's plotter draws it), requests and state messages per second over time, the
//! backend's inbox backlog over time, and the verification result. Plots are inline SVG drawn
//! here. A small script in the page checks, once laid out, that every plot has drawn lines and
//! says so in `<body data-plots-rendered="N">` (the Chromium test reads it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::profile::Kind;

const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;

/// The script every page of ours ends with: once laid out, it counts the plots that drew lines
/// (`svg.plot` with a `path.series` of some extent) into `<body data-plots-rendered="N">`, which
/// the Chromium tests read.
pub(crate) const RENDER_CHECK: &str = "<script>addEventListener('load',function(){var n=0;\
    document.querySelectorAll('svg.plot').forEach(function(s){var ok=false;\
    s.querySelectorAll('path.series').forEach(function(p){var b=p.getBBox();if(b.width>0||b.height>0)ok=true});\
    if(ok)n++});document.body.setAttribute('data-plots-rendered',String(n))});</script>";

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Round numbers for axis ticks between 0 and `max`.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 {
        return vec![0.0];
    }
    ticks_between(0.0, max)
}

/// Round numbers for axis ticks covering [lo, hi], about five steps.
pub(crate) fn ticks_between(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(hi.abs() * 1e-6).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(mag * 10.0);
    ((lo / step).floor() as i64..=(hi / step).ceil() as i64).map(|i| i as f64 * step).collect()
}

/// A plot's horizontal grid lines and their labels, for `ticks` placed by `sy`, across the plot
/// area from `left`, `width` wide.
pub(crate) fn y_grid(svg: &mut String, ticks: &[f64], left: f64, width: f64, sy: impl Fn(f64) -> f64) {
    for &t in ticks {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + width,
            left - 6.0,
            sy(t) + 4.0,
            trim(t),
            y = sy(t)
        );
    }
}

/// A line chart. `x_percentile`: x values are percentiles (0..1), drawn at log10(1/(1-p)).
pub(crate) fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_percentile: bool,
) -> String {
    let fx = |x: f64| if x_percentile { (1.0 / (1.0 - x.min(0.999_999))).log10() } else { x };
    let points: Vec<(f64, f64)> =
        series.iter().flat_map(|(_, p)| p.iter().map(|&(x, y)| (fx(x), y))).collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(if x_percentile { 2.0 } else { 1.0 });
    let y_ticks = ticks(points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.05);
    let y_max = y_ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11"><text x="{LEFT}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    y_grid(&mut svg, &y_ticks, LEFT, pw, sy);
    let x_ticks: Vec<(f64, String)> = if x_percentile {
        (0..=(x_max.ceil() as i32))
            .map(|d| {
                let p = 100.0 * (1.0 - 10f64.powi(-d));
                (f64::from(d), format!("{:.*}%", (d - 2).max(0) as usize, p))
            })
            .collect()
    } else {
        ticks(x_max).into_iter().map(|t| (t, trim(t))).collect()
    };
    for (x, label) in x_ticks.iter().filter(|(x, _)| *x <= x_max + 1e-9) {
        let _ = write!(
            svg,
            r##"<line x1="{X:.1}" x2="{X:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{X:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 15.0,
            esc(label),
            X = sx(*x)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + pw / 2.0,
        H - 8.0,
        esc(x_label),
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if !pts.is_empty() {
            let d: Vec<String> = pts
                .iter()
                .enumerate()
                .map(|(k, &(x, y))| {
                    format!("{}{:.1},{:.1}", if k == 0 { "M" } else { "L" }, sx(fx(x)), sy(y))
                })
                .collect();
            let _ = write!(
                svg,
                r#"<path class="series" d="{}" fill="none" stroke="{color}" stroke-width="1.8"/>"#,
                d.join(" ")
            );
        }
        let ly = TOP + 14.0 + i as f64 * 16.0;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            LEFT + pw + 12.0,
            ly - 4.0,
            LEFT + pw + 30.0,
            ly,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

pub(crate) fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// (percentile, value ms) rows of an `.hgrm` file.
pub(crate) fn hgrm_points(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let value: f64 = f.next()?.parse().ok()?;
            let p: f64 = f.next()?.parse().ok()?;
            Some((p, value))
        })
        .collect()
}

/// Writes `report.html` into the run folder `dir`; returns its path.
pub fn write(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let summary = read("summary.json").with_context(|| format!("{}: no summary.json", dir.display()))?;
    let timeline = read("timeline.json").unwrap_or(Value::Array(Vec::new()));
    let verify = read("verify.json");

    let mut spectrum = Vec::new();
    for kind in Kind::ALL {
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("latency-{}.hgrm", kind.name()))) {
            spectrum.push((kind.name().to_owned(), hgrm_points(&text)));
        }
    }
    let rows = timeline.as_array().cloned().unwrap_or_default();
    let series = |f: &dyn Fn(&Value) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r["t"].as_f64().unwrap_or(0.0), f(r))).collect()
    };
    let per_sec = |r: &Value, v: f64| v / r["length"].as_f64().unwrap_or(1.0).max(1e-9);
    let requests = series(&|r| {
        per_sec(r, r["requests"].as_object().map_or(0.0, |m| m.values().filter_map(Value::as_f64).sum()))
    });
    let messages = series(&|r| per_sec(r, r["messages_acknowledged"].as_f64().unwrap_or(0.0)));
    let backlog = series(&|r| r["backlog_files"].as_f64().unwrap_or(0.0));

    let mut html = String::new();
    let name = summary["profile"]["name"].as_str().unwrap_or("run");
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sumstorm: {}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0 20px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}\
         .ok{{color:#1a7f37;font-weight:bold}}.bad{{color:#c00;font-weight:bold}}svg{{display:block;margin:10px 0 24px}}</style></head><body>",
        esc(name)
    );
    let _ = write!(
        html,
        "<h1>sumstorm load run: {}</h1><p>{} clients, {:.0} simulated seconds at {}x in {:.1} s of wall time; target {}; commit {}; host {} cores, {} GiB.</p>",
        esc(name),
        summary["clients"],
        summary["simulated_seconds"].as_f64().unwrap_or(0.0),
        summary["profile"]["time_scale"],
        summary["wall_seconds"].as_f64().unwrap_or(0.0),
        esc(summary["target"].as_str().unwrap_or("")),
        esc(summary["commit"].as_str().unwrap_or("unknown")),
        summary["host"]["cores"],
        summary["host"]["memory_gib"]
    );
    // Verification and thresholds first: what a reader wants to know.
    let verdict =
        match (summary["verification"]["checked"].as_bool(), summary["verification"]["exact"].as_bool()) {
            (Some(true), Some(true)) => "<span class=\"ok\">exact</span>".to_owned(),
            (Some(true), _) => format!(
                "<span class=\"bad\">FAILED</span> ({} differences; see verify.json)",
                verify.as_ref().map_or(Value::Null, |v| v["differences_total"].clone())
            ),
            _ => "not run".to_owned(),
        };
    let _ = write!(
        html,
        "<h2>Verification</h2><p>The backend's summaries against what the clients reported: {verdict}.</p>"
    );
    html.push_str(
        "<h2>Thresholds</h2><table><tr><th>metric</th><th>condition</th><th>actual</th><th>result</th></tr>",
    );
    for t in summary["thresholds"].as_array().into_iter().flatten() {
        let pass = t["passed"].as_bool() == Some(true);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(t["metric"].as_str().unwrap_or("")),
            esc(t["condition"].as_str().unwrap_or("")),
            t["actual"],
            if pass { "ok" } else { "bad" },
            if pass { "pass" } else { "FAIL" }
        );
    }
    html.push_str("</table><h2>Requests</h2><table><tr><th>kind</th><th>count</th><th>errors</th><th>per second</th><th>p50 ms</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>service p50</th><th>service p99</th></tr>");
    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.2}"));
    for (kind, k) in summary["requests"].as_object().into_iter().flatten() {
        let (l, s) = (&k["latency_ms"], &k["service_time_ms"]);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(kind),
            k["count"],
            k["errors"],
            f(&k["per_second"]),
            f(&l["p50"]),
            f(&l["p90"]),
            f(&l["p99"]),
            f(&l["p99.9"]),
            f(&l["p99.99"]),
            f(&l["max"]),
            f(&s["p50"]),
            f(&s["p99"])
        );
    }
    let _ = write!(
        html,
        "</table><p>State messages acknowledged: {} ({:.0}/s). Backend: {} records applied, peak inbox backlog {} files, drain {:.2} s, summarization {:.2} s. Generator: {} sends more than 10 ms late, arbiters' CPU share {:.0} %.</p>",
        summary["state_messages"]["acknowledged"],
        summary["state_messages"]["acknowledged_per_second"].as_f64().unwrap_or(0.0),
        summary["backend"]["records_processed"],
        summary["backend"]["peak_backlog_files"],
        summary["backend"]["drain_seconds"].as_f64().unwrap_or(0.0),
        summary["backend"]["summarize_seconds"].as_f64().unwrap_or(0.0),
        summary["generator"]["late_sends_over_10ms"],
        summary["generator"]["cpu_share_of_arbiters"].as_f64().unwrap_or(0.0) * 100.0
    );
    if summary["generator"]["behind"].as_bool() == Some(true) {
        let _ = write!(
            html,
            "<p class=\"warn\"><strong>Generator-bound run.</strong> The generator fell behind its schedule \
             (lateness p99 {} ms, past the profile's bound of {} ms): these figures describe the generator, \
             not the target.</p>",
            summary["generator"]["lateness_ms"]["p99"], summary["generator"]["max_lateness_p99_ms"]
        );
    }
    html.push_str("<h2>Latency by percentile</h2><p>From the intended send time (corrected for coordinated omission).</p>");
    html.push_str(&chart("Latency percentile spectrum", "percentile", "ms", &spectrum, true));
    html.push_str("<h2>Over time</h2>");
    html.push_str(&chart(
        "Throughput",
        "seconds",
        "per second",
        &[("requests/s".to_owned(), requests), ("state messages/s".to_owned(), messages)],
        false,
    ));
    html.push_str(&chart(
        "Backend inbox backlog",
        "seconds",
        "files waiting",
        &[("backlog".to_owned(), backlog)],
        false,
    ));
    convergence(&mut html, &summary["convergence"]);
    html.push_str(RENDER_CHECK);
    html.push_str("</body></html>");
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| path.display().to_string())?;
    Ok(path)
}

/// Compliance convergence: per sync, its figures and the share of clients at each stage over
/// site time.
fn convergence(html: &mut String, syncs: &Value) {
    let Some(syncs) = syncs.as_array().filter(|s| !s.is_empty()) else { return };
    html.push_str(
        "<h2>Compliance convergence</h2><p>Site time from each sync until the clients that scanned after it had \
         their results acknowledged by the MP, applied by StateSys and visible in the SUM Update Status view.</p>",
    );
    for c in syncs {
        let n = c["clients"].as_f64().unwrap_or(0.0).max(1.0);
        let _ = write!(
            html,
            "<h3>Sync to content version {}</h3><p>{} clients scanned after it.</p><table><tr><th>stage</th><th>clients</th>",
            c["content_version"], c["clients"]
        );
        for p in crate::convergence::PERCENTS {
            let _ = write!(html, "<th>t{p}</th>");
        }
        html.push_str("</tr>");
        let mut series = Vec::new();
        for stage in crate::convergence::STAGES {
            let s = &c[stage];
            if s.is_null() {
                continue;
            }
            let _ = write!(html, "<tr><td>{stage}</td><td>{}</td>", s["clients"]);
            for p in crate::convergence::PERCENTS {
                let t = s[format!("t{p}")].as_f64().map_or("never".to_owned(), crate::convergence::span);
                let _ = write!(html, "<td>{t}</td>");
            }
            html.push_str("</tr>");
            // Steps: flat until each point, then up.
            let mut points = vec![(0.0, 0.0)];
            for pt in s["curve"].as_array().into_iter().flatten() {
                let (t, k) =
                    (pt[0].as_f64().unwrap_or(0.0) / 60.0, pt[1].as_f64().unwrap_or(0.0) * 100.0 / n);
                let last = points.last().map_or(0.0, |p| p.1);
                points.extend([(t, last), (t, k)]);
            }
            series.push((stage.to_owned(), points));
        }
        html.push_str("</table>");
        html.push_str(&chart(
            "Clients converged",
            "site minutes after the sync",
            "% of clients",
            &series,
            false,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ticks_are_round() {
        assert_eq!(ticks(9.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0), [0.0]);
        let svg = chart("t", "x", "y", &[("a<b".into(), vec![(0.0, 1.0), (0.99, 3.0)])], true);
        assert!(svg.contains("a&lt;b") && svg.contains(">99%<") && svg.contains("class=\"series\""));
        let deep = chart("t", "x", "y", &[("a".into(), vec![(0.0, 1.0), (0.999_999, 3.0)])], true);
        assert!(deep.contains(">99.9999%<") && !deep.contains(">100%<"), "{deep}");
    }
}

//! `GET /metrics`: the Prometheus text of every stage's counters (the same list the status API
//! shows), the summarization tasks' last runs, and request latency by endpoint.

use std::fmt::Write as _;

use crate::server::Shared;

/// The exposition text.
pub(super) fn text(shared: &Shared) -> String {
    let mut out = String::new();
    crate::counters::prometheus(&shared.readings(), &mut out);
    let views = shared.summarizer.views();
    out.push_str("# TYPE sumstorm_summarization_seconds gauge\n# TYPE sumstorm_summarization_rows gauge\n");
    for run in views.last_runs.iter().flatten() {
        let task = run.task.name();
        let _ = write!(
            out,
            "sumstorm_summarization_seconds{{task=\"{task}\"}} {}\nsumstorm_summarization_rows{{task=\"{task}\"}} {}\n",
            run.duration.as_secs_f64(),
            run.rows
        );
    }
    shared.http.by_endpoint.render(&mut out);
    out
}

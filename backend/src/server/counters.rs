//! The HTTP face's counters: requests, bad requests, busy answers, and request latency by
//! endpoint as Prometheus histograms (`sumstorm_mp_request_seconds{endpoint="MP_RelayEndpoint"}`).
//! Lock-free: one set of atomic buckets per endpoint, incremented once per request.

// Request data decides indexes and sizes here: no indexing or arithmetic that can panic.
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::counters::{BOUNDS, Histogram, Reading};

/// What the HTTP face counts.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    pub requests: AtomicU64,
    /// Answered 400.
    pub bad_requests: AtomicU64,
    /// Answered 503 (a limit, back-pressure, the connection cap).
    pub busy: AtomicU64,
    pub by_endpoint: RequestMetrics,
}

impl HttpCounters {
    pub(crate) fn readings(&self, out: &mut Vec<Reading>) {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.extend([
            Reading::counter(&["Requests"], "sumstorm_mp_requests_total", n(&self.requests)),
            Reading::counter(&["BadRequests"], "sumstorm_mp_bad_requests_total", n(&self.bad_requests)),
            Reading::counter(&["Busy"], "sumstorm_mp_busy_total", n(&self.busy)),
        ]);
    }
}

/// The endpoints requests are counted under.
pub(crate) const ENDPOINTS: [&str; 11] = [
    "MP_ClientRegistration",
    "MP_PolicyManager",
    "MP_LocationManager",
    "MP_RelayEndpoint",
    "ccm_other",
    "policy_body",
    "sms_aut",
    "wsus_catalog",
    "api",
    "metrics",
    "other",
];

#[derive(Debug, Default)]
pub(crate) struct RequestMetrics {
    by_endpoint: [Histogram; ENDPOINTS.len()],
}

impl RequestMetrics {
    /// Records one request; an unknown label counts as `other`.
    pub(crate) fn record(&self, endpoint: &str, took: Duration) {
        let i = ENDPOINTS.iter().position(|e| *e == endpoint);
        let Some(h) = i.and_then(|i| self.by_endpoint.get(i)).or(self.by_endpoint.last()) else { return };
        h.record(took);
    }

    /// The Prometheus text of every endpoint that has seen a request.
    pub(crate) fn render(&self, out: &mut String) {
        let name = "sumstorm_mp_request_seconds";
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (endpoint, h) in ENDPOINTS.iter().zip(&self.by_endpoint) {
            let at_most = h.cumulative();
            let total = at_most.last().copied().unwrap_or(0);
            if total == 0 {
                continue;
            }
            for (bound, cumulative) in BOUNDS.iter().zip(&at_most) {
                let _ = writeln!(out, "{name}_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {total}");
            let sum = h.sum_nanos() as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{endpoint=\"{endpoint}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{endpoint=\"{endpoint}\"}} {total}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_sum_and_count() {
        let m = RequestMetrics::default();
        m.record("MP_RelayEndpoint", Duration::from_micros(300));
        m.record("MP_RelayEndpoint", Duration::from_millis(20));
        m.record("MP_RelayEndpoint", Duration::from_secs(9));
        m.record("nonsense", Duration::from_millis(1));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("sumstorm_mp_request_seconds_bucket{endpoint=\"MP_RelayEndpoint\",le=\"0.0005\"} 1")
        );
        assert!(
            out.contains("sumstorm_mp_request_seconds_bucket{endpoint=\"MP_RelayEndpoint\",le=\"0.025\"} 2")
        );
        assert!(
            out.contains("sumstorm_mp_request_seconds_bucket{endpoint=\"MP_RelayEndpoint\",le=\"2.5\"} 2")
        );
        assert!(
            out.contains("sumstorm_mp_request_seconds_bucket{endpoint=\"MP_RelayEndpoint\",le=\"+Inf\"} 3")
        );
        assert!(out.contains("sumstorm_mp_request_seconds_count{endpoint=\"MP_RelayEndpoint\"} 3"));
        assert!(out.contains("sumstorm_mp_request_seconds_count{endpoint=\"other\"} 1"));
        assert!(!out.contains("MP_PolicyManager"), "silent endpoints are left out");
    }
}

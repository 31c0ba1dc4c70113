//! Request counts and latencies by route, in the Prometheus text format (`GET /metrics`).
//!
//! A small registry of its own: counters per (route, method, status) and a latency histogram per
//! route with fixed buckets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_default();
            let secs = elapsed.as_secs_f64();
            for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
                if secs <= bound {
                    *count += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP sealkit_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE sealkit_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, method, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "sealkit_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP sealkit_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE sealkit_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let route = escape(route);
                for (count, bound) in h.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(
                        out,
                        "sealkit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "sealkit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "sealkit_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "sealkit_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out
    }
}

/// The `method` label of a request: one of the methods the API serves, else `OTHER`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! Measuring shared by the server's load generators (`load.rs`, `load_backup.rs`): a phase's
//! latency samples and CPU split, the HTTP/1.1 client connection they use, and the closed loop
//! that drives an in-process operation from many tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::cpu::{cpu_watch, CpuSplit};
use super::seed::{fail, Res};

/// One measured phase.
pub struct Phase {
    pub name: String,
    pub via: &'static str,
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu: CpuSplit,
    pub note: String,
}

impl Phase {
    /// A phase from its latency samples (nanoseconds) over `secs` seconds of measurement.
    #[allow(clippy::too_many_arguments)]
    pub fn from_samples(
        name: &str,
        via: &'static str,
        concurrency: usize,
        mut samples: Vec<u64>,
        errors: usize,
        secs: f64,
        note: String,
    ) -> Self {
        samples.sort_unstable();
        let pick = |q: f64| -> f64 {
            if samples.is_empty() {
                return f64::NAN;
            }
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1] as f64 / 1e6
        };
        Phase {
            name: name.to_owned(),
            via,
            concurrency,
            requests: samples.len(),
            errors,
            secs,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
            cpu: CpuSplit::default(),
            note,
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    /// The phase as a table row (`TABLE_HEADER` of `load.rs`).
    pub fn row(&self) -> String {
        let per_req = |cores: f64| cores * 1e6 / self.rate();
        let cpu = format!(
            "{:.0} / {:.0} / {:.0}",
            per_req(self.cpu.server),
            per_req(self.cpu.db),
            per_req(self.cpu.client)
        );
        format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {:.2} | {} |",
            self.name,
            self.via,
            self.concurrency,
            self.requests,
            self.errors,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            cpu,
            self.cpu.others,
            self.note
        )
    }

    /// The phase as a table row with its rate against `trivial`'s (blank without one).
    pub fn row_vs(&self, trivial: Option<f64>) -> String {
        let per_req = |cores: f64| cores * 1e6 / self.rate();
        let ratio = trivial.map_or(String::new(), |t| format!("{:.3}x", self.rate() / t));
        format!(
            "| {} | {} | {} | {} | {} | {:.0} | {ratio} | {:.2} | {:.2} | {:.1} | {:.0} / {:.0} / {:.0} | {:.2} | {} |",
            self.name,
            self.via,
            self.concurrency,
            self.requests,
            self.errors,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            per_req(self.cpu.server),
            per_req(self.cpu.db),
            per_req(self.cpu.client),
            self.cpu.others,
            self.note
        )
    }
}

pub async fn connect(addr: SocketAddr) -> Res<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("client connection: {e}");
        }
    });
    Ok(sender)
}

/// `concurrency` tasks calling `op(task, seq)` in a loop (no HTTP); `op` returns success.
pub async fn run_inproc<F, Fut>(
    name: &str,
    via: &'static str,
    concurrency: usize,
    op: F,
    warmup: Duration,
    seconds: Duration,
) -> Res<Phase>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + seconds;
    let watch = cpu_watch(warm_end, end);
    let handles: Vec<_> = (0..concurrency)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(16_384);
                let mut errors = 0usize;
                let mut last = warm_end;
                let mut seq = 0u64;
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let ok = op(task, seq).await;
                    let t1 = Instant::now();
                    seq += 1;
                    if t0 >= warm_end {
                        samples.push((t1 - t0).as_nanos() as u64);
                        last = t1;
                        errors += usize::from(!ok);
                    }
                }
                (samples, errors, last)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    let mut last = warm_end;
    for h in handles {
        let (s, e, l) = h.await.map_err(|e| fail(e.to_string()))?;
        samples.extend(s);
        errors += e;
        last = last.max(l);
    }
    let mut phase = Phase::from_samples(
        name,
        via,
        concurrency,
        samples,
        errors,
        (last - warm_end).as_secs_f64(),
        String::new(),
    );
    phase.cpu = watch.join().unwrap_or_default();
    Ok(phase)
}

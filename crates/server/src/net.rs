//! The listening side: accepts TCP connections (optionally TLS), and serves the router on each
//! with the bounds a server on the open internet needs.
//!
//! axum's own `serve` has no header-read or idle timeout and no connection cap, so a client that
//! opens sockets and sends nothing (or one byte a minute) would hold them forever. Here:
//! - at most `max_connections` connections are open; further clients wait in the kernel's
//!   accept queue instead of costing a task each;
//! - a request's head must arrive within `header_read_timeout_secs` (hyper closes the
//!   connection otherwise), and so must a TLS handshake;
//! - a keep-alive connection with no request in flight is closed after `idle_timeout_secs`;
//! - on shutdown, accepting stops, idle connections close, requests in flight finish (for at
//!   most `drain_timeout_secs`), then [`serve_on`] returns.
//!
//! The whole-request timeout (slow bodies, slow handlers) is a middleware in `http/`, where it
//! can answer with the API's error body. A WebSocket, once upgraded, leaves hyper's connection:
//! it keeps its connection slot (the permit travels with the socket) but is bounded by the chat
//! service's own rules, not by the idle timeout.

use crate::Config;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate chain and the key do not make a valid server configuration.
    #[error("certificate and key: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS server configuration read from PEM files, replaceable while the server runs: new
/// connections use the newest configuration, established ones keep theirs.
#[derive(Debug)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsFiles {
    /// Reads the certificate chain (PEM, leaf first) and the private key (PEM: PKCS#8, SEC1 or
    /// PKCS#1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let config = read_tls_config(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again. On an error the previous configuration stays in use, so a
    /// half-written certificate never takes the server off the air.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(read_tls_config(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut current) => *current = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(config)
    }
}

fn read_tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |path: &Path, reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no CERTIFICATE in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Connection bounds, read from [`Config`].
#[derive(Clone, Copy, Debug)]
struct Bounds {
    max_connections: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    drain_timeout: Duration,
}

impl Bounds {
    fn from_config(config: &Config) -> Self {
        Self {
            max_connections: config.max_connections.max(1),
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
            drain_timeout: Duration::from_secs(config.drain_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module docs).
/// With `tls`, every connection is a TLS connection.
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    config: &Config,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let bounds = Bounds::from_config(config);
    let slots = Arc::new(Semaphore::new(bounds.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every HTTP connection task holds a sender; when all are gone, the drain is complete.
    let (drained_tx, mut drained_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            bounds,
            stop: stop_rx.clone(),
            _drained: drained_tx.clone(),
        };
        let tls = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            if let Err(e) = connection.run(tcp, permit, tls).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(drained_tx);
    if tokio::time::timeout(bounds.drain_timeout, drained_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still in flight after the drain timeout");
    }
    Ok(())
}

struct Connection {
    router: Router,
    bounds: Bounds,
    stop: watch::Receiver<bool>,
    _drained: mpsc::Sender<()>,
}

impl Connection {
    async fn run(
        self,
        tcp: TcpStream,
        permit: OwnedSemaphorePermit,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let activity = Arc::new(Activity::new());
        match tls {
            None => {
                self.serve(
                    Slotted {
                        io: tcp,
                        _permit: permit,
                    },
                    activity,
                )
                .await
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.bounds.header_read_timeout, acceptor.accept(tcp));
                let stream = handshake.await.map_err(|_| "TLS handshake timed out")??;
                self.serve(
                    Slotted {
                        io: stream,
                        _permit: permit,
                    },
                    activity,
                )
                .await
            }
        }
    }

    async fn serve<I>(
        mut self,
        io: I,
        activity: Arc<Activity>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request_guard = tracked.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(request_guard);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.bounds.header_read_timeout)
            .keep_alive(true);
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut idle_check =
            tokio::time::interval(Duration::from_secs(1).min(self.bounds.idle_timeout));
        idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = *self.stop.borrow();
        if closing {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => return result.map_err(Into::into),
                changed = self.stop.changed(), if !closing => {
                    // A dropped sender means the server is gone: close as for a shutdown.
                    let _ = changed;
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = idle_check.tick(), if !closing => {
                    if activity.idle_for() >= self.bounds.idle_timeout {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    origin: Instant,
    last_ms: AtomicI64,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            origin: Instant::now(),
            last_ms: AtomicI64::new(0),
        }
    }

    fn touch(&self) {
        let ms = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        RequestGuard(self.clone())
    }

    /// How long the connection has had no request in flight (zero while one is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = u64::try_from(self.last_ms.load(Ordering::Relaxed)).unwrap_or(0);
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's I/O holding its connection slot: the slot is freed when the socket is closed,
/// also after a WebSocket upgrade has taken the socket out of hyper.
struct Slotted<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Slotted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Slotted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

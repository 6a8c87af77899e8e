//! Accepting connections and serving them: TCP, optional TLS, HTTP/1.1 and h2, graceful
//! drain.
//!
//! Each connection runs in its own task: TLS handshake, protocol detection and the
//! connection itself, so that a slow client never holds up the accept loop. Connections are
//! watched by one [`GracefulShutdown`]; on shutdown the listener closes (new connections are
//! refused), idle connections close, in-flight requests finish, and whatever is left after
//! the grace period is aborted.
//!
//! Two caps bound what clients hold: `max_connections` for all of them together (at the cap
//! the listener stops accepting, so more wait in the kernel's backlog), and
//! `max_connections_per_client` for one peer. A peer is its source address (an IPv6 peer its
//! /64, the least a host is usually given). A connection from a peer already at its cap is
//! closed as soon as it is accepted, before any byte is read or written (it may be TLS or h2,
//! so no answer fits every protocol, and a peer at its cap is not owed one). It never takes a
//! slot of `max_connections`, so one peer holding slow connections (slowloris) cannot keep the
//! others waiting in the backlog.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::tls::SharedTls;
use crate::auth::ClientCertificate;
use crate::body::{Body, BoxError};
use crate::metrics::HttpMetrics;

/// Least time between two log lines about peers over their connection cap.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Connection-level limits and timeouts.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a client may take from connecting to sending complete request headers (TLS
    /// handshake included), and between requests on a kept-alive HTTP/1.1 connection.
    /// Closes slowloris connections that trickle headers to hold sockets open.
    pub header_read_timeout: Duration,
    /// Concurrent streams per h2 connection: enough for parallel layer pulls, bounded so one
    /// connection cannot claim the whole concurrency limit.
    pub max_concurrent_streams: u32,
    /// Interval of h2 keep-alive pings, which detect dead peers behind NATs and load
    /// balancers; `None` disables them.
    pub keep_alive_interval: Option<Duration>,
    /// How long to wait for a ping acknowledgement before closing the connection.
    pub keep_alive_timeout: Duration,
    /// How long shutdown waits for in-flight requests before aborting them.
    pub grace_period: Duration,
    /// Most connections served at once. At the limit the listener stops accepting, so more
    /// clients wait in the kernel's listen backlog instead of costing descriptors and memory.
    pub max_connections: usize,
    /// Most connections one peer (source address; IPv6: its /64) may have open. More from
    /// that peer are closed as soon as they are accepted and take no slot of
    /// `max_connections`. Every client behind one address (a load balancer, loopback) is one
    /// peer.
    pub max_connections_per_client: usize,
    /// Where connections refused at the per-peer cap are counted; `None` counts nothing.
    pub metrics: Option<HttpMetrics>,
}

/// The socket-level identity of a request's peer, inserted into every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

// === impl ServeOptions ===

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_concurrent_streams: 128,
            keep_alive_interval: Some(Duration::from_secs(30)),
            keep_alive_timeout: Duration::from_secs(20),
            grace_period: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 256,
            metrics: None,
        }
    }
}

impl ServeOptions {
    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.max_concurrent_streams)
            .keep_alive_interval(self.keep_alive_interval)
            .keep_alive_timeout(self.keep_alive_timeout);
        builder
    }
}

/// Binds a TCP listener on `addr`.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `service` on `listener` with [`ServeOptions::default`] until `shutdown` completes,
/// then drains. See [`serve_with`].
pub async fn serve<S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    serve_with(&ServeOptions::default(), listener, tls, service, shutdown).await;
}

/// Serves `service` on `listener` (with TLS if `tls` is set) until `shutdown` completes.
///
/// Then it stops accepting, lets in-flight requests finish for up to
/// [`ServeOptions::grace_period`], aborts whatever is left, and returns.
pub async fn serve_with<S>(
    options: &ServeOptions,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    serve_reloadable(
        options,
        listener,
        tls.map(SharedTls::new),
        service,
        shutdown,
    )
    .await;
}

/// Like [`serve_with`], taking the TLS configuration `tls` holds when each connection is
/// accepted: a reload that replaces it applies to new connections, and a connection keeps
/// the certificate and client verification it was accepted with to its end.
pub async fn serve_reloadable<S>(
    options: &ServeOptions,
    listener: TcpListener,
    tls: Option<SharedTls>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let builder = Arc::new(options.builder());
    let graceful = GracefulShutdown::new();
    let peers = Arc::new(PeerTable::new(options.max_connections_per_client));
    let mut refusals = RefusalLog::default();
    let mut connections = JoinSet::new();
    let local = listener.local_addr().ok();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Shutdown first, so a flood of connections cannot starve it.
            biased;
            () = &mut shutdown => break,
            // At the connection limit, accept nothing until a connection task ends.
            accepted = listener.accept(), if connections.len() < options.max_connections => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = PeerSlot::take(&peers, peer.ip()) else {
                        // Closed before anything is read: the peer's other connections
                        // keep their slots, and this one takes none.
                        drop(stream);
                        if let Some(metrics) = &options.metrics {
                            metrics.connection_refused();
                        }
                        refusals.refused(peer, options.max_connections_per_client);
                        continue;
                    };
                    let conn = Connection {
                        builder: builder.clone(),
                        tls: tls.as_ref().map(SharedTls::acceptor),
                        service: service.clone(),
                        // Subscribe now, in the accept loop: a connection still in its TLS
                        // handshake when shutdown starts then sees the signal at once.
                        watcher: graceful.watcher(),
                        deadline: Instant::now() + options.header_read_timeout,
                        peer,
                        _slot: slot,
                    };
                    let span = tracing::debug_span!("conn", %peer);
                    connections.spawn(conn.run(stream).instrument(span));
                }
                Err(error) => accept_error(error).await,
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
        }
    }
    // Closing the socket makes new connection attempts fail fast (ECONNREFUSED) instead of
    // sitting in the backlog until the process exits.
    drop(listener);
    tracing::info!(
        addr = ?local,
        connections = connections.len(),
        grace = ?options.grace_period,
        "shutting down: draining connections"
    );
    let drained = tokio::time::timeout(options.grace_period, async {
        graceful.shutdown().await;
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            aborted = connections.len(),
            "grace period over: aborting connections"
        );
        connections.shutdown().await;
    }
}

/// Accept errors are mostly per-connection (the peer reset before we accepted) or resource
/// exhaustion (EMFILE). Neither should end the server; after exhaustion, back off briefly so
/// the loop does not spin while descriptors are scarce.
async fn accept_error(error: io::Error) {
    match error.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {
            tracing::debug!(%error, "accept failed");
        }
        _ => {
            tracing::warn!(%error, "accept failed; backing off");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            tracing::error!(%error, "connection task panicked");
        }
    }
}

/// Connections open per peer. Entries go when their count reaches zero, so the table holds
/// at most one entry per open connection, whatever addresses clients come from.
struct PeerTable {
    open: Mutex<HashMap<IpAddr, usize>>,
    limit: usize,
}

/// One connection's place in its peer's count, given back when the connection ends (its task
/// finishes, panics or is aborted).
struct PeerSlot {
    table: Arc<PeerTable>,
    peer: IpAddr,
}

/// Logs refusals at most once per [`REFUSAL_LOG_INTERVAL`], with how many went unlogged.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

// === impl PeerTable ===

impl PeerTable {
    fn new(limit: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Only counts live under the lock, each update complete: a panic cannot leave it torn.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The peer a source address counts as: an IPv4 address (IPv4-mapped IPv6 included) by
/// itself, an IPv6 address by its /64, since one host is commonly given a whole /64.
fn peer_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

// === impl PeerSlot ===

impl PeerSlot {
    /// A slot for a connection from `ip`, or `None` when its peer is at the cap.
    fn take(table: &Arc<PeerTable>, ip: IpAddr) -> Option<Self> {
        let peer = peer_of(ip);
        let mut open = table.open();
        let count = open.entry(peer).or_insert(0);
        if *count >= table.limit {
            return None;
        }
        *count += 1;
        Some(Self {
            table: table.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.table.open();
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

// === impl RefusalLog ===

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, limit: usize) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(peer = %peer.ip(), limit, unlogged = self.unlogged,
            "client over limits.max_connections_per_client: closing its new connections");
        self.last = Some(now);
        self.unlogged = 0;
    }
}

/// The subject of the client certificate rustls verified in the handshake (the verifier
/// only lets verified chains through), or `None` without one. A verified certificate whose
/// subject cannot be decoded gets an empty subject, which maps to no principal: it is
/// refused, never treated as no certificate.
fn client_certificate(connection: &rustls::ServerConnection) -> Option<ClientCertificate> {
    use x509_cert::der::Decode as _;
    let leaf = connection.peer_certificates()?.first()?;
    match x509_cert::Certificate::from_der(leaf.as_ref()) {
        Ok(cert) => Some(ClientCertificate {
            subject: cert.tbs_certificate.subject.to_string(),
        }),
        Err(error) => {
            tracing::debug!(%error, "cannot decode the client certificate's subject");
            Some(ClientCertificate {
                subject: String::new(),
            })
        }
    }
}

/// Everything one connection task needs.
struct Connection<S> {
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    service: S,
    watcher: Watcher,
    /// When the first request's headers must have arrived.
    deadline: Instant,
    peer: SocketAddr,
    /// Held for the connection's life.
    _slot: PeerSlot,
}

// === impl Connection ===

impl<S> Connection<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    async fn run(self, stream: TcpStream) {
        // Responses are often small (manifests, tokens, errors): do not let Nagle hold them.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        match self.tls.clone() {
            None => self.serve(stream, None).await,
            Some(acceptor) => {
                match tokio::time::timeout_at(self.deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let certificate = client_certificate(stream.get_ref().1);
                        self.serve(stream, certificate).await
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve<I>(self, io: I, certificate: Option<ClientCertificate>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            service,
            watcher,
            deadline,
            peer,
            // Kept to the end of the connection.
            _slot,
            ..
        } = self;
        let started = Arc::new(AtomicBool::new(false));
        let hyper_service = {
            let started = started.clone();
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                started.store(true, Ordering::Relaxed);
                request.extensions_mut().insert(RemoteAddr(peer));
                if let Some(certificate) = &certificate {
                    request.extensions_mut().insert(certificate.clone());
                }
                service.clone().oneshot(request)
            })
        };
        let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), hyper_service));
        tokio::pin!(conn);
        // hyper's header read timeout starts only once it knows the protocol, and h2 has none:
        // a client that connects and then sends nothing, or half an h2 preface, would hold
        // the connection forever. So the first request must arrive by `deadline`; after that,
        // hyper's h1 header timeout and h2 keep-alive take over.
        let result = tokio::select! {
            result = &mut conn => result,
            () = tokio::time::sleep_until(deadline) => {
                if started.load(Ordering::Relaxed) {
                    conn.await
                } else {
                    tracing::debug!("no request before the header read timeout; closing");
                    return;
                }
            }
        };
        if let Err(error) = result {
            // Usually the client's doing (reset, bad request, header timeout): debug, not warn.
            tracing::debug!(error = %error, "connection closed with error");
        }
    }
}

//! In-process peers that misbehave on demand, for fault and hostile-input tests, where a real
//! peer cannot be made to: a TCP [`Forwarder`] in front of a real peer that passes, throttles,
//! stalls or refuses connections, and a raw HTTP/1.1 server ([`FakeHttp`]) whose every answer
//! the test scripts (forwarded from a real peer, garbage, an error status, a cut-off or endless
//! body, or no answer at all).
//!
//! Each fake runs on a small tokio runtime of its own, so blocking tests can use them, and
//! stops (closing every connection) when dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// A runtime with one worker thread, for a fake's tasks.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime for a fake peer")
}

// === the forwarder ===

/// What a [`Forwarder`] does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Forward both ways at full speed.
    Pass,
    /// Forward, but send at most `bytes` back to the client per `every`.
    Throttle { bytes: usize, every: Duration },
    /// Accept and read, never answer: a registry that hangs.
    Stall,
    /// Close every connection at once: a registry that is down.
    Refuse,
}

/// A TCP forwarder on a loopback port in front of a real peer. [`Forwarder::set`] changes what
/// it does, and cuts the connections already open, so that a client's pooled connections
/// obey the new [`Link`] too.
pub struct Forwarder {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Last: its drop ends every task.
    rt: Runtime,
}

struct Shared {
    link: Mutex<Link>,
    open: Mutex<Vec<AbortHandle>>,
    accepted: AtomicUsize,
}

impl Forwarder {
    /// Forwards to `target` (`host:port`).
    pub fn start(target: &str) -> Forwarder {
        let target: SocketAddr = target.parse().expect("target is ip:port");
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let shared = Arc::new(Shared {
            link: Mutex::new(Link::Pass),
            open: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let state = shared.clone();
        rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::Relaxed);
                let link = *state.link.lock().unwrap();
                let task = tokio::spawn(forward(inbound, target, link));
                let mut open = state.open.lock().unwrap();
                open.retain(|t| !t.is_finished());
                open.push(task.abort_handle());
            }
        });
        Forwarder { addr, shared, rt }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what happens to new connections and cuts the open ones.
    pub fn set(&self, link: Link) {
        *self.shared.link.lock().unwrap() = link;
        for task in self.shared.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// A handle on the fake's runtime, for tests that need one.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, link: Link) {
    let every = match link {
        Link::Refuse => return,
        Link::Stall => {
            let mut buf = vec![0; 16 * 1024];
            while matches!(inbound.read(&mut buf).await, Ok(n) if n > 0) {}
            return;
        }
        Link::Pass => None,
        Link::Throttle { bytes, every } => Some((bytes, every)),
    };
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut peer_read, mut peer_write) = outbound.into_split();
    let up = tokio::io::copy(&mut client_read, &mut peer_write);
    let down = async {
        let Some((bytes, every)) = every else {
            return tokio::io::copy(&mut peer_read, &mut client_write)
                .await
                .map(drop);
        };
        let mut buf = vec![0; bytes.max(1)];
        loop {
            let n = peer_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            client_write.write_all(&buf[..n]).await?;
            tokio::time::sleep(every).await;
        }
    };
    // Either side closing ends the connection: HTTP needs no half-close here.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

// === the scripted HTTP server ===

/// How [`FakeHttp`] answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response with these headers (`Content-Length` is added).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// The same response fetched from `url` on a real peer (status and body).
    Forward(String),
    /// `Content-Length` of the whole `body`, only its first half, then the connection closes.
    Truncated { body: Bytes },
    /// `200` without `Content-Length`, then `chunk` over and over until the client hangs up
    /// (or 1 GiB went out).
    Endless { chunk: Bytes },
    /// `status` with `headers` and no `Content-Length`, then `chunk` over and over until the
    /// client hangs up (or 1 GiB went out): an endless error or token body.
    EndlessStatus {
        status: u16,
        headers: Vec<(String, String)>,
        chunk: Bytes,
    },
    /// Read the request and never answer (until `Duration` passed, then close).
    Hang(Duration),
    /// `200` announcing `Content-Length: content_length`, then `body` (longer, shorter or
    /// as long), then the connection closes: a body that lies about its length.
    Declared { content_length: u64, body: Bytes },
    /// `200` with `Content-Length` of `body`, sent one byte per `every`: a dripping peer.
    Drip { body: Bytes, every: Duration },
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// `200` with a body and one content type.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply::Respond {
            status: 200,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    /// An error status with a short text body.
    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: Bytes::from(format!("fake peer says {status}\n")),
        }
    }
}

/// Each request's path and its `Authorization` header (`None`: not sent), in order.
type AuthLog = Mutex<Vec<(String, Option<String>)>>;

/// When each request began being answered and when it ended (`None`: not yet).
#[derive(Default)]
struct Spans(Mutex<Vec<(Instant, Option<Instant>)>>);

/// A raw HTTP/1.1 server on a loopback port: one request per connection (it answers with
/// `Connection: close`), each answered with what `handler(path)` says.
pub struct FakeHttp {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    authorizations: Arc<AuthLog>,
    sent: Arc<AtomicU64>,
    /// Requests being answered now, and the most there ever were at once.
    busy: Arc<(AtomicUsize, AtomicUsize)>,
    /// When each request began being answered (its head read) and ended.
    spans: Arc<Spans>,
    rt: Runtime,
}

impl FakeHttp {
    pub fn start<H>(handler: H) -> FakeHttp
    where
        H: Fn(&str) -> Reply + Send + Sync + 'static,
    {
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind fake HTTP server");
        let addr = listener.local_addr().expect("fake address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let busy = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let spans = Arc::new(Spans::default());
        let handler = Arc::new(handler);
        let client = reqwest::Client::new();
        let (log, counter, gauge) = (requests.clone(), sent.clone(), busy.clone());
        let auths = authorizations.clone();
        let all_spans = spans.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log, counter, client, gauge, auths, spans) = (
                    handler.clone(),
                    log.clone(),
                    counter.clone(),
                    client.clone(),
                    gauge.clone(),
                    auths.clone(),
                    all_spans.clone(),
                );
                tokio::spawn(async move {
                    let logs = (&*log, &*auths);
                    let busy = (&*gauge, &*spans);
                    let _ = answer(stream, &*handler, logs, &counter, &client, busy).await;
                });
            }
        });
        FakeHttp {
            addr,
            requests,
            authorizations,
            sent,
            busy,
            spans,
            rt,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Each request so far as its path and `Authorization` header (`None`: not sent).
    pub fn authorizations(&self) -> Vec<(String, Option<String>)> {
        self.authorizations.lock().unwrap().clone()
    }

    /// Body bytes written to clients so far (for `Endless`: before the client hung up).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The most requests this server was answering at one time, not counting an overlap
    /// shorter than `grace`: a connection the client closed just before opening the next
    /// one can be seen closing here only after the next one arrived.
    pub fn max_concurrent_beyond(&self, grace: Duration) -> usize {
        let spans = self.spans.0.lock().unwrap();
        spans
            .iter()
            .map(|(start, _)| {
                let at = *start + grace;
                spans
                    .iter()
                    .filter(|(s, end)| *s <= at && end.is_none_or(|e| e > at))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// The most requests this server was answering at one time.
    pub fn max_concurrent(&self) -> usize {
        self.busy.1.load(Ordering::Relaxed)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

async fn answer<H>(
    mut stream: TcpStream,
    handler: &H,
    (log, auths): (&Mutex<Vec<String>>, &AuthLog),
    sent: &AtomicU64,
    client: &reqwest::Client,
    (busy, spans): (&(AtomicUsize, AtomicUsize), &Spans),
) -> io::Result<()>
where
    H: Fn(&str) -> Reply + ?Sized,
{
    // The request head; no request this server gets has a body.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    log.lock().unwrap().push(path.clone());
    let authorization = line
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_owned());
    auths.lock().unwrap().push((path.clone(), authorization));
    let now = busy.0.fetch_add(1, Ordering::SeqCst) + 1;
    busy.1.fetch_max(now, Ordering::SeqCst);
    let span = {
        let mut all = spans.0.lock().unwrap();
        all.push((Instant::now(), None));
        all.len() - 1
    };
    // What a forwarded request passes on to the real peer: content negotiation, credentials
    // and ranges (distribution answers an OCI manifest only to a client that accepts it).
    let forwarded: Vec<(String, String)> = line
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| {
            matches!(
                name.trim().to_ascii_lowercase().as_str(),
                "accept" | "authorization" | "range"
            )
        })
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let result = respond(&mut stream, handler(&path), sent, client, &forwarded).await;
    busy.0.fetch_sub(1, Ordering::SeqCst);
    spans.0.lock().unwrap()[span].1 = Some(Instant::now());
    result
}

async fn respond(
    stream: &mut TcpStream,
    reply: Reply,
    sent: &AtomicU64,
    client: &reqwest::Client,
    forwarded: &[(String, String)],
) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let reply = match reply {
        Reply::Forward(url) => match forwarded
            .iter()
            .fold(client.get(&url), |r, (name, value)| r.header(name, value))
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                // The peer's own headers (digest, challenge, links, content type), less the
                // framing ones this server writes itself.
                let headers = response
                    .headers()
                    .iter()
                    .filter(|(name, _)| {
                        !matches!(
                            name.as_str(),
                            "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                        )
                    })
                    .filter_map(|(name, value)| {
                        Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                    })
                    .collect();
                let body = response.bytes().await.unwrap_or_default();
                Reply::Respond {
                    status,
                    headers,
                    body,
                }
            }
            Err(_) => Reply::Close,
        },
        other => other,
    };
    let head = |status: u16, headers: &[(String, String)], length: Option<usize>| {
        let mut text = format!("HTTP/1.1 {status} Fake\r\nConnection: close\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(length) = length {
            text.push_str(&format!("Content-Length: {length}\r\n"));
        }
        text.push_str("\r\n");
        text.into_bytes()
    };
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            stream
                .write_all(&head(status, &headers, Some(body.len())))
                .await?;
            stream.write_all(&body).await?;
            sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Reply::Truncated { body } => {
            let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
            stream
                .write_all(&head(200, &headers, Some(body.len())))
                .await?;
            let half = &body[..body.len() / 2];
            stream.write_all(half).await?;
            sent.fetch_add(half.len() as u64, Ordering::Relaxed);
        }
        Reply::Endless { chunk } => {
            let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
            stream.write_all(&head(200, &headers, None)).await?;
            let mut total = 0u64;
            while total < 1 << 30 {
                stream.write_all(&chunk).await?;
                total += chunk.len() as u64;
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Reply::EndlessStatus {
            status,
            headers,
            chunk,
        } => {
            stream.write_all(&head(status, &headers, None)).await?;
            let mut total = 0u64;
            while total < 1 << 30 {
                stream.write_all(&chunk).await?;
                total += chunk.len() as u64;
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        Reply::Declared {
            content_length,
            body,
        } => {
            let mut text = format!(
                "HTTP/1.1 200 Fake\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {content_length}\r\n\r\n"
            )
            .into_bytes();
            text.extend_from_slice(&body);
            stream.write_all(&text).await?;
            sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Reply::Drip { body, every } => {
            let headers = [(
                "Content-Type".to_owned(),
                "application/octet-stream".to_owned(),
            )];
            stream
                .write_all(&head(200, &headers, Some(body.len())))
                .await?;
            for byte in body.iter() {
                tokio::time::sleep(every).await;
                stream.write_all(&[*byte]).await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Reply::Hang(limit) => {
            let _ = tokio::time::timeout(limit, async {
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        Reply::Close | Reply::Forward(_) => {}
    }
    let _ = stream.shutdown().await;
    Ok(())
}

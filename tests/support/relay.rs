//! A recording HTTP/1.1 relay in front of a peer, which can cut one response body short or
//! send one slowly: a client's connection that breaks in the middle of a layer, or an
//! upstream that takes its time, with every request and answer seen on the wire.
//!
//! Each connection carries one request: the relay forwards the request head with
//! `Connection: close` in place of the client's own, so that requests need no pairing with
//! answers on a kept-alive connection (HTTP/1.1 clients reconnect for the next request). An
//! answer ends with its `Content-Length` (none for `HEAD`, `204`, `304`), else where the peer
//! closes. Other headers and the bodies pass unchanged. Per exchange it records the method, path, `Range`,
//! the answer's status and `Content-Range`, the body bytes relayed and when.
//!
//! Runs on a small tokio runtime of its own, stopped (every connection closed) on drop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// One request through the relay and what came back.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// The request's `Range` header.
    pub range: Option<String>,
    /// The answer's status; 0 when the peer sent no answer head.
    pub status: u16,
    /// The answer's `Content-Range` header.
    pub content_range: Option<String>,
    /// The answer's `Content-Length` header.
    pub content_length: Option<u64>,
    /// Body bytes relayed to the client.
    pub body_bytes: u64,
    /// Whether the relay cut this body short.
    pub cut: bool,
    /// When the request head arrived.
    pub asked: Instant,
    /// When the answer head was relayed.
    pub answered: Option<Instant>,
    /// When the relay began writing the last body bytes to the client: before the client
    /// could have them.
    pub last_write: Option<Instant>,
    /// When the body ended (or was cut).
    pub ended: Instant,
}

/// What the relay does to answers whose request path ends with a given suffix.
#[derive(Default)]
struct Rules {
    /// The first `200` answer to a GET of this path: closed after this many body bytes.
    cut: Option<(String, u64)>,
    /// Answers to GETs of this path: at most `bytes` per `every`.
    slow: Option<(String, usize, Duration)>,
}

struct Shared {
    rules: Mutex<Rules>,
    log: Mutex<Vec<Exchange>>,
}

/// The relay; see the module documentation.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Last: its drop ends every task.
    rt: Runtime,
}

impl Relay {
    /// Relays to `target` (`host:port`), passing everything until a rule is set.
    pub fn start(target: &str) -> Relay {
        let target: SocketAddr = target.parse().expect("target is ip:port");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for the relay");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let shared = Arc::new(Shared {
            rules: Mutex::new(Rules::default()),
            log: Mutex::new(Vec::new()),
        });
        let state = shared.clone();
        rt.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(inbound, target, state.clone()));
            }
        });
        Relay { addr, shared, rt }
    }

    /// The first `200` answer to a GET whose path (less any query) ends with `path_suffix` is
    /// closed after
    /// `after` body bytes (once; later answers pass whole).
    pub fn cut_once(&self, path_suffix: &str, after: u64) -> &Self {
        self.shared.rules.lock().unwrap().cut = Some((path_suffix.to_owned(), after));
        self
    }

    /// Answers to GETs whose path ends with `path_suffix` go out at most `bytes` per
    /// `every`.
    pub fn slow(&self, path_suffix: &str, bytes: usize, every: Duration) -> &Self {
        self.shared.rules.lock().unwrap().slow = Some((path_suffix.to_owned(), bytes, every));
        self
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The exchanges that ended so far, in the order they ended.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The ended GETs whose path (less any query) ends with `path_suffix`, in the order they
    /// were asked.
    pub fn gets(&self, path_suffix: &str) -> Vec<Exchange> {
        let mut gets: Vec<Exchange> = self
            .exchanges()
            .into_iter()
            .filter(|e| e.method == "GET" && path_only(&e.path).ends_with(path_suffix))
            .collect();
        gets.sort_by_key(|e| e.asked);
        gets
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// Reads from `stream` into `buf` until it holds `\r\n\r\n`: the head's length, or `None`
/// when the stream ended (or the head grew past 64 KiB) first.
async fn read_head(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request target without its query (containerd adds `?ns=<registry>` to a mirror's).
fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// The value of header `name` in a head's text.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

async fn relay(mut inbound: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let mut request = Vec::new();
    let Some(head_len) = read_head(&mut inbound, &mut request).await else {
        return;
    };
    let asked = Instant::now();
    let head = String::from_utf8_lossy(&request[..head_len]).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let range = header(&head, "range");
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    // The head again, its `Connection` header replaced; then whatever followed it.
    let mut forwarded = String::new();
    for line in head.trim_end().split("\r\n") {
        let name = line.split_once(':').map(|(n, _)| n.trim());
        if !name.is_some_and(|n| n.eq_ignore_ascii_case("connection")) {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = forwarded.into_bytes();
    up.extend_from_slice(&request[head_len..]);
    if outbound.write_all(&up).await.is_err() {
        return;
    }
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut peer_read, mut peer_write) = outbound.into_split();
    // A request body, if any, flows on its own.
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut peer_write).await;
    });
    let (cut, slow) = {
        let rules = shared.rules.lock().unwrap();
        let ours = |suffix: &String| method == "GET" && path_only(&path).ends_with(suffix.as_str());
        (
            rules.cut.as_ref().filter(|(s, _)| ours(s)).map(|(_, n)| *n),
            rules
                .slow
                .as_ref()
                .filter(|(s, _, _)| ours(s))
                .map(|(_, b, e)| (*b, *e)),
        )
    };
    let mut exchange = Exchange {
        method,
        path,
        range,
        status: 0,
        content_range: None,
        content_length: None,
        body_bytes: 0,
        cut: false,
        asked,
        answered: None,
        last_write: None,
        ended: asked,
    };
    let mut answer = Vec::new();
    if let Some(head_len) = read_head(&mut peer_read, &mut answer).await {
        let head = String::from_utf8_lossy(&answer[..head_len]).into_owned();
        exchange.status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        exchange.content_range = header(&head, "content-range");
        exchange.content_length = header(&head, "content-length").and_then(|v| v.parse().ok());
        // The cut applies to the first 200 only; taking it here makes it happen once.
        let limit = cut.filter(|_| exchange.status == 200).and_then(|n| {
            let mut rules = shared.rules.lock().unwrap();
            rules.cut.take().map(|_| n)
        });
        let ok = client_write.write_all(&answer[..head_len]).await.is_ok();
        exchange.answered = Some(Instant::now());
        let mut pending = answer.split_off(head_len);
        let mut chunk = vec![0u8; slow.map_or(64 * 1024, |(b, _)| b.max(1))];
        // Where the body ends, when the head says (else where the peer closes).
        let length = match exchange.status {
            204 | 304 => Some(0),
            _ if exchange.method == "HEAD" => Some(0),
            _ => exchange.content_length,
        };
        while ok && length != Some(exchange.body_bytes) {
            if pending.is_empty() {
                match peer_read.read(&mut chunk).await {
                    Ok(n) if n > 0 => pending.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let mut n = pending.len();
            if let Some(limit) = limit {
                n = n.min((limit - exchange.body_bytes) as usize);
            }
            if n > 0 {
                exchange.last_write = Some(Instant::now());
            }
            if client_write.write_all(&pending[..n]).await.is_err() {
                break;
            }
            pending.drain(..n);
            exchange.body_bytes += n as u64;
            if limit == Some(exchange.body_bytes) {
                exchange.cut = true;
                break;
            }
            if let Some((_, every)) = slow {
                tokio::time::sleep(every).await;
            }
        }
    }
    // Logged before the client sees the end, so that it is there once the client is done.
    exchange.ended = Instant::now();
    shared.log.lock().unwrap().push(exchange);
    // Dropping both halves closes the client's connection: at the cut, mid-body.
    let _ = client_write.shutdown().await;
    drop(client_write);
    upload.abort();
}

//! A small blocking HTTP/1.1 client for talking to the proxy and its peers the way a registry
//! client does: any method, request headers and body, response headers, chunked bodies.
//!
//! Every request sends `Connection: close` and reads to the end of the stream, so the bytes a
//! server sends after the headers of a `HEAD` response (which must be none) are visible too.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long connecting, and each read or write, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A response as received.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body after chunked decoding; for `HEAD`, whatever followed the headers.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `errors[0].code` of an OCI error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()["errors"][0]["code"].as_str().map(String::from)
    }

    /// `errors[0].message` of an OCI error body.
    pub fn error_message(&self) -> Option<String> {
        self.json()["errors"][0]["message"]
            .as_str()
            .map(String::from)
    }

    /// One line for assertion messages: status, the headers that matter, and the body (cut).
    pub fn summary(&self) -> String {
        let body = self.text();
        let body: String = body.chars().take(600).collect();
        format!(
            "HTTP {} content-type={:?} content-length={:?} docker-content-digest={:?} body={body:?}",
            self.status,
            self.header("content-type"),
            self.header("content-length"),
            self.header("docker-content-digest"),
        )
    }
}

/// Sends one request to an `http://` URL and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {authority}"))?;
    let io = |e: std::io::Error| format!("{method} {url}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;

    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(io)?;
    // A server may answer (and close) before reading a request body; that is not our error.
    let _ = stream.write_all(body);

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse_response(method, url, &raw)
}

/// A connection to `to` (`host:port`) from the source address `from`, which may be any of
/// 127.0.0.0/8 on Linux: one test then plays several clients, each its own peer.
pub fn connect_from(from: IpAddr, to: &str) -> TcpStream {
    let to: SocketAddr = to
        .to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .unwrap_or_else(|| panic!("no address for {to}"));
    // std cannot bind a client socket before connecting; tokio's TcpSocket can.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime to connect with");
    let stream = runtime.block_on(async {
        let socket = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }?;
        socket.bind(SocketAddr::new(from, 0))?;
        socket.connect(to).await?.into_std()
    });
    let stream = stream.unwrap_or_else(|e| panic!("connect from {from} to {to}: {e}"));
    stream.set_nonblocking(false).expect("blocking socket");
    stream
}

/// Reads until the server closes the connection or `limit` passes; whether it closed.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn parse_response(method: &str, url: &str, raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {url}: no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{method} {url}: bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if method != "HEAD" && chunked {
        dechunk(rest).map_err(|e| format!("{method} {url}: {e}"))?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let line = String::from_utf8_lossy(&data[..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(format!(
                "truncated chunk: want {size} bytes, have {}",
                data.len()
            ));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

//! A small blocking HTTP/1.1 client for talking to the proxy and its peers the way a registry
//! client does: any method, request headers and body, response headers, chunked bodies.
//!
//! Every request sends `Connection: close` and reads to the end of the stream, so the bytes a
//! server sends after the headers of a `HEAD` response (which must be none) are visible too.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

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

//! Helpers for server tests: a server on a loopback port that can be stopped, clients, a
//! self-signed certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::util::BoxCloneService;
use tower::Service;
use trustgate::body::{self, Body, BoxError};
use trustgate::server::{self, ServeOptions};

/// A server running in a task until [`Running::stop`].
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Starts `service` on 127.0.0.1 with a free port.
    pub async fn start<S>(options: ServeOptions, tls: Option<TlsAcceptor>, service: S) -> Self
    where
        S: Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            server::serve_with(&options, listener, tls, service, shutdown).await;
        });
        Self {
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits (at most `limit`) for `serve` to return; returns how long
    /// it took.
    pub async fn stop(mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        self.signal();
        tokio::time::timeout(limit, &mut self.task)
            .await
            .expect("serve returned within the limit")
            .expect("serve task did not panic");
        start.elapsed()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A handler that answers "hello" for any request.
pub fn hello() -> BoxCloneService<Request<Incoming>, Response<Body>, Infallible> {
    BoxCloneService::new(tower::service_fn(|_request: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(body::full("hello")))
    }))
}

pub fn client_h1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
}

pub fn client_h2() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made by `openssl req -x509`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not a CA: webpki refuses a CA certificate as a server's end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        status.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert, key)
}

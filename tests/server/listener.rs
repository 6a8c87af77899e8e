//! The listener on real loopback sockets: protocols, TLS, graceful drain, slowloris.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use trustgate::body;
use trustgate::metrics::Metrics;
use trustgate::server::{self, ServeOptions, TlsError};

use crate::support::{client_h1, client_h2, hello, self_signed, Running};

#[tokio::test]
async fn serves_http1_and_h2() {
    let server = Running::start(ServeOptions::default(), None, hello()).await;
    for (client, version) in [
        (client_h1(), Version::HTTP_11),
        (client_h2(), Version::HTTP_2),
    ] {
        let response = client.get(server.url("/")).send().await.expect("request");
        assert_eq!(response.version(), version);
        assert_eq!(response.text().await.expect("body"), "hello");
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn serves_tls_with_alpn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let acceptor = server::tls_acceptor(&cert, &key).expect("tls acceptor");
    let server = Running::start(ServeOptions::default(), Some(acceptor), hello()).await;
    let pem = std::fs::read(&cert).expect("read cert");
    let ca = reqwest::Certificate::from_pem(&pem).expect("parse cert");
    let url = format!("https://localhost:{}/", server.addr.port());

    // ALPN picks h2 when the client offers it, and HTTP/1.1 when it offers only that.
    let h2 = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .resolve("localhost", server.addr)
        .build()
        .expect("client");
    let h1 = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("localhost", server.addr)
        .http1_only()
        .build()
        .expect("client");
    for (client, version) in [(h2, Version::HTTP_2), (h1, Version::HTTP_11)] {
        let response = client.get(&url).send().await.expect("TLS request");
        assert_eq!(response.version(), version);
        assert_eq!(response.text().await.expect("body"), "hello");
    }

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = client_h1().get(server.url("/")).send().await;
    assert!(
        plain.is_err(),
        "plain HTTP answered on a TLS port: {plain:?}"
    );
    server.stop(Duration::from_secs(5)).await;
}

#[test]
fn tls_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");

    let error = server::tls_acceptor(&missing, &key).err();
    assert!(matches!(error, Some(TlsError::Certificates { ref path, .. }) if path == &missing));
    let error = server::tls_acceptor(&empty, &key).err();
    assert!(matches!(error, Some(TlsError::NoCertificates { ref path }) if path == &empty));
    let error = server::tls_acceptor(&cert, &empty).err();
    assert!(matches!(error, Some(TlsError::PrivateKey { ref path, .. }) if path == &empty));

    // A key that does not belong to the certificate.
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_key) = self_signed(other.path());
    let error = server::tls_acceptor(&cert, &other_key).err();
    assert!(matches!(error, Some(TlsError::Config(_))), "{error:?}");

    // `auth.client_certificates.ca_file`: missing, or without a certificate.
    for ca in [&missing, &empty] {
        let clients = trustgate::config::ClientCertificatesConfig {
            ca_file: ca.clone(),
            required: false,
            principals: Vec::new(),
            crl_files: Vec::new(),
        };
        let error = server::tls_acceptor_with_clients(&cert, &key, Some(&clients)).err();
        assert!(
            matches!(error, Some(TlsError::ClientCa { ref path, .. }) if path == ca),
            "{error:?}"
        );
    }
    let mut clients = trustgate::config::ClientCertificatesConfig {
        ca_file: cert.clone(),
        required: true,
        principals: Vec::new(),
        crl_files: Vec::new(),
    };
    assert!(server::tls_acceptor_with_clients(&cert, &key, Some(&clients)).is_ok());

    // `auth.client_certificates.crl_files`: missing, empty, a PEM file without a CRL, and
    // DER that is not a CRL (a certificate).
    use rustls_pki_types::pem::PemObject as _;
    let der = dir.path().join("cert.der");
    let pem = std::fs::read(&cert).expect("read cert");
    let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).expect("PEM cert");
    std::fs::write(&der, cert_der.as_ref()).expect("write DER");
    for crl in [&missing, &empty, &cert, &der] {
        clients.crl_files = vec![crl.clone()];
        let error = server::tls_acceptor_with_clients(&cert, &key, Some(&clients)).err();
        assert!(
            matches!(error, Some(TlsError::Crl { ref path, .. }) if path == crl),
            "{}: {error:?}",
            crl.display()
        );
    }
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
    let slow = tower::service_fn(move |request: Request<Incoming>| {
        let started = started_tx.clone();
        async move {
            if request.uri().path() == "/slow" {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok::<_, Infallible>(Response::new(body::full("done")))
        }
    });
    let options = ServeOptions {
        grace_period: Duration::from_secs(10),
        ..ServeOptions::default()
    };
    let mut server = Running::start(options, None, slow).await;

    // An idle kept-alive connection must not hold up shutdown.
    let idle = client_h1();
    let response = idle.get(server.url("/fast")).send().await.expect("request");
    assert_eq!(response.text().await.expect("body"), "done");

    let client = client_h1();
    let url = server.url("/slow");
    let in_flight = tokio::spawn(async move {
        let response = client.get(url).send().await?;
        response.text().await
    });
    started_rx.recv().await.expect("slow request started");

    server.signal();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = TcpStream::connect(server.addr).await;
    assert!(refused.is_err(), "new connection accepted while draining");

    let body = in_flight
        .await
        .expect("join")
        .expect("in-flight request completed");
    assert_eq!(body, "done");
    let took = server.stop(Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "drain took {took:?}");
}

#[tokio::test]
async fn shutdown_aborts_after_grace_period() {
    let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
    let stuck = tower::service_fn(move |_request: Request<Incoming>| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(()).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Infallible>(Response::new(body::empty()))
        }
    });
    let options = ServeOptions {
        grace_period: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Running::start(options, None, stuck).await;
    let client = client_h1();
    let url = server.url("/");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    started_rx.recv().await.expect("request started");

    let took = server.stop(Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(300),
        "returned before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let result = in_flight.await.expect("join");
    assert!(
        result.is_err(),
        "aborted request got a response: {result:?}"
    );
}

/// Reads until the peer closes the connection; returns how long that took and what was read.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (start.elapsed(), seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slowloris_connections_are_closed() {
    let timeout = Duration::from_millis(500);
    let options = ServeOptions {
        header_read_timeout: timeout,
        ..ServeOptions::default()
    };
    let server = Running::start(options, None, hello()).await;

    // Half a header, then nothing.
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    // Nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    // Half an h2 preface: the protocol is not even known yet.
    let mut preface = TcpStream::connect(server.addr).await.expect("connect");
    preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");

    // Meanwhile, normal requests are answered.
    let response = client_h1()
        .get(server.url("/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.text().await.expect("body"), "hello");

    let limit = Duration::from_secs(3);
    for (name, stream) in [
        ("half", &mut half),
        ("silent", &mut silent),
        ("preface", &mut preface),
    ] {
        let (took, _) = until_closed(stream, limit).await;
        assert!(took < limit, "{name} connection open for {took:?}");
    }

    // Between requests on a kept-alive connection, hyper's own header timeout applies.
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    kept.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let n = tokio::time::timeout(limit, kept.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "closed before the first response");
        seen.extend_from_slice(&buf[..n]);
    }
    kept.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let (took, _) = until_closed(&mut kept, limit).await;
    assert!(took >= timeout / 2, "closed suspiciously early: {took:?}");

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stalled_tls_handshake_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let acceptor = server::tls_acceptor(&cert, &key).expect("tls acceptor");
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let server = Running::start(options, Some(acceptor), hello()).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let (took, _) = until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(250),
        "closed suspiciously early: {took:?}"
    );
    server.stop(Duration::from_secs(5)).await;
}

/// A connection to `to` from the loopback address `127.0.0.<host>` (all of 127/8 is loopback),
/// so that one test can play several peers.
async fn connect_from(host: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
    socket.bind(from).expect("bind a loopback source address");
    socket.connect(to).await.expect("connect")
}

/// `GET /` on `stream`, to the end: the body, or what was read when the server closed.
async fn get_on(mut stream: TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut seen)).await;
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn attack_one_peer_over_its_connection_cap_is_closed_at_accept_and_others_are_served() {
    let metrics = Metrics::new();
    let options = ServeOptions {
        max_connections: 3,
        max_connections_per_client: 2,
        metrics: Some(metrics.http().clone()),
        ..ServeOptions::default()
    };
    let server = Running::start(options, None, hello()).await;

    // Peer .2 at its cap with two idle connections; its third is closed at once, unread.
    let held = [
        connect_from(2, server.addr).await,
        connect_from(2, server.addr).await,
    ];
    let mut third = connect_from(2, server.addr).await;
    let (took, seen) = until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(
        took < Duration::from_secs(1) && seen.is_empty(),
        "a connection over the per-peer cap stayed open {took:?} (read {seen:?})"
    );

    // Peer .3 is served: the refused connection took no slot of max_connections (3).
    assert!(get_on(connect_from(3, server.addr).await)
        .await
        .ends_with("hello"));

    // A slot comes back when one of the peer's connections ends.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        get_on(connect_from(2, server.addr).await)
            .await
            .ends_with("hello"),
        "the peer's slots were not given back when its connections closed"
    );
    let refused = metrics.render().lines().find_map(|l| {
        l.strip_prefix("trustgate_client_connections_refused_total ")
            .map(str::to_owned)
    });
    assert_eq!(refused.as_deref(), Some("1"));
    server.stop(Duration::from_secs(5)).await;
}

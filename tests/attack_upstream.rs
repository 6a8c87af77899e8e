//! A hostile upstream, token service and notary server against `trustgate serve`: bodies that
//! never end, token realms that collect credentials, redirect chains and downgrades, a
//! manifest over the limit. The adversary is the scripted man in the middle
//! (`tests/support/mitm.rs`), in front of the real docker-registry or standing alone as a
//! token service or notary server.
//!
//! Memory is the proxy's peak resident set (`VmHWM`): an endless body read into memory
//! would raise it by hundreds of MiB even if it was freed again.

mod support;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use support::fakes::Reply;
use support::mitm::Mitm;
use support::oci::{Image, OCI_MANIFEST};
use support::proxy::Proxy;
use support::{Registry, TlsFiles};

const REGISTRY: &str = "registry.test";
/// Peak memory growth allowed for one hostile exchange; the bodies here are endless.
const MAX_GROWTH_KIB: u64 = 48 << 10;
/// Body bytes a peer may get out before trustgate hangs up (its limit plus socket buffers).
const MAX_SENT: u64 = 48 << 20;

fn chunk() -> Bytes {
    Bytes::from(vec![b'a'; 64 << 10])
}

fn challenge(realm: &str, service: &str) -> Reply {
    Reply::Respond {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".to_owned(),
            format!(r#"Bearer realm="{realm}",service="{service}""#),
        )],
        body: Bytes::new(),
    }
}

fn token_reply(token: &str) -> Reply {
    Reply::ok(
        "application/json",
        format!(r#"{{"token":"{token}","expires_in":300}}"#),
    )
}

/// An allow-everything proxy in front of `url`, with `extra` appended to the upstream entry.
fn allow_proxy(url: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{url}\", default: true{extra}}}\n\
         limits: {{upstream_timeout: 20s}}\n\
         policy: {{default: allow}}\n"
    ))
}

/// `/proc/<pid>/status` `VmHWM` of the proxy, in KiB: the most it was ever resident.
fn peak_kib(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Runs `attack` and asserts it ended in bounded time, memory and bytes read.
#[track_caller]
fn bounded(proxy: &Proxy, peer: &Mitm, attack: impl FnOnce()) {
    let (peak, started) = (peak_kib(proxy), Instant::now());
    attack();
    let (elapsed, growth) = (started.elapsed(), peak_kib(proxy).saturating_sub(peak));
    eprintln!(
        "elapsed {elapsed:?}, peak RSS +{growth} KiB (now {} KiB), peer sent {} bytes",
        proxy.rss_kib(),
        peer.bytes_sent()
    );
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert!(growth < MAX_GROWTH_KIB, "peak RSS grew {growth} KiB");
    assert!(peer.bytes_sent() < MAX_SENT, "{} bytes", peer.bytes_sent());
}

// === class 3: unbounded reads ===

#[test]
fn attack_endless_notary_token_body() {
    let notary = Mitm::standalone();
    let realm = format!("{}/token", notary.url());
    notary.on_prefix("/v2/", challenge(&realm, "notary"));
    notary.on_prefix("/token", Reply::Endless { chunk: chunk() });
    let upstream = Mitm::standalone();
    let proxy = Proxy::start(&format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{}\", default: true}}\n\
         notary_servers:\n  - {{name: hostile, url: \"{}\", ttl: 10m}}\n\
         limits: {{upstream_timeout: 20s}}\n\
         policy:\n  default: deny\n  rules:\n\
         \x20   - {{match: \"{REGISTRY}/signed/**\", action: verify, notary: hostile}}\n",
        upstream.url(),
        notary.url()
    ));
    bounded(&proxy, &notary, || {
        let r = proxy.pull("/v2/signed/demo/manifests/v1");
        assert!(r.status >= 400, "{}", r.summary());
    });
    assert!(notary.count("/token") >= 1, "{:?}", notary.requests());
    assert!(
        proxy.log().contains("token response is larger than 1 MiB"),
        "{}",
        proxy.log_tail(20)
    );
}

#[test]
fn attack_endless_registry_token_body() {
    let upstream = Mitm::standalone();
    let realm = format!("{}/token", upstream.url());
    upstream.on_prefix("/v2/", challenge(&realm, REGISTRY));
    upstream.on_prefix("/token", Reply::Endless { chunk: chunk() });
    let proxy = allow_proxy(&upstream.url(), "");
    bounded(&proxy, &upstream, || {
        let r = proxy.pull("/v2/open/demo/manifests/v1");
        assert_eq!(r.status, 502, "{}", r.summary());
    });
    assert!(upstream.count("/token") >= 1);
    assert!(
        proxy
            .log()
            .contains("larger than the token response limit (1 MiB)"),
        "{}",
        proxy.log_tail(20)
    );
}

#[test]
fn attack_endless_error_body() {
    let upstream = Mitm::standalone();
    let endless_error = |status| Reply::EndlessStatus {
        status,
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        chunk: chunk(),
    };
    upstream.on("/v2/open/demo/manifests/v1", endless_error(500));
    upstream.on("/v2/open/demo/manifests/v2", endless_error(403));
    let proxy = allow_proxy(&upstream.url(), "");
    bounded(&proxy, &upstream, || {
        assert_eq!(proxy.pull("/v2/open/demo/manifests/v1").status, 502);
        assert_eq!(proxy.pull("/v2/open/demo/manifests/v2").status, 403);
    });
}

// === class 8: a manifest over the limit is not an outage ===

#[test]
fn attack_manifest_larger_than_the_limit_gets_a_clear_error() {
    let registry = Registry::start();
    let image = Image::random(1);
    image.push(&registry, "open/demo", "v1");
    let upstream = Mitm::start(&registry.url());
    let huge = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"pad":"{}"}}}}"#,
        "x".repeat(5 << 20)
    );
    upstream.manifest("/v2/open/demo/manifests/huge", OCI_MANIFEST, huge);
    // Announced as huge, sent short: refused on the announcement, before reading.
    upstream.on(
        "/v2/open/demo/manifests/declared",
        Reply::Declared {
            content_length: 5 << 20,
            body: Bytes::from_static(b"{}"),
        },
    );
    // No length, no end: cut off at the limit while streaming.
    upstream.on(
        "/v2/open/demo/manifests/endless",
        Reply::Endless { chunk: chunk() },
    );
    let proxy = allow_proxy(&upstream.url(), "");
    proxy.expect_image_served("open/demo", "v1", &image);
    for tag in ["huge", "declared", "endless"] {
        let r = proxy.pull(&format!("/v2/open/demo/manifests/{tag}"));
        assert_eq!(r.status, 502, "{}", r.summary());
        let message = r.error_message().unwrap_or_default();
        assert!(
            message.contains("larger than limits.max_manifest_size (4 MiB)")
                && message.contains(&format!("manifest open/demo:{tag}"))
                && !message.contains("unavailable"),
            "{message}"
        );
    }
    let series =
        format!("trustgate_upstream_errors_total{{kind=\"too_large\",upstream=\"{REGISTRY}\"}}");
    assert_eq!(proxy.metric(&series), Some(3.0), "{series}");
}

// === class 6: credentials follow the configuration, not the upstream's word ===

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

fn basic() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Basic {encoded}")
}

/// A password-protected registry holding `open/demo:v1`, a man in the middle in front of it
/// whose first answer for the tag is a Bearer challenge naming `realm_host`'s token service,
/// and a proxy with the registry's credentials and `extra` upstream keys.
struct RealmAttack {
    _registry: Registry,
    _secrets: tempfile::TempDir,
    image: Image,
    upstream: Mitm,
    realm: Mitm,
    proxy: Proxy,
}

fn realm_attack(realm_host: &str, extra: &str) -> RealmAttack {
    let registry = Registry::start_with_htpasswd(USER, PASSWORD);
    let image = Image::random(1);
    image.push(&registry, "open/demo", "v1");
    let upstream = Mitm::start(&registry.url());
    let realm = Mitm::standalone();
    realm.on_prefix("/token", token_reply("collector-token"));
    // The same port, named by another host name: another host as far as trustgate knows.
    let port = realm.host_port().rsplit_once(':').unwrap().1.to_owned();
    let realm_url = format!("http://{realm_host}:{port}/token");
    upstream.on_times(
        "/v2/open/demo/manifests/v1",
        1,
        challenge(&realm_url, REGISTRY),
    );
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let extra = extra.replace("{port}", &port);
    let proxy = allow_proxy(
        &upstream.url(),
        &format!(
            ", username: {USER}, password_file: \"{}\"{extra}",
            password_file.display()
        ),
    );
    RealmAttack {
        _registry: registry,
        _secrets: secrets,
        image,
        upstream,
        realm,
        proxy,
    }
}

#[test]
fn attack_token_realm_on_another_host_receives_no_credentials() {
    let attack = realm_attack("localhost", "");
    let r = attack.proxy.pull("/v2/open/demo/manifests/v1");
    // The collector's token does not open the registry: the pull fails, the password stays.
    assert_ne!(r.status, 200, "{}", r.summary());
    let seen = attack.realm.authorizations("/token");
    assert_eq!(seen, [None], "the realm was asked anonymously, once");
    let warned = attack
        .proxy
        .log()
        .matches("not sending the configured credentials")
        .count();
    assert_eq!(warned, 1, "{}", attack.proxy.log_tail(20));
    let secret = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    assert!(!attack.proxy.log().contains(PASSWORD) && !attack.proxy.log().contains(&secret));

    // The registry itself still gets them: its own Basic challenge is answered.
    attack.upstream.clear();
    let r = attack.proxy.pull(&format!(
        "/v2/open/demo/manifests/{}",
        attack.image.manifest.digest
    ));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(attack
        .upstream
        .authorizations("/v2/open/demo/")
        .contains(&Some(basic())));
}

#[test]
fn attack_token_realm_on_an_allowed_host_receives_the_credentials() {
    let attack = realm_attack("localhost", ", token_realms: [\"localhost:{port}\"]");
    let _ = attack.proxy.pull("/v2/open/demo/manifests/v1");
    assert_eq!(attack.realm.authorizations("/token"), [Some(basic())]);
    assert!(!attack
        .proxy
        .log()
        .contains("not sending the configured credentials"));
}

// === redirects ===

#[test]
fn attack_redirect_chain_is_bounded() {
    let upstream = Mitm::standalone();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let path = format!("/v2/open/demo/blobs/{digest}");
    upstream.on_prefix(
        "/v2/open/demo/blobs/",
        Reply::Respond {
            status: 307,
            headers: vec![("Location".to_owned(), format!("{path}?again"))],
            body: Bytes::new(),
        },
    );
    let proxy = allow_proxy(&upstream.url(), "");
    let r = proxy.pull(&path);
    assert_eq!(r.status, 502, "{}", r.summary());
    let hops = upstream.count("/v2/open/demo/blobs/");
    assert!((2..=7).contains(&hops), "{hops} requests");
}

/// A TLS front for `target` (`127.0.0.1:<port>`) with the test CA's certificate for
/// 127.0.0.1: an `https://` upstream whose answers the Mitm behind it scripts.
fn tls_front(files: &TlsFiles, target: String) -> u16 {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.server_key).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, target) = (config.clone(), target.clone());
            std::thread::spawn(move || {
                let mut tls =
                    rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), tcp);
                // One request per connection (the Mitm answers `Connection: close`).
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let Ok(mut plain) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                if plain.write_all(&head).is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let _ = plain.read_to_end(&mut answer);
                let _ = tls.write_all(&answer);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

#[test]
fn attack_redirect_from_https_to_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::generate(dir.path());
    let upstream = Mitm::standalone();
    let cdn = Mitm::standalone();
    let digest = format!("sha256:{}", "cd".repeat(32));
    let path = format!("/v2/open/demo/blobs/{digest}");
    cdn.on_prefix("/", Reply::ok("application/octet-stream", "in clear"));
    upstream.on(
        &path,
        Reply::Respond {
            status: 307,
            headers: vec![("Location".to_owned(), format!("{}/blob", cdn.url()))],
            body: Bytes::new(),
        },
    );
    upstream.on("/v2/", Reply::ok("application/json", "{}"));
    let port = tls_front(&files, upstream.host_port());
    let proxy = allow_proxy(
        &format!("https://127.0.0.1:{port}"),
        &format!(", ca_file: \"{}\"", files.ca_cert.display()),
    );
    let r = proxy.pull(&path);
    assert_eq!(r.status, 502, "{}", r.summary());
    assert_eq!(upstream.count(&path), 1, "the TLS upstream was asked");
    assert!(cdn.requests().is_empty(), "{:?}", cdn.requests());
    assert!(
        proxy
            .log()
            .contains("refusing a redirect from https to http"),
        "{}",
        proxy.log_tail(20)
    );
}

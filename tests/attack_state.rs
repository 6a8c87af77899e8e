//! State keyed by names clients choose: whatever repository names a client invents, the
//! memory trustgate keeps for them is bounded (`trust/cached.rs`: an LRU of per-GUN slots).
//!
//! Against `trustgate serve` with a Notary v1 rule whose notary server (a scripted peer)
//! answers `404` for every GUN at once: each name costs one refresh and one refused request,
//! and would leave one slot behind for good without the bound.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use support::mitm::Mitm;
use support::proxy::Proxy;

const REGISTRY: &str = "registry.test";
/// Names that fill the cache first, then names measured.
const WARM: usize = 4_500;
const MEASURED: usize = 8_000;

/// Random-looking, distinct repository names (a xorshift over a seed from the clock).
fn names(seed: u64, count: usize) -> Vec<String> {
    let mut x = seed | 1;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("team-{:04x}/app-{x:016x}-{i}", x >> 48)
        })
        .collect()
}

/// Pulls `repo:latest` for every name, on a few threads; every one must be refused as
/// unsigned (the notary server has nothing for it).
fn pull_all(proxy: &Arc<Proxy>, names: Vec<String>) {
    let names = Arc::new(names);
    let next = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (proxy, names, next) = (proxy.clone(), names.clone(), next.clone());
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(name) = names.get(i) else { return };
                let r = proxy.pull(&format!("/v2/{name}/manifests/latest"));
                assert_eq!(r.status, 403, "{name}: {}", r.summary());
            })
        })
        .collect();
    for t in threads {
        t.join().expect("puller");
    }
}

/// 4,500 names fill the cache past its bound (4,096 slots); 10,000 more distinct names must
/// not grow the process by more than 2 MiB (without the bound each leaves its slot behind:
/// about 6 MiB more).
#[test]
fn attack_distinct_random_repository_names_do_not_grow_memory() {
    let notary = Mitm::standalone();
    let upstream = Mitm::standalone();
    let body = format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 10m}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/**", action: verify, notary: local}}
"#,
        upstream.url(),
        notary.url()
    );
    let proxy = Arc::new(Proxy::start(&body));
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let all = names(seed, WARM + MEASURED);
    let started = Instant::now();
    pull_all(&proxy, all[..WARM].to_vec());
    let before = proxy.rss_kib() * 1024;
    pull_all(&proxy, all[WARM..].to_vec());
    let after = proxy.rss_kib() * 1024;
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} KiB -> {} KiB (+{} KiB) over {MEASURED} names; {:?} in all",
        before / 1024,
        after / 1024,
        grown / 1024,
        started.elapsed()
    );
    assert!(
        grown < 2 << 20,
        "RSS grew by {} KiB for {MEASURED} distinct repository names\n{}",
        grown / 1024,
        proxy.log_tail(10)
    );
    assert!(
        notary.count("/v2/") >= WARM + MEASURED,
        "every name was asked for"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// The bucket holding the trust state accepts connections and never answers: a refresh of a
/// GUN this replica has no copy of is refused once the trust-state deadline passed (5 s), as
/// for an unreachable bucket, instead of waiting for the client's request timeout and a 504.
#[test]
fn attack_a_trust_state_bucket_that_never_answers_is_refused_promptly() {
    let s3 = support::s3::S3Server::start();
    let hung = Mitm::standalone();
    hung.on_prefix("/", support::fakes::Reply::Hang(Duration::from_secs(300)));
    let notary = Mitm::standalone();
    let upstream = Mitm::standalone();
    let body = format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
notary_servers:
  - {{name: local, url: "{}", ttl: 10m}}
policy:
  default: deny
  rules:
    - {{match: "{REGISTRY}/**", action: verify, notary: local}}
{}"#,
        upstream.url(),
        notary.url(),
        s3.storage_yaml_at(&hung.url(), "hung")
    );
    let proxy = Proxy::start(&body);
    let started = Instant::now();
    let r = proxy.pull("/v2/team/app/manifests/v1");
    let took = started.elapsed();
    assert_eq!(r.status, 403, "{}\n{}", r.summary(), proxy.log_tail(10));
    let message = r.error_message().unwrap_or_default();
    assert!(
        message.contains("trust state store is unavailable"),
        "{message}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(hung.count("/") >= 1, "the bucket was asked");
    assert_eq!(
        notary.count("/"),
        0,
        "no first use without the fleet's state"
    );
}

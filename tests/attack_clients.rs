//! Hostile clients against `trustgate serve`: what one client can take from the others.
//!
//! Each client is its own peer by source address: on Linux every address of 127.0.0.0/8 is
//! loopback, so a test binds its attacker to 127.0.0.2 while the honest client stays on
//! 127.0.0.1, both talking to the proxy's 127.0.0.1 listener.

mod support;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::fakes::{FakeHttp, Reply};
use support::http::{closed_within, connect_from};
use support::proxy::Proxy;

const REGISTRY: &str = "registry.test";
/// `limits.max_connections`.
const MAX_CONNECTIONS: usize = 64;
/// `limits.max_connections_per_client`.
const PER_CLIENT: usize = 16;
/// `limits.header_timeout`: long, so that without a per-client cap the honest client would
/// wait for it behind the attacker's connections.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /v2/` from 127.0.0.1 answered 200; how long it took.
fn honest_request(proxy: &Proxy) -> Duration {
    let started = Instant::now();
    let r = proxy.request("GET", "/v2/", &[], b"");
    assert_eq!(r.status, 200, "{}", r.summary());
    started.elapsed()
}

#[test]
fn attack_slowloris_from_one_address_takes_only_its_own_connection_slots() {
    // Nothing here needs the upstream; it never answers, so nothing can come from it.
    let upstream = FakeHttp::start(|_| Reply::Hang(Duration::from_secs(20)));
    let body = format!(
        r#"upstreams:
  - {{registry: "{REGISTRY}", url: "{}", default: true}}
limits: {{header_timeout: {}s, max_connections: {MAX_CONNECTIONS}, max_connections_per_client: {PER_CLIENT}}}
policy: {{default: allow}}
"#,
        upstream.url(),
        HEADER_TIMEOUT.as_secs(),
    );
    let proxy = Proxy::start(&body);
    let addr = proxy.host_port();
    assert!(honest_request(&proxy) < Duration::from_secs(1));

    // The attacker opens as many connections as the whole table holds and dribbles request
    // headers on all of them, one byte every 100 ms, never finishing (slowloris).
    let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut slow: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| connect_from(attacker, &addr))
        .collect();
    let dribble = {
        let streams: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        thread::spawn(move || {
            let mut streams = streams;
            let started = Instant::now();
            for byte in b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
                if started.elapsed() > Duration::from_secs(4) {
                    break;
                }
                for s in &mut streams {
                    // Refused connections fail to write; that is the point.
                    let _ = s.write_all(&[*byte]);
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    thread::sleep(Duration::from_millis(300));

    // Meanwhile the honest client is answered at once, again and again.
    for i in 0..5 {
        let took = honest_request(&proxy);
        assert!(
            took < Duration::from_secs(2),
            "request {i} from another address behind a slowloris took {took:?}\n{}",
            proxy.log_tail(20)
        );
    }

    // The attacker kept its cap, and no more: the rest were closed as soon as accepted.
    let closed = slow
        .iter_mut()
        .filter_map(|s| closed_within(s, Duration::from_millis(200)).then_some(()))
        .count();
    assert_eq!(
        closed,
        MAX_CONNECTIONS - PER_CLIENT,
        "connections closed at accept, of {MAX_CONNECTIONS} from one address with a cap of {PER_CLIENT}"
    );
    let mut one_more = connect_from(attacker, &addr);
    assert!(
        closed_within(&mut one_more, Duration::from_secs(1)),
        "a connection over the cap was not closed at once"
    );
    assert_eq!(
        proxy.metric("trustgate_client_connections_refused_total"),
        Some((MAX_CONNECTIONS - PER_CLIENT + 1) as f64)
    );
    // Logged, but not once per connection.
    let log = proxy.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("max_connections_per_client"))
        .count();
    assert_eq!(
        lines,
        1,
        "refusals logged {lines} times:\n{}",
        proxy.log_tail(20)
    );

    dribble.join().unwrap();
    // The connections it kept are still bound by header_timeout.
    let started = Instant::now();
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, HEADER_TIMEOUT + Duration::from_secs(3)),
            "slow connection {i} still open {:?} after the dribble",
            started.elapsed()
        );
    }
    assert!(honest_request(&proxy) < Duration::from_secs(1));
}

//! The adversary: a man in the middle in front of a real peer (registry, notary server, token
//! service), or a peer of its own, whose answer to each path the test scripts.
//!
//! Everything not scripted is forwarded to the real peer unchanged, so a test starts from an
//! honest, real signed image and changes exactly the answers the attack needs: an endless or
//! mis-declared blob, a rewritten `.sig` manifest, a token realm on another host, a 5xx for
//! one manifest. What it cannot be made to do is forge a signature: the keys stay with the
//! test's signer, as they stay with a publisher.
//!
//! ```ignore
//! let registry = Registry::start();
//! let mitm = Mitm::start(&registry.url());
//! mitm.on(&format!("/v2/demo/blobs/{digest}"), Reply::Endless { chunk });
//! // point trustgate's upstream at mitm.url()
//! ```

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::fakes::{FakeHttp, Reply};

/// Which requests a scripted answer is for.
#[derive(Clone, Debug)]
enum Matcher {
    /// This path, with or without a query.
    Path(String),
    /// Every path that starts with this.
    Prefix(String),
}

struct Scripted {
    matcher: Matcher,
    reply: Reply,
    /// How many more requests it answers; `None`: every one.
    times: Option<usize>,
}

struct Script {
    /// The real peer unscripted requests go to; `None`: they get `404`.
    target: Option<String>,
    rules: Mutex<Vec<Scripted>>,
}

/// A scripted peer on a loopback port. Later rules win over earlier ones; dropping it stops
/// the server and closes every connection.
pub struct Mitm {
    script: Arc<Script>,
    http: FakeHttp,
}

// === impl Matcher ===

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        let bare = path.split('?').next().unwrap_or(path);
        match self {
            Matcher::Path(p) => p == path || p == bare,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

// === impl Mitm ===

impl Mitm {
    /// In front of the real peer at `target` (`http://host:port`).
    pub fn start(target: &str) -> Mitm {
        Mitm::with_target(Some(target.trim_end_matches('/').to_owned()))
    }

    /// A peer of its own: whatever is not scripted is `404`.
    pub fn standalone() -> Mitm {
        Mitm::with_target(None)
    }

    fn with_target(target: Option<String>) -> Mitm {
        let script = Arc::new(Script {
            target,
            rules: Mutex::new(Vec::new()),
        });
        let handler = script.clone();
        let http = FakeHttp::start(move |path| handler.answer(path));
        Mitm { script, http }
    }

    /// Answers every request for `path` (query ignored unless `path` has one) with `reply`.
    pub fn on(&self, path: &str, reply: Reply) -> &Self {
        self.push(Matcher::Path(path.to_owned()), reply, None)
    }

    /// Answers the next `times` requests for `path` with `reply`, then falls through.
    pub fn on_times(&self, path: &str, times: usize, reply: Reply) -> &Self {
        self.push(Matcher::Path(path.to_owned()), reply, Some(times))
    }

    /// Answers every request whose path starts with `prefix`.
    pub fn on_prefix(&self, prefix: &str, reply: Reply) -> &Self {
        self.push(Matcher::Prefix(prefix.to_owned()), reply, None)
    }

    /// Serves `body` as a manifest of `media_type` at `path`, with the digest header a
    /// registry sends (of the bytes actually sent: a lying peer would send its own).
    pub fn manifest(&self, path: &str, media_type: &str, body: impl Into<Bytes>) -> &Self {
        let body = body.into();
        let digest = format!("sha256:{}", super::sha256_hex(&body));
        self.on(
            path,
            Reply::Respond {
                status: 200,
                headers: vec![
                    ("Content-Type".to_owned(), media_type.to_owned()),
                    ("Docker-Content-Digest".to_owned(), digest),
                ],
                body,
            },
        )
    }

    /// Forgets every scripted answer: the peer is honest again.
    pub fn clear(&self) {
        self.script.rules.lock().unwrap().clear();
    }

    fn push(&self, matcher: Matcher, reply: Reply, times: Option<usize>) -> &Self {
        self.script.rules.lock().unwrap().push(Scripted {
            matcher,
            reply,
            times,
        });
        self
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.http.url()
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.http.url().trim_start_matches("http://").to_owned()
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.http.requests()
    }

    /// How many requests so far were for a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    /// The `Authorization` header of each request so far for a path starting with `prefix`
    /// (`None`: the request carried none).
    pub fn authorizations(&self, prefix: &str) -> Vec<Option<String>> {
        self.http
            .authorizations()
            .into_iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, authorization)| authorization)
            .collect()
    }

    /// Body bytes written so far, scripted and forwarded.
    pub fn bytes_sent(&self) -> u64 {
        self.http.bytes_sent()
    }

    /// The most requests it was answering at one time.
    pub fn max_concurrent(&self) -> usize {
        self.http.max_concurrent()
    }
}

// === impl Script ===

impl Script {
    fn answer(&self, path: &str) -> Reply {
        let mut rules = self.rules.lock().unwrap();
        if let Some(i) = rules.iter().rposition(|r| r.matcher.matches(path)) {
            let reply = rules[i].reply.clone();
            if let Some(left) = rules[i].times.as_mut() {
                *left -= 1;
                if *left == 0 {
                    rules.remove(i);
                }
            }
            return reply;
        }
        drop(rules);
        match &self.target {
            Some(target) => Reply::Forward(format!("{target}{path}")),
            None => Reply::status(404),
        }
    }
}

//! An interrupted layer download resumed through trustgate by a real client: containerd 2.1
//! (own instance, see `support::containerd`). Its fetcher reopens a blob whose body ended
//! early with `Range: bytes=<offset>-` and carries on from there.
//!
//! containerd → cutting relay → trustgate (cosign `verify`, a signed image) → recording
//! relay → docker-registry. The front relay closes the connection of the first answer to the
//! layer's GET in the middle of the body; later requests pass through. The back relay counts
//! what trustgate asks the upstream for, and in the cold case sends the layer slowly.
//!
//! - from the cache: the layer stored and verified before the pull; the resumed GET is
//!   answered `206` with the rest, nothing is fetched from the upstream again;
//! - cold: the cut comes while trustgate is still fetching the layer from a slow upstream,
//!   so the Range request arrives mid-download. trustgate holds it until the whole blob is
//!   in and matched its digest, then answers `206` (a range is never served from
//!   unverified bytes); one upstream fetch all along.
//!
//! Both check that containerd's content store holds exactly the layer. The same from the
//! cache with dockerd (the machine's binary as an own instance, its own registry client,
//! trustgate as its `registry-mirrors` entry): it pauses, then resumes with a Range too, and
//! checks the digest over the whole layer. Needs root and the clients; each test skips with
//! a message otherwise. Figures go to stderr (`--nocapture`).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::clients::{self, Dockerd};
use support::containerd::{containerd_bin, hosts_dir, Containerd};
use support::cosign::{self, Key, REGISTRY};
use support::oci::{Format, Image};
use support::proxy::Proxy;
use support::relay::{Exchange, Relay};
use support::{run_bounded, Registry};

const REPO: &str = "signed/app";
const TAG: &str = "v1";
/// Where docker looks for `app:v1` on a mirror.
const HUB_REPO: &str = "library/app";

/// The upstream with one image of one large layer, trustgate in front of it, and the relays
/// on either side of trustgate (`front` for the client, `back` to the upstream).
struct Env {
    image: Image,
    front: Relay,
    back: Relay,
    proxy: Proxy,
    _registry: Registry,
    _keys: tempfile::TempDir,
}

impl Env {
    /// `registry.test/signed/app:v1`, signed, under a cosign `verify` rule.
    fn start(layer_size: usize) -> Env {
        let registry = Registry::start();
        let keys = tempfile::tempdir().unwrap();
        let key = Key::generate(keys.path(), "a");
        let image = Image::random_sized(Format::Oci, &[layer_size]);
        image.push(&registry, REPO, TAG);
        key.sign_image(&registry, REPO, &image.manifest.digest);
        let trust = cosign::offline_key_trust(&key);
        Env::around(registry, image, keys, |upstream| {
            cosign::config(upstream, &[cosign::verify_rule("signed/**", &trust)])
        })
    }

    /// `docker.io/library/app:v1` (a Docker manifest), allowed: the image docker asks a
    /// `registry-mirrors` entry for.
    fn docker_hub(layer_size: usize) -> Env {
        let registry = Registry::start();
        let image = Image::random_sized(Format::Docker, &[layer_size]);
        image.push(&registry, HUB_REPO, TAG);
        Env::around(registry, image, tempfile::tempdir().unwrap(), |upstream| {
            format!(
                "upstreams:\n  - {{registry: \"docker.io\", url: \"{upstream}\", default: true}}\n\
                 policy:\n  default: deny\n  rules:\n    - {{match: \"docker.io/library/**\", \
                 action: allow}}\n"
            )
        })
    }

    /// The relays around trustgate, whose configuration `config` gives for the upstream URL.
    fn around(
        registry: Registry,
        image: Image,
        keys: tempfile::TempDir,
        config: impl FnOnce(&str) -> String,
    ) -> Env {
        let back = Relay::start(&registry.host_port());
        let proxy = Proxy::start(&config(&back.url()));
        let front = Relay::start(&proxy.host_port());
        Env {
            image,
            front,
            back,
            proxy,
            _registry: registry,
            _keys: keys,
        }
    }

    fn layer(&self) -> &support::oci::Blob {
        &self.image.layers[0]
    }

    /// The path suffix of the layer's blob requests.
    fn layer_path(&self) -> String {
        format!("/blobs/{}", self.layer().digest)
    }

    fn upstream_requests(&self) -> f64 {
        self.proxy
            .metrics()
            .lines()
            .filter(|l| l.starts_with("trustgate_upstream_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Pulls `registry.test/signed/app:v1` with containerd through the front relay (plain
    /// HTTP), then checks containerd's copy of the layer byte for byte.
    fn pull(&self, containerd: &Containerd) -> Duration {
        let hosts = hosts_dir(&containerd.path("hosts"), &self.front.url(), None);
        let reference = format!("{REGISTRY}/{REPO}:{TAG}");
        let (ok, out, took) = containerd.pull(&hosts, &reference);
        assert!(
            ok,
            "pull failed: {out}\nrelay saw: {:#?}\n{}\n{}",
            self.front.exchanges(),
            self.proxy.log_tail(30),
            containerd.log()
        );
        let layer = self.layer();
        let stored = containerd.ctr(&["content", "get", &layer.digest]);
        assert!(
            stored.status.success(),
            "ctr content get: {}",
            String::from_utf8_lossy(&stored.stderr)
        );
        assert_eq!(stored.stdout.len(), layer.bytes.len());
        assert!(
            stored.stdout == layer.bytes,
            "containerd's copy of the layer differs"
        );
        took
    }

    /// The layer's GETs at the front: the cut one, then the resumed one; checks both and
    /// returns them.
    fn resumed(&self, cut_at: u64) -> (Exchange, Exchange) {
        let gets = self.front.gets(&self.layer_path());
        assert_eq!(gets.len(), 2, "layer GETs at the relay: {gets:#?}");
        let total = self.layer().size();
        let (first, second) = (gets[0].clone(), gets[1].clone());
        assert_eq!(
            (first.status, first.range.as_deref(), first.cut),
            (200, None, true),
            "{first:#?}"
        );
        assert_eq!(first.body_bytes, cut_at);
        assert_eq!(first.content_length, Some(total));
        let offset: u64 = second
            .range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("not a resumed GET: {second:#?}"));
        assert!(
            offset > 0 && offset <= cut_at,
            "offset {offset}, cut at {cut_at}"
        );
        assert_eq!(second.status, 206, "{second:#?}");
        assert_eq!(
            second.content_range.as_deref(),
            Some(format!("bytes {offset}-{}/{total}", total - 1).as_str())
        );
        assert_eq!(second.content_length, Some(total - offset));
        assert_eq!(second.body_bytes, total - offset);
        assert!(!second.cut);
        (first, second)
    }
}

#[test]
fn containerd_resumes_a_cut_layer_from_the_cache() {
    let Some(bin) = containerd_bin() else { return };
    let size = 24 << 20;
    let env = Env::start(size);
    let layer = env.layer();
    // In the cache, verified, before the pull.
    env.proxy.expect_image_served(REPO, TAG, &env.image);
    assert_eq!(env.back.gets(&env.layer_path()).len(), 1);
    let cut_at = layer.size() / 2;
    env.front.cut_once(&env.layer_path(), cut_at);
    let before = env.upstream_requests();

    let containerd = Containerd::start(&bin);
    let took = env.pull(&containerd);
    let (first, second) = env.resumed(cut_at);
    assert_eq!(
        env.back.gets(&env.layer_path()).len(),
        1,
        "the layer was fetched from the upstream again: {:#?}",
        env.back.gets(&env.layer_path())
    );
    let reconnect = second.asked - first.ended;
    eprintln!(
        "from the cache: {} byte layer cut after {} bytes; containerd resumed with {:?} \
         {reconnect:?} later, answered {} {:?} ({} bytes); pull {took:?}; upstream requests \
         during the pull {} (none of the layer)",
        layer.size(),
        first.body_bytes,
        second.range.as_deref().unwrap_or_default(),
        second.status,
        second.content_range.as_deref().unwrap_or_default(),
        second.body_bytes,
        env.upstream_requests() - before,
    );
}

#[test]
fn containerd_resumes_a_layer_cut_while_trustgate_still_fetches_it() {
    let Some(bin) = containerd_bin() else { return };
    // 16 MiB at 64 KiB per 20 ms: about 5 s from the upstream.
    let size = 16 << 20;
    let env = Env::start(size);
    let layer = env.layer();
    env.back
        .slow(&env.layer_path(), 64 << 10, Duration::from_millis(20));
    let cut_at = 2 << 20;
    env.front.cut_once(&env.layer_path(), cut_at);

    let containerd = Containerd::start(&bin);
    let started = Instant::now();
    let took = env.pull(&containerd);
    let (first, second) = env.resumed(cut_at);
    let upstream = env.back.gets(&env.layer_path());
    assert_eq!(
        upstream.len(),
        1,
        "the layer was fetched from the upstream more than once: {upstream:#?}"
    );
    let fetch = &upstream[0];
    assert_eq!((fetch.status, fetch.body_bytes), (200, layer.size()));
    let last_byte = fetch.last_write.expect("the upstream sent the layer");
    // What this case is about: the Range request came while trustgate was still fetching.
    assert!(
        second.asked < last_byte,
        "the resumed GET came {:?} after the upstream's last byte: not mid-download",
        second.asked - last_byte
    );
    // And its answer only once trustgate had every byte (and so could check the digest).
    let answered = second.answered.expect("the resumed GET was answered");
    assert!(
        answered > last_byte,
        "206 answered {:?} before the upstream's last byte",
        last_byte - answered
    );
    let at = |t: Instant| t - started;
    eprintln!(
        "cold, slow upstream: {} byte layer cut after {} bytes at {:?}; containerd resumed \
         with {:?} at {:?}; the upstream's last byte at {:?}; trustgate answered {} {:?} at \
         {:?} (held {:?}, {:?} after the last byte); one upstream fetch; pull {took:?}",
        layer.size(),
        first.body_bytes,
        at(first.ended),
        second.range.as_deref().unwrap_or_default(),
        at(second.asked),
        at(last_byte),
        second.status,
        second.content_range.as_deref().unwrap_or_default(),
        at(answered),
        answered - second.asked,
        answered - last_byte,
    );
}

#[test]
fn dockerd_resumes_a_cut_layer_through_a_registry_mirror() {
    if let Some(why) = clients::missing(&["dockerd", "docker", "containerd", "ctr"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let size = 24 << 20;
    let env = Env::docker_hub(size);
    let layer = env.layer();
    env.proxy.expect_image_served(HUB_REPO, TAG, &env.image);
    let cut_at = layer.size() / 2;
    env.front.cut_once(&env.layer_path(), cut_at);

    // dockerd's own registry client (the legacy store): its puller keeps what it has and
    // asks for the rest after a pause.
    let containerd = clients::Containerd::start();
    let dockerd = Dockerd::start(
        Command::new("dockerd"),
        clients::dockerd_major(Path::new("dockerd")),
        &containerd,
        serde_json::json!({ "registry-mirrors": [env.front.url()] }),
    );
    let started = Instant::now();
    let out = run_bounded(dockerd.docker().args(["pull", "app:v1"]), b"", "docker.io");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "docker pull: {}\nrelay saw: {:#?}\n{}",
        clients::text(&out),
        env.front.exchanges(),
        dockerd.log_text()
    );
    let (first, second) = env.resumed(cut_at);
    // docker checks the layer's digest over what it kept and what it got since; its diff
    // ID is the layer's digest (an uncompressed layer).
    let inspect = run_bounded(
        dockerd.docker().args([
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.RootFS.Layers}}",
            "app:v1",
        ]),
        b"",
        "docker.io",
    );
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(
        inspect.contains(&env.image.config.digest) && inspect.contains(&layer.digest),
        "{inspect}"
    );
    assert_eq!(
        env.back.gets(&env.layer_path()).len(),
        1,
        "the layer was fetched from the upstream again"
    );
    eprintln!(
        "dockerd {}: {} byte layer cut after {} bytes; it resumed with {:?} {:?} later, \
         answered {} {:?} ({} bytes); pull {took:?}",
        dockerd.version(),
        layer.size(),
        first.body_bytes,
        second.range.as_deref().unwrap_or_default(),
        second.asked - first.ended,
        second.status,
        second.content_range.as_deref().unwrap_or_default(),
        second.body_bytes,
    );
}

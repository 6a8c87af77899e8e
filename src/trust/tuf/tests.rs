//! The client against sigstore's real public-good repository, served from the conformance
//! data by a mirror that can be made to misbehave, with a fixed clock.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use aws_lc_rs::digest;
use time::{macros::datetime, OffsetDateTime};

use super::{
    canonical::canonical,
    metadata::{parse, SnapshotBody, TimestampBody},
    Fetch, FetchError, HttpFetch, Role, TufClient, TufError,
};
use crate::trust::BoxFuture;

const BASE: &str = "https://tuf.example";
const TARGET: &str = "trusted_root.json";
/// Before the repository's timestamp.json expires (2026-08-28T19:25:56Z), and so before
/// root 15 (2026-11-20) and the snapshot and targets (2036) expire.
const NOW: OffsetDateTime = datetime!(2026-08-27 00:00:00 UTC);

/// The repository, or `None` (with a message) when the conformance data is absent.
fn repo() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore/public-good");
    if dir.join("metadata/timestamp.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the sigstore public-good repository is not at {}",
            dir.display()
        );
        None
    }
}

fn read(repo: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(repo.join(rel)).unwrap()
}

fn root(repo: &Path, n: u64) -> Vec<u8> {
    read(repo, &format!("metadata/root_history/{n}.root.json"))
}

/// Serves the repository at the paths a consistent-snapshot client asks for: `N.root.json`,
/// `timestamp.json`, `V.<role>.json` (only the version the file holds) and
/// `targets/HASH.<name>` (only the file's own sha256). Paths can be overridden (`None`: 404),
/// and every request is logged.
struct Mirror {
    repo: PathBuf,
    overrides: Mutex<HashMap<String, Option<Vec<u8>>>>,
    log: Mutex<Vec<String>>,
    /// Return whole bodies whatever `max_len` says (a broken `Fetch`).
    ignore_limit: bool,
}

impl Mirror {
    fn new(repo: &Path) -> Self {
        Mirror {
            repo: repo.to_path_buf(),
            overrides: Mutex::default(),
            log: Mutex::default(),
            ignore_limit: false,
        }
    }

    fn set(&self, path: &str, body: Option<Vec<u8>>) {
        self.overrides.lock().unwrap().insert(path.to_owned(), body);
    }

    fn requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(body) = self.overrides.lock().unwrap().get(path) {
            return body.clone();
        }
        let metadata = self.repo.join("metadata");
        if let Some(rest) = path.strip_prefix("targets/") {
            let (dir, file) = rest.rsplit_once('/').unwrap_or(("", rest));
            let (hash, name) = file.split_once('.')?;
            let bytes = std::fs::read(self.repo.join("targets").join(dir).join(name)).ok()?;
            let sha256 = hex::encode(digest::digest(&digest::SHA256, &bytes));
            return (sha256 == hash).then_some(bytes);
        }
        if path == "timestamp.json" {
            return std::fs::read(metadata.join(path)).ok();
        }
        let (version, name) = path.split_once('.')?;
        let version: u64 = version.parse().ok()?;
        if name == "root.json" {
            return std::fs::read(metadata.join(format!("root_history/{path}"))).ok();
        }
        let bytes = std::fs::read(metadata.join(name)).ok()?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        (doc["signed"]["version"].as_u64() == Some(version)).then_some(bytes)
    }
}

impl Fetch for Mirror {
    fn get<'a>(
        &'a self,
        url: &'a str,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, FetchError>> {
        Box::pin(async move {
            let path = url.strip_prefix(BASE).unwrap().trim_start_matches('/');
            self.log.lock().unwrap().push(path.to_owned());
            match self.file(path) {
                Some(body) if !self.ignore_limit && body.len() as u64 > max_len => {
                    Err(FetchError::TooLarge {
                        url: url.to_owned(),
                        limit: max_len,
                    })
                }
                other => Ok(other),
            }
        })
    }
}

fn client(initial: Vec<u8>, cache: &Path) -> TufClient {
    TufClient::new(BASE, initial, cache.to_path_buf()).unwrap()
}

/// A JSON file with one string changed (keeping the length).
fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in the file");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn walks_every_rotation_from_the_first_root() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let got = client(root(&repo, 1), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap();
    assert_eq!(got, read(&repo, "targets/trusted_root.json"));
    let requests = mirror.requests();
    for n in 2..=16 {
        assert!(
            requests.contains(&format!("{n}.root.json")),
            "{n}.root.json"
        );
    }
    assert!(requests.contains(&"165.snapshot.json".to_owned()));
    assert!(requests.contains(&"14.targets.json".to_owned()));
    // 5.3.8 and 5.4.5-5.6.6: the trusted files were persisted as they were fetched.
    assert_eq!(
        std::fs::read(cache.path().join("root.json")).unwrap(),
        root(&repo, 15)
    );
    for (cached, original) in [
        ("timestamp.json", "metadata/timestamp.json"),
        ("snapshot.json", "metadata/snapshot.json"),
        ("targets.json", "metadata/targets.json"),
        ("targets/trusted_root.json", "targets/trusted_root.json"),
    ] {
        assert_eq!(
            std::fs::read(cache.path().join(cached)).unwrap(),
            read(&repo, original),
            "{cached}"
        );
    }
}

#[tokio::test]
async fn updates_from_the_latest_root_and_then_answers_offline() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let want = read(&repo, "targets/trusted_root.json");
    let tuf = client(root(&repo, 15), cache.path());
    assert!(matches!(
        tuf.cached(TARGET, NOW),
        Err(TufError::NotCached { .. })
    ));
    assert_eq!(tuf.refresh(&mirror, TARGET, NOW).await.unwrap(), want);
    assert_eq!(mirror.requests()[0], "16.root.json");

    // A new client over the same cache answers without the network.
    let offline = client(root(&repo, 15), cache.path());
    assert_eq!(offline.cached(TARGET, NOW).unwrap(), want);
    // An older operator root does not override the newer cached one.
    assert_eq!(
        client(root(&repo, 3), cache.path())
            .cached(TARGET, NOW)
            .unwrap(),
        want
    );

    // A second update with nothing new reads only the next root and the timestamp.
    assert_eq!(offline.refresh(&mirror, TARGET, NOW).await.unwrap(), want);
    assert_eq!(mirror.requests(), ["16.root.json", "timestamp.json"]);

    // A corrupted cached target is refused offline and replaced by the next update.
    let cached_target = cache.path().join("targets/trusted_root.json");
    let mut bytes = std::fs::read(&cached_target).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&cached_target, &bytes).unwrap();
    assert!(matches!(
        offline.cached(TARGET, NOW),
        Err(TufError::HashMismatch { .. })
    ));
    assert_eq!(offline.refresh(&mirror, TARGET, NOW).await.unwrap(), want);
    assert_eq!(offline.cached(TARGET, NOW).unwrap(), want);
}

#[tokio::test]
async fn expired_metadata_is_a_freeze_error() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let tuf = client(root(&repo, 15), cache.path());
    tuf.refresh(&mirror, TARGET, NOW).await.unwrap();

    // After the timestamp expires: the mirror serves nothing newer, so the update stops.
    let later = datetime!(2026-09-01 00:00:00 UTC);
    let err = tuf.refresh(&mirror, TARGET, later).await.unwrap_err();
    assert!(
        matches!(err, TufError::Expired { role: Role::Timestamp, expires, .. }
            if expires == datetime!(2026-08-28 19:25:56 UTC)),
        "{err}"
    );
    assert!(
        err.to_string().contains("timestamp metadata expired at"),
        "{err}"
    );
    assert!(matches!(
        tuf.cached(TARGET, later),
        Err(TufError::Expired {
            role: Role::Timestamp,
            ..
        })
    ));
    // After root 15 expires (5.3.10).
    let much_later = datetime!(2026-12-01 00:00:00 UTC);
    let err = tuf.refresh(&mirror, TARGET, much_later).await.unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                role: Role::Root,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        tuf.cached(TARGET, much_later),
        Err(TufError::Expired {
            role: Role::Root,
            ..
        })
    ));
}

#[tokio::test]
async fn a_tampered_target_byte_is_refused() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let mut bytes = read(&repo, "targets/trusted_root.json");
    let sha256 = hex::encode(digest::digest(&digest::SHA256, &bytes));
    bytes[42] ^= 0x20;
    mirror.set(&format!("targets/{sha256}.{TARGET}"), Some(bytes.clone()));
    let err = client(root(&repo, 15), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TufError::HashMismatch { algorithm, .. } if algorithm == "sha256"),
        "{err}"
    );
    assert!(!cache.path().join("targets/trusted_root.json").exists());
    // One byte more than listed.
    bytes[42] ^= 0x20;
    bytes.push(b'\n');
    mirror.set(&format!("targets/{sha256}.{TARGET}"), Some(bytes));
    let err = client(root(&repo, 15), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TufError::Fetch(FetchError::TooLarge { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn tampered_signatures_and_signed_content_are_refused() {
    let Some(repo) = repo() else { return };
    let mirror = Mirror::new(&repo);
    // One hex digit of the timestamp key's signature.
    let timestamp = read(&repo, "metadata/timestamp.json");
    mirror.set(
        "timestamp.json",
        Some(replace(
            &timestamp,
            "\"sig\": \"30440220",
            "\"sig\": \"30440221",
        )),
    );
    let cache = tempfile::tempdir().unwrap();
    let err = client(root(&repo, 15), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Threshold {
                role: Role::Timestamp,
                valid: 0,
                threshold: 1,
                ..
            }
        ),
        "{err}"
    );
    // The signed content: a later expiry under the same signature.
    mirror.set(
        "timestamp.json",
        Some(replace(
            &timestamp,
            "2026-08-28T19:25:56Z",
            "2027-08-28T19:25:56Z",
        )),
    );
    let err = client(root(&repo, 15), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Threshold {
                role: Role::Timestamp,
                ..
            }
        ),
        "{err}"
    );
    // An intermediate root whose keys were swapped: no longer signed by its predecessor.
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let two = root(&repo, 2);
    mirror.set(
        "2.root.json",
        Some(replace(&two, "\"threshold\": 3", "\"threshold\": 1")),
    );
    let err = client(root(&repo, 1), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Threshold {
                role: Role::Root,
                ..
            }
        ),
        "{err}"
    );
    assert!(!cache.path().join("root.json").exists());
}

#[tokio::test]
async fn root_versions_must_follow_one_by_one() {
    let Some(repo) = repo() else { return };
    // 3.root.json served as 2.root.json: signed by root 1's keys, but skips version 2.
    let mirror = Mirror::new(&repo);
    mirror.set("2.root.json", Some(root(&repo, 3)));
    let cache = tempfile::tempdir().unwrap();
    let err = client(root(&repo, 1), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::VersionMismatch {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    // 1.root.json served as 3.root.json after root 2: a rollback.
    let mirror = Mirror::new(&repo);
    mirror.set("3.root.json", Some(root(&repo, 1)));
    let cache = tempfile::tempdir().unwrap();
    let err = client(root(&repo, 2), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Rollback {
                offered: 1,
                trusted: 2,
                ..
            }
        ),
        "{err}"
    );
}

/// The repository holds one timestamp and one snapshot, so a rollback is a trusted state
/// that saw newer versions than the mirror now offers: the real cached files with their
/// version numbers raised in memory (signatures are not re-checked for trusted metadata).
#[tokio::test]
async fn a_mirror_older_than_the_cache_is_a_rollback() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let tuf = client(root(&repo, 15), cache.path());
    tuf.refresh(&mirror, TARGET, NOW).await.unwrap();
    let root = tuf.load_root();
    let timestamp = || {
        parse::<TimestampBody>("timestamp.json", read(&repo, "metadata/timestamp.json")).unwrap()
    };
    let snapshot =
        || parse::<SnapshotBody>("snapshot.json", read(&repo, "metadata/snapshot.json")).unwrap();

    // 5.4.3.1: the trusted timestamp is version 763, the mirror's 762.
    let mut trusted = timestamp();
    trusted.version += 1;
    let err = tuf
        .update_timestamp(&mirror, &root, Some(trusted), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TufError::Rollback { what, offered: 762, trusted: 763 } if what == "timestamp.json"),
        "{err}"
    );
    // 5.4.3.2: an older timestamp lists snapshot 166, the mirror's timestamp 165.
    let mut trusted = timestamp();
    trusted.version -= 1;
    trusted.body.meta.get_mut("snapshot.json").unwrap().version += 1;
    let err = tuf
        .update_timestamp(&mirror, &root, Some(trusted), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Rollback {
                offered: 165,
                trusted: 166,
                ..
            }
        ),
        "{err}"
    );
    // 5.5.5: a trusted (older) snapshot listed targets.json version 15, the mirror's 14.
    let mut trusted = snapshot();
    trusted.version -= 1;
    trusted.body.meta.get_mut("targets.json").unwrap().version += 1;
    let err = tuf
        .update_snapshot(&mirror, &root, &timestamp(), Some(trusted), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TufError::Rollback { what, offered: 14, trusted: 15 } if what.starts_with("targets.json")),
        "{err}"
    );
    // The timestamp lists snapshot 165, the trusted snapshot is 166.
    let mut trusted = snapshot();
    trusted.version += 1;
    let err = tuf
        .update_snapshot(&mirror, &root, &timestamp(), Some(trusted), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Rollback {
                offered: 165,
                trusted: 166,
                ..
            }
        ),
        "{err}"
    );
    // 5.5.5: a targets metadata file the trusted snapshot listed has vanished.
    let mut trusted = snapshot();
    trusted.version -= 1;
    let listed = trusted.body.meta["targets.json"].clone();
    trusted.body.meta.insert("gone.json".to_owned(), listed);
    let err = tuf
        .update_snapshot(&mirror, &root, &timestamp(), Some(trusted), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TufError::MetaDropped { .. }), "{err}");
    // 5.5.4: the mirror's snapshot is not the version its timestamp lists.
    let mut listed = timestamp();
    listed.body.meta.get_mut("snapshot.json").unwrap().version = 164;
    mirror.set(
        "164.snapshot.json",
        Some(read(&repo, "metadata/snapshot.json")),
    );
    let err = tuf
        .update_snapshot(&mirror, &root, &listed, None, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TufError::VersionMismatch {
                expected: 164,
                found: 165,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let Some(repo) = repo() else { return };
    let mut padded = read(&repo, "metadata/timestamp.json");
    padded.resize(17 << 10, b' ');
    for ignore_limit in [false, true] {
        let mut mirror = Mirror::new(&repo);
        mirror.ignore_limit = ignore_limit;
        mirror.set("timestamp.json", Some(padded.clone()));
        let cache = tempfile::tempdir().unwrap();
        let err = client(root(&repo, 15), cache.path())
            .refresh(&mirror, TARGET, NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TufError::Fetch(FetchError::TooLarge { limit: 16384, .. })
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn only_top_level_targets_with_safe_names() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    let tuf = client(root(&repo, 15), cache.path());
    let err = tuf
        .refresh(&mirror, "registry.npmjs.org/keys.json", NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TufError::NotTopLevel { .. }), "{err}");
    for name in [
        "../root.json",
        "/etc/passwd",
        "a//b",
        ".hidden",
        "a/./b",
        "",
        "x\\y",
    ] {
        assert!(
            matches!(
                tuf.refresh(&mirror, name, NOW).await,
                Err(TufError::BadTargetName { .. })
            ),
            "{name:?}"
        );
    }
    // A top-level target other than the trust root works the same way.
    assert_eq!(
        tuf.refresh(&mirror, "rekor.pub", NOW).await.unwrap(),
        read(&repo, "targets/rekor.pub")
    );
}

#[test]
fn the_initial_root_must_be_self_signed_and_urls_http() {
    let Some(repo) = repo() else { return };
    let dir = PathBuf::from("unused");
    let forged = replace(&root(&repo, 15), "\"threshold\": 3", "\"threshold\": 2");
    assert!(matches!(
        TufClient::new(BASE, forged, dir.clone()),
        Err(TufError::Threshold {
            role: Role::Root,
            ..
        })
    ));
    assert!(matches!(
        TufClient::new("file:///etc", root(&repo, 15), dir.clone()),
        Err(TufError::BadUrl { .. })
    ));
    assert!(matches!(
        TufClient::new(BASE, read(&repo, "metadata/timestamp.json"), dir),
        Err(TufError::WrongType {
            role: Role::Root,
            ..
        })
    ));
}

#[test]
fn canonical_form_refuses_non_integers() {
    let v: serde_json::Value = serde_json::from_str(r#"{"b":[1,"\"x\\"],"a":{"v":2}}"#).unwrap();
    assert_eq!(canonical(&v).unwrap(), br#"{"a":{"v":2},"b":[1,"\"x\\"]}"#);
    for bad in [r#"{"version":1.0}"#, r#"{"v":[1e3]}"#, r#"{"v":0.5}"#] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(canonical(&v).is_err(), "{bad}");
    }
}

/// A loopback server that answers every request with `200` and a body that never ends.
async fn endless_server() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                if socket.write_all(head).await.is_err() {
                    return;
                }
                let chunk = [b' '; 8192];
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_fetch_bounds_endless_bodies_and_silent_peers() {
    let url = endless_server().await;
    let fetch = HttpFetch::new(Duration::from_secs(10)).unwrap();
    let err = fetch
        .get(&format!("{url}/timestamp.json"), 16 << 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 16384, .. }),
        "{err}"
    );

    // A peer that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let fetch = HttpFetch::new(Duration::from_millis(300)).unwrap();
    let err = fetch
        .get(&format!("http://{addr}/timestamp.json"), 16 << 10)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");

    // The client over an endless mirror: the first root request is cut at its bound.
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let tuf = TufClient::new(&url, root(&repo, 15), cache.path().to_path_buf()).unwrap();
    let fetch = HttpFetch::new(Duration::from_secs(10)).unwrap();
    let err = tuf.refresh(&fetch, TARGET, NOW).await.unwrap_err();
    assert!(
        matches!(err, TufError::Fetch(FetchError::TooLarge { limit, .. }) if limit == 512 << 10),
        "{err}"
    );
}

/// 5.3.11: root 5 changed the timestamp and snapshot keys, so an update from root 4 drops
/// the cached timestamp and snapshot (and fetches them again) even though they verify under
/// root 15. Root 12 only renamed the same key (a new key ID): not a rotation.
#[tokio::test]
async fn a_timestamp_key_rotation_drops_the_cached_timestamp_and_snapshot() {
    let Some(repo) = repo() else { return };
    let cache = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(&repo);
    client(root(&repo, 15), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap();
    mirror.requests();

    std::fs::write(cache.path().join("root.json"), root(&repo, 11)).unwrap();
    client(root(&repo, 11), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap();
    let requests = mirror.requests();
    assert!(requests.contains(&"12.root.json".to_owned()));
    assert!(
        !requests.contains(&"165.snapshot.json".to_owned()),
        "{requests:?}"
    );

    std::fs::write(cache.path().join("root.json"), root(&repo, 4)).unwrap();
    let got = client(root(&repo, 4), cache.path())
        .refresh(&mirror, TARGET, NOW)
        .await
        .unwrap();
    assert_eq!(got, read(&repo, "targets/trusted_root.json"));
    let requests = mirror.requests();
    assert!(requests.contains(&"5.root.json".to_owned()));
    assert!(
        requests.contains(&"165.snapshot.json".to_owned()),
        "{requests:?}"
    );
}

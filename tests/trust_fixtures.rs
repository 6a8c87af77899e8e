//! Runs `trustgate trust inspect` over every Notary v1 fixture in `tests/data/trust/` (one test per
//! attack, so a failure names it). The fixtures are real notary output, mutated by
//! `tests/data/trust/gen.sh`; `tests/data/trust/README.md` says what each one is.
//!
//! Each case folder holds `case.json`, `metadata/` and optionally `before/`, a state the verifier
//! sees first with the same state directory and that must verify. A case expects exit 0 and the
//! signed tags it lists, or exit 1 and an `error:` line on stderr containing every
//! `error_contains` substring (case-insensitive) and at least one `error_contains_any` substring.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// Generous: a verifier reading local files answers in milliseconds, but a debug build on a busy
/// machine may not, and the oversized cases read 20 MiB.
const TIMEOUT: Duration = Duration::from_secs(120);

macro_rules! fixtures {
    ($($test:ident => $folder:literal,)*) => {
        /// Every case folder that has a test below.
        const CASES: &[&str] = &[$($folder),*];
        $(
            #[test]
            fn $test() {
                run_case($folder);
            }
        )*
    };
}

fixtures! {
    bad_signature => "bad-signature",
    delegation_tampered_digest => "delegation-tampered-digest",
    expired_root_certificate => "expired-root-certificate",
    expired_timestamp => "expired-timestamp",
    foreign_root => "foreign-root",
    good_releases_delegation => "good-releases-delegation",
    good_resigned => "good-resigned",
    good_root_rotation => "good-root-rotation",
    good_targets => "good-targets",
    key_id_content_mismatch => "key-id-content-mismatch",
    method_mismatch => "method-mismatch",
    missing_signatures => "missing-signatures",
    mix_and_match => "mix-and-match",
    oversized_metadata => "oversized-metadata",
    oversized_timestamp => "oversized-timestamp",
    pinned_root_canonical_id => "pinned-root-canonical-id",
    pinned_root_cert_id => "pinned-root-cert-id",
    pinned_root_mismatch => "pinned-root-mismatch",
    relabelled_key_id => "relabelled-key-id",
    rollback_snapshot => "rollback-snapshot",
    rollback_targets => "rollback-targets",
    rollback_timestamp => "rollback-timestamp",
    tampered_target_digest => "tampered-target-digest",
    tampered_target_resigned => "tampered-target-resigned",
    threshold_not_met => "threshold-not-met",
    version_bumped_unsigned => "version-bumped-unsigned",
    wrong_gun_root_cert => "wrong-gun-root-cert",
}

/// A new fixture folder without a test above would never run; so would a test whose folder is gone.
#[test]
fn every_fixture_folder_has_a_test() {
    let mut on_disk: Vec<String> = fs::read_dir(fixtures_dir())
        .expect("read tests/data/trust")
        .map(|entry| entry.expect("read tests/data/trust entry").path())
        .filter(|path| path.join("case.json").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = CASES.iter().map(|name| name.to_string()).collect();
    covered.sort();
    assert_eq!(
        on_disk, covered,
        "tests/data/trust folders with a case.json (left) and the fixtures! list in tests/trust_fixtures.rs (right) differ"
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    gun: String,
    at: String,
    expect: Expect,
    #[serde(default)]
    error_contains: Vec<String>,
    #[serde(default)]
    error_contains_any: Vec<String>,
    #[serde(default)]
    root_keys: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    tag_sizes: BTreeMap<String, u64>,
    #[serde(default)]
    tag_roles: BTreeMap<String, String>,
    /// Padding the test adds to one metadata file before running (too big to commit).
    oversize: Option<Oversize>,
    description: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Ok,
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Oversize {
    file: String,
    bytes: usize,
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trust")
}

fn run_case(name: &str) {
    let folder = fixtures_dir().join(name);
    let text = fs::read_to_string(folder.join("case.json")).expect("read case.json");
    let case: Case =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}/case.json: {e}"));
    let state = tempfile::tempdir().expect("state dir");
    let scratch = tempfile::tempdir().expect("scratch dir");

    let before = folder.join("before");
    if before.is_dir() {
        let run = inspect(&case, &before, state.path());
        assert!(
            run.status.success(),
            "{name}: before/ must verify first ({}), got {}\nstderr: {}",
            case.description,
            run.status,
            run.stderr
        );
    }

    let metadata = match &case.oversize {
        Some(oversize) => {
            let copy = scratch.path().join("metadata");
            copy_dir(&folder.join("metadata"), &copy);
            pad(&copy.join(&oversize.file), oversize.bytes);
            copy
        }
        None => folder.join("metadata"),
    };
    let run = inspect(&case, &metadata, state.path());
    match case.expect {
        Expect::Ok => check_ok(name, &case, &run),
        Expect::Error => check_error(name, &case, &run),
    }
}

fn check_ok(name: &str, case: &Case, run: &Run) {
    assert!(
        run.status.success(),
        "{name}: expected exit 0 ({})\ngot {}\nstderr: {}",
        case.description,
        run.status,
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{name}: --json output is not JSON ({e}): {:?}", run.stdout));
    assert_eq!(report["gun"], case.gun.as_str(), "{name}: gun in {report}");
    let listed = report["signed_tags"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no signed_tags array in {report}"));
    let mut found: BTreeMap<String, &Value> = BTreeMap::new();
    for entry in listed {
        let tag = entry["tag"].as_str().unwrap_or_default().to_string();
        if let Some(previous) = found.insert(tag.clone(), entry) {
            panic!("{name}: tag {tag} listed twice in signed_tags ({previous}): {report}");
        }
    }
    let digests: BTreeMap<String, String> = found
        .iter()
        .map(|(tag, entry)| {
            (
                tag.clone(),
                entry["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        digests, case.tags,
        "{name}: signed tags and digests in {report}"
    );
    for (tag, size) in &case.tag_sizes {
        assert_eq!(
            found[tag]["size"].as_u64(),
            Some(*size),
            "{name}: size of {tag} in {report}"
        );
    }
    for (tag, role) in &case.tag_roles {
        assert_eq!(
            found[tag]["role"].as_str(),
            Some(role.as_str()),
            "{name}: role that signed {tag} in {report}"
        );
    }
}

fn check_error(name: &str, case: &Case, run: &Run) {
    let stderr = run.stderr.to_lowercase();
    let error_lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .count();
    let missing: Vec<&String> = case
        .error_contains
        .iter()
        .filter(|s| !stderr.contains(&s.to_lowercase()))
        .collect();
    let any_ok = case.error_contains_any.is_empty()
        || case
            .error_contains_any
            .iter()
            .any(|s| stderr.contains(&s.to_lowercase()));
    assert!(
        run.status.code() == Some(1) && error_lines == 1 && missing.is_empty() && any_ok,
        "{name}: expected exit 1 and one `error:` line containing {:?}{} ({})\n\
         got {} with {error_lines} `error:` line(s); missing {missing:?}{}\nstderr: {}\nstdout: {}",
        case.error_contains,
        if case.error_contains_any.is_empty() {
            String::new()
        } else {
            format!(" and one of {:?}", case.error_contains_any)
        },
        case.description,
        run.status,
        if any_ok { "" } else { " and every alternative" },
        run.stderr,
        truncate(&run.stdout, 2000),
    );
}

fn inspect(case: &Case, metadata: &Path, state: &Path) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    command
        .args(["trust", "inspect", &case.gun, "--metadata-dir"])
        .arg(metadata)
        .args(["--at", &case.at, "--state-dir"])
        .arg(state);
    for key in &case.root_keys {
        command.args(["--root-key", key]);
    }
    command.arg("--json");
    run_with_timeout(command)
}

/// Runs to completion or kills the child after `TIMEOUT`; pipes are drained on threads so a chatty
/// child cannot block on a full pipe.
fn run_with_timeout(mut command: Command) -> Run {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trustgate");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for trustgate") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trustgate did not finish within {TIMEOUT:?}: {command:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Inserts `"padding":"AAA…"` as the first member of the file's top-level object: still valid JSON,
/// `bytes` longer.
fn pad(file: &Path, bytes: usize) {
    let data = fs::read(file).expect("read file to pad");
    assert_eq!(
        data.first(),
        Some(&b'{'),
        "{} is not a JSON object",
        file.display()
    );
    let mut padded = Vec::with_capacity(data.len() + bytes + 16);
    padded.extend_from_slice(b"{\"padding\":\"");
    padded.resize(padded.len() + bytes, b'A');
    padded.extend_from_slice(b"\",");
    padded.extend_from_slice(&data[1..]);
    fs::write(file, padded).expect("write padded file");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy file");
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

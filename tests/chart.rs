//! The Helm chart (`charts/trustgate`), rendered without helm and validated: runs
//! `charts/test.sh` (see its header for what it checks), which installs its tools when missing
//! (Debian's Go and sprig packages with apt-get, kubernetes-validate and check-jsonschema from
//! PyPI into a virtualenv under the target directory) and validates the rendered
//! `trustgate.yaml` with this build's `trustgate config validate`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// First runs install packages; later ones take seconds.
const TIMEOUT_SECS: &str = "600";

#[test]
fn chart_renders_and_validates() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-tools");
    let started = Instant::now();
    let output = Command::new("timeout")
        .arg(TIMEOUT_SECS)
        .arg("bash")
        .arg(repo.join("charts/test.sh"))
        .env("TRUSTGATE_BIN", env!("CARGO_BIN_EXE_trustgate"))
        .env("CHART_TOOLS_DIR", &tools)
        .output()
        .expect("run charts/test.sh (needs bash and coreutils timeout)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "charts/test.sh failed ({}) after {:.0?}:\n{stdout}\n{stderr}",
        output.status,
        started.elapsed()
    );
    assert!(stdout.contains("chart tests passed"), "{stdout}\n{stderr}");
    eprintln!("charts/test.sh passed in {:.1?}", started.elapsed());
}

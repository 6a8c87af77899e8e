//! The Notary v1 client on hostile trust data: real, signed metadata
//! (`tests/data/trust/good-releases-delegation`) with one file replaced by the input. It must
//! never panic, and whatever still verifies must sign exactly what the good data signs.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trustgate::trust::notary::{Limits, NotaryClient, Source};

const GOOD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/trust/good-releases-delegation"
);
const FILES: [&str; 6] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
    "targets/releases.json",
    "targets/alice.json",
];

struct Fixture {
    dir: std::path::PathBuf,
    gun: String,
    at: time::OffsetDateTime,
    runtime: tokio::runtime::Runtime,
    /// What the good data signs: tag and digest, in resolution order.
    signed: Vec<(String, String)>,
}

fn signed(data: &trustgate::trust::notary::TrustData) -> Vec<(String, String)> {
    data.signed_tags()
        .into_iter()
        .map(|(tag, resolved)| (tag, resolved.target.digest.clone()))
        .collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(Path::new(GOOD).join("case.json")).unwrap())
                .unwrap();
        let at = time::OffsetDateTime::parse(
            case["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("trustgate-fuzz-{}", std::process::id()));
        let gun = case["gun"].as_str().unwrap().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let good = NotaryClient::new(
            Source::Dir(Path::new(GOOD).join("metadata")),
            Limits::default(),
            None,
        );
        let data = runtime
            .block_on(good.verify(&gun, at, &[]))
            .expect("the good data verifies");
        Fixture {
            dir,
            gun,
            at,
            runtime,
            signed: signed(&data),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let replaced = FILES[usize::from(selector) % FILES.len()];
    for file in FILES {
        let to = f.dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(GOOD).join("metadata").join(file), &to).unwrap();
    }
    std::fs::write(f.dir.join(replaced), bytes).unwrap();
    let client = NotaryClient::new(Source::Dir(f.dir.clone()), Limits::default(), None);
    let Ok(data) = f.runtime.block_on(client.verify(&f.gun, f.at, &[])) else {
        return;
    };
    // A file that still verifies may differ in whitespace or field order; what it signs cannot.
    assert_eq!(
        signed(&data),
        f.signed,
        "{replaced} replaced and still verified"
    );
});

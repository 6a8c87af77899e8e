//! Property tests of the trust engine on hostile input: no panic on any bytes, and no
//! single-byte change to real, signed metadata yields different verified targets.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use trustgate::trust::notary::{Limits, NotaryClient, Source, TrustData};

const GOOD: &str = "tests/data/trust/good-releases-delegation";
const FILES: [&str; 6] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
    "targets/releases.json",
    "targets/alice.json",
];

fn case() -> (String, time::OffsetDateTime) {
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(GOOD).join("case.json")).unwrap()).unwrap();
    let at = time::OffsetDateTime::parse(
        case["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (case["gun"].as_str().unwrap().to_owned(), at)
}

fn copy_metadata(to: &Path) {
    for f in FILES {
        let dst = to.join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(GOOD).join("metadata").join(f), dst).unwrap();
    }
}

fn verify(dir: PathBuf) -> Result<TrustData, String> {
    let (gun, at) = case();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = NotaryClient::new(Source::Dir(dir), Limits::default(), None);
    rt.block_on(client.verify(&gun, at, &[]))
        .map_err(|e| e.to_string())
}

fn targets(data: &TrustData) -> String {
    serde_json::to_string(
        &data
            .roles
            .iter()
            .map(|(k, v)| (k, &v.targets))
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Flipping any byte of any file either breaks verification or leaves the verified
    /// targets exactly as signed (a change to insignificant bytes such as whitespace).
    #[test]
    fn one_byte_change_never_changes_verified_targets(file in 0..FILES.len(), pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let baseline = targets(&verify(PathBuf::from(GOOD).join("metadata")).expect("fixture verifies"));
        let dir = tempfile::tempdir().unwrap();
        copy_metadata(dir.path());
        let path = dir.path().join(FILES[file]);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(data) = verify(dir.path().to_owned()) {
            prop_assert_eq!(targets(&data), baseline);
        }
    }

    /// Arbitrary bytes in place of any one file never panic the verifier.
    #[test]
    fn garbage_in_any_file_is_an_error_not_a_panic(file in 0..FILES.len(), garbage in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        copy_metadata(dir.path());
        std::fs::write(dir.path().join(FILES[file]), &garbage).unwrap();
        // Delegation files may be replaced without failing (a broken delegation is reported,
        // not fatal, only when the snapshot does not list it); top-level ones must fail.
        let result = verify(dir.path().to_owned());
        if file < 4 {
            prop_assert!(result.is_err());
        }
    }

    /// JSON-shaped garbage (valid envelopes with odd `signed` values) never panics either.
    #[test]
    fn json_shaped_garbage_never_panics(signed in any_json(3)) {
        let dir = tempfile::tempdir().unwrap();
        copy_metadata(dir.path());
        let doc = serde_json::json!({"signed": signed, "signatures": [{"keyid": "ab", "method": "ecdsa", "sig": "AAAA"}]});
        std::fs::write(dir.path().join("root.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
        prop_assert!(verify(dir.path().to_owned()).is_err());
    }
}

fn any_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[a-z_]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                "(_type|version|expires|keys|roles|[a-z]{1,5})",
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

//! The sigstore conformance suite's bundles (`bundle-verify/`), checked for what their
//! inclusion proofs and checkpoints alone imply. A case may fail the whole verification for
//! another reason (a bad artifact signature, say) and still pass here.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::*;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The conformance data, or `None` (with a message) where it is absent.
fn suite() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    if dir.join("bundle-verify").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the sigstore conformance data is not at {}",
            dir.display()
        );
        None
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// What a case's first log entry proves, with its log's key and the host of its base URL.
struct Case {
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    path: Vec<Vec<u8>>,
    root: Vec<u8>,
    checkpoint: Vec<u8>,
    key: LogKey,
    host: String,
}

/// Reads case `name`: its bundle's `tlogEntries[0]` and the tlog of the trusted root (the
/// case's own, else public-good's) whose `logId.keyId` the entry names. `None` where the
/// entry has no inclusion proof.
fn case(suite: &Path, name: &str) -> Option<Case> {
    let dir = suite.join("bundle-verify").join(name);
    let bundle = json(&dir.join("bundle.sigstore.json"));
    let root_path = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json")
    } else {
        suite.join("public-good/targets/trusted_root.json")
    };
    let root = json(&root_path);
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let p = entry.get("inclusionProof")?;
    let log_id = &entry["logId"]["keyId"];
    let tlog = root["tlogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| &t["logId"]["keyId"] == log_id)
        .unwrap_or_else(|| panic!("{name}: no tlog {log_id} in the trusted root"));
    let key = LogKey::from_spki_der(&b64(tlog["publicKey"]["rawBytes"].as_str().unwrap()))
        .unwrap_or_else(|e| panic!("{name}: the tlog key does not parse: {e}"));
    let host = tlog["baseUrl"]
        .as_str()
        .unwrap()
        .split_once("://")
        .unwrap()
        .1
        .split(['/', ':'])
        .next()
        .unwrap()
        .to_owned();
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse().unwrap();
    Some(Case {
        index: num(&p["logIndex"]),
        size: num(&p["treeSize"]),
        leaf: b64(entry["canonicalizedBody"].as_str().unwrap()),
        path: p["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| b64(h.as_str().unwrap()))
            .collect(),
        root: b64(p["rootHash"].as_str().unwrap()),
        checkpoint: p["checkpoint"]["envelope"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
        key,
        host,
    })
}

impl Case {
    fn verify(&self) -> Result<Checkpoint, TlogError> {
        verify_inclusion_in_checkpoint(
            self.index,
            self.size,
            &self.leaf,
            &self.path,
            &self.root,
            &self.checkpoint,
            &self.key,
        )
    }

    fn verify_for_origin(&self) -> Result<Checkpoint, TlogError> {
        verify_inclusion_in_checkpoint_for_origin(
            self.index,
            self.size,
            &self.leaf,
            &self.path,
            &self.root,
            &self.checkpoint,
            &self.key,
            &self.host,
        )
    }
}

/// Rekor v2 (Ed25519, `log2025-alpha1.rekor.sigstage.dev`) checkpoints: witnesses'
/// cosignatures and unknown keys' lines are skipped wherever they stand; a checkpoint
/// without the log's signature, origin, size or root hash is refused.
#[test]
fn rekor_v2_checkpoints_verify_as_their_readmes_say() {
    let Some(suite) = suite() else {
        return;
    };
    let cases = [
        ("rekor2-happy-path", true),
        ("rekor2-checkpoint-cosigned", true),
        ("rekor2-checkpoint-multiple-cosigs", true),
        ("rekor2-checkpoint-origin-not-first", true),
        ("rekor2-checkpoint-two-sigs-cosigned", true),
        ("rekor2-checkpoint-two-sigs-from-origin", true),
        // Its signature line is gone: no line is the log's.
        ("rekor2-checkpoint-missing-log-signature_fail", false),
        // A line removed from the text: the log's signature no longer verifies.
        ("rekor2-checkpoint-missing-origin_fail", false),
        ("rekor2-checkpoint-missing-root-hash_fail", false),
        ("rekor2-checkpoint-missing-size_fail", false),
        // The signature line's (and the origin's) name changed: the Ed25519 key ID, which
        // hashes the name, is no longer the log key's, so the line is an unknown key's.
        ("rekor2-checkpoint-no-matching-signature_fail", false),
    ];
    for (name, ok) in cases {
        let c = case(&suite, name).unwrap();
        assert_eq!(c.key.algorithm(), Algorithm::Ed25519, "{name}");
        let (any, pinned) = (c.verify(), c.verify_for_origin());
        eprintln!("{name}: {any:?} / with origin {:?}", pinned.as_ref().err());
        assert_eq!(any.is_ok(), ok, "{name}: {any:?}");
        assert_eq!(pinned.is_ok(), ok, "{name} with origin: {pinned:?}");
        if ok {
            let cp = pinned.unwrap();
            assert_eq!(cp.origin, c.host);
            assert_eq!((cp.size, cp.root_hash.to_vec()), (c.size, c.root.clone()));
        }
    }
    // The v2 log ID in the trusted root is the note key hash under the origin.
    let c = case(&suite, "rekor2-happy-path").unwrap();
    assert_eq!(
        hex::encode(c.key.note_log_id(&c.host)),
        "f30d5a999d92e662484244263f174cb8eacbfe8264bc583d32741799e3825dc9"
    );
}

#[test]
fn rekor_v2_checkpoint_of_another_origin_is_refused() {
    let Some(suite) = suite() else {
        return;
    };
    let c = case(&suite, "rekor2-happy-path").unwrap();
    let err = verify_checkpoint_for_origin(&c.checkpoint, &c.key, "log2025-1.rekor.sigstore.dev");
    assert_eq!(err, Err(NoteError::NoTrustedSignature));
    // A line for the key's name must also carry the checkpoint: exercised by the
    // no-matching-signature case above.
    let bad = case(&suite, "rekor2-checkpoint-no-matching-signature_fail").unwrap();
    assert_eq!(
        verify_checkpoint(&bad.checkpoint, &bad.key),
        Err(NoteError::NoTrustedSignature)
    );
}

/// Rekor v1 (ECDSA P-256, public-good) proofs and checkpoints.
#[test]
fn rekor_v1_proofs_and_checkpoints_verify_as_their_readmes_say() {
    let Some(suite) = suite() else {
        return;
    };
    let cases = [
        ("happy-path-v0.1", Some(true)),
        ("happy-path-v0.2", Some(true)),
        ("happy-path-v0.3", Some(true)),
        ("happy-path-v0.3-new-mediaType", Some(true)),
        ("happy-path-intoto-in-dsse-v3", Some(true)),
        // Another key's hint: no line is the log's.
        ("checkpoint-bad-keyhint_fail", Some(false)),
        // Signed, but of another tree than the proof's root.
        ("checkpoint-wrong-roothash_fail", Some(false)),
        ("invalid-checkpoint-signature_fail", Some(false)),
        ("inclusion-proof-corrupted-hash_fail", Some(false)),
        // An old proof, without a checkpoint: its path leads to another root.
        ("invalid-inclusion-proof_fail", Some(false)),
    ];
    for (name, ok) in cases {
        let Some(c) = case(&suite, name) else {
            assert_eq!(ok, None, "{name} has no inclusion proof");
            eprintln!("{name}: no inclusion proof");
            continue;
        };
        assert_eq!(c.key.algorithm(), Algorithm::EcdsaP256Sha256, "{name}");
        let got = c.verify();
        eprintln!("{name}: {got:?}");
        assert_eq!(Some(got.is_ok()), ok, "{name}: {got:?}");
    }
    let err = |name| case(&suite, name).unwrap().verify().unwrap_err();
    assert_eq!(
        err("checkpoint-bad-keyhint_fail"),
        TlogError::Note(NoteError::NoTrustedSignature)
    );
    for name in [
        "inclusion-proof-corrupted-hash_fail",
        "invalid-inclusion-proof_fail",
    ] {
        assert_eq!(
            err(name),
            TlogError::Proof(ProofError::RootMismatch),
            "{name}"
        );
    }
}

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING},
};
use base64::Engine as _;

use super::*;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn enc(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

// === Merkle trees built by the RFC 9162 definitions ===

/// RFC 9162 section 2.1.1: k is the largest power of two smaller than n.
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// RFC 9162 section 2.1.1: MTH(D[n]).
fn mth(leaves: &[Vec<u8>]) -> [u8; HASH_LEN] {
    match leaves.len() {
        0 => {
            let mut out = [0u8; HASH_LEN];
            out.copy_from_slice(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"").as_ref(),
            );
            out
        }
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 section 2.1.3.1: PATH(m, D[n]).
fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<[u8; HASH_LEN]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split_point(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

#[test]
fn every_leaf_of_trees_of_one_to_nine_leaves_is_proven() {
    for n in 1..=9 {
        let d = leaves(n);
        let root = mth(&d);
        for m in 0..n {
            let p = path(m, &d);
            assert_eq!(
                verify_inclusion(m as u64, n as u64, &d[m], &p, &root),
                Ok(()),
                "leaf {m} of {n}"
            );
        }
    }
}

#[test]
fn attack_tampered_audit_path_hash_is_refused() {
    for n in 2..=9 {
        let d = leaves(n);
        let root = mth(&d);
        for m in 0..n {
            let p = path(m, &d);
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i][0] ^= 1;
                assert!(
                    verify_inclusion(m as u64, n as u64, &d[m], &bad, &root).is_err(),
                    "leaf {m} of {n}, hash {i}"
                );
            }
        }
    }
}

#[test]
fn attack_other_leaf_index_or_root_is_refused() {
    for n in 1..=9 {
        let d = leaves(n);
        let root = mth(&d);
        for m in 0..n {
            let p = path(m, &d);
            let other = b"not a leaf of the tree".to_vec();
            assert_eq!(
                verify_inclusion(m as u64, n as u64, &other, &p, &root),
                Err(ProofError::RootMismatch)
            );
            let mut bad_root = root;
            bad_root[31] ^= 0x80;
            assert_eq!(
                verify_inclusion(m as u64, n as u64, &d[m], &p, &bad_root),
                Err(ProofError::RootMismatch)
            );
            // The same path at every other index of the tree proves nothing.
            for wrong in (0..n).filter(|&w| w != m) {
                if d[wrong] == d[m] {
                    continue;
                }
                assert!(
                    verify_inclusion(wrong as u64, n as u64, &d[m], &p, &root).is_err(),
                    "leaf {m} of {n} claimed at {wrong}"
                );
            }
        }
    }
}

#[test]
fn attack_wrong_tree_size_is_refused_where_the_path_fixes_it() {
    // RFC 9162 section 2.1.3.2 follows the path's shape under the claimed size: a size
    // whose audit path for the index has another length is refused by the path alone. A
    // size with the same shape (a leaf of a complete left subtree) is bound by the signed
    // checkpoint instead (`verify_inclusion_in_checkpoint`).
    let mut refused = 0;
    for n in 1..=9 {
        let d = leaves(n);
        let root = mth(&d);
        for m in 0..n {
            let p = path(m, &d);
            for size in 1..=12usize {
                if size == n {
                    continue;
                }
                let shape_differs = m >= size || path(m, &leaves(size)).len() != p.len();
                let result = verify_inclusion(m as u64, size as u64, &d[m], &p, &root);
                if shape_differs {
                    assert!(
                        result.is_err(),
                        "leaf {m} of {n} claimed in a tree of {size}"
                    );
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 300, "{refused}");
}

#[test]
fn attack_index_at_or_beyond_the_size_and_the_empty_tree_are_refused() {
    let d = leaves(4);
    let root = mth(&d);
    let p = path(3, &d);
    assert_eq!(
        verify_inclusion(4, 4, &d[3], &p, &root),
        Err(ProofError::IndexBeyondSize { index: 4, size: 4 })
    );
    assert_eq!(
        verify_inclusion(u64::MAX, 4, &d[3], &p, &root),
        Err(ProofError::IndexBeyondSize {
            index: u64::MAX,
            size: 4
        })
    );
    let empty = mth(&[]);
    let none: [[u8; 32]; 0] = [];
    assert_eq!(
        verify_inclusion(0, 0, b"", &none, &empty),
        Err(ProofError::IndexBeyondSize { index: 0, size: 0 })
    );
}

#[test]
fn attack_path_too_long_or_too_short_is_refused() {
    for n in 1..=9 {
        let d = leaves(n);
        let root = mth(&d);
        for m in 0..n {
            let p = path(m, &d);
            let mut long = p.clone();
            long.push([7u8; 32]);
            assert_eq!(
                verify_inclusion(m as u64, n as u64, &d[m], &long, &root),
                Err(ProofError::PathTooLong(long.len()))
            );
            if !p.is_empty() {
                let short = &p[..p.len() - 1];
                assert_eq!(
                    verify_inclusion(m as u64, n as u64, &d[m], short, &root),
                    Err(ProofError::PathTooShort)
                );
            }
        }
    }
    let huge = vec![[0u8; 32]; MAX_PATH + 1];
    assert_eq!(
        verify_inclusion(0, u64::MAX, b"x", &huge, &[0u8; 32]),
        Err(ProofError::PathTooLong(MAX_PATH + 1))
    );
}

#[test]
fn hashes_of_another_length_are_refused() {
    let d = leaves(2);
    let root = mth(&d);
    let p = vec![vec![0u8; 31]];
    assert_eq!(
        verify_inclusion(0, 2, &d[0], &p, &root),
        Err(ProofError::HashLength(31))
    );
    let good = path(0, &d);
    assert_eq!(
        verify_inclusion(0, 2, &d[0], &good, &root[..31]),
        Err(ProofError::HashLength(31))
    );
}

#[test]
fn leaf_and_node_hashes_are_domain_separated() {
    // RFC 6962 section 2.1 test vector: the hash of the empty leaf.
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    assert_ne!(leaf_hash(&[0u8; 64]), node_hash(&[0u8; 32], &[0u8; 32]));
}

// === Signed notes ===

fn generated() -> (EcdsaKeyPair, LogKey) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let key = LogKey::from_spki_der(pair.public_key().as_der().unwrap().as_ref()).unwrap();
    (pair, key)
}

fn sig_line(pair: &EcdsaKeyPair, hint: [u8; 4], name: &str, text: &str) -> String {
    let sig = pair.sign(&SystemRandom::new(), text.as_bytes()).unwrap();
    let mut bytes = hint.to_vec();
    bytes.extend_from_slice(sig.as_ref());
    format!("\u{2014} {name} {}\n", enc(&bytes))
}

fn body(size: u64, root: &[u8]) -> String {
    format!("example.org/log - 42\n{size}\n{}\n", enc(root))
}

fn signed(pair: &EcdsaKeyPair, key: &LogKey, text: &str) -> String {
    format!(
        "{text}\n{}",
        sig_line(pair, key.key_hint(), "example.org/log", text)
    )
}

#[test]
fn a_checkpoint_signed_by_the_key_verifies_and_parses() {
    let (pair, key) = generated();
    let text = format!("{}ext one\next two\n", body(9, &[3u8; 32]));
    let note = signed(&pair, &key, &text);
    let cp = verify_checkpoint(note.as_bytes(), &key).unwrap();
    assert_eq!(cp.origin, "example.org/log - 42");
    assert_eq!(cp.size, 9);
    assert_eq!(cp.root_hash, [3u8; 32]);
    assert_eq!(cp.extensions, vec!["ext one", "ext two"]);
}

#[test]
fn attack_checkpoint_text_changed_after_signing_is_refused() {
    let (pair, key) = generated();
    let note = signed(&pair, &key, &body(9, &[3u8; 32]));
    let forged = note.replacen("\n9\n", "\n10\n", 1);
    assert_eq!(
        verify_checkpoint(forged.as_bytes(), &key),
        Err(NoteError::BadSignature)
    );
}

#[test]
fn attack_checkpoint_signed_by_another_key_is_refused() {
    let (pair, _) = generated();
    let (_, trusted) = generated();
    let text = body(9, &[3u8; 32]);
    // Under its own hint: not a signature by the trusted key at all.
    let (_, own) = (
        0,
        LogKey::from_spki_der(pair.public_key().as_der().unwrap().as_ref()).unwrap(),
    );
    let note = signed(&pair, &own, &text);
    assert_eq!(
        verify_checkpoint(note.as_bytes(), &trusted),
        Err(NoteError::NoTrustedSignature)
    );
    // Claiming the trusted key's hint: the signature does not verify.
    let note = format!(
        "{text}\n{}",
        sig_line(&pair, trusted.key_hint(), "example.org/log", &text)
    );
    assert_eq!(
        verify_checkpoint(note.as_bytes(), &trusted),
        Err(NoteError::BadSignature)
    );
}

#[test]
fn signatures_of_unknown_keys_are_ignored_beside_the_trusted_one() {
    let (pair, key) = generated();
    let (other, other_key) = generated();
    let text = body(1, &[0u8; 32]);
    let note = format!(
        "{text}\n{}{}",
        sig_line(&other, other_key.key_hint(), "witness.example", &text),
        sig_line(&pair, key.key_hint(), "example.org/log", &text)
    );
    assert!(verify_checkpoint(note.as_bytes(), &key).is_ok());
}

#[test]
fn attack_oversized_note_or_too_many_signatures_is_refused() {
    let (pair, key) = generated();
    let text = format!("{}{}\n", body(1, &[0u8; 32]), "x".repeat(MAX_NOTE_SIZE));
    let note = signed(&pair, &key, &text);
    assert_eq!(
        verify_checkpoint(note.as_bytes(), &key),
        Err(NoteError::TooLarge(note.len()))
    );
    let text = body(1, &[0u8; 32]);
    let line = sig_line(&pair, key.key_hint(), "example.org/log", &text);
    let note = format!("{text}\n{}", line.repeat(MAX_SIGNATURES + 1));
    assert_eq!(
        verify_checkpoint(note.as_bytes(), &key),
        Err(NoteError::TooManySignatures)
    );
    let note = format!("{text}\n{}", line.repeat(MAX_SIGNATURES));
    assert!(verify_checkpoint(note.as_bytes(), &key).is_ok());
}

#[test]
fn malformed_notes_and_checkpoints_are_refused() {
    let (pair, key) = generated();
    let good = body(5, &[1u8; 32]);
    let malformed = |note: &str| {
        matches!(
            verify_checkpoint(note.as_bytes(), &key),
            Err(NoteError::Malformed(_))
        )
    };
    let line = sig_line(&pair, key.key_hint(), "example.org/log", &good);
    assert!(malformed(&good), "no signature block");
    assert!(malformed(&format!("{good}\n")), "no signature line");
    assert!(
        malformed(&format!("{good}\n{}", line.trim_end())),
        "no final newline"
    );
    assert!(malformed(&format!(
        "{good}\n{}",
        line.replacen('\u{2014}', "-", 1)
    )));
    assert!(malformed(&format!(
        "{good}\n{}",
        line.replacen("example.org/log", "a+b", 1)
    )));
    assert!(malformed(&format!(
        "{good}\n\u{2014} example.org/log AAAA\n"
    )));
    assert!(malformed(&format!(
        "{good}\n\u{2014} example.org/log !!!!\n"
    )));
    let checkpoint_error = |text: &str| {
        let note = signed(&pair, &key, text);
        matches!(
            verify_checkpoint(note.as_bytes(), &key),
            Err(NoteError::Checkpoint(_))
        )
    };
    let root = enc(&[1u8; 32]);
    assert!(checkpoint_error(&format!("\n5\n{root}\n")), "empty origin");
    assert!(
        checkpoint_error(&format!("o\n05\n{root}\n")),
        "leading zero"
    );
    assert!(checkpoint_error(&format!("o\n-5\n{root}\n")), "sign");
    assert!(checkpoint_error(&format!(
        "o\n99999999999999999999\n{root}\n"
    )));
    assert!(
        checkpoint_error(&format!("o\n5\n{}\n", enc(&[1u8; 31]))),
        "short root"
    );
    assert!(checkpoint_error("o\n5\n"), "no root");
    assert!(
        checkpoint_error(&format!("o\n5\n{root}\n\next\n")),
        "empty extension"
    );
}

// === Rekor signed entry timestamps ===

#[test]
fn canonical_payload_sorts_keys_as_jcs_does() {
    let p = RekorPayload {
        body: "eyJh/+=".to_owned(),
        integrated_time: 1_669_361_833,
        log_index: 7,
        log_id: "c0d2".to_owned(),
    };
    assert_eq!(
        canonical_payload(&p),
        r#"{"body":"eyJh/+=","integratedTime":1669361833,"logID":"c0d2","logIndex":7}"#
    );
}

// === Real public-good data ===

/// The kubewarden cosign v3 bundle's first log entry and the public-good Rekor key, or `None`
/// (with a message) when the conformance data is absent.
fn public_good() -> Option<(serde_json::Value, LogKey)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sigstore");
    let bundle = dir.join("cosign-v3-image-kubewarden/bundle_v03.json");
    let root = dir.join("public-good/targets/trusted_root.json");
    let (Ok(bundle), Ok(root)) = (std::fs::read(&bundle), std::fs::read(&root)) else {
        eprintln!(
            "skipped: the sigstore conformance data is not at {}",
            dir.display()
        );
        return None;
    };
    let bundle: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    let root: serde_json::Value = serde_json::from_slice(&root).unwrap();
    let entry = bundle["verificationMaterial"]["tlogEntries"][0].clone();
    let log_id = entry["logId"]["keyId"].as_str().unwrap();
    let tlog = root["tlogs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["logId"]["keyId"] == log_id)
        .unwrap();
    let key = LogKey::from_spki_der(&b64(tlog["publicKey"]["rawBytes"].as_str().unwrap())).unwrap();
    assert_eq!(enc(key.log_id()), log_id);
    Some((entry, key))
}

struct Proof {
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    path: Vec<Vec<u8>>,
    root: Vec<u8>,
    checkpoint: String,
}

fn proof(entry: &serde_json::Value) -> Proof {
    let p = &entry["inclusionProof"];
    Proof {
        index: p["logIndex"].as_str().unwrap().parse().unwrap(),
        size: p["treeSize"].as_str().unwrap().parse().unwrap(),
        leaf: b64(entry["canonicalizedBody"].as_str().unwrap()),
        path: p["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| b64(h.as_str().unwrap()))
            .collect(),
        root: b64(p["rootHash"].as_str().unwrap()),
        checkpoint: p["checkpoint"]["envelope"].as_str().unwrap().to_owned(),
    }
}

#[test]
fn the_public_good_inclusion_proof_and_checkpoint_verify() {
    let Some((entry, key)) = public_good() else {
        return;
    };
    let p = proof(&entry);
    assert_eq!(
        verify_inclusion(p.index, p.size, &p.leaf, &p.path, &p.root),
        Ok(())
    );
    let cp = verify_checkpoint(p.checkpoint.as_bytes(), &key).unwrap();
    assert_eq!(cp.origin, "rekor.sigstore.dev - 1193050959916656506");
    assert_eq!(cp.size, p.size);
    assert_eq!(cp.root_hash.as_slice(), p.root.as_slice());
}

#[test]
fn attack_tampered_public_good_proof_is_refused() {
    let Some((entry, _)) = public_good() else {
        return;
    };
    let p = proof(&entry);
    for i in 0..p.path.len() {
        let mut path = p.path.clone();
        path[i][5] ^= 1;
        assert_eq!(
            verify_inclusion(p.index, p.size, &p.leaf, &path, &p.root),
            Err(ProofError::RootMismatch),
            "hash {i}"
        );
    }
    let mut root = p.root.clone();
    root[0] ^= 1;
    assert_eq!(
        verify_inclusion(p.index, p.size, &p.leaf, &p.path, &root),
        Err(ProofError::RootMismatch)
    );
    // Another tree size: the path's shape (index near the right edge) or the checkpoint
    // refuses it.
    assert!(verify_inclusion(p.index, p.index + 1, &p.leaf, &p.path, &p.root).is_err());
    assert!(verify_inclusion(p.index, p.size * 2, &p.leaf, &p.path, &p.root).is_err());
    assert!(verify_inclusion(p.index + 1, p.size, &p.leaf, &p.path, &p.root).is_err());
    let mut leaf = p.leaf.clone();
    leaf[10] ^= 1;
    assert_eq!(
        verify_inclusion(p.index, p.size, &leaf, &p.path, &p.root),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn attack_public_good_proof_for_another_tree_than_the_checkpoint_is_refused() {
    let Some((entry, key)) = public_good() else {
        return;
    };
    let p = proof(&entry);
    let cp = p.checkpoint.as_bytes();
    let ok = verify_inclusion_in_checkpoint(p.index, p.size, &p.leaf, &p.path, &p.root, cp, &key);
    assert_eq!(ok.map(|c| c.size), Ok(p.size));
    for size in [p.size - 1, p.size + 1] {
        let result =
            verify_inclusion_in_checkpoint(p.index, size, &p.leaf, &p.path, &p.root, cp, &key);
        assert!(result.is_err(), "size {size}");
    }
    let mut root = p.root.clone();
    root[31] ^= 1;
    assert!(
        verify_inclusion_in_checkpoint(p.index, p.size, &p.leaf, &p.path, &root, cp, &key).is_err()
    );
}

#[test]
fn attack_tampered_public_good_checkpoint_is_refused() {
    let Some((entry, key)) = public_good() else {
        return;
    };
    let p = proof(&entry);
    // Another tree size or root hash in the signed text.
    let size = p.size.to_string();
    let forged = p.checkpoint.replacen(&size, &(p.size + 1).to_string(), 1);
    assert_eq!(
        verify_checkpoint(forged.as_bytes(), &key),
        Err(NoteError::BadSignature)
    );
    let root = enc(&p.root);
    let mut other = p.root.clone();
    other[0] ^= 1;
    let forged = p.checkpoint.replacen(&root, &enc(&other), 1);
    assert_eq!(
        verify_checkpoint(forged.as_bytes(), &key),
        Err(NoteError::BadSignature)
    );
    // One signature byte changed (past the 4-byte key hint).
    let (text, line) = p
        .checkpoint
        .split_at(p.checkpoint.rfind("\n\n").unwrap() + 2);
    let (prefix, sig) = line.trim_end().rsplit_once(' ').unwrap();
    let mut sig = b64(sig);
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let forged = format!("{text}{prefix} {}\n", enc(&sig));
    assert_eq!(
        verify_checkpoint(forged.as_bytes(), &key),
        Err(NoteError::BadSignature)
    );
    // Under another key (the public-good Rekor v2 shard's is Ed25519; use a generated one).
    let (_, other_key) = generated();
    assert_eq!(
        verify_checkpoint(p.checkpoint.as_bytes(), &other_key),
        Err(NoteError::NoTrustedSignature)
    );
}

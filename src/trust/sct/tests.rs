//! Embedded SCTs: the sigstore conformance bundles' Fulcio certificates against their
//! trusted roots' CT logs, and hostile SCT lists spliced into a real certificate.

use std::path::{Path, PathBuf};

use ::time::format_description::well_known::Rfc3339;
use base64::Engine as _;
use x509_parser::prelude::*;

use super::*;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

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

/// A case's leaf certificate, its issuer's SPKI (the trusted root's CA certificate whose
/// subject is the leaf's issuer) and the trusted root's CT logs (keys that are not SPKI,
/// such as staging's PKCS#1 RSA key, are left out).
fn case(suite: &Path, name: &str) -> (Vec<u8>, Vec<u8>, Vec<CtLog>) {
    let dir = suite.join("bundle-verify").join(name);
    let bundle = json(&dir.join("bundle.sigstore.json"));
    let root = if dir.join("trusted_root.json").exists() {
        json(&dir.join("trusted_root.json"))
    } else {
        json(&suite.join("public-good/targets/trusted_root.json"))
    };
    let vm = &bundle["verificationMaterial"];
    let leaf = vm["certificate"]["rawBytes"]
        .as_str()
        .or(vm["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str())
        .map(b64)
        .unwrap();
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    let issuer = cert.issuer().as_raw().to_vec();
    let mut issuer_spki = None;
    for ca in root["certificateAuthorities"].as_array().unwrap() {
        for c in ca["certChain"]["certificates"].as_array().unwrap() {
            let der = b64(c["rawBytes"].as_str().unwrap());
            let (_, ca) = X509Certificate::from_der(&der).unwrap();
            if ca.subject().as_raw() == issuer.as_slice() {
                issuer_spki = Some(ca.public_key().raw.to_vec());
            }
        }
    }
    let time = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| OffsetDateTime::parse(s, &Rfc3339).unwrap())
    };
    let logs = root["ctlogs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let pk = &l["publicKey"];
            let key = LogKey::from_spki_der(&b64(pk["rawBytes"].as_str()?)).ok()?;
            Some(CtLog {
                key,
                valid_from: time(&pk["validFor"]["start"]),
                valid_until: time(&pk["validFor"]["end"]),
            })
        })
        .collect();
    (
        leaf,
        issuer_spki.expect("the leaf's issuer is in the trusted root"),
        logs,
    )
}

#[test]
fn conformance_certificates_embed_scts_as_their_readmes_say() {
    let Some(suite) = suite() else {
        return;
    };
    for name in [
        "happy-path-v0.3",
        "happy-path-v0.2",
        "bundle-with-sct-with-extensions",
    ] {
        let (leaf, issuer, logs) = case(&suite, name);
        let got = verify_embedded(&leaf, &issuer, &logs, 1);
        eprintln!("{name}: {got:?}");
        assert_eq!(got, Ok(1), "{name}");
    }
    // The SCT's extensions are non-empty here, and signed.
    let (leaf, _, _) = case(&suite, "bundle-with-sct-with-extensions");
    let precert = precert_tbs(&leaf).unwrap();
    let scts = parse_list(precert.sct_list.unwrap()).unwrap();
    assert!(!scts[0].extensions.is_empty());

    // The trusted root's CT log key is another than the one that signed.
    let (leaf, issuer, logs) = case(&suite, "invalid-ct-key_fail");
    let got = verify_embedded(&leaf, &issuer, &logs, 1);
    eprintln!("invalid-ct-key_fail: {got:?}");
    assert!(
        matches!(got, Err(SctError::ThresholdNotMet { verified: 0, .. })),
        "{got:?}"
    );
}

#[test]
fn attack_wrong_issuer_window_or_threshold_is_refused() {
    let Some(suite) = suite() else {
        return;
    };
    let (leaf, issuer, logs) = case(&suite, "happy-path-v0.3");
    // Another issuer key: the precert entry is not what the log signed.
    let got = verify_embedded(&leaf, b"another issuer", &logs, 1);
    assert!(
        matches!(
            got,
            Err(SctError::ThresholdNotMet {
                first_rejection: Some(SctRejection::BadSignature { .. }),
                ..
            })
        ),
        "{got:?}"
    );
    // One log cannot meet a threshold of two.
    assert!(matches!(
        verify_embedded(&leaf, &issuer, &logs, 2),
        Err(SctError::ThresholdNotMet {
            verified: 1,
            threshold: 2,
            ..
        })
    ));
    // The log's window ends before the SCT (and, inclusive, exactly at it).
    let precert = precert_tbs(&leaf).unwrap();
    let ts = parse_list(precert.sct_list.unwrap()).unwrap()[0].timestamp;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000).unwrap();
    let window = |from, until| -> Vec<CtLog> {
        logs.iter()
            .map(|l| CtLog {
                valid_from: from,
                valid_until: until,
                ..l.clone()
            })
            .collect()
    };
    let ms = ::time::Duration::milliseconds(1);
    assert_eq!(
        verify_embedded(&leaf, &issuer, &window(Some(at), Some(at)), 1),
        Ok(1)
    );
    for (from, until) in [(None, Some(at - ms)), (Some(at + ms), None)] {
        let got = verify_embedded(&leaf, &issuer, &window(from, until), 1);
        assert!(
            matches!(
                got,
                Err(SctError::ThresholdNotMet {
                    first_rejection: Some(SctRejection::OutsideValidity { .. }),
                    ..
                })
            ),
            "{got:?}"
        );
    }
    // No trusted logs at all.
    let got = verify_embedded(&leaf, &issuer, &[], 1);
    assert!(
        matches!(
            got,
            Err(SctError::ThresholdNotMet {
                first_rejection: Some(SctRejection::UnknownLog { .. }),
                ..
            })
        ),
        "{got:?}"
    );
    // A threshold of zero is met by anything well formed.
    assert_eq!(verify_embedded(&leaf, &issuer, &[], 0), Ok(0));
}

// === Hostile lists spliced into a real certificate ===

/// `leaf` with its SCT extension's TLS list replaced by `list` (the certificate's own
/// signature no longer verifies, which is not what is checked here).
fn with_list(leaf: &[u8], list: &[u8]) -> Vec<u8> {
    let cert = read_only(leaf, TAG_SEQUENCE, "cert").unwrap();
    let (tbs, after_tbs) = read_tlv(cert.content).unwrap();
    let mut fields = Vec::new();
    for field in elements(tbs.content).unwrap() {
        if field.tag != TAG_EXTENSIONS {
            fields.extend_from_slice(field.whole);
            continue;
        }
        let exts = read_only(field.content, TAG_SEQUENCE, "exts").unwrap();
        let mut kept = Vec::new();
        for ext in elements(exts.content).unwrap() {
            if sct_extension(&ext).unwrap().is_some() {
                let mut e = der(TAG_OID, &OID_SCT_LIST);
                e.extend(der(TAG_OCTET_STRING, &der(TAG_OCTET_STRING, list)));
                kept.extend(der(TAG_SEQUENCE, &e));
            } else {
                kept.extend_from_slice(ext.whole);
            }
        }
        fields.extend(der(TAG_EXTENSIONS, &der(TAG_SEQUENCE, &kept)));
    }
    let mut content = der(TAG_SEQUENCE, &fields);
    content.extend_from_slice(after_tbs);
    der(TAG_SEQUENCE, &content)
}

/// A TLS list of the given serialized SCTs.
fn list_of(scts: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for s in scts {
        body.extend((s.len() as u16).to_be_bytes());
        body.extend_from_slice(s);
    }
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend(body);
    out
}

#[test]
fn attack_hostile_sct_lists_are_refused_and_duplicates_count_once() {
    let Some(suite) = suite() else {
        return;
    };
    let (leaf, issuer, logs) = case(&suite, "happy-path-v0.3");
    let original = precert_tbs(&leaf).unwrap().sct_list.unwrap().to_vec();
    // The original list holds one SCT: its bytes after the two length prefixes.
    let one = &original[4..];
    assert_eq!(list_of(&[one]), original);
    // Splicing the same list back in changes nothing.
    assert_eq!(
        verify_embedded(&with_list(&leaf, &original), &issuer, &logs, 1),
        Ok(1)
    );

    // The same SCT twice counts once.
    let twice = with_list(&leaf, &list_of(&[one, one]));
    assert_eq!(verify_embedded(&twice, &issuer, &logs, 1), Ok(1));
    assert!(matches!(
        verify_embedded(&twice, &issuer, &logs, 2),
        Err(SctError::ThresholdNotMet {
            verified: 1,
            scts: 2,
            ..
        })
    ));
    // Too many SCTs.
    let many = with_list(&leaf, &list_of(&[one; MAX_SCTS + 1]));
    assert_eq!(
        verify_embedded(&many, &issuer, &logs, 1),
        Err(SctError::TooManyScts)
    );
    let at_most = with_list(&leaf, &list_of(&[one; MAX_SCTS]));
    assert_eq!(verify_embedded(&at_most, &issuer, &logs, 1), Ok(1));

    let malformed = |list: &[u8]| {
        let got = verify_embedded(&with_list(&leaf, list), &issuer, &logs, 1);
        assert!(matches!(got, Err(SctError::MalformedList(_))), "{got:?}");
    };
    // Truncated anywhere: the list, an SCT, a signature.
    for cut in 0..original.len() {
        malformed(&original[..cut]);
    }
    // A list length far larger than the extension.
    let mut huge = original.clone();
    huge[..2].copy_from_slice(&[0xff, 0xff]);
    malformed(&huge);
    // An SCT length larger than the list.
    let mut long = original.clone();
    long[2..4].copy_from_slice(&[0xff, 0xf0]);
    malformed(&long);
    // Bytes after the list, and after an SCT's signature.
    let mut trailing = original.clone();
    trailing.push(0);
    malformed(&trailing);
    let mut padded = one.to_vec();
    padded.push(0);
    malformed(&list_of(&[&padded]));
    // An empty list, and an empty SCT.
    malformed(&[0, 0]);
    malformed(&list_of(&[&[]]));

    // A changed signature byte, a changed timestamp, changed extensions: not the log's.
    for at in [one.len() - 1, 33 + 7, 41] {
        let mut bad = one.to_vec();
        bad[at] ^= 1;
        let got = verify_embedded(&with_list(&leaf, &list_of(&[&bad])), &issuer, &logs, 1);
        assert!(got.is_err(), "byte {at}: {got:?}");
    }
    // Another SCT version is turned down, not parsed.
    let mut v2 = one.to_vec();
    v2[0] = 1;
    let got = verify_embedded(&with_list(&leaf, &list_of(&[&v2])), &issuer, &logs, 1);
    assert!(
        matches!(
            got,
            Err(SctError::ThresholdNotMet {
                first_rejection: Some(SctRejection::UnsupportedVersion(1)),
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn certificates_without_scts_or_that_are_not_certificates() {
    assert_eq!(
        verify_embedded(b"\x30\x03\x02\x01\x00", b"", &[], 1),
        Err(SctError::BadCertificate("x509-parser does not accept it"))
    );
    assert_eq!(
        verify_embedded(&vec![0x30; MAX_CERT_SIZE + 1], b"", &[], 1),
        Err(SctError::CertificateTooLarge(MAX_CERT_SIZE + 1))
    );
    // A certificate without the extension.
    let cert = rcgen::CertificateParams::new(vec!["example.org".into()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    assert_eq!(
        verify_embedded(cert.der(), b"", &[], 1),
        Err(SctError::NoScts { threshold: 1 })
    );
    assert_eq!(verify_embedded(cert.der(), b"", &[], 0), Ok(0));
    // Its TBS is rebuilt byte for byte when there is nothing to remove.
    let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
    assert_eq!(
        precert_tbs(cert.der()).unwrap().tbs,
        parsed.tbs_certificate.as_ref()
    );
}

//! Envelopes from the Notation conformance corpus (notation-go mocks and timestamp set,
//! notation e2e layouts and blob signatures, notation-core-go's JWS vector), the same
//! envelopes tampered with, and envelopes signed here with generated keys for every
//! algorithm and for the header rules a real envelope cannot exercise without its key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature as lc;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use coset::cbor::value::Value as Cbor;
use coset::iana::{self, EnumI64 as _};
use coset::{
    CborSerializable as _, CoseSign1, CoseSign1Builder, HeaderBuilder, RegisteredLabelWithPrivate,
    TaggedCborSerializable as _,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;

// === corpus ===

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: conformance data not found at {}", dir.display());
        None
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

const MOCK_TARGET: &str = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e";
const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn malformed(r: Result<Envelope, EnvelopeError>) -> String {
    match r {
        Err(EnvelopeError::Malformed(m)) => m,
        other => panic!("expected a malformed envelope, got {other:?}"),
    }
}

fn invalid(r: Result<Envelope, EnvelopeError>) -> String {
    match r {
        Err(EnvelopeError::Invalid(m)) => m,
        other => panic!("expected an invalid signature, got {other:?}"),
    }
}

// === notation-go mock envelopes (README §2.2, §3.2) ===

#[test]
fn every_mock_envelope_parses_or_fails_as_notation_go_says() {
    let Some(root) = corpus() else { return };
    let dir = root.join("notation-go/internal/mock/testdata");
    let all = files(&dir, ".json");
    assert_eq!(all.len(), 17, "the mock envelopes of README §2.2");
    for path in all {
        let file = name(&path);
        let result = Envelope::parse(JWS, &read(&path));
        if file.contains("_invalid_sig_env") {
            // G03: "signature is invalid. Error: illegal base64 data at input byte 242"
            let err = result.unwrap_err();
            assert_eq!(
                err,
                EnvelopeError::Invalid("illegal base64 data at input byte 242".into()),
                "{file}"
            );
            assert_eq!(
                err.to_string(),
                "signature is invalid. Error: illegal base64 data at input byte 242"
            );
            continue;
        }
        let env = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(env.media_type, JWS);
        assert_eq!(env.target.media_type, DOCKER_V2, "{file}");
        let scheme = if file.starts_with("sa_") {
            SigningScheme::SigningAuthority
        } else {
            SigningScheme::X509
        };
        assert_eq!(env.scheme, scheme, "{file}");
        assert_eq!(env.signing_time.is_some(), scheme == SigningScheme::X509);
        assert_eq!(
            env.authentic_signing_time.is_some(),
            scheme == SigningScheme::SigningAuthority
        );
        assert!(env.timestamp.is_none(), "{file}");
        if file.contains("pluginver") {
            // G13: PS256 by wabbit-networks.io, the plugin and its minimum version critical.
            let version = file
                .trim_end_matches(".json")
                .rsplit('_')
                .next()
                .unwrap()
                .to_owned();
            assert_eq!(env.algorithm, Algorithm::Ps256);
            assert_eq!(
                env.verification_plugin.as_deref(),
                Some("io.cncf.notary.plugin.unittest.mock")
            );
            assert_eq!(env.plugin_min_version, Some(version), "{file}");
            assert_eq!(
                env.target.digest,
                "sha256:fe7e9333395060c2f5e63cf36a38fba10176f183b4163a5794e081a480abba5f"
            );
            assert_eq!(env.target.size, 942);
            assert!(env.critical_extended.is_empty());
        } else if file == "sig_env_with_metadata.json" {
            assert_eq!(env.algorithm, Algorithm::Ps256);
            assert_eq!(env.target.size, 942);
            assert_eq!(
                env.target
                    .annotations
                    .get("io.wabbit-networks.buildId")
                    .map(String::as_str),
                Some("123")
            );
            assert_eq!(
                env.target
                    .annotations
                    .get("io.wabbit-networks.buildTime")
                    .map(String::as_str),
                Some("1672944615")
            );
        } else {
            // The PS384 `Notation Test Root` chain of two.
            assert_eq!(env.algorithm, Algorithm::Ps384, "{file}");
            assert_eq!(env.chain.len(), 2, "{file}");
            assert_eq!(env.target.digest, MOCK_TARGET);
            assert_eq!(env.target.size, 528);
            // Spelled `io.cncf.notary.SigningAgent`: Go matches it case-insensitively.
            assert_eq!(
                env.signing_agent.as_deref(),
                Some("Notation/1.0.0"),
                "{file}"
            );
            if file.contains("plugin") {
                // G12: `SomeKey` is critical and unknown; the plugin name critical too.
                assert_eq!(env.verification_plugin.as_deref(), Some("plugin-name"));
                assert_eq!(env.critical_extended, vec!["SomeKey".to_owned()]);
            } else {
                assert!(env.verification_plugin.is_none());
                assert!(env.critical_extended.is_empty(), "{file}");
            }
        }
    }
}

#[test]
fn ca_valid_sig_env_has_the_readme_fields() {
    let Some(root) = corpus() else { return };
    let bytes = read(&root.join("notation-go/internal/mock/testdata/ca_valid_sig_env.json"));
    let env = Envelope::parse(JWS, &bytes).unwrap();
    assert_eq!(env.algorithm, Algorithm::Ps384);
    assert_eq!(
        env.target,
        Target {
            media_type: DOCKER_V2.into(),
            digest: MOCK_TARGET.into(),
            size: 528,
            annotations: Default::default(),
        }
    );
    assert_eq!(env.signing_time, Some(at("2020-11-09T07:00:00Z")));
    assert_eq!(env.expiry, Some(at("2120-11-09T07:00:00Z")));
    assert_eq!(env.signature.len(), 384, "an RSA-3072 signature");

    let sa = read(&root.join("notation-go/internal/mock/testdata/sa_expired_sig_env.json"));
    let env = Envelope::parse(JWS, &sa).unwrap();
    assert_eq!(env.scheme, SigningScheme::SigningAuthority);
    assert_eq!(env.authentic_signing_time, Some(at("2022-07-29T00:00:00Z")));
    assert_eq!(env.expiry, Some(at("2022-07-29T23:59:00Z")));
}

// === notation-go internal/testdata and the timestamp set ===

#[test]
fn internal_testdata_jws_and_cose_sign_the_alpine_manifest() {
    let Some(root) = corpus() else { return };
    let dir = root.join("notation-go/internal/testdata");
    for (file, media_type) in [("jws_signature.sig", JWS), ("cose_signature.sig", COSE)] {
        let env = Envelope::parse(media_type, &read(&dir.join(file)))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(env.media_type, media_type);
        assert_eq!(env.algorithm, Algorithm::Ps256, "{file}");
        assert_eq!(env.scheme, SigningScheme::X509);
        assert_eq!(env.target.media_type, OCI_MANIFEST);
        assert_eq!(
            env.target.digest,
            "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0"
        );
        assert_eq!(env.target.size, 481);
        assert_eq!(env.chain.len(), 1);
        assert!(env.signing_time.is_some());
        // The wrong reader fails cleanly.
        let other = if media_type == JWS { COSE } else { JWS };
        malformed(Envelope::parse(other, &read(&dir.join(file))));
    }
}

#[test]
fn timestamp_set_envelopes_carry_their_tokens() {
    let Some(root) = corpus() else { return };
    let dir = root.join("notation-go/verifier/testdata/timestamp/sigEnv");
    let all = files(&dir, ".sig");
    assert_eq!(all.len(), 7);
    for path in all {
        let file = name(&path);
        // README §3.2: JWS for jws*, withoutTimestamp, timestampBeforeNotBefore; COSE else.
        let media_type = if file.starts_with("jws")
            || file == "withoutTimestamp.sig"
            || file == "timestampBeforeNotBefore.sig"
        {
            JWS
        } else {
            COSE
        };
        let env =
            Envelope::parse(media_type, &read(&path)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            env.target.digest,
            "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
            "{file}"
        );
        assert_eq!(env.target.size, 528);
        assert_eq!(env.target.media_type, DOCKER_V2);
        assert_eq!(env.algorithm, Algorithm::Ps256);
        assert_eq!(env.scheme, SigningScheme::X509);
        assert_eq!(
            env.timestamp.is_some(),
            file != "withoutTimestamp.sig",
            "{file}"
        );
        if let Some(token) = &env.timestamp {
            assert_eq!(token.first(), Some(&0x30), "{file}: a DER SEQUENCE");
        }
    }
}

// === notation e2e: OCI layouts and blob signatures ===

/// Every envelope the e2e layouts' signature manifests name, with the manifest's subject.
#[test]
fn e2e_layout_envelopes_sign_their_subjects() {
    let Some(root) = corpus() else { return };
    let layouts = root.join("notation/test/e2e/testdata/registry/oci_layout");
    let mut envelopes = 0;
    let mut not_envelopes = 0;
    for layout in files(&layouts, "") {
        let blobs = layout.join("blobs/sha256");
        for blob in files(&blobs, "") {
            let Ok(manifest) = serde_json::from_slice::<Value>(&read(&blob)) else {
                continue;
            };
            let signature = "application/vnd.cncf.notary.signature";
            if manifest["artifactType"] != signature && manifest["config"]["mediaType"] != signature
            {
                continue;
            }
            let layer = &manifest["layers"][0];
            let media_type = layer["mediaType"].as_str().unwrap();
            let digest = layer["digest"].as_str().unwrap();
            let bytes = read(&blobs.join(digest.trim_start_matches("sha256:")));
            let where_ = format!("{}: {digest}", name(&layout));
            if media_type != JWS && media_type != COSE {
                // e2e-invalid-signature: the layer is `invalid signature\n`.
                assert_eq!(name(&layout), "e2e-invalid-signature");
                assert_eq!(
                    Envelope::parse(media_type, &bytes).unwrap_err(),
                    EnvelopeError::MediaType(media_type.into())
                );
                malformed(Envelope::parse(JWS, &bytes));
                malformed(Envelope::parse(COSE, &bytes));
                not_envelopes += 1;
                continue;
            }
            let env =
                Envelope::parse(media_type, &bytes).unwrap_or_else(|e| panic!("{where_}: {e}"));
            let subject = &manifest["subject"];
            assert_eq!(
                env.target.digest,
                subject["digest"].as_str().unwrap(),
                "{where_}"
            );
            assert_eq!(Some(env.target.size), subject["size"].as_i64(), "{where_}");
            assert_eq!(
                env.target.media_type,
                subject["mediaType"].as_str().unwrap()
            );
            assert_eq!(env.algorithm, Algorithm::Ps256, "{where_}");
            match name(&layout).as_str() {
                "e2e-expired-signature" => {
                    assert_eq!(env.expiry, Some(at("2023-06-27T05:21:21Z")));
                }
                "e2e-with-timestamped-signature" => {
                    assert_eq!(env.expiry, Some(at("2025-01-21T12:39:46Z")));
                    assert_eq!(
                        env.target.annotations.get("purpose").map(String::as_str),
                        Some("e2e")
                    );
                    assert!(env.timestamp.as_ref().is_some_and(|t| t.len() > 1000));
                }
                "e2e-with-invalid-timestamped-signature" => {
                    // Unsigned garbage: the envelope parses; the verifier fails the token.
                    assert_eq!(env.timestamp.as_ref().map(Vec::len), Some(8));
                }
                _ => assert!(env.timestamp.is_none(), "{where_}"),
            }
            envelopes += 1;
        }
    }
    assert_eq!((envelopes, not_envelopes), (7, 1));
}

#[test]
fn e2e_blob_signatures() {
    let Some(root) = corpus() else { return };
    let dir = root.join("notation/test/e2e/testdata/signatures");
    for (file, media_type) in [("blob.jws.sig", JWS), ("blob.cose.sig", COSE)] {
        let env = Envelope::parse(media_type, &read(&dir.join(file)))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(env.target.digest.starts_with("sha256:c71d239d"), "{file}");
        assert_eq!(env.target.size, 11357);
        assert!(env.timestamp.is_some(), "{file} is timestamped");
        assert_eq!(env.algorithm, Algorithm::Ps256);
    }
    let bytes = read(&dir.join("malformed.jws.sig"));
    assert!(malformed(Envelope::parse(JWS, &bytes)).starts_with("JWS JSON"));
    malformed(Envelope::parse(COSE, &bytes));
}

#[test]
fn core_go_jws_conformance_vector_has_no_certificate_chain() {
    let Some(root) = corpus() else { return };
    let bytes = read(&root.join("notation-core-go/signature/jws/testdata/conformance.json"));
    assert_eq!(
        malformed(Envelope::parse(JWS, &bytes)),
        "certificate chain is not present"
    );
}

// === real envelopes tampered with ===

/// A real JWS envelope as JSON, with helpers to rewrite its parts.
struct Jws(Value);

impl Jws {
    fn load(root: &Path, rel: &str) -> Jws {
        Jws(serde_json::from_slice(&read(&root.join(rel))).unwrap())
    }

    fn mock(root: &Path, file: &str) -> Jws {
        Jws::load(root, &format!("notation-go/internal/mock/testdata/{file}"))
    }

    fn decoded(&self, member: &str) -> Value {
        let b = URL_SAFE_NO_PAD
            .decode(self.0[member].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn set_raw(&mut self, member: &str, text: &[u8]) -> &mut Self {
        self.0[member] = Value::String(URL_SAFE_NO_PAD.encode(text));
        self
    }

    fn edit(&mut self, member: &str, f: impl FnOnce(&mut Value)) -> &mut Self {
        let mut v = self.decoded(member);
        f(&mut v);
        self.set_raw(member, &serde_json::to_vec(&v).unwrap())
    }

    fn parse(&self) -> Result<Envelope, EnvelopeError> {
        Envelope::parse(JWS, &serde_json::to_vec(&self.0).unwrap())
    }
}

#[test]
fn jws_tampering_is_caught() {
    let Some(root) = corpus() else { return };
    let valid = || Jws::mock(&root, "ca_valid_sig_env.json");
    valid().parse().unwrap();

    // A payload changed after signing (the size, then one base64 character).
    let m = invalid(
        valid()
            .edit("payload", |p| p["targetArtifact"]["size"] = json!(529))
            .parse(),
    );
    assert!(m.contains("does not verify"), "{m}");
    let mut flipped = valid();
    let mut payload = flipped.0["payload"]
        .as_str()
        .unwrap()
        .to_owned()
        .into_bytes();
    payload[40] = if payload[40] == b'A' { b'B' } else { b'A' };
    flipped.0["payload"] = Value::String(String::from_utf8(payload).unwrap());
    assert!(invalid(flipped.parse()).contains("does not verify"));

    // A signature byte flipped.
    let mut sig = valid();
    let mut bytes = URL_SAFE_NO_PAD
        .decode(sig.0["signature"].as_str().unwrap())
        .unwrap();
    bytes[10] ^= 1;
    sig.0["signature"] = Value::String(URL_SAFE_NO_PAD.encode(bytes));
    assert!(invalid(sig.parse()).contains("does not verify"));

    // The wrong algorithm for the RSA-3072 key.
    assert_eq!(
        invalid(
            valid()
                .edit("protected", |h| h["alg"] = json!("PS256"))
                .parse()
        ),
        "mismatch between signature algorithm derived from signing certificate (PS384) and \
         signing algorithm specified (PS256)"
    );
    assert_eq!(
        invalid(
            valid()
                .edit("protected", |h| h["alg"] = json!("RS384"))
                .parse()
        ),
        "signature algorithm \"RS384\" is not supported"
    );
    assert_eq!(
        invalid(
            valid()
                .edit("protected", |h| h["alg"] = json!("none"))
                .parse()
        ),
        "signature algorithm \"none\" is not supported"
    );

    // A crit entry missing: expiry is present, so it must be critical.
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| h["crit"] =
                    json!(["io.cncf.notary.signingScheme"]))
                .parse()
        ),
        "these required headers are not marked as critical: [io.cncf.notary.expiry]"
    );
    assert_eq!(
        malformed(valid().edit("protected", |h| h["crit"] = json!([])).parse()),
        r#"missing "crit" header"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| {
                    h.as_object_mut().unwrap().remove("crit");
                })
                .parse()
        ),
        r#"missing "crit" header"#
    );
    // signingAuthority: authenticSigningTime must be critical.
    let m = malformed(
        Jws::mock(&root, "sa_valid_sig_env.json")
            .edit("protected", |h| {
                h["crit"] = json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"])
            })
            .parse(),
    );
    assert_eq!(
        m,
        "these required headers are not marked as critical: [io.cncf.notary.authenticSigningTime]"
    );

    // An unknown critical header that is not there, and one the spec never marks critical.
    let crit_plus = |extra: &str| {
        let extra = extra.to_owned();
        move |h: &mut Value| {
            h["crit"].as_array_mut().unwrap().push(json!(extra));
        }
    };
    assert_eq!(
        malformed(
            valid()
                .edit("protected", crit_plus("io.example.unknown"))
                .parse()
        ),
        r#""io.example.unknown" header is marked critical but not present"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", crit_plus("io.cncf.notary.signingTime"))
                .parse()
        ),
        r#""io.cncf.notary.signingTime" header must not be marked critical"#
    );
    assert_eq!(
        malformed(valid().edit("protected", crit_plus("alg")).parse()),
        r#""alg" header must not be marked critical"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", crit_plus("io.cncf.notary.expiry"))
                .parse()
        ),
        r#""io.cncf.notary.expiry" is listed twice in "crit""#
    );

    // Scheme rules.
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| {
                    h["io.cncf.notary.authenticSigningTime"] = json!("2020-11-09T07:00:00Z")
                })
                .parse()
        ),
        r#""io.cncf.notary.authenticSigningTime" header must not be present for notary.x509 signing scheme"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| {
                    h.as_object_mut()
                        .unwrap()
                        .remove("io.cncf.notary.signingTime");
                })
                .parse()
        ),
        r#""io.cncf.notary.signingTime" header must be present for notary.x509 signing scheme"#
    );
    assert_eq!(
        malformed(
            Jws::mock(&root, "sa_valid_sig_env.json")
                .edit("protected", |h| {
                    h["io.cncf.notary.signingTime"] = json!("2020-11-09T07:00:00Z")
                })
                .parse()
        ),
        r#""io.cncf.notary.signingTime" header must not be present for notary.x509.signingAuthority signing scheme"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| h["io.cncf.notary.signingScheme"] =
                    json!("notary.v1"))
                .parse()
        ),
        "unsupported SigningScheme: `notary.v1`"
    );

    // Content type, times.
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| h["cty"] = json!("application/json"))
                .parse()
        ),
        r#"payload content type "application/json" not supported"#
    );
    assert_eq!(
        malformed(
            valid()
                .edit("protected", |h| h["io.cncf.notary.expiry"] =
                    json!("2020-11-09T07:00:00Z"))
                .parse()
        ),
        "expiry cannot be equal or before the signing time"
    );
    assert!(malformed(
        valid()
            .edit("protected", |h| h["io.cncf.notary.expiry"] =
                json!("tomorrow"))
            .parse()
    )
    .contains("is not an RFC 3339 time"));
}

#[test]
fn jws_encoding_and_structure_are_strict() {
    let Some(root) = corpus() else { return };
    let valid = || Jws::mock(&root, "ca_valid_sig_env.json");
    let protected = valid().0["protected"].as_str().unwrap().to_owned();
    let header_json = URL_SAFE_NO_PAD.decode(&protected).unwrap();
    let header_text = String::from_utf8(header_json).unwrap();

    // Padding or a character outside base64url, named by offset as Go names it.
    let mut padded = valid();
    padded.0["protected"] = Value::String(format!("{protected}="));
    assert_eq!(
        invalid(padded.parse()),
        format!(
            "protected header: illegal base64 data at input byte {}",
            protected.len()
        )
    );
    let mut plus = valid();
    plus.0["signature"] = Value::String(format!(
        "ab+{}",
        &plus.0["signature"].as_str().unwrap()[3..]
    ));
    assert_eq!(invalid(plus.parse()), "illegal base64 data at input byte 2");

    // Duplicate keys and case variants in the signed header.
    let dup = header_text.replacen(r#""alg":"PS384""#, r#""alg":"PS384","alg":"PS384""#, 1);
    let m = malformed(valid().set_raw("protected", dup.as_bytes()).parse());
    assert!(m.contains("duplicate key \"alg\""), "{m}");
    let upper = header_text.replacen(r#""alg""#, r#""ALG""#, 1);
    let m = malformed(valid().set_raw("protected", upper.as_bytes()).parse());
    assert!(m.contains("differs from \"alg\" only in case"), "{m}");
    let m = malformed(valid().set_raw("protected", b"[1,2]").parse());
    assert!(m.starts_with("protected header: expected an object"), "{m}");

    // A payload that is not a descriptor is not even read unless signed: the signature
    // fails first (the signed shapes are `a_payload_that_is_not_the_descriptor_...`).
    let m = invalid(valid().set_raw("payload", b"{}").parse());
    assert!(m.contains("does not verify"), "{m}");

    // The unsigned header: a case variant is the member (Go), two spellings are an error.
    let mut folded = valid();
    let x5c = folded.0["header"]["x5c"].take();
    folded.0["header"].as_object_mut().unwrap().remove("x5c");
    folded.0["header"]["X5C"] = x5c.clone();
    folded.parse().unwrap();
    folded.0["header"]["x5c"] = x5c.clone();
    assert!(malformed(folded.parse()).contains("appears twice"));

    // Chain bounds and contents.
    let mut none = valid();
    none.0["header"]["x5c"] = json!([]);
    assert_eq!(malformed(none.parse()), "certificate chain is not present");
    let mut eleven = valid();
    eleven.0["header"]["x5c"] = Value::Array(vec![x5c[0].clone(); 11]);
    assert_eq!(
        malformed(eleven.parse()),
        "certificate chain has 11 certificates, more than 10"
    );
    let mut junk = valid();
    junk.0["header"]["x5c"] = json!([STANDARD.encode(b"not a certificate")]);
    assert!(malformed(junk.parse()).starts_with("malformed leaf certificate"));
    let mut unpadded = valid();
    unpadded.0["header"]["x5c"][0] =
        Value::String(x5c[0].as_str().unwrap().trim_end_matches('=').to_owned());
    if unpadded.0["header"]["x5c"][0] != x5c[0] {
        assert!(malformed(unpadded.parse()).contains("illegal base64 data"));
    }
    // The leaf swapped for the root: another key, so the signature fails.
    let mut swapped = valid();
    swapped.0["header"]["x5c"] = json!([x5c[1].clone(), x5c[0].clone()]);
    assert!(invalid(swapped.parse()).contains("does not verify"));

    // Size and media type.
    let mut big = serde_json::to_vec(&valid().0).unwrap();
    big.resize(MAX_ENVELOPE as usize + 1, b' ');
    assert_eq!(
        Envelope::parse(JWS, &big).unwrap_err(),
        EnvelopeError::TooLarge
    );
    let mut fits = serde_json::to_vec(&valid().0).unwrap();
    fits.resize(MAX_ENVELOPE as usize, b' ');
    Envelope::parse(JWS, &fits).unwrap();
    assert_eq!(
        Envelope::parse("application/json", b"{}").unwrap_err(),
        EnvelopeError::MediaType("application/json".into())
    );
    assert!(malformed(Envelope::parse(JWS, b"")).starts_with("JWS JSON"));
    assert!(malformed(Envelope::parse(JWS, b"[]")).starts_with("JWS JSON"));
    let deep = "[".repeat(10_000);
    malformed(Envelope::parse(JWS, deep.as_bytes()));
}

/// A real COSE envelope decoded, to rewrite and encode again.
fn cose_of(root: &Path, rel: &str) -> CoseSign1 {
    CoseSign1::from_tagged_slice(&read(&root.join(rel))).unwrap()
}

fn encode(mut sign1: CoseSign1, protected_changed: bool) -> Vec<u8> {
    if protected_changed {
        sign1.protected.original_data = None;
    }
    sign1.to_tagged_vec().unwrap()
}

fn cose_text(name: &str) -> coset::Label {
    coset::Label::Text(name.into())
}

#[test]
fn cose_tampering_is_caught() {
    let Some(root) = corpus() else { return };
    let rel = "notation-go/internal/testdata/cose_signature.sig";
    Envelope::parse(COSE, &encode(cose_of(&root, rel), false)).unwrap();
    // Re-encoding the protected header as coset would must keep it valid (same bytes).
    Envelope::parse(COSE, &encode(cose_of(&root, rel), true)).unwrap();

    // A payload byte flipped.
    let mut s = cose_of(&root, rel);
    let payload = s.payload.as_mut().unwrap();
    let i = payload.len() - 3;
    payload[i] ^= 0x01;
    assert!(invalid(Envelope::parse(COSE, &encode(s, false))).contains("does not verify"));

    // The wrong algorithm for the RSA-2048 key, and one outside the six.
    let mut s = cose_of(&root, rel);
    s.protected.header.alg = Some(iana::Algorithm::PS384.into());
    assert_eq!(
        invalid(Envelope::parse(COSE, &encode(s, true))),
        "mismatch between signature algorithm derived from signing certificate (PS256) and \
         signing algorithm specified (PS384)"
    );
    let mut s = cose_of(&root, rel);
    s.protected.header.alg = Some(iana::Algorithm::RS256.into());
    assert_eq!(
        invalid(Envelope::parse(COSE, &encode(s, true))),
        "signature algorithm not supported: -257"
    );

    // crit: the signing scheme removed; an unknown label added; a generic label added.
    let mut s = cose_of(&root, rel);
    s.protected
        .header
        .crit
        .retain(|l| *l != RegisteredLabelWithPrivate::Text(attributes::SIGNING_SCHEME.into()));
    // The real envelope lists only the signing scheme; coset drops an empty crit on
    // encoding, so the header reads as having none.
    assert!(s.protected.header.crit.is_empty());
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, true))),
        r#"missing "crit" header"#
    );
    let mut s = cose_of(&root, rel);
    s.protected
        .header
        .crit
        .push(RegisteredLabelWithPrivate::Text(
            "io.example.unknown".into(),
        ));
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, true))),
        r#""io.example.unknown" header is marked critical but not present"#
    );
    let mut s = cose_of(&root, rel);
    s.protected
        .header
        .crit
        .push(iana::HeaderParameter::ContentType.into());
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, true))),
        "3 header must not be marked critical"
    );

    // Times must be CBOR tag 1.
    let mut s = cose_of(&root, rel);
    for (label, value) in s.protected.header.rest.iter_mut() {
        if *label == cose_text(attributes::SIGNING_TIME) {
            *value = Cbor::Integer(1_700_000_000.into());
        }
    }
    assert!(malformed(Envelope::parse(COSE, &encode(s, true))).contains("does not have a tag"));

    // Content type as an integer CoAP format.
    let mut s = cose_of(&root, rel);
    s.protected.header.content_type =
        Some(coset::ContentType::Assigned(iana::CoapContentFormat::Json));
    assert!(malformed(Envelope::parse(COSE, &encode(s, true))).contains("'tstr'"));

    // A detached payload, an empty signature, no chain, a chain label in both buckets.
    let mut s = cose_of(&root, rel);
    s.payload = None;
    assert!(malformed(Envelope::parse(COSE, &encode(s, false))).contains("detached"));
    let mut s = cose_of(&root, rel);
    s.signature.clear();
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, false))),
        "signature missing in COSE envelope"
    );
    let mut s = cose_of(&root, rel);
    s.unprotected
        .rest
        .retain(|(l, _)| *l != coset::Label::Int(33));
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, false))),
        "certificate chain is not present"
    );
    let mut s = cose_of(&root, rel);
    let chain = s
        .unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(33))
        .unwrap()
        .1
        .clone();
    s.protected
        .header
        .rest
        .push((coset::Label::Int(33), chain.clone()));
    assert!(malformed(Envelope::parse(COSE, &encode(s, true))).contains("in both"));
    let mut s = cose_of(&root, rel);
    let Cbor::Array(one) = &chain else { panic!() };
    for (l, v) in s.unprotected.rest.iter_mut() {
        if *l == coset::Label::Int(33) {
            *v = Cbor::Array(vec![one[0].clone(); 11]);
        }
    }
    assert_eq!(
        malformed(Envelope::parse(COSE, &encode(s, false))),
        "certificate chain has 11 certificates, more than 10"
    );

    // Untagged, other tags, trailing bytes, truncation.
    let tagged = read(&root.join(rel));
    let untagged = cose_of(&root, rel).to_vec().unwrap();
    malformed(Envelope::parse(COSE, &untagged));
    let mut other_tag = tagged.clone();
    other_tag[0] = 0xd1; // tag 17: COSE_Mac0
    malformed(Envelope::parse(COSE, &other_tag));
    let mut trailing = tagged.clone();
    trailing.push(0);
    malformed(Envelope::parse(COSE, &trailing));
    for cut in [1, 10, tagged.len() / 2, tagged.len() - 1] {
        malformed(Envelope::parse(COSE, &tagged[..cut]));
    }
    let mut big = tagged;
    big.resize(MAX_ENVELOPE as usize + 1, 0);
    assert_eq!(
        Envelope::parse(COSE, &big).unwrap_err(),
        EnvelopeError::TooLarge
    );
}

// === envelopes signed here ===

/// A generated signing key with a self-signed certificate.
struct Key {
    alg: Algorithm,
    pkcs8: Vec<u8>,
    cert: Vec<u8>,
}

fn key(alg: Algorithm) -> &'static Key {
    static KEYS: [OnceLock<Key>; 6] = [const { OnceLock::new() }; 6];
    let i = Algorithm::ALL.iter().position(|a| *a == alg).unwrap();
    KEYS[i].get_or_init(|| {
        use rcgen::{KeyPair, RsaKeySize};
        let pair = match alg {
            Algorithm::Ps256 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
            Algorithm::Ps384 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA384, RsaKeySize::_3072)
            }
            Algorithm::Ps512 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA512, RsaKeySize::_4096)
            }
            Algorithm::Es256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Algorithm::Es384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Algorithm::Es512 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
        }
        .unwrap();
        let cert = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&pair)
            .unwrap()
            .der()
            .to_vec();
        Key {
            alg,
            pkcs8: pair.serialize_der(),
            cert,
        }
    })
}

impl Key {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let ecdsa = |alg: &'static lc::EcdsaSigningAlgorithm| {
            let pair = lc::EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8).unwrap();
            pair.sign(&rng, message).unwrap().as_ref().to_vec()
        };
        let rsa = |padding: &'static dyn lc::RsaEncoding| {
            let pair = lc::RsaKeyPair::from_pkcs8(&self.pkcs8).unwrap();
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut sig).unwrap();
            sig
        };
        match self.alg {
            Algorithm::Ps256 => rsa(&lc::RSA_PSS_SHA256),
            Algorithm::Ps384 => rsa(&lc::RSA_PSS_SHA384),
            Algorithm::Ps512 => rsa(&lc::RSA_PSS_SHA512),
            Algorithm::Es256 => ecdsa(&lc::ECDSA_P256_SHA256_FIXED_SIGNING),
            Algorithm::Es384 => ecdsa(&lc::ECDSA_P384_SHA384_FIXED_SIGNING),
            Algorithm::Es512 => ecdsa(&lc::ECDSA_P521_SHA512_FIXED_SIGNING),
        }
    }
}

const SIGNED_PAYLOAD: &[u8] = br#"{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9","size":517,"artifactType":"ignored"}}"#;

fn jws_header(alg: Algorithm) -> Value {
    json!({
        "alg": alg.jws_name(),
        "cty": PAYLOAD,
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2024-06-18T14:29:33+08:00",
    })
}

fn sign_jws(key: &Key, protected: &Value, payload: &[u8]) -> Vec<u8> {
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(protected).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = key.sign(format!("{protected}.{payload}").as_bytes());
    serde_json::to_vec(&json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": [STANDARD.encode(&key.cert)], "io.cncf.notary.signingAgent": "trustgate-test"},
        "signature": URL_SAFE_NO_PAD.encode(signature),
    }))
    .unwrap()
}

fn cose_header(alg: Algorithm) -> HeaderBuilder {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::from_i64(alg.cose_id()).unwrap())
        .add_critical_label(RegisteredLabelWithPrivate::Text(
            attributes::SIGNING_SCHEME.into(),
        ))
        .content_type(PAYLOAD.into())
        .text_value(
            attributes::SIGNING_SCHEME.into(),
            Cbor::Text("notary.x509".into()),
        )
        .text_value(
            attributes::SIGNING_TIME.into(),
            Cbor::Tag(1, Box::new(Cbor::Integer(1_718_692_173.into()))),
        )
}

fn sign_cose(key: &Key, protected: coset::Header, payload: &[u8]) -> Vec<u8> {
    let unprotected = HeaderBuilder::new()
        .value(33, Cbor::Array(vec![Cbor::Bytes(key.cert.clone())]))
        .text_value(
            attributes::SIGNING_AGENT.into(),
            Cbor::Text("trustgate-test".into()),
        )
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload.to_vec())
        .create_signature(b"", |tbs| key.sign(tbs))
        .build()
        .to_tagged_vec()
        .unwrap()
}

#[test]
fn every_algorithm_verifies_in_both_formats() {
    for alg in Algorithm::ALL {
        let k = key(alg);
        let jws = Envelope::parse(JWS, &sign_jws(k, &jws_header(alg), SIGNED_PAYLOAD))
            .unwrap_or_else(|e| panic!("{alg} JWS: {e}"));
        let cose = Envelope::parse(
            COSE,
            &sign_cose(k, cose_header(alg).build(), SIGNED_PAYLOAD),
        )
        .unwrap_or_else(|e| panic!("{alg} COSE: {e}"));
        for env in [&jws, &cose] {
            assert_eq!(env.algorithm, alg);
            assert_eq!(env.target.size, 517);
            assert_eq!(env.signing_agent.as_deref(), Some("trustgate-test"));
            assert_eq!(env.signing_time, Some(at("2024-06-18T06:29:33Z")));
            assert_eq!(env.chain, vec![k.cert.clone()]);
        }
        // ECDSA signatures are r || s of fixed size in both formats.
        if matches!(alg, Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512) {
            let size = match alg {
                Algorithm::Es256 => 64,
                Algorithm::Es384 => 96,
                _ => 132,
            };
            assert_eq!((jws.signature.len(), cose.signature.len()), (size, size));
        }
    }
}

#[test]
fn an_algorithm_other_than_the_keys_is_refused_even_when_signed() {
    // The P-256 key signs, claiming ES384: the claim must match the key.
    let k = key(Algorithm::Es256);
    let m = invalid(Envelope::parse(
        JWS,
        &sign_jws(k, &jws_header(Algorithm::Es384), SIGNED_PAYLOAD),
    ));
    assert!(
        m.starts_with(
            "mismatch between signature algorithm derived from signing certificate (ES256)"
        ),
        "{m}"
    );
    let m = invalid(Envelope::parse(
        COSE,
        &sign_cose(k, cose_header(Algorithm::Es384).build(), SIGNED_PAYLOAD),
    ));
    assert!(
        m.contains("(ES256) and signing algorithm specified (ES384)"),
        "{m}"
    );

    // A key the spec does not allow at all (Ed25519).
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let mut doc: Value =
        serde_json::from_slice(&sign_jws(k, &jws_header(Algorithm::Es256), SIGNED_PAYLOAD))
            .unwrap();
    doc["header"]["x5c"] = json!([STANDARD.encode(cert.der())]);
    assert_eq!(
        invalid(Envelope::parse(JWS, &serde_json::to_vec(&doc).unwrap())),
        "unsupported public key type"
    );
}

#[test]
fn critical_extended_attributes_are_exposed() {
    let k = key(Algorithm::Es256);
    let mut h = jws_header(Algorithm::Es256);
    h["com.example.policy"] = json!({"level": 3});
    h["com.example.note"] = json!("not critical");
    h["crit"] = json!(["io.cncf.notary.signingScheme", "com.example.policy"]);
    let env = Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD)).unwrap();
    assert_eq!(env.critical_extended, vec!["com.example.policy".to_owned()]);

    // COSE: text and integer labels (a private-use integer in decimal).
    let protected = cose_header(Algorithm::Es256)
        .add_critical_label(RegisteredLabelWithPrivate::Text(
            "com.example.policy".into(),
        ))
        .add_critical_label(RegisteredLabelWithPrivate::PrivateUse(-65_600))
        .text_value("com.example.policy".into(), Cbor::Integer(3.into()))
        .value(-65_600, Cbor::Bool(true))
        .value(-65_601, Cbor::Bool(false))
        .build();
    let env = Envelope::parse(COSE, &sign_cose(k, protected, SIGNED_PAYLOAD)).unwrap();
    assert_eq!(
        env.critical_extended,
        vec!["com.example.policy".to_owned(), "-65600".to_owned()]
    );

    // Non-critical extended attributes are just carried.
    let mut h = jws_header(Algorithm::Es256);
    h["com.example.note"] = json!("informational");
    let env = Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD)).unwrap();
    assert!(env.critical_extended.is_empty());
}

#[test]
fn plugin_attributes_must_be_critical_nonempty_strings() {
    let k = key(Algorithm::Es256);
    let plugin = "io.cncf.notary.verificationPlugin";
    let mut h = jws_header(Algorithm::Es256);
    h[plugin] = json!("com.example.plugin");
    assert_eq!(
        malformed(Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD))),
        format!("these required headers are not marked as critical: [{plugin}]")
    );
    h["crit"] = json!(["io.cncf.notary.signingScheme", plugin]);
    let env = Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD)).unwrap();
    assert_eq!(
        env.verification_plugin.as_deref(),
        Some("com.example.plugin")
    );
    assert!(env.critical_extended.is_empty());
    h[plugin] = json!("  ");
    assert_eq!(
        malformed(Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD))),
        format!("{plugin} from extended attribute is an empty string")
    );
    h[plugin] = json!(7);
    assert_eq!(
        malformed(Envelope::parse(JWS, &sign_jws(k, &h, SIGNED_PAYLOAD))),
        format!("{plugin} from extended attribute is not a string")
    );
}

#[test]
fn signing_authority_and_expiry_in_cose() {
    let k = key(Algorithm::Es384);
    let t = |s: i64| Cbor::Tag(1, Box::new(Cbor::Integer(s.into())));
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES384)
        .add_critical_label(RegisteredLabelWithPrivate::Text(
            attributes::SIGNING_SCHEME.into(),
        ))
        .add_critical_label(RegisteredLabelWithPrivate::Text(
            attributes::AUTHENTIC_SIGNING_TIME.into(),
        ))
        .add_critical_label(RegisteredLabelWithPrivate::Text(attributes::EXPIRY.into()))
        .content_type(PAYLOAD.into())
        .text_value(
            attributes::SIGNING_SCHEME.into(),
            Cbor::Text("notary.x509.signingAuthority".into()),
        )
        .text_value(attributes::AUTHENTIC_SIGNING_TIME.into(), t(1_667_411_812))
        .text_value(
            attributes::EXPIRY.into(),
            Cbor::Tag(1, Box::new(Cbor::Float(1_667_415_412.5))),
        )
        .build();
    let env = Envelope::parse(COSE, &sign_cose(k, protected, SIGNED_PAYLOAD)).unwrap();
    assert_eq!(env.scheme, SigningScheme::SigningAuthority);
    assert_eq!(env.authentic_signing_time, Some(at("2022-11-02T17:56:52Z")));
    assert_eq!(env.expiry, Some(at("2022-11-02T18:56:52.5Z")));
    assert_eq!(env.signing_time, None);

    // Without marking authenticSigningTime critical.
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES384)
        .add_critical_label(RegisteredLabelWithPrivate::Text(
            attributes::SIGNING_SCHEME.into(),
        ))
        .content_type(PAYLOAD.into())
        .text_value(
            attributes::SIGNING_SCHEME.into(),
            Cbor::Text("notary.x509.signingAuthority".into()),
        )
        .text_value(attributes::AUTHENTIC_SIGNING_TIME.into(), t(1_667_411_812))
        .build();
    assert_eq!(
        malformed(Envelope::parse(
            COSE,
            &sign_cose(k, protected, SIGNED_PAYLOAD)
        )),
        "these required headers are not marked as critical: [io.cncf.notary.authenticSigningTime]"
    );
}

#[test]
fn a_payload_that_is_not_the_descriptor_is_refused_even_when_signed() {
    let k = key(Algorithm::Es256);
    for (payload, want) in [
        (&b"not json"[..], "payload: "),
        (b"", "payload: content not present"),
        (br#"{"targetArtifact":{"digest":"sha256:00","size":1}}"#, "targetArtifact has no mediaType"),
        (br#"{"targetArtifact":{"mediaType":"a/b","digest":"sha256:00","size":1.5}}"#, "not an int64"),
        (br#"{"targetArtifact":{"mediaType":"a/b","digest":"sha256:00","size":-1}}"#, "negative"),
        (br#"{"targetArtifact":{"mediaType":"a/b","digest":"60043cf4","size":1}}"#, "not <algorithm>:<encoded>"),
        (br#"{"targetArtifact":{"mediaType":"a/b","digest":"SHA256:00","size":1}}"#, "not <algorithm>:<encoded>"),
        (br#"{}"#, "missing \"targetArtifact\""),
        (br#"[]"#, "expected an object"),
        (
            br#"{"targetArtifact":{"mediaType":"a/b","digest":"sha256:00","size":1,"annotations":{"k":1}}}"#,
            "annotation \"k\" is a number",
        ),
        (
            br#"{"targetArtifact":{"mediaType":"a/b","digest":"sha256:00","size":1},"targetArtifact":{}}"#,
            "duplicate key",
        ),
        (
            br#"{"targetArtifact":{"mediaType":"a/b","Digest":"sha256:00","size":1}}"#,
            "only in case",
        ),
    ] {
        let m = malformed(Envelope::parse(JWS, &sign_jws(k, &jws_header(Algorithm::Es256), payload)));
        assert!(m.contains(want), "{m:?} should contain {want:?}");
    }
    // A sha384 digest (an RSA-3072 blob signature) is a digest like any other.
    let env = Envelope::parse(
        JWS,
        &sign_jws(
            k,
            &jws_header(Algorithm::Es256),
            br#"{"targetArtifact":{"mediaType":"application/octet-stream","digest":"sha384:abc","size":0}}"#,
        ),
    )
    .unwrap();
    assert_eq!(env.target.digest, "sha384:abc");
}

#[test]
fn hostile_bytes_never_panic() {
    // Truncations and single-byte corruptions of a real-shaped envelope of each format.
    let k = key(Algorithm::Es256);
    let jws = sign_jws(k, &jws_header(Algorithm::Es256), SIGNED_PAYLOAD);
    let cose = sign_cose(k, cose_header(Algorithm::Es256).build(), SIGNED_PAYLOAD);
    for (media_type, bytes) in [(JWS, &jws), (COSE, &cose)] {
        for cut in 0..bytes.len() {
            assert!(Envelope::parse(media_type, &bytes[..cut]).is_err());
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = Envelope::parse(media_type, &b);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(256))]

    /// Arbitrary bytes, and a signed envelope with arbitrary bytes overwritten, are refused
    /// or accepted without a panic; an edited signed envelope is never accepted with a
    /// different target.
    #[test]
    fn arbitrary_input_is_handled(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        at in 0usize..4096,
        patch in proptest::collection::vec(proptest::num::u8::ANY, 1..8),
        cose in proptest::bool::ANY,
    ) {
        let _ = Envelope::parse(JWS, &bytes);
        let _ = Envelope::parse(COSE, &bytes);
        let k = key(Algorithm::Es256);
        let (media_type, mut signed) = if cose {
            (COSE, sign_cose(k, cose_header(Algorithm::Es256).build(), SIGNED_PAYLOAD))
        } else {
            (JWS, sign_jws(k, &jws_header(Algorithm::Es256), SIGNED_PAYLOAD))
        };
        let start = at % signed.len();
        for (i, b) in patch.iter().enumerate() {
            if let Some(slot) = signed.get_mut(start + i) {
                *slot = *b;
            }
        }
        if let Ok(env) = Envelope::parse(media_type, &signed) {
            proptest::prop_assert_eq!(env.target.size, 517);
            proptest::prop_assert_eq!(
                env.target.digest,
                "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
            );
        }
    }
}

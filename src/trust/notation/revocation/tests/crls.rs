//! CRL semantics on a PKI made in the test (crl.go `checkRevocation` and `validateCRL`),
//! mostly through operator CRLs with fetching off.

use time::{Duration, OffsetDateTime};

use super::support::*;
use crate::trust::notation::revocation::{Checker, Config, Purpose, Status};

const CDP: &str = "http://crl.test/leaf.crl";
const HOLD: u8 = 6;
const REMOVE: u8 = 8;
const KEY_COMPROMISE: u8 = 1;

fn leaf_spec() -> Spec {
    Spec {
        serial: Some(0x1234),
        crl: vec![CDP.to_owned()],
        eku: vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning],
        ..Spec::default()
    }
}

/// The leaf's status with `crls` as the operator's files, nothing fetched.
async fn leaf_status(
    root: &Ca,
    leaf: &Ca,
    crls: &[Vec<u8>],
    signing_time: Option<OffsetDateTime>,
) -> Status {
    let dir = tempfile::tempdir().unwrap();
    let files = crls
        .iter()
        .enumerate()
        .map(|(i, der)| {
            let path = dir.path().join(format!("{i}.crl"));
            std::fs::write(&path, der).unwrap();
            path
        })
        .collect();
    let checker = Checker::new(Config {
        crls: files,
        ..config(false)
    })
    .unwrap();
    let statuses = checker
        .check(
            &[leaf.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            signing_time,
        )
        .await;
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[1], Status::NonRevokable);
    statuses[0].clone()
}

fn revoking(entries: Vec<Revoked>) -> CrlSpec {
    CrlSpec {
        entries,
        ..CrlSpec::default()
    }
}

fn is_unknown_with(status: &Status, text: &str) -> bool {
    matches!(status, Status::Unknown(why) if why.contains(text))
}

#[tokio::test]
async fn listed_serials_are_revoked_and_others_are_not() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let at = OffsetDateTime::now_utc() - Duration::days(2);
    let crl = make_crl(
        &root,
        &root,
        &revoking(vec![
            Revoked::serial(0x99),
            Revoked {
                at,
                reason: Some(KEY_COMPROMISE),
                ..Revoked::serial(0x1234)
            },
        ]),
    );
    let status = leaf_status(&root, &leaf, &[crl], None).await;
    assert_eq!(
        status,
        Status::Revoked(Some(
            OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap()
        ))
    );
    let crl = make_crl(&root, &root, &revoking(vec![Revoked::serial(0x99)]));
    assert_eq!(leaf_status(&root, &leaf, &[crl], None).await, Status::Ok);
}

#[tokio::test]
async fn the_invalidity_date_against_the_signing_time() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let now = OffsetDateTime::now_utc();
    let crl = make_crl(
        &root,
        &root,
        &revoking(vec![Revoked {
            invalidity: Some(now - Duration::days(10)),
            ..Revoked::serial(0x1234)
        }]),
    );
    // Signed before the key became invalid: still good then.
    let before = Some(now - Duration::days(20));
    assert_eq!(
        leaf_status(&root, &leaf, std::slice::from_ref(&crl), before).await,
        Status::Ok
    );
    // Signed after: revoked; and without an authentic signing time: revoked.
    let after = Some(now - Duration::days(5));
    assert!(matches!(
        leaf_status(&root, &leaf, std::slice::from_ref(&crl), after).await,
        Status::Revoked(Some(_))
    ));
    assert!(matches!(
        leaf_status(&root, &leaf, &[crl], None).await,
        Status::Revoked(Some(_))
    ));
    // No invalidity date: revoked whatever the signing time (the revocation date does not
    // count, as in notation-core-go).
    let crl = make_crl(&root, &root, &revoking(vec![Revoked::serial(0x1234)]));
    assert!(matches!(
        leaf_status(&root, &leaf, &[crl], before).await,
        Status::Revoked(Some(_))
    ));
}

#[tokio::test]
async fn certificate_hold_and_remove_from_crl() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let now = OffsetDateTime::now_utc();
    let hold = |at| Revoked {
        at,
        reason: Some(HOLD),
        ..Revoked::serial(0x1234)
    };
    let remove = |at| Revoked {
        at,
        reason: Some(REMOVE),
        ..Revoked::serial(0x1234)
    };
    let crl = make_crl(&root, &root, &revoking(vec![hold(now - Duration::days(2))]));
    assert!(matches!(
        leaf_status(&root, &leaf, &[crl], None).await,
        Status::Revoked(_)
    ));
    // Released later: not revoked; a hold after the release: revoked again.
    let crl = make_crl(
        &root,
        &root,
        &revoking(vec![
            hold(now - Duration::days(2)),
            remove(now - Duration::days(1)),
        ]),
    );
    assert_eq!(leaf_status(&root, &leaf, &[crl], None).await, Status::Ok);
    let crl = make_crl(
        &root,
        &root,
        &revoking(vec![
            remove(now - Duration::days(2)),
            hold(now - Duration::days(1)),
        ]),
    );
    assert!(matches!(
        leaf_status(&root, &leaf, &[crl], None).await,
        Status::Revoked(_)
    ));
}

#[tokio::test]
async fn critical_extensions_it_does_not_understand() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let odd = || ext("1.2.3.4.5", true, vec![0x05, 0x00]);
    let crl = make_crl(
        &root,
        &root,
        &CrlSpec {
            extensions: vec![odd()],
            ..CrlSpec::default()
        },
    );
    let status = leaf_status(&root, &leaf, &[crl], None).await;
    assert!(
        is_unknown_with(
            &status,
            "unsupported critical extension found in CRL: 1.2.3.4.5"
        ),
        "{status:?}"
    );
    // On an entry: only when the entry is the certificate's.
    let entry = |serial| Revoked {
        extra: vec![odd()],
        ..Revoked::serial(serial)
    };
    let crl = make_crl(&root, &root, &revoking(vec![entry(0x77)]));
    assert_eq!(leaf_status(&root, &leaf, &[crl], None).await, Status::Ok);
    let crl = make_crl(&root, &root, &revoking(vec![entry(0x1234)]));
    let status = leaf_status(&root, &leaf, &[crl], None).await;
    assert!(
        is_unknown_with(&status, "unsupported critical extension"),
        "{status:?}"
    );
    // A non-critical unknown extension is fine.
    let crl = make_crl(
        &root,
        &root,
        &CrlSpec {
            extensions: vec![ext("1.2.3.4.5", false, vec![0x05, 0x00])],
            ..CrlSpec::default()
        },
    );
    assert_eq!(leaf_status(&root, &leaf, &[crl], None).await, Status::Ok);
}

#[tokio::test]
async fn crls_that_do_not_validate() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let stranger = Ca::root("stranger");
    // Signed by another key under the issuer's name.
    let forged = make_crl(&root, &stranger, &CrlSpec::default());
    let status = leaf_status(&root, &leaf, &[forged], None).await;
    assert!(is_unknown_with(&status, "invalid signature"), "{status:?}");
    // Expired, and without nextUpdate.
    let now = OffsetDateTime::now_utc();
    let expired = make_crl(
        &root,
        &root,
        &CrlSpec {
            this: now - Duration::days(9),
            next: Some(now - Duration::days(1)),
            ..CrlSpec::default()
        },
    );
    let status = leaf_status(&root, &leaf, &[expired], None).await;
    assert!(is_unknown_with(&status, "expired CRL"), "{status:?}");
    let open = make_crl(
        &root,
        &root,
        &CrlSpec {
            next: None,
            ..CrlSpec::default()
        },
    );
    let status = leaf_status(&root, &leaf, &[open], None).await;
    assert!(
        is_unknown_with(&status, "NextUpdate is not set"),
        "{status:?}"
    );
    // Of the operator's CRLs the newest one that validates is used.
    let old = make_crl(
        &root,
        &root,
        &CrlSpec {
            this: now - Duration::days(3),
            ..revoking(vec![Revoked::serial(0x1234)])
        },
    );
    let new = make_crl(&root, &root, &CrlSpec::default());
    let forged = make_crl(&root, &stranger, &revoking(vec![Revoked::serial(0x1234)]));
    assert_eq!(
        leaf_status(&root, &leaf, &[old, forged, new], None).await,
        Status::Ok
    );
}

#[tokio::test]
async fn an_issuer_without_crl_sign_cannot_sign_crls() {
    let root = Ca::root("root");
    let intermediate = root.issue(
        "intermediate",
        &Spec {
            ca: true,
            key_usages: Some(vec![rcgen::KeyUsagePurpose::KeyCertSign]),
            ..Spec::default()
        },
    );
    let leaf = intermediate.issue("leaf", &leaf_spec());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.crl");
    std::fs::write(
        &path,
        make_crl(&intermediate, &intermediate, &CrlSpec::default()),
    )
    .unwrap();
    let checker = Checker::new(Config {
        crls: vec![path],
        ..config(false)
    })
    .unwrap();
    let statuses = checker
        .check(
            &[leaf.der.clone(), intermediate.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await;
    assert!(
        is_unknown_with(&statuses[0], "without cRLSign"),
        "{statuses:?}"
    );
    // The intermediate names no distribution point: nothing to check.
    assert_eq!(statuses[1], Status::NonRevokable);
}

#[tokio::test]
async fn operator_delta_crls_go_with_their_base() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let base = make_crl(
        &root,
        &root,
        &CrlSpec {
            number: Some(10),
            extensions: vec![ext(
                "2.5.29.46",
                false,
                dp_der(&["http://crl.test/delta.crl"]),
            )],
            ..CrlSpec::default()
        },
    );
    let delta = |number, base_number, entries| {
        make_crl(
            &root,
            &root,
            &CrlSpec {
                number: Some(number),
                extensions: vec![ext("2.5.29.27", true, integer_der(base_number))],
                entries,
                ..CrlSpec::default()
            },
        )
    };
    let revokes = vec![Revoked::serial(0x1234)];
    assert!(matches!(
        leaf_status(
            &root,
            &leaf,
            &[base.clone(), delta(11, 10, revokes.clone())],
            None
        )
        .await,
        Status::Revoked(_)
    ));
    assert_eq!(
        leaf_status(
            &root,
            &leaf,
            &[base.clone(), delta(11, 10, Vec::new())],
            None
        )
        .await,
        Status::Ok
    );
    // A delta for a later base does not fit; the base then wants its delta fetched.
    let status = leaf_status(&root, &leaf, &[base.clone(), delta(12, 11, revokes)], None).await;
    assert!(
        is_unknown_with(&status, "delta CRL not fetched: fetching is off"),
        "{status:?}"
    );
    // A hold in the base released by the delta.
    let held = make_crl(
        &root,
        &root,
        &CrlSpec {
            number: Some(10),
            entries: vec![Revoked {
                reason: Some(HOLD),
                at: OffsetDateTime::now_utc() - Duration::days(2),
                ..Revoked::serial(0x1234)
            }],
            ..CrlSpec::default()
        },
    );
    let release = delta(
        11,
        10,
        vec![Revoked {
            reason: Some(REMOVE),
            ..Revoked::serial(0x1234)
        }],
    );
    assert_eq!(
        leaf_status(&root, &leaf, &[held, release], None).await,
        Status::Ok
    );
}

#[tokio::test]
async fn a_crl_limited_to_ca_certificates_does_not_clear_a_leaf() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    // IssuingDistributionPoint { onlyContainsCACerts [2] TRUE }
    let idp = tlv(0x30, &[0x82, 0x01, 0xff]);
    let crl = make_crl(
        &root,
        &root,
        &CrlSpec {
            extensions: vec![ext("2.5.29.28", true, idp)],
            ..CrlSpec::default()
        },
    );
    let status = leaf_status(&root, &leaf, &[crl], None).await;
    // Not the leaf's CRL: nothing else may be fetched.
    assert!(
        is_unknown_with(&status, "not fetched: fetching is off"),
        "{status:?}"
    );
}

#[tokio::test]
async fn certificates_without_revocation_information_are_non_revokable() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &Spec::default());
    let checker = Checker::new(config(false)).unwrap();
    let statuses = checker
        .check(
            &[leaf.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await;
    assert_eq!(statuses, vec![Status::NonRevokable, Status::NonRevokable]);
    // A lone self-signed certificate is its own root.
    let statuses = checker
        .check(std::slice::from_ref(&root.der), Purpose::CodeSigning, None)
        .await;
    assert_eq!(statuses, vec![Status::NonRevokable]);
}

#[tokio::test]
async fn chains_that_are_not_leaf_to_root_are_unknown_throughout() {
    let root = Ca::root("root");
    let leaf = root.issue("leaf", &leaf_spec());
    let other = Ca::root("other");
    let checker = Checker::new(config(false)).unwrap();
    for chain in [
        vec![root.der.clone(), leaf.der.clone()],
        vec![leaf.der.clone(), other.der.clone()],
        vec![leaf.der.clone()],
        vec![b"not a certificate".to_vec(), root.der.clone()],
        Vec::new(),
        vec![root.der.clone(); 11],
    ] {
        let statuses = checker.check(&chain, Purpose::CodeSigning, None).await;
        assert_eq!(statuses.len(), chain.len());
        for s in statuses {
            assert!(is_unknown_with(&s, "invalid chain"), "{s:?}");
        }
    }
    // A leaf whose extended key usage does not fit the purpose.
    let tsa = root.issue(
        "tsa",
        &Spec {
            eku: vec![rcgen::ExtendedKeyUsagePurpose::TimeStamping],
            ..Spec::default()
        },
    );
    let chain = [tsa.der.clone(), root.der.clone()];
    let statuses = checker.check(&chain, Purpose::CodeSigning, None).await;
    assert!(
        is_unknown_with(&statuses[0], "code signing"),
        "{statuses:?}"
    );
    let statuses = checker.check(&chain, Purpose::Timestamping, None).await;
    assert_eq!(statuses, vec![Status::NonRevokable, Status::NonRevokable]);
}

#[test]
fn operator_crl_files_are_read_at_construction() {
    let root = Ca::root("root");
    let dir = tempfile::tempdir().unwrap();
    let new = |paths: Vec<std::path::PathBuf>| {
        Checker::new(Config {
            crls: paths,
            ..config(false)
        })
    };
    let missing = new(vec![dir.path().join("missing.crl")]).unwrap_err();
    assert!(missing.0.contains("missing.crl"), "{missing}");
    let garbage = dir.path().join("garbage.crl");
    std::fs::write(&garbage, b"\x30\x03\x01\x01\xff").unwrap();
    assert!(new(vec![garbage]).unwrap_err().0.contains("malformed crl"));
    let text = dir.path().join("text.pem");
    std::fs::write(&text, b"hello").unwrap();
    assert!(new(vec![text]).is_err());
    // PEM with two CRLs.
    let pem = dir.path().join("two.pem");
    let block = |der: &[u8]| {
        use base64::Engine as _;
        format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    };
    let a = make_crl(&root, &root, &CrlSpec::default());
    std::fs::write(&pem, format!("{}{}", block(&a), block(&a))).unwrap();
    let checker = new(vec![pem]).unwrap();
    assert!(format!("{checker:?}").contains("operator_crls: 2"));
}

#[tokio::test]
async fn p384_and_sha384_signatures_verify() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "p384");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let root = Ca { der, key, params };
    let leaf = root.issue("leaf", &Spec::default());
    let checker = Checker::new(config(false)).unwrap();
    let statuses = checker
        .check(
            &[leaf.der.clone(), root.der.clone()],
            Purpose::CodeSigning,
            None,
        )
        .await;
    assert_eq!(statuses, vec![Status::NonRevokable, Status::NonRevokable]);
}

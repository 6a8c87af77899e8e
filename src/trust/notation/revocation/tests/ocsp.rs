//! OCSP against a loopback responder with responses made in the test (ocsp.go
//! `checkStatusFromServer`, x/crypto `ParseResponseForCert`, RFC 6960 section 4.2.2.2).

use der::Decode;
use time::{Duration, OffsetDateTime};

use super::support::*;
use crate::trust::notation::revocation::{Purpose, Status};

const SERIAL: u64 = 0x4242;

struct Pki {
    root: Ca,
    leaf: Ca,
    server: Server,
}

impl Pki {
    async fn new(with_crl: bool) -> Pki {
        let root = Ca::root("ocsp root");
        let leaf = root.issue(
            "ocsp leaf",
            &Spec {
                serial: Some(SERIAL),
                ocsp: vec!["http://ocsp.test/ocsp".to_owned()],
                crl: if with_crl {
                    vec!["http://crl.test/leaf.crl".to_owned()]
                } else {
                    Vec::new()
                },
                ..Spec::default()
            },
        );
        Pki {
            root,
            leaf,
            server: Server::start().await,
        }
    }

    fn respond(&self, body: Vec<u8>) {
        self.server.set("/ocsp", Reply::Bytes(body));
    }

    async fn status(&self, signing_time: Option<OffsetDateTime>) -> Status {
        let statuses = checker(config(true), Some(&self.server))
            .check(
                &[self.leaf.der.clone(), self.root.der.clone()],
                Purpose::CodeSigning,
                signing_time,
            )
            .await;
        assert_eq!(statuses[1], Status::NonRevokable);
        statuses[0].clone()
    }

    fn responder(&self, eku: bool) -> Ca {
        self.root.issue(
            "responder",
            &Spec {
                eku: if eku {
                    vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning]
                } else {
                    vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning]
                },
                ..Spec::default()
            },
        )
    }
}

fn unknown_with(status: &Status, text: &str) -> bool {
    matches!(status, Status::Unknown(why) if why.contains(text))
}

#[tokio::test]
async fn good_from_the_issuer_and_the_request_it_answers() {
    let pki = Pki::new(false).await;
    pki.respond(make_ocsp(
        &pki.root,
        &pki.root,
        &[],
        &OcspSpec::good(SERIAL),
    ));
    assert_eq!(pki.status(None).await, Status::Ok);
    // A GET to <responder>/<url-escaped base64 of the request> with a SHA-1 CertID.
    let (target, _) = pki.server.last.lock().unwrap().clone().unwrap();
    let encoded = target.strip_prefix("/ocsp/").unwrap();
    let encoded = encoded
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let request = x509_ocsp::OcspRequest::from_der(&der).unwrap();
    let cert_id = &request.tbs_request.request_list[0].req_cert;
    assert_eq!(cert_id.hash_algorithm.oid.to_string(), "1.3.14.3.2.26");
    assert_eq!(cert_id.serial_number.as_bytes(), &[0x42, 0x42]);
    assert!(request.optional_signature.is_none());
}

#[tokio::test]
async fn good_from_a_delegated_responder_and_with_a_sha256_cert_id() {
    let pki = Pki::new(false).await;
    let responder = pki.responder(true);
    pki.respond(make_ocsp(
        &pki.root,
        &responder,
        &[&responder.der],
        &OcspSpec::good(SERIAL),
    ));
    assert_eq!(pki.status(None).await, Status::Ok);
    let spec = OcspSpec {
        hash: "2.16.840.1.101.3.4.2.1",
        ..OcspSpec::good(SERIAL)
    };
    pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
    assert_eq!(pki.status(None).await, Status::Ok);
}

#[tokio::test]
async fn revoked_and_the_invalidity_date() {
    let pki = Pki::new(false).await;
    let at = OffsetDateTime::now_utc() - Duration::days(3);
    pki.respond(make_ocsp(
        &pki.root,
        &pki.root,
        &[],
        &OcspSpec::revoked(SERIAL, at),
    ));
    assert_eq!(
        pki.status(None).await,
        Status::Revoked(Some(
            OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap()
        ))
    );
    let spec = OcspSpec {
        single_extensions: vec![ext("2.5.29.24", false, generalized_der(at))],
        ..OcspSpec::revoked(SERIAL, at)
    };
    pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
    // Signed before the invalidity date: good then. After it, or with no signing time: revoked.
    assert_eq!(pki.status(Some(at - Duration::days(1))).await, Status::Ok);
    assert!(matches!(
        pki.status(Some(at + Duration::days(1))).await,
        Status::Revoked(_)
    ));
    assert!(matches!(pki.status(None).await, Status::Revoked(_)));
}

#[tokio::test]
async fn unknown_status_falls_back_to_crls() {
    let pki = Pki::new(false).await;
    let spec = OcspSpec {
        status: x509_ocsp::CertStatus::unknown(),
        ..OcspSpec::good(SERIAL)
    };
    pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
    let status = pki.status(None).await;
    assert!(
        unknown_with(&status, "unknown status via OCSP"),
        "{status:?}"
    );

    let pki = Pki::new(true).await;
    pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
    pki.server.set(
        "/leaf.crl",
        Reply::Bytes(make_crl(&pki.root, &pki.root, &CrlSpec::default())),
    );
    assert_eq!(pki.status(None).await, Status::Ok);
    assert_eq!(pki.server.hits("/leaf.crl"), 1);
    // A revoking CRL after an unknown OCSP answer.
    let pki2 = Pki::new(true).await;
    pki2.respond(make_ocsp(&pki2.root, &pki2.root, &[], &spec));
    let revoking = CrlSpec {
        entries: vec![Revoked::serial(SERIAL)],
        ..CrlSpec::default()
    };
    pki2.server.set(
        "/leaf.crl",
        Reply::Bytes(make_crl(&pki2.root, &pki2.root, &revoking)),
    );
    assert!(matches!(pki2.status(None).await, Status::Revoked(_)));
}

#[tokio::test]
async fn bad_signatures_and_wrong_responders() {
    let pki = Pki::new(false).await;
    let stranger = Ca::root("stranger");
    let good = OcspSpec::good(SERIAL);
    // Signed by a key that is not the issuer's, with no certificate.
    pki.respond(make_ocsp(&pki.root, &stranger, &[], &good));
    let status = pki.status(None).await;
    assert!(unknown_with(&status, "bad OCSP signature"), "{status:?}");
    // A delegated responder without id-kp-OCSPSigning.
    let no_eku = pki.responder(false);
    pki.respond(make_ocsp(&pki.root, &no_eku, &[&no_eku.der], &good));
    let status = pki.status(None).await;
    assert!(
        unknown_with(&status, "lacks id-kp-OCSPSigning"),
        "{status:?}"
    );
    // A responder certified by another CA.
    let foreign = stranger.issue(
        "foreign responder",
        &Spec {
            eku: vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning],
            ..Spec::default()
        },
    );
    pki.respond(make_ocsp(&pki.root, &foreign, &[&foreign.der], &good));
    let status = pki.status(None).await;
    assert!(
        unknown_with(&status, "not issued by the issuer"),
        "{status:?}"
    );
    // An answer about another certificate, or the same serial under another issuer.
    pki.respond(make_ocsp(
        &pki.root,
        &pki.root,
        &[],
        &OcspSpec::good(SERIAL + 1),
    ));
    let status = pki.status(None).await;
    assert!(unknown_with(&status, "no response matching"), "{status:?}");
    pki.respond(make_ocsp(&stranger, &pki.root, &[], &good));
    let status = pki.status(None).await;
    assert!(unknown_with(&status, "no response matching"), "{status:?}");
}

#[tokio::test]
async fn stale_future_and_refused_answers() {
    let pki = Pki::new(false).await;
    let now = OffsetDateTime::now_utc();
    for (spec, text) in [
        (
            OcspSpec {
                this: now - Duration::days(3),
                next: Some(now - Duration::days(1)),
                ..OcspSpec::good(SERIAL)
            },
            "expired OCSP response",
        ),
        (
            OcspSpec {
                next: None,
                ..OcspSpec::good(SERIAL)
            },
            "expired OCSP response",
        ),
        (
            OcspSpec {
                this: now + Duration::hours(2),
                next: Some(now + Duration::days(2)),
                ..OcspSpec::good(SERIAL)
            },
            "in the future",
        ),
        (
            OcspSpec {
                response_status: x509_ocsp::OcspResponseStatus::TryLater,
                ..OcspSpec::good(SERIAL)
            },
            "OCSP try later",
        ),
        (
            OcspSpec {
                single_extensions: vec![ext("1.2.3.4", true, vec![0x05, 0x00])],
                ..OcspSpec::good(SERIAL)
            },
            "unsupported critical extension",
        ),
    ] {
        pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
        let status = pki.status(None).await;
        assert!(unknown_with(&status, text), "{text}: {status:?}");
    }
    pki.respond(b"\x30\x03\x0a\x01\x00garbage".to_vec());
    assert!(unknown_with(
        &pki.status(None).await,
        "malformed OCSP response"
    ));
    pki.server.set("/ocsp", Reply::Status(500));
    assert!(unknown_with(&pki.status(None).await, "status code: 500"));
}

#[tokio::test]
async fn the_e2e_ocsp_fixture_chain_with_an_unreachable_responder() {
    let Some(dir) = conformance() else { return };
    let dir = dir.join("notation/test/e2e/testdata/config/ocsp");
    let leaf = crate::trust::x509::pem_certificates(&std::fs::read(dir.join("leaf.crt")).unwrap());
    let root = crate::trust::x509::pem_certificates(&std::fs::read(dir.join("root.crt")).unwrap());
    let chain = vec![leaf[0].clone(), root[0].clone()];
    let server = Server::start().await;
    let statuses = checker(config(true), Some(&server))
        .check(&chain, Purpose::CodeSigning, None)
        .await;
    assert!(
        unknown_with(&statuses[0], "status code: 404"),
        "{statuses:?}"
    );
    // Asked at http://localhost:10087/<request>.
    let (target, _) = server.last.lock().unwrap().clone().unwrap();
    assert!(target.starts_with("/M") && target.len() > 80, "{target}");
    assert_eq!(statuses[1], Status::NonRevokable);
}

#[tokio::test]
async fn answers_are_reused_within_their_validity_and_judged_again() {
    let pki = Pki::new(false).await;
    let at = OffsetDateTime::now_utc() - Duration::days(3);
    let spec = OcspSpec {
        single_extensions: vec![ext("2.5.29.24", false, generalized_der(at))],
        ..OcspSpec::revoked(SERIAL, at)
    };
    pki.respond(make_ocsp(&pki.root, &pki.root, &[], &spec));
    let checker = checker(config(true), Some(&pki.server));
    let chain = [pki.leaf.der.clone(), pki.root.der.clone()];
    let revoked = checker.check(&chain, Purpose::CodeSigning, None).await;
    assert!(matches!(revoked[0], Status::Revoked(_)));
    // The kept response is judged again for another signing time.
    let earlier = Some(at - Duration::days(1));
    let good = checker.check(&chain, Purpose::CodeSigning, earlier).await;
    assert_eq!(good[0], Status::Ok);
    assert_eq!(pki.server.hits("/ocsp"), 1);
}

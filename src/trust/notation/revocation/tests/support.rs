//! Test peers and test PKI: a loopback HTTP server that can be made to misbehave, CAs and
//! certificates made with rcgen, and CRLs and OCSP responses encoded with x509-cert and
//! x509-ocsp and signed with those CAs' keys.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use der::{asn1::OctetString, Decode, Encode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SigningKey,
};
use time::OffsetDateTime;
use x509_cert::{
    ext::{Extension, Extensions},
    name::Name,
    spki::AlgorithmIdentifierOwned,
};

use crate::trust::notation::revocation::{fetch::Rewrite, Checker, Config};

// === conformance fixtures ===

/// The conformance folder, or `None` (with a skip message) when it is absent.
pub fn conformance() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

/// The notation e2e CRL scenario directory (`config/crl`), or `None` with a skip message.
pub fn crl_fixtures() -> Option<PathBuf> {
    Some(conformance()?.join("notation/test/e2e/testdata/config/crl"))
}

/// The e2e CRL chain: leaf (serial 0x1000) → IntermediateCA (0x1002) → RootCA.
pub fn e2e_chain(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let pem = std::fs::read(dir.join("certchain_with_crl.pem")).unwrap();
    let chain = crate::trust::x509::pem_certificates(&pem);
    assert_eq!(chain.len(), 3);
    chain
}

pub fn checker(config: Config, server: Option<&Server>) -> Checker {
    let checker = Checker::new(config).unwrap();
    match server {
        Some(server) => checker.rewriting(server.rewrite()),
        None => checker,
    }
}

pub fn config(fetch: bool) -> Config {
    Config {
        fetch,
        timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

pub fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

// === a loopback HTTP server ===

/// How the server answers a path.
#[derive(Clone)]
pub enum Reply {
    Bytes(Vec<u8>),
    /// The bytes, after a delay.
    Slow(Duration, Vec<u8>),
    /// Accepts the request and never answers.
    Stall,
    /// A 200 whose body never ends.
    Endless,
    Status(u16),
    Redirect(String),
}

/// The target and body of a request the server saw.
pub type Request = (String, Vec<u8>);

/// A loopback server answering by the first segment of the path (`/ocsp/<request>` is
/// `/ocsp`), counting requests per route, and keeping the last request target and body.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    pub last: Arc<Mutex<Option<Request>>>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    pub fn serve(listener: tokio::net::TcpListener) -> Server {
        let server = Server {
            addr: listener.local_addr().unwrap(),
            routes: Arc::default(),
            hits: Arc::default(),
            last: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    pub fn set(&self, route: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(route.to_owned(), reply);
    }

    pub fn hits(&self, route: &str) -> usize {
        self.hits.lock().unwrap().get(route).copied().unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends every URL to this server, path and query kept.
    pub fn rewrite(&self) -> Rewrite {
        let addr = self.addr;
        Arc::new(move |url: &str| {
            let parsed = reqwest::Url::parse(url).unwrap();
            let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
            format!("http://{addr}{}{query}", parsed.path())
        })
    }

    async fn answer(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<BoxBody<Bytes, Infallible>> {
        let path = req.uri().path().to_owned();
        let route = format!(
            "/{}",
            path.trim_start_matches('/').split('/').next().unwrap_or("")
        );
        let target = req.uri().to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec());
        *self.last.lock().unwrap() = Some((target, body.unwrap_or_default()));
        *self.hits.lock().unwrap().entry(route.clone()).or_default() += 1;
        let reply = self.routes.lock().unwrap().get(&route).cloned();
        let full = |status: u16, bytes: Vec<u8>| {
            hyper::Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(bytes)).boxed())
                .unwrap()
        };
        match reply {
            None => full(404, Vec::new()),
            Some(Reply::Bytes(b)) => full(200, b),
            Some(Reply::Slow(delay, b)) => {
                tokio::time::sleep(delay).await;
                full(200, b)
            }
            Some(Reply::Stall) => std::future::pending().await,
            Some(Reply::Status(code)) => full(code, Vec::new()),
            Some(Reply::Redirect(to)) => hyper::Response::builder()
                .status(302)
                .header("location", to)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap(),
            Some(Reply::Endless) => {
                let chunk = Bytes::from(vec![0x30u8; 64 * 1024]);
                let stream = futures_util::stream::repeat(chunk)
                    .map(|c| Ok::<_, Infallible>(hyper::body::Frame::data(c)));
                hyper::Response::builder()
                    .status(200)
                    .body(BodyExt::boxed(StreamBody::new(stream)))
                    .unwrap()
            }
        }
    }
}

use futures_util::StreamExt as _;

// === test PKI ===

/// A certificate with its key and parameters, able to issue and sign.
pub struct Ca {
    pub der: Vec<u8>,
    pub key: KeyPair,
    pub params: CertificateParams,
}

/// What a certificate made by [`Ca::issue`] has.
#[derive(Default, Clone)]
pub struct Spec {
    pub ca: bool,
    pub serial: Option<u64>,
    pub ocsp: Vec<String>,
    pub crl: Vec<String>,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    /// Key usages; `None` gives a CA keyCertSign and cRLSign, a leaf digitalSignature.
    pub key_usages: Option<Vec<KeyUsagePurpose>>,
    pub not_after: Option<OffsetDateTime>,
}

impl Ca {
    pub fn root(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = params(
            cn,
            &Spec {
                ca: true,
                ..Spec::default()
            },
        );
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Ca { der, key, params }
    }

    pub fn issue(&self, cn: &str, spec: &Spec) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = params(cn, spec);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
        Ca { der, key, params }
    }

    /// The DER subject name.
    pub fn name(&self) -> Vec<u8> {
        let (_, cert) = <x509_parser::prelude::X509Certificate as x509_parser::prelude::FromDer<
            _,
        >>::from_der(&self.der)
        .unwrap();
        cert.subject().as_raw().to_vec()
    }

    pub fn key_bits(&self) -> Vec<u8> {
        let (_, cert) = <x509_parser::prelude::X509Certificate as x509_parser::prelude::FromDer<
            _,
        >>::from_der(&self.der)
        .unwrap();
        cert.public_key().subject_public_key.data.to_vec()
    }

    /// ECDSA P-256 with SHA-256 over `msg`, DER.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key.sign(msg).unwrap()
    }
}

fn params(cn: &str, spec: &Spec) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = spec
        .not_after
        .unwrap_or(OffsetDateTime::now_utc() + time::Duration::days(30));
    if spec.ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params.key_usages = spec.key_usages.clone().unwrap_or_else(|| match spec.ca {
        true => vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        false => vec![KeyUsagePurpose::DigitalSignature],
    });
    params.extended_key_usages = spec.eku.clone();
    if let Some(serial) = spec.serial {
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
    }
    if !spec.crl.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: spec.crl.clone(),
        }];
    }
    if !spec.ocsp.is_empty() {
        // AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription { id-ad-ocsp, URI }
        let descs: Vec<u8> = spec
            .ocsp
            .iter()
            .flat_map(|u| {
                let mut d = oid_der("1.3.6.1.5.5.7.48.1");
                d.extend(tlv(0x86, u.as_bytes()));
                tlv(0x30, &d)
            })
            .collect();
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                tlv(0x30, &descs),
            ));
    }
    params
}

// === DER pieces ===

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub fn oid_der(oid: &str) -> Vec<u8> {
    der::asn1::ObjectIdentifier::new_unwrap(oid)
        .to_der()
        .unwrap()
}

pub fn integer_der(n: u64) -> Vec<u8> {
    der::asn1::Uint::new(&n.to_be_bytes())
        .unwrap()
        .to_der()
        .unwrap()
}

pub fn generalized_der(t: OffsetDateTime) -> Vec<u8> {
    gtime(t).to_der().unwrap()
}

fn gtime(t: OffsetDateTime) -> der::asn1::GeneralizedTime {
    der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(t.unix_timestamp() as u64))
        .unwrap()
}

fn x509_time(t: OffsetDateTime) -> x509_cert::time::Time {
    let unix = Duration::from_secs(t.unix_timestamp() as u64);
    if t.year() < 2050 {
        x509_cert::time::Time::UtcTime(der::asn1::UtcTime::from_unix_duration(unix).unwrap())
    } else {
        x509_cert::time::Time::GeneralTime(
            der::asn1::GeneralizedTime::from_unix_duration(unix).unwrap(),
        )
    }
}

/// A CRLDistributionPoints (or freshestCRL) value with one point naming `uris`.
pub fn dp_der(uris: &[&str]) -> Vec<u8> {
    let names: Vec<u8> = uris.iter().flat_map(|u| tlv(0x86, u.as_bytes())).collect();
    tlv(0x30, &tlv(0x30, &tlv(0xa0, &tlv(0xa0, &names))))
}

pub fn ext(oid: &str, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: der::asn1::ObjectIdentifier::new_unwrap(oid),
        critical,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    }
}

// === CRLs ===

/// One revoked entry.
#[derive(Clone)]
pub struct Revoked {
    pub serial: u64,
    pub at: OffsetDateTime,
    pub reason: Option<u8>,
    pub invalidity: Option<OffsetDateTime>,
    pub extra: Vec<Extension>,
}

impl Revoked {
    pub fn serial(serial: u64) -> Revoked {
        Revoked {
            serial,
            at: OffsetDateTime::now_utc() - time::Duration::hours(1),
            reason: None,
            invalidity: None,
            extra: Vec::new(),
        }
    }
}

/// What a CRL made by [`make_crl`] has.
#[derive(Clone)]
pub struct CrlSpec {
    pub this: OffsetDateTime,
    pub next: Option<OffsetDateTime>,
    pub number: Option<u64>,
    pub entries: Vec<Revoked>,
    pub extensions: Vec<Extension>,
}

impl Default for CrlSpec {
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        CrlSpec {
            this: now - time::Duration::hours(1),
            next: Some(now + time::Duration::days(7)),
            number: Some(1),
            entries: Vec::new(),
            extensions: Vec::new(),
        }
    }
}

/// A CRL issued by `ca`'s name and signed by `signer`'s key.
pub fn make_crl(ca: &Ca, signer: &Ca, spec: &CrlSpec) -> Vec<u8> {
    let mut extensions: Extensions = Vec::new();
    if let Some(n) = spec.number {
        extensions.push(ext("2.5.29.20", false, integer_der(n)));
    }
    extensions.extend(spec.extensions.iter().cloned());
    let revoked: Vec<x509_cert::crl::RevokedCert> = spec
        .entries
        .iter()
        .map(|r| {
            let mut exts: Extensions = Vec::new();
            if let Some(reason) = r.reason {
                exts.push(ext("2.5.29.21", false, vec![0x0a, 0x01, reason]));
            }
            if let Some(inv) = r.invalidity {
                exts.push(ext("2.5.29.24", false, generalized_der(inv)));
            }
            exts.extend(r.extra.iter().cloned());
            x509_cert::crl::RevokedCert {
                serial_number: x509_cert::serial_number::SerialNumber::new(&r.serial.to_be_bytes())
                    .unwrap(),
                revocation_date: x509_time(r.at),
                crl_entry_extensions: (!exts.is_empty()).then_some(exts),
            }
        })
        .collect();
    let tbs = x509_cert::crl::TbsCertList {
        version: x509_cert::Version::V2,
        signature: ecdsa_sha256(),
        issuer: Name::from_der(&ca.name()).unwrap(),
        this_update: x509_time(spec.this),
        next_update: spec.next.map(x509_time),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: (!extensions.is_empty()).then_some(extensions),
    };
    let tbs_der = tbs.to_der().unwrap();
    let list = x509_cert::crl::CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: der::asn1::BitString::from_bytes(&signer.sign(&tbs_der)).unwrap(),
    };
    list.to_der().unwrap()
}

// === OCSP responses ===

/// What an OCSP response made by [`make_ocsp`] has.
#[derive(Clone)]
pub struct OcspSpec {
    pub status: x509_ocsp::CertStatus,
    pub this: OffsetDateTime,
    pub next: Option<OffsetDateTime>,
    pub serial: u64,
    /// Hash for the CertID (SHA-1 or SHA-256 OID).
    pub hash: &'static str,
    pub single_extensions: Vec<Extension>,
    pub response_status: x509_ocsp::OcspResponseStatus,
}

impl OcspSpec {
    pub fn good(serial: u64) -> OcspSpec {
        let now = OffsetDateTime::now_utc();
        OcspSpec {
            status: x509_ocsp::CertStatus::good(),
            this: now - time::Duration::minutes(10),
            next: Some(now + time::Duration::days(1)),
            serial,
            hash: "1.3.14.3.2.26",
            single_extensions: Vec::new(),
            response_status: x509_ocsp::OcspResponseStatus::Successful,
        }
    }

    pub fn revoked(serial: u64, at: OffsetDateTime) -> OcspSpec {
        OcspSpec {
            status: x509_ocsp::CertStatus::Revoked(x509_ocsp::RevokedInfo {
                revocation_time: x509_ocsp::OcspGeneralizedTime(gtime(at)),
                revocation_reason: None,
            }),
            ..OcspSpec::good(serial)
        }
    }
}

/// An OCSP response about `serial` issued under `issuer`, signed by `signer`, carrying
/// `certs`.
pub fn make_ocsp(issuer: &Ca, signer: &Ca, certs: &[&[u8]], spec: &OcspSpec) -> Vec<u8> {
    use x509_ocsp::*;
    if spec.response_status != OcspResponseStatus::Successful {
        return OcspResponse {
            response_status: spec.response_status,
            response_bytes: None,
        }
        .to_der()
        .unwrap();
    }
    let digest: &'static aws_lc_rs::digest::Algorithm = match spec.hash {
        "1.3.14.3.2.26" => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        _ => &aws_lc_rs::digest::SHA256,
    };
    let hash = |b: &[u8]| OctetString::new(aws_lc_rs::digest::digest(digest, b).as_ref()).unwrap();
    let single = SingleResponse {
        cert_id: CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: der::asn1::ObjectIdentifier::new_unwrap(spec.hash),
                parameters: Some(der::asn1::Null.into()),
            },
            issuer_name_hash: hash(&issuer.name()),
            issuer_key_hash: hash(&issuer.key_bits()),
            serial_number: x509_cert::serial_number::SerialNumber::new(&spec.serial.to_be_bytes())
                .unwrap(),
        },
        cert_status: spec.status,
        this_update: OcspGeneralizedTime(gtime(spec.this)),
        next_update: spec.next.map(|n| OcspGeneralizedTime(gtime(n))),
        single_extensions: (!spec.single_extensions.is_empty())
            .then(|| spec.single_extensions.clone()),
    };
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(
            OctetString::new(
                aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    &signer.key_bits(),
                )
                .as_ref(),
            )
            .unwrap(),
        ),
        produced_at: OcspGeneralizedTime(gtime(OffsetDateTime::now_utc())),
        responses: vec![single],
        response_extensions: None,
    };
    let tbs = data.to_der().unwrap();
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: ecdsa_sha256(),
        signature: der::asn1::BitString::from_bytes(&signer.sign(&tbs)).unwrap(),
        certs: (!certs.is_empty()).then(|| {
            certs
                .iter()
                .map(|c| x509_cert::Certificate::from_der(c).unwrap())
                .collect()
        }),
    };
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1"),
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

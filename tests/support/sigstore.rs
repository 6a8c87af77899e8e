//! A test Sigstore: a Fulcio-like CA issuing short-lived code-signing leaves, and Rekor log
//! keys signing entry timestamps, for the cosign keyless tests.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

/// The OIDC issuer and subject of the honest keyless signer.
pub const ISSUER: &str = "https://token.actions.example";
pub const SUBJECT: &str =
    "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0";

/// Fulcio's OIDC issuer extension (v2, a DER UTF8String).
const OID_ISSUER: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

/// A Fulcio-like CA: a P-384 root and a P-256 intermediate allowed to issue code-signing
/// certificates, with Fulcio's names.
pub struct Ca {
    pub root_pem: String,
    pub intermediate_pem: String,
    pub intermediate: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new() -> Ca {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut root = CertificateParams::default();
        root.distinguished_name = name("sigstore");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        root.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let root_cert = root.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root, root_key);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut inter = CertificateParams::default();
        inter.distinguished_name = name("sigstore-intermediate");
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        inter.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        inter.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        inter.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let inter_cert = inter.signed_by(&key, &root_issuer).unwrap();
        Ca {
            root_pem: root_cert.pem(),
            intermediate_pem: inter_cert.pem(),
            intermediate: Issuer::new(inter, key),
        }
    }

    /// A Fulcio leaf: empty subject, the SAN, code signing, the issuer extension, valid from
    /// `now + from` to `now + to` seconds.
    pub fn leaf(&self, san: &str, issuer: &str, from: i64, to: i64) -> (KeyPair, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::URI(san.try_into().unwrap())];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let mut der = vec![0x0c, u8::try_from(issuer.len()).unwrap()];
        der.extend_from_slice(issuer.as_bytes());
        p.custom_extensions = vec![CustomExtension::from_oid_content(OID_ISSUER, der)];
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::seconds(from);
        p.not_after = now + Duration::seconds(to);
        let cert = p.signed_by(&key, &self.intermediate).unwrap();
        (key, cert.pem())
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sigstore.dev");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A Rekor log key; its log ID is the SHA-256 of its DER public key.
pub struct Rekor {
    pub key: KeyPair,
}

impl Rekor {
    pub fn new() -> Rekor {
        Rekor {
            key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    pub fn log_id(&self) -> String {
        super::sha256_hex(&self.key.subject_public_key_info())
    }
}

/// What a trustgate configuration trusts for cosign: the test Sigstore (a CA and a Rekor key)
/// and a release key, written to files whose paths go into the YAML.
pub struct Trust {
    pub ca: Ca,
    pub rekor: Rekor,
    pub release: KeyPair,
    /// The files, as quoted YAML scalars: the Fulcio roots, the Rekor key, the release key.
    pub fulcio_roots: String,
    pub rekor_key: String,
    pub release_key: String,
    _files: TempDir,
}

impl Trust {
    /// A new Sigstore and release key. `with_intermediate` puts the CA's intermediate in the
    /// trusted Fulcio file beside the root (as Sigstore's trusted root has it), for signatures
    /// that carry the leaf alone.
    pub fn new(with_intermediate: bool) -> Trust {
        let files = tempfile::tempdir().unwrap();
        let (ca, rekor) = (Ca::new(), Rekor::new());
        let release = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let roots = if with_intermediate {
            format!("{}{}", ca.root_pem, ca.intermediate_pem)
        } else {
            ca.root_pem.clone()
        };
        let write = |name: &str, content: &str| {
            let path = files.path().join(name);
            std::fs::write(&path, content).unwrap();
            quoted(&path)
        };
        Trust {
            fulcio_roots: write("fulcio-root.pem", &roots),
            rekor_key: write("rekor.pub", &rekor.key.public_key_pem()),
            release_key: write("release.pub", &release.public_key_pem()),
            ca,
            rekor,
            release,
            _files: files,
        }
    }

    /// This Sigstore as a sigstore `trusted_root.json`: the CA (intermediate, then root) valid
    /// over `ca`, the Rekor key valid over `log` (start, end; `None`: open), no CT logs.
    pub fn trusted_root_json(
        &self,
        ca: (OffsetDateTime, Option<OffsetDateTime>),
        log: (OffsetDateTime, Option<OffsetDateTime>),
    ) -> String {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let der = |pem: &str| {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        };
        let rfc3339 = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let window = |(start, end): (OffsetDateTime, Option<OffsetDateTime>)| match end {
            Some(end) => serde_json::json!({"start": rfc3339(start), "end": rfc3339(end)}),
            None => serde_json::json!({"start": rfc3339(start)}),
        };
        let spki = self.rekor.key.subject_public_key_info();
        let log_id = hex::decode(self.rekor.log_id()).unwrap();
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": "https://rekor.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": window(log)},
                "logId": {"keyId": b64(&log_id)}
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(&der(&self.ca.intermediate_pem))},
                    {"rawBytes": b64(&der(&self.ca.root_pem))}
                ]},
                "validFor": window(ca)
            }],
            "ctlogs": [],
            "timestampAuthorities": []
        })
        .to_string()
    }

    /// The `keyless` section of a policy rule trusting this Sigstore for `identity` (a YAML
    /// flow mapping such as `{issuer: "...", subject: "..."}`), indented for a rule's keys.
    pub fn keyless_yaml(&self, identity: &str) -> String {
        format!(
            "      keyless:\n        fulcio_roots: {}\n        rekor_keys: [{}]\n        \
             identities:\n          - {identity}\n",
            self.fulcio_roots, self.rekor_key
        )
    }
}

fn quoted(path: &Path) -> String {
    serde_json::json!(path.to_str().unwrap()).to_string()
}

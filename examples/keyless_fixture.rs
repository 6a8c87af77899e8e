//! A keyless cosign signature for an image already in a registry, made offline: a stand-in
//! Sigstore (a Fulcio-like CA, root and intermediate, and a Rekor P-256 log key), its
//! `trusted_root.json`, and a sigstore v0.3 bundle for the image pushed the way cosign 3
//! attaches one on a registry without the referrers API (`specs/BUNDLE_SPEC.md` of
//! sigstore/cosign): the bundle blob, an OCI artifact manifest with the empty config and a
//! `subject`, and the referrers tag `sha256-<hex>` holding an index that lists it.
//!
//! The bundle is cosign's `signDigestBundle`: a DSSE envelope of an in-toto v1 statement
//! (predicate `https://sigstore.dev/cosign/sign/v1`) naming the digest, signed by a short-lived
//! leaf (empty subject, the SAN, code signing, Fulcio's issuer extension), and a Rekor v1
//! `dsse` 0.0.1 entry with a signed entry timestamp and an inclusion proof (a one-leaf tree,
//! RFC 9162) under a C2SP signed checkpoint. No CT log is in the root, so the leaf needs no SCT.
//!
//! For `bench/run` (section 10) and by hand:
//!
//! ```sh
//! cargo run --example keyless_fixture -- --out DIR --registry http://127.0.0.1:5000 \
//!     --repo bench/app --digest sha256:<hex>
//! ```
//!
//! It writes `DIR/trusted_root.json` and prints the identity a rule must name, and the
//! artifact manifest's digest. A fixture for benchmarks and tests: its keys live only in
//! this process, and the registry is spoken to over plain `http://`.

#[allow(dead_code)]
#[path = "../tests/support/sigstore.rs"]
mod sigstore;

#[allow(dead_code)]
#[path = "../tests/support/http.rs"]
mod http;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Parser;
use rcgen::{PublicKeyData, SigningKey};
use time::{format_description::well_known::Rfc3339, Duration, OffsetDateTime};

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
const INTOTO: &str = "application/vnd.in-toto+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const TRUSTED_ROOT: &str = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// The manifest types the subject is asked for with.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";
/// The log's name in its checkpoints.
const LOG_NAME: &str = "rekor.test";

#[derive(Parser)]
#[command(about = "Keyless-sign an image in a registry with a stand-in Sigstore")]
struct Args {
    /// Directory for trusted_root.json (created).
    #[arg(long)]
    out: PathBuf,
    /// The registry's base URL (http:// only).
    #[arg(long)]
    registry: String,
    /// The image's repository, e.g. bench/app.
    #[arg(long)]
    repo: String,
    /// The image manifest's digest, sha256:<hex>.
    #[arg(long)]
    digest: String,
    /// The OIDC issuer of the signer's certificate.
    #[arg(long, default_value = sigstore::ISSUER)]
    issuer: String,
    /// The signer's SAN (a URI).
    #[arg(long, default_value = sigstore::SUBJECT)]
    subject: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let hex = args
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("--digest {:?} is not sha256:<64 hex>", args.digest))?
        .to_owned();
    let base = args.registry.trim_end_matches('/').to_owned();
    let registry = Registry {
        base: base.clone(),
        repo: args.repo.clone(),
    };

    // The subject descriptor: the manifest's media type and length, as the registry has it.
    let subject = registry.get(&format!("manifests/{}", args.digest), ACCEPT)?;
    if sha256_hex(&subject.body) != hex {
        bail!(
            "the registry's manifest {} hashes to another digest",
            args.digest
        );
    }
    let subject_type = subject
        .header("content-type")
        .unwrap_or(OCI_MANIFEST)
        .to_owned();

    let ca = sigstore::Ca::new();
    let rekor = sigstore::Rekor::new();
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {:?}", args.out))?;
    let root_path = args.out.join("trusted_root.json");
    std::fs::write(&root_path, trusted_root(&ca, &rekor)?.to_string())
        .with_context(|| format!("write {root_path:?}"))?;

    let bundle = bundle(&ca, &rekor, &hex, &args.issuer, &args.subject)?;
    let empty = b"{}".to_vec();
    registry.push_blob(&empty)?;
    registry.push_blob(&bundle)?;
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {"mediaType": EMPTY, "digest": digest_of(&empty), "size": empty.len()},
        "layers": [{"mediaType": BUNDLE, "digest": digest_of(&bundle), "size": bundle.len()}],
        "subject": {"mediaType": subject_type, "digest": args.digest, "size": subject.body.len()},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": SIGN_PREDICATE}
    })
    .to_string()
    .into_bytes();
    let artifact_digest = digest_of(&artifact);
    registry.put_manifest(&artifact_digest, OCI_MANIFEST, &artifact)?;

    // The referrers tag index, extended with this artifact (as cosign 3.1.1 lists it: under
    // its config's media type).
    let tag = format!("sha256-{hex}");
    let mut manifests = match registry.get(&format!("manifests/{tag}"), OCI_INDEX) {
        Ok(current) => serde_json::from_slice::<serde_json::Value>(&current.body)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.push(serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "size": artifact.len(),
        "digest": artifact_digest,
        "artifactType": EMPTY
    }));
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests
    })
    .to_string();
    registry.put_manifest(&tag, OCI_INDEX, index.as_bytes())?;

    println!("trusted_root {}", root_path.display());
    println!("issuer {}", args.issuer);
    println!("subject {}", args.subject);
    println!("artifact {artifact_digest}");
    Ok(())
}

/// The stand-in Sigstore as a `dev.sigstore.trustroot.v1.TrustedRoot` (sigstore/protobuf-specs
/// `protos/sigstore_trustroot.proto`, protobuf JSON): one Rekor log and one CA whose chain
/// ends in its root, both valid from 30 days ago; no CT logs, no timestamp authorities.
fn trusted_root(ca: &sigstore::Ca, rekor: &sigstore::Rekor) -> Result<serde_json::Value> {
    let start = (OffsetDateTime::now_utc() - Duration::days(30)).format(&Rfc3339)?;
    let spki = rekor.key.subject_public_key_info();
    Ok(serde_json::json!({
        "mediaType": TRUSTED_ROOT,
        "tlogs": [{
            "baseUrl": format!("https://{LOG_NAME}"),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(&spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": start}},
            "logId": {"keyId": b64(&hex::decode(rekor.log_id())?)}
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
            "uri": "https://fulcio.test",
            "certChain": {"certificates": [
                {"rawBytes": b64(&pem_der(&ca.intermediate_pem)?)},
                {"rawBytes": b64(&pem_der(&ca.root_pem)?)}
            ]},
            "validFor": {"start": start}
        }],
        "ctlogs": [],
        "timestampAuthorities": []
    }))
}

/// A cosign v3 bundle for the manifest `hex`: the leaf was valid from an hour ago for ten
/// minutes, and the entry was integrated in that window (55 minutes ago).
fn bundle(
    ca: &sigstore::Ca,
    rekor: &sigstore::Rekor,
    hex: &str,
    issuer: &str,
    san: &str,
) -> Result<Vec<u8>> {
    // cosign `signDigestBundle`: an in-toto v1 statement over the digest.
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": hex}}],
        "predicateType": SIGN_PREDICATE,
        "predicate": {}
    })
    .to_string()
    .into_bytes();
    let (leaf_key, cert) = ca.leaf(san, issuer, -3600, -3000);
    let signature = leaf_key.sign(&pae(INTOTO, &statement))?;
    let envelope = serde_json::json!({
        "payload": b64(&statement),
        "payloadType": INTOTO,
        "signatures": [{"sig": b64(&signature)}]
    });

    // The `dsse` 0.0.1 entry Rekor v1 logs for this envelope, and its signed entry timestamp
    // over the canonical JSON of (body, integratedTime, logID, logIndex).
    let integrated = OffsetDateTime::now_utc().unix_timestamp() - 3300;
    let log_id = rekor.log_id();
    let body = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": sha256_hex(envelope.to_string().as_bytes())},
            "payloadHash": {"algorithm": "sha256", "value": sha256_hex(&statement)},
            "signatures": [{"signature": b64(&signature), "verifier": b64(cert.as_bytes())}]
        }
    })
    .to_string();
    let body_b64 = b64(body.as_bytes());
    let canonical = format!(
        r#"{{"body":"{body_b64}","integratedTime":{integrated},"logID":"{log_id}","logIndex":42}}"#
    );
    let set = rekor.key.sign(canonical.as_bytes())?;

    // The entry as the one leaf of a tree of size 1 (RFC 9162 2.1.1: the root is the leaf
    // hash, SHA-256(0x00 || body)), under a C2SP signed note by the log key (key hint: the
    // first 4 bytes of the log ID).
    let mut leaf_input = vec![0u8];
    leaf_input.extend_from_slice(body.as_bytes());
    let leaf = hex::decode(sha256_hex(&leaf_input))?;
    let text = format!("{LOG_NAME} - 1\n1\n{}\n", b64(&leaf));
    let note_sig = rekor.key.sign(text.as_bytes())?;
    let mut hinted = hex::decode(&log_id)?[..4].to_vec();
    hinted.extend_from_slice(&note_sig);
    let checkpoint = format!("{text}\n\u{2014} {LOG_NAME} {}\n", b64(&hinted));
    let entry = serde_json::json!({
        "logIndex": "42",
        "logId": {"keyId": b64(&hex::decode(&log_id)?)},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
        "integratedTime": integrated.to_string(),
        "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
        "inclusionProof": {"logIndex": "0", "rootHash": b64(&leaf), "treeSize": "1",
            "hashes": [], "checkpoint": {"envelope": checkpoint}},
        "canonicalizedBody": body_b64
    });
    Ok(serde_json::json!({
        "mediaType": BUNDLE,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(&pem_der(&cert)?)},
            "tlogEntries": [entry]
        },
        "dsseEnvelope": envelope
    })
    .to_string()
    .into_bytes())
}

/// One repository of a registry, spoken to with the distribution API.
struct Registry {
    base: String,
    repo: String,
}

impl Registry {
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repo)
    }

    /// GET `path` (under the repository), 200 only.
    fn get(&self, path: &str, accept: &str) -> Result<http::HttpResponse> {
        let url = self.url(path);
        let r = http::request("GET", &url, &[("Accept", accept)], b"").map_err(|e| anyhow!(e))?;
        if r.status != 200 {
            bail!("GET {url}: {}", r.summary());
        }
        Ok(r)
    }

    /// A monolithic upload: POST, then PUT of the bytes with their digest.
    fn push_blob(&self, bytes: &[u8]) -> Result<()> {
        let url = self.url("blobs/uploads/");
        let started = http::request("POST", &url, &[], b"").map_err(|e| anyhow!(e))?;
        if started.status != 202 {
            bail!("POST {url}: {}", started.summary());
        }
        let location = started
            .header("location")
            .ok_or_else(|| anyhow!("POST {url}: no Location"))?;
        let location = if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", digest_of(bytes));
        let done = http::request(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )
        .map_err(|e| anyhow!(e))?;
        if done.status != 201 {
            bail!("PUT {put}: {}", done.summary());
        }
        Ok(())
    }

    fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = self.url(&format!("manifests/{reference}"));
        let r = http::request("PUT", &url, &[("Content-Type", media_type)], bytes)
            .map_err(|e| anyhow!(e))?;
        if r.status != 201 {
            bail!("PUT {url}: {}", r.summary());
        }
        Ok(())
    }
}

/// DSSE v1 pre-authentication encoding (secure-systems-lab/dsse `protocol.md`).
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Used by the `sigstore` module for log IDs.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pem_der(pem: &str) -> Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

//! cosign's signature wire format, for registries without the referrers API: a
//! simple-signing payload, layers annotated with the signature, and the manifest under the
//! tag `sha256-<hex>.sig`, pushed with the distribution API.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use super::oci::{push_blob, Blob, OCI_CONFIG, OCI_MANIFEST};
use super::{run_bounded, Registry};

/// The upstream's name in rule patterns and signed payloads.
pub const REGISTRY: &str = "registry.test";
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A trustgate configuration body (for [`super::proxy::Proxy::start`]) with `upstream_url` as
/// [`REGISTRY`], denying by default, with `rules` (YAML list items indented for `rules:`).
pub fn config(upstream_url: &str, rules: &[String]) -> String {
    format!(
        "upstreams:\n  - {{registry: \"{REGISTRY}\", url: \"{upstream_url}\", default: true}}\n\
         policy:\n  default: deny\n  rules:\n{}",
        rules.concat()
    )
}

/// A rule verifying `REGISTRY/<repos>` with cosign; `trust` is the rest of its keys
/// (`keys`, `threshold`, `keyless`), each line indented by six spaces and ended.
pub fn verify_rule(repos: &str, trust: &str) -> String {
    format!(
        "    - match: \"{REGISTRY}/{repos}\"\n      action: verify\n      \
         verifier: cosign\n{trust}"
    )
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The simple-signing payload `cosign sign` signs, claiming `claimed` for `REGISTRY/repo`.
pub fn payload(repo: &str, claimed: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{REGISTRY}/{repo}"}},"image":{{"docker-manifest-digest":"{claimed}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// One signature layer over `payload`, with the signature (and any certificate, chain and
/// bundle) in `annotations`.
pub fn layer(payload: &Blob, annotations: Value) -> Value {
    serde_json::json!({
        "mediaType": SIMPLESIGNING,
        "size": payload.size(),
        "digest": payload.digest,
        "annotations": annotations,
    })
}

/// A pushed signature artifact.
pub struct Signature {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    pub manifest: Blob,
    pub payload: Blob,
}

/// Pushes `layers` over `payload` as the signature manifest of `subject` (a digest), with the
/// config and payload blobs, as `cosign sign` does.
pub fn push_signature(
    registry: &Registry,
    repo: &str,
    subject: &str,
    payload: Blob,
    layers: Vec<Value>,
) -> Signature {
    let config = Blob::new(
        serde_json::json!({
            "architecture": "", "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
            "rootfs": {"type": "layers", "diff_ids": [payload.digest]}, "config": {}
        })
        .to_string()
        .into_bytes(),
    );
    let manifest = Blob::new(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.size(), "digest": config.digest},
            "layers": layers,
        })
        .to_string()
        .into_bytes(),
    );
    for blob in [&config, &payload] {
        push_blob(registry, repo, blob);
    }
    let tag = format!("sha256-{}.sig", &subject["sha256:".len()..]);
    registry.put_manifest(repo, &tag, OCI_MANIFEST, &manifest.bytes);
    Signature {
        tag,
        manifest,
        payload,
    }
}

/// An ECDSA P-256 key pair as files: `openssl ecparam` private key, `openssl pkey` public key
/// (the PEM `PUBLIC KEY` cosign writes to `cosign.pub`).
pub struct Key {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn generate(dir: &Path, name: &str) -> Key {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        run(Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(&private));
        run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public));
        Key { private, public }
    }

    /// `openssl dgst -sha256 -sign`: ECDSA over SHA-256, ASN.1 DER, as cosign signs.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("payload"), dir.path().join("sig"));
        std::fs::write(&input, payload).unwrap();
        run(Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.private)
            .arg("-out")
            .arg(&output)
            .arg(&input));
        std::fs::read(output).unwrap()
    }

    /// Signs `subject` (a manifest digest) of `repo` as `cosign sign` would, and pushes the
    /// signature artifact.
    pub fn sign_image(&self, registry: &Registry, repo: &str, subject: &str) -> Signature {
        let payload = Blob::new(payload(repo, subject));
        let sig = self.sign(&payload.bytes);
        let layers = vec![layer(
            &payload,
            serde_json::json!({SIGNATURE_ANNOTATION: b64(&sig)}),
        )];
        push_signature(registry, repo, subject, payload, layers)
    }
}

fn run(cmd: &mut Command) {
    let out = run_bounded(cmd, b"", "openssl");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The trust keys of a rule that accepts `key`'s signatures without a log entry (offline
/// signing), each line indented for a rule and ended.
pub fn offline_key_trust(key: &Key) -> String {
    format!(
        "      keys: [{}]\n      require_tlog: false\n",
        serde_json::json!(key.public.to_str().unwrap())
    )
}

/// Signs `digest` of `REGISTRY/repo` with `key` in cosign's `.sig` format and pushes the
/// signature manifest to `registry`.
pub fn sign_digest(registry: &Registry, key: &Key, repo: &str, digest: &str) {
    let payload = Blob::new(payload(repo, digest));
    let sig = key.sign(&payload.bytes);
    let layer = layer(
        &payload,
        serde_json::json!({ SIGNATURE_ANNOTATION: b64(&sig) }),
    );
    push_signature(registry, repo, digest, payload, vec![layer]);
}

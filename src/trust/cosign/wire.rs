//! cosign's storage format (`sigstore/cosign: specs/SIGNATURE_SPEC.md`): the signature tag, the
//! signature manifest's layers and the simple-signing payload. Pure parsing, no I/O.

use serde::Deserialize;

use crate::oci::Digest;

/// Media type of a signature layer: the blob is the simple-signing payload.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation holding the base64 signature over the layer's payload bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Keyless: the PEM Fulcio leaf certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Keyless: PEM intermediates and root the signer offers (untrusted).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The Rekor bundle: `{"SignedEntryTimestamp", "Payload": {"body", "integratedTime",
/// "logIndex", "logID"}}`.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// `critical.type` of an image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// A signature layer as the signature manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload blob.
    pub digest: Digest,
    pub size: u64,
    /// The signature, decoded from base64 (ASN.1 DER for ECDSA).
    pub signature: Vec<u8>,
    /// Keyless material, when the layer carries a certificate.
    pub keyless: Option<KeylessMaterial>,
    /// `dev.sigstore.cosign/bundle`: the Rekor bundle, key-signed layers included.
    pub bundle: Option<String>,
}

/// A keyless layer's certificate, chain and Rekor bundle annotations, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessMaterial {
    pub certificate: String,
    pub chain: Option<String>,
    pub bundle: Option<String>,
}

/// Why a signature manifest or payload was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("signature manifest is not an image manifest: {0}")]
    Manifest(String),
    #[error("payload is not simple-signing JSON: {0}")]
    Payload(String),
    #[error("payload type is {0:?}, not {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("payload digest {0:?} is not a digest")]
    PayloadDigest(String),
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawPayload {
    critical: RawCritical,
}

#[derive(Deserialize)]
struct RawCritical {
    image: RawImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The digest a signature tag stands for, if `tag` is one.
pub fn signed_digest_of_tag(tag: &str) -> Option<Digest> {
    let rest = tag.strip_suffix(".sig")?;
    let (algorithm, hex) = rest.split_once('-')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// The referrers tag schema tag of `digest` (distribution-spec 1.1): `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm().as_str(), digest.hex())
}

/// The digest a referrers tag stands for, if `tag` is one (`sha256-<hex>`, no suffix).
pub use crate::trust::referrers::subject_of_tag as subject_of_referrers_tag;

/// The simple-signing layers of a signature manifest that carry a signature annotation.
/// Other layers (and unparseable signatures) are skipped: they cannot count towards a
/// threshold either way.
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, WireError> {
    let raw: RawManifest =
        serde_json::from_slice(manifest).map_err(|e| WireError::Manifest(e.to_string()))?;
    use base64::Engine as _;
    Ok(raw
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLESIGNING)
        .filter_map(|l| {
            let signature = base64::engine::general_purpose::STANDARD
                .decode(l.annotations.get(SIGNATURE_ANNOTATION)?.trim())
                .ok()?;
            let keyless = l
                .annotations
                .get(CERTIFICATE_ANNOTATION)
                .map(|certificate| KeylessMaterial {
                    certificate: certificate.clone(),
                    chain: l.annotations.get(CHAIN_ANNOTATION).cloned(),
                    bundle: l.annotations.get(BUNDLE_ANNOTATION).cloned(),
                });
            Some(SignatureLayer {
                digest: Digest::parse(&l.digest).ok()?,
                size: l.size,
                signature,
                keyless,
                bundle: l.annotations.get(BUNDLE_ANNOTATION).cloned(),
            })
        })
        .collect())
}

/// The manifest digest a simple-signing payload vouches for (`critical.image
/// .docker-manifest-digest`), after checking `critical.type`. Call it on authenticated bytes
/// only, i.e. after the signature over them verified.
pub fn payload_digest(payload: &[u8]) -> Result<Digest, WireError> {
    let raw: RawPayload =
        serde_json::from_slice(payload).map_err(|e| WireError::Payload(e.to_string()))?;
    if raw.critical.kind != PAYLOAD_TYPE {
        return Err(WireError::PayloadType(raw.critical.kind));
    }
    let digest = raw.critical.image.docker_manifest_digest;
    Digest::parse(&digest).map_err(|_| WireError::PayloadDigest(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8f3a7c1e2d4b5a6978f0e1d2c3b4a5968778695a4b3c2d1e0f1e2d3c4b5a6978";

    fn digest() -> Digest {
        Digest::parse(&format!("sha256:{HEX}")).unwrap()
    }

    #[test]
    fn signature_tag_round_trips_through_its_digest() {
        let tag = signature_tag(&digest());
        assert_eq!(tag, format!("sha256-{HEX}.sig"));
        assert_eq!(signed_digest_of_tag(&tag), Some(digest()));
    }

    #[test]
    fn referrers_tag_round_trips_and_is_not_a_signature_tag() {
        let tag = referrers_tag(&digest());
        assert_eq!(tag, format!("sha256-{HEX}"));
        assert_eq!(subject_of_referrers_tag(&tag), Some(digest()));
        assert_eq!(signed_digest_of_tag(&tag), None);
        for other in [
            format!("sha256-{HEX}.sig"),
            "latest".to_owned(),
            "sha256-ab".to_owned(),
        ] {
            assert_eq!(subject_of_referrers_tag(&other), None, "{other}");
        }
    }

    #[test]
    fn tags_that_are_not_signature_tags_name_no_digest() {
        for tag in [
            "latest",
            "sha256-abc.sig",
            &format!("sha256-{HEX}"),
            &format!("sha256-{HEX}.att"),
            &format!("md5-{HEX}.sig"),
        ] {
            assert_eq!(signed_digest_of_tag(tag), None, "{tag}");
        }
    }

    #[test]
    fn signature_layers_keep_only_annotated_simplesigning_layers() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{HEX}"), "size": 2},
            "layers": [
                {"mediaType": SIMPLESIGNING, "digest": format!("sha256:{HEX}"), "size": 250,
                 "annotations": {SIGNATURE_ANNOTATION: "MEUCIQ=="}},
                {"mediaType": SIMPLESIGNING, "digest": format!("sha256:{HEX}"), "size": 250},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                 "digest": format!("sha256:{HEX}"), "size": 9,
                 "annotations": {SIGNATURE_ANNOTATION: "MEUCIQ=="}},
                {"mediaType": SIMPLESIGNING, "digest": format!("sha256:{HEX}"), "size": 250,
                 "annotations": {SIGNATURE_ANNOTATION: "not base64!"}},
            ]
        });
        let layers = signature_layers(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(
            layers,
            vec![SignatureLayer {
                digest: digest(),
                size: 250,
                signature: vec![0x30, 0x45, 0x02, 0x21],
                keyless: None,
                bundle: None,
            }]
        );
    }

    #[test]
    fn signature_manifest_that_is_not_json_is_an_error() {
        assert!(matches!(
            signature_layers(b"<html>"),
            Err(WireError::Manifest(_))
        ));
    }

    #[test]
    fn payload_digest_reads_the_critical_image_digest() {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r.example/app"}},"image":{{"docker-manifest-digest":"sha256:{HEX}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert_eq!(payload_digest(payload.as_bytes()), Ok(digest()));
    }

    #[test]
    fn payload_of_another_type_is_refused() {
        let payload = format!(
            r#"{{"critical":{{"identity":{{}},"image":{{"docker-manifest-digest":"sha256:{HEX}"}},"type":"atomic container signature"}}}}"#
        );
        assert!(matches!(
            payload_digest(payload.as_bytes()),
            Err(WireError::PayloadType(_))
        ));
    }

    #[test]
    fn payload_without_a_digest_is_refused() {
        for payload in [
            r#"{"critical":{"type":"cosign container image signature"}}"#,
            r#"{"critical":{"image":{"docker-manifest-digest":"latest"},"type":"cosign container image signature"}}"#,
            "not json",
        ] {
            assert!(payload_digest(payload.as_bytes()).is_err(), "{payload}");
        }
    }
}

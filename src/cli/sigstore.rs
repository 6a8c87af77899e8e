//! `trustgate sigstore verify-bundle`: verify a sigstore bundle for an artifact, the command
//! line the sigstore-conformance suite drives a client through:
//!
//! ```text
//! verify-bundle --bundle FILE --certificate-identity IDENTITY --certificate-oidc-issuer URL [--trusted-root FILE] FILE_OR_DIGEST
//! verify-bundle --bundle FILE --key PEMFILE [--trusted-root FILE] FILE_OR_DIGEST
//! ```
//!
//! Exit 0 when the bundle verifies; otherwise the reason on stderr and a non-zero exit.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use crate::trust::{
    root::{TrustedRoot, MAX_ROOT_SIZE},
    sigstore::{self, Artifact, Bundle, Policy, Requirements, Signer, MAX_BUNDLE_SIZE},
};

/// Largest artifact read from a file to verify (a digest can stand for anything larger).
const MAX_ARTIFACT_SIZE: u64 = 1024 * 1024 * 1024;
/// Largest PEM key file read.
const MAX_KEY_SIZE: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum SigstoreCommand {
    /// Verify a sigstore bundle for an artifact (a file, or `sha256:<hex>`).
    VerifyBundle(VerifyBundleArgs),
}

#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// The sigstore bundle (`.sigstore.json`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The exact subject alternative name the signing certificate must carry.
    #[arg(
        long,
        requires = "certificate_oidc_issuer",
        required_unless_present = "key"
    )]
    pub certificate_identity: Option<String>,
    /// The exact OIDC issuer the signing certificate must name.
    #[arg(long, requires = "certificate_identity")]
    pub certificate_oidc_issuer: Option<String>,
    /// A PEM public key to verify with instead of a certificate identity.
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_oidc_issuer"])]
    pub key: Option<PathBuf>,
    /// The sigstore trusted root (`trusted_root.json`). There is no built-in one: pass the
    /// public-good instance's (`targets/trusted_root.json` of its TUF repository) or your own.
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// The artifact: a path, or `sha256:<64 hex>` when that is not a path on disk.
    pub file_or_digest: String,
}

fn read_bounded(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{what} {}", path.display()))?
        .len();
    if len > max {
        return Err(anyhow!(
            "{what} {} is {len} bytes, more than {max}",
            path.display()
        ));
    }
    std::fs::read(path).with_context(|| format!("{what} {}", path.display()))
}

/// Runs `sigstore verify-bundle`; `Ok(false)` when the bundle does not verify (reported on
/// stderr).
pub fn verify_bundle(args: VerifyBundleArgs) -> anyhow::Result<bool> {
    let root_path = args.trusted_root.as_deref().ok_or_else(|| {
        anyhow!("no --trusted-root: pass a sigstore trusted_root.json (e.g. the public-good one)")
    })?;
    let root = read_bounded(root_path, MAX_ROOT_SIZE as u64 + 1, "trusted root")?;
    let root = TrustedRoot::from_json(&root)
        .with_context(|| format!("trusted root {}", root_path.display()))?;
    let bundle_bytes = read_bounded(&args.bundle, MAX_BUNDLE_SIZE as u64 + 1, "bundle")?;

    let path = Path::new(&args.file_or_digest);
    let artifact_bytes;
    let artifact = if path.exists() {
        artifact_bytes = read_bounded(path, MAX_ARTIFACT_SIZE, "artifact")?;
        Artifact::Bytes(&artifact_bytes)
    } else if let Some(hex_digest) = args.file_or_digest.strip_prefix("sha256:") {
        let digest: [u8; 32] = hex::decode(hex_digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| anyhow!("{:?} is not sha256:<64 hex>", args.file_or_digest))?;
        Artifact::Sha256(digest)
    } else {
        return Err(anyhow!(
            "{:?} is neither a file nor sha256:<64 hex>",
            args.file_or_digest
        ));
    };

    let spki;
    let policy = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(key), _, _) => {
            let pem = read_bounded(key, MAX_KEY_SIZE, "key")?;
            let (_, block) = x509_parser::pem::parse_x509_pem(&pem)
                .map_err(|_| anyhow!("key {}: not a PEM block", key.display()))?;
            if block.label != "PUBLIC KEY" {
                return Err(anyhow!(
                    "key {}: a {:?} PEM block, not PUBLIC KEY",
                    key.display(),
                    block.label
                ));
            }
            spki = block.contents;
            if !crate::trust::x509::spki_supported(&spki) {
                return Err(anyhow!(
                    "key {}: not an ECDSA P-256/P-384, Ed25519 or RSA public key",
                    key.display()
                ));
            }
            Policy::Key { spki_der: &spki }
        }
        (None, Some(identity), Some(issuer)) => Policy::Identity { identity, issuer },
        _ => {
            return Err(anyhow!(
                "give --certificate-identity and --certificate-oidc-issuer, or --key"
            ))
        }
    };

    let result = Bundle::from_json(&bundle_bytes).and_then(|bundle| {
        sigstore::verify(
            &bundle,
            &root,
            artifact,
            policy,
            &Requirements::default(),
            OffsetDateTime::now_utc(),
        )
    });
    match result {
        Ok(verified) => {
            let signer = match &verified.signer {
                Signer::Key { id } => format!("key {id}"),
                Signer::Certificate { issuer, sans } => {
                    format!(
                        "{} (issuer {})",
                        sans.join(", "),
                        issuer.as_deref().unwrap_or("none")
                    )
                }
            };
            eprintln!(
                "verified: signed by {signer}; logged in {}; {} signing time(s)",
                if verified.tlogs.is_empty() {
                    "no transparency log".to_owned()
                } else {
                    verified.tlogs.join(", ")
                },
                verified.times.len()
            );
            Ok(true)
        }
        Err(e) => {
            eprintln!("refused: {e}");
            Ok(false)
        }
    }
}

//! `trustgate notation verify`: verify an image's Notation signatures as `notation verify`
//! does, with the trust policy and trust store notation users already have, and the very
//! verifier the proxy runs:
//!
//! ```text
//! notation verify --trust-policy FILE --trust-store DIR IMAGE
//! notation verify --trust-policy FILE --trust-store DIR --oci-layout --scope SCOPE DIR@DIGEST|DIR:TAG
//! notation verify --trust-policy FILE --trust-store DIR --envelope FILE --descriptor JSON --scope SCOPE
//! ```
//!
//! `IMAGE` is `registry/repository[:tag|@digest]`, read from the registry (HTTPS, or HTTP
//! with `--plain-http`) by [`NotationVerifier`], the proxy's verifier: the same discovery,
//! bounds and verdict. `--oci-layout` reads an OCI image layout instead ([`layout`]), and
//! `--envelope` verifies one detached envelope for a target descriptor (the form of
//! notation-go's envelope test vectors). Exit 0 only when a signature verifies (or the
//! statement skips verification); the reason on stderr otherwise.

pub mod layout;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    oci::{parse_image, Digest},
    trust::{
        notation::{
            envelope::{self, MAX_ENVELOPE},
            policy::TrustPolicy,
            revocation::{Checker, Config, DEFAULT_TIMEOUT},
            verifier::{Decision, NotationVerifier},
            verify::{Subject, Trust},
        },
        ContentSource, Refusal, TrustQuery, Verifier as _,
    },
    upstream::{Upstream, UpstreamConfig},
};

/// Largest manifest read from a registry or a layout.
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// Longest password read from stdin.
const MAX_PASSWORD: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum NotationCommand {
    /// Verify an image's Notation signatures as `notation verify` does (exit 0 only when one
    /// verifies).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// notation's trust policy: `trustpolicy.oci.json` or `trustpolicy.json`, or the
    /// notation configuration directory holding one.
    #[arg(long)]
    pub trust_policy: PathBuf,
    /// notation's trust store: a directory holding `x509/{ca,signingAuthority,tsa}/<name>/`,
    /// or the notation configuration directory (`truststore/x509/...`).
    #[arg(long)]
    pub trust_store: PathBuf,
    /// The artifact: `registry/repository[:tag|@digest]`; with `--oci-layout`,
    /// `DIR@DIGEST` or `DIR:TAG`.
    #[arg(required_unless_present = "envelope")]
    pub reference: Option<String>,
    /// The reference is an OCI image layout directory.
    #[arg(long, conflicts_with = "envelope")]
    pub oci_layout: bool,
    /// The trust policy scope (`registry/repository`) of an OCI layout or a detached
    /// envelope; required with them.
    #[arg(long)]
    pub scope: Option<String>,
    /// Verify one detached envelope (JWS or COSE) instead of an image's signatures.
    #[arg(long, requires = "descriptor", conflicts_with = "reference")]
    pub envelope: Option<PathBuf>,
    /// The target descriptor a detached envelope must name:
    /// `{"mediaType":…,"digest":…,"size":…}`.
    #[arg(long, requires = "envelope")]
    pub descriptor: Option<String>,
    /// Talk to the registry over plain HTTP (testing only).
    #[arg(long)]
    pub plain_http: bool,
    /// Registry user name (default `$NOTATION_USERNAME`).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Read the registry password from stdin (default `$NOTATION_PASSWORD`).
    #[arg(long)]
    pub password_stdin: bool,
    /// `KEY=VALUE` the signature's payload annotations must carry (repeatable).
    #[arg(short = 'm', long = "user-metadata", value_name = "KEY=VALUE")]
    pub user_metadata: Vec<String>,
    /// A CRL file (DER or PEM) to check revocation with before fetching (repeatable).
    #[arg(long = "crl", value_name = "FILE")]
    pub crls: Vec<PathBuf>,
    /// Fetch no OCSP responder and no CRL distribution point.
    #[arg(long)]
    pub offline: bool,
    /// Verify as of this time (RFC 3339) instead of now: for reproducing a past verdict of
    /// an OCI layout or a detached envelope.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, conflicts_with = "plain_http")]
    pub verify_at: Option<OffsetDateTime>,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// The verdict of one verification: the reference as verified (`…@<digest>`), and what
/// vouched for it or why nothing did.
pub struct Outcome {
    pub reference: String,
    pub verdict: Result<Decision, Refusal>,
}

/// Runs `notation verify`; `Ok(false)` when no signature verifies (the reason on stderr).
pub async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let wanted = user_metadata(&args.user_metadata)?;
    let policy = TrustPolicy::load(&args.trust_policy)
        .with_context(|| format!("trust policy {}", args.trust_policy.display()))?;
    let checker = Checker::new(Config {
        cache_dir: None,
        crls: args.crls.clone(),
        fetch: !args.offline,
        timeout: DEFAULT_TIMEOUT,
    })
    .context("revocation")?;
    let trust = Arc::new(Trust::new(policy, &args.trust_store, checker));
    let now = args.verify_at.unwrap_or_else(OffsetDateTime::now_utc);

    let outcome = if let Some(path) = &args.envelope {
        let scope = args
            .scope
            .as_deref()
            .ok_or_else(|| anyhow!("--envelope needs --scope registry/repository"))?;
        let descriptor = args.descriptor.as_deref().unwrap_or_default();
        detached(&trust, path, descriptor, scope, now).await?
    } else {
        let reference = args.reference.as_deref().unwrap_or_default();
        if args.oci_layout {
            let scope = args
                .scope
                .as_deref()
                .ok_or_else(|| anyhow!("--oci-layout needs --scope registry/repository"))?;
            layout::verify(&trust, reference, scope, now).await?
        } else {
            if args.scope.is_some() {
                return Err(anyhow!(
                    "--scope is for --oci-layout and --envelope; an image's scope is its registry/repository"
                ));
            }
            remote(trust, &args, reference).await?
        }
    };
    Ok(report(&outcome, &wanted))
}

/// Prints the outcome as notation does; whether it verified with the wanted metadata.
fn report(outcome: &Outcome, wanted: &BTreeMap<String, String>) -> bool {
    let reference = &outcome.reference;
    let decision = match &outcome.verdict {
        Ok(decision) => decision,
        // The verifier's refusals name the reference themselves.
        Err(refusal) if refusal.message.contains(reference.as_str()) => {
            eprintln!("Error: signature verification failed: {refusal}");
            return false;
        }
        Err(refusal) => {
            eprintln!("Error: signature verification failed for {reference}: {refusal}");
            return false;
        }
    };
    let verified = &decision.verified;
    if decision.signature.is_none() {
        println!(
            "Trust policy statement {:?} is configured to skip signature verification for {reference}",
            verified.statement
        );
        return true;
    }
    if let Err(finding) = verified.user_metadata(wanted) {
        eprintln!("Error: signature verification failed for {reference}: {finding}");
        return false;
    }
    for finding in &verified.logged {
        eprintln!(
            "Warning: {finding} (trust policy statement {:?} logs this check, it does not enforce it)",
            verified.statement
        );
    }
    println!("Successfully verified signature for {reference}");
    let signature = decision
        .signature
        .as_ref()
        .map(Digest::as_str)
        .unwrap_or_default();
    println!(
        "signed by {:?}, signature {signature}, trust policy statement {:?}",
        verified.signer, verified.statement
    );
    if let Some(target) = verified
        .target
        .as_ref()
        .filter(|t| !t.annotations.is_empty())
    {
        println!("\nThe artifact was signed with the following user metadata.\n");
        for (key, value) in &target.annotations {
            println!("{key}\t{value}");
        }
    }
    true
}

/// `-m KEY=VALUE` pairs.
fn user_metadata(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(anyhow!("--user-metadata {pair:?} is not KEY=VALUE")),
        })
        .collect()
}

/// An image in a registry, through the proxy's own verifier.
async fn remote(trust: Arc<Trust>, args: &VerifyArgs, reference: &str) -> anyhow::Result<Outcome> {
    let image = parse_image(reference)?;
    let registry = image
        .registry
        .ok_or_else(|| anyhow!("{reference:?} names no registry: write registry/repository"))?;
    let url = match registry.as_str() {
        "docker.io" => "https://registry-1.docker.io".to_owned(),
        host if args.plain_http => format!("http://{host}"),
        host => format!("https://{host}"),
    };
    let mut config = UpstreamConfig::new(registry.clone(), url);
    config.username = args
        .username
        .clone()
        .or_else(|| std::env::var("NOTATION_USERNAME").ok());
    config.password = if args.password_stdin {
        let mut password = String::new();
        std::io::stdin()
            .take(MAX_PASSWORD)
            .read_to_string(&mut password)
            .context("password from stdin")?;
        Some(password.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        std::env::var("NOTATION_PASSWORD").ok()
    };
    if config.username.is_some() != config.password.is_some() {
        return Err(anyhow!("give both a user name and a password, or neither"));
    }
    let upstream = Upstream::new(config).map_err(|e| anyhow!("registry {registry}: {e}"))?;
    let gun = format!("{registry}/{}", image.repo);
    let query = TrustQuery {
        gun: gun.clone(),
        roles: Arc::from([]),
        signers: Arc::from([]),
        pins: Arc::from([]),
        stale_if_error: std::time::Duration::ZERO,
        content: Some(ContentSource {
            upstream,
            repo: image.repo.clone(),
            max_manifest_size: MAX_MANIFEST,
        }),
    };
    let verifier = NotationVerifier::new(trust);
    let digest = match (&image.digest, &image.tag) {
        (Some(digest), _) => Digest::parse(digest)?,
        (None, tag) => {
            let tag = tag.as_deref().unwrap_or("latest");
            eprintln!(
                "Warning: always verify the artifact by digest (@sha256:...) rather than a tag (:{tag}): a tag may move to another artifact after it is verified"
            );
            match verifier.resolve_tag(&query, tag).await {
                Ok(signed) => Digest::parse(&signed.digest)?,
                Err(refusal) => {
                    return Ok(Outcome {
                        reference: format!("{gun}:{tag}"),
                        verdict: Err(refusal),
                    })
                }
            }
        }
    };
    let verdict = verifier.decide(&query, &digest).await;
    Ok(Outcome {
        reference: format!("{gun}@{digest}"),
        verdict,
    })
}

/// One detached envelope for the target descriptor given as JSON.
async fn detached(
    trust: &Trust,
    path: &Path,
    descriptor: &str,
    scope: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Outcome> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wanted {
        media_type: String,
        digest: String,
        size: u64,
    }
    let wanted: Wanted =
        serde_json::from_str(descriptor).with_context(|| format!("--descriptor {descriptor:?}"))?;
    let digest = Digest::parse(&wanted.digest)?;
    let bytes = read_bounded(path, MAX_ENVELOPE, "envelope")?;
    let reference = format!("{scope}@{digest}");
    let statement = match trust.statement(scope, &reference) {
        Ok(statement) => statement,
        Err(finding) => return Err(anyhow!("{finding}")),
    };
    let media_type = envelope_type(&bytes);
    let subject = Subject {
        media_type: &wanted.media_type,
        digest: digest.as_str(),
        size: wanted.size,
    };
    let verdict = match trust
        .verify(statement, media_type, &bytes, subject, now)
        .await
    {
        Ok(verified) => Ok(Decision {
            signature: (!crate::trust::notation::verify::skips(statement))
                .then(|| Digest::sha256_of(&bytes)),
            verified,
        }),
        Err(finding) => Err(crate::trust::notation::verifier::refusal(
            &reference,
            &statement.name,
            vec![(Digest::sha256_of(&bytes), finding)],
        )),
    };
    Ok(Outcome { reference, verdict })
}

/// A detached envelope's media type from its first byte: JWS JSON is an object, COSE_Sign1
/// a CBOR tag or array.
fn envelope_type(bytes: &[u8]) -> &'static str {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => envelope::JWS,
        _ => envelope::COSE,
    }
}

/// A file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("{what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{what} {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(anyhow!(
            "{what} {} is larger than {max} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

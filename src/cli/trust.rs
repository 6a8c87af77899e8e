//! `trustgate trust inspect`: verify a GUN's Notary v1 trust data and print what it signs,
//! like `docker trust inspect [--pretty]` did.

use std::{fmt::Write as _, path::PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use time::OffsetDateTime;

use crate::trust::notary::{
    format_time, pin_ids_from_pem, HttpSource, HttpTimeouts, Limits, NotaryClient, Source,
    StateStore, TrustData, RELEASES, TARGETS,
};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Verify the trust data of a GUN and list its signed tags, signers and keys.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Globally unique name of the repository, e.g. docker.io/library/nginx.
    pub gun: String,
    /// Notary server to fetch trust data from, e.g. https://notary.example.com.
    #[arg(
        long,
        conflicts_with = "metadata_dir",
        required_unless_present = "metadata_dir"
    )]
    pub server: Option<String>,
    /// Read trust data from a directory laid out like the server path
    /// (root.json, timestamp.json, snapshot.json, targets.json, targets/<name>.json).
    #[arg(long)]
    pub metadata_dir: Option<PathBuf>,
    /// Verify as of this time (RFC 3339) instead of now: expiry and certificate validity.
    #[arg(long, value_parser = parse_rfc3339)]
    pub at: Option<OffsetDateTime>,
    /// Pin a root key: a key ID (certificate or canonical ID) or a PEM public key/certificate file.
    /// Repeatable; any pinned key counts.
    #[arg(long = "root-key", value_name = "ID|PEMFILE")]
    pub root_keys: Vec<String>,
    /// PEM bundle of CAs to trust for the notary server's TLS certificate.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Persist the trusted root (first use) and last verified versions (rollback protection) here.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Resolves `--root-key` values into the key IDs they may appear under.
pub fn resolve_pins(pins: &[String]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for pin in pins {
        if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            ids.push(pin.to_ascii_lowercase());
        } else {
            let pem = std::fs::read(pin).map_err(|e| {
                anyhow::anyhow!(
                    "root key {pin}: not a 64-hex key ID and not a readable PEM file: {e}"
                )
            })?;
            ids.extend(pin_ids_from_pem(&pem).map_err(|e| anyhow::anyhow!("root key {pin}: {e}"))?);
        }
    }
    Ok(ids)
}

/// Runs `trust inspect`; `Ok(false)` means the trust data did not verify (already reported).
pub async fn inspect(args: InspectArgs) -> anyhow::Result<bool> {
    let source = match (&args.server, &args.metadata_dir) {
        (Some(url), _) => {
            let ca = match &args.ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?,
                ),
                None => None,
            };
            Source::Http(HttpSource::new(
                url,
                ca.as_deref(),
                HttpTimeouts::default(),
            )?)
        }
        (None, Some(dir)) => Source::Dir(dir.clone()),
        (None, None) => anyhow::bail!("give --server or --metadata-dir"),
    };
    let pins = resolve_pins(&args.root_keys)?;
    let client = NotaryClient::new(
        source,
        Limits::default(),
        args.state_dir.map(StateStore::new),
    );
    let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    match client.verify(&args.gun, at, &pins).await {
        Ok(data) => {
            for s in &data.skipped {
                eprintln!("warning: {}: {} skipped: {}", data.gun, s.role, s.reason);
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&to_json(&data))?);
            } else {
                print!("{}", pretty(&data));
            }
            Ok(true)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", args.gun);
            Ok(false)
        }
    }
}

fn ids(keys: &[crate::trust::notary::KeyInfo]) -> Vec<&str> {
    keys.iter().map(|k| k.canonical_id.as_str()).collect()
}

/// The JSON document of `trust inspect --json` (a public interface).
pub fn to_json(data: &TrustData) -> serde_json::Value {
    let signed_tags: Vec<_> = data
        .signed_tags()
        .into_iter()
        .map(|(tag, r)| {
            json!({"tag": tag, "digest": r.target.digest, "size": r.target.size, "role": r.role})
        })
        .collect();
    let roles: serde_json::Map<_, _> = data
        .roles
        .iter()
        .map(|(name, role)| (name.clone(), json!(role.targets)))
        .collect();
    let signers: Vec<_> = data
        .signers()
        .map(|(name, role)| json!({"name": name, "keys": ids(&role.keys)}))
        .collect();
    let repository_keys = data
        .roles
        .get(TARGETS)
        .map(|r| ids(&r.keys))
        .unwrap_or_default();
    json!({
        "gun": data.gun,
        "signed_tags": signed_tags,
        "roles": roles,
        "signers": signers,
        "root_keys": ids(&data.root_keys),
        "repository_keys": repository_keys,
        "skipped": data.skipped,
        "expires": expiries(data),
    })
}

/// Expiry of every role the data rests on, RFC 3339.
fn expiries(data: &TrustData) -> serde_json::Map<String, serde_json::Value> {
    let roles = data.roles.iter().map(|(k, r)| (k, &r.expires));
    data.expires
        .iter()
        .chain(roles)
        .map(|(k, v)| (k.clone(), json!(format_time(v))))
        .collect()
}

/// The `docker trust inspect --pretty` layout.
pub fn pretty(data: &TrustData) -> String {
    let mut out = String::new();
    let gun = &data.gun;
    let tags = data.signed_tags();
    if tags.is_empty() {
        let _ = writeln!(out, "\nNo signatures for {gun}\n");
    } else {
        let _ = writeln!(out, "\nSignatures for {gun}\n");
        let rows: Vec<[String; 3]> = tags
            .iter()
            .map(|(tag, r)| {
                let signers: Vec<&str> = if r.role == TARGETS {
                    vec!["(Repo Admin)"]
                } else {
                    data.signers()
                        .filter(|(name, _)| {
                            data.role_signed(&format!("targets/{name}"), tag, &r.target.digest)
                        })
                        .map(|(name, _)| name)
                        .collect()
                };
                let signers = if signers.is_empty() && r.role == RELEASES {
                    "(releases)".to_owned()
                } else {
                    signers.join(", ")
                };
                let hex = r.target.digest.trim_start_matches("sha256:").to_owned();
                [tag.clone(), hex, signers]
            })
            .collect();
        table(&mut out, ["SIGNED TAG", "DIGEST", "SIGNERS"], &rows);
    }
    let signers: Vec<[String; 2]> = data
        .signers()
        .map(|(name, role)| {
            let keys: Vec<&str> = role
                .keys
                .iter()
                .map(|k| k.canonical_id.get(..12).unwrap_or(&k.canonical_id))
                .collect();
            [name.to_owned(), keys.join(", ")]
        })
        .collect();
    if signers.is_empty() {
        let _ = writeln!(out, "\nNo signers for {gun}");
    } else {
        let _ = writeln!(out, "\nList of signers and their keys for {gun}\n");
        table(&mut out, ["SIGNER", "KEYS"], &signers);
    }
    let _ = writeln!(out, "\nAdministrative keys for {gun}\n");
    let repo = data
        .roles
        .get(TARGETS)
        .map(|r| ids(&r.keys))
        .unwrap_or_default();
    let _ = writeln!(out, "  Repository Key:\t{}", repo.join(", "));
    let _ = writeln!(out, "  Root Key:\t{}", ids(&data.root_keys).join(", "));
    out
}

fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |out: &mut String, cells: [&str; N]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("   ").trim_end());
    };
    line(out, header);
    for row in rows {
        line(out, row.each_ref().map(String::as_str));
    }
}

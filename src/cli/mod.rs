//! The command line: `trustgate <verb>`. Each verb lives in its own file; `main.rs` only
//! parses arguments and maps results to exit codes.

pub mod cache;
pub mod check;
pub mod containerd_verifier;
pub mod doctor;
pub mod notation;
pub mod serve;
pub mod sigstore;
pub mod trust;

use clap::{Parser, Subcommand};

/// trustgate: a verifying pull-through registry proxy.
#[derive(Debug, Parser)]
#[command(name = "trustgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve(serve::ServeArgs),
    /// Show what the proxy would decide for an image, and why (exit 0 allowed, 1 refused).
    Check(check::CheckArgs),
    /// The proxy's cache: warm it ahead of pulls, list, remove, collect garbage.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(check::ConfigCommand),
    /// Inspect and verify trust data.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Sigstore tools: verify a bundle as sigstore clients do.
    #[command(subcommand)]
    Sigstore(sigstore::SigstoreCommand),
    /// Notation tools: verify an image's signatures as `notation verify` does.
    #[command(subcommand)]
    Notation(notation::NotationCommand),
    /// Name every client setting that lets pulls bypass or weaken trustgate, with its fix
    /// (exit 0 none, 1 some, 2 unreadable input).
    Doctor(doctor::DoctorArgs),
    /// Judge an image for containerd 2.x's image verifier plugin (bindir): exit 0 only when
    /// trustgate allows the digest containerd resolved.
    ContainerdVerifier(containerd_verifier::ContainerdVerifierArgs),
}

/// The command line of this process, parsed; exits on a usage error as clap does. Called as
/// containerd's image verifier, a usage error is also printed on stdout, where containerd
/// reads the reason it shows for the blocked pull.
pub fn parse() -> Cli {
    let args = containerd_verifier::containerd_args(std::env::args_os());
    let verifier = args.get(1).is_some_and(|a| a == "containerd-verifier");
    Cli::try_parse_from(args).unwrap_or_else(|e| {
        if verifier && e.use_stderr() {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            println!("trustgate containerd-verifier blocks the pull (fail-closed): {first}");
        }
        e.exit()
    })
}

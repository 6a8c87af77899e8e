//! The command line: `trustgate <verb>`. Each verb lives in its own file; `main.rs` only
//! parses arguments and maps results to exit codes.

pub mod check;
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
}

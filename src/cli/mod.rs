//! The command line: `trustgate <verb>`. Each verb lives in its own file; `main.rs` only
//! parses arguments and maps results to exit codes.

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
    /// Inspect and verify trust data.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
}

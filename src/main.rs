//! The trustgate binary: parse the command line, run the verb, map the outcome to an exit code
//! (0 success, 1 refused or failed, 2 usage; `cache warm`: 3 stopped by its rate-limit budget).

use std::process::ExitCode;

use trustgate::cli::{
    check::ConfigCommand, notation::NotationCommand, sigstore::SigstoreCommand,
    trust::TrustCommand, Command,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = trustgate::cli::parse();
    let result = match cli.command {
        Command::ContainerdVerifier(args) => {
            return trustgate::cli::containerd_verifier::run(args).await
        }
        Command::Serve(args) => trustgate::cli::serve::serve(args).await.map(|()| true),
        Command::Check(args) => trustgate::cli::check::check(args).await,
        Command::Config(ConfigCommand::Validate { config }) => {
            trustgate::cli::check::validate(config).map(|()| true)
        }
        Command::Trust(TrustCommand::Inspect(args)) => trustgate::cli::trust::inspect(args).await,
        Command::Sigstore(SigstoreCommand::VerifyBundle(args)) => {
            trustgate::cli::sigstore::verify_bundle(args)
        }
        Command::Notation(NotationCommand::Verify(args)) => {
            trustgate::cli::notation::verify(args).await
        }
        Command::Doctor(args) => return trustgate::cli::doctor::main(args),
        Command::Cache(command) => return trustgate::cli::cache::main(command).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

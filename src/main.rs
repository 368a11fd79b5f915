//! Command-line entry point: `run` starts the operator, `sandbox` serves the
//! local Plivo sandbox, and `crds` prints the CustomResourceDefinitions.

use std::process::ExitCode;

use caller_reputation_operator::{api, operator, sandbox};
use clap::{Parser, Subcommand};

/// Manage Plivo Caller Reputation declaratively from Kubernetes.
#[derive(Parser)]
#[command(name = "caller-reputation-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile BusinessProfiles and CallerReputationNumbers.
    Run(Box<operator::RunArgs>),
    /// Serve the local Plivo sandbox (Profile and Account Phone Number APIs).
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => operator::main(*args),
        Command::Sandbox(args) => sandbox::main(*args),
        Command::Crds => {
            print!("{}", api::crds_yaml());
            ExitCode::SUCCESS
        }
    }
}

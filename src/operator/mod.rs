//! Process wiring of `caller-reputation-operator run`.

use std::process::ExitCode;

/// Flags of `caller-reputation-operator run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {}

/// Runs the operator until SIGTERM.
pub fn main(_args: RunArgs) -> ExitCode {
    ExitCode::FAILURE
}

//! Local Plivo sandbox.

use std::process::ExitCode;

/// Flags of `caller-reputation-operator sandbox`.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {}

/// Runs the sandbox until interrupted.
pub fn main(_args: SandboxArgs) -> ExitCode {
    ExitCode::FAILURE
}

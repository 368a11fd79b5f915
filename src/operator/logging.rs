//! Process-wide tracing subscriber: JSON or text lines on standard output,
//! filtered by an EnvFilter directive.
//!
//! Nothing here redacts: keeping tokens and Secret values out of log fields
//! is the job of the code that logs (tokens are `SecretString`, whose `Debug`
//! prints `[REDACTED]`).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use super::config::LogFormat;

/// Installs the global subscriber.
///
/// `filter` must already be validated (see `RunArgs::validate`); an invalid
/// one falls back to `info` rather than silencing the process.
///
/// # Errors
/// Returns an error when a global subscriber is already installed.
pub fn init(format: LogFormat, filter: &str) -> Result<(), tracing_subscriber::util::TryInitError> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);

    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stdout),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(std::io::stdout),
            )
            .try_init(),
    }
}

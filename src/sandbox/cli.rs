//! The `sandbox` subcommand: flags, file formats and the process around a
//! [`Sandbox`].

use std::error::Error as StdError;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

use super::config::{SandboxConfig, SeedNumber, TlsConfig};
use super::faults::{ALLOWED_ERROR_STATUSES, FaultConfig};
use super::server::Sandbox;

/// Flags of `caller-reputation-operator sandbox`.
///
/// Serves Plivo's Profile and Account Phone Number APIs on the listen address,
/// plus admin endpoints under /_sandbox/ (state, requests, counters, callbacks,
/// numbers, decisions, faults, reset). Point the operator's Plivo base URL at
/// the printed URL. Logs one line per request to stderr; RUST_LOG sets the level.
#[derive(clap::Args, Debug)]
#[command(after_long_help = ADMIN_HELP)]
pub struct SandboxArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,

    /// Account as AUTH_ID:AUTH_TOKEN; repeat for several accounts. Prefer
    /// --accounts-file, since command lines are visible to other users.
    #[arg(long = "account", value_name = "AUTH_ID:TOKEN")]
    pub accounts: Vec<String>,

    /// YAML or JSON list of accounts, each {auth_id, auth_token}.
    #[arg(long, value_name = "PATH")]
    pub accounts_file: Option<PathBuf>,

    /// YAML or JSON list of rented numbers, each {account, number, type, country};
    /// type is local, tollfree, mobile, fixed or national; country defaults to US.
    /// Ignored when --state-file already exists.
    #[arg(long, value_name = "PATH")]
    pub numbers_file: Option<PathBuf>,

    /// Time a number stays PENDING before the simulated carriers decide, such
    /// as 5s, 250ms, 2m or 0s.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub activation_delay: Duration,

    /// EIN whose profiles the carriers reject (status FAILED); repeatable.
    #[arg(long = "fail-ein", value_name = "EIN")]
    pub fail_eins: Vec<String>,

    /// Reject (FAILED) profiles that have no website.
    #[arg(long)]
    pub fail_without_website: bool,

    /// Requests allowed per account in any 5-second window; 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub rate_limit: u32,

    /// Factor for the callback retry delays of 60, 120 and 240 seconds; 0.01
    /// makes them 0.6, 1.2 and 2.4 seconds.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub callback_retry_scale: f64,

    /// JSON file holding the state; read at start if it exists and rewritten
    /// (atomically) after every change, so a demo survives a restart.
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// PEM certificate chain to serve HTTPS with; needs --tls-key.
    #[arg(
        long,
        value_name = "PATH",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a freshly generated self-signed certificate for
    /// localhost, 127.0.0.1 and ::1.
    #[arg(long)]
    pub tls_self_signed: bool,

    /// With --tls-self-signed, write the generated certificate (PEM) here so
    /// clients can trust it.
    #[arg(long, value_name = "PATH", requires = "tls_self_signed")]
    pub tls_cert_out: Option<PathBuf>,

    /// Fraction (0.0 to 1.0) of every account's requests that get
    /// --fault-status instead of being processed.
    #[arg(long = "fault-5xx-ratio", value_name = "RATIO", default_value_t = 0.0, value_parser = parse_ratio)]
    pub fault_5xx_ratio: f64,

    /// Status of injected errors: 400, 429, 500, 502 or 503.
    #[arg(long, value_name = "CODE", default_value_t = 500, value_parser = parse_fault_status)]
    pub fault_status: u16,

    /// Delay added to every request, such as 200ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub fault_latency: Duration,

    /// Fraction (0.0 to 1.0) of requests whose connection is closed without a response.
    #[arg(long, value_name = "RATIO", default_value_t = 0.0, value_parser = parse_ratio)]
    pub fault_drop_ratio: f64,

    /// Retry-After value in seconds sent with 429 and injected 503 responses;
    /// none is sent when absent.
    #[arg(long, value_name = "SECONDS")]
    pub fault_retry_after: Option<u64>,
}

const ADMIN_HELP: &str = "\
Admin endpoints (JSON, no credentials):
  GET    /_sandbox/health
  GET    /_sandbox/state                      profiles, numbers, counters, faults
  GET    /_sandbox/counters                   per-number transition counters
  GET    /_sandbox/requests?since=SEQ&account=ID
  DELETE /_sandbox/requests                   empty the request log
  GET    /_sandbox/callbacks                  callback delivery attempts
  POST   /_sandbox/reset                      back to the seed numbers
  POST   /_sandbox/numbers                    {account, number, type, country} or a list
  DELETE /_sandbox/numbers/{number}           unrent
  POST   /_sandbox/numbers/{number}/decision  {\"status\": \"ACTIVE\"|\"FAILED\"|\"NOT_ENROLLED\"|\"PENDING\"}
  POST   /_sandbox/numbers/{number}/disable   Caller Reputation off
  POST   /_sandbox/numbers/{number}/profile   {\"profile_uuid\": ...}: move to another profile
  POST   /_sandbox/profiles                   {account, profile_uuid, fields}: a profile made
                                               outside the operator, with a chosen UUID
  DELETE /_sandbox/profiles/{uuid}            delete a profile
  GET    /_sandbox/faults[/{account}]
  PUT    /_sandbox/faults/{account}           {error_ratio, error_status, error_endpoint,
                                               drop_ratio, drop_endpoint, latency_ms,
                                               latency_endpoint, commit_then_fail:
                                               {endpoint, ratio, status},
                                               error_text, error_body_bytes,
                                               retry_after_s,
                                               remaining}
  DELETE /_sandbox/faults/{account}
Endpoint filters look like \"POST /Number/{number}/\" or \"/Profile/\".";

/// Parses `250ms`, `5s`, `2m`, `1h` or a plain number of seconds.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(split);
    let amount: f64 = amount
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use forms like 250ms, 5s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => amount / 1000.0,
        "" | "s" => amount,
        "m" => amount * 60.0,
        "h" => amount * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|error| format!("invalid duration {text:?}: {error}"))
}

/// Parses a fraction between 0.0 and 1.0.
///
/// # Errors
/// A message with the accepted range.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio between 0.0 and 1.0")),
    }
}

/// Parses the status of injected errors.
///
/// # Errors
/// A message listing the allowed statuses.
fn parse_fault_status(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(code) if ALLOWED_ERROR_STATUSES.contains(&code) => Ok(code),
        _ => Err(format!("{text:?} is not one of 400, 429, 500, 502 or 503")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    auth_id: String,
    auth_token: String,
}

/// Reads a YAML or JSON file (JSON is valid YAML for these inputs).
fn read_list<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("failed to read {}: {error}", path.display()))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a valid JSON list: {error}", path.display()));
    }
    serde_saphyr::from_str(&text)
        .map_err(|error| format!("{} is not a valid YAML list: {error}", path.display()))
}

impl SandboxArgs {
    /// Builds the configuration, reading the account, number and TLS files.
    ///
    /// # Errors
    /// A message naming the flag or file at fault.
    pub fn to_config(&self) -> Result<SandboxConfig, String> {
        let mut accounts = Vec::new();
        for account in &self.accounts {
            let (auth_id, token) = account.split_once(':').ok_or_else(|| {
                "--account must be AUTH_ID:AUTH_TOKEN, for example MAXXXXXXXXXXXXXXXXXX:secret"
                    .to_string()
            })?;
            accounts.push((auth_id.to_string(), token.to_string()));
        }
        if let Some(path) = &self.accounts_file {
            for entry in read_list::<AccountEntry>(path)? {
                accounts.push((entry.auth_id, entry.auth_token));
            }
        }
        if accounts.is_empty() {
            return Err(
                "no account configured: pass --account AUTH_ID:AUTH_TOKEN or --accounts-file"
                    .to_string(),
            );
        }

        let numbers: Vec<SeedNumber> = match &self.numbers_file {
            Some(path) => read_list(path)?,
            None => Vec::new(),
        };

        let tls = if self.tls_self_signed {
            let tls = TlsConfig::self_signed()
                .map_err(|error| format!("failed to generate a certificate: {error}"))?;
            if let Some(path) = &self.tls_cert_out {
                std::fs::write(path, &tls.cert_pem)
                    .map_err(|error| format!("failed to write {}: {error}", path.display()))?;
            }
            Some(tls)
        } else {
            match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    cert_pem: std::fs::read_to_string(cert)
                        .map_err(|error| format!("failed to read {}: {error}", cert.display()))?,
                    key_pem: std::fs::read_to_string(key)
                        .map_err(|error| format!("failed to read {}: {error}", key.display()))?,
                }),
                _ => None,
            }
        };

        let faults = FaultConfig {
            error_ratio: self.fault_5xx_ratio,
            error_status: Some(self.fault_status),
            drop_ratio: self.fault_drop_ratio,
            latency_ms: u64::try_from(self.fault_latency.as_millis()).unwrap_or(u64::MAX),
            retry_after_s: self.fault_retry_after,
            ..FaultConfig::default()
        };
        faults
            .validate()
            .map_err(|error| format!("invalid fault flag: {error}"))?;
        if !self.callback_retry_scale.is_finite() || self.callback_retry_scale < 0.0 {
            return Err("--callback-retry-scale must be a non-negative number".to_string());
        }

        Ok(SandboxConfig {
            listen: self.listen,
            accounts,
            numbers,
            activation_delay: self.activation_delay,
            fail_eins: self.fail_eins.clone(),
            fail_without_website: self.fail_without_website,
            rate_limit: Some(self.rate_limit).filter(|limit| *limit > 0),
            callback_retry_scale: self.callback_retry_scale,
            state_file: self.state_file.clone(),
            faults,
            tls,
        })
    }
}

/// Runs the sandbox until SIGINT or SIGTERM.
pub fn main(args: SandboxArgs) -> ExitCode {
    init_tracing();
    let config = match args.to_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: SandboxConfig) -> ExitCode {
    let account_ids: Vec<String> = config.accounts.iter().map(|(id, _)| id.clone()).collect();
    let sandbox = match Sandbox::start(config).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    // Scripts wait for this line, so it goes to stdout and is flushed at once.
    println!("Plivo sandbox listening on {}", sandbox.base_url());
    println!("Accounts: {}", account_ids.join(", "));
    let _ = std::io::stdout().flush();
    tracing::info!(url = %sandbox.base_url(), "Sandbox started");

    wait_for_signal().await;
    tracing::info!("Sandbox stopping");
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Renders an error and its sources on one line.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn fault_flags_reject_out_of_range_values() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert_eq!(parse_fault_status("503"), Ok(503));
        assert!(parse_fault_status("404").is_err());
    }

    #[test]
    fn durations_reject_unknown_units() {
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}

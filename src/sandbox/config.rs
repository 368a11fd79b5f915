//! Start-up configuration of the sandbox: accounts, seeded numbers, the
//! Caller Reputation outcome rules, limits and faults.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::FaultConfig;

/// Configuration of one sandbox instance.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Accounts as `(auth_id, auth_token)`; requests must use one of them.
    pub accounts: Vec<(String, String)>,
    /// Numbers each account rents when the sandbox starts with empty state.
    pub numbers: Vec<SeedNumber>,
    /// Time a number stays `PENDING` before the simulated carriers decide.
    pub activation_delay: Duration,
    /// EINs whose profiles the carriers reject (`FAILED`).
    pub fail_eins: Vec<String>,
    /// Whether profiles without a `website` are rejected (`FAILED`).
    pub fail_without_website: bool,
    /// Requests allowed per account in any 5-second window; `None` disables the limit.
    pub rate_limit: Option<u32>,
    /// Factor applied to the callback retry delays of 60, 120 and 240 seconds.
    pub callback_retry_scale: f64,
    /// File the state is written to after every change and read at start.
    pub state_file: Option<PathBuf>,
    /// Faults applied to every account at start; changeable at run time.
    pub faults: FaultConfig,
    /// Certificate and key to serve HTTPS with; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: Vec::new(),
            numbers: Vec::new(),
            activation_delay: Duration::from_secs(5),
            fail_eins: Vec::new(),
            fail_without_website: false,
            rate_limit: Some(300),
            callback_retry_scale: 1.0,
            state_file: None,
            faults: FaultConfig::default(),
            tls: None,
        }
    }
}

impl fmt::Debug for SandboxConfig {
    // Written by hand so that Auth Tokens never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let account_ids: Vec<&str> = self.accounts.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SandboxConfig")
            .field("listen", &self.listen)
            .field("accounts", &account_ids)
            .field("numbers", &self.numbers.len())
            .field("activation_delay", &self.activation_delay)
            .field("fail_eins", &self.fail_eins)
            .field("fail_without_website", &self.fail_without_website)
            .field("rate_limit", &self.rate_limit)
            .field("callback_retry_scale", &self.callback_retry_scale)
            .field("state_file", &self.state_file)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A number an account rents, as given in `--numbers-file` or
/// `POST /_sandbox/numbers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedNumber {
    /// Auth ID of the renting account.
    pub account: String,
    /// Digits with country code, with or without a leading `+`.
    pub number: String,
    /// Plivo number type.
    #[serde(rename = "type", alias = "number_type")]
    pub number_type: NumberType,
    /// ISO 3166 alpha-2 country code, such as `US`.
    #[serde(default = "default_country")]
    pub country: String,
}

fn default_country() -> String {
    "US".to_string()
}

/// Plivo's `number_type`. Only US `local` and `tollfree` numbers are eligible
/// for Caller Reputation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NumberType {
    Local,
    Tollfree,
    Mobile,
    Fixed,
    National,
}

impl NumberType {
    /// Returns the wire value, such as `tollfree`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Tollfree => "tollfree",
            Self::Mobile => "mobile",
            Self::Fixed => "fixed",
            Self::National => "national",
        }
    }
}

/// PEM certificate chain and private key for HTTPS.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM-encoded certificate chain, leaf first.
    pub cert_pem: String,
    /// PEM-encoded private key.
    pub key_pem: String,
}

impl TlsConfig {
    /// Generates a self-signed certificate for `localhost`, `127.0.0.1` and `::1`.
    ///
    /// # Errors
    /// Fails only when key generation or signing fails in `rcgen`.
    pub fn self_signed() -> Result<Self, rcgen::Error> {
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let certified = rcgen::generate_simple_self_signed(names)?;
        Ok(Self {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }
}

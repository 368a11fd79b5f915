//! Flags of `caller-reputation-operator run` and their validation.
//!
//! [`RunArgs`] is what clap parses: every flag is also read from a `CRO_*`
//! environment variable, and values stay text so that [`RunArgs::validate`]
//! can reject a bad one with a single line naming the flag. [`Config`] is the
//! checked result; its [`Settings`] go to the controllers unchanged.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use tracing_subscriber::EnvFilter;
use url::Url;

use super::label_selector::{check_label_selector, is_dns_label, is_dns_subdomain};
use crate::controller::{SecretReference, Settings, WatchNamespaces};

/// Window over which Plivo counts requests per account (300 per 5 s).
pub const PLIVO_RATE_WINDOW: Duration = Duration::from_secs(5);

/// Flags of `caller-reputation-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Path of a kubeconfig file [default: in-cluster service account, else $KUBECONFIG or ~/.kube/config].
    #[arg(long, env = "CRO_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Comma-separated namespaces to watch; empty watches every namespace.
    #[arg(
        long,
        env = "CRO_NAMESPACES",
        value_name = "NAMESPACE,...",
        default_value = ""
    )]
    pub namespaces: String,

    /// Label selector that limits which BusinessProfiles and CallerReputationNumbers this install manages, e.g. `team=voice`.
    #[arg(long, env = "CRO_LABEL_SELECTOR", value_name = "SELECTOR")]
    pub label_selector: Option<String>,

    /// Base URL of the Plivo REST API (point it at a sandbox for tests).
    #[arg(
        long,
        env = "CRO_PLIVO_BASE_URL",
        value_name = "URL",
        default_value = "https://api.plivo.com"
    )]
    pub plivo_base_url: String,

    /// Secret with Plivo credentials used when a resource names none.
    #[arg(
        long,
        env = "CRO_DEFAULT_CREDENTIALS_SECRET",
        value_name = "NAMESPACE/NAME"
    )]
    pub default_credentials_secret: Option<String>,

    /// Plivo requests allowed per account in each 5-second window.
    #[arg(
        long,
        env = "CRO_PLIVO_REQUESTS_PER_WINDOW",
        value_name = "COUNT",
        default_value = "300"
    )]
    pub plivo_requests_per_window: String,

    /// Time limit of one Plivo HTTP attempt, response body included; retries get their own.
    #[arg(
        long,
        env = "CRO_PLIVO_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub plivo_timeout: String,

    /// PEM file of CA certificates to trust for the Plivo API in addition to the system's, e.g. for a sandbox with its own certificate.
    #[arg(long, env = "CRO_PLIVO_CA_FILE", value_name = "PATH")]
    pub plivo_ca_file: Option<PathBuf>,

    /// How often an ACTIVE number is re-checked at Plivo, e.g. `30s`, `5m`, `1h`.
    #[arg(
        long,
        env = "CRO_RESYNC_PERIOD",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub resync_period: String,

    /// First delay before a PENDING number is re-checked; doubles up to --pending-recheck-max.
    #[arg(
        long,
        env = "CRO_PENDING_RECHECK_MIN",
        value_name = "DURATION",
        default_value = "1m"
    )]
    pub pending_recheck_min: String,

    /// Maximum delay between two checks of a PENDING number.
    #[arg(
        long,
        env = "CRO_PENDING_RECHECK_MAX",
        value_name = "DURATION",
        default_value = "30m"
    )]
    pub pending_recheck_max: String,

    /// Reconciles that may run at once, per resource kind.
    #[arg(
        long,
        env = "CRO_CONCURRENCY",
        value_name = "COUNT",
        default_value = "8"
    )]
    pub concurrency: String,

    /// Public http(s) base URL at which Plivo reaches this operator; `/callbacks/caller-reputation` is appended. Without it no status callbacks are requested.
    #[arg(long, env = "CRO_CALLBACK_BASE_URL", value_name = "URL")]
    pub callback_base_url: Option<String>,

    /// Address of the HTTP server for /healthz, /readyz, /metrics and callbacks.
    #[arg(
        long,
        env = "CRO_LISTEN",
        value_name = "ADDRESS:PORT",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: String,

    /// Log output format: `json` (one object per line) or `text`.
    #[arg(
        long,
        env = "CRO_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "json"
    )]
    pub log_format: String,

    /// Log filter in tracing EnvFilter syntax, e.g. `info` or `info,caller_reputation_operator=debug`.
    #[arg(
        long,
        env = "CRO_LOG_LEVEL",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log_level: String,

    /// Elect one active replica through a coordination.k8s.io Lease; the others stand by. Takes true or false; the bare flag means true.
    #[arg(
        long,
        env = "CRO_LEADER_ELECTION",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true"
    )]
    pub leader_election: String,

    /// Namespace of the Lease [default: the namespace of the kubeconfig context or of the service account].
    #[arg(long, env = "CRO_LEADER_ELECTION_NAMESPACE", value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the Lease.
    #[arg(
        long,
        env = "CRO_LEADER_ELECTION_LEASE_NAME",
        value_name = "NAME",
        default_value = "caller-reputation-operator"
    )]
    pub leader_election_lease_name: String,

    /// Holder identity written to the Lease [default: $POD_NAME, else the hostname with a random suffix].
    #[arg(long, env = "POD_NAME", value_name = "IDENTITY")]
    pub leader_election_identity: Option<String>,

    /// How long a Lease stays valid without renewal, in whole seconds (at least 3s); a standby takes over within it after the leader dies.
    #[arg(
        long,
        env = "CRO_LEASE_DURATION",
        value_name = "DURATION",
        default_value = "15s"
    )]
    pub lease_duration: String,

    /// How long in-flight reconciles may run after SIGTERM or SIGINT before they are aborted.
    #[arg(
        long,
        env = "CRO_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub shutdown_timeout: String,
}

/// A flag with a value the operator cannot use; displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for --{flag}: {reason}")]
pub struct ConfigError {
    /// The flag's long name without the leading dashes.
    pub flag: &'static str,
    /// Description of the problem and of the expected value.
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
        }
    }
}

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Settings of the Plivo REST client.
#[derive(Debug, Clone, PartialEq)]
pub struct PlivoSettings {
    pub base_url: Url,
    pub requests_per_window: u32,
    pub window: Duration,
    pub timeout: Duration,
    /// PEM certificates trusted in addition to the system's roots.
    pub extra_root_certificates: Vec<String>,
}

/// Settings of the Lease-based leader election.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderElectionSettings {
    /// Namespace of the Lease; `None` uses the client's default namespace.
    pub namespace: Option<String>,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
}

/// The validated configuration of one operator process.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    pub settings: Settings,
    pub plivo: PlivoSettings,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// `None` when `--leader-election` is off.
    pub leader_election: Option<LeaderElectionSettings>,
    pub shutdown_timeout: Duration,
}

impl RunArgs {
    /// Checks every flag and builds the [`Config`].
    ///
    /// # Errors
    /// Returns the first invalid flag, checked in the order of `--help`.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let namespaces = parse_namespaces(&self.namespaces)?;
        let label_selector = parse_label_selector(non_empty(&self.label_selector))?;
        let plivo_base_url = parse_http_url("plivo-base-url", &self.plivo_base_url)?;
        let default_credentials = non_empty(&self.default_credentials_secret)
            .map(parse_secret_reference)
            .transpose()?;
        let requests_per_window =
            parse_positive::<u32>("plivo-requests-per-window", &self.plivo_requests_per_window)?;
        let plivo_timeout = parse_positive_duration("plivo-timeout", &self.plivo_timeout)?;
        let plivo_ca = self
            .plivo_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|error| {
                    ConfigError::new(
                        "plivo-ca-file",
                        format!("cannot read {}: {error}", path.display()),
                    )
                })
            })
            .transpose()?;
        let resync_period = parse_positive_duration("resync-period", &self.resync_period)?;
        let pending_recheck_min =
            parse_positive_duration("pending-recheck-min", &self.pending_recheck_min)?;
        let pending_recheck_max =
            parse_positive_duration("pending-recheck-max", &self.pending_recheck_max)?;
        if pending_recheck_min > pending_recheck_max {
            return Err(ConfigError::new(
                "pending-recheck-min",
                format!(
                    "{} is greater than --pending-recheck-max ({})",
                    humantime::format_duration(pending_recheck_min),
                    humantime::format_duration(pending_recheck_max),
                ),
            ));
        }
        let concurrency = parse_positive::<u16>("concurrency", &self.concurrency)?;
        let callback_base_url = non_empty(&self.callback_base_url)
            .map(|url| parse_http_url("callback-base-url", url).map(with_trailing_slash))
            .transpose()?;
        let listen = self.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "listen",
                format!(
                    "expected ADDRESS:PORT such as 0.0.0.0:8080, got {:?}",
                    self.listen
                ),
            )
        })?;
        let log_format = parse_log_format(&self.log_format)?;
        let log_filter = parse_log_filter(&self.log_level)?;
        let leader_election = self.leader_election_settings()?;
        let shutdown_timeout = parse_duration("shutdown-timeout", &self.shutdown_timeout)?;

        Ok(Config {
            kubeconfig: self.kubeconfig.clone(),
            settings: Settings {
                namespaces,
                label_selector,
                default_credentials,
                resync_period,
                pending_recheck_min,
                pending_recheck_max,
                concurrency,
                callback_base_url,
            },
            plivo: PlivoSettings {
                base_url: plivo_base_url,
                requests_per_window,
                window: PLIVO_RATE_WINDOW,
                timeout: plivo_timeout,
                extra_root_certificates: plivo_ca.into_iter().collect(),
            },
            listen,
            log_format,
            log_filter,
            leader_election,
            shutdown_timeout,
        })
    }

    /// Checks the Lease flags even when election is off, so a typo does not
    /// wait for the day the flag is switched on.
    fn leader_election_settings(&self) -> Result<Option<LeaderElectionSettings>, ConfigError> {
        let namespace = non_empty(&self.leader_election_namespace)
            .map(|namespace| parse_namespace("leader-election-namespace", namespace))
            .transpose()?;
        let lease_name = self.leader_election_lease_name.trim();
        if !is_dns_subdomain(lease_name) {
            return Err(ConfigError::new(
                "leader-election-lease-name",
                format!(
                    "expected a DNS subdomain name such as caller-reputation-operator, got {lease_name:?}"
                ),
            ));
        }
        let lease_duration = parse_lease_duration(&self.lease_duration)?;
        let identity = match non_empty(&self.leader_election_identity) {
            Some(identity) => identity.to_string(),
            None => default_identity(),
        };

        let enabled = parse_bool("leader-election", &self.leader_election)?;
        Ok(enabled.then(|| LeaderElectionSettings {
            namespace,
            lease_name: lease_name.to_string(),
            identity,
            lease_duration,
        }))
    }
}

/// Treats an empty value like an absent one, as Helm charts often set
/// `CRO_*` variables to "".
fn non_empty(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

fn parse_namespaces(list: &str) -> Result<WatchNamespaces, ConfigError> {
    if list.trim().is_empty() {
        return Ok(WatchNamespaces::All);
    }
    let namespaces = list
        .split(',')
        .map(str::trim)
        .map(|name| {
            if name.is_empty() {
                Err(ConfigError::new(
                    "namespaces",
                    format!("{list:?} has an empty name; remove the extra comma, or pass an empty value to watch every namespace"),
                ))
            } else {
                parse_namespace("namespaces", name)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WatchNamespaces::List(namespaces))
}

fn parse_namespace(flag: &'static str, name: &str) -> Result<String, ConfigError> {
    if is_dns_label(name) {
        Ok(name.to_string())
    } else {
        Err(ConfigError::new(
            flag,
            format!(
                "expected a namespace name (lowercase letters, digits and '-', at most 63), got {name:?}"
            ),
        ))
    }
}

fn parse_label_selector(selector: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(selector) = selector else {
        return Ok(None);
    };
    check_label_selector(selector)
        .map_err(|error| ConfigError::new("label-selector", error.to_string()))?;
    Ok(Some(selector.to_string()))
}

fn parse_http_url(flag: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|error| {
        ConfigError::new(
            flag,
            format!("expected an http(s) URL, got {text:?} ({error})"),
        )
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError::new(
            flag,
            format!(
                "expected an http or https URL, got scheme {:?} in {text:?}",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            flag,
            format!("expected a URL with a host, got {text:?}"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            flag,
            format!("expected a base URL without query or fragment, got {text:?}"),
        ));
    }
    Ok(url)
}

/// Ends the path with `/`, so `Url::join` appends to a path prefix such as
/// `/operator` instead of replacing its last segment.
fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn parse_secret_reference(text: &str) -> Result<SecretReference, ConfigError> {
    let invalid = || {
        ConfigError::new(
            "default-credentials-secret",
            format!("expected NAMESPACE/NAME, got {text:?}"),
        )
    };
    let (namespace, name) = text.split_once('/').ok_or_else(invalid)?;
    if !is_dns_label(namespace) || !is_dns_subdomain(name) {
        return Err(invalid());
    }
    Ok(SecretReference {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

fn parse_positive<T>(flag: &'static str, text: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match text.trim().parse::<T>() {
        Ok(value) if value >= T::from(1) => Ok(value),
        _ => Err(ConfigError::new(
            flag,
            format!("expected a whole number of at least 1, got {text:?}"),
        )),
    }
}

fn parse_duration(flag: &'static str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        ConfigError::new(
            flag,
            format!("expected a duration such as 30s, 5m or 1h, got {text:?}"),
        )
    })
}

fn parse_positive_duration(flag: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let duration = parse_duration(flag, text)?;
    if duration.is_zero() {
        return Err(ConfigError::new(
            flag,
            "expected a duration greater than zero, got 0",
        ));
    }
    Ok(duration)
}

/// Lease durations are whole seconds in the Lease object; three seconds is
/// the least that leaves one second between renewal and expiry.
fn parse_lease_duration(text: &str) -> Result<Duration, ConfigError> {
    let duration = parse_duration("lease-duration", text)?;
    if duration.subsec_nanos() != 0 || duration < Duration::from_secs(3) {
        return Err(ConfigError::new(
            "lease-duration",
            format!("expected whole seconds of at least 3s, got {text:?}"),
        ));
    }
    Ok(duration)
}

fn parse_bool(flag: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(ConfigError::new(
            flag,
            format!("expected true or false, got {text:?}"),
        )),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, ConfigError> {
    match text.trim() {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        other => Err(ConfigError::new(
            "log-format",
            format!("expected json or text, got {other:?}"),
        )),
    }
}

fn parse_log_filter(text: &str) -> Result<String, ConfigError> {
    EnvFilter::builder().parse(text.trim()).map_err(|error| {
        ConfigError::new(
            "log-level",
            format!("expected a filter such as info or info,kube=debug, got {text:?} ({error})"),
        )
    })?;
    Ok(text.trim().to_string())
}

/// Identity outside Kubernetes: the hostname plus a random suffix, so two
/// processes on one machine never share an identity and both think they
/// hold the Lease.
fn default_identity() -> String {
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "caller-reputation-operator".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{hostname}_{}", &suffix[..8])
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Parses flags as the binary would; `CRO_*` variables of the test
    /// environment would apply too, and none are set in CI.
    fn args(flags: &[&str]) -> RunArgs {
        let argv = std::iter::once("run").chain(flags.iter().copied());
        let mut command = Command::try_parse_from(argv).expect("flags parse");
        // The test environment could carry POD_NAME; pin the identity.
        command.args.leader_election_identity = Some("test-identity".to_string());
        command.args
    }

    fn error_for(flags: &[&str]) -> ConfigError {
        args(flags)
            .validate()
            .expect_err("configuration is invalid")
    }

    #[test]
    fn defaults_build_settings() {
        let config = args(&[]).validate().expect("defaults are valid");

        assert!(matches!(config.settings.namespaces, WatchNamespaces::All));
        assert_eq!(config.settings.label_selector, None);
        assert_eq!(config.settings.default_credentials, None);
        assert_eq!(config.settings.resync_period, Duration::from_secs(3600));
        assert_eq!(config.settings.pending_recheck_min, Duration::from_secs(60));
        assert_eq!(
            config.settings.pending_recheck_max,
            Duration::from_secs(1800)
        );
        assert_eq!(config.settings.concurrency, 8);
        assert_eq!(config.settings.callback_base_url, None);
        assert_eq!(config.plivo.base_url.as_str(), "https://api.plivo.com/");
        assert_eq!(config.plivo.requests_per_window, 300);
        assert_eq!(config.plivo.window, Duration::from_secs(5));
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.leader_election, None);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn flags_fill_settings() {
        let config = args(&[
            "--namespaces",
            "team-a, team-b",
            "--label-selector",
            "team=voice",
            "--default-credentials-secret",
            "plivo/credentials",
            "--resync-period",
            "5m",
            "--pending-recheck-min",
            "30s",
            "--pending-recheck-max",
            "30s",
            "--concurrency",
            "2",
            "--callback-base-url",
            "https://callbacks.example.com/operator",
            "--leader-election",
            "--leader-election-namespace",
            "operators",
            "--lease-duration",
            "6s",
        ])
        .validate()
        .expect("flags are valid");

        let WatchNamespaces::List(namespaces) = &config.settings.namespaces else {
            panic!("expected a namespace list");
        };
        assert_eq!(namespaces, &["team-a", "team-b"]);
        assert_eq!(
            config.settings.label_selector.as_deref(),
            Some("team=voice")
        );
        assert_eq!(
            config.settings.default_credentials,
            Some(SecretReference {
                namespace: "plivo".to_string(),
                name: "credentials".to_string(),
            })
        );
        assert_eq!(config.settings.resync_period, Duration::from_secs(300));
        assert_eq!(config.settings.pending_recheck_max, Duration::from_secs(30));
        assert_eq!(config.settings.concurrency, 2);
        assert_eq!(
            config.settings.callback_base_url.as_ref().map(Url::as_str),
            Some("https://callbacks.example.com/operator/"),
            "a trailing slash keeps the prefix when the callback path is joined"
        );
        assert_eq!(
            config.leader_election,
            Some(LeaderElectionSettings {
                namespace: Some("operators".to_string()),
                lease_name: "caller-reputation-operator".to_string(),
                identity: "test-identity".to_string(),
                lease_duration: Duration::from_secs(6),
            })
        );
    }

    #[test]
    fn leader_election_takes_a_boolean() {
        let bare = args(&["--leader-election"]).validate().unwrap();
        let explicit_off = args(&["--leader-election=false"]).validate().unwrap();
        let explicit_on = args(&["--leader-election=true"]).validate().unwrap();

        assert!(bare.leader_election.is_some());
        assert!(explicit_off.leader_election.is_none());
        assert!(explicit_on.leader_election.is_some());
    }

    #[test]
    fn empty_optional_values_count_as_absent() {
        let config = args(&["--label-selector", "", "--default-credentials-secret", " "])
            .validate()
            .expect("empty values are ignored");

        assert_eq!(config.settings.label_selector, None);
        assert_eq!(config.settings.default_credentials, None);
    }

    #[test]
    fn each_invalid_flag_is_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--namespaces", "Team_A"], "namespaces"),
            (&["--namespaces", ",,"], "namespaces"),
            (&["--namespaces", "team-a,,team-b"], "namespaces"),
            (&["--label-selector", "tier in (a"], "label-selector"),
            (
                &["--plivo-base-url", "ftp://api.plivo.com"],
                "plivo-base-url",
            ),
            (
                &["--default-credentials-secret", "foo"],
                "default-credentials-secret",
            ),
            (
                &["--default-credentials-secret", "ns/Bad_Name"],
                "default-credentials-secret",
            ),
            (
                &["--plivo-requests-per-window", "0"],
                "plivo-requests-per-window",
            ),
            (&["--plivo-timeout", "soon"], "plivo-timeout"),
            (&["--resync-period", "0s"], "resync-period"),
            (&["--resync-period", "hourly"], "resync-period"),
            (&["--pending-recheck-min", "1"], "pending-recheck-min"),
            (&["--pending-recheck-max=-5m"], "pending-recheck-max"),
            (&["--pending-recheck-min", "45m"], "pending-recheck-min"),
            (&["--concurrency", "0"], "concurrency"),
            (&["--concurrency", "70000"], "concurrency"),
            (
                &["--callback-base-url", "callbacks.example.com"],
                "callback-base-url",
            ),
            (
                &["--callback-base-url", "wss://callbacks.example.com"],
                "callback-base-url",
            ),
            (
                &["--callback-base-url", "https://callbacks.example.com/?a=b"],
                "callback-base-url",
            ),
            (&["--listen", "8080"], "listen"),
            (&["--log-format", "xml"], "log-format"),
            (&["--log-level", "info,kube=loudest"], "log-level"),
            (
                &["--leader-election-namespace", "Ops"],
                "leader-election-namespace",
            ),
            (
                &["--leader-election-lease-name", "my lease"],
                "leader-election-lease-name",
            ),
            (&["--lease-duration", "2s"], "lease-duration"),
            (&["--lease-duration", "3500ms"], "lease-duration"),
            (&["--shutdown-timeout", "later"], "shutdown-timeout"),
        ];
        for (flags, flag) in cases {
            let error = error_for(flags);

            assert_eq!(error.flag, *flag, "{flags:?}");
            let line = error.to_string();
            assert!(
                line.starts_with(&format!("invalid value for --{flag}: ")),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn secret_reference_error_quotes_value() {
        let error = error_for(&["--default-credentials-secret", "foo"]);

        assert_eq!(
            error.to_string(),
            r#"invalid value for --default-credentials-secret: expected NAMESPACE/NAME, got "foo""#
        );
    }

    #[test]
    fn pending_bounds_error_names_both_values() {
        let error = error_for(&["--pending-recheck-min", "45m"]);

        assert_eq!(
            error.to_string(),
            "invalid value for --pending-recheck-min: 45m is greater than --pending-recheck-max (30m)"
        );
    }

    #[test]
    fn value_with_newline_stays_one_line() {
        let error = error_for(&["--log-format", "json\ntext"]);

        assert!(!error.to_string().contains('\n'), "{error}");
    }

    #[test]
    fn default_identity_is_unique_per_process() {
        assert_ne!(default_identity(), default_identity());
    }
}

//! Process wiring of `caller-reputation-operator run`.
//!
//! [`main`] validates the flags ([`config`]), starts logging ([`logging`]),
//! builds the Kubernetes and Plivo clients, serves probes, metrics and Plivo
//! callbacks on one port ([`http`], [`callback`]), and runs the controllers,
//! under a Lease when leader election is on ([`leader`]). SIGTERM or SIGINT
//! stops new work, lets in-flight reconciles finish within
//! `--shutdown-timeout`, releases the Lease and exits 0. A second signal
//! exits at once; the Lease then expires on its own.
//!
//! Exit codes: 0 after a requested shutdown, 1 when the operator fails while
//! running, 2 for invalid configuration (one line on standard error naming
//! the flag).

pub mod callback;
pub mod config;
pub mod http;
pub mod inherited_lease;
pub mod kube_fence;
pub mod label_selector;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod shutdown;
pub mod stale_holder;
pub mod takeover;
pub mod term;

use std::{error::Error as StdError, path::Path, process::ExitCode, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use kube::{
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
};

pub use self::config::RunArgs;
use self::{
    callback::CallbackState,
    config::{Config, ConfigError, LeaderElectionSettings, PlivoSettings},
    kube_fence::{ConfirmRenewalsLayer, GuardWritesLayer},
    leader::{Controllers, LeaderError},
    metrics::Metrics,
    readiness::Readiness,
    shutdown::{ShutdownSignal, TerminationSignals},
    takeover::{LeaseObservations, TakeoverGuardLayer},
    term::Launcher,
};
use crate::{
    controller::{self, CallbackHub, ControllerMetrics},
    fence::Fence,
    plivo::{self, PlivoClient},
};

/// Exit code for configuration that cannot be used.
const EXIT_INVALID_CONFIG: u8 = 2;

/// How long the HTTP server may take to finish open requests at exit.
const HTTP_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Failure that stopped the operator without a shutdown request.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to load the Kubernetes configuration")]
    KubeConfig(#[source] Box<dyn StdError + Send + Sync>),
    #[error("failed to create the Kubernetes client")]
    KubeClient(#[source] kube::Error),
    #[error("failed to create the Plivo client")]
    PlivoClient(#[source] Box<dyn StdError + Send + Sync>),
    #[error("failed to listen on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to install the SIGTERM/SIGINT handlers")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn main(args: RunArgs) -> ExitCode {
    let config = match args.validate() {
        Ok(config) => config,
        Err(error) => return invalid_config(&error),
    };
    let kubeconfig = match config
        .kubeconfig
        .as_deref()
        .map(read_kubeconfig)
        .transpose()
    {
        Ok(kubeconfig) => kubeconfig,
        Err(error) => return invalid_config(&error),
    };
    if let Err(error) = logging::init(config.log_format, &config.log_filter) {
        eprintln!("failed to start logging: {error}");
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "Failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, kubeconfig)) {
        Ok(()) => {
            tracing::info!("Operator stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "Operator failed");
            ExitCode::FAILURE
        }
    }
}

fn invalid_config(error: &ConfigError) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(EXIT_INVALID_CONFIG)
}

/// Reads `--kubeconfig` before anything starts, so a wrong path is a
/// configuration error.
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ConfigError> {
    let shown = path.display().to_string();
    // Opening first gives a plain I/O message for the common mistake, a
    // wrong path, instead of kube's wrapped one.
    if let Err(error) = std::fs::File::open(path) {
        return Err(ConfigError {
            flag: "kubeconfig",
            reason: format!("cannot read {shown:?}: {error}"),
        });
    }
    Kubeconfig::read_from(path).map_err(|error| ConfigError {
        flag: "kubeconfig",
        reason: format!("cannot use {shown:?}: {}", error_chain(&error)),
    })
}

async fn run(config: Config, kubeconfig: Option<Kubeconfig>) -> Result<(), RunError> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %config.listen,
        leader_election = config.leader_election.is_some(),
        "Starting caller-reputation-operator"
    );
    let mut signals = TerminationSignals::install().map_err(RunError::Signals)?;
    plivo::install_crypto_provider();

    let kube_config = kube_config(kubeconfig).await?;
    let fence = match &config.leader_election {
        Some(settings) => Fence::elected(leader::fence_validity(settings.lease_duration)),
        None => Fence::unelected(),
    };
    let client = ClientBuilder::try_from(kube_config.clone())
        .map_err(RunError::KubeClient)?
        .with_layer(&GuardWritesLayer::new(fence.clone()))
        .build();
    let metrics = Arc::new(Metrics::new());
    let replica = config.leader_election.as_ref().map(|s| s.identity.as_str());
    let plivo = plivo_client(&config.plivo, replica, &metrics)?.with_fence(fence.clone());
    let readiness = Arc::new(Readiness::default());
    let hub = Arc::new(CallbackHub::default());

    let listener = http::bind(config.listen)
        .await
        .map_err(|source| RunError::Listen {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(config.listen);
    let (trigger, shutdown) = shutdown::channel();
    let (server_stop, server) = serve_http(
        listener,
        CallbackState {
            sink: hub.clone(),
            public_base_url: config.settings.callback_base_url.clone(),
            readiness: readiness.clone(),
            metrics: metrics.clone(),
        },
    );
    tracing::info!(address = %address, "Serving /healthz, /readyz, /metrics and callbacks");

    let controllers = Controllers {
        launcher: launcher(client, plivo, &config, &metrics, &readiness, &hub),
        readiness,
        metrics,
        shutdown_timeout: config.shutdown_timeout,
        fence,
    };
    let elect = elect(kube_config, &config, &controllers, shutdown);
    tokio::pin!(elect);
    let outcome = tokio::select! {
        outcome = &mut elect => outcome,
        name = signals.recv() => {
            tracing::info!(signal = name, "Shutting down");
            trigger.trigger();
            tokio::select! {
                outcome = &mut elect => outcome,
                name = signals.recv() => {
                    tracing::warn!(signal = name, "Received a second signal, exiting without waiting for reconciles or releasing the Lease");
                    Ok(())
                }
            }
        }
    };

    stop_http(server_stop, server).await;
    outcome
}

/// Runs the controllers, under the Lease when leader election is on.
async fn elect(
    kube_config: kube::Config,
    config: &Config,
    controllers: &Controllers,
    shutdown: ShutdownSignal,
) -> Result<(), RunError> {
    match &config.leader_election {
        Some(settings) => {
            let observations = LeaseObservations::default();
            let client = election_client(kube_config, settings, &controllers.fence, &observations)?;
            leader::run_elected(client, &observations, settings, controllers, shutdown).await?;
        }
        None => leader::run_unelected(controllers, shutdown).await?,
    }
    Ok(())
}

/// Builds the client that takes part in the election. Its accepted Lease
/// renewals open the controllers' fence, and it takes another holder's Lease
/// only after seeing it unchanged for the lease duration.
fn election_client(
    kube_config: kube::Config,
    settings: &LeaderElectionSettings,
    fence: &Fence,
    observations: &LeaseObservations,
) -> Result<kube::Client, RunError> {
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let confirm = ConfirmRenewalsLayer::new(
        fence.clone(),
        &namespace,
        &settings.lease_name,
        &settings.identity,
    );
    let takeover = TakeoverGuardLayer::new(
        &namespace,
        &settings.lease_name,
        &settings.identity,
        observations.clone(),
    );
    Ok(ClientBuilder::try_from(kube_config)
        .map_err(RunError::KubeClient)?
        .with_layer(&confirm)
        .with_layer(&takeover)
        .build())
}

/// Builds the function that starts one term of the controllers.
fn launcher(
    client: kube::Client,
    plivo: PlivoClient,
    config: &Config,
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
    hub: &Arc<CallbackHub>,
) -> Launcher {
    let settings = config.settings.clone();
    let metrics: Arc<dyn ControllerMetrics> = metrics.clone();
    let readiness = readiness.clone();
    let hub = hub.clone();

    Arc::new(move |stop: BoxFuture<'static, ()>| {
        let run = controller::run(
            client.clone(),
            plivo.clone(),
            settings.clone(),
            metrics.clone(),
            hub.clone(),
            stop,
        );
        let readiness = readiness.clone();
        let hub = hub.clone();
        // The leader is ready once its caches are filled; the run may end first on a stop.
        Box::pin(async move {
            let ready = async {
                hub.wait_synced().await;
                readiness.set_ready(true);
                std::future::pending::<()>().await
            };
            tokio::select! {
                () = run => {}
                () = ready => {}
            }
        })
    })
}

fn serve_http(
    listener: tokio::net::TcpListener,
    callbacks: CallbackState,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(callbacks);
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        if let Err(error) = http::serve(listener, router, stopped).await {
            tracing::error!(error = %error, "HTTP server failed");
        }
    });
    (stop, server)
}

async fn stop_http(stop: tokio::sync::oneshot::Sender<()>, server: tokio::task::JoinHandle<()>) {
    let _ = stop.send(());
    if tokio::time::timeout(HTTP_STOP_TIMEOUT, server)
        .await
        .is_err()
    {
        tracing::warn!("HTTP server did not stop in time");
    }
}

async fn kube_config(kubeconfig: Option<Kubeconfig>) -> Result<kube::Config, RunError> {
    match kubeconfig {
        Some(kubeconfig) => {
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|error| RunError::KubeConfig(Box::new(error)))
        }
        None => kube::Config::infer()
            .await
            .map_err(|error| RunError::KubeConfig(Box::new(error))),
    }
}

/// Builds the Plivo client with the metrics as request observer; `replica`
/// is the leader-election identity, named in the User-Agent.
fn plivo_client(
    settings: &PlivoSettings,
    replica: Option<&str>,
    metrics: &Arc<Metrics>,
) -> Result<PlivoClient, RunError> {
    let config = plivo::ClientConfig {
        base_url: settings.base_url.clone(),
        requests_per_window: settings.requests_per_window,
        window: settings.window,
        timeout: settings.timeout,
        extra_root_certificates: settings.extra_root_certificates.clone(),
        replica: replica.map(str::to_string),
        ..plivo::ClientConfig::default()
    };
    let client =
        PlivoClient::new(config).map_err(|error| RunError::PlivoClient(Box::new(error)))?;
    Ok(client.with_observer(metrics.clone()))
}

/// Renders an error and its sources as one line. A cause whose text the
/// line already contains is skipped, as some errors repeat their source.
fn error_chain(error: &dyn StdError) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to list numbers")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read: {0}")]
    struct Repeating(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_causes() {
        let error = Outer(std::io::Error::other("connection refused"));

        assert_eq!(
            error_chain(&error),
            "failed to list numbers: connection refused"
        );
    }

    #[test]
    fn error_chain_skips_repeated_cause() {
        let error = Repeating(std::io::Error::other("connection refused"));

        assert_eq!(error_chain(&error), "failed to read: connection refused");
    }

    #[test]
    fn missing_kubeconfig_is_a_config_error() {
        let directory = tempfile::tempdir().unwrap();
        let error = read_kubeconfig(&directory.path().join("absent")).unwrap_err();

        assert_eq!(error.flag, "kubeconfig");
        assert!(error.reason.contains("No such file"), "{error}");
    }

    #[test]
    fn malformed_kubeconfig_is_a_config_error() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config");
        std::fs::write(&path, "clusters: [unclosed").unwrap();

        let error = read_kubeconfig(&path).unwrap_err();

        assert_eq!(error.flag, "kubeconfig");
        assert!(!error.to_string().contains('\n'), "{error}");
    }
}

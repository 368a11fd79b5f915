//! Starting and stopping a sandbox: the shared state behind every handler,
//! background work (carrier decisions, callbacks), persistence and the
//! connection loop.
//!
//! Connections are served by hand rather than with `axum::serve` so that a
//! fault can close one connection without a response, and so that HTTPS needs
//! no extra server crate.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::callbacks::{self, DeliveryRecord};
use super::config::{SandboxConfig, SeedNumber, TlsConfig};
use super::faults::{FaultConfig, FaultPlan, InvalidFault};
use super::rate_limit::RateLimiter;
use super::request_log::RequestLog;
use super::state::{CrStatus, DecisionJob, DecisionRules, Effects, State, digits_only};
use super::{admin, api};

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Callback deliveries kept for `GET /_sandbox/callbacks`.
const DELIVERY_CAPACITY: usize = 10_000;

/// Reasons a sandbox cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("failed to read state file {}", path.display())]
    ReadState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {} is not sandbox state; move it away to start empty", path.display())]
    ParseState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "account {0:?} is invalid: the Auth ID and Auth Token must both be non-empty and the Auth ID must not contain ':' or '/'"
    )]
    InvalidAccount(String),
    #[error("seed number is invalid: {0}")]
    InvalidSeedNumber(String),
    #[error("seed number {number} names account {account}, which is not configured")]
    UnknownSeedAccount { number: String, account: String },
    #[error("fault configuration is invalid")]
    InvalidFaults(#[source] InvalidFault),
    #[error("TLS certificate or key is invalid: {0}")]
    InvalidTls(String),
    #[error("failed to generate a self-signed certificate")]
    SelfSigned(#[source] rcgen::Error),
    #[error("failed to build the HTTP client for callbacks: {0}")]
    CallbackClient(String),
}

/// State shared by handlers and background tasks of one sandbox.
pub struct Shared {
    tokens: HashMap<String, String>,
    state: Mutex<State>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) limiter: Mutex<RateLimiter>,
    faults: Mutex<HashMap<String, FaultConfig>>,
    default_faults: FaultConfig,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    pub(crate) rules: DecisionRules,
    pub(crate) activation_delay: Duration,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) retry_scale: f64,
    state_file: Option<PathBuf>,
    seeds: Vec<SeedNumber>,
    pub(crate) http: reqwest::Client,
    shutdown: watch::Receiver<bool>,
}

/// Locks `mutex`, recovering the data if a panicking thread poisoned it: every
/// critical section leaves the data consistent before anything can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns the current Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Shared {
    /// Returns the Auth Token of `account`.
    pub(crate) fn token(&self, account: &str) -> Option<String> {
        self.tokens.get(account).cloned()
    }

    /// Returns whether `account` is configured.
    pub(crate) fn has_account(&self, account: &str) -> bool {
        self.tokens.contains_key(account)
    }

    /// Returns the configured account IDs.
    pub(crate) fn account_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.tokens.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Returns whether `password` is the Auth Token of `account`, comparing in
    /// constant time.
    pub(crate) fn token_matches(&self, account: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.tokens
            .get(account)
            .is_some_and(|token| bool::from(token.as_bytes().ct_eq(password.as_bytes())))
    }

    /// Runs `read` on the state.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        read(&lock(&self.state))
    }

    /// Runs `change` on the state; on success writes the state file and starts
    /// the returned effects.
    pub(crate) fn change<T, E>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut State) -> Result<(T, Effects), E>,
    ) -> Result<T, E> {
        let (value, effects) = {
            let mut state = lock(&self.state);
            let (value, effects) = change(&mut state)?;
            self.persist(&state);
            (value, effects)
        };
        self.start_effects(effects);
        Ok(value)
    }

    /// Returns the faults configured for `account`.
    pub(crate) fn faults_for(&self, account: &str) -> FaultConfig {
        lock(&self.faults)
            .get(account)
            .cloned()
            .unwrap_or_else(|| self.default_faults.clone())
    }

    /// Decides the faults for one request of `account` and counts it against
    /// the account's `remaining` budget.
    pub(crate) fn plan_faults(&self, account: &str, endpoint: &str) -> (FaultConfig, FaultPlan) {
        let mut all = lock(&self.faults);
        let faults = all
            .entry(account.to_string())
            .or_insert_with(|| self.default_faults.clone());
        let plan = faults.plan(endpoint, rand::random::<f64>);
        (faults.clone(), plan)
    }

    /// Replaces the faults of `account`.
    pub(crate) fn set_faults(&self, account: &str, faults: FaultConfig) {
        lock(&self.faults).insert(account.to_string(), faults);
    }

    /// Returns the faults of every account.
    pub(crate) fn all_faults(&self) -> HashMap<String, FaultConfig> {
        self.account_ids()
            .into_iter()
            .map(|account| {
                let faults = self.faults_for(&account);
                (account, faults)
            })
            .collect()
    }

    /// Appends a callback delivery attempt.
    pub(crate) fn record_delivery(&self, record: DeliveryRecord) {
        let mut deliveries = lock(&self.deliveries);
        if deliveries.len() == DELIVERY_CAPACITY {
            deliveries.remove(0);
        }
        deliveries.push(record);
    }

    /// Returns every recorded callback delivery attempt.
    pub(crate) fn deliveries(&self) -> Vec<DeliveryRecord> {
        lock(&self.deliveries).clone()
    }

    /// Restores the start-up state: seed numbers only, no profiles, empty
    /// logs, start-up faults, fresh rate-limit windows.
    pub(crate) fn reset(self: &Arc<Self>) -> Result<(), Error> {
        let fresh = seeded_state(&self.seeds)?;
        self.change(|state| {
            *state = fresh;
            Ok::<_, Error>(((), Effects::default()))
        })?;
        lock(&self.log).clear();
        lock(&self.limiter).reset();
        lock(&self.faults).clear();
        lock(&self.deliveries).clear();
        Ok(())
    }

    /// Sleeps for `duration`; returns `false` if the sandbox shuts down first.
    pub(crate) async fn sleep_unless_shutdown(&self, duration: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = stopped(&mut shutdown) => false,
        }
    }

    fn start_effects(self: &Arc<Self>, effects: Effects) {
        let Effects {
            callbacks,
            decisions,
        } = effects;
        for job in decisions {
            tokio::spawn(run_decision_later(Arc::clone(self), job));
        }
        for job in callbacks {
            tokio::spawn(callbacks::deliver(Arc::clone(self), job));
        }
    }

    /// Writes the state file atomically: a temporary file next to it, then a rename.
    // NOTE: this runs under the state lock and blocks the calling worker thread;
    // fine for demo-sized state, a cost for thousands of profiles.
    fn persist(&self, state: &State) {
        let Some(path) = &self.state_file else {
            return;
        };
        if let Err(error) = write_atomically(path, state) {
            tracing::error!(path = %path.display(), %error, "Failed to write state file");
        }
    }
}

fn write_atomically(path: &Path, state: &State) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, json)?;
    std::fs::rename(&temporary, path)
}

/// Waits until the shutdown flag is set (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopped| *stopped).await;
}

async fn run_decision_later(shared: Arc<Shared>, job: DecisionJob) {
    let wait_ms = job.decide_at_ms.saturating_sub(now_ms()).max(0);
    let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or_default());
    if !shared.sleep_unless_shutdown(wait).await {
        return;
    }
    let rules = shared.rules.clone();
    let _ = shared.change(|state| Ok::<_, Error>(((), state.run_decision(&job, &rules))));
}

fn seeded_state(seeds: &[SeedNumber]) -> Result<State, Error> {
    let mut state = State::default();
    let today = jiff::Zoned::now().date().to_string();
    for seed in seeds {
        state
            .add_number(seed, &today, &mut Effects::default())
            .map_err(Error::InvalidSeedNumber)?;
    }
    Ok(state)
}

fn load_state(path: &Path) -> Result<Option<State>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::ParseState {
                path: path.to_path_buf(),
                source,
            }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadState {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Entry point for starting a sandbox.
pub struct Sandbox;

impl Sandbox {
    /// Binds the listener, loads or seeds the state and starts serving.
    ///
    /// A state file that exists is loaded and the seed numbers are ignored;
    /// numbers that were `PENDING` get their carrier decision at the stored time.
    ///
    /// # Errors
    /// Invalid accounts, seed numbers, faults or TLS material, an unreadable
    /// state file, or an address that cannot be bound.
    pub async fn start(config: SandboxConfig) -> Result<RunningSandbox, Error> {
        // reqwest is built without a default TLS provider; ring is the one this
        // crate ships. Another caller may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let SandboxConfig {
            listen,
            accounts,
            numbers,
            activation_delay,
            fail_eins,
            fail_without_website,
            rate_limit,
            callback_retry_scale,
            state_file,
            faults,
            tls,
        } = config;

        let tokens = check_accounts(&accounts)?;
        for seed in &numbers {
            if !tokens.contains_key(&seed.account) {
                return Err(Error::UnknownSeedAccount {
                    number: seed.number.clone(),
                    account: seed.account.clone(),
                });
            }
        }
        faults.validate().map_err(Error::InvalidFaults)?;
        let acceptor = tls.as_ref().map(tls_acceptor).transpose()?;

        let state = match state_file.as_deref().map(load_state).transpose()?.flatten() {
            Some(state) => state,
            None => seeded_state(&numbers)?,
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;

        let http = reqwest::Client::builder()
            .no_proxy()
            // Callback receivers are on loopback only and may use self-signed certificates.
            .tls_danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| Error::CallbackClient(error.to_string()))?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let pending = state.pending_decisions();
        let shared = Arc::new(Shared {
            tokens,
            state: Mutex::new(state),
            log: Mutex::default(),
            limiter: Mutex::default(),
            faults: Mutex::default(),
            default_faults: faults,
            deliveries: Mutex::default(),
            rules: DecisionRules {
                fail_eins,
                fail_without_website,
            },
            activation_delay,
            rate_limit: rate_limit.filter(|limit| *limit > 0),
            retry_scale: callback_retry_scale.max(0.0),
            state_file,
            seeds: numbers,
            http,
            shutdown: shutdown_rx.clone(),
        });
        shared.persist(&lock(&shared.state));
        shared.start_effects(Effects {
            callbacks: Vec::new(),
            decisions: pending,
        });

        let app = Router::new()
            .merge(api::router(Arc::clone(&shared)))
            .merge(admin::router(Arc::clone(&shared)));
        let https = acceptor.is_some();
        let server = tokio::spawn(accept_connections(listener, app, acceptor, shutdown_rx));

        Ok(RunningSandbox {
            addr,
            https,
            shared,
            shutdown: shutdown_tx,
            server,
        })
    }
}

fn check_accounts(accounts: &[(String, String)]) -> Result<HashMap<String, String>, Error> {
    let mut tokens = HashMap::new();
    for (auth_id, token) in accounts {
        if auth_id.is_empty() || token.is_empty() || auth_id.contains([':', '/']) {
            return Err(Error::InvalidAccount(auth_id.clone()));
        }
        tokens.insert(auth_id.clone(), token.clone());
    }
    Ok(tokens)
}

fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, Error> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::InvalidTls(format!("certificate: {error}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidTls("no certificate in PEM input".to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|error| Error::InvalidTls(format!("private key: {error}")))?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| Error::InvalidTls(error.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|error| Error::InvalidTls(error.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// A started sandbox. Dropping it without [`RunningSandbox::shutdown`] leaves
/// it serving until the runtime stops.
pub struct RunningSandbox {
    addr: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningSandbox {
    /// Returns the base URL, such as `http://127.0.0.1:41234/`; Plivo paths
    /// (`v1/Account/...`) and admin paths (`_sandbox/...`) join onto it.
    pub fn base_url(&self) -> url::Url {
        let scheme = if self.https { "https" } else { "http" };
        let host = match self.addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        url::Url::parse(&format!("{scheme}://{host}:{}/", self.addr.port()))
            .expect("scheme, IP address and port always form a valid URL")
    }

    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the logged Plivo API requests, oldest first.
    pub fn requests(&self) -> Vec<super::request_log::RequestRecord> {
        lock(&self.shared.log).since(0, None)
    }

    /// Returns a copy of the state (profiles, numbers, counters).
    pub fn state(&self) -> State {
        self.shared.read(State::clone)
    }

    /// Returns every callback delivery attempt so far.
    pub fn callbacks(&self) -> Vec<DeliveryRecord> {
        self.shared.deliveries()
    }

    /// Replaces the faults of one account.
    pub fn set_faults(&self, account: &str, faults: FaultConfig) {
        self.shared.set_faults(account, faults);
    }

    /// Rents a number, as `POST /_sandbox/numbers` does.
    ///
    /// # Errors
    /// The account is not configured, the number has no digits, or another
    /// account rents it.
    pub fn add_number(&self, seed: &SeedNumber) -> Result<(), String> {
        if !self.shared.has_account(&seed.account) {
            return Err(format!("account {} is not configured", seed.account));
        }
        let today = jiff::Zoned::now().date().to_string();
        self.shared.change(|state| {
            let mut effects = Effects::default();
            state.add_number(seed, &today, &mut effects)?;
            Ok(((), effects))
        })
    }

    /// Sets a number's Caller Reputation status now, as
    /// `POST /_sandbox/numbers/{number}/decision` does. Returns `false` when no
    /// account rents the number.
    pub fn force_status(&self, number: &str, status: CrStatus) -> bool {
        let number = digits_only(number);
        self.shared
            .change(|state| {
                let mut effects = Effects::default();
                let found = state.force_status(&number, status, &mut effects);
                Ok::<_, ()>((found, effects))
            })
            .unwrap_or(false)
    }

    /// Stops accepting, closes open connections and stops timers and callbacks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
    }
}

/// Closes one connection from inside a handler.
#[derive(Clone, Default)]
pub(crate) struct ConnectionKiller(Arc<Notify>);

impl ConnectionKiller {
    /// Makes the connection task drop the connection without a response.
    pub(crate) fn kill(&self) {
        self.0.notify_one();
    }
}

async fn accept_connections(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, app.clone(), tls.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "Failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, app: Router, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let killer = ConnectionKiller::default();
    let service = {
        let killer = killer.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(killer.clone());
            app.clone().oneshot(request.map(Body::new))
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());

    match tls {
        None => {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = killer.0.notified() => {}
            }
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = killer.0.notified() => {}
            }
        }
    }
}

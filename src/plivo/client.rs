//! The HTTP client: configuration, credentials, per-account handles and the request loop.
//!
//! [`PlivoClient`] owns one connection pool and one rate limiter per Auth ID. [`Account`] is a cheap
//! handle for one set of credentials; every Plivo call goes through [`Account::execute`], which waits
//! for the limiter, sends the request, classifies the response and repeats it when that is safe.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::error::{Error, Operation, truncate};
use super::limiter::WindowLimiter;
use super::observer::{NoopObserver, RequestObserver};
use super::retry::{self, Idempotency, Outcome};
use crate::fence::{Fence, NotLeader};

/// Largest success body the client reads; Plivo pages hold at most 20 objects.
const MAX_SUCCESS_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Text that replaces credentials found in an error body.
const REDACTED: &str = "[redacted]";

/// Largest error body the client reads before it extracts and truncates the message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Plivo credentials of one account or subaccount. `Debug` shows the Auth ID only.
#[derive(Clone)]
pub struct Credentials {
    /// Auth ID (`MA…` or `SA…`), also the account segment of every path and the Basic-auth user.
    pub auth_id: String,
    /// Auth Token, the Basic-auth password.
    pub auth_token: SecretString,
}

impl Credentials {
    /// Creates credentials from an Auth ID and an Auth Token.
    pub fn new(auth_id: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            auth_id: auth_id.into(),
            auth_token: SecretString::from(auth_token.into()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_id", &self.auth_id)
            .field("auth_token", &"[redacted]")
            .finish()
    }
}

/// Settings of a [`PlivoClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix in front of `/v1/`; default `https://api.plivo.com`.
    pub base_url: Url,
    /// Requests one account may send per `window`; default 300, Plivo's documented limit.
    pub requests_per_window: u32,
    /// Length of the sliding rate-limit window; default 5 s.
    pub window: Duration,
    /// Time limit of one HTTP attempt, body included; default 10 s.
    pub timeout: Duration,
    /// Retries after the first attempt for 429, 5xx and transport errors where safe; default 3.
    pub max_retries: u32,
    /// PEM certificates trusted in addition to the platform's roots, for a
    /// sandbox or a TLS-intercepting proxy; default none.
    pub extra_root_certificates: Vec<String>,
    /// Name of this operator replica, sent in the User-Agent as
    /// `caller-reputation-operator/0.1.0 (replica-0)` so that request logs show
    /// which replica sent a request; default none.
    pub replica: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            // A literal that always parses.
            base_url: Url::parse("https://api.plivo.com").expect("default base URL is valid"),
            requests_per_window: 300,
            window: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_retries: 3,
            extra_root_certificates: Vec::new(),
            replica: None,
        }
    }
}

/// Client of Plivo's REST API; cheap to clone.
#[derive(Clone)]
pub struct PlivoClient {
    shared: Arc<Shared>,
    observer: Arc<dyn RequestObserver>,
    fence: Fence,
}

struct Shared {
    http: reqwest::Client,
    config: ClientConfig,
    limiters: Mutex<HashMap<String, Arc<WindowLimiter>>>,
}

impl fmt::Debug for PlivoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlivoClient")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl PlivoClient {
    /// Creates a client and installs the process-wide rustls crypto provider if none is installed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a base URL that is not http(s) or a zero limit, window or
    /// timeout; [`Error::Transport`] when the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        install_crypto_provider();
        validate(&config)?;

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut roots = Vec::new();
        for pem in &config.extra_root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|source| {
                Error::InvalidArgument {
                    operation: Operation::new("create the Plivo client", None),
                    message: format!("extra root certificate is not PEM: {source}"),
                }
            })?;
            roots.push(certificate);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .user_agent(user_agent(config.replica.as_deref())?)
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|source| Error::Transport {
                operation: Operation::new("build the HTTP client", None),
                source,
            })?;

        Ok(Self {
            shared: Arc::new(Shared {
                http,
                config,
                limiters: Mutex::new(HashMap::new()),
            }),
            observer: Arc::new(NoopObserver),
            fence: Fence::unelected(),
        })
    }

    /// Reports every attempt and every limiter wait of accounts created afterwards to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Makes every request of accounts created afterwards check `fence` just
    /// before it is sent. A closed fence fails the request with
    /// [`Error::NotLeader`], and nothing reaches Plivo.
    #[must_use]
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// Returns the configuration the client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Returns a handle for one account; all handles of one Auth ID share one rate limiter.
    pub fn account(&self, credentials: Credentials) -> Account {
        let limiter = {
            let mut limiters = self
                .shared
                .limiters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let config = &self.shared.config;
            Arc::clone(
                limiters
                    .entry(credentials.auth_id.clone())
                    .or_insert_with(|| {
                        Arc::new(WindowLimiter::new(
                            config.requests_per_window,
                            config.window,
                        ))
                    }),
            )
        };
        Account {
            shared: Arc::clone(&self.shared),
            credentials: Arc::new(credentials),
            limiter,
            observer: Arc::clone(&self.observer),
            fence: self.fence.clone(),
        }
    }
}

fn validate(config: &ClientConfig) -> Result<(), Error> {
    let invalid = |message: String| Error::InvalidArgument {
        operation: Operation::new("create the Plivo client", None),
        message,
    };
    let url = &config.base_url;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid(format!(
            "base URL {url} is not an http or https URL"
        )));
    }
    if config.requests_per_window == 0 || config.window.is_zero() {
        return Err(invalid(
            "requests per window and window length must be greater than zero".into(),
        ));
    }
    if config.timeout.is_zero() {
        return Err(invalid("timeout must be greater than zero".into()));
    }
    Ok(())
}

/// Builds the User-Agent header, naming `replica` when set.
fn user_agent(replica: Option<&str>) -> Result<HeaderValue, Error> {
    let product = concat!("caller-reputation-operator/", env!("CARGO_PKG_VERSION"));
    let text = match replica {
        Some(replica) => format!("{product} ({replica})"),
        None => product.to_string(),
    };
    HeaderValue::from_str(&text).map_err(|_| Error::InvalidArgument {
        operation: Operation::new("create the Plivo client", None),
        message: format!(
            "replica name {replica:?} is not valid in a User-Agent header; use visible ASCII characters"
        ),
    })
}

/// Installs rustls' `ring` provider as the process default; an already installed provider is kept.
pub fn install_crypto_provider() {
    // `Err` only means another provider is already installed, which is fine for this process.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Handle for one Plivo account: its credentials, the shared connection pool and its rate limiter.
#[derive(Clone)]
pub struct Account {
    shared: Arc<Shared>,
    credentials: Arc<Credentials>,
    limiter: Arc<WindowLimiter>,
    observer: Arc<dyn RequestObserver>,
    fence: Fence,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("auth_id", &self.credentials.auth_id)
            .field("base_url", &self.shared.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// One Plivo call before it is sent.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Template for spans and metrics, e.g. `GET /Number/{number}/`.
    pub endpoint: &'static str,
    /// Path segments after `/v1/Account/{auth_id}/`; the client appends the trailing slash.
    pub segments: &'a [&'a str],
    pub query: Vec<(&'static str, String)>,
    /// JSON body, serialised once so that retries send identical bytes.
    pub body: Option<Vec<u8>>,
    pub idempotency: Idempotency,
    pub operation: Operation,
}

/// A 2xx response.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Result of one attempt: a response of any status, or a transport error.
enum Attempt {
    Response {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    Failed(reqwest::Error),
}

impl Account {
    /// Auth ID of this account.
    pub fn auth_id(&self) -> &str {
        &self.credentials.auth_id
    }

    /// Returns `body` with the Auth Token and the Basic-auth value built from it replaced, so
    /// that an error text echoing the request cannot carry them into conditions, Events or logs.
    fn redacted(&self, body: &[u8]) -> Vec<u8> {
        let token = self.credentials.auth_token.expose_secret();
        if token.is_empty() {
            return body.to_vec();
        }
        let basic = BASE64.encode(format!("{}:{token}", self.credentials.auth_id));
        String::from_utf8_lossy(body)
            .replace(&basic, REDACTED)
            .replace(token, REDACTED)
            .into_bytes()
    }

    /// Sends `call`, repeating it on 429, 5xx and transport errors where [`retry::may_retry`] allows.
    pub(crate) async fn execute(&self, call: Call<'_>) -> Result<Reply, Error> {
        let url = self.url(&call)?;
        let max_retries = self.shared.config.max_retries;
        let mut retry = 0;
        loop {
            let span = tracing::debug_span!(
                "plivo_request",
                endpoint = call.endpoint,
                attempt = retry + 1,
                "http.status" = tracing::field::Empty,
            );
            let attempt = self.attempt(&call, &url).instrument(span.clone()).await?;

            let (error, retry_after, allowed) = match attempt {
                Attempt::Response { status, body, .. } if status.is_success() => {
                    return Ok(Reply { status, body });
                }
                Attempt::Response {
                    status,
                    headers,
                    body,
                } => {
                    let retry_after = retry::retry_after(&headers);
                    if let Some(after) = retry_after
                        && (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                    {
                        // Retry-After applies to the whole account, not only to this request.
                        self.limiter.pause_for(after);
                    }
                    let allowed = retry::may_retry(call.idempotency, Outcome::Status(status));
                    let body = self.redacted(&body);
                    let error =
                        Error::from_response(call.operation.clone(), status, retry_after, &body);
                    (error, retry_after, allowed)
                }
                Attempt::Failed(source) => {
                    let allowed = retry::may_retry(call.idempotency, Outcome::Transport(&source));
                    let error = Error::Transport {
                        operation: call.operation.clone(),
                        source: source.without_url(),
                    };
                    (error, None, allowed)
                }
            };

            let delay = (allowed && retry < max_retries)
                .then(|| retry::delay(retry, retry_after))
                .flatten();
            let Some(delay) = delay else {
                return Err(error);
            };

            span.in_scope(|| {
                tracing::warn!(
                    error = %error,
                    error.kind = error.kind(),
                    retry_after_s = retry_after.map(|after| after.as_secs()),
                    delay_ms = delay.as_millis() as u64,
                    "Retrying Plivo request"
                );
            });
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    /// Sends one HTTP request, bounded by the rate limiter and the client timeout.
    ///
    /// # Errors
    /// [`Error::NotLeader`] when the fence is closed after the limiter wait; nothing is sent then.
    async fn attempt(&self, call: &Call<'_>, url: &Url) -> Result<Attempt, Error> {
        let (slot, waited) = self.limiter.acquire().await;
        if !waited.is_zero() {
            self.observer
                .rate_limit_waited(&self.credentials.auth_id, waited);
            tracing::debug!(
                waited_ms = waited.as_millis() as u64,
                "Waited for the client-side rate limit"
            );
        }

        // Checked after the limiter, which may have waited long enough for the Lease to expire.
        self.fence.check().map_err(|source| Error::NotLeader {
            operation: call.operation.clone(),
            source,
        })?;
        let mut request = self
            .shared
            .http
            .request(call.method.clone(), url.clone())
            .basic_auth(
                &self.credentials.auth_id,
                Some(self.credentials.auth_token.expose_secret()),
            );
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let started = Instant::now();
        let result = async {
            let response = match fenced(&self.fence, request.send()).await? {
                Ok(response) => response,
                Err(error) => return Ok(Err(error)),
            };
            let status = response.status();
            let headers = response.headers().clone();
            let limit = if status.is_success() {
                MAX_SUCCESS_BODY_BYTES
            } else {
                MAX_ERROR_BODY_BYTES
            };
            let body = match read_body(response, limit).await {
                Ok(body) => body,
                Err(error) => return Ok(Err(error)),
            };
            Ok::<_, NotLeader>(Ok(Attempt::Response {
                status,
                headers,
                body,
            }))
        }
        .await;
        let elapsed = started.elapsed();
        // The permit returns one window after the response, as the limiter's guarantee requires.
        drop(slot);

        let status = match &result {
            Ok(Ok(Attempt::Response { status, .. })) => Some(status.as_u16()),
            _ => None,
        };
        if let Some(status) = status {
            tracing::Span::current().record("http.status", status);
        }
        self.observer
            .request_finished(call.endpoint, status, elapsed);
        tracing::debug!(
            elapsed_ms = elapsed.as_millis() as u64,
            "Plivo request finished"
        );
        match result {
            Ok(attempt) => Ok(attempt.unwrap_or_else(Attempt::Failed)),
            Err(source) => Err(Error::NotLeader {
                operation: call.operation.clone(),
                source,
            }),
        }
    }

    fn url(&self, call: &Call<'_>) -> Result<Url, Error> {
        let auth_id = self.credentials.auth_id.as_str();
        if auth_id.is_empty() {
            return Err(Error::InvalidArgument {
                operation: call.operation.clone(),
                message: "the Auth ID is empty".into(),
            });
        }
        let mut url = self.shared.config.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                // `validate` rejected bases that cannot take a path.
                .expect("base URL can be a base");
            path.pop_if_empty().extend(["v1", "Account", auth_id]);
            path.extend(call.segments).push("");
        }
        Ok(url)
    }
}

/// Polls `send` only while `fence` is open, and drops it once the fence closes.
///
/// A process stopped after the fence check of [`Account::attempt`] could otherwise connect and
/// write the request after it resumes. Checking before every poll leaves only the time between
/// one check and the writes of that same poll: no write happens in a poll that starts after the
/// Lease expired.
pub(super) async fn fenced<F: Future>(fence: &Fence, send: F) -> Result<F::Output, NotLeader> {
    let mut send = std::pin::pin!(send);
    std::future::poll_fn(|cx| {
        if let Err(closed) = fence.check() {
            return Poll::Ready(Err(closed));
        }
        send.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// Reads at most `limit` bytes of the body; the rest is dropped with the connection.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// Decodes a 2xx JSON body, or reports which shape was expected and what arrived.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    operation: &Operation,
    reply: &Reply,
) -> Result<T, Error> {
    let body: &[u8] = if reply.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &reply.body
    };
    serde_json::from_slice(body).map_err(|error| Error::Decode {
        operation: operation.clone(),
        status: reply.status.as_u16(),
        message: format!(
            "{error}; body starts with: {}",
            truncate(String::from_utf8_lossy(&reply.body).into_owned(), 256)
        ),
    })
}

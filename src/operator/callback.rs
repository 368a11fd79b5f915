//! The endpoint that receives Plivo's Caller Reputation status callbacks.
//!
//! Plivo calls `POST` (form-encoded body) or `GET` (query parameters) on
//! [`CALLBACK_PATH`] with `number`, `profile_uuid`, `caller_reputation_status`
//! and `api_id`. A callback is only a hint that the number changed: a
//! verified one triggers a reconcile, which reads the number from Plivo.
//!
//! Verification uses the Auth Tokens of the accounts that own the number, as
//! returned by [`CallbackSink::targets`]. `X-Plivo-Signature-V3` and
//! `X-Plivo-Signature-Ma-V3` are checked first; the V2 headers only when no V3
//! header is present. The signed URL is the public callback URL the operator
//! registered at Plivo, so a TLS-terminating proxy in front of the operator
//! does not break signatures. Without `--callback-base-url` the URL is
//! rebuilt from the request as `http://` + Host header + path and query.
//!
//! Responses:
//! - 200 after triggering the matching resources.
//! - 400 when `number` is missing or not digits.
//! - 403 when the signature is missing or wrong, and also when no managed
//!   resource has the number, so a caller learns nothing about which numbers
//!   are managed.
//! - 413 for a body over [`BODY_LIMIT`].
//! - 503 on a replica that is not the leader (a standby, or one still
//!   starting), because only the leader reconciles. Plivo retries callbacks
//!   that do not get a 200.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use secrecy::ExposeSecret;
use url::{Url, form_urlencoded};

use super::{
    metrics::Metrics,
    readiness::{Readiness, Role},
};
pub use crate::controller::{CALLBACK_PATH, public_callback_url};
use crate::{controller::CallbackSink, plivo::signature};

/// Largest accepted callback body; Plivo's status callbacks are a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

const V3_SIGNATURE_HEADERS: [&str; 2] = ["x-plivo-signature-v3", "x-plivo-signature-ma-v3"];
const V3_NONCE_HEADER: &str = "x-plivo-signature-v3-nonce";
const V2_SIGNATURE_HEADERS: [&str; 2] = ["x-plivo-signature-v2", "x-plivo-signature-ma-v2"];
const V2_NONCE_HEADER: &str = "x-plivo-signature-v2-nonce";

/// Warnings about rejected callbacks, at most one per interval, so that a flood of forged
/// requests cannot flood the log. The `caller_reputation_callbacks` metric counts every one.
static REJECTION_WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// Admits one event per `interval` and counts the events it held back.
struct Throttle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(ThrottleState {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// Returns the number of events held back since the last admitted one when
    /// the event at `now` is admitted, and `None` when it is held back.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            state.held_back += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.held_back))
    }
}

/// Shared state of the callback endpoint.
#[derive(Clone)]
pub struct CallbackState {
    pub sink: Arc<dyn CallbackSink>,
    /// `--callback-base-url`; `None` verifies against the request's own Host and URI.
    pub public_base_url: Option<Url>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

/// Routes of the callback endpoint.
pub fn routes(state: CallbackState) -> Router {
    Router::new()
        .route(CALLBACK_PATH, get(receive).post(receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Reason a callback was rejected; also the `result` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    NotLeader,
    MalformedNumber,
    Unsigned,
    UnknownNumber,
    BadSignature,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::NotLeader => "not_leader",
            Rejection::MalformedNumber => "malformed",
            Rejection::Unsigned => "unsigned",
            Rejection::UnknownNumber => "unknown_number",
            Rejection::BadSignature => "bad_signature",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Rejection::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::MalformedNumber => StatusCode::BAD_REQUEST,
            Rejection::Unsigned | Rejection::UnknownNumber | Rejection::BadSignature => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

async fn receive(
    State(state): State<CallbackState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&state, &method, &uri, &headers, &body).await {
        Ok(triggered) => {
            state.metrics.callback_received("accepted");
            tracing::debug!(triggered, "Accepted status callback");
            StatusCode::OK.into_response()
        }
        Err(rejection) => {
            state.metrics.callback_received(rejection.label());
            if rejection == Rejection::NotLeader {
                // Expected while standing by; Plivo retries and may reach the leader.
                tracing::debug!(reason = rejection.label(), "Rejected status callback");
            } else if let Some(held_back) = REJECTION_WARNINGS.admit(Instant::now()) {
                tracing::warn!(
                    reason = rejection.label(),
                    rejections_since_last_warning = held_back,
                    "Rejected status callback; further rejections within 60 s are logged at debug level"
                );
            } else {
                tracing::debug!(reason = rejection.label(), "Rejected status callback");
            }
            let mut response = rejection.status().into_response();
            if rejection == Rejection::NotLeader {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            }
            response
        }
    }
}

/// Verifies one callback and triggers the resources it concerns; returns how
/// many were triggered.
async fn accept(
    state: &CallbackState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<usize, Rejection> {
    if state.readiness.role() != Role::Leader {
        return Err(Rejection::NotLeader);
    }

    // GET callbacks are signed over the query, which `url` already holds.
    let params: Vec<(String, String)> = if method == Method::GET {
        Vec::new()
    } else {
        form_urlencoded::parse(body).into_owned().collect()
    };
    let number = find_number(method, uri, &params).ok_or(Rejection::MalformedNumber)?;
    let signature = SignatureHeaders::from_headers(headers).ok_or(Rejection::Unsigned)?;
    let url = verification_url(state.public_base_url.as_ref(), uri, headers)
        .ok_or(Rejection::Unsigned)?;

    let targets = state.sink.targets(&number).await;
    if targets.is_empty() {
        tracing::info!(number = %mask_number(&number), "Status callback for an unmanaged number");
        return Err(Rejection::UnknownNumber);
    }

    let mut triggered = 0;
    for target in &targets {
        let tokens: Vec<&str> = target
            .auth_tokens
            .iter()
            .map(|token| token.expose_secret())
            .collect();
        if signature.verify(method.as_str(), &url, &params, &tokens) {
            tracing::info!(
                namespace = %target.namespace,
                name = %target.name,
                "Status callback received; reconciling"
            );
            state.sink.trigger(&target.namespace, &target.name);
            triggered += 1;
        }
    }
    if triggered == 0 {
        return Err(Rejection::BadSignature);
    }
    Ok(triggered)
}

/// Extracts the `number` parameter as digits only (`+14155550100` gives `14155550100`).
fn find_number(method: &Method, uri: &Uri, form: &[(String, String)]) -> Option<String> {
    let value = if method == Method::GET {
        let query = uri.query().unwrap_or_default();
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "number")
            .map(|(_, value)| value.into_owned())
    } else {
        form.iter()
            .find(|(key, _)| key == "number")
            .map(|(_, value)| value.clone())
    }?;
    let digits = value.trim().trim_start_matches('+');
    // E.164 allows at most 15 digits.
    let valid = (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.to_string())
}

/// The URL Plivo signed: the public callback URL with the request's query,
/// or, with no public URL configured, `http://` + Host + request URI.
fn verification_url(public_base: Option<&Url>, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let query = uri
        .query()
        .map(|query| format!("?{query}"))
        .unwrap_or_default();
    match public_base {
        Some(base) => Some(format!("{}{query}", public_callback_url(base))),
        None => {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            let path = uri.path();
            Some(format!("http://{host}{path}{query}"))
        }
    }
}

/// The signature headers of one request, V3 preferred.
enum SignatureHeaders {
    V3 {
        signatures: Vec<String>,
        nonce: String,
    },
    V2 {
        signatures: Vec<String>,
        nonce: String,
    },
}

impl SignatureHeaders {
    /// Reads V3 headers when any is present, else V2; `None` when the
    /// request is unsigned or lacks the nonce of its family.
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let v3: Vec<String> = V3_SIGNATURE_HEADERS
            .iter()
            .filter_map(|name| read(name))
            .collect();
        if !v3.is_empty() {
            return Some(Self::V3 {
                signatures: v3,
                nonce: read(V3_NONCE_HEADER)?,
            });
        }
        let v2: Vec<String> = V2_SIGNATURE_HEADERS
            .iter()
            .filter_map(|name| read(name))
            .collect();
        if !v2.is_empty() {
            return Some(Self::V2 {
                signatures: v2,
                nonce: read(V2_NONCE_HEADER)?,
            });
        }
        None
    }

    fn verify(
        &self,
        method: &str,
        url: &str,
        params: &[(String, String)],
        tokens: &[&str],
    ) -> bool {
        match self {
            Self::V3 { signatures, nonce } => signatures
                .iter()
                .any(|header| signature::verify_v3(method, url, params, nonce, header, tokens)),
            Self::V2 { signatures, nonce } => signatures
                .iter()
                .any(|header| signature::verify_v2(url, nonce, header, tokens)),
        }
    }
}

/// Keeps the last four digits, so logs can tell numbers apart without
/// holding personal data.
fn mask_number(digits: &str) -> String {
    let visible = digits.len().saturating_sub(4);
    format!("{}{}", "*".repeat(visible), &digits[visible..])
}

#[cfg(test)]
mod tests;

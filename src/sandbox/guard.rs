//! The layer every Plivo API request passes: Basic authentication, the rate
//! limit, fault injection and the request log.
//!
//! Order: authenticate (401 requests are logged but not counted), count
//! against the account's window (429), then apply the account's faults, then
//! run the handler. Admin paths under `/_sandbox/` do not pass this layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::api::new_api_id;
use super::faults::{self, FaultConfig, Outcome};
use super::request_log::RequestRecord;
use super::server::{ConnectionKiller, Shared, lock};

/// Account and endpoint template of a Plivo path.
#[derive(Debug, PartialEq)]
pub struct Route {
    pub account: String,
    /// Path with the variable parts replaced, e.g. `/v1/Account/{auth_id}/Number/{number}/`.
    pub template: String,
}

/// Splits `/v1/Account/{auth_id}/...` into the account and a template; `None`
/// for paths outside an account.
pub fn classify(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1/Account/")?;
    let mut segments = rest.split('/');
    let account = segments.next().filter(|id| !id.is_empty())?.to_string();
    let mut template = "/v1/Account/{auth_id}/".to_string();
    let remaining: Vec<&str> = segments.collect();
    match remaining.as_slice() {
        [] | [""] => {}
        [resource, tail @ ..] => {
            template.push_str(resource);
            match tail {
                [] => {}
                [""] => template.push('/'),
                [_id, rest @ ..] => {
                    let placeholder = match *resource {
                        "Profile" => "{profile_uuid}",
                        "Number" => "{number}",
                        _ => "{id}",
                    };
                    template.push('/');
                    template.push_str(placeholder);
                    for segment in rest {
                        template.push('/');
                        template.push_str(segment);
                    }
                }
            }
        }
    }
    if template.ends_with("/{auth_id}/") && !path.ends_with('/') {
        template.pop();
    }
    Some(Route { account, template })
}

/// Final status and fault of a request, for the log.
struct Served {
    status: u16,
    fault: Option<&'static str>,
}

/// Authenticates, rate-limits, injects faults and logs one request.
pub async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let time = jiff::Timestamp::now().to_string();
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let route = classify(&path);
    let account = route
        .as_ref()
        .map(|r| r.account.clone())
        .unwrap_or_default();
    let endpoint = match &route {
        Some(route) => format!("{method} {}", route.template),
        None => format!("{method} {path}"),
    };
    let killer = request.extensions().get::<ConnectionKiller>().cloned();

    let (response, served) = match &route {
        Some(route) => process(&shared, route, &endpoint, request, next, killer.as_ref()).await,
        None => {
            let response = next.run(request).await;
            let status = response.status().as_u16();
            (
                Some(response),
                Served {
                    status,
                    fault: None,
                },
            )
        }
    };

    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        account = %account,
        method = %method,
        path = %path,
        endpoint = %endpoint,
        http.status = served.status,
        fault = served.fault.unwrap_or(""),
        elapsed_ms,
        "Served request"
    );
    lock(&shared.log).push(RequestRecord {
        seq: 0,
        account,
        method,
        path,
        query,
        status: served.status,
        time,
        user_agent,
        endpoint,
        fault: served.fault,
    });

    match (response, killer) {
        (Some(response), _) => response,
        (None, Some(killer)) => {
            killer.kill();
            // The connection task drops this future together with the connection.
            std::future::pending::<Response>().await
        }
        (None, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Returns the response, or `None` when the connection is to be dropped.
async fn process(
    shared: &Arc<Shared>,
    route: &Route,
    endpoint: &str,
    request: Request,
    next: Next,
    killer: Option<&ConnectionKiller>,
) -> (Option<Response>, Served) {
    if let Err(message) = authenticate(shared, &route.account, request.headers()) {
        let response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": message })),
        )
            .into_response();
        return (
            Some(response),
            Served {
                status: 401,
                fault: None,
            },
        );
    }

    if let Some(limit) = shared.rate_limit {
        let accepted = lock(&shared.limiter).try_acquire(&route.account, limit, Instant::now());
        if !accepted {
            let response = with_retry_after(
                plivo_error(StatusCode::TOO_MANY_REQUESTS, "too many requests", None),
                shared.faults_for(&route.account).retry_after_s,
            );
            return (
                Some(response),
                Served {
                    status: 429,
                    fault: Some("rate_limited"),
                },
            );
        }
    }

    let (faults, plan) = shared.plan_faults(&route.account, endpoint);
    if plan.latency > Duration::ZERO {
        tokio::time::sleep(plan.latency).await;
    }
    if let Some(outcome) = plan.instead {
        return injected(outcome, &faults, "error", killer);
    }

    let response = next.run(request).await;
    match plan.after {
        Some(outcome) => injected(outcome, &faults, "commit_then_fail", killer),
        None => {
            let status = response.status().as_u16();
            (
                Some(response),
                Served {
                    status,
                    fault: None,
                },
            )
        }
    }
}

fn injected(
    outcome: Outcome,
    faults: &FaultConfig,
    kind: &'static str,
    killer: Option<&ConnectionKiller>,
) -> (Option<Response>, Served) {
    match outcome {
        Outcome::Drop if killer.is_some() => (
            None,
            Served {
                status: 0,
                fault: Some(if kind == "error" { "drop" } else { kind }),
            },
        ),
        Outcome::Drop => (
            Some(plivo_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                faults
                    .error_text
                    .as_deref()
                    .unwrap_or("internal server error"),
                faults.error_body_bytes,
            )),
            Served {
                status: 500,
                fault: Some(kind),
            },
        ),
        Outcome::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = faults
                .error_text
                .as_deref()
                .unwrap_or(faults::error_text(code));
            let mut response = plivo_error(status, text, faults.error_body_bytes);
            if matches!(code, 429 | 503) {
                response = with_retry_after(response, faults.retry_after_s);
            }
            (
                Some(response),
                Served {
                    status: code,
                    fault: Some(kind),
                },
            )
        }
    }
}

/// Builds a Plivo error body whose `error` is `message`, repeated (or padded
/// with spaces when it is empty) to at least `min_bytes` when given.
fn plivo_error(status: StatusCode, message: &str, min_bytes: Option<usize>) -> Response {
    let mut text = message.to_string();
    if let Some(min_bytes) = min_bytes {
        let filler = if message.is_empty() { " " } else { message };
        while text.len() < min_bytes {
            text.push_str(filler);
        }
    }
    (
        status,
        axum::Json(json!({"api_id": new_api_id(), "error": text})),
    )
        .into_response()
}

fn with_retry_after(mut response: Response, retry_after_s: Option<u64>) -> Response {
    if let Some(seconds) = retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Checks HTTP Basic credentials against the path's account.
///
/// # Errors
/// The `error` text of Plivo's 401 body.
fn authenticate(shared: &Shared, account: &str, headers: &HeaderMap) -> Result<(), &'static str> {
    const MISSING: &str = "authentication credentials were not provided";
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(MISSING);
    };
    let credentials = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let Some(credentials) = credentials else {
        return Err(MISSING);
    };
    let (user, password) = credentials.split_once(':').unwrap_or((&credentials, ""));
    if user != account || !shared.token_matches(account, password) {
        return Err("invalid credentials");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_templates() {
        let cases = [
            ("/v1/Account/MA1/Profile/", "/v1/Account/{auth_id}/Profile/"),
            (
                "/v1/Account/MA1/Profile/abc/",
                "/v1/Account/{auth_id}/Profile/{profile_uuid}/",
            ),
            (
                "/v1/Account/MA1/Number/14155550100/",
                "/v1/Account/{auth_id}/Number/{number}/",
            ),
            (
                "/v1/Account/MA1/Number/14155550100",
                "/v1/Account/{auth_id}/Number/{number}",
            ),
            ("/v1/Account/MA1/", "/v1/Account/{auth_id}/"),
        ];
        for (path, template) in cases {
            let route = classify(path).unwrap();
            assert_eq!(route.account, "MA1", "{path}");
            assert_eq!(route.template, template, "{path}");
        }
    }

    #[test]
    fn classify_ignores_paths_outside_accounts() {
        assert_eq!(classify("/v1/Account/"), None);
        assert_eq!(classify("/_sandbox/state"), None);
    }
}

//! The one error type of the Plivo client, classified once from the HTTP outcome.
//!
//! Each variant shows the caller what to do: retry later ([`Error::is_retryable`]), fix the input, or fix
//! the credentials. Plivo's error bodies are not uniform (`error` may be a string or a nested object, some
//! resources use `error_message`, a 404 may carry `{}`), so the message is extracted leniently and cut to
//! [`MAX_MESSAGE_BYTES`] before it is stored.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

/// Maximum length of a Plivo error text kept in an [`Error`], in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The failed client call and the object it was about, e.g. `get number 14155550100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    action: &'static str,
    object: Option<String>,
}

impl Operation {
    /// Creates an operation description such as `("get number", Some("14155550100"))`.
    pub fn new(action: &'static str, object: Option<String>) -> Self {
        Self { action, object }
    }

    /// Returns the action without the object, e.g. `get number`.
    pub fn action(&self) -> &'static str {
        self.action
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{} {}", self.action, object),
            None => f.write_str(self.action),
        }
    }
}

/// An error of a Plivo client call.
///
/// The text starts with the operation and the object and never contains the Auth Token. Transport
/// errors keep their cause as [`std::error::Error::source`] instead of repeating it in the text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed a value the client cannot send (e.g. an empty UUID or a page limit over 20).
    #[error("{operation}: invalid argument: {message}")]
    InvalidArgument {
        operation: Operation,
        message: String,
    },

    /// Plivo does not know the object (HTTP 404). `message` keeps Plivo's text, which only repeats
    /// "not found" in every known variant, so the error text leaves it out.
    #[error("{operation}: not found in Plivo")]
    NotFound {
        operation: Operation,
        message: String,
    },

    /// Plivo rejected the request as invalid (HTTP 400, 405, 409, 422 and other 4xx); `message` is
    /// Plivo's text.
    #[error(
        "{operation}: Plivo rejected the request (HTTP {status}){}",
        detail(message)
    )]
    InvalidRequest {
        operation: Operation,
        status: u16,
        message: String,
    },

    /// Plivo responded `invalid_profile_uuid`: the profile UUID is invalid or does not exist.
    #[error(
        "{operation}: Plivo reports the profile UUID as invalid or unknown (invalid_profile_uuid)"
    )]
    InvalidProfileUuid { operation: Operation },

    /// Plivo responded `number_not_eligible`: Caller Reputation covers only US local and toll-free numbers.
    #[error(
        "{operation}: the number is not eligible for Caller Reputation (number_not_eligible); \
         only US local and toll-free numbers are"
    )]
    NumberNotEligible { operation: Operation },

    /// Plivo rejected the Auth ID or Auth Token (HTTP 401).
    #[error(
        "{operation}: Plivo rejected the Auth ID or Auth Token (HTTP 401); check the credentials"
    )]
    Unauthorized { operation: Operation },

    /// The account may not use this feature (HTTP 403).
    #[error("{operation}: Plivo denied access (HTTP 403){}", detail(message))]
    Forbidden {
        operation: Operation,
        message: String,
    },

    /// Plivo's rate limit rejected the request (HTTP 429) and the client's own retries are used up.
    #[error("{operation}: rate limited by Plivo (HTTP 429){}", retry_hint(*retry_after))]
    RateLimited {
        operation: Operation,
        retry_after: Option<Duration>,
    },

    /// Plivo failed (HTTP 5xx) and the client's own retries are used up or not allowed.
    #[error("{operation}: Plivo server error (HTTP {status}){}", detail(message))]
    Server {
        operation: Operation,
        status: u16,
        message: String,
    },

    /// The request did not complete: timeout, connection refused or reset, TLS failure.
    #[error("{operation}: {}", transport_summary(source))]
    Transport {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },

    /// Plivo responded with a body the client cannot read (unexpected JSON shape, status or size).
    #[error("{operation}: unexpected response (HTTP {status}): {message}")]
    Decode {
        operation: Operation,
        status: u16,
        message: String,
    },

    /// The client's [`Fence`](crate::fence::Fence) is closed: this replica may
    /// have lost its Lease, so the request was not sent.
    #[error("{operation}: {source}")]
    NotLeader {
        operation: Operation,
        source: crate::fence::NotLeader,
    },
}

impl Error {
    /// Returns whether the same call may succeed later without any change: 429, 5xx, transport errors
    /// and a closed leadership fence.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Server { .. }
                | Error::Transport { .. }
                | Error::NotLeader { .. }
        )
    }

    /// Returns the delay Plivo requested in `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Returns a stable short name of the variant, for metric labels and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::NotFound { .. } => "not_found",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::InvalidProfileUuid { .. } => "invalid_profile_uuid",
            Error::NumberNotEligible { .. } => "number_not_eligible",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Server { .. } => "server_error",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::NotLeader { .. } => "not_leader",
        }
    }

    /// Returns the operation that failed.
    pub fn operation(&self) -> &Operation {
        match self {
            Error::InvalidArgument { operation, .. }
            | Error::NotFound { operation, .. }
            | Error::InvalidRequest { operation, .. }
            | Error::InvalidProfileUuid { operation }
            | Error::NumberNotEligible { operation }
            | Error::Unauthorized { operation }
            | Error::Forbidden { operation, .. }
            | Error::RateLimited { operation, .. }
            | Error::Server { operation, .. }
            | Error::Transport { operation, .. }
            | Error::Decode { operation, .. }
            | Error::NotLeader { operation, .. } => operation,
        }
    }

    /// Classifies a non-2xx response from its status, `Retry-After` and body.
    pub(crate) fn from_response(
        operation: Operation,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Error {
        let message = error_message(body);
        let code = status.as_u16();
        match code {
            401 => Error::Unauthorized { operation },
            403 => Error::Forbidden { operation, message },
            429 => Error::RateLimited {
                operation,
                retry_after,
            },
            _ if contains_code(&message, "invalid_profile_uuid") && status.is_client_error() => {
                Error::InvalidProfileUuid { operation }
            }
            _ if contains_code(&message, "number_not_eligible") && status.is_client_error() => {
                Error::NumberNotEligible { operation }
            }
            404 => Error::NotFound { operation, message },
            400..=499 => Error::InvalidRequest {
                operation,
                status: code,
                message,
            },
            500..=599 => Error::Server {
                operation,
                status: code,
                message,
            },
            _ => Error::Decode {
                operation,
                status: code,
                message: format!("unexpected HTTP status{}", detail(&message)),
            },
        }
    }
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(delay) => format!("; Plivo asked to retry after {} s", delay.as_secs()),
        None => String::new(),
    }
}

fn transport_summary(source: &reqwest::Error) -> &'static str {
    if source.is_timeout() {
        "request to Plivo timed out"
    } else if source.is_connect() {
        "could not connect to Plivo"
    } else {
        "request to Plivo failed"
    }
}

fn contains_code(message: &str, code: &str) -> bool {
    message.to_ascii_lowercase().contains(code)
}

/// Extracts Plivo's error text from any of the body shapes it uses, on one line and truncated
/// to [`MAX_MESSAGE_BYTES`].
///
/// Shapes: `{"error": "text"}`, `{"error": {"error": "text"}}`, `{"error_message": "text"}`,
/// `{"message": "text"}`, `{}` or empty (no text), and non-JSON bodies such as a proxy's HTML page
/// (kept as text).
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => message_in(&value, 0).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    truncate(one_line(&text), MAX_MESSAGE_BYTES)
}

/// Turns every run of whitespace, control and bidirectional-override characters into one space,
/// so that an error text cannot start a new log line or reorder what a terminal shows.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len().min(MAX_MESSAGE_BYTES * 2));
    for word in text.split(|c: char| c.is_whitespace() || c.is_control() || is_bidi_control(c)) {
        if word.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        if line.len() > MAX_MESSAGE_BYTES {
            break;
        }
    }
    line
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn message_in(value: &serde_json::Value, depth: usize) -> Option<String> {
    const KEYS: [&str; 3] = ["error", "error_message", "message"];
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(fields) if depth < 3 => KEYS
            .iter()
            .filter_map(|key| fields.get(*key))
            .find_map(|inner| message_in(inner, depth + 1)),
        serde_json::Value::Null | serde_json::Value::Object(_) => None,
        other if depth > 0 => Some(other.to_string()),
        _ => None,
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the cut with `…`.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> Error {
        Error::from_response(
            Operation::new("get number", Some("14155550100".into())),
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
        )
    }

    #[test]
    fn message_from_plain_error_field() {
        assert_eq!(
            error_message(br#"{"api_id":"x","error":"not found"}"#),
            "not found"
        );
    }

    #[test]
    fn message_from_nested_error_object() {
        assert_eq!(
            error_message(br#"{"error":{"error":"bad alias"}}"#),
            "bad alias"
        );
    }

    #[test]
    fn message_from_error_message_field() {
        assert_eq!(
            error_message(br#"{"api_id":"x","error_message":"number unavailable"}"#),
            "number unavailable"
        );
    }

    #[test]
    fn message_of_empty_object_is_empty() {
        assert_eq!(error_message(b"{}"), "");
        assert_eq!(error_message(b""), "");
    }

    #[test]
    fn hostile_text_is_kept_on_one_line() {
        let body = br#"{"error":"bad\r\n2026-12-04T00:00:00Z INFO forged\u202e\tline\u0000end"}"#;
        assert_eq!(
            error_message(body),
            "bad 2026-12-04T00:00:00Z INFO forged line end"
        );
    }

    #[test]
    fn non_json_body_is_kept_as_text() {
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>\n"),
            "<html>Bad Gateway</html>"
        );
    }

    #[test]
    fn huge_message_is_truncated() {
        let body = format!(r#"{{"error":"{}"}}"#, "é".repeat(5000));
        let message = error_message(body.as_bytes());
        assert!(message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }

    #[test]
    fn status_codes_map_to_variants() {
        let cases = [
            (
                400,
                r#"{"error":"Invalid request parameter(s) - email"}"#,
                "invalid_request",
            ),
            (
                401,
                r#"{"error":"authentication credentials were not provided"}"#,
                "unauthorized",
            ),
            (403, r#"{"error":"feature not enabled"}"#, "forbidden"),
            (404, "{}", "not_found"),
            (405, "", "invalid_request"),
            (409, r#"{"error":"conflict"}"#, "invalid_request"),
            (422, r#"{"error":"unprocessable"}"#, "invalid_request"),
            (429, r#"{"error":"too many requests"}"#, "rate_limited"),
            (500, "", "server_error"),
            (503, "<html>unavailable</html>", "server_error"),
            (302, "", "decode"),
        ];
        for (status, body, kind) in cases {
            assert_eq!(classify(status, body).kind(), kind, "HTTP {status} {body}");
        }
    }

    #[test]
    fn caller_reputation_codes_are_found_in_longer_text() {
        let error = classify(
            400,
            r#"{"error":"Request failed: invalid_profile_uuid (abc)"}"#,
        );
        assert_eq!(error.kind(), "invalid_profile_uuid");
        let error = classify(400, r#"{"error":{"error":"NUMBER_NOT_ELIGIBLE for CR"}}"#);
        assert_eq!(error.kind(), "number_not_eligible");
        let error = classify(400, r#"{"error_message":"number_not_eligible"}"#);
        assert_eq!(error.kind(), "number_not_eligible");
    }

    #[test]
    fn invalid_request_keeps_plivo_text_verbatim() {
        let error = classify(
            400,
            r#"{"error":"a profile with EIN 123456789 already exists"}"#,
        );
        match &error {
            Error::InvalidRequest {
                message, status, ..
            } => {
                assert_eq!(message, "a profile with EIN 123456789 already exists");
                assert_eq!(*status, 400);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "get number 14155550100: Plivo rejected the request (HTTP 400): \
             a profile with EIN 123456789 already exists"
        );
    }

    #[test]
    fn retryable_errors_are_429_5xx_and_transport() {
        assert!(classify(429, "").is_retryable());
        assert!(classify(502, "").is_retryable());
        assert!(!classify(400, "").is_retryable());
        assert!(!classify(404, "").is_retryable());
        assert!(!classify(401, "").is_retryable());
    }

    #[test]
    fn retry_after_is_reported_only_for_rate_limits() {
        let error = Error::from_response(
            Operation::new("list numbers", None),
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            b"",
        );
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert!(error.to_string().contains("retry after 3 s"));
        assert_eq!(classify(500, "").retry_after(), None);
    }
}

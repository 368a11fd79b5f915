//! When and how long the client waits before it repeats a failed attempt.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// First backoff step; later steps double it.
pub(crate) const BASE_DELAY: Duration = Duration::from_millis(200);

/// Largest backoff step, and the largest `Retry-After` the client waits for by itself. A longer
/// `Retry-After` is handed to the caller in [`super::Error::RateLimited`] instead.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(10);

/// Whether repeating a request can change the outcome beyond the first attempt's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Sending the request twice has the same effect as once (GET, DELETE, updates to a state).
    Idempotent,
    /// A repeat may create a second object (profile create).
    NotIdempotent,
}

/// What an attempt's outcome allows the client to do next.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    Status(StatusCode),
    Transport(&'a reqwest::Error),
}

/// Whether the attempt may be repeated.
///
/// A create is repeated only when Plivo cannot have acted on it: after a 429 (rejected before any
/// processing) or when the connection was never established. 5xx and timeouts may follow a
/// completed create, so those are not repeated.
pub(crate) fn may_retry(idempotency: Idempotency, outcome: Outcome<'_>) -> bool {
    match (idempotency, outcome) {
        (_, Outcome::Status(status)) if status == StatusCode::TOO_MANY_REQUESTS => true,
        (Idempotency::Idempotent, Outcome::Status(status)) => status.is_server_error(),
        (Idempotency::Idempotent, Outcome::Transport(error)) => !error.is_builder(),
        (Idempotency::NotIdempotent, Outcome::Transport(error)) => error.is_connect(),
        (Idempotency::NotIdempotent, Outcome::Status(..)) => false,
    }
}

/// Delay before retry number `retry` (0 for the first retry), or `None` when the caller should get the
/// error instead because Plivo asked for a wait longer than [`MAX_DELAY`].
///
/// Without `Retry-After` the delay is "equal jitter": half of `min(MAX_DELAY, BASE_DELAY * 2^retry)`
/// plus a random part up to the other half, so concurrent clients spread out but never retry at once.
pub(crate) fn delay(retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if let Some(requested) = retry_after {
        return (requested <= MAX_DELAY).then_some(requested);
    }
    let step = BASE_DELAY
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(MAX_DELAY);
    let half = step / 2;
    let jitter_ms = rand::random_range(0..=half.as_millis() as u64);
    Some(half + Duration::from_millis(jitter_ms))
}

/// Reads `Retry-After` as delay-seconds or as an HTTP date; unreadable values are ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text)
        .ok()?;
    let remaining = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(remaining).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_reads_http_dates() {
        let past = retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(past, Some(Duration::ZERO));
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&future)
            .unwrap();
        let delay = retry_after(&headers(&text)).unwrap();
        assert!(
            delay > Duration::from_secs(25) && delay <= Duration::from_secs(30),
            "{delay:?}"
        );
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        for retry in 0..20 {
            let step = BASE_DELAY
                .saturating_mul(2u32.saturating_pow(retry.min(16)))
                .min(MAX_DELAY);
            for _ in 0..50 {
                let delay = delay(retry, None).unwrap();
                assert!(
                    delay >= step / 2 && delay <= step,
                    "retry {retry}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_replaces_backoff_up_to_the_cap() {
        assert_eq!(
            delay(0, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(delay(0, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn creates_are_retried_only_after_429() {
        let too_many = Outcome::Status(StatusCode::TOO_MANY_REQUESTS);
        let server = Outcome::Status(StatusCode::BAD_GATEWAY);
        let invalid = Outcome::Status(StatusCode::BAD_REQUEST);
        assert!(may_retry(Idempotency::NotIdempotent, too_many));
        assert!(!may_retry(Idempotency::NotIdempotent, server));
        assert!(may_retry(Idempotency::Idempotent, too_many));
        assert!(may_retry(Idempotency::Idempotent, server));
        assert!(!may_retry(Idempotency::Idempotent, invalid));
    }
}

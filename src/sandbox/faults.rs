//! Fault injection: per-account errors, dropped connections, latency,
//! "commit then fail" and oversized error bodies.
//!
//! A [`FaultConfig`] is the JSON body of `PUT /_sandbox/faults/{account}` and
//! what the `--fault-*` flags set for every account at start. Endpoint filters
//! are written as `METHOD /path/suffix/`, for example `POST /Number/{number}/`
//! or `GET /Profile/`. A filter without a method matches every method, and a
//! missing filter matches every endpoint.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults applied to one account's Plivo API requests. Admin requests are
/// never faulted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction (0.0 to 1.0) of matching requests that get `error_status`
    /// without being processed.
    pub error_ratio: f64,
    /// Status of injected errors: 400, 429, 500, 502 or 503; 500 when absent.
    pub error_status: Option<u16>,
    /// Endpoint filter for `error_ratio`.
    pub error_endpoint: Option<String>,
    /// Fraction (0.0 to 1.0) of matching requests whose connection is closed
    /// without a response and without processing.
    pub drop_ratio: f64,
    /// Endpoint filter for `drop_ratio`.
    pub drop_endpoint: Option<String>,
    /// Delay added before matching requests are processed, in milliseconds.
    pub latency_ms: u64,
    /// Endpoint filter for `latency_ms`.
    pub latency_endpoint: Option<String>,
    /// Requests that are processed (and their change kept) but then get an
    /// error or a dropped connection.
    pub commit_then_fail: Option<CommitThenFail>,
    /// Text of the `error` field of injected error bodies, in place of the
    /// status's usual text. With `error_body_bytes` it is repeated to that size.
    pub error_text: Option<String>,
    /// Size in bytes that injected error bodies are padded to.
    pub error_body_bytes: Option<usize>,
    /// `Retry-After` value, in seconds, sent with injected 429 and 503
    /// responses and with rate-limit 429 responses.
    pub retry_after_s: Option<u64>,
    /// Number of requests that may still get an error, a drop or "commit then
    /// fail"; each faulted request lowers it by one. Unlimited when absent.
    /// Latency is not counted.
    pub remaining: Option<u32>,
}

/// The "commit then fail" fault: the change is applied, then the response is
/// replaced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommitThenFail {
    /// Endpoint filter; every endpoint when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Fraction (0.0 to 1.0) of matching requests affected.
    #[serde(default = "one")]
    pub ratio: f64,
    /// Status sent in place of the real response; the connection is dropped
    /// when absent.
    #[serde(default)]
    pub status: Option<u16>,
}

fn one() -> f64 {
    1.0
}

/// Ending of a faulted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Respond with this status and a Plivo-shaped error body.
    Status(u16),
    /// Close the connection without a response.
    Drop,
}

/// Fault decisions for one request, made before it runs.
#[derive(Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// Delay before processing.
    pub latency: Duration,
    /// Outcome that replaces processing entirely.
    pub instead: Option<Outcome>,
    /// Outcome that replaces the response after processing.
    pub after: Option<Outcome>,
}

/// Statuses an injected error may carry.
pub const ALLOWED_ERROR_STATUSES: [u16; 5] = [400, 429, 500, 502, 503];

/// Reasons a [`FaultConfig`] is rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidFault {
    #[error("{field} must be between 0.0 and 1.0, got {value}")]
    Ratio { field: &'static str, value: f64 },
    #[error("{field} must be one of 400, 429, 500, 502 or 503, got {value}")]
    Status { field: &'static str, value: u16 },
}

impl FaultConfig {
    /// Checks ratios and statuses.
    ///
    /// # Errors
    /// Returns the first field out of range.
    pub fn validate(&self) -> Result<(), InvalidFault> {
        check_ratio("error_ratio", self.error_ratio)?;
        check_ratio("drop_ratio", self.drop_ratio)?;
        if let Some(status) = self.error_status {
            check_status("error_status", status)?;
        }
        if let Some(commit) = &self.commit_then_fail {
            check_ratio("commit_then_fail.ratio", commit.ratio)?;
            if let Some(status) = commit.status {
                check_status("commit_then_fail.status", status)?;
            }
        }
        Ok(())
    }

    /// Decides the faults for one request to `endpoint` (`METHOD /template/`),
    /// drawing random numbers from `draw` (uniform in 0.0..1.0), and counts
    /// the request against `remaining` when it is faulted.
    pub fn plan(&mut self, endpoint: &str, draw: impl FnMut() -> f64) -> FaultPlan {
        let mut plan = self.plan_unlimited(endpoint, draw);
        let faulted = plan.instead.is_some() || plan.after.is_some();
        match &mut self.remaining {
            Some(0) => {
                plan.instead = None;
                plan.after = None;
            }
            Some(remaining) if faulted => *remaining -= 1,
            Some(_) | None => {}
        }
        plan
    }

    fn plan_unlimited(&self, endpoint: &str, mut draw: impl FnMut() -> f64) -> FaultPlan {
        let mut plan = FaultPlan::default();

        if self.latency_ms > 0 && endpoint_matches(self.latency_endpoint.as_deref(), endpoint) {
            plan.latency = Duration::from_millis(self.latency_ms);
        }
        if hits(self.drop_ratio, &mut draw)
            && endpoint_matches(self.drop_endpoint.as_deref(), endpoint)
        {
            plan.instead = Some(Outcome::Drop);
        } else if hits(self.error_ratio, &mut draw)
            && endpoint_matches(self.error_endpoint.as_deref(), endpoint)
        {
            plan.instead = Some(Outcome::Status(self.error_status.unwrap_or(500)));
        } else if let Some(commit) = &self.commit_then_fail
            && endpoint_matches(commit.endpoint.as_deref(), endpoint)
            && hits(commit.ratio, &mut draw)
        {
            plan.after = Some(match commit.status {
                Some(status) => Outcome::Status(status),
                None => Outcome::Drop,
            });
        }
        plan
    }
}

fn hits(ratio: f64, draw: &mut impl FnMut() -> f64) -> bool {
    ratio > 0.0 && (ratio >= 1.0 || draw() < ratio)
}

fn check_ratio(field: &'static str, value: f64) -> Result<(), InvalidFault> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InvalidFault::Ratio { field, value })
    }
}

fn check_status(field: &'static str, value: u16) -> Result<(), InvalidFault> {
    if ALLOWED_ERROR_STATUSES.contains(&value) {
        Ok(())
    } else {
        Err(InvalidFault::Status { field, value })
    }
}

/// Matches `endpoint` (`METHOD /v1/Account/{auth_id}/Number/{number}/`) against
/// a filter such as `POST /Number/{number}/` or `/Profile/`.
pub fn endpoint_matches(filter: Option<&str>, endpoint: &str) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    let (method, template) = endpoint.split_once(' ').unwrap_or(("", endpoint));
    match filter.trim().split_once(' ') {
        Some((filter_method, filter_path)) => {
            filter_method.eq_ignore_ascii_case(method) && template.ends_with(filter_path.trim())
        }
        None => template.ends_with(filter.trim()),
    }
}

/// Returns the `error` text Plivo-style bodies carry for an injected status.
pub fn error_text(status: u16) -> &'static str {
    match status {
        400 => "invalid request",
        429 => "too many requests",
        502 => "bad gateway",
        503 => "service unavailable",
        _ => "internal server error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE_NUMBER: &str = "POST /v1/Account/{auth_id}/Number/{number}/";
    const GET_NUMBER: &str = "GET /v1/Account/{auth_id}/Number/{number}/";

    #[test]
    fn filter_matches_method_and_path_suffix() {
        assert!(endpoint_matches(
            Some("POST /Number/{number}/"),
            UPDATE_NUMBER
        ));
        assert!(!endpoint_matches(
            Some("POST /Number/{number}/"),
            GET_NUMBER
        ));
        assert!(endpoint_matches(Some("/Number/{number}/"), GET_NUMBER));
        assert!(!endpoint_matches(Some("/Profile/"), GET_NUMBER));
        assert!(endpoint_matches(None, GET_NUMBER));
    }

    #[test]
    fn full_ratio_always_fails_without_drawing() {
        let mut faults = FaultConfig {
            error_ratio: 1.0,
            error_status: Some(503),
            ..FaultConfig::default()
        };
        let plan = faults.plan(GET_NUMBER, || panic!("no draw needed"));
        assert_eq!(plan.instead, Some(Outcome::Status(503)));
    }

    #[test]
    fn commit_then_fail_applies_only_to_its_endpoint() {
        let mut faults = FaultConfig {
            commit_then_fail: Some(CommitThenFail {
                endpoint: Some("POST /Number/{number}/".to_string()),
                ratio: 1.0,
                status: None,
            }),
            ..FaultConfig::default()
        };
        assert_eq!(
            faults.plan(UPDATE_NUMBER, || 0.0).after,
            Some(Outcome::Drop)
        );
        assert_eq!(faults.plan(GET_NUMBER, || 0.0).after, None);
    }

    #[test]
    fn remaining_limits_faulted_requests() {
        let mut faults = FaultConfig {
            error_ratio: 1.0,
            latency_ms: 5,
            remaining: Some(2),
            ..FaultConfig::default()
        };
        let outcomes: Vec<Option<Outcome>> = (0..3)
            .map(|_| faults.plan(GET_NUMBER, || 0.0).instead)
            .collect();
        assert_eq!(
            outcomes,
            [Some(Outcome::Status(500)), Some(Outcome::Status(500)), None]
        );
        assert_eq!(faults.remaining, Some(0));
        assert_eq!(
            faults.plan(GET_NUMBER, || 0.0).latency,
            Duration::from_millis(5)
        );
    }

    #[test]
    fn validate_rejects_bad_ratio_and_status() {
        let ratio = FaultConfig {
            drop_ratio: 1.5,
            ..FaultConfig::default()
        };
        assert!(matches!(ratio.validate(), Err(InvalidFault::Ratio { .. })));
        let status = FaultConfig {
            error_status: Some(404),
            ..FaultConfig::default()
        };
        assert!(matches!(
            status.validate(),
            Err(InvalidFault::Status { .. })
        ));
    }
}

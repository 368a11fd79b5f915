//! Delivery of Caller Reputation status callbacks.
//!
//! Each status change of a number with a callback URL sends `number`,
//! `profile_uuid`, `caller_reputation_status` and `api_id` (empty strings for
//! `null`), form-encoded for POST or as query parameters for GET, signed with
//! the V3 headers using the account's Auth Token. The `Ma-V3` header carries the
//! same signature because every sandbox account is a main account. A receiver
//! that does not respond 200 gets three more attempts, 60, 120 and 240 seconds
//! apart (times `callback_retry_scale`).
//!
//! Only loopback URLs are called: anything else is refused with a log line,
//! because the sandbox must never send traffic off the machine.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use url::{Host, Url};

use super::server::Shared;
use super::state::{CallbackJob, CallbackMethod};
use crate::plivo::signature::sign_v3;

/// Delays before the second, third and fourth attempt, before scaling.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(240),
];

/// Time allowed for one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One delivery attempt, listed by `GET /_sandbox/callbacks`.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    pub account: String,
    pub number: String,
    pub url: String,
    pub method: &'static str,
    /// Status value sent; empty for `null`.
    pub caller_reputation_status: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// HTTP status of the receiver's response; absent without a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// Failure or rejection reason of the attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub time: String,
}

/// Returns whether `url` points at this machine (127.0.0.0/8, `::1` or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Sends `job` until the receiver responds 200 or the attempts run out; stops
/// early when the sandbox shuts down.
pub async fn deliver(shared: Arc<Shared>, job: CallbackJob) {
    let method = match job.method {
        CallbackMethod::Get => "GET",
        CallbackMethod::Post => "POST",
    };
    let status = job
        .status
        .map(|s| s.as_str())
        .unwrap_or_default()
        .to_string();
    let mut record = DeliveryRecord {
        account: job.account.clone(),
        number: job.number.clone(),
        url: job.url.clone(),
        method,
        caller_reputation_status: status.clone(),
        attempt: 1,
        response_status: None,
        error: None,
        time: jiff::Timestamp::now().to_string(),
    };

    let url = match Url::parse(&job.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && is_loopback(&url) => url,
        Ok(_) | Err(_) => {
            tracing::warn!(
                account = %job.account,
                url = %job.url,
                "Refused callback: only http(s) URLs on loopback are called"
            );
            record.error = Some("refused: not a loopback http(s) URL".to_string());
            shared.record_delivery(record);
            return;
        }
    };
    let Some(token) = shared.token(&job.account) else {
        return;
    };

    let params = vec![
        ("api_id".to_string(), uuid::Uuid::new_v4().to_string()),
        ("caller_reputation_status".to_string(), status),
        ("number".to_string(), job.number.clone()),
        (
            "profile_uuid".to_string(),
            job.profile_uuid.clone().unwrap_or_default(),
        ),
    ];

    for attempt in 1..=(RETRY_DELAYS.len() as u32 + 1) {
        if attempt > 1 {
            let delay = RETRY_DELAYS[attempt as usize - 2].mul_f64(shared.retry_scale);
            if !shared.sleep_unless_shutdown(delay).await {
                return;
            }
        }
        record.attempt = attempt;
        record.time = jiff::Timestamp::now().to_string();
        let outcome = send_once(&shared, &url, job.method, &params, &token).await;
        let delivered = match outcome {
            Ok(code) => {
                record.response_status = Some(code);
                record.error = None;
                code == 200
            }
            Err(error) => {
                record.response_status = None;
                record.error = Some(error);
                false
            }
        };
        tracing::info!(
            account = %job.account,
            url = %job.url,
            attempt,
            http.status = record.response_status,
            "Sent status callback"
        );
        shared.record_delivery(record.clone());
        if delivered {
            return;
        }
    }
    tracing::warn!(account = %job.account, url = %job.url, "Gave up on status callback");
}

async fn send_once(
    shared: &Shared,
    url: &Url,
    method: CallbackMethod,
    params: &[(String, String)],
    token: &str,
) -> Result<u16, String> {
    let nonce = random_nonce();
    let (request, signature) = match method {
        CallbackMethod::Post => {
            let signature = sign_v3("POST", url.as_str(), params, &nonce, token);
            (shared.http.post(url.clone()).form(params), signature)
        }
        CallbackMethod::Get => {
            let mut full = url.clone();
            full.query_pairs_mut().extend_pairs(params);
            // Every parameter travels in the query, so the signature covers the
            // full URL with no extra parameters.
            let signature = sign_v3("GET", full.as_str(), &[], &nonce, token);
            (shared.http.get(full), signature)
        }
    };
    let response = request
        .timeout(ATTEMPT_TIMEOUT)
        .header("X-Plivo-Signature-V3", &signature)
        .header("X-Plivo-Signature-Ma-V3", &signature)
        .header("X-Plivo-Signature-V3-Nonce", &nonce)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    Ok(response.status().as_u16())
}

/// Returns 20 random decimal digits, the nonce format Plivo uses.
fn random_nonce() -> String {
    (0..20)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for url in [
            "http://127.0.0.1:9/cb",
            "http://127.5.5.5/cb",
            "http://[::1]:8080/",
            "https://localhost/x",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for url in [
            "http://10.0.0.1/cb",
            "http://example.com/cb",
            "http://169.254.169.254/latest",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn nonce_has_twenty_digits() {
        let nonce = random_nonce();
        assert_eq!(nonce.len(), 20);
        assert!(nonce.chars().all(|c| c.is_ascii_digit()));
    }
}

//! Hook through which the client reports request outcomes, e.g. to Prometheus metrics.

use std::time::Duration;

/// Receives one call per HTTP attempt and one per wait on the client-side rate limiter.
///
/// Implementations must be cheap: they run on the request path.
pub trait RequestObserver: Send + Sync {
    /// An attempt finished. `endpoint` is a template such as `GET /Number/{number}/`; `status` is
    /// `None` when no response arrived (timeout, connection error).
    fn request_finished(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration);

    /// A request of `account` (its Auth ID) waited `waited` for the client-side rate limiter.
    fn rate_limit_waited(&self, account: &str, waited: Duration);
}

/// The default observer, which records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn request_finished(&self, _endpoint: &'static str, _status: Option<u16>, _elapsed: Duration) {}

    fn rate_limit_waited(&self, _account: &str, _waited: Duration) {}
}

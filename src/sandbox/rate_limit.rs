//! Per-account sliding-window rate limit: at most N accepted requests in any
//! 5-second window, as Plivo documents for its non-call APIs.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Length of the window Plivo's limit is defined over.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Accepted request times per account within the last [`WINDOW`].
#[derive(Debug, Default)]
pub struct RateLimiter {
    accepted: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    /// Records a request at `now` if fewer than `limit` were accepted for
    /// `account` in the window before it. Returns whether it was accepted;
    /// rejected requests do not count against the window.
    pub fn try_acquire(&mut self, account: &str, limit: u32, now: Instant) -> bool {
        let times = self.accepted.entry(account.to_string()).or_default();
        while let Some(oldest) = times.front() {
            if now.duration_since(*oldest) >= WINDOW {
                times.pop_front();
            } else {
                break;
            }
        }
        if times.len() >= limit as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Forgets every recorded request.
    pub fn reset(&mut self) {
        self.accepted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_rejects_request_over_window_budget() {
        let mut limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.try_acquire("MA1", 3, start));
        }
        assert!(!limiter.try_acquire("MA1", 3, start));
        assert!(limiter.try_acquire("MA2", 3, start));
    }

    #[test]
    fn window_slides_per_request() {
        let mut limiter = RateLimiter::default();
        let start = Instant::now();
        assert!(limiter.try_acquire("MA1", 2, start));
        assert!(limiter.try_acquire("MA1", 2, start + Duration::from_secs(3)));
        assert!(!limiter.try_acquire("MA1", 2, start + Duration::from_secs(4)));
        assert!(limiter.try_acquire("MA1", 2, start + Duration::from_secs(5)));
        assert!(!limiter.try_acquire("MA1", 2, start + Duration::from_millis(7_999)));
        assert!(limiter.try_acquire("MA1", 2, start + Duration::from_secs(8)));
    }
}

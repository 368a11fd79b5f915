//! Client-side rate limiter for one Plivo account: at most N requests in any sliding window.
//!
//! Plivo allows 300 requests per 5 seconds per account and counts them in a sliding window. A GCRA
//! limiter with a burst of N (as `governor` offers) admits up to 2N requests in some windows. This
//! module therefore uses N permits, and a request holds one from the moment it is sent until one
//! window after its response arrived.
//!
//! # Guarantees
//!
//! Plivo receives request *j* at some time `a_j` between its send time and its response, so the
//! request holds its permit during all of `[a_j, a_j + window)`. If N + 1 requests arrived within one
//! window, then at the latest of those arrivals all N + 1 would hold a permit at once, which the
//! semaphore forbids. The bound therefore holds at Plivo's side whatever the network delay, at the
//! cost of throughput: a permit comes back one window plus one round trip after it was taken.
//! NOTE: a request abandoned by a client timeout may still reach Plivo after its permit's window
//! started; the bound assumes such late deliveries do not happen.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Maximum pause that one `Retry-After` imposes on a whole account. A longer value is cut to this,
/// so that a wrong or hostile header cannot stop an account's reconciles for hours. The next
/// refusal pauses the account again.
pub(crate) const MAX_ACCOUNT_PAUSE: Duration = Duration::from_secs(60);

/// N permits per sliding window, shared by every request of one Plivo account, and the instant
/// before which Plivo asked the account to send nothing.
#[derive(Debug)]
pub(crate) struct WindowLimiter {
    permits: Arc<Semaphore>,
    window: Duration,
    paused_until: Mutex<Option<Instant>>,
}

/// Permission to send one request; dropping it returns the permit one window later.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    window: Duration,
}

impl WindowLimiter {
    /// Creates a limiter of `requests` per `window`; both must be non-zero.
    pub(crate) fn new(requests: u32, window: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(requests as usize)),
            window,
            paused_until: Mutex::new(None),
        }
    }

    /// Holds every request of the account until `delay` (at most [`MAX_ACCOUNT_PAUSE`]) has
    /// passed, as a `Retry-After` header requests. An earlier end than a pause already set changes
    /// nothing.
    pub(crate) fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_ACCOUNT_PAUSE);
        let mut paused_until = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if paused_until.is_none_or(|current| current < until) {
            *paused_until = Some(until);
        }
    }

    /// Waits until the account's pause is over and one more request fits into the window, and
    /// returns its slot and the time waited (zero when a permit was free at once).
    pub(crate) async fn acquire(&self) -> (Slot, Duration) {
        let started = Instant::now();
        let mut waited = false;
        loop {
            if self.pause_end().is_some() {
                waited = true;
                self.wait_out_pause().await;
            }
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    waited = true;
                    Arc::clone(&self.permits)
                        .acquire_owned()
                        .await
                        // No code path calls `close` on the semaphore, so acquiring cannot fail.
                        .expect("limiter semaphore is never closed")
                }
            };
            // A refusal that arrived while this request waited for a permit pauses it too. The
            // permit goes back at once because no request was sent with it.
            if self.pause_end().is_some() {
                drop(permit);
                continue;
            }
            let slot = Slot {
                permit: Some(permit),
                window: self.window,
            };
            let waited = if waited {
                started.elapsed()
            } else {
                Duration::ZERO
            };
            return (slot, waited);
        }
    }

    async fn wait_out_pause(&self) {
        while let Some(until) = self.pause_end() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Returns the end of the account's pause while it lasts.
    fn pause_end(&self) -> Option<Instant> {
        let paused_until = *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused_until.filter(|until| *until > Instant::now())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let window = self.window;
        // Outside a runtime (process shutdown) no request can wait for the permit any more.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(window).await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest number of instants within any half-open interval of length `window`.
    fn max_in_any_window(sorted: &[Instant], window: Duration) -> usize {
        let mut max = 0;
        let mut first = 0;
        for (last, instant) in sorted.iter().enumerate() {
            while *instant - sorted[first] >= window {
                first += 1;
            }
            max = max.max(last - first + 1);
        }
        max
    }

    #[tokio::test(start_paused = true)]
    async fn burst_of_400_stays_within_300_per_window() {
        let limiter = Arc::new(WindowLimiter::new(300, Duration::from_secs(5)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..400 {
            let limiter = Arc::clone(&limiter);
            tasks.push(tokio::spawn(async move {
                let (slot, waited) = limiter.acquire().await;
                let granted = Instant::now();
                // A request with a 30 ms round trip.
                tokio::time::sleep(Duration::from_millis(30)).await;
                drop(slot);
                (granted, waited)
            }));
        }
        let mut granted = Vec::new();
        let mut waited_count = 0;
        for task in tasks {
            let (at, waited) = task.await.unwrap();
            granted.push(at);
            if !waited.is_zero() {
                waited_count += 1;
            }
        }
        granted.sort();

        assert_eq!(max_in_any_window(&granted, Duration::from_secs(5)), 300);
        assert_eq!(granted[299] - start, Duration::ZERO);
        assert_eq!(granted[300] - start, Duration::from_millis(5030));
        assert_eq!(waited_count, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_request_of_the_account() {
        let limiter = Arc::new(WindowLimiter::new(10, Duration::from_secs(5)));
        let start = Instant::now();
        limiter.pause_for(Duration::from_secs(3));
        limiter.pause_for(Duration::from_secs(1));

        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    let (_slot, waited) = limiter.acquire().await;
                    waited
                })
            })
            .collect();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Duration::from_secs(3));
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(3));

        limiter.pause_for(Duration::from_secs(3600));
        let (_slot, waited) = limiter.acquire().await;
        assert_eq!(waited, MAX_ACCOUNT_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_waiting_request() {
        let limiter = Arc::new(WindowLimiter::new(1, Duration::from_secs(5)));
        let start = Instant::now();
        let (slot, _) = limiter.acquire().await;
        let waiter = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.1 })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        limiter.pause_for(Duration::from_secs(10));
        drop(slot);

        assert_eq!(waiter.await.unwrap(), Duration::from_secs(11));
        assert_eq!(Instant::now() - start, Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn permit_returns_one_window_after_the_response() {
        let limiter = WindowLimiter::new(1, Duration::from_secs(5));
        let start = Instant::now();
        let (slot, _) = limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(slot);

        let (_slot, waited) = limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
        assert_eq!(waited, Duration::from_secs(5));
    }
}

//! Leadership fence: the check every outgoing write makes before it is sent.
//!
//! A leader that is paused (SIGSTOP, a long GC-like stall, a frozen VM) does
//! not notice that its Lease expired and another replica took over. When it
//! resumes, its controllers may run for a while before the election loop
//! learns of the loss. The fence closes that window: the leader may send a
//! request only while its last confirmed Lease write is recent enough.
//!
//! The deadline is `sent + validity`, where `sent` is the monotonic instant
//! at which the last successful acquire or renewal was sent, and `validity`
//! is the Lease duration minus a safety margin. Another replica may take the
//! Lease only once it has seen the Lease unchanged for the Lease duration on
//! its own monotonic clock (`operator::takeover`), which starts after that
//! write. So the margin must cover the time a request that passed the check
//! needs to reach its server.
//! `tokio::time::Instant` follows `CLOCK_MONOTONIC`, which keeps running
//! while a process is stopped, so a thawed leader finds its deadline passed.
//!
//! NOTE: a check and the write it guards are two steps. The Plivo client
//! checks before every poll of a send, so only a process stopped between a
//! check and the socket write of that same poll sends the request after it
//! resumes. No client-side check can close that gap without server support.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Whether this replica may send writes now; cheap to clone, all clones share
/// one deadline.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// `None` when leader election is off: the fence is always open.
    elected: Option<Arc<Elected>>,
}

#[derive(Debug)]
struct Elected {
    validity: Duration,
    deadline: Mutex<Option<Instant>>,
}

/// Error of a request rejected because this replica's leadership is not
/// confirmed; retry once the replica leads again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "leadership not confirmed: the Lease was not renewed within the last {} ms, \
     so the request was not sent; it is retried once this replica leads again",
    validity.as_millis()
)]
pub struct NotLeader {
    /// How long one confirmed Lease write keeps the fence open.
    pub validity: Duration,
}

impl Fence {
    /// Creates a fence that is always open, for a replica without leader election.
    pub fn unelected() -> Self {
        Self::default()
    }

    /// Creates a closed fence that each confirmed Lease write opens for `validity`.
    pub fn elected(validity: Duration) -> Self {
        Self {
            elected: Some(Arc::new(Elected {
                validity,
                deadline: Mutex::new(None),
            })),
        }
    }

    /// Records a Lease write sent at `sent` that the apiserver accepted with
    /// this replica as holder. The deadline only moves forward, so a late
    /// response to an older write cannot shorten it.
    pub fn confirm(&self, sent: Instant) {
        let Some(elected) = &self.elected else {
            return;
        };
        let until = sent + elected.validity;
        let mut deadline = elected.lock();
        if deadline.is_none_or(|current| current < until) {
            *deadline = Some(until);
        }
    }

    /// Closes the fence until the next confirmed Lease write, e.g. when this
    /// replica steps down or releases the Lease.
    pub fn close(&self) {
        if let Some(elected) = &self.elected {
            *elected.lock() = None;
        }
    }

    /// Returns `Ok` when this replica may send a write now.
    ///
    /// # Errors
    /// [`NotLeader`] when no Lease write was confirmed within the validity.
    pub fn check(&self) -> Result<(), NotLeader> {
        let Some(elected) = &self.elected else {
            return Ok(());
        };
        match *elected.lock() {
            Some(deadline) if Instant::now() < deadline => Ok(()),
            _ => Err(NotLeader {
                validity: elected.validity,
            }),
        }
    }
}

impl Elected {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain instant, valid even after a panic elsewhere.
        self.deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALIDITY: Duration = Duration::from_millis(2500);

    #[test]
    fn unelected_fence_is_always_open() {
        let fence = Fence::unelected();
        fence.close();

        assert_eq!(fence.check(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn elected_fence_starts_closed() {
        let fence = Fence::elected(VALIDITY);

        assert_eq!(fence.check(), Err(NotLeader { validity: VALIDITY }));
    }

    #[tokio::test(start_paused = true)]
    async fn confirmed_write_opens_until_validity_passes() {
        let fence = Fence::elected(VALIDITY);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(100)).await;

        fence.confirm(sent);
        assert_eq!(fence.check(), Ok(()));

        tokio::time::advance(VALIDITY - Duration::from_millis(101)).await;
        assert_eq!(fence.check(), Ok(()));

        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(fence.check().is_err(), "deadline counts from the send");
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_moves_deadline_forward_only() {
        let fence = Fence::elected(VALIDITY);
        let first = Instant::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = Instant::now();

        fence.confirm(second);
        fence.confirm(first);
        tokio::time::advance(Duration::from_secs(1)).await;

        assert_eq!(fence.check(), Ok(()), "the older write did not win");
    }

    #[tokio::test(start_paused = true)]
    async fn close_shuts_an_open_fence() {
        let fence = Fence::elected(VALIDITY);
        fence.confirm(Instant::now());

        fence.clone().close();

        assert!(fence.check().is_err(), "clones share one deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn error_names_the_validity() {
        let error = Fence::elected(VALIDITY).check().unwrap_err();

        assert!(
            error.to_string().starts_with("leadership not confirmed"),
            "{error}"
        );
        assert!(error.to_string().contains("2500 ms"), "{error}");
    }
}

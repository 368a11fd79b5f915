//! Keeps one failing Plivo account from taking every reconcile slot.
//!
//! While an account responds with errors worth retrying (429, 5xx, timeouts),
//! its reconciles wait inside the Plivo client for back-off and Retry-After,
//! each holding a worker slot. Once an account fails, at most a quarter of
//! the slots serve it until it recovers; its other resources are requeued
//! without any call, so other accounts keep their pace.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an account counts as failing after its last retryable error.
const DEGRADED_FOR: Duration = Duration::from_secs(30);

/// Identifies a Plivo account by where its credentials come from:
/// namespace and Secret name, or `None` for the operator's default Secret.
pub type AccountKey = (Option<String>, Option<String>);

/// Whether a reconcile may call Plivo now.
pub enum Admission {
    /// The account is healthy: no limit.
    Open,
    /// The account is failing and this reconcile has one of its few slots.
    Limited(#[allow(dead_code)] OwnedSemaphorePermit),
    /// The account is failing and its slots are taken: try again later.
    Busy,
}

/// Delay before a reconcile turned away as [`Admission::Busy`] tries again, with jitter.
pub fn busy_delay() -> Duration {
    super::error::backoff_delay(3, Duration::from_millis(500), Duration::from_secs(8))
}

/// Per-account admission of reconciles.
pub struct AccountGate {
    slots_when_failing: usize,
    accounts: Mutex<HashMap<AccountKey, Degraded>>,
}

struct Degraded {
    until: Instant,
    slots: Arc<Semaphore>,
}

impl AccountGate {
    pub fn new(concurrency: u16) -> Self {
        Self {
            slots_when_failing: (usize::from(concurrency) / 4).max(1),
            accounts: Mutex::default(),
        }
    }

    /// Admits a reconcile for `account`.
    pub fn admit(&self, account: &AccountKey) -> Admission {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(degraded) = accounts.get(account) else {
            return Admission::Open;
        };
        if degraded.until <= Instant::now() {
            accounts.remove(account);
            return Admission::Open;
        }
        match degraded.slots.clone().try_acquire_owned() {
            Ok(permit) => Admission::Limited(permit),
            Err(_) => Admission::Busy,
        }
    }

    /// Records a retryable Plivo failure of `account`.
    pub fn failed(&self, account: &AccountKey) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + DEGRADED_FOR;
        accounts
            .entry(account.clone())
            .and_modify(|degraded| degraded.until = until)
            .or_insert_with(|| Degraded {
                until,
                slots: Arc::new(Semaphore::new(self.slots_when_failing)),
            });
    }

    /// Records a successful Plivo exchange of `account`.
    pub fn succeeded(&self, account: &AccountKey) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AccountKey {
        (Some("team".into()), Some(name.into()))
    }

    #[test]
    fn healthy_account_is_not_limited() {
        let gate = AccountGate::new(8);
        assert!(matches!(gate.admit(&key("a")), Admission::Open));
    }

    #[test]
    fn failing_account_gets_a_quarter_of_the_slots() {
        let gate = AccountGate::new(8);
        gate.failed(&key("a"));
        let first = gate.admit(&key("a"));
        let second = gate.admit(&key("a"));
        assert!(matches!(first, Admission::Limited(_)));
        assert!(matches!(second, Admission::Limited(_)));
        assert!(matches!(gate.admit(&key("a")), Admission::Busy));
        assert!(
            matches!(gate.admit(&key("b")), Admission::Open),
            "other accounts are not limited"
        );
        drop(first);
        assert!(
            matches!(gate.admit(&key("a")), Admission::Limited(_)),
            "a released slot is reused"
        );
    }

    #[test]
    fn success_lifts_the_limit() {
        let gate = AccountGate::new(8);
        gate.failed(&key("a"));
        gate.succeeded(&key("a"));
        assert!(matches!(gate.admit(&key("a")), Admission::Open));
    }
}

//! Reconcilers for `BusinessProfile` and `CallerReputationNumber`.
//!
//! [`run`] drives both kube-runtime controllers until the shutdown future
//! completes; [`CallbackSink`] lets the HTTP server turn a verified Plivo
//! status callback into an immediate reconcile.

mod callbacks;
mod context;
mod credentials;
mod draft;
mod error;
mod events;
mod finalizer;
mod gate;
mod index;
mod number;
mod patch;
mod profile;
mod reads;
mod report;
mod secrets;
mod throttle;
mod wiring;

use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;

pub use self::{
    callbacks::{CALLBACK_PATH, CallbackHub, public_callback_url},
    context::Context,
    error::Error,
    wiring::run,
};

/// Which namespaces the controllers watch.
#[derive(Clone, Debug, Default)]
pub enum WatchNamespaces {
    /// Every namespace of the cluster.
    #[default]
    All,
    /// Only the listed namespaces.
    List(Vec<String>),
}

/// A Secret named by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    pub namespace: String,
    pub name: String,
}

/// Tunables of the controllers, filled from the `run` flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces to watch.
    pub namespaces: WatchNamespaces,
    /// Label selector that limits which custom resources this install manages.
    pub label_selector: Option<String>,
    /// Secret with the Plivo credentials used when a resource names none.
    pub default_credentials: Option<SecretReference>,
    /// How often an `ACTIVE` number is re-checked at Plivo.
    pub resync_period: Duration,
    /// First delay before a `PENDING` number is re-checked.
    pub pending_recheck_min: Duration,
    /// Longest delay between two checks of a `PENDING` number.
    pub pending_recheck_max: Duration,
    /// Reconciles that may run at once, per kind.
    pub concurrency: u16,
    /// Public base URL at which Plivo reaches this operator's callback endpoint.
    pub callback_base_url: Option<url::Url>,
}

/// Metrics the controllers report; implemented by the operator's registry.
pub trait ControllerMetrics: Send + Sync {
    /// Records one finished reconcile of `kind` with `result` (`success`, `error`).
    fn reconcile_finished(&self, kind: &'static str, result: &'static str, elapsed: Duration);
    /// Sets how many numbers currently report each caller reputation status.
    fn set_numbers_by_status(&self, counts: &[(String, i64)]);
}

/// A resource that a status callback may concern, with the Auth Tokens that can sign it.
pub struct CallbackTarget {
    pub namespace: String,
    pub name: String,
    pub auth_tokens: Vec<SecretString>,
}

/// Bridge from the callback endpoint to the number controller.
pub trait CallbackSink: Send + Sync {
    /// Returns the CallerReputationNumbers for `number_digits` (for example
    /// `14155550100`) with the Auth Tokens of the accounts that own them.
    fn targets(&self, number_digits: &str) -> BoxFuture<'_, Vec<CallbackTarget>>;
    /// Schedules an immediate reconcile of one CallerReputationNumber.
    fn trigger(&self, namespace: &str, name: &str);
}

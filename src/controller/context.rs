//! State shared by every reconcile: clients, settings and the caches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};

use super::{ControllerMetrics, Settings, credentials, events::Recorder, index::NumberIndex};
use crate::{
    api::{BusinessProfile, CallerReputationNumber, CredentialsSecretRef, PAUSED_ANNOTATION},
    plivo::{Account, PlivoClient},
};

/// The caches of every watched namespace scope, and who publishes Events.
pub struct Caches {
    pub profiles: Vec<Store<BusinessProfile>>,
    pub numbers: Vec<Store<CallerReputationNumber>>,
    pub number_indexes: Vec<Arc<NumberIndex>>,
    pub reporter: kube::runtime::events::Reporter,
}

/// Everything a reconcile needs besides the object itself.
pub struct Context {
    pub client: Client,
    pub plivo: PlivoClient,
    pub settings: Settings,
    pub metrics: Arc<dyn ControllerMetrics>,
    pub recorder: Recorder,
    /// BusinessProfile caches, one per watched namespace scope.
    pub profiles: Vec<Store<BusinessProfile>>,
    /// CallerReputationNumber caches, one per watched namespace scope.
    pub numbers: Vec<Store<CallerReputationNumber>>,
    /// Phone numbers and profile references of the cached numbers, one index per scope.
    pub number_indexes: Vec<Arc<NumberIndex>>,
    /// Callback routing; numbers a callback asked about skip the check schedule once.
    pub callbacks: Arc<super::CallbackHub>,
    /// Plivo number reads, batched into listings where that is cheaper.
    pub reads: super::reads::NumberReads,
    /// Managed numbers per namespace and credentials Secret.
    pub managed_counts: CountCache,
    /// Limits the reconciles of a Plivo account that keeps failing.
    pub gate: super::gate::AccountGate,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<(String, String, String), u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        plivo: PlivoClient,
        settings: Settings,
        metrics: Arc<dyn ControllerMetrics>,
        caches: Caches,
        callbacks: Arc<super::CallbackHub>,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), caches.reporter);
        let gate = super::gate::AccountGate::new(settings.concurrency);
        let reads = super::reads::NumberReads::new(
            plivo.config().requests_per_window,
            plivo.config().window,
        );
        Self {
            client,
            plivo,
            settings,
            metrics,
            recorder,
            profiles: caches.profiles,
            numbers: caches.numbers,
            number_indexes: caches.number_indexes,
            callbacks,
            reads,
            managed_counts: CountCache::default(),
            gate,
            failures: Mutex::default(),
        }
    }

    /// Returns every cached BusinessProfile.
    pub fn all_profiles(&self) -> Vec<Arc<BusinessProfile>> {
        self.profiles.iter().flat_map(Store::state).collect()
    }

    /// Returns every cached CallerReputationNumber.
    pub fn all_numbers(&self) -> Vec<Arc<CallerReputationNumber>> {
        self.numbers.iter().flat_map(Store::state).collect()
    }

    /// Returns the cached CallerReputationNumber `namespace/name`.
    pub fn number(&self, namespace: &str, name: &str) -> Option<Arc<CallerReputationNumber>> {
        let reference = ObjectRef::new(name).within(namespace);
        self.numbers.iter().find_map(|store| store.get(&reference))
    }

    /// Returns every cached CallerReputationNumber whose `spec.number` is `digits`.
    pub fn numbers_claiming(&self, digits: &str) -> Vec<Arc<CallerReputationNumber>> {
        self.number_indexes
            .iter()
            .flat_map(|index| index.claimants(digits))
            .filter_map(|(namespace, name)| self.number(&namespace, &name))
            .collect()
    }

    /// Returns the cached BusinessProfile `namespace/name`.
    pub fn profile(&self, namespace: &str, name: &str) -> Option<Arc<BusinessProfile>> {
        self.all_profiles()
            .into_iter()
            .find(|p| p.namespace().as_deref() == Some(namespace) && p.name_any() == name)
    }

    /// Reads the Plivo credentials for a resource in `namespace` and returns the account handle.
    pub async fn account(
        &self,
        namespace: &str,
        reference: Option<&CredentialsSecretRef>,
    ) -> Result<(Account, Option<CredentialsSecretRef>), credentials::CredentialsError> {
        let resolved = credentials::resolve(
            &self.client,
            namespace,
            reference,
            self.settings.default_credentials.as_ref(),
        )
        .await?;
        Ok((
            self.plivo.account(resolved.credentials),
            resolved.referenced,
        ))
    }

    /// Runs one reconcile of `object`, reporting its duration and result to
    /// the metrics and resetting the error back-off after a success.
    pub async fn measured<K, F>(
        &self,
        kind: &'static str,
        object: &K,
        reconcile: F,
    ) -> Result<Action, super::Error>
    where
        K: Resource<DynamicType = ()>,
        F: std::future::Future<Output = Result<Action, super::Error>>,
    {
        let started = std::time::Instant::now();
        let result = reconcile.await;
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .reconcile_finished(kind, label, started.elapsed());
        if result.is_ok() {
            self.record_success(object);
        }
        result
    }

    /// Records a failed reconcile and returns how many failed in a row.
    pub fn record_failure<K: Resource<DynamicType = ()>>(&self, object: &K) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key(object)).or_default();
        *count += 1;
        *count
    }

    /// Forgets earlier failures after a successful reconcile.
    pub fn record_success<K: Resource<DynamicType = ()>>(&self, object: &K) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&key(object));
    }

    /// Reads the controller's clock, once per reconcile.
    pub fn now(&self) -> Time {
        Time(jiff::Timestamp::now())
    }

    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Delay before an `ACTIVE` number or a synced profile is checked again.
    pub fn resync(&self) -> Duration {
        self.settings.resync_period
    }
}

fn key<K: Resource<DynamicType = ()>>(object: &K) -> (String, String, String) {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        K::kind(&()).into_owned(),
    )
}

/// Returns whether the `callerreputation.io/paused` annotation stops all Plivo calls for `object`.
pub fn is_paused<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// Number counts by credentials, recomputed at most every few seconds because a
/// count over the whole cache costs time proportional to the number of resources.
#[derive(Default)]
pub struct CountCache {
    counts: Mutex<Option<(std::time::Instant, CountsByCredentials)>>,
}

type CountsByCredentials = HashMap<(Option<String>, Option<String>), usize>;

impl CountCache {
    const MAX_AGE: Duration = Duration::from_secs(5);

    /// Returns the count for `key`, recomputing all counts with `count` when they are stale.
    pub fn get(
        &self,
        key: (Option<String>, Option<String>),
        count: impl FnOnce() -> CountsByCredentials,
    ) -> usize {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let stale = counts
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > Self::MAX_AGE);
        if stale {
            *counts = Some((std::time::Instant::now(), count()));
        }
        counts
            .as_ref()
            .and_then(|(_, counts)| counts.get(&key).copied())
            .unwrap_or(0)
    }
}

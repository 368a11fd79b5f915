//! State shared by every reconcile: clients, settings and the caches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{events::Recorder, reflector::Store},
};

use super::{ControllerMetrics, Settings, credentials};
use crate::{
    api::{BusinessProfile, CallerReputationNumber, CredentialsSecretRef, PAUSED_ANNOTATION},
    plivo::{Account, PlivoClient},
};

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
    /// Callback routing; numbers a callback asked about skip the check schedule once.
    pub callbacks: Arc<super::CallbackHub>,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<(String, String, String), u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        plivo: PlivoClient,
        settings: Settings,
        metrics: Arc<dyn ControllerMetrics>,
        recorder: Recorder,
        profiles: Vec<Store<BusinessProfile>>,
        numbers: Vec<Store<CallerReputationNumber>>,
        callbacks: Arc<super::CallbackHub>,
    ) -> Self {
        Self {
            client,
            plivo,
            settings,
            metrics,
            recorder,
            profiles,
            numbers,
            callbacks,
            failures: Mutex::default(),
        }
    }

    /// Every cached BusinessProfile.
    pub fn all_profiles(&self) -> Vec<Arc<BusinessProfile>> {
        self.profiles.iter().flat_map(Store::state).collect()
    }

    /// Every cached CallerReputationNumber.
    pub fn all_numbers(&self) -> Vec<Arc<CallerReputationNumber>> {
        self.numbers.iter().flat_map(Store::state).collect()
    }

    /// The cached BusinessProfile `namespace/name`.
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

    /// The controller's clock, read once per reconcile.
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

/// Whether the `callerreputation.io/paused` annotation stops all Plivo calls for `object`.
pub fn is_paused<K: Resource>(object: &K) -> bool {
    object
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

//! Builds the watches, caches and kube-runtime controllers and runs them.
//!
//! Each watched namespace scope (the whole cluster, or each listed namespace)
//! gets its own caches, because one kube-runtime store cannot merge several
//! watches. Duplicate EIN and number checks look across every scope.

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use futures::{FutureExt, Stream, StreamExt, future::join_all};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::Reporter,
        reflector::{self, ObjectRef},
        utils::Backoff,
        watcher,
    },
};
use serde::de::DeserializeOwned;

use super::{
    CallbackHub, Context, ControllerMetrics, Error, Settings, WatchNamespaces, context::Caches,
    credentials, index::NumberIndex, number, profile, secrets, throttle::throttle,
};
use crate::{
    api::{
        BusinessProfile, CallerReputationNumber, ProfileSource,
        conditions::{ConditionType, Reason, find_condition},
    },
    plivo::PlivoClient,
};

/// Name under which the operator publishes Events.
const REPORTER: &str = "caller-reputation-operator";

/// Shortest time between two reconciles of a profile caused by its numbers
/// changing. It bounds the profile's status writes while numbers are created in
/// bulk (2 a second) and how long `status.numbers` lags behind the last change.
const PROFILE_RECOUNT_INTERVAL: Duration = Duration::from_millis(500);

/// Runs both controllers until `shutdown` completes, then lets in-flight reconciles finish.
pub async fn run(
    client: Client,
    plivo: PlivoClient,
    settings: Settings,
    metrics: Arc<dyn ControllerMetrics>,
    callbacks: Arc<CallbackHub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.shared();
    let scopes: Vec<Option<String>> = match &settings.namespaces {
        WatchNamespaces::All => vec![None],
        WatchNamespaces::List(namespaces) => namespaces.iter().cloned().map(Some).collect(),
    };
    let mut config = watcher::Config::default();
    if let Some(selector) = &settings.label_selector {
        config = config.labels(selector);
    }

    let mut profile_caches = Vec::new();
    let mut number_caches = Vec::new();
    for scope in &scopes {
        let (reader, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(api::<BusinessProfile>(&client, scope), config.clone()).modify(slim),
        )
        .backoff(watch_backoff())
        .applied_objects()
        .predicate_filter(profile_own_trigger, Default::default());
        profile_caches.push((reader, stream.boxed()));
        let (reader, writer) = reflector::store();
        let (index, index_changes) = NumberIndex::new();
        let index = Arc::new(index);
        let stream = reflector::reflector(
            writer,
            watcher(
                api::<CallerReputationNumber>(&client, scope),
                config.clone(),
            )
            .modify(slim),
        )
        .inspect({
            let index = index.clone();
            move |event| {
                if let Ok(event) = event {
                    index.observe(event);
                }
            }
        })
        .backoff(watch_backoff())
        .applied_objects()
        .predicate_filter(own_trigger, Default::default());
        number_caches.push((reader, stream.boxed(), index, index_changes));
    }

    let reporter = Reporter {
        controller: REPORTER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let caches = Caches {
        profiles: profile_caches
            .iter()
            .map(|(reader, _)| reader.clone())
            .collect(),
        numbers: number_caches
            .iter()
            .map(|(reader, ..)| reader.clone())
            .collect(),
        number_indexes: number_caches
            .iter()
            .map(|(_, _, index, _)| index.clone())
            .collect(),
        reporter,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        plivo,
        settings.clone(),
        metrics.clone(),
        caches,
        callbacks.clone(),
    ));
    callbacks.attach(ctx.clone());

    let controller_config =
        kube::runtime::controller::Config::default().concurrency(settings.concurrency);
    let mut runs = Vec::new();
    for (
        (scope, (profile_reader, profile_stream)),
        (number_reader, number_stream, _, index_changes),
    ) in scopes.iter().zip(profile_caches).zip(number_caches)
    {
        let profiles = Controller::for_stream(profile_stream, profile_reader)
            .with_config(controller_config.clone())
            .trigger_backoff(NoPause)
            // A profile counts its numbers, and waits for them to go before it is
            // deleted; creating many numbers must not hold back its own reconcile.
            .reconcile_on(throttle(index_changes.profiles, PROFILE_RECOUNT_INTERVAL))
            .watches_stream(
                trigger(
                    api::<PartialObjectMeta<Secret>>(&client, scope),
                    watcher::Config::default(),
                ),
                {
                    let ctx = ctx.clone();
                    move |secret| profiles_using_secret(&ctx, &secret)
                },
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(profile::reconcile, error_policy, ctx.clone())
            .for_each(log_stream_error);
        runs.push(profiles.boxed());

        let numbers = Controller::for_stream(number_stream, number_reader)
            .with_config(controller_config.clone())
            .trigger_backoff(NoPause)
            .watches_stream(
                trigger(api::<BusinessProfile>(&client, scope), config.clone())
                    .predicate_filter(profile_trigger, Default::default()),
                {
                    let ctx = ctx.clone();
                    move |profile| numbers_using_profile(&ctx, &profile)
                },
            )
            .watches_stream(
                trigger(
                    api::<PartialObjectMeta<Secret>>(&client, scope),
                    watcher::Config::default(),
                ),
                {
                    let ctx = ctx.clone();
                    move |secret| numbers_using_secret(&ctx, &secret)
                },
            )
            .reconcile_on(callbacks.subscribe())
            // A number that lost a NumberConflict takes over once the owner's claim is gone.
            .reconcile_on(index_changes.claimants)
            .graceful_shutdown_on(shutdown.clone())
            .run(number::reconcile, error_policy, ctx.clone())
            .for_each(log_stream_error);
        runs.push(numbers.boxed());

        let secret_config =
            watcher::Config::default().labels(&format!("{}=true", credentials::SECRET_LABEL));
        let (secret_reader, secret_writer) = reflector::store();
        let secret_stream = reflector::reflector(
            secret_writer,
            watcher(api::<Secret>(&client, scope), secret_config),
        )
        .backoff(watch_backoff())
        .applied_objects();
        let releases = Controller::for_stream(secret_stream, secret_reader)
            .trigger_backoff(NoPause)
            .watches_stream(
                trigger(api::<BusinessProfile>(&client, scope), config.clone()),
                |profile| secret_of_profile(&profile),
            )
            .watches_stream(
                trigger(
                    api::<CallerReputationNumber>(&client, scope),
                    config.clone(),
                ),
                {
                    let ctx = ctx.clone();
                    move |resource| secret_of_number(&ctx, &resource)
                },
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(secrets::reconcile, secrets::error_policy, ctx.clone())
            .for_each(log_stream_error);
        runs.push(releases.boxed());
    }
    runs.push(report_status_counts(ctx.clone(), shutdown.clone()).boxed());
    callbacks.set_synced(false);
    runs.push(mark_synced(ctx.clone(), callbacks.clone(), shutdown.clone()).boxed());

    tracing::info!(scopes = scopes.len(), "Controllers started");
    join_all(runs).await;
    tracing::info!("Controllers stopped");
}

fn api<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Drops what the controllers never read before an object enters a cache:
/// managed fields are often the largest part of an object.
fn slim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Back-off of one watch between its failed list or watch calls. With the jitter a
/// retry waits at most 2 s, so a watch relists within seconds of the apiserver
/// coming back, also after the 410 Expired that follows each restart. The default
/// of kube-runtime 5 grows to 30 s, and to 60 s with its jitter.
fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// Watches `api` as a controller trigger, retrying on its own back-off.
fn trigger<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config)
        .backoff(watch_backoff())
        .touched_objects()
}

/// Trigger back-off of every controller: none, because each trigger stream backs
/// off on its own.
///
/// A kube-runtime 5 `Controller` otherwise applies one back-off (0.8 s doubling to
/// 30 s, reset by an object passing through or after 120 s without an error) to all
/// its triggers together, so any watch error pauses every trigger. After an apiserver restart each watch fails a few
/// times: connection refused, then one 410 Expired. The shared pause therefore
/// grew past 10 s and held back events of watches that had already recovered.
struct NoPause;

impl Iterator for NoPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for NoPause {
    fn reset(&mut self) {}
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Hashes what makes a resource's own change worth a reconcile: its spec
/// (generation), annotations, finalizers and deletion. The operator's own
/// status writes change none of these, so they trigger nothing.
fn own_trigger<K: Resource>(object: &K) -> Option<u64> {
    let meta = object.meta();
    Some(hash_of((
        meta.generation,
        object.annotations(),
        object.finalizers(),
        meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()),
    )))
}

/// [`own_trigger`] of a BusinessProfile, plus whether `status.lastSyncTime` is set: a number
/// clears it to make the profile check its Plivo profile (`profile::request_check`).
fn profile_own_trigger(profile: &BusinessProfile) -> Option<u64> {
    let synced = profile
        .status
        .as_ref()
        .is_some_and(|s| s.last_sync_time.is_some());
    Some(hash_of((own_trigger(profile), synced)))
}

/// Hashes what a number depends on in its profile: spec, readiness, UUID and deletion.
fn profile_trigger(profile: &BusinessProfile) -> Option<u64> {
    let status = profile.status.as_ref();
    let ready = status
        .and_then(|s| find_condition(&s.conditions, ConditionType::Ready))
        .map(|c| c.status.clone());
    Some(hash_of((
        profile.metadata.generation,
        status.and_then(|s| s.observed_generation),
        status.and_then(|s| s.profile_uuid.clone()),
        ready,
        profile.metadata.deletion_timestamp.is_some(),
    )))
}

fn numbers_using_profile(
    ctx: &Context,
    profile: &BusinessProfile,
) -> Vec<ObjectRef<CallerReputationNumber>> {
    let namespace = profile.namespace();
    let name = profile.name_any();
    ctx.all_numbers()
        .iter()
        .filter(|n| n.namespace() == namespace)
        .filter(
            |n| matches!(n.spec.profile_source(), Some(ProfileSource::Reference(r)) if r == name),
        )
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

/// Returns whether a resource waits for credentials, so that a change to the default Secret concerns it.
fn waits_for_credentials(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    find_condition(conditions, ConditionType::Ready)
        .is_some_and(|c| c.reason == Reason::CredentialsMissing.as_str())
}

fn is_default_secret(ctx: &Context, namespace: &str, name: &str) -> bool {
    ctx.settings
        .default_credentials
        .as_ref()
        .is_some_and(|d| d.namespace == namespace && d.name == name)
}

fn profiles_using_secret<S: Resource>(
    ctx: &Context,
    secret: &S,
) -> Vec<ObjectRef<BusinessProfile>> {
    let namespace = secret.meta().namespace.clone().unwrap_or_default();
    let name = secret.meta().name.clone().unwrap_or_default();
    let default = is_default_secret(ctx, &namespace, &name);
    ctx.all_profiles()
        .iter()
        .filter(|p| {
            secrets::profile_uses(p, &namespace, &name)
                || default
                    && p.spec.credentials_secret_ref.is_none()
                    && p.status
                        .as_ref()
                        .is_some_and(|s| waits_for_credentials(&s.conditions))
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

fn numbers_using_secret<S: Resource>(
    ctx: &Context,
    secret: &S,
) -> Vec<ObjectRef<CallerReputationNumber>> {
    let namespace = secret.meta().namespace.clone().unwrap_or_default();
    let name = secret.meta().name.clone().unwrap_or_default();
    let default = is_default_secret(ctx, &namespace, &name);
    ctx.all_numbers()
        .iter()
        .filter(|n| {
            secrets::number_uses(n, ctx, &namespace, &name)
                || default
                    && n.status
                        .as_ref()
                        .is_some_and(|s| waits_for_credentials(&s.conditions))
        })
        .map(|n| ObjectRef::from_obj(n.as_ref()))
        .collect()
}

fn secret_of_profile(profile: &BusinessProfile) -> Option<ObjectRef<Secret>> {
    let reference = profile.spec.credentials_secret_ref.as_ref()?;
    Some(ObjectRef::new(&reference.name).within(&profile.namespace()?))
}

fn secret_of_number(ctx: &Context, resource: &CallerReputationNumber) -> Option<ObjectRef<Secret>> {
    let reference = number::credentials_of(resource, ctx)?;
    Some(ObjectRef::new(&reference.name).within(&resource.namespace()?))
}

/// Error policy of both controllers: back off per object, honouring Plivo's Retry-After.
fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    if error.is_conflict() {
        tracing::debug!(%namespace, %name, "Object changed while reconciling; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    let attempts = ctx.record_failure(object.as_ref());
    let delay = super::error::backoff_delay(
        attempts.saturating_sub(1),
        Duration::from_secs(1),
        Duration::from_secs(300),
    );
    let delay = error.retry_after().map_or(delay, |asked| asked.max(delay));
    tracing::warn!(%namespace, %name, error = %super::error::chain(error), retry_in_s = delay.as_secs_f64(), "Reconcile failed");
    Action::requeue(delay)
}

/// Publishes how many numbers report each caller reputation status, every 15 seconds.
async fn report_status_counts(ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
    let counting = async {
        let mut interval = tokio::time::interval(Duration::from_secs(15));
        loop {
            interval.tick().await;
            let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
            for resource in ctx.all_numbers() {
                let status = resource
                    .status
                    .as_ref()
                    .and_then(|s| s.caller_reputation_status.clone())
                    .unwrap_or_else(|| "NONE".to_string());
                *counts.entry(status).or_default() += 1;
            }
            ctx.metrics
                .set_numbers_by_status(&counts.into_iter().collect::<Vec<_>>());
        }
    };
    tokio::select! {
        () = counting => {}
        () = shutdown => {}
    }
}

/// Tells the callback hub once every cache has been filled by its first listing.
async fn mark_synced(
    ctx: Arc<Context>,
    callbacks: Arc<CallbackHub>,
    shutdown: impl Future<Output = ()>,
) {
    let synced = async {
        for store in &ctx.profiles {
            let _ = store.wait_until_ready().await;
        }
        for store in &ctx.numbers {
            let _ = store.wait_until_ready().await;
        }
        callbacks.set_synced(true);
        tracing::info!("Caches synced");
    };
    tokio::select! {
        () = synced => {}
        () = shutdown => {}
    }
}

/// Logs what the controller stream reports besides reconcile failures, which
/// the error policy logs: mostly watch errors, such as a CRD that is not
/// installed or a missing RBAC permission.
fn log_stream_error<T, E, Q>(
    result: Result<T, kube::runtime::controller::Error<E, Q>>,
) -> futures::future::Ready<()>
where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as StreamError;
    match result {
        Ok(_) | Err(StreamError::ReconcilerFailed(..) | StreamError::ObjectNotFound(_)) => {}
        Err(error) => {
            tracing::warn!(error = %super::error::chain(&error), "Watch failed; retrying")
        }
    }
    futures::future::ready(())
}

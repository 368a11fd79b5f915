//! Releases the finalizer on credentials Secrets that no resource uses any more.

use std::{collections::HashMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{ResourceExt, api::ListParams, runtime::controller::Action};

use super::{Context, Error, credentials, number};
use crate::api::{BusinessProfile, CallerReputationNumber, CredentialsSecretRef};

/// One reconcile of a Secret that carries the operator's finalizer.
pub async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let has_finalizer = secret
        .finalizers()
        .iter()
        .any(|f| f == credentials::SECRET_FINALIZER);
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    if !caches_ready(&ctx).await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let users = ctx
        .all_profiles()
        .iter()
        .filter(|p| profile_uses(p, &namespace, &name))
        .count()
        + ctx
            .all_numbers()
            .iter()
            .filter(|n| number_uses(n, &ctx, &namespace, &name))
            .count();
    if users > 0 && secret.metadata.deletion_timestamp.is_some() {
        // The last user's delete event can arrive here before the shared caches drop it
        // (they are fed by other watches), so a Secret waiting to go looks again.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    if users > 0 {
        return Ok(Action::await_change());
    }

    let outside = users_outside_caches(&ctx, &namespace, &name)
        .await
        .map_err(Error::kube(format!(
            "list the users of Secret {namespace}/{name}"
        )))?;
    if outside > 0 {
        tracing::debug!(%namespace, %name, users = outside, "Keeping credentials Secret: resources this operator does not select use it");
        return Ok(Action::await_change());
    }

    let api = ctx.api::<Secret>(&namespace);
    credentials::release(&api, &secret)
        .await
        .map_err(Error::kube(format!("release Secret {namespace}/{name}")))?;
    tracing::info!(%namespace, %name, "Released credentials Secret");
    Ok(Action::await_change())
}

/// Counts the resources of `namespace` that use Secret `name`, read from the apiserver without
/// the operator's label selector.
///
/// Installs that split a namespace with `--label-selector` share the finalizer, and each one's
/// caches show only its own resources. Without this check an install with no users of its own
/// released the finalizer, the other install added it back, and the two kept rewriting the Secret.
async fn users_outside_caches(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<usize, kube::Error> {
    let everything = ListParams::default();
    let profiles = ctx
        .api::<BusinessProfile>(namespace)
        .list(&everything)
        .await?;
    let numbers = ctx
        .api::<CallerReputationNumber>(namespace)
        .list(&everything)
        .await?;

    let profile_secrets: HashMap<String, Option<CredentialsSecretRef>> = profiles
        .items
        .iter()
        .map(|p| (p.name_any(), p.spec.credentials_secret_ref.clone()))
        .collect();
    let profile_users = profiles
        .items
        .iter()
        .filter(|p| profile_uses(p, namespace, name))
        .count();
    let number_users = numbers
        .items
        .iter()
        .filter_map(|n| {
            number::credentials_given(n, |_, profile| profile_secrets.get(profile).cloned())
        })
        .filter(|reference| reference.name == name)
        .count();
    Ok(profile_users + number_users)
}

/// Waits (briefly) for the first listing of every profile and number cache.
///
/// Until then an empty cache means "not read yet", not "no users": releasing at start-up
/// would drop the guard while resources deleted during the downtime still need the Secret
/// to disable their numbers. This waits on the hub's synced flag rather than on
/// `Store::wait_until_ready`, whose wake-up reaches only one of several concurrent waiters.
async fn caches_ready(ctx: &Context) -> bool {
    tokio::time::timeout(Duration::from_secs(5), ctx.callbacks.wait_synced())
        .await
        .is_ok()
}

pub fn profile_uses(profile: &BusinessProfile, namespace: &str, name: &str) -> bool {
    profile.namespace().as_deref() == Some(namespace)
        && profile
            .spec
            .credentials_secret_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
}

pub fn number_uses(
    resource: &CallerReputationNumber,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> bool {
    resource.namespace().as_deref() == Some(namespace)
        && number::credentials_of(resource, ctx).is_some_and(|r| r.name == name)
}

/// Error policy of the Secret controller: a plain backoff, Secrets get no conditions.
pub fn error_policy(secret: Arc<Secret>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(namespace = %secret.namespace().unwrap_or_default(), name = %secret.name_any(), error = %super::error::chain(error), "Secret reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

//! Reconciler of `BusinessProfile`: find or create the Plivo profile, keep
//! its fields in line with the spec, and delete it when the deletion policy requests it.

mod create;
mod desired;

use std::{sync::Arc, time::Duration};

use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};

use super::{
    Error,
    context::{Context, is_paused},
    finalizer,
    gate::{Admission, busy_delay},
    report::{Outcome, publish},
};
use crate::{
    api::{
        BusinessProfile, ProfileDeletionPolicy, ProfileSource,
        conditions::{ConditionType, Reason, is_condition_true, remove_condition, set_condition},
    },
    plivo::{Account, Profile},
};

/// How long a resource that waits on another resource (a duplicate EIN, a
/// profile in use) waits before it looks again without being triggered.
const RECHECK_BLOCKED: Duration = Duration::from_secs(60);

/// Kind label of this controller in metrics and backoff bookkeeping.
pub const KIND: &str = "BusinessProfile";

/// Makes BusinessProfile `namespace/name` check its Plivo profile at its next reconcile,
/// which this status change triggers.
///
/// A number calls this when Plivo rejects its enable with `invalid_profile_uuid`, which is
/// the sign that the profile was deleted at Plivo. Without it the BusinessProfile would go on
/// reporting `Ready` until its next resync. Clearing `lastSyncTime` ends the reconcile's shortcut for a fresh
/// profile. A failure is logged and left to that resync.
pub async fn request_check(ctx: &Context, namespace: &str, name: &str) {
    let api = ctx.api::<BusinessProfile>(namespace);
    let clear = serde_json::json!({"status": {"lastSyncTime": null}});
    let params = PatchParams {
        field_manager: Some(super::patch::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    match api.patch_status(name, &params, &Patch::Merge(&clear)).await {
        Ok(_) => {
            tracing::info!(%namespace, %name, "Plivo rejected the profile UUID of BusinessProfile; checking the profile again")
        }
        Err(error) => {
            tracing::warn!(%namespace, %name, error = %error, "Failed to request a check of BusinessProfile; it is checked at its next resync")
        }
    }
}

/// Reconciles one BusinessProfile.
pub async fn reconcile(profile: Arc<BusinessProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.measured(KIND, profile.as_ref(), dispatch(&profile, &ctx))
        .await
}

async fn dispatch(profile: &BusinessProfile, ctx: &Context) -> Result<Action, Error> {
    let api = ctx.api::<BusinessProfile>(&profile.namespace().unwrap_or_default());
    if profile.metadata.deletion_timestamp.is_some() {
        if !finalizer::has_finalizer(profile) {
            return Ok(Action::await_change());
        }
        return cleanup(profile, ctx).await;
    }
    if !finalizer::has_finalizer(profile) {
        finalizer::add(&api, profile)
            .await
            .map_err(Error::kube("add the finalizer"))?;
        return Ok(Action::await_change());
    }
    apply(profile, ctx).await
}

/// The status being built during one reconcile of a profile.
type Draft<'a> = super::draft::Draft<'a, BusinessProfile>;

async fn apply(profile: &BusinessProfile, ctx: &Context) -> Result<Action, Error> {
    let mut draft = Draft::new(profile, ctx);
    draft.status.numbers = Some(count_numbers(profile, ctx));

    if is_paused(profile) {
        draft
            .finish_unsynced(
                ctx,
                Reason::Paused,
                "The callerreputation.io/paused annotation is \"true\"; remove it to resume.",
            )
            .await?;
        return Ok(Action::await_change());
    }

    if let Some(winner) = duplicate_ein_winner(profile, ctx).await {
        let message = format!(
            "BusinessProfile {winner} already manages EIN {} on this Plivo account, and Plivo allows one profile per EIN; delete this resource or reference {winner} from the numbers.",
            profile.spec.ein
        );
        draft
            .finish(ctx, &Outcome::blocked(Reason::DuplicateEin, message))
            .await?;
        return Ok(Action::requeue(RECHECK_BLOCKED));
    }

    if is_fresh(profile, ctx, &draft) {
        draft.write(ctx).await?;
        return Ok(Action::requeue(ctx.resync()));
    }

    let account_key = (
        profile.namespace(),
        profile
            .spec
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.name.clone()),
    );
    let _admission = match ctx.gate.admit(&account_key) {
        Admission::Busy => return Ok(Action::requeue(busy_delay())),
        admission => admission,
    };

    let account = match ctx
        .account(
            &profile.namespace().unwrap_or_default(),
            profile.spec.credentials_secret_ref.as_ref(),
        )
        .await
    {
        Ok((account, _)) => account,
        Err(error) if error.is_user_error() => {
            draft
                .finish(
                    ctx,
                    &Outcome::blocked(Reason::CredentialsMissing, error.to_string()),
                )
                .await?;
            return Ok(Action::await_change());
        }
        Err(error) => return Err(Error::Credentials(error)),
    };

    let found = match create::find_or_create(profile, &account, ctx, &mut draft.status).await {
        Ok(found) => found,
        Err(create::Blocked::Outcome(outcome)) => {
            draft.finish(ctx, &outcome).await?;
            return Ok(Action::await_change());
        }
        Err(create::Blocked::Retry(error)) => {
            ctx.gate.failed(&account_key);
            let message = super::error::chain(&error);
            draft
                .finish_unsynced(ctx, Reason::PlivoUnavailable, &message)
                .await?;
            return Err(error);
        }
    };

    let outcome = match sync_fields(profile, &account, &found.profile).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => Outcome::ready(found.reason, found.message()),
        Err(error) => {
            ctx.gate.failed(&account_key);
            let message = super::error::chain(&error);
            draft
                .finish_unsynced(ctx, Reason::PlivoUnavailable, &message)
                .await?;
            return Err(error);
        }
    };
    ctx.gate.succeeded(&account_key);
    draft.status.profile_uuid = Some(found.profile.profile_uuid.clone());
    draft.status.last_sync_time = Some(draft.now.clone());
    draft.finish(ctx, &outcome).await?;
    Ok(Action::requeue(ctx.resync()))
}

/// Sends the fields that drifted; returns an outcome when the profile cannot be brought in line.
async fn sync_fields(
    profile: &BusinessProfile,
    account: &Account,
    plivo: &Profile,
) -> Result<Option<Outcome>, Error> {
    let drift = desired::drift(profile, plivo);
    if !drift.immutable.is_empty() {
        let fields: Vec<String> = drift
            .immutable
            .iter()
            .map(|(field, plivo_value)| format!("{field} (Plivo has {plivo_value:?})"))
            .collect();
        let message = format!(
            "Plivo does not let an existing profile change {}; set the value Plivo has, or create a new BusinessProfile for a new profile.",
            fields.join(", ")
        );
        return Ok(Some(Outcome::blocked(Reason::UpdateRejected, message)));
    }
    if drift.update.is_empty() {
        return Ok(None);
    }
    match account
        .update_profile(&plivo.profile_uuid, &drift.update)
        .await
    {
        Ok(_) => Ok(Some(Outcome::ready(
            Reason::Updated,
            format!("Updated Plivo profile {}.", plivo.profile_uuid),
        ))),
        Err(error) if error.is_retryable() => Err(Error::Plivo(error)),
        Err(error) => Ok(Some(Outcome::blocked(
            Reason::InvalidProfile,
            format!("{error}; correct the spec so that Plivo accepts it."),
        ))),
    }
}

/// Returns whether the profile was checked at Plivo recently enough that a trigger
/// which changed nothing in it (a number added, a Secret touched) needs no Plivo call.
fn is_fresh(profile: &BusinessProfile, ctx: &Context, draft: &Draft<'_>) -> bool {
    let Some(status) = &profile.status else {
        return false;
    };
    let Some(last_sync) = &status.last_sync_time else {
        return false;
    };
    status.observed_generation == profile.metadata.generation
        && is_condition_true(&status.conditions, ConditionType::Ready)
        && is_condition_true(&status.conditions, ConditionType::Synced)
        && last_sync.0 + ctx.resync() > draft.now.0
}

/// Counts the CallerReputationNumbers that use this profile.
fn count_numbers(profile: &BusinessProfile, ctx: &Context) -> i32 {
    users(profile, ctx).len() as i32
}

/// Lists the CallerReputationNumbers that use this profile, by reference or by its UUID.
fn users(profile: &BusinessProfile, ctx: &Context) -> Vec<String> {
    let namespace = profile.namespace();
    let name = profile.name_any();
    let uuid = profile.status.as_ref().and_then(|s| s.profile_uuid.clone());
    ctx.all_numbers()
        .into_iter()
        .filter(|number| match number.spec.profile_source() {
            Some(ProfileSource::Reference(reference)) => {
                number.namespace() == namespace && reference == name
            }
            Some(ProfileSource::Uuid(direct)) => uuid.as_deref() == Some(direct),
            None => false,
        })
        .map(|number| {
            format!(
                "{}/{}",
                number.namespace().unwrap_or_default(),
                number.name_any()
            )
        })
        .collect()
}

/// Returns the BusinessProfile that claimed this EIN first on the same Plivo
/// account, if it is not this one. Credentials are compared by Secret: two
/// Secrets with the same Auth ID are not detected as one account here.
async fn duplicate_ein_winner(profile: &BusinessProfile, ctx: &Context) -> Option<String> {
    let ein = profile.spec.ein_digits().ok()?;
    let account_of = |p: &BusinessProfile| {
        p.spec
            .credentials_secret_ref
            .as_ref()
            .map(|r| (p.namespace(), r.name.clone()))
    };
    let own_account = account_of(profile);
    ctx.all_profiles()
        .into_iter()
        .filter(|other| other.uid() != profile.uid())
        .filter(|other| other.metadata.deletion_timestamp.is_none())
        .filter(|other| other.spec.ein_digits().ok().as_deref() == Some(ein.as_str()))
        .filter(|other| account_of(other) == own_account)
        .filter(|other| desired::claims_first(other, profile))
        // Name the first claimant of all, not just any earlier one: it is the owner.
        .reduce(|first, other| {
            if desired::claims_first(&other, &first) {
                other
            } else {
                first
            }
        })
        .map(|owner| {
            format!(
                "{}/{}",
                owner.namespace().unwrap_or_default(),
                owner.name_any()
            )
        })
}

async fn cleanup(profile: &BusinessProfile, ctx: &Context) -> Result<Action, Error> {
    let api = ctx.api::<BusinessProfile>(&profile.namespace().unwrap_or_default());
    let policy = profile.spec.deletion_policy.unwrap_or_default();
    if policy == ProfileDeletionPolicy::Orphan {
        finalizer::remove(&api, profile)
            .await
            .map_err(Error::kube("remove the finalizer"))?;
        return Ok(Action::await_change());
    }

    let mut draft = Draft::new(profile, ctx);
    if is_paused(profile) {
        draft
            .finish_unsynced(ctx, Reason::Paused, "Deletion waits: remove the callerreputation.io/paused annotation, or set deletionPolicy: Orphan.")
            .await?;
        return Ok(Action::await_change());
    }

    let users = users(profile, ctx);
    if !users.is_empty() {
        let message = format!(
            "Deletion waits until no CallerReputationNumber uses this profile; still used by {}.",
            users.join(", ")
        );
        let generation = draft.generation();
        let now = draft.now.clone();
        let moved = set_condition(
            &mut draft.status.conditions,
            ConditionType::InUse,
            true,
            Reason::InUse,
            message.clone(),
            generation,
            now,
        );
        draft.status.numbers = Some(users.len() as i32);
        draft.write(ctx).await?;
        if moved {
            publish(
                &ctx.recorder,
                profile,
                false,
                Reason::InUse,
                "Delete",
                &message,
            )
            .await;
        }
        return Ok(Action::requeue(RECHECK_BLOCKED));
    }
    remove_condition(&mut draft.status.conditions, ConditionType::InUse);

    let account = match ctx
        .account(
            &profile.namespace().unwrap_or_default(),
            profile.spec.credentials_secret_ref.as_ref(),
        )
        .await
    {
        Ok((account, _)) => account,
        Err(error) if error.is_user_error() => {
            draft
                .finish(
                    ctx,
                    &Outcome::blocked(
                        Reason::CredentialsMissing,
                        format!("Deletion waits for credentials: {error}"),
                    ),
                )
                .await?;
            return Ok(Action::requeue(RECHECK_BLOCKED));
        }
        Err(error) => return Err(Error::Credentials(error)),
    };

    if let Some(uuid) = create::owned_uuid(profile, &account).await? {
        match account.delete_profile(&uuid).await {
            Ok(()) => {}
            Err(crate::plivo::Error::NotFound { .. }) => {}
            Err(error) if error.is_retryable() => {
                let message = format!("Deletion waits: {}", super::error::chain(&error));
                draft
                    .finish_unsynced(ctx, Reason::PlivoUnavailable, &message)
                    .await?;
                return Err(Error::Plivo(error));
            }
            Err(error) => {
                let message = format!(
                    "Deletion waits: Plivo refused to delete profile {uuid}: {error}. Delete it in the Plivo console, or set deletionPolicy: Orphan."
                );
                draft
                    .finish(ctx, &Outcome::blocked(Reason::PlivoError, message))
                    .await?;
                return Ok(Action::requeue(RECHECK_BLOCKED));
            }
        }
        publish(
            &ctx.recorder,
            profile,
            false,
            Reason::Deleting,
            "Delete",
            &format!("Deleted Plivo profile {uuid}."),
        )
        .await;
    }
    finalizer::remove(&api, profile)
        .await
        .map_err(Error::kube("remove the finalizer"))?;
    Ok(Action::await_change())
}

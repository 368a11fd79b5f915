//! De-registering a number when its CallerReputationNumber is deleted.
//!
//! Cleanup does not need the BusinessProfile: the Secret whose credentials
//! enrolled the number is recorded in the status, and the Secret itself is
//! kept by a finalizer until the last resource using it is gone.

use std::time::Duration;

use kube::{ResourceExt, runtime::controller::Action};

use super::{Draft, RECHECK_BLOCKED};
use crate::{
    api::{
        CallerReputationNumber, CredentialsSecretRef, NumberDeletionPolicy, ProfileSource,
        conditions::Reason,
    },
    controller::{
        Context, Error,
        context::is_paused,
        finalizer,
        report::{Outcome, publish},
    },
    plivo::{self, UpdateNumber},
};

/// Runs the deletion policy; removes the finalizer once the number is de-registered.
pub async fn cleanup(number: &CallerReputationNumber, ctx: &Context) -> Result<Action, Error> {
    let namespace = number.namespace().unwrap_or_default();
    let api = ctx.api::<CallerReputationNumber>(&namespace);
    if number.spec.effective_deletion_policy() == NumberDeletionPolicy::Orphan {
        finalizer::remove(&api, number)
            .await
            .map_err(Error::kube("remove the finalizer"))?;
        return Ok(Action::await_change());
    }

    let draft = Draft::new(number, ctx);
    if is_paused(number) {
        draft
            .finish_unsynced(ctx, Reason::Paused, "Deletion waits: remove the callerreputation.io/paused annotation, or set deletionPolicy: Orphan.")
            .await?;
        return Ok(Action::await_change());
    }

    let Ok(phone) = number.spec.phone_number() else {
        finalizer::remove(&api, number)
            .await
            .map_err(Error::kube("remove the finalizer"))?;
        return Ok(Action::await_change());
    };
    // Another resource that still manages the number owns its enrollment: the
    // loser of a NumberConflict never touched Plivo and must not disable it now.
    if let Some(owner) = other_manager(number, &phone, ctx) {
        tracing::info!(%namespace, name = %number.name_any(), %owner, "Number managed by another resource; leaving it enrolled");
        finalizer::remove(&api, number)
            .await
            .map_err(Error::kube("remove the finalizer"))?;
        return Ok(Action::await_change());
    }
    let never_enrolled = number
        .status
        .as_ref()
        .is_none_or(|s| s.enrollment.is_none());

    let reference = credentials_of(number, ctx);
    let account = match ctx.account(&namespace, reference.as_ref()).await {
        Ok((account, _)) => account,
        // Without credentials nothing can have been sent, so there is nothing to undo.
        Err(error) if error.is_user_error() && never_enrolled => {
            tracing::info!(%namespace, name = %number.name_any(), "Number never enrolled and has no credentials; releasing it");
            finalizer::remove(&api, number)
                .await
                .map_err(Error::kube("remove the finalizer"))?;
            return Ok(Action::await_change());
        }
        Err(error) if error.is_user_error() => {
            let message = format!("Deletion waits: cannot disable {phone} at Plivo: {error}");
            draft
                .finish(ctx, &Outcome::blocked(Reason::Deleting, message))
                .await?;
            return Ok(Action::requeue(RECHECK_BLOCKED));
        }
        Err(error) => return Err(Error::Credentials(error)),
    };

    let digits = phone.digits();
    let enrolled_profile = number
        .status
        .as_ref()
        .and_then(|s| s.enrollment.as_ref())
        .map(|e| e.profile_uuid.clone());
    let observed = match account.get_number(&digits).await {
        Ok(observed) => Some(observed),
        // No longer in the account: nothing is left to de-register.
        Err(plivo::Error::NotFound { .. }) => None,
        Err(error) => return deletion_waits(ctx, draft, error).await,
    };
    if let Some(observed) = observed {
        let enrolled =
            observed.caller_reputation_status.is_some() || observed.profile_uuid.is_some();
        let ours = match (&observed.profile_uuid, &enrolled_profile) {
            (Some(current), Some(ours)) => current == ours,
            _ => true,
        };
        if enrolled && ours {
            if let Err(error) = account
                .update_number(&digits, &UpdateNumber::disable_caller_reputation())
                .await
            {
                return deletion_waits(ctx, draft, error).await;
            }
            let confirmed = match account.get_number(&digits).await {
                Ok(after) => {
                    after.caller_reputation_status.is_none() && after.profile_uuid.is_none()
                }
                Err(plivo::Error::NotFound { .. }) => true,
                Err(error) => return deletion_waits(ctx, draft, error).await,
            };
            if !confirmed {
                let message = format!(
                    "Deletion waits: Plivo still reports {phone} as enrolled after the disable; retrying."
                );
                draft
                    .finish(ctx, &Outcome::blocked(Reason::Deleting, message))
                    .await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
            publish(
                &ctx.recorder,
                number,
                false,
                Reason::Disabled,
                "Delete",
                &format!("Disabled Caller Reputation on {phone} before deletion."),
            )
            .await;
        }
    }

    finalizer::remove(&api, number)
        .await
        .map_err(Error::kube("remove the finalizer"))?;
    Ok(Action::await_change())
}

/// The credentials that enrolled the number: the referenced profile's while
/// it exists, else the number's own reference, else the Secret recorded at enrollment.
pub(crate) fn credentials_of(
    number: &CallerReputationNumber,
    ctx: &Context,
) -> Option<CredentialsSecretRef> {
    credentials_given(number, |namespace, name| {
        ctx.profile(namespace, name)
            .map(|profile| profile.spec.credentials_secret_ref.clone())
    })
}

/// [`credentials_of`], with the referenced profile's Secret reference from `profile_secret`,
/// which returns `None` when the profile (namespace, name) does not exist.
pub(crate) fn credentials_given(
    number: &CallerReputationNumber,
    profile_secret: impl FnOnce(&str, &str) -> Option<Option<CredentialsSecretRef>>,
) -> Option<CredentialsSecretRef> {
    let namespace = number.namespace().unwrap_or_default();
    if let Some(ProfileSource::Reference(name)) = number.spec.profile_source()
        && let Some(reference) = profile_secret(&namespace, name)
    {
        return reference;
    }
    if let Some(reference) = &number.spec.credentials_secret_ref {
        return Some(reference.clone());
    }
    number
        .status
        .as_ref()
        .and_then(|s| s.credentials_secret_ref.clone())
}

async fn deletion_waits(
    ctx: &Context,
    draft: Draft<'_>,
    error: plivo::Error,
) -> Result<Action, Error> {
    let message = format!(
        "Deletion waits: {}",
        crate::controller::error::chain(&error)
    );
    if error.is_retryable() {
        draft
            .finish_unsynced(ctx, Reason::PlivoUnavailable, &message)
            .await?;
        return Err(Error::Plivo(error));
    }
    draft
        .finish(ctx, &Outcome::blocked(Reason::Deleting, message))
        .await?;
    Ok(Action::requeue(RECHECK_BLOCKED))
}

/// Returns another CallerReputationNumber, not being deleted, that manages the same number.
fn other_manager(
    number: &CallerReputationNumber,
    phone: &crate::api::PhoneNumber,
    ctx: &Context,
) -> Option<String> {
    ctx.numbers_claiming(&phone.digits())
        .into_iter()
        .filter(|other| other.uid() != number.uid())
        .find(|other| other.metadata.deletion_timestamp.is_none())
        .map(|other| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
}

//! Reconciler of `CallerReputationNumber`: enable Caller Reputation on the
//! number with its profile, report the carriers' decision, re-check on a
//! schedule, and de-register the number when it is deleted.

mod cleanup;
mod desired;

pub(crate) use cleanup::{credentials_given, credentials_of};

use std::{sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{ResourceExt, runtime::controller::Action};

use self::desired::{Desired, Step};
use super::gate::{AccountKey, Admission};
use super::{
    Error,
    context::{Context, is_paused},
    finalizer,
    report::{Outcome, publish},
};
use crate::{
    api::{
        BusinessProfile, CallerReputationNumber, CallerReputationNumberStatus,
        CallerReputationState, Enrollment, PhoneNumber, ProfileSource, RETRY_ANNOTATION,
        conditions::{ConditionType, Reason, find_condition, is_condition_true},
    },
    plivo::{self, Account, CallbackMethod, Number, UpdateNumber},
};

/// Kind label of this controller in metrics and backoff bookkeeping.
pub const KIND: &str = "CallerReputationNumber";

/// How long a number blocked by another resource waits before it looks again untriggered.
const RECHECK_BLOCKED: Duration = Duration::from_secs(60);

/// Reconciles one CallerReputationNumber.
pub async fn reconcile(
    number: Arc<CallerReputationNumber>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.measured(KIND, number.as_ref(), dispatch(&number, &ctx))
        .await
}

async fn dispatch(number: &CallerReputationNumber, ctx: &Context) -> Result<Action, Error> {
    if number.metadata.deletion_timestamp.is_some() {
        if !finalizer::has_finalizer(number) {
            return Ok(Action::await_change());
        }
        return cleanup::cleanup(number, ctx).await;
    }
    if !finalizer::has_finalizer(number) {
        let api = ctx.api::<CallerReputationNumber>(&number.namespace().unwrap_or_default());
        finalizer::add(&api, number)
            .await
            .map_err(Error::kube("add the finalizer"))?;
        return Ok(Action::await_change());
    }
    apply(number, ctx).await
}

/// The status being built during one reconcile of a number.
pub(super) type Draft<'a> = super::draft::Draft<'a, CallerReputationNumber>;

/// The profile and account a number is enrolled with.
struct Target {
    desired: Desired,
    account: Account,
}

async fn apply(number: &CallerReputationNumber, ctx: &Context) -> Result<Action, Error> {
    let mut draft = Draft::new(number, ctx);

    if is_paused(number) {
        draft
            .finish_unsynced(
                ctx,
                Reason::Paused,
                "The callerreputation.io/paused annotation is \"true\"; remove it to resume.",
            )
            .await?;
        return Ok(Action::await_change());
    }

    let phone = match number.spec.phone_number() {
        Ok(phone) => phone,
        Err(error) => {
            draft
                .finish(
                    ctx,
                    &Outcome::blocked(
                        Reason::NumberNotFound,
                        format!("spec.number is invalid: {error}"),
                    ),
                )
                .await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(winner) = conflicting_claim(number, &phone, ctx) {
        let message = format!(
            "CallerReputationNumber {winner} already manages {phone}; delete one of the two resources."
        );
        draft
            .finish(ctx, &Outcome::blocked(Reason::NumberConflict, message))
            .await?;
        return Ok(Action::requeue(RECHECK_BLOCKED));
    }

    let account = account_key(number, ctx);
    let _admission = match ctx.gate.admit(&account) {
        Admission::Busy => return Ok(Action::requeue(super::gate::busy_delay())),
        admission => admission,
    };

    let target = match resolve_target(number, ctx, &mut draft).await? {
        Ok(target) => target,
        Err(Some(outcome)) => {
            draft.finish(ctx, &outcome).await?;
            return Ok(Action::await_change());
        }
        Err(None) => return Ok(Action::await_change()),
    };

    let forced = ctx
        .callbacks
        .take_forced(&number.namespace().unwrap_or_default(), &number.name_any());
    if !forced && let Some(action) = skip_plivo(number, &target.desired, &draft) {
        return Ok(action);
    }

    let outcome = match enroll(number, &phone, &target, forced, ctx, &mut draft).await {
        Ok(outcome) => {
            ctx.gate.succeeded(&account);
            if outcome.reason == Reason::InvalidProfile
                && let Some(ProfileSource::Reference(profile)) = number.spec.profile_source()
            {
                super::profile::request_check(
                    ctx,
                    &number.namespace().unwrap_or_default(),
                    profile,
                )
                .await;
            }
            outcome
        }
        Err(error) => {
            if matches!(error, Error::Plivo(_)) {
                ctx.gate.failed(&account);
            }
            let message = super::error::chain(&error);
            draft
                .finish_unsynced(ctx, Reason::PlivoUnavailable, &message)
                .await?;
            return Err(error);
        }
    };

    let delay = schedule(&outcome, ctx, &mut draft);
    draft.finish(ctx, &outcome).await?;
    Ok(delay.map_or_else(Action::await_change, Action::requeue))
}

/// Resolves the profile UUID and the Plivo account. `Err(outcome)` when the
/// number has to wait: with the outcome to report, or `None` to keep the status.
async fn resolve_target(
    number: &CallerReputationNumber,
    ctx: &Context,
    draft: &mut Draft<'_>,
) -> Result<Result<Target, Option<Outcome>>, Error> {
    let namespace = number.namespace().unwrap_or_default();
    let (profile_uuid, profile_generation, secret_ref) = match number.spec.profile_source() {
        Some(ProfileSource::Reference(name)) => {
            let mut profile = ctx.profile(&namespace, name);
            if profile.as_deref().and_then(ready_profile).is_none() {
                // A profile's change triggers this reconcile through another watch than the
                // one feeding the cache, so the cache may not hold the change yet: confirm
                // "not ready" with a direct read, or the number waits until the next resync.
                let fresh = ctx.api::<BusinessProfile>(&namespace).get_opt(name).await;
                if let Ok(Some(fresh)) = fresh {
                    profile = Some(Arc::new(fresh));
                }
            }
            match profile.as_deref().and_then(ready_profile) {
                Some((uuid, generation)) => {
                    let secret_ref = profile
                        .as_ref()
                        .and_then(|p| p.spec.credentials_secret_ref.clone());
                    (uuid, Some(generation), secret_ref)
                }
                None if profile.is_none() => {
                    let message = format!(
                        "BusinessProfile {name} not found in namespace {namespace}; create it or correct spec.profileRef."
                    );
                    return Ok(Err(Some(Outcome::blocked(
                        Reason::ProfileNotFound,
                        message,
                    ))));
                }
                None => {
                    // An active number stays as it is while its profile is being updated.
                    if is_condition_true(&draft.status.conditions, ConditionType::Ready) {
                        return Ok(Err(None));
                    }
                    let message = format!("Waiting for BusinessProfile {name} to be Ready.");
                    return Ok(Err(Some(Outcome::blocked(
                        Reason::ProfileNotReady,
                        message,
                    ))));
                }
            }
        }
        Some(ProfileSource::Uuid(uuid)) => (
            uuid.to_string(),
            None,
            number.spec.credentials_secret_ref.clone(),
        ),
        None => {
            let outcome = Outcome::blocked(
                Reason::ProfileNotFound,
                "Set exactly one of spec.profileRef and spec.profileUUID.",
            );
            return Ok(Err(Some(outcome)));
        }
    };

    let account = match ctx.account(&namespace, secret_ref.as_ref()).await {
        Ok((account, referenced)) => {
            draft.status.credentials_secret_ref = referenced;
            account
        }
        Err(error) if error.is_user_error() => {
            return Ok(Err(Some(Outcome::blocked(
                Reason::CredentialsMissing,
                error.to_string(),
            ))));
        }
        Err(error) => return Err(Error::Credentials(error)),
    };

    let desired = if number.spec.is_enabled() {
        let callback = callback(number, ctx);
        Desired::Enabled(Enrollment {
            profile_uuid,
            profile_generation,
            retry_token: number.annotations().get(RETRY_ANNOTATION).cloned(),
            callback_url: callback.as_ref().map(|(url, _)| url.to_string()),
            callback_method: callback
                .as_ref()
                .map(|(_, method)| method.as_str().to_string()),
        })
    } else {
        Desired::Disabled
    };
    Ok(Ok(Target { desired, account }))
}

/// Returns the UUID and generation of a BusinessProfile that is Ready at its current generation.
fn ready_profile(profile: &BusinessProfile) -> Option<(String, i64)> {
    let status = profile.status.as_ref()?;
    let generation = profile.metadata.generation?;
    let current = status.observed_generation == Some(generation)
        && is_condition_true(&status.conditions, ConditionType::Ready)
        && profile.metadata.deletion_timestamp.is_none();
    current.then(|| status.profile_uuid.clone().map(|uuid| (uuid, generation)))?
}

/// The callback URL and method sent with an enable: the spec's, else the operator's own endpoint.
fn callback(number: &CallerReputationNumber, ctx: &Context) -> Option<(url::Url, CallbackMethod)> {
    if let Some(spec) = &number.spec.callback {
        let url = url::Url::parse(&spec.url).ok()?;
        let method = match spec.effective_method() {
            crate::api::CallbackMethod::Get => CallbackMethod::Get,
            crate::api::CallbackMethod::Post => CallbackMethod::Post,
        };
        return Some((url, method));
    }
    let base = ctx.settings.callback_base_url.as_ref()?;
    Some((
        super::callbacks::public_callback_url(base),
        CallbackMethod::Post,
    ))
}

/// Returns the action when nothing can have changed since the last check: the
/// inputs are the ones last reconciled and the next check is not due, or the
/// last attempt ended in a state only the user can change.
fn skip_plivo(
    number: &CallerReputationNumber,
    desired: &Desired,
    draft: &Draft<'_>,
) -> Option<Action> {
    let status = number.status.as_ref()?;
    if status.observed_generation != number.metadata.generation
        || !is_condition_true(&status.conditions, ConditionType::Synced) && !is_terminal(status)
    {
        return None;
    }
    let inputs_unchanged = match desired {
        Desired::Enabled(wanted) => status.enrollment.as_ref() == Some(wanted),
        Desired::Disabled => find_condition(&status.conditions, ConditionType::Ready)
            .is_some_and(|ready| ready.reason == Reason::Disabled.as_str()),
    };
    if !inputs_unchanged || draft.status.credentials_secret_ref != status.credentials_secret_ref {
        return None;
    }
    if is_terminal(status) {
        return Some(Action::await_change());
    }
    let next = status.next_check_time.as_ref()?;
    let wait = next.0.duration_since(draft.now.0);
    (wait > jiff::SignedDuration::ZERO).then(|| Action::requeue(wait.unsigned_abs()))
}

/// Returns whether Plivo rejected the last attempt in a way only a spec change fixes.
fn is_terminal(status: &CallerReputationNumberStatus) -> bool {
    find_condition(&status.conditions, ConditionType::Synced).is_some_and(|synced| {
        synced.status == "False"
            && (synced.reason == Reason::NotEligible.as_str()
                || synced.reason == Reason::InvalidProfile.as_str())
    })
}

/// Reads the number, sends the one call that is needed, reads it back, and maps the result.
async fn enroll(
    number: &CallerReputationNumber,
    phone: &PhoneNumber,
    target: &Target,
    forced: bool,
    ctx: &Context,
    draft: &mut Draft<'_>,
) -> Result<Outcome, Error> {
    let digits = phone.digits();
    // A callback requests the number's current state, so it is never served from a listing.
    let managed = if forced {
        0
    } else {
        managed_in_account(number, ctx)
    };
    let observed = match ctx.reads.read(&target.account, &digits, managed).await {
        Ok(observed) => observed,
        Err(plivo::Error::NotFound { .. }) => {
            return Ok(Outcome::blocked(
                Reason::NumberNotFound,
                format!(
                    "{phone} is not a rented number of Plivo account {}; rent it, or correct spec.number.",
                    target.account.auth_id()
                ),
            ));
        }
        Err(error) if error.is_retryable() => return Err(Error::Plivo(error)),
        Err(error) => return Ok(Outcome::plivo_rejected(&error)),
    };
    draft.status.last_checked_time = Some(draft.now.clone());
    draft.status.number_type = observed
        .number_type
        .as_ref()
        .map(|t| t.as_str().to_string());

    let step = desired::next_step(&target.desired, draft.status.enrollment.as_ref(), &observed);
    let observed = match (&step, &target.desired) {
        (Step::Nothing, _) => observed,
        (Step::Enable, Desired::Enabled(wanted)) => {
            let previous = draft.status.state();
            if desired::was_undone(
                previous.as_ref(),
                draft.status.profile_uuid.as_deref(),
                &observed,
            ) {
                let message = format!(
                    "{phone} was disabled or moved to another profile outside the operator; enrolling it again."
                );
                publish(
                    &ctx.recorder,
                    number,
                    true,
                    Reason::Pending,
                    "Restore",
                    &message,
                )
                .await;
            }
            match send_enable(&target.account, &digits, wanted).await {
                Ok(()) => {
                    draft.status.enrollment = Some(wanted.clone());
                    let message = format!(
                        "Enabled Caller Reputation on {phone} with profile {}.",
                        wanted.profile_uuid
                    );
                    publish(
                        &ctx.recorder,
                        number,
                        false,
                        Reason::Pending,
                        "Enable",
                        &message,
                    )
                    .await;
                }
                Err(rejected) => {
                    draft.status.enrollment = Some(wanted.clone());
                    return rejected;
                }
            }
            target
                .account
                .get_number(&digits)
                .await
                .map_err(Error::Plivo)?
        }
        (Step::Disable, _) => {
            target
                .account
                .update_number(&digits, &UpdateNumber::disable_caller_reputation())
                .await
                .map_err(Error::Plivo)?;
            publish(
                &ctx.recorder,
                number,
                false,
                Reason::Disabled,
                "Disable",
                &format!("Disabled Caller Reputation on {phone}."),
            )
            .await;
            target
                .account
                .get_number(&digits)
                .await
                .map_err(Error::Plivo)?
        }
        (Step::Enable, Desired::Disabled) => observed,
    };

    record_observed(draft, &observed);
    Ok(match &target.desired {
        Desired::Enabled(wanted) => {
            // Inputs that reached a settled state count as reconciled, so a later
            // profile change alone does not re-send an enable that is in effect.
            if matches!(
                draft.status.state(),
                Some(CallerReputationState::Active | CallerReputationState::Pending)
            ) {
                draft.status.enrollment = Some(wanted.clone());
            }
            desired::enabled_outcome(&observed, &wanted.profile_uuid)
        }
        Desired::Disabled => desired::disabled_outcome(&observed),
    })
}

/// Sends an enable. `Err(Ok(outcome))` is a permanent rejection to report;
/// `Err(Err(error))` a failure to retry.
async fn send_enable(
    account: &Account,
    digits: &str,
    wanted: &Enrollment,
) -> Result<(), Result<Outcome, Error>> {
    let callback = wanted
        .callback_url
        .as_deref()
        .and_then(|url| url::Url::parse(url).ok())
        .map(|url| {
            let method = if wanted.callback_method.as_deref() == Some("GET") {
                CallbackMethod::Get
            } else {
                CallbackMethod::Post
            };
            (url, method)
        });
    let request = UpdateNumber::enable_caller_reputation(wanted.profile_uuid.clone(), callback);
    match account.update_number(digits, &request).await {
        Ok(()) => Ok(()),
        Err(plivo::Error::NumberNotEligible { .. }) => Err(Ok(Outcome::blocked(
            Reason::NotEligible,
            "Plivo rejected the enable with number_not_eligible: Caller Reputation covers only US local and toll-free numbers. Use an eligible number.",
        ))),
        Err(plivo::Error::InvalidProfileUuid { .. }) => Err(Ok(Outcome::blocked(
            Reason::InvalidProfile,
            format!(
                "Plivo rejected profile {} with invalid_profile_uuid: correct spec.profileUUID or the BusinessProfile.",
                wanted.profile_uuid
            ),
        ))),
        Err(error) if error.is_retryable() => Err(Err(Error::Plivo(error))),
        Err(error) => Err(Ok(Outcome::plivo_rejected(&error))),
    }
}

/// Copies Plivo's report into the status; `activeSince` is set when the number becomes ACTIVE.
fn record_observed(draft: &mut Draft<'_>, observed: &Number) {
    let state = observed
        .caller_reputation_status
        .as_ref()
        .map(|s| s.as_str().to_string());
    let now_active = state.as_deref() == Some("ACTIVE");
    let was_active = draft.status.caller_reputation_status.as_deref() == Some("ACTIVE");
    if now_active && !was_active {
        draft.status.active_since = Some(draft.now.clone());
    } else if !now_active {
        draft.status.active_since = None;
    }
    draft.status.caller_reputation_status = state;
    draft.status.profile_uuid = observed.profile_uuid.clone();
}

/// Sets `nextCheckTime` and returns the delay until it.
fn schedule(outcome: &Outcome, ctx: &Context, draft: &mut Draft<'_>) -> Option<Duration> {
    let previous_interval = match (&draft.object.status, outcome.reason) {
        (Some(status), Reason::Pending)
            if status.state() == Some(CallerReputationState::Pending) =>
        {
            match (&status.last_checked_time, &status.next_check_time) {
                (Some(checked), Some(next)) => next.0.duration_since(checked.0).try_into().ok(),
                _ => None,
            }
        }
        _ => None,
    };
    let settings = &ctx.settings;
    let delay = desired::next_check(
        outcome,
        previous_interval,
        settings.pending_recheck_min,
        settings.pending_recheck_max,
        settings.resync_period,
    );
    draft.status.next_check_time = delay.and_then(|delay| {
        let delay = jiff::SignedDuration::try_from(delay).ok()?;
        Some(Time(draft.now.0.checked_add(delay).ok()?))
    });
    delay
}

/// Returns the CallerReputationNumber that claimed `phone` first, if it is not this one.
fn conflicting_claim(
    number: &CallerReputationNumber,
    phone: &PhoneNumber,
    ctx: &Context,
) -> Option<String> {
    // A number that already has an enrollment keeps it; otherwise the older
    // resource wins (creation times have one-second resolution, so names break ties).
    let key = |n: &CallerReputationNumber| {
        let holds = n.status.as_ref().is_some_and(|s| s.enrollment.is_some());
        (
            !holds,
            n.metadata.creation_timestamp.as_ref().map(|t| t.0),
            n.metadata.namespace.clone(),
            n.metadata.name.clone(),
        )
    };
    ctx.numbers_claiming(&phone.digits())
        .into_iter()
        .filter(|other| other.uid() != number.uid())
        .filter(|other| key(other) < key(number))
        .map(|other| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
        .next()
}

/// Returns the Plivo account of `number`, keyed by where its credentials come from.
fn account_key(number: &CallerReputationNumber, ctx: &Context) -> AccountKey {
    (
        number.namespace(),
        cleanup::credentials_of(number, ctx).map(|r| r.name),
    )
}

/// Counts the numbers the operator manages with the same credentials as `number`,
/// counted over the whole cache at most every few seconds.
fn managed_in_account(number: &CallerReputationNumber, ctx: &Context) -> usize {
    let key = |n: &CallerReputationNumber| account_key(n, ctx);
    ctx.managed_counts.get(key(number), || {
        let mut counts = std::collections::HashMap::new();
        for other in ctx.all_numbers() {
            *counts.entry(key(&other)).or_default() += 1;
        }
        counts
    })
}

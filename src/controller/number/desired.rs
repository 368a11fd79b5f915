//! Pure decisions about a CallerReputationNumber: whether Plivo needs an
//! enable or a disable, what Plivo's response means for the conditions, and
//! when to look again. No I/O here.

use std::time::Duration;

use crate::{
    api::{CallerReputationState, Enrollment, conditions::Reason},
    controller::report::Outcome,
    plivo::{CallerReputationStatus, Number},
};

/// The state the spec requests for the number at Plivo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// Enrolled with this enrollment (profile, callback, retry inputs).
    Enabled(Enrollment),
    /// De-registered.
    Disabled,
}

/// The one call, if any, that brings Plivo in line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Enable,
    Disable,
    Nothing,
}

fn state(number: &Number) -> Option<CallerReputationState> {
    number
        .caller_reputation_status
        .as_ref()
        .map(|status| CallerReputationState::parse(status.as_str()))
}

/// Decides the next call from what the spec wants, what was last sent, and what Plivo reports.
///
/// An enable already in effect is never sent again, because it may restart
/// carrier vetting. A `FAILED` enrollment is sent again only when its inputs
/// changed since the last enable (the profile's spec or the retry annotation).
pub fn next_step(desired: &Desired, last_sent: Option<&Enrollment>, observed: &Number) -> Step {
    let observed_state = state(observed);
    match desired {
        Desired::Disabled => {
            if observed_state.is_some() || observed.profile_uuid.is_some() {
                Step::Disable
            } else {
                Step::Nothing
            }
        }
        Desired::Enabled(wanted) => {
            let same_profile =
                observed.profile_uuid.as_deref() == Some(wanted.profile_uuid.as_str());
            match observed_state {
                Some(CallerReputationState::Pending | CallerReputationState::Active)
                    if same_profile =>
                {
                    if callback_changed(wanted, last_sent) {
                        Step::Enable
                    } else {
                        Step::Nothing
                    }
                }
                Some(CallerReputationState::Failed) if same_profile => {
                    if last_sent.is_some_and(|sent| retry_inputs(sent) == retry_inputs(wanted)) {
                        Step::Nothing
                    } else {
                        Step::Enable
                    }
                }
                // Re-enabling a number Plivo reports as not eligible only earns a 400.
                Some(CallerReputationState::NotEnrolled) if same_profile => Step::Nothing,
                _ => Step::Enable,
            }
        }
    }
}

fn callback_changed(wanted: &Enrollment, last_sent: Option<&Enrollment>) -> bool {
    let Some(sent) = last_sent else {
        // Enrolled by someone else with this profile: the callback Plivo has is unknown,
        // and re-sending may restart vetting, so only a spec callback forces it.
        return wanted.callback_url.is_some();
    };
    sent.callback_url != wanted.callback_url || sent.callback_method != wanted.callback_method
}

fn retry_inputs(enrollment: &Enrollment) -> (&str, Option<i64>, Option<&str>) {
    (
        enrollment.profile_uuid.as_str(),
        enrollment.profile_generation,
        enrollment.retry_token.as_deref(),
    )
}

/// Returns whether Plivo's state was in effect before and has since been
/// undone outside the operator (disabled, or moved to another profile).
pub fn was_undone(
    previous: Option<&CallerReputationState>,
    previous_profile: Option<&str>,
    observed: &Number,
) -> bool {
    let was_in_effect = matches!(
        previous,
        Some(CallerReputationState::Active | CallerReputationState::Pending)
    );
    was_in_effect && observed.profile_uuid.as_deref() != previous_profile
}

/// Maps Plivo's report on an enabled number to the conditions.
pub fn enabled_outcome(observed: &Number, profile_uuid: &str) -> Outcome {
    let status = observed.caller_reputation_status.as_ref();
    if observed.profile_uuid.as_deref() != Some(profile_uuid) && status.is_some() {
        return Outcome::blocked(
            Reason::Pending,
            format!(
                "Plivo reports the number with profile {}, not {profile_uuid}; the enable is being applied.",
                observed.profile_uuid.as_deref().unwrap_or("none")
            ),
        );
    }
    match status {
        Some(CallerReputationStatus::Active) => Outcome::ready(
            Reason::Active,
            format!("Caller Reputation is active with profile {profile_uuid}."),
        ),
        Some(CallerReputationStatus::Pending) | None => Outcome::applied(
            Reason::Pending,
            "The carriers are vetting the number; activation can take up to 2 business days.",
        ),
        Some(CallerReputationStatus::Failed) => Outcome::applied(
            Reason::Failed,
            "The carriers rejected the registration: check the BusinessProfile's legal name, EIN, address and website, then change it, or set the callerreputation.io/retry annotation to a new value to retry as is.",
        ),
        Some(CallerReputationStatus::NotEnrolled) => Outcome::applied(
            Reason::NotEnrolled,
            "Plivo reports NOT_ENROLLED: the number is not eligible for Caller Reputation (US local and toll-free numbers only).",
        ),
        Some(CallerReputationStatus::Other(other)) => Outcome::blocked(
            Reason::PlivoError,
            format!("Plivo reports the unknown caller reputation status {other:?}."),
        ),
    }
}

/// Maps Plivo's report on a number the spec disables.
pub fn disabled_outcome(observed: &Number) -> Outcome {
    if observed.caller_reputation_status.is_none() && observed.profile_uuid.is_none() {
        Outcome::ready(
            Reason::Disabled,
            "Caller Reputation is disabled on the number, as the spec asks.",
        )
    } else {
        Outcome::blocked(
            Reason::Disabled,
            "The disable was sent; Plivo still reports the number as enrolled.",
        )
    }
}

/// Delay between checks of a number that the Plivo account does not rent. Renting it
/// happens outside the cluster, so no watch event announces it.
pub const NOT_FOUND_RECHECK: Duration = Duration::from_secs(5 * 60);

/// Delay before the next check at Plivo, or `None` to wait for a change.
///
/// `PENDING` is re-checked with a doubling delay between `min` and `max`
/// (activation can take two business days). A number the account does not
/// rent is re-checked every [`NOT_FOUND_RECHECK`] (or `resync`, if shorter).
/// A state that only a change of the resource can alter waits for that change.
pub fn next_check(
    outcome: &Outcome,
    previous_interval: Option<Duration>,
    min: Duration,
    max: Duration,
    resync: Duration,
) -> Option<Duration> {
    match outcome.reason {
        Reason::Pending => Some(match previous_interval {
            Some(previous) => previous.saturating_mul(2).clamp(min, max),
            None => min,
        }),
        Reason::NumberNotFound => Some(NOT_FOUND_RECHECK.min(resync)),
        Reason::NotEligible | Reason::InvalidProfile => None,
        _ => Some(resync),
    }
}

#[cfg(test)]
mod tests;

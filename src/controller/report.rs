//! The one reporting path: an outcome becomes conditions, an Event and a log
//! line with the same reason, so what `kubectl describe` shows always agrees
//! with `.status.conditions`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Resource, ResourceExt,
    runtime::events::{Event, EventType},
};

use super::events::Recorder;
use crate::api::conditions::{ConditionType, Reason, remove_condition, set_condition};

/// Kubernetes caps an Event note at 1 KiB.
const EVENT_NOTE_LIMIT: usize = 1024;

/// The conclusion of one reconcile about a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the desired state is fully in effect at Plivo.
    pub ready: bool,
    /// Whether the last attempt to apply the spec succeeded.
    pub synced: bool,
    /// Whether the resource waits for the user to change something.
    pub stalled: bool,
    pub reason: Reason,
    pub message: String,
}

impl Outcome {
    /// Builds the outcome of a desired state that is in effect.
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            synced: true,
            stalled: false,
            reason,
            message: message.into(),
        }
    }

    /// Builds the outcome of a spec applied at Plivo whose result is not (yet) the
    /// desired state: carriers vetting, rejecting, or calling the number ineligible.
    pub fn applied(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            synced: true,
            stalled: reason.is_stalling(),
            reason,
            message: message.into(),
        }
    }

    /// Builds the outcome of a spec that could not be applied. The reason decides
    /// whether the resource waits for the user.
    pub fn blocked(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            synced: false,
            stalled: reason.is_stalling(),
            reason,
            message: message.into(),
        }
    }

    /// Builds the outcome of a Plivo error that a retry cannot fix: rejected
    /// credentials point at the Secret, anything else carries Plivo's text.
    pub fn plivo_rejected(error: &crate::plivo::Error) -> Self {
        match error {
            crate::plivo::Error::Unauthorized { .. } | crate::plivo::Error::Forbidden { .. } => {
                Self::blocked(
                    Reason::CredentialsMissing,
                    format!("{error}. Fix the Auth ID and Auth Token in the credentials Secret."),
                )
            }
            _ => Self::blocked(Reason::PlivoError, error.to_string()),
        }
    }

    fn event_type(&self) -> EventType {
        let waits_for_other_resource = matches!(
            self.reason,
            Reason::ProfileNotReady | Reason::ProfileNotFound
        );
        if self.stalled || !self.synced && !waits_for_other_resource {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

/// Sets Ready, Synced and Stalled from `outcome`; returns whether any condition changed.
pub fn apply_outcome(
    conditions: &mut Vec<Condition>,
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let Outcome {
        ready,
        synced,
        stalled,
        reason,
        message,
    } = outcome;
    let mut changed = set_condition(
        conditions,
        ConditionType::Ready,
        *ready,
        *reason,
        message.clone(),
        generation,
        now.clone(),
    );
    changed |= if *synced {
        set_condition(
            conditions,
            ConditionType::Synced,
            true,
            Reason::Reconciled,
            "The spec is applied at Plivo.",
            generation,
            now.clone(),
        )
    } else {
        set_condition(
            conditions,
            ConditionType::Synced,
            false,
            *reason,
            message.clone(),
            generation,
            now.clone(),
        )
    };
    changed |= if *stalled {
        set_condition(
            conditions,
            ConditionType::Stalled,
            true,
            *reason,
            message.clone(),
            generation,
            now.clone(),
        )
    } else {
        remove_condition(conditions, ConditionType::Stalled)
    };
    changed
}

/// Sets only `Synced=False` and leaves Ready as it was, for failures that tell
/// nothing about the state at Plivo (a timeout, a paused resource).
pub fn apply_sync_failure(
    conditions: &mut Vec<Condition>,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let mut changed = set_condition(
        conditions,
        ConditionType::Synced,
        false,
        reason,
        message,
        generation,
        now.clone(),
    );
    if !conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Ready.as_str())
    {
        changed |= set_condition(
            conditions,
            ConditionType::Ready,
            false,
            reason,
            message,
            generation,
            now.clone(),
        );
    }
    changed
}

/// Publishes an Event about `object` and logs it; Event failures are logged, not returned,
/// because a lost Event must not fail a reconcile.
pub async fn publish<K>(
    recorder: &Recorder,
    object: &K,
    warning: bool,
    reason: Reason,
    action: &str,
    note: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    if warning {
        tracing::warn!(%namespace, %name, reason = reason.as_str(), "{note}");
    } else {
        tracing::info!(%namespace, %name, reason = reason.as_str(), "{note}");
    }
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.as_str().to_string(),
        note: Some(truncate(note, EVENT_NOTE_LIMIT)),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%namespace, %name, %error, "Failed to publish Event");
    }
}

/// Publishes the Event for `outcome` when the conditions moved.
pub async fn publish_outcome<K>(recorder: &Recorder, object: &K, outcome: &Outcome)
where
    K: Resource<DynamicType = ()>,
{
    let warning = outcome.event_type() == EventType::Warning;
    publish(
        recorder,
        object,
        warning,
        outcome.reason,
        outcome.reason.as_str(),
        &outcome.message,
    )
    .await;
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
        conditions.iter().find(|c| c.type_ == type_.as_str())
    }

    #[test]
    fn stuck_outcome_sets_stalled_and_unsynced() {
        let mut conditions = Vec::new();
        let outcome = Outcome::blocked(Reason::NotEligible, "Number is mobile.");
        assert!(apply_outcome(&mut conditions, &outcome, Some(3), &now()));
        assert_eq!(
            find(&conditions, ConditionType::Ready).unwrap().status,
            "False"
        );
        assert_eq!(
            find(&conditions, ConditionType::Synced).unwrap().reason,
            "NotEligible"
        );
        assert_eq!(
            find(&conditions, ConditionType::Stalled).unwrap().status,
            "True"
        );
        assert_eq!(
            find(&conditions, ConditionType::Ready)
                .unwrap()
                .observed_generation,
            Some(3)
        );
    }

    #[test]
    fn ready_outcome_removes_stalled() {
        let mut conditions = Vec::new();
        apply_outcome(
            &mut conditions,
            &Outcome::blocked(Reason::NotEligible, "x"),
            Some(1),
            &now(),
        );
        apply_outcome(
            &mut conditions,
            &Outcome::ready(Reason::Active, "y"),
            Some(2),
            &now(),
        );
        assert!(find(&conditions, ConditionType::Stalled).is_none());
        assert_eq!(
            find(&conditions, ConditionType::Synced).unwrap().status,
            "True"
        );
    }

    #[test]
    fn same_outcome_twice_changes_nothing() {
        let mut conditions = Vec::new();
        let outcome = Outcome::applied(Reason::Pending, "Carriers are vetting the number.");
        apply_outcome(&mut conditions, &outcome, Some(1), &now());
        assert!(!apply_outcome(&mut conditions, &outcome, Some(1), &now()));
    }

    #[test]
    fn sync_failure_keeps_ready() {
        let mut conditions = Vec::new();
        apply_outcome(
            &mut conditions,
            &Outcome::ready(Reason::Active, "ok"),
            Some(1),
            &now(),
        );
        apply_sync_failure(
            &mut conditions,
            Reason::PlivoUnavailable,
            "timeout",
            Some(1),
            &now(),
        );
        assert_eq!(
            find(&conditions, ConditionType::Ready).unwrap().status,
            "True"
        );
        assert_eq!(
            find(&conditions, ConditionType::Synced).unwrap().status,
            "False"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024);
        assert!(cut.ends_with("..."));
    }
}

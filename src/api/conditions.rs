//! The condition vocabulary of both custom resources, in one place.
//!
//! Condition types and reasons are closed enums so that no other module writes
//! a string-literal reason; their string forms are part of the API that users
//! and tools (`kubectl wait`, Argo CD, Flux) match on and must stay stable.
//! This module also owns the upsert of a condition into a status and the
//! kstatus evaluation of a whole object.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The apiserver rejects a condition message longer than this many bytes
/// (`metav1.Condition.message` has `maxLength: 32768`).
pub const MAX_CONDITION_MESSAGE_BYTES: usize = 32768;

/// Condition types the operator sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The object is in effect at Plivo: a profile exists and is in sync, or a
    /// number's enrolment is `ACTIVE` (or it is disabled as the spec asks).
    Ready,
    /// The last attempt to apply the spec to Plivo succeeded.
    Synced,
    /// Present and `True` only while progress needs a change by the user: the
    /// operator will not retry until the spec, a referenced object or the
    /// retry annotation changes.
    Stalled,
    /// A BusinessProfile is referenced by at least one CallerReputationNumber,
    /// so deleting it would leave numbers without a profile.
    InUse,
}

impl ConditionType {
    /// Returns the `type` string written into the condition.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Synced => "Synced",
            Self::Stalled => "Stalled",
            Self::InUse => "InUse",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Machine-readable reasons of conditions and Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The operator created the Plivo profile.
    Created,
    /// The operator took over an existing Plivo profile named by `profileUUID`,
    /// or found the profile its own interrupted create had made.
    Adopted,
    /// The operator sent a changed spec to Plivo and Plivo accepted it.
    Updated,
    /// Caller Reputation enrolment was submitted and the carriers are processing it (`PENDING`).
    Pending,
    /// Caller Reputation is registered with the carriers (`ACTIVE`).
    Active,
    /// The carriers rejected the enrolment (`FAILED`); fix the profile or set the retry annotation.
    Failed,
    /// Plivo reports the number as `NOT_ENROLLED`: it is not (or no longer) eligible.
    NotEnrolled,
    /// Plivo rejected the enable request with `number_not_eligible` (e.g. not a US local or toll-free number).
    NotEligible,
    /// Plivo rejected the profile UUID with `invalid_profile_uuid`, or rejected the profile's fields.
    InvalidProfile,
    /// The referenced BusinessProfile exists but is not Ready yet.
    ProfileNotReady,
    /// The referenced BusinessProfile does not exist, or `profileUUID` names no Plivo profile.
    ProfileNotFound,
    /// Plivo already has a profile for this EIN that the operator did not create; set `profileUUID` to adopt it.
    ProfileExists,
    /// The number is not on the Plivo account.
    NumberNotFound,
    /// The credentials Secret, or a key in it, is missing.
    CredentialsMissing,
    /// Another BusinessProfile in the cluster uses the same EIN; Plivo allows one profile per EIN.
    DuplicateEin,
    /// Another CallerReputationNumber in the cluster manages the same number.
    NumberConflict,
    /// Plivo could not be reached, timed out, rate-limited the request or answered with a server error; the operator retries.
    PlivoUnavailable,
    /// Plivo returned an error the operator does not classify further; the message carries Plivo's text.
    PlivoError,
    /// The spec changes a field that Plivo does not let an existing profile change.
    UpdateRejected,
    /// The spec sets `enabled: false` and Caller Reputation is disabled on the number.
    Disabled,
    /// The `callerreputation.io/paused` annotation is `"true"`; the operator makes no Plivo call.
    Paused,
    /// The object is being deleted and the operator is cleaning up at Plivo.
    Deleting,
    /// A BusinessProfile is referenced by CallerReputationNumbers.
    InUse,
    /// The object matches Plivo and nothing needed to change.
    Reconciled,
}

impl Reason {
    /// Returns the CamelCase reason string written into conditions and Events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Adopted => "Adopted",
            Self::Updated => "Updated",
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Failed => "Failed",
            Self::NotEnrolled => "NotEnrolled",
            Self::NotEligible => "NotEligible",
            Self::InvalidProfile => "InvalidProfile",
            Self::ProfileNotReady => "ProfileNotReady",
            Self::ProfileNotFound => "ProfileNotFound",
            Self::ProfileExists => "ProfileExists",
            Self::NumberNotFound => "NumberNotFound",
            Self::CredentialsMissing => "CredentialsMissing",
            Self::DuplicateEin => "DuplicateEIN",
            Self::NumberConflict => "NumberConflict",
            Self::PlivoUnavailable => "PlivoUnavailable",
            Self::PlivoError => "PlivoError",
            Self::UpdateRejected => "UpdateRejected",
            Self::Disabled => "Disabled",
            Self::Paused => "Paused",
            Self::Deleting => "Deleting",
            Self::InUse => "InUse",
            Self::Reconciled => "Reconciled",
        }
    }

    /// Returns whether this reason means progress needs a change by the user,
    /// so the operator sets `Stalled=True` and kstatus reports `Failed`.
    ///
    /// Reasons the operator can get past by itself (Plivo outages, a
    /// BusinessProfile that is not Ready or not created yet, pending carrier
    /// review) are not stalling: a referenced profile that does not exist yet
    /// is common while a GitOps tool applies a set of objects in some order.
    /// `PlivoError` is not stalling either, because an unclassified error may
    /// be transient.
    pub const fn is_stalling(self) -> bool {
        match self {
            Self::Failed
            | Self::NotEnrolled
            | Self::NotEligible
            | Self::InvalidProfile
            | Self::ProfileExists
            | Self::NumberNotFound
            | Self::CredentialsMissing
            | Self::DuplicateEin
            | Self::NumberConflict
            | Self::UpdateRejected => true,
            Self::Created
            | Self::Adopted
            | Self::Updated
            | Self::Pending
            | Self::Active
            | Self::ProfileNotReady
            | Self::ProfileNotFound
            | Self::PlivoUnavailable
            | Self::PlivoError
            | Self::Disabled
            | Self::Paused
            | Self::Deleting
            | Self::InUse
            | Self::Reconciled => false,
        }
    }

    /// Every reason, in declaration order.
    pub const ALL: [Reason; 24] = [
        Self::Created,
        Self::Adopted,
        Self::Updated,
        Self::Pending,
        Self::Active,
        Self::Failed,
        Self::NotEnrolled,
        Self::NotEligible,
        Self::InvalidProfile,
        Self::ProfileNotReady,
        Self::ProfileNotFound,
        Self::ProfileExists,
        Self::NumberNotFound,
        Self::CredentialsMissing,
        Self::DuplicateEin,
        Self::NumberConflict,
        Self::PlivoUnavailable,
        Self::PlivoError,
        Self::UpdateRejected,
        Self::Disabled,
        Self::Paused,
        Self::Deleting,
        Self::InUse,
        Self::Reconciled,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns the condition of the given type, if present.
pub fn find_condition(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Returns whether the condition of the given type is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Inserts or updates the condition of `type_` and returns whether anything changed.
///
/// # Guarantees
/// - `lastTransitionTime` is set to `now` only when the condition is new or its
///   status changes; a new reason or message alone keeps the old time.
/// - The message is cut to [`MAX_CONDITION_MESSAGE_BYTES`] on a UTF-8 character
///   boundary, so the apiserver never rejects the status for its length.
/// - Nothing is modified, and `false` returned, when status, reason, message and
///   observed generation are already as given.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: Reason,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> bool {
    let status = if status { "True" } else { "False" };
    let message = truncate_message(message.into());

    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_.as_str()) else {
        conditions.push(Condition {
            type_: type_.as_str().to_owned(),
            status: status.to_owned(),
            reason: reason.as_str().to_owned(),
            message,
            observed_generation,
            last_transition_time: now,
        });
        return true;
    };

    let unchanged = existing.status == status
        && existing.reason == reason.as_str()
        && existing.message == message
        && existing.observed_generation == observed_generation;
    if unchanged {
        return false;
    }
    if existing.status != status {
        existing.status = status.to_owned();
        existing.last_transition_time = now;
    }
    existing.reason = reason.as_str().to_owned();
    existing.message = message;
    existing.observed_generation = observed_generation;
    true
}

/// Removes the condition of `type_` and returns whether it was present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: ConditionType) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_.as_str());
    conditions.len() != before
}

fn truncate_message(mut message: String) -> String {
    if message.len() <= MAX_CONDITION_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_CONDITION_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message
}

/// The kstatus verdict on an object: how tools such as Flux and `kstatus`
/// summarise whether it has reached the state its spec asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KStatus {
    /// The latest spec is observed and the object is Ready.
    Current,
    /// The operator has not caught up with the latest spec, or is still working on it.
    InProgress,
    /// Progress needs a change by the user (`Stalled=True`).
    Failed,
}

/// Evaluates the kstatus verdict of an object from its generation and status.
///
/// The rules, in order:
/// 1. `status.observedGeneration` missing or behind `metadata.generation` → `InProgress`.
///    A missing observedGeneration counts as behind because the operator writes it on
///    every status update, so it is only absent before the first reconcile.
/// 2. `Stalled=True` → `Failed`.
/// 3. `Reconciling=True` → `InProgress` (the operator does not set it; other tools may).
/// 4. `Ready=True` → `Current`.
/// 5. `Ready` false, unknown or absent → `InProgress`.
pub fn kstatus(
    obj_generation: Option<i64>,
    observed_generation: Option<i64>,
    conditions: &[Condition],
) -> KStatus {
    if let Some(generation) = obj_generation
        && observed_generation.is_none_or(|observed| observed < generation)
    {
        return KStatus::InProgress;
    }
    let is_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if is_true(ConditionType::Stalled.as_str()) {
        return KStatus::Failed;
    }
    if is_true("Reconciling") {
        return KStatus::InProgress;
    }
    if is_true(ConditionType::Ready.as_str()) {
        return KStatus::Current;
    }
    KStatus::InProgress
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "Reconciled".to_owned(),
            message: "test".to_owned(),
            observed_generation: Some(1),
            last_transition_time: time(0),
        }
    }

    #[test]
    fn new_condition_is_added() {
        let mut conditions = Vec::new();
        let changed = set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            Reason::Active,
            "Caller Reputation is active",
            Some(3),
            time(10),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        let ready = &conditions[0];
        assert_eq!(ready.type_, "Ready");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason, "Active");
        assert_eq!(ready.message, "Caller Reputation is active");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(ready.last_transition_time, time(10));
    }

    #[test]
    fn same_condition_again_changes_nothing() {
        let mut conditions = Vec::new();
        let set = |conditions: &mut Vec<Condition>, now| {
            set_condition(
                conditions,
                ConditionType::Synced,
                true,
                Reason::Reconciled,
                "in sync",
                Some(1),
                now,
            )
        };
        assert!(set(&mut conditions, time(10)));
        let before = conditions.clone();
        assert!(!set(&mut conditions, time(20)));
        assert_eq!(conditions, before);
    }

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            Reason::Pending,
            "submitted",
            Some(1),
            time(10),
        );
        let changed = set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            Reason::ProfileNotReady,
            "profile acme is not Ready",
            Some(2),
            time(20),
        );
        assert!(changed);
        let ready = &conditions[0];
        assert_eq!(ready.reason, "ProfileNotReady");
        assert_eq!(ready.message, "profile acme is not Ready");
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(ready.last_transition_time, time(10));
    }

    #[test]
    fn transition_time_moves_when_status_changes() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            Reason::Pending,
            "submitted",
            Some(1),
            time(10),
        );
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            Reason::Active,
            "active",
            Some(1),
            time(20),
        );
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, time(20));
    }

    #[test]
    fn other_condition_types_are_untouched() {
        let mut conditions = vec![condition("Synced", "True"), condition("Custom", "False")];
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            Reason::Active,
            "active",
            Some(1),
            time(5),
        );
        assert_eq!(conditions.len(), 3);
        assert_eq!(conditions[0], condition("Synced", "True"));
        assert_eq!(conditions[1], condition("Custom", "False"));
    }

    #[test]
    fn long_message_is_cut_on_char_boundary() {
        // 'é' is two bytes, so 16385 of them are 32770 bytes and the limit falls inside one.
        let message = "é".repeat(16_385);
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            Reason::PlivoError,
            message,
            None,
            time(0),
        );
        let stored = &conditions[0].message;
        assert_eq!(stored.len(), MAX_CONDITION_MESSAGE_BYTES);
        assert!(stored.chars().all(|c| c == 'é'));

        let odd = format!("a{}", "é".repeat(16_384));
        assert_eq!(truncate_message(odd).len(), MAX_CONDITION_MESSAGE_BYTES - 1);
    }

    #[test]
    fn short_message_is_kept_whole() {
        let message = "x".repeat(MAX_CONDITION_MESSAGE_BYTES);
        assert_eq!(truncate_message(message.clone()), message);
    }

    #[test]
    fn remove_condition_reports_presence() {
        let mut conditions = vec![condition("Stalled", "True"), condition("Ready", "False")];
        assert!(remove_condition(&mut conditions, ConditionType::Stalled));
        assert_eq!(conditions, vec![condition("Ready", "False")]);
        assert!(!remove_condition(&mut conditions, ConditionType::Stalled));
    }

    #[test]
    fn find_condition_by_type() {
        let conditions = vec![condition("Ready", "True"), condition("InUse", "False")];
        assert!(is_condition_true(&conditions, ConditionType::Ready));
        assert!(!is_condition_true(&conditions, ConditionType::InUse));
        assert!(!is_condition_true(&conditions, ConditionType::Stalled));
        assert_eq!(
            find_condition(&conditions, ConditionType::InUse).map(|c| c.status.as_str()),
            Some("False")
        );
    }

    #[test]
    fn reason_strings_are_stable() {
        // These strings are an API: users match on them in `kubectl wait` and alerts.
        let expected = [
            "Created",
            "Adopted",
            "Updated",
            "Pending",
            "Active",
            "Failed",
            "NotEnrolled",
            "NotEligible",
            "InvalidProfile",
            "ProfileNotReady",
            "ProfileNotFound",
            "ProfileExists",
            "NumberNotFound",
            "CredentialsMissing",
            "DuplicateEIN",
            "NumberConflict",
            "PlivoUnavailable",
            "PlivoError",
            "UpdateRejected",
            "Disabled",
            "Paused",
            "Deleting",
            "InUse",
            "Reconciled",
        ];
        let actual: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(actual, expected);
        assert_eq!(Reason::DuplicateEin.to_string(), "DuplicateEIN");
        assert_eq!(ConditionType::InUse.to_string(), "InUse");
    }

    #[test]
    fn kstatus_in_progress_when_generation_not_observed() {
        let ready = [condition("Ready", "True")];
        assert_eq!(kstatus(Some(2), Some(1), &ready), KStatus::InProgress);
        assert_eq!(kstatus(Some(2), None, &ready), KStatus::InProgress);
        let stalled = [condition("Stalled", "True")];
        assert_eq!(kstatus(Some(2), Some(1), &stalled), KStatus::InProgress);
    }

    #[test]
    fn kstatus_of_condition_sets() {
        // Each row: conditions on an object whose generation is observed, expected verdict, why.
        let cases: [(&[Condition], KStatus, &str); 9] = [
            (&[], KStatus::InProgress, "no conditions yet"),
            (
                &[condition("Ready", "True")],
                KStatus::Current,
                "ready and nothing else",
            ),
            (
                &[condition("Ready", "False")],
                KStatus::InProgress,
                "not ready yet",
            ),
            (
                &[condition("Ready", "Unknown")],
                KStatus::InProgress,
                "readiness unknown",
            ),
            (
                &[condition("Ready", "False"), condition("Stalled", "True")],
                KStatus::Failed,
                "stalled wins over not ready",
            ),
            (
                &[condition("Ready", "True"), condition("Stalled", "True")],
                KStatus::Failed,
                "stalled wins over ready",
            ),
            (
                &[condition("Ready", "True"), condition("Stalled", "False")],
                KStatus::Current,
                "a false Stalled is ignored",
            ),
            (
                &[condition("Ready", "True"), condition("Reconciling", "True")],
                KStatus::InProgress,
                "reconciling wins over ready",
            ),
            (
                &[condition("Synced", "True")],
                KStatus::InProgress,
                "synced without ready",
            ),
        ];
        for (conditions, expected, why) in cases {
            assert_eq!(kstatus(Some(1), Some(1), conditions), expected, "{why}");
        }
    }

    #[test]
    fn kstatus_follows_every_reason() {
        // The operator sets Stalled=True exactly for stalling reasons and Ready=False
        // otherwise (Ready=True only for Active, Reconciled, Created, Adopted, Updated, Disabled).
        let ready_reasons = [
            Reason::Active,
            Reason::Reconciled,
            Reason::Created,
            Reason::Adopted,
            Reason::Updated,
            Reason::Disabled,
        ];
        let now = time(0);
        for reason in Reason::ALL {
            let mut conditions = Vec::new();
            let ready = ready_reasons.contains(&reason);
            set_condition(
                &mut conditions,
                ConditionType::Ready,
                ready,
                reason,
                "m",
                Some(4),
                now.clone(),
            );
            if reason.is_stalling() {
                set_condition(
                    &mut conditions,
                    ConditionType::Stalled,
                    true,
                    reason,
                    "m",
                    Some(4),
                    now.clone(),
                );
            }
            let expected = if reason.is_stalling() {
                KStatus::Failed
            } else if ready {
                KStatus::Current
            } else {
                KStatus::InProgress
            };
            assert_eq!(kstatus(Some(4), Some(4), &conditions), expected, "{reason}");
            assert_eq!(
                kstatus(Some(5), Some(4), &conditions),
                KStatus::InProgress,
                "{reason}"
            );
        }
    }

    #[test]
    fn stalling_reasons_are_the_ones_needing_the_user() {
        let stalling: Vec<&str> = Reason::ALL
            .iter()
            .filter(|r| r.is_stalling())
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            stalling,
            [
                "Failed",
                "NotEnrolled",
                "NotEligible",
                "InvalidProfile",
                "ProfileExists",
                "NumberNotFound",
                "CredentialsMissing",
                "DuplicateEIN",
                "NumberConflict",
                "UpdateRejected",
            ]
        );
    }
}

use std::time::Duration;

use super::*;
use crate::plivo::{CallerReputationStatus, Number};

fn enrollment(profile: &str) -> Enrollment {
    Enrollment {
        profile_uuid: profile.into(),
        profile_generation: Some(1),
        retry_token: None,
        callback_url: None,
        callback_method: None,
    }
}

fn number(profile: Option<&str>, status: Option<CallerReputationStatus>) -> Number {
    Number {
        number: "14155550100".into(),
        profile_uuid: profile.map(str::to_string),
        caller_reputation_status: status,
        ..Number::default()
    }
}

#[test]
fn never_enrolled_number_is_enabled() {
    let wanted = Desired::Enabled(enrollment("p1"));
    assert_eq!(next_step(&wanted, None, &number(None, None)), Step::Enable);
}

#[test]
fn enable_in_effect_is_not_sent_again() {
    let wanted = Desired::Enabled(enrollment("p1"));
    for status in [
        CallerReputationStatus::Pending,
        CallerReputationStatus::Active,
    ] {
        let observed = number(Some("p1"), Some(status.clone()));
        assert_eq!(
            next_step(&wanted, Some(&enrollment("p1")), &observed),
            Step::Nothing,
            "{status:?}"
        );
    }
}

#[test]
fn enable_in_effect_by_someone_else_is_not_sent_again() {
    let wanted = Desired::Enabled(enrollment("p1"));
    let observed = number(Some("p1"), Some(CallerReputationStatus::Active));
    assert_eq!(next_step(&wanted, None, &observed), Step::Nothing);
}

#[test]
fn number_with_other_profile_is_moved() {
    let wanted = Desired::Enabled(enrollment("p1"));
    let observed = number(Some("p0"), Some(CallerReputationStatus::Active));
    assert_eq!(
        next_step(&wanted, Some(&enrollment("p1")), &observed),
        Step::Enable
    );
}

#[test]
fn changed_callback_is_sent() {
    let mut with_callback = enrollment("p1");
    with_callback.callback_url = Some("https://hooks.example.com/cr".into());
    with_callback.callback_method = Some("POST".into());
    let observed = number(Some("p1"), Some(CallerReputationStatus::Active));
    let step = next_step(
        &Desired::Enabled(with_callback),
        Some(&enrollment("p1")),
        &observed,
    );
    assert_eq!(step, Step::Enable);
}

#[test]
fn failed_is_retried_only_after_inputs_change() {
    let observed = number(Some("p1"), Some(CallerReputationStatus::Failed));
    let sent = enrollment("p1");
    assert_eq!(
        next_step(&Desired::Enabled(sent.clone()), Some(&sent), &observed),
        Step::Nothing
    );

    let mut fixed_profile = sent.clone();
    fixed_profile.profile_generation = Some(2);
    assert_eq!(
        next_step(&Desired::Enabled(fixed_profile), Some(&sent), &observed),
        Step::Enable
    );

    let mut retry = sent.clone();
    retry.retry_token = Some("1".into());
    assert_eq!(
        next_step(&Desired::Enabled(retry), Some(&sent), &observed),
        Step::Enable
    );
}

#[test]
fn not_enrolled_number_is_left_alone() {
    let observed = number(Some("p1"), Some(CallerReputationStatus::NotEnrolled));
    let step = next_step(
        &Desired::Enabled(enrollment("p1")),
        Some(&enrollment("p1")),
        &observed,
    );
    assert_eq!(step, Step::Nothing);
}

#[test]
fn disable_is_sent_only_while_enrolled() {
    let enrolled = number(Some("p1"), Some(CallerReputationStatus::Pending));
    assert_eq!(
        next_step(&Desired::Disabled, None, &enrolled),
        Step::Disable
    );
    assert_eq!(
        next_step(&Desired::Disabled, None, &number(None, None)),
        Step::Nothing
    );
}

#[test]
fn undone_enrollment_is_detected() {
    let previous = Some(CallerReputationState::Active);
    assert!(was_undone(
        previous.as_ref(),
        Some("p1"),
        &number(None, None)
    ));
    assert!(was_undone(
        previous.as_ref(),
        Some("p1"),
        &number(Some("p9"), Some(CallerReputationStatus::Pending))
    ));
    assert!(!was_undone(
        previous.as_ref(),
        Some("p1"),
        &number(Some("p1"), Some(CallerReputationStatus::Active))
    ));
    assert!(!was_undone(None, None, &number(None, None)));
}

#[test]
fn statuses_map_to_reasons() {
    let cases = [
        (
            Some(CallerReputationStatus::Active),
            Reason::Active,
            true,
            false,
        ),
        (
            Some(CallerReputationStatus::Pending),
            Reason::Pending,
            false,
            false,
        ),
        (
            Some(CallerReputationStatus::Failed),
            Reason::Failed,
            false,
            true,
        ),
        (
            Some(CallerReputationStatus::NotEnrolled),
            Reason::NotEnrolled,
            false,
            true,
        ),
    ];
    for (status, reason, ready, stalled) in cases {
        let outcome = enabled_outcome(&number(Some("p1"), status.clone()), "p1");
        assert_eq!(outcome.reason, reason, "{status:?}");
        assert_eq!(outcome.ready, ready, "{status:?}");
        assert_eq!(outcome.stalled, stalled, "{status:?}");
    }
}

#[test]
fn disabled_number_is_ready() {
    let outcome = disabled_outcome(&number(None, None));
    assert!(outcome.ready);
    assert_eq!(outcome.reason, Reason::Disabled);
    assert!(!disabled_outcome(&number(Some("p1"), Some(CallerReputationStatus::Active))).ready);
}

#[test]
fn pending_recheck_doubles_within_bounds() {
    let min = Duration::from_secs(60);
    let max = Duration::from_secs(1800);
    let resync = Duration::from_secs(3600);
    let pending = enabled_outcome(
        &number(Some("p1"), Some(CallerReputationStatus::Pending)),
        "p1",
    );
    assert_eq!(next_check(&pending, None, min, max, resync), Some(min));
    assert_eq!(
        next_check(&pending, Some(min), min, max, resync),
        Some(min * 2)
    );
    assert_eq!(next_check(&pending, Some(max), min, max, resync), Some(max));
    let active = enabled_outcome(
        &number(Some("p1"), Some(CallerReputationStatus::Active)),
        "p1",
    );
    assert_eq!(next_check(&active, None, min, max, resync), Some(resync));
}

#[test]
fn ineligible_number_waits_for_a_change() {
    let outcome = Outcome::blocked(Reason::NotEligible, "mobile");
    let delay = next_check(
        &outcome,
        None,
        Duration::from_secs(1),
        Duration::from_secs(2),
        Duration::from_secs(3),
    );
    assert_eq!(delay, None);
}

#[test]
fn number_not_rented_is_checked_again_within_minutes() {
    let outcome = Outcome::blocked(Reason::NumberNotFound, "not rented");
    let hour = Duration::from_secs(3600);
    assert_eq!(
        next_check(&outcome, None, hour, hour, hour),
        Some(NOT_FOUND_RECHECK)
    );
    let short_resync = Duration::from_secs(30);
    assert_eq!(
        next_check(&outcome, None, hour, hour, short_resync),
        Some(short_resync)
    );
}

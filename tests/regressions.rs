//! Regression tests for behaviour the operator once got wrong, found by
//! trying the demo as a new and as a hostile user: a conflicting duplicate
//! disabling the owner's number, deletion stuck on missing credentials, the
//! retry annotation doing nothing, rejected credentials reported as an
//! outage, and numbers missing their profile becoming Ready.

#[path = "support/mod.rs"]
mod support;

#[path = "controllers/harness.rs"]
#[allow(dead_code)]
mod harness;

use caller_reputation_operator::api::conditions::{ConditionType, find_condition};
use harness::{AUTH_ID, Harness, WAIT, number_manifest, profile_manifest, seed};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

const NUMBER_1: &str = "+14155550101";
const NUMBER_2: &str = "+14155550102";

fn digits(e164: &str) -> String {
    e164.trim_start_matches('+').to_string()
}

async fn setup(prefix: &str) -> Harness {
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let namespace = support::namespace(prefix).await;
    Harness::start(
        &namespace,
        vec![seed(NUMBER_1, "local"), seed(NUMBER_2, "local")],
        |_| {},
    )
    .await
}

/// Waits until the sandbox reports `status` for the number.
async fn sandbox_status_is(h: &Harness, number: &str, status: &str) {
    support::eventually(
        &format!("{number} {status} at the sandbox"),
        WAIT,
        || async { (h.sandbox_number(&digits(number)).0.as_deref() == Some(status)).then_some(()) },
    )
    .await;
}

/// Waits until the BusinessProfile is Ready, whatever the reason.
async fn profile_ready(h: &Harness, name: &str) {
    let api = h.profiles();
    support::eventually(&format!("BusinessProfile {name} Ready"), WAIT, || {
        let api = api.clone();
        async move {
            let profile = api.get_opt(name).await.ok().flatten()?;
            let status = profile.status?;
            let ready = find_condition(&status.conditions, ConditionType::Ready)?;
            (ready.status == "True").then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn deleting_a_conflicting_duplicate_leaves_the_active_number_alone() {
    let h = setup("dup-delete").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456701"))
        .await;
    h.apply_number(number_manifest("owner", NUMBER_1, "acme"))
        .await;
    h.number_reason("owner", "Pending").await;
    h.decide(&digits(NUMBER_1), "ACTIVE").await;
    h.number_reason("owner", "Active").await;

    h.apply_number(number_manifest("duplicate", NUMBER_1, "acme"))
        .await;
    h.number_reason("duplicate", "NumberConflict").await;
    h.delete_number("duplicate").await;
    h.gone(&h.numbers(), "duplicate").await;

    let disables = h.sandbox.state().counters[&digits(NUMBER_1)].disable_requests;
    assert_eq!(
        disables, 0,
        "the duplicate never managed the number, so its deletion must not disable it"
    );
    assert_eq!(
        h.sandbox_number(&digits(NUMBER_1)).0.as_deref(),
        Some("ACTIVE"),
        "the owner's registration must stay ACTIVE"
    );
    h.stop().await;
}

#[tokio::test]
async fn number_without_credentials_that_never_enrolled_is_deleted() {
    let h = setup("nocreds-delete").await;
    h.apply_number(json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "CallerReputationNumber",
        "metadata": {"name": "orphan"},
        "spec": {
            "number": NUMBER_1,
            "profileUUID": "00000000-0000-4000-8000-000000000001",
            "credentialsSecretRef": {"name": "does-not-exist"}
        }
    }))
    .await;
    h.number_reason("orphan", "CredentialsMissing").await;

    h.delete_number("orphan").await;
    // Nothing was ever enabled at Plivo, so there is nothing to disable.
    h.gone(&h.numbers(), "orphan").await;
    assert_eq!(h.requests_mentioning(&digits(NUMBER_1)), 0);
    h.stop().await;
}

#[tokio::test]
async fn retry_annotation_retries_a_failed_number() {
    let h = setup("retry").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456702"))
        .await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    h.number_reason("one", "Pending").await;
    h.decide(&digits(NUMBER_1), "FAILED").await;
    h.number_reason("one", "Failed").await;

    h.numbers()
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"callerreputation.io/retry": "1"}}})),
        )
        .await
        .expect("annotate");

    // README: "callerreputation.io/retry: <any new value> retries a FAILED number
    // with an unchanged profile". A retry puts the number back in the carriers' queue.
    sandbox_status_is(&h, NUMBER_1, "PENDING").await;
    h.number_reason("one", "Pending").await;
    h.stop().await;
}

#[tokio::test]
async fn rejected_credentials_are_reported_as_credentials_missing() {
    let h = setup("bad-token").await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "wrong-token"},
        "stringData": {"authId": AUTH_ID, "authToken": "not-the-token"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &h.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    h.apply_number(json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "CallerReputationNumber",
        "metadata": {"name": "one"},
        "spec": {
            "number": NUMBER_2,
            "profileUUID": "00000000-0000-4000-8000-000000000001",
            "credentialsSecretRef": {"name": "wrong-token"}
        }
    }))
    .await;

    // README: CredentialsMissing covers "Plivo rejected the credentials", with
    // "Create or fix the Secret" as what to do; PlivoUnavailable says "Nothing".
    let number = h.number_reason("one", "CredentialsMissing").await;
    let ready = find_condition(
        &number.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap();
    assert!(
        !ready.message.contains("not-the-token"),
        "{}",
        ready.message
    );
    h.stop().await;
}

#[tokio::test]
async fn numbers_follow_their_profiles_once_adopted() {
    const PAIRS: u32 = 100;
    let number_of = |i: u32| format!("+1415555{:04}", 3000 + i);
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let namespace = support::namespace("adopt-race").await;
    let h = Harness::start(
        &namespace,
        (0..PAIRS).map(|i| seed(&number_of(i), "local")).collect(),
        |_| {},
    )
    .await;
    h.create_secret().await;

    // Each EIN already has a Plivo profile, so each BusinessProfile first
    // reports ProfileExists and its number waits with ProfileNotReady.
    let mut uuids = Vec::new();
    for i in 0..PAIRS {
        let ein = format!("41{:07}", 1000 + i);
        uuids.push(
            h.create_sandbox_profile(&ein, &format!("outside-{i}"))
                .await,
        );
        h.apply_profile(profile_manifest(&format!("p{i}"), &ein))
            .await;
        h.apply_number(number_manifest(
            &format!("n{i}"),
            &number_of(i),
            &format!("p{i}"),
        ))
        .await;
    }
    for i in 0..PAIRS {
        h.profile_reason(&format!("p{i}"), "ProfileExists").await;
        h.number_reason(&format!("n{i}"), "ProfileNotReady").await;
    }

    // Adopting makes every profile Ready; every number must then be enabled.
    let adopt = (0..PAIRS).map(|i| {
        let profiles = h.profiles();
        let uuid = uuids[i as usize].clone();
        async move {
            profiles
                .patch(
                    &format!("p{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"profileUUID": uuid}})),
                )
                .await
                .expect("adopt")
        }
    });
    futures::future::join_all(adopt).await;
    for i in 0..PAIRS {
        profile_ready(&h, &format!("p{i}")).await;
    }
    // Every number gets WAIT to leave ProfileNotReady; then the stragglers are
    // listed with their profiles, which are all Ready at this point.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stuck = loop {
        let mut stuck = Vec::new();
        for i in 0..PAIRS {
            let number = h.numbers().get(&format!("n{i}")).await.expect("get number");
            let reason = number
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, ConditionType::Ready))
                .map(|c| c.reason.clone());
            if reason.as_deref() == Some("ProfileNotReady") {
                stuck.push(format!("n{i}"));
            }
        }
        if stuck.is_empty() || tokio::time::Instant::now() > deadline {
            break stuck;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert!(
        stuck.is_empty(),
        "numbers still ProfileNotReady {}s after every profile was Ready: {stuck:?}",
        WAIT.as_secs()
    );
    h.stop().await;
}

#[tokio::test]
async fn created_profile_is_not_swapped_for_another() {
    let h = setup("swap").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456703"))
        .await;
    let created = h.profile_reason("acme", "Created").await;
    let own = created.status.unwrap().profile_uuid.unwrap();
    let outside = h.create_sandbox_profile("987654303", "outside").await;

    h.profiles()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"profileUUID": outside}})),
        )
        .await
        .expect("the apiserver accepts a first profileUUID");
    let rejected = h.profile_reason("acme", "UpdateRejected").await;
    let ready = find_condition(
        &rejected.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap();
    assert!(ready.message.contains(&own), "{}", ready.message);

    let state = h.sandbox.state();
    let company = state.profiles[&outside].fields.get("company_name").cloned();
    assert_eq!(
        company,
        Some(json!("Outside Corp")),
        "the outside profile kept its fields"
    );
    h.stop().await;
}

#[tokio::test]
async fn immutable_field_change_names_plivo_value() {
    let h = setup("immutable").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456704"))
        .await;
    let created = h.profile_reason("acme", "Created").await;
    let uuid = created.status.unwrap().profile_uuid.unwrap();
    let alias = h.sandbox.state().profiles[&uuid]
        .fields
        .get("profile_alias")
        .and_then(|value| value.as_str().map(str::to_string))
        .expect("the sandbox profile has an alias");

    h.profiles()
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"profileAlias": "renamed-alias"}})),
        )
        .await
        .expect("the apiserver accepts a new alias");
    let rejected = h.profile_reason("acme", "UpdateRejected").await;
    let ready = find_condition(
        &rejected.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap();

    let expected = format!("profileAlias (Plivo has {alias:?})");
    assert!(ready.message.contains(&expected), "{}", ready.message);
    h.stop().await;
}

#[tokio::test]
async fn profile_deleted_at_plivo_is_created_again() {
    let h = setup("plivo-deleted").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456705"))
        .await;
    h.apply_number(number_manifest("line", NUMBER_1, "acme"))
        .await;
    let created = h.profile_reason("acme", "Created").await;
    let first = created.status.unwrap().profile_uuid.unwrap();
    h.number_reason("line", "Pending").await;

    h.admin(
        reqwest::Method::DELETE,
        &format!("/_sandbox/profiles/{first}"),
        None,
    )
    .await;

    let profiles = h.profiles();
    let second = support::eventually("acme with a new Plivo profile", WAIT, || {
        let profiles = profiles.clone();
        let first = first.clone();
        async move {
            let profile = profiles.get_opt("acme").await.ok().flatten()?;
            let uuid = profile.status?.profile_uuid?;
            (uuid != first).then_some(uuid)
        }
    })
    .await;
    let numbers = h.numbers();
    support::eventually("line enrolled with the new profile", WAIT, || {
        let numbers = numbers.clone();
        let second = second.clone();
        async move {
            let number = numbers.get_opt("line").await.ok().flatten()?;
            let status = number.status?;
            let ready = find_condition(&status.conditions, ConditionType::Ready)?;
            (ready.reason == "Pending" && status.profile_uuid.as_deref() == Some(&second))
                .then_some(())
        }
    })
    .await;

    let state = h.sandbox.state();
    assert_eq!(state.profiles.len(), 1, "one Plivo profile for the EIN");
    assert!(state.profiles.contains_key(&second));
    h.stop().await;
}

#[tokio::test]
async fn moved_number_is_recounted_on_both_profiles() {
    let h = setup("moved-number").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456706"))
        .await;
    h.apply_profile(profile_manifest("globex", "12-3456707"))
        .await;
    h.apply_number(number_manifest("line", NUMBER_1, "acme"))
        .await;
    h.number_reason("line", "Pending").await;

    h.numbers()
        .patch(
            "line",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"profileRef": {"name": "globex"}}})),
        )
        .await
        .expect("the apiserver accepts another profileRef");

    let profiles = h.profiles();
    support::eventually("acme counting 0 numbers and globex 1", WAIT, || {
        let profiles = profiles.clone();
        async move {
            let count = |profile: Option<caller_reputation_operator::api::BusinessProfile>| {
                profile.and_then(|p| p.status).and_then(|s| s.numbers)
            };
            let acme = count(profiles.get_opt("acme").await.ok().flatten());
            let globex = count(profiles.get_opt("globex").await.ok().flatten());
            (acme == Some(0) && globex == Some(1)).then_some(())
        }
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn conflict_loser_takes_over_when_owner_is_deleted() {
    // Well below the 60 s after which a blocked number looks again on its own.
    const TAKEOVER: std::time::Duration = std::time::Duration::from_secs(15);
    let h = setup("conflict-takeover").await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456708"))
        .await;
    h.apply_number(number_manifest("owner", NUMBER_1, "acme"))
        .await;
    h.number_reason("owner", "Pending").await;
    h.apply_number(number_manifest("waiting", NUMBER_1, "acme"))
        .await;
    h.number_reason("waiting", "NumberConflict").await;

    h.delete_number("owner").await;
    h.gone(&h.numbers(), "owner").await;
    let numbers = h.numbers();
    support::eventually("the waiting number to manage the number", TAKEOVER, || {
        let numbers = numbers.clone();
        async move {
            let number = numbers.get_opt("waiting").await.ok().flatten()?;
            let status = number.status?;
            let ready = find_condition(&status.conditions, ConditionType::Ready)?;
            (ready.reason == "Pending").then_some(())
        }
    })
    .await;
    h.stop().await;
}

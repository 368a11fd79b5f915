//! End-to-end tests of the controllers on the real control plane, with the
//! Plivo sandbox's request log as the witness of what reached Plivo.

#[path = "../support/mod.rs"]
mod support;

mod harness;

use std::time::Duration;

use caller_reputation_operator::{
    api::{
        BusinessProfile, CallerReputationNumber,
        conditions::{ConditionType, KStatus, find_condition, kstatus},
    },
    sandbox::{CommitThenFail, FaultConfig},
};
use harness::{Harness, SECRET, WAIT, number_manifest, profile_manifest, seed};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

const NUMBER_1: &str = "+14155550101";
const NUMBER_2: &str = "+14155550102";
const NUMBER_3: &str = "+14155550103";

fn digits(e164: &str) -> String {
    e164.trim_start_matches('+').to_string()
}

async fn setup(
    prefix: &str,
    numbers: Vec<caller_reputation_operator::sandbox::SeedNumber>,
) -> Harness {
    setup_with(prefix, numbers, |_| {}).await
}

async fn setup_with(
    prefix: &str,
    numbers: Vec<caller_reputation_operator::sandbox::SeedNumber>,
    adjust: impl FnOnce(&mut caller_reputation_operator::sandbox::SandboxConfig),
) -> Harness {
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let namespace = support::namespace(prefix).await;
    Harness::start(&namespace, numbers, adjust).await
}

fn verdict_of_profile(profile: &BusinessProfile) -> KStatus {
    let status = profile.status.clone().unwrap_or_default();
    kstatus(
        profile.metadata.generation,
        status.observed_generation,
        &status.conditions,
    )
}

fn verdict_of_number(number: &CallerReputationNumber) -> KStatus {
    let status = number.status.clone().unwrap_or_default();
    kstatus(
        number.metadata.generation,
        status.observed_generation,
        &status.conditions,
    )
}

fn local_numbers() -> Vec<caller_reputation_operator::sandbox::SeedNumber> {
    vec![
        seed(NUMBER_1, "local"),
        seed(NUMBER_2, "local"),
        seed(NUMBER_3, "tollfree"),
    ]
}

#[tokio::test]
async fn profile_and_numbers_become_active() {
    let h = setup("lifecycle", local_numbers()).await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456789"))
        .await;
    for (name, number) in [("one", NUMBER_1), ("two", NUMBER_2), ("three", NUMBER_3)] {
        h.apply_number(number_manifest(name, number, "acme")).await;
    }

    let profile = h.profile_reason("acme", "Created").await;
    let uuid = profile
        .status
        .as_ref()
        .and_then(|s| s.profile_uuid.clone())
        .expect("profile UUID in status");
    assert_eq!(verdict_of_profile(&profile), KStatus::Current);

    for name in ["one", "two", "three"] {
        let pending = h.number_reason(name, "Pending").await;
        let status = pending.status.as_ref().unwrap();
        assert_eq!(status.caller_reputation_status.as_deref(), Some("PENDING"));
        assert_eq!(status.profile_uuid.as_deref(), Some(uuid.as_str()));
        assert_eq!(verdict_of_number(&pending), KStatus::InProgress);
    }

    for number in [NUMBER_1, NUMBER_2, NUMBER_3] {
        h.decide(&digits(number), "ACTIVE").await;
    }
    for name in ["one", "two", "three"] {
        let active = h.number_reason(name, "Active").await;
        let status = active.status.as_ref().unwrap();
        assert_eq!(status.caller_reputation_status.as_deref(), Some("ACTIVE"));
        assert!(status.active_since.is_some());
        assert_eq!(verdict_of_number(&active), KStatus::Current);
    }
    assert_eq!(
        h.requests_to("POST", "/Profile/"),
        1,
        "exactly one profile create"
    );
    for number in [NUMBER_1, NUMBER_2, NUMBER_3] {
        let state = h.sandbox.state();
        assert_eq!(
            state.counters[&digits(number)].enable_requests,
            1,
            "one enable for {number}"
        );
    }
    let profile = h.profile_reason("acme", "Created").await;
    assert_eq!(profile.status.unwrap().numbers, Some(3));
    h.stop().await;
}

#[tokio::test]
async fn deleted_number_is_deregistered() {
    let h = setup("delete-number", local_numbers()).await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456781"))
        .await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    h.number_reason("one", "Pending").await;

    h.delete_number("one").await;
    h.gone(&h.numbers(), "one").await;
    assert_eq!(
        h.sandbox_number(&digits(NUMBER_1)),
        (None, None),
        "disabled at Plivo"
    );
    h.stop().await;
}

#[tokio::test]
async fn failed_registration_recovers_after_profile_fix() {
    let h = setup_with("failed", local_numbers(), |config| {
        config.fail_without_website = true
    })
    .await;
    h.create_secret().await;
    let mut manifest = profile_manifest("acme", "12-3456782");
    manifest["spec"].as_object_mut().unwrap().remove("website");
    h.apply_profile(manifest.clone()).await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    h.number_reason("one", "Pending").await;

    h.decide(&digits(NUMBER_1), "FAILED").await;
    let failed = h.number_reason("one", "Failed").await;
    let ready = find_condition(
        &failed.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap();
    assert!(
        ready.message.contains("check the BusinessProfile"),
        "{}",
        ready.message
    );
    assert_eq!(verdict_of_number(&failed), KStatus::Failed);

    manifest["spec"]["website"] = json!("https://acme.example");
    h.apply_profile(manifest).await;
    h.number_reason("one", "Pending").await;
    h.decide(&digits(NUMBER_1), "ACTIVE").await;
    h.number_reason("one", "Active").await;
    assert_eq!(
        h.sandbox.state().counters[&digits(NUMBER_1)].enable_requests,
        2,
        "one enable, one retry"
    );
    h.stop().await;
}

#[tokio::test]
async fn ineligible_number_is_enabled_once() {
    let h = setup("ineligible", vec![seed(NUMBER_1, "mobile")]).await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456783"))
        .await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    let rejected = h.number_reason("one", "NotEligible").await;
    assert_eq!(verdict_of_number(&rejected), KStatus::Failed);

    // Trigger more reconciles without changing the spec; none may retry the enable.
    for round in 0..3 {
        let before = h.metrics.reconciles("CallerReputationNumber");
        h.numbers()
            .patch(
                "one",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"touch": round.to_string()}}})),
            )
            .await
            .unwrap();
        h.reconciles_after("CallerReputationNumber", before, 1)
            .await;
    }
    let enables = h
        .processed_requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains(&digits(NUMBER_1)))
        .count();
    assert_eq!(enables, 1, "exactly one enable request");
    h.stop().await;
}

#[tokio::test]
async fn unknown_profile_uuid_is_invalid_profile() {
    let h = setup("invalid-profile", local_numbers()).await;
    h.create_secret().await;
    h.apply_number(json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "CallerReputationNumber",
        "metadata": {"name": "one"},
        "spec": {"number": NUMBER_1, "profileUUID": "00000000-0000-4000-8000-000000000000"}
    }))
    .await;
    let rejected = h.number_reason("one", "InvalidProfile").await;
    assert_eq!(verdict_of_number(&rejected), KStatus::Failed);
    h.stop().await;
}

#[tokio::test]
async fn disabled_number_is_deregistered() {
    let h = setup("disabled", local_numbers()).await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456784"))
        .await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    h.number_reason("one", "Pending").await;

    let mut manifest = number_manifest("one", NUMBER_1, "acme");
    manifest["spec"]["enabled"] = json!(false);
    h.apply_number(manifest).await;
    let disabled = h.number_reason("one", "Disabled").await;
    assert_eq!(verdict_of_number(&disabled), KStatus::Current);
    assert_eq!(h.sandbox_number(&digits(NUMBER_1)), (None, None));
    h.stop().await;
}

#[tokio::test]
async fn adopted_profile_and_delete_policies() {
    let h = setup("adopt", local_numbers()).await;
    h.create_secret().await;
    let outside = h.create_sandbox_profile("987654321", "outside").await;

    let mut adopting = profile_manifest("adopted", "98-7654321");
    adopting["spec"] = json!({"ein": "98-7654321", "profileUUID": outside});
    h.apply_profile(adopting).await;
    h.profile_reason("adopted", "Adopted").await;

    let mut orphan_number = number_manifest("orphan", NUMBER_1, "adopted");
    orphan_number["spec"]["deletionPolicy"] = json!("Orphan");
    h.apply_number(orphan_number).await;
    h.number_reason("orphan", "Pending").await;
    h.delete_number("orphan").await;
    h.gone(&h.numbers(), "orphan").await;
    assert_eq!(
        h.sandbox_number(&digits(NUMBER_1)).0.as_deref(),
        Some("PENDING"),
        "Orphan leaves the enrollment"
    );

    h.delete_profile("adopted").await;
    h.gone(&h.profiles(), "adopted").await;
    assert!(
        h.sandbox.state().profiles.contains_key(&outside),
        "Orphan leaves the profile"
    );

    let mut deleting = profile_manifest("owned", "12-3456785");
    deleting["spec"]["deletionPolicy"] = json!("Delete");
    h.apply_profile(deleting).await;
    let owned = h.profile_reason("owned", "Created").await;
    let owned_uuid = owned.status.unwrap().profile_uuid.unwrap();
    h.apply_number(number_manifest("two", NUMBER_2, "owned"))
        .await;
    h.number_reason("two", "Pending").await;

    h.delete_profile("owned").await;
    let profiles = h.profiles();
    support::eventually("InUse condition on the profile", WAIT, || async {
        let profile = profiles.get("owned").await.ok()?;
        let conditions = profile.status?.conditions;
        find_condition(&conditions, ConditionType::InUse)
            .filter(|c| c.status == "True")
            .map(|_| ())
    })
    .await;
    assert!(
        h.sandbox.state().profiles.contains_key(&owned_uuid),
        "profile kept while in use"
    );

    h.delete_number("two").await;
    h.gone(&h.numbers(), "two").await;
    h.gone(&h.profiles(), "owned").await;
    assert!(
        !h.sandbox.state().profiles.contains_key(&owned_uuid),
        "profile deleted at Plivo"
    );
    h.stop().await;
}

#[tokio::test]
async fn duplicates_lose_without_plivo_calls() {
    let h = setup("duplicates", local_numbers()).await;
    h.create_secret().await;
    h.apply_profile(profile_manifest("first", "12-3456786"))
        .await;
    h.profile_reason("first", "Created").await;
    h.apply_profile(profile_manifest("second", "123456786"))
        .await;
    let loser = h.profile_reason("second", "DuplicateEIN").await;
    assert_eq!(verdict_of_profile(&loser), KStatus::Failed);
    // A third claimant is told about the owner, not about another loser.
    h.apply_profile(profile_manifest("third", "12-3456786"))
        .await;
    let third = h.profile_reason("third", "DuplicateEIN").await;
    let message = find_condition(
        &third.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap()
    .message
    .clone();
    assert!(message.contains("/first "), "{message}");
    assert_eq!(
        h.requests_to("POST", "/Profile/"),
        1,
        "the loser created nothing"
    );

    h.apply_number(number_manifest("one", NUMBER_1, "first"))
        .await;
    h.number_reason("one", "Pending").await;
    // Once ACTIVE the winner is re-checked only hourly, so any request now would be the loser's.
    h.decide(&digits(NUMBER_1), "ACTIVE").await;
    h.number_reason("one", "Active").await;
    let requests_before = h.requests_mentioning(&digits(NUMBER_1));
    h.apply_number(number_manifest("again", NUMBER_1, "first"))
        .await;
    let conflict = h.number_reason("again", "NumberConflict").await;
    assert_eq!(verdict_of_number(&conflict), KStatus::Failed);
    assert_eq!(
        h.requests_mentioning(&digits(NUMBER_1)),
        requests_before,
        "the loser called nothing"
    );
    h.stop().await;
}

#[tokio::test]
async fn missing_secret_resolves_when_created() {
    let h = setup("credentials", local_numbers()).await;
    h.apply_profile(profile_manifest("acme", "12-3456787"))
        .await;
    let waiting = h.profile_reason("acme", "CredentialsMissing").await;
    let ready = find_condition(
        &waiting.status.as_ref().unwrap().conditions,
        ConditionType::Ready,
    )
    .unwrap();
    assert!(ready.message.contains(SECRET), "{}", ready.message);
    assert!(
        h.processed_requests().is_empty(),
        "no Plivo call without credentials"
    );

    h.create_secret().await;
    h.profile_reason("acme", "Created").await;
    h.stop().await;
}

#[tokio::test]
async fn enrollment_removed_outside_is_restored() {
    let h = setup("restore", local_numbers()).await;
    let mut h = h;
    h.settings.resync_period = Duration::from_secs(2);
    h.kill_operator().await;
    h.start_operator();
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456788"))
        .await;
    h.apply_number(number_manifest("one", NUMBER_1, "acme"))
        .await;
    h.number_reason("one", "Pending").await;
    h.decide(&digits(NUMBER_1), "ACTIVE").await;
    h.number_reason("one", "Active").await;

    h.admin(
        reqwest::Method::POST,
        &format!("/_sandbox/numbers/{}/disable", digits(NUMBER_1)),
        None,
    )
    .await;
    h.number_reason("one", "Pending").await;
    assert_eq!(
        h.sandbox_number(&digits(NUMBER_1)).0.as_deref(),
        Some("PENDING"),
        "enrolled again"
    );

    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), &h.namespace);
    support::eventually("a Warning Event about the restore", WAIT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning") && e.action.as_deref() == Some("Restore")
            })
            .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn interrupted_create_makes_one_profile() {
    let h = setup("crash-create", local_numbers()).await;
    let mut h = h;
    h.sandbox.set_faults(
        harness::AUTH_ID,
        FaultConfig {
            commit_then_fail: Some(CommitThenFail {
                endpoint: Some("POST /Profile/".into()),
                ratio: 1.0,
                status: None,
            }),
            ..FaultConfig::default()
        },
    );
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456789"))
        .await;

    support::eventually("the profile create reached the sandbox", WAIT, || async {
        (h.requests_to("POST", "/Profile/") >= 1).then_some(())
    })
    .await;
    h.kill_operator().await;
    h.sandbox
        .set_faults(harness::AUTH_ID, FaultConfig::default());
    h.start_operator();

    let profile = h.profile_reason("acme", "Created").await;
    assert_eq!(
        h.requests_to("POST", "/Profile/"),
        1,
        "exactly one profile create"
    );
    assert_eq!(h.sandbox.state().profiles.len(), 1);
    assert!(
        profile.status.unwrap().creation_intent.is_none(),
        "intent cleared once the UUID is recorded"
    );
    h.stop().await;
}

#[tokio::test]
async fn converges_with_server_errors() {
    let h = setup("flaky", local_numbers()).await;
    h.sandbox.set_faults(
        harness::AUTH_ID,
        FaultConfig {
            error_ratio: 0.3,
            error_status: Some(503),
            ..FaultConfig::default()
        },
    );
    h.create_secret().await;
    h.apply_profile(profile_manifest("acme", "12-3456780"))
        .await;
    for (name, number) in [("one", NUMBER_1), ("two", NUMBER_2)] {
        h.apply_number(number_manifest(name, number, "acme")).await;
    }
    h.profile_reason("acme", "Created").await;
    for name in ["one", "two"] {
        h.number_reason(name, "Pending").await;
    }
    for number in [NUMBER_1, NUMBER_2] {
        h.decide(&digits(number), "ACTIVE").await;
    }
    for name in ["one", "two"] {
        h.number_reason(name, "Active").await;
    }
    assert_eq!(h.sandbox.state().profiles.len(), 1, "no duplicate profile");
    h.delete_number("one").await;
    h.gone(&h.numbers(), "one").await;
    assert_eq!(h.sandbox_number(&digits(NUMBER_1)), (None, None));
    h.stop().await;
}

#[tokio::test]
async fn paused_resource_makes_no_calls() {
    let h = setup("paused", local_numbers()).await;
    h.create_secret().await;
    let mut manifest = profile_manifest("acme", "12-3456779");
    manifest["metadata"]["annotations"] = json!({"callerreputation.io/paused": "true"});
    h.apply_profile(manifest.clone()).await;
    let profiles = h.profiles();
    support::eventually("Synced=False Paused", WAIT, || async {
        let profile = profiles.get("acme").await.ok()?;
        let conditions = profile.status?.conditions;
        find_condition(&conditions, ConditionType::Synced)
            .filter(|c| c.reason == "Paused")
            .map(|_| ())
    })
    .await;
    assert!(
        h.processed_requests().is_empty(),
        "no Plivo request while paused"
    );

    manifest["metadata"]["annotations"] = json!({"callerreputation.io/paused": "false"});
    h.apply_profile(manifest).await;
    h.profile_reason("acme", "Created").await;
    h.stop().await;
}

#[tokio::test]
async fn everything_deleted_at_once_is_deregistered() {
    let h = setup("delete-all", local_numbers()).await;
    h.create_secret().await;
    let mut secret_profile = profile_manifest("acme", "12-3456778");
    secret_profile["spec"]["credentialsSecretRef"] = json!({"name": "team-credentials"});
    harness::create_credentials_secret(&h.client, &h.namespace, "team-credentials").await;
    h.apply_profile(secret_profile).await;
    for (name, number) in [("one", NUMBER_1), ("two", NUMBER_2), ("three", NUMBER_3)] {
        h.apply_number(number_manifest(name, number, "acme")).await;
    }
    for name in ["one", "two", "three"] {
        h.number_reason(name, "Pending").await;
    }

    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), &h.namespace);
    secrets
        .delete("team-credentials", &DeleteParams::default())
        .await
        .unwrap();
    h.delete_profile("acme").await;
    for name in ["one", "two", "three"] {
        h.delete_number(name).await;
    }

    for name in ["one", "two", "three"] {
        h.gone(&h.numbers(), name).await;
    }
    h.gone(&h.profiles(), "acme").await;
    h.gone(&secrets, "team-credentials").await;
    for number in [NUMBER_1, NUMBER_2, NUMBER_3] {
        assert_eq!(
            h.sandbox_number(&digits(number)),
            (None, None),
            "{number} de-registered"
        );
    }
    h.stop().await;
}

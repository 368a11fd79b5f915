//! Fairness: one Plivo account drowning in 503s with hundreds of resources does not hold up
//! another account's creates and deletes by more than a few seconds, and the drowning account
//! gets no request while Plivo's `Retry-After` lasts.

use std::time::{Duration, Instant};

use caller_reputation_operator::sandbox::{FaultConfig, RequestRecord, SeedNumber};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::DeleteParams};
use serde_json::json;

use crate::{
    harness::{AUTH_ID, AUTH_TOKEN, number_manifest, profile_manifest, seed},
    rig::{Rig, number},
};

const QUIET_ID: &str = "MAQUIETACCOUNT000002";
const QUIET_TOKEN: &str = "quiet-token-5e8a0c1d";
const NOISY_NUMBERS: usize = 200;
/// How long the quiet account's profile and numbers may take while the other account drowns.
const BOUND: Duration = Duration::from_secs(10);
/// How long the test measures before it gives up.
const MEASURE_LIMIT: Duration = Duration::from_secs(120);
/// `Retry-After` the failing account's 503s carry.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Time after a 503 arrived in which requests the operator had already sent may still arrive.
const IN_FLIGHT: Duration = Duration::from_millis(250);

/// Requests of `account` that arrived after the first `IN_FLIGHT` and within `RETRY_AFTER` of a
/// 503 response to the same account.
fn sent_during_retry_after(records: &[RequestRecord], account: &str) -> Vec<String> {
    let arrivals: Vec<(jiff::Timestamp, u16, &str)> = records
        .iter()
        .filter(|r| r.account == account)
        .map(|r| {
            let at: jiff::Timestamp = r.time.parse().expect("RFC 3339 request time");
            (at, r.status, r.endpoint.as_str())
        })
        .collect();
    let mut early = Vec::new();
    for (refused_at, _, _) in arrivals.iter().filter(|(_, status, _)| *status == 503) {
        let quiet_from = *refused_at + IN_FLIGHT;
        let quiet_until = *refused_at + RETRY_AFTER;
        for (at, status, endpoint) in &arrivals {
            if *at > quiet_from && *at < quiet_until {
                early.push(format!(
                    "{endpoint} -> {status} at {at}, 503 at {refused_at}"
                ));
            }
        }
    }
    early
}

// Regression: the failing account's reconciles once held every worker slot while they
// waited out Retry-After, and the other account's numbers did not start within two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_does_not_delay_another() {
    let noisy: Vec<String> = (0..NOISY_NUMBERS).map(|i| number(2000 + i)).collect();
    let quiet: Vec<String> = (0..3).map(|i| number(3000 + i)).collect();
    let mut seeds: Vec<SeedNumber> = noisy.iter().map(|n| seed(n, "local")).collect();
    for phone in &quiet {
        seeds.push(
            serde_json::from_value(json!({"account": QUIET_ID, "number": phone, "type": "local"}))
                .unwrap(),
        );
    }
    let rig = Rig::new("chaos-fairness", seeds, |config| {
        config.accounts.push((QUIET_ID.into(), QUIET_TOKEN.into()));
    })
    .await;
    rig.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            error_ratio: 1.0,
            error_status: Some(503),
            retry_after_s: Some(RETRY_AFTER.as_secs()),
            ..FaultConfig::default()
        },
    );
    rig.create_secret().await;
    let quiet_secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "quiet-plivo", "namespace": rig.namespace},
        "stringData": {"authId": QUIET_ID, "authToken": QUIET_TOKEN},
    }))
    .unwrap();
    Api::<Secret>::namespaced(rig.client.clone(), &rig.namespace)
        .create(&Default::default(), &quiet_secret)
        .await
        .expect("create the quiet account's Secret");

    // The noisy account: a profile whose create fails and numbers enrolled by UUID, each of
    // which reads Plivo and gets a 503 on every attempt.
    rig.apply(profile_manifest("noisy", "21-0000101")).await;
    let operator = rig.operator("fairness", &[]);
    for (index, phone) in noisy.iter().enumerate() {
        rig.apply(json!({
            "apiVersion": "callerreputation.io/v1alpha1",
            "kind": "CallerReputationNumber",
            "metadata": {"name": format!("noisy{index}")},
            "spec": {"number": phone, "profileUUID": "00000000-0000-4000-8000-00000000a001"}
        }))
        .await;
    }
    // The operator batches number reads into one listing per account and honours Retry-After,
    // so the noisy account's resources queue up behind a few refused requests per second.
    rig.watch_for("the noisy account to be refused 20 times", |s| {
        s.requests()
            .iter()
            .filter(|r| r.account == AUTH_ID && r.status == 503)
            .count()
            >= 20
    })
    .await;

    let started = Instant::now();
    let mut profile = profile_manifest("quiet", "21-0000102");
    profile["spec"]["credentialsSecretRef"] = json!({"name": "quiet-plivo"});
    rig.apply(profile).await;
    for (index, phone) in quiet.iter().enumerate() {
        rig.apply(number_manifest(&format!("quiet{index}"), phone, "quiet"))
            .await;
    }
    rig.profile_reason("quiet", "Created").await;
    let profile_after = started.elapsed();
    // Measured up to a generous limit, so a failure reports how long the delay really was.
    let numbers_api = rig.numbers();
    let all_pending = || async {
        for index in 0..quiet.len() {
            let number = numbers_api
                .get_opt(&format!("quiet{index}"))
                .await
                .ok()
                .flatten();
            let reason = number
                .and_then(|n| n.status)
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.reason);
            if reason.as_deref() != Some("Pending") {
                return false;
            }
        }
        true
    };
    while !all_pending().await && started.elapsed() < MEASURE_LIMIT {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let numbers_after = started.elapsed();

    let deleted = Instant::now();
    numbers_api
        .delete("quiet0", &DeleteParams::default())
        .await
        .expect("delete quiet0");
    while numbers_api.get_opt("quiet0").await.ok().flatten().is_some()
        && deleted.elapsed() < MEASURE_LIMIT
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delete_after = deleted.elapsed();

    let records = rig.sandbox.requests();
    let refused = records
        .iter()
        .filter(|r| r.account == AUTH_ID && r.status == 503)
        .count();
    let early = sent_during_retry_after(&records, AUTH_ID);
    let lines = operator.finish(&[AUTH_TOKEN, QUIET_TOKEN]);

    assert!(
        numbers_after < BOUND,
        "the quiet account took {numbers_after:?} while the other drowned"
    );
    assert!(
        delete_after < BOUND,
        "deleting a quiet number took {delete_after:?} while the other account drowned"
    );
    assert!(refused > 0, "the failing account got no 503 at all");
    assert!(
        early.is_empty(),
        "{} requests reached the failing account during its Retry-After: {early:#?}",
        early.len()
    );
    println!(
        "chaos: fairness: noisy-resources={} noisy-503s={refused} requests-during-retry-after=0 \
         quiet-profile-created-after={profile_after:.1?} quiet-numbers-pending-after={numbers_after:.1?} \
         quiet-number-deleted-after={delete_after:.1?} (bound {BOUND:?}) log-lines={lines}",
        NOISY_NUMBERS + 1
    );
    rig.sandbox.shutdown().await;
}

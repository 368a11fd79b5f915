//! SIGKILL at the worst moment: right after Plivo committed a write the operator has not yet
//! recorded. The restarted operator must adopt what Plivo already has instead of writing again.

use caller_reputation_operator::sandbox::{CommitThenFail, FaultConfig, RunningSandbox};

use crate::{
    harness::{AUTH_ID, AUTH_TOKEN, number_manifest, profile_manifest, seed},
    rig::{Rig, digits, number},
};

fn posted(sandbox: &RunningSandbox, suffix: &str) -> bool {
    sandbox
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.endpoint.ends_with(suffix) && r.status != 0)
}

async fn kill_after_profile_create(prefix: &str, ein: &str, lose_response: bool) {
    let numbers: Vec<String> = (1..=3).map(number).collect();
    let rig = Rig::new(
        prefix,
        numbers.iter().map(|n| seed(n, "local")).collect(),
        |_| {},
    )
    .await;
    if lose_response {
        // Plivo keeps the profile but the operator never sees its UUID.
        rig.sandbox.set_faults(
            AUTH_ID,
            FaultConfig {
                commit_then_fail: Some(CommitThenFail {
                    endpoint: Some("POST /Profile/".into()),
                    ratio: 1.0,
                    status: None,
                }),
                remaining: Some(1),
                ..FaultConfig::default()
            },
        );
    }
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", ein)).await;
    for (index, n) in numbers.iter().enumerate() {
        rig.apply(number_manifest(&format!("n{index}"), n, "acme"))
            .await;
    }

    let mut first = rig.operator("first", &[]);
    rig.watch_for("the profile create in the sandbox log", |s| {
        s.requests()
            .iter()
            .any(|r| r.method == "POST" && r.endpoint.ends_with("/Profile/"))
    })
    .await;
    first.kill9();
    let recorded_before_kill = rig
        .profiles()
        .get("acme")
        .await
        .expect("profile exists")
        .status
        .and_then(|s| s.profile_uuid)
        .is_some();
    let lines_first = first.finish(&[AUTH_TOKEN]);

    let second = rig.operator("second", &[]);
    let profile = rig.profile_reason("acme", "Created").await;
    for index in 0..numbers.len() {
        rig.number_reason(&format!("n{index}"), "Pending").await;
    }
    let uuid = profile.status.and_then(|s| s.profile_uuid).expect("UUID");
    let creates = rig.requests_to("POST", "/Profile/");
    let profiles = rig.profiles_with_ein(ein);
    let lines_second = second.finish(&[AUTH_TOKEN]);

    assert_eq!(profiles, 1, "exactly one Plivo profile for EIN {ein}");
    assert_eq!(
        creates, 1,
        "the restarted operator adopts, never re-creates"
    );
    let state = rig.sandbox.state();
    for n in &numbers {
        assert_eq!(
            state.numbers[&digits(n)].profile_uuid.as_deref(),
            Some(uuid.as_str()),
            "{n} linked to the one profile"
        );
    }
    println!(
        "chaos: {prefix}: profile creates={creates} profiles={profiles} \
         uuid-recorded-before-kill={recorded_before_kill} log-lines={}",
        lines_first + lines_second
    );
    rig.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_right_after_profile_create_leaves_one_profile() {
    kill_after_profile_create("chaos-kill-create", "21-0000001", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_lost_create_response_leaves_one_profile() {
    kill_after_profile_create("chaos-kill-lost-create", "21-0000002", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_right_after_first_enable_enables_each_number_once() {
    let numbers: Vec<String> = (11..=16).map(number).collect();
    let rig = Rig::new(
        "chaos-kill-enable",
        numbers.iter().map(|n| seed(n, "local")).collect(),
        |_| {},
    )
    .await;
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000003")).await;
    for (index, n) in numbers.iter().enumerate() {
        rig.apply(number_manifest(&format!("n{index}"), n, "acme"))
            .await;
    }

    let mut first = rig.operator("first", &[]);
    rig.watch_for("the first enable in the sandbox log", |s| {
        posted(s, "/Number/{number}/")
    })
    .await;
    first.kill9();
    let enabled_before_kill = rig
        .sandbox
        .state()
        .counters
        .values()
        .filter(|c| c.enable_requests > 0)
        .count();
    let lines_first = first.finish(&[AUTH_TOKEN]);

    let second = rig.operator("second", &[]);
    for index in 0..numbers.len() {
        rig.number_reason(&format!("n{index}"), "Pending").await;
    }
    let lines_second = second.finish(&[AUTH_TOKEN]);

    let state = rig.sandbox.state();
    let mut pending_total = 0;
    let mut enables_total = 0;
    for n in &numbers {
        let counters = &state.counters[&digits(n)];
        assert_eq!(counters.pending, 1, "{n} went to PENDING once");
        assert_eq!(counters.enable_requests, 1, "{n} got one enable");
        pending_total += counters.pending;
        enables_total += counters.enable_requests;
    }
    println!(
        "chaos: kill-after-first-enable: numbers={} enabled-before-kill={enabled_before_kill} \
         pending-transitions={pending_total} enable-requests={enables_total} log-lines={}",
        numbers.len(),
        lines_first + lines_second
    );
    rig.sandbox.shutdown().await;
}

//! Quiet when nothing changes: about a hundred resources in every steady state (active,
//! pending, failed, not eligible, disabled, duplicate number, duplicate EIN), handed over to a
//! restarted operator, then watched for 20 s: no object changes, no condition moves, no Plivo
//! write.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use caller_reputation_operator::{api::CallerReputationNumber, sandbox::state::CrStatus};
use futures::TryStreamExt;
use kube::{
    Api,
    api::{ListParams, WatchEvent, WatchParams},
};
use serde_json::json;

use crate::{
    harness::{AUTH_TOKEN, number_manifest, profile_manifest, seed},
    rig::{Rig, WAIT, digits, number},
    support,
};

const WINDOW: Duration = Duration::from_secs(20);
const ACTIVE: std::ops::Range<usize> = 0..35;
const PENDING: std::ops::Range<usize> = 35..55;
const FAILED: std::ops::Range<usize> = 55..65;
const MOBILE: std::ops::Range<usize> = 65..75;
const DISABLED: std::ops::Range<usize> = 75..90;
const DUPLICATES: std::ops::Range<usize> = 0..10;

fn phone(index: usize) -> String {
    number(100 + index)
}

/// Ready reasons of every object of `api`, by name.
async fn reasons<K>(
    api: &Api<K>,
    conditions: impl Fn(&K) -> Vec<(String, String)>,
) -> BTreeMap<String, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    list.items
        .iter()
        .map(|item| {
            let name = item.meta().name.clone().unwrap_or_default();
            let ready = conditions(item)
                .into_iter()
                .find(|(kind, _)| kind == "Ready")
                .map(|(_, reason)| reason)
                .unwrap_or_default();
            (name, ready)
        })
        .collect()
}

/// Waits until every number has the Ready reason `expected` names; the panic lists the others.
async fn wait_reasons(
    numbers: &Api<CallerReputationNumber>,
    expected: &BTreeMap<String, String>,
    what: &str,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = reasons(numbers, ready_reasons).await;
        if &found == expected {
            return;
        }
        if Instant::now() > deadline {
            let wrong: Vec<String> = expected
                .iter()
                .filter(|(name, reason)| found.get(*name) != Some(*reason))
                .map(|(name, reason)| format!("{name}: {:?} not {reason}", found.get(name)))
                .collect();
            panic!("timed out waiting for {what}: {wrong:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready_reasons(number: &CallerReputationNumber) -> Vec<(String, String)> {
    number
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| (c.type_.clone(), c.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every condition of every object as `name/type -> lastTransitionTime`.
async fn transition_times(rig: &Rig) -> BTreeMap<String, String> {
    let mut times = BTreeMap::new();
    for number in rig
        .numbers()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = number.metadata.name.clone().unwrap_or_default();
        for condition in number.status.map(|s| s.conditions).unwrap_or_default() {
            times.insert(
                format!("number {name}/{}", condition.type_),
                format!("{:?}", condition.last_transition_time),
            );
        }
    }
    for profile in rig
        .profiles()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = profile.metadata.name.clone().unwrap_or_default();
        for condition in profile.status.map(|s| s.conditions).unwrap_or_default() {
            times.insert(
                format!("profile {name}/{}", condition.type_),
                format!("{:?}", condition.last_transition_time),
            );
        }
    }
    times
}

/// Object changes (added, modified, deleted) of `api` during `window`, from its current state.
async fn changes_during<K>(api: &Api<K>, window: Duration) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let version = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("a list has a resourceVersion");
    let params = WatchParams::default().timeout(window.as_secs() as u32 + 5);
    let stream = api.watch(&params, &version).await.expect("watch");
    let mut stream = Box::pin(stream);
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline, stream.try_next()).await {
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                changes.push(o.meta().name.clone().unwrap_or_default())
            }
            WatchEvent::Bookmark(_) | WatchEvent::Error(_) => {}
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_nothing_changes() {
    let seeds = (0..DISABLED.end)
        .map(|i| {
            seed(
                &phone(i),
                if MOBILE.contains(&i) {
                    "mobile"
                } else {
                    "local"
                },
            )
        })
        .collect();
    let rig = Rig::new("chaos-quiet", seeds, |_| {}).await;
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000081")).await;
    for i in 0..DISABLED.end {
        let mut manifest = number_manifest(&format!("n{i}"), &phone(i), "acme");
        if DISABLED.contains(&i) {
            manifest["spec"]["enabled"] = json!(false);
        }
        rig.apply(manifest).await;
    }
    let first = rig.operator("fast-rechecks", &[]);

    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..DISABLED.end {
        let reason = match i {
            i if MOBILE.contains(&i) => "NotEligible",
            i if DISABLED.contains(&i) => "Disabled",
            _ => "Pending",
        };
        expected.insert(format!("n{i}"), reason.into());
    }
    let numbers = rig.numbers();
    let wait_for = |expected: BTreeMap<String, String>, what: &'static str| {
        let numbers = numbers.clone();
        async move { wait_reasons(&numbers, &expected, what).await }
    };
    wait_for(
        expected.clone(),
        "every number submitted, refused or disabled",
    )
    .await;

    for i in ACTIVE {
        rig.sandbox
            .force_status(&digits(&phone(i)), CrStatus::Active);
        expected.insert(format!("n{i}"), "Active".into());
    }
    for i in FAILED {
        rig.sandbox
            .force_status(&digits(&phone(i)), CrStatus::Failed);
        expected.insert(format!("n{i}"), "Failed".into());
    }
    // Duplicates come after the originals hold their enrollment, so the originals keep it.
    for i in DUPLICATES {
        rig.apply(number_manifest(&format!("dup{i}"), &phone(i), "acme"))
            .await;
        expected.insert(format!("dup{i}"), "NumberConflict".into());
    }
    rig.apply(profile_manifest("acme-dup", "21-0000081")).await;
    wait_for(expected.clone(), "every number in its steady state").await;
    rig.profile_reason("acme-dup", "DuplicateEIN").await;
    // Numbers in PENDING stay as they are: `expected` already says Pending for them.
    debug_assert!(
        PENDING
            .clone()
            .all(|i| expected[&format!("n{i}")] == "Pending")
    );
    let lines_first = first.finish(&[AUTH_TOKEN]);

    // The next operator checks pending numbers rarely, as in production, so a 20 s window
    // shows whether anything is written without a reason.
    let second = rig.operator_with(
        "slow-rechecks",
        &[
            ("--pending-recheck-min", "10m"),
            ("--pending-recheck-max", "30m"),
        ],
    );
    let settled_at = Instant::now();
    support::eventually(
        "the restarted operator to settle",
        Duration::from_secs(60),
        || {
            let numbers = rig.numbers();
            async move {
                changes_during(&numbers, Duration::from_secs(3))
                    .await
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
    let settle = settled_at.elapsed();
    wait_for(expected.clone(), "the same steady state after the restart").await;

    let times_before = transition_times(&rig).await;
    let plivo_writes_before = rig
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    let (numbers, profiles) = (rig.numbers(), rig.profiles());
    let (number_changes, profile_changes) = tokio::join!(
        changes_during(&numbers, WINDOW),
        changes_during(&profiles, WINDOW)
    );
    let times_after = transition_times(&rig).await;
    let plivo_writes = rig
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count()
        - plivo_writes_before;
    let lines_second = second.finish(&[AUTH_TOKEN]);

    let moved: Vec<&String> = times_before
        .iter()
        .filter(|(key, time)| times_after.get(*key) != Some(time))
        .map(|(key, _)| key)
        .collect();
    assert!(
        number_changes.is_empty(),
        "numbers changed: {number_changes:?}"
    );
    assert!(
        profile_changes.is_empty(),
        "profiles changed: {profile_changes:?}"
    );
    assert!(moved.is_empty(), "conditions moved: {moved:?}");
    assert_eq!(plivo_writes, 0, "Plivo writes while nothing changed");
    let count = |reason: &str| expected.values().filter(|r| *r == reason).count();
    println!(
        "chaos: quiet: resources={} (active={} pending={} failed={} not-eligible={} disabled={} \
         number-conflict={} profiles=2 incl. duplicate-ein=1) settle-after-restart={settle:.1?} \
         window={WINDOW:?} object-changes=0 moved-transition-times=0 of {} plivo-writes=0 \
         log-lines={}",
        expected.len() + 2,
        count("Active"),
        count("Pending"),
        count("Failed"),
        count("NotEligible"),
        count("Disabled"),
        count("NumberConflict"),
        times_before.len(),
        lines_first + lines_second
    );
    rig.sandbox.shutdown().await;
}

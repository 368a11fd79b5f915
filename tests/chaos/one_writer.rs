//! One writer: three replicas with leader election against one control plane and sandbox.
//! Only the leader talks to Plivo; a frozen leader (SIGSTOP) is replaced within about one
//! Lease duration, also when its last renewal carries a renewTime an hour ahead, and when it
//! thaws (SIGCONT) its fence is closed, so it sends nothing before it steps down.
//!
//! Each replica names its identity in the Plivo User-Agent, so the sandbox's request log shows
//! which replica sent each request.

use std::time::{Duration, Instant};

use crate::{
    harness::{AUTH_TOKEN, number_manifest, profile_manifest, seed},
    process::{OperatorProcess, sum_samples},
    rig::{Rig, number},
    support,
};

const LEASE: &str = "3s";
/// The operator's default `--leader-election-lease-name`.
const LEASE_NAME: &str = "caller-reputation-operator";
const REQUESTS: &str = "caller_reputation_plivo_requests_total";
const LEADER: &str = "caller_reputation_leader";

/// What one replica's `/metrics` said.
#[derive(Clone, Debug, PartialEq)]
struct Scrape {
    leader: f64,
    requests: f64,
    /// Plivo writes (POST and DELETE) among `requests`.
    writes: f64,
    /// Every `caller_reputation_plivo_requests_total` series, for the failure message.
    series: Vec<String>,
}

fn scrape(replica: &OperatorProcess) -> Option<Scrape> {
    let text = replica.metrics()?;
    Some(Scrape {
        leader: sum_samples(&text, LEADER),
        requests: sum_samples(&text, REQUESTS),
        writes: text
            .lines()
            .filter(|line| {
                line.starts_with(&format!("{REQUESTS}{{endpoint=\"POST "))
                    || line.starts_with(&format!("{REQUESTS}{{endpoint=\"DELETE "))
            })
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum(),
        series: text
            .lines()
            .filter(|line| line.starts_with(REQUESTS))
            .map(str::to_string)
            .collect(),
    })
}

/// Sandbox requests sent by replica `index` that arrived after `since`, as `METHOD path at time` lines.
fn requests_from(rig: &Rig, index: usize, since: jiff::Timestamp) -> Vec<String> {
    let user_agent_suffix = format!("(replica-{index})");
    rig.sandbox
        .requests()
        .into_iter()
        .filter(|record| record.user_agent.ends_with(&user_agent_suffix))
        .filter(|record| {
            let arrived: jiff::Timestamp = record.time.parse().expect("RFC 3339 arrival time");
            arrived > since
        })
        .map(|record| format!("{} {} at {}", record.method, record.path, record.time))
        .collect()
}

/// Index of the one replica that leads, when exactly one of `replicas` (skipping `skip`) says so.
fn single_leader(replicas: &[OperatorProcess], skip: Option<usize>) -> Option<usize> {
    let leaders: Vec<usize> = (0..replicas.len())
        .filter(|&i| Some(i) != skip)
        .filter(|&i| scrape(&replicas[i]).is_some_and(|s| s.leader == 1.0))
        .collect();
    (leaders.len() == 1).then(|| leaders[0])
}

/// Asserts that no replica but `leader` (and `skip`) has ever sent a Plivo request.
fn only_leader_wrote(replicas: &[OperatorProcess], leader: usize, skip: Option<usize>) {
    for (index, replica) in replicas.iter().enumerate() {
        if index == leader || Some(index) == skip {
            continue;
        }
        let scraped = scrape(replica).expect("a running replica answers /metrics");
        assert_eq!(scraped.leader, 0.0, "{} is not the leader", replica.name);
        assert_eq!(
            scraped.requests, 0.0,
            "standby {} sent Plivo requests",
            replica.name
        );
    }
}

/// Sets the renewTime of the operators' Lease in `rig` one hour ahead, as a
/// holder whose clock runs an hour early writes it.
async fn move_renew_time_an_hour_ahead(rig: &Rig) {
    let leases = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        rig.client.clone(),
        &rig.namespace,
    );
    let early = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(1),
    );
    let patch = serde_json::json!({ "spec": { "renewTime": early } });
    leases
        .patch(
            LEASE_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("the Lease's renewTime is patched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_frozen_leader_is_replaced() {
    frozen_leader_is_replaced("chaos-one-writer", LastRenewal::OnTime).await;
}

/// The same run, but the frozen leader's last renewal carries a renewTime an
/// hour ahead. `kube-lease-manager` alone would make the standbys wait that
/// hour; they must still take over within about one Lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_leader_with_early_clock_is_replaced() {
    frozen_leader_is_replaced("chaos-one-writer-early", LastRenewal::HourAhead).await;
}

/// renewTime of the frozen leader's last renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastRenewal {
    /// As the leader wrote it.
    OnTime,
    /// Moved one hour ahead right after the freeze.
    HourAhead,
}

async fn frozen_leader_is_replaced(namespace_prefix: &str, last_renewal: LastRenewal) {
    let numbers: Vec<String> = (41..=52).map(number).collect();
    let rig = Rig::new(
        namespace_prefix,
        numbers.iter().map(|n| seed(n, "local")).collect(),
        |_| {},
    )
    .await;
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000041")).await;
    let apply_numbers = |range: std::ops::Range<usize>| {
        let rig = &rig;
        let numbers = &numbers;
        async move {
            for index in range {
                rig.apply(number_manifest(
                    &format!("n{index}"),
                    &numbers[index],
                    "acme",
                ))
                .await;
            }
        }
    };
    let wait_pending = |range: std::ops::Range<usize>| {
        let rig = &rig;
        async move {
            for index in range {
                rig.number_reason(&format!("n{index}"), "Pending").await;
            }
        }
    };
    apply_numbers(0..4).await;

    let election = [
        "--leader-election",
        "--leader-election-namespace",
        &rig.namespace,
        "--lease-duration",
        LEASE,
    ];
    let mut replicas: Vec<OperatorProcess> = (0..3)
        .map(|i| {
            let identity = format!("replica-{i}");
            let mut flags = election.to_vec();
            flags.extend(["--leader-election-identity", &identity]);
            rig.operator(&identity, &flags)
        })
        .collect();
    for replica in &mut replicas {
        replica.address().await;
    }

    wait_pending(0..4).await;
    let first_leader = support::eventually("one leader", Duration::from_secs(30), || {
        let leader = single_leader(&replicas, None);
        async move { leader }
    })
    .await;
    only_leader_wrote(&replicas, first_leader, None);
    let before_freeze = scrape(&replicas[first_leader]).expect("leader answers");
    let log_mark = replicas[first_leader].output().len();

    // Freeze the leader: it neither renews nor writes, and it does not know.
    replicas[first_leader].signal("STOP");
    let frozen_at = Instant::now();
    if last_renewal == LastRenewal::HourAhead {
        move_renew_time_an_hour_ahead(&rig).await;
    }
    apply_numbers(4..8).await;
    let second_leader =
        support::eventually("another replica to lead", Duration::from_secs(15), || {
            let leader = single_leader(&replicas, Some(first_leader));
            async move { leader }
        })
        .await;
    let takeover = frozen_at.elapsed();
    wait_pending(4..8).await;
    only_leader_wrote(&replicas, second_leader, Some(first_leader));

    // Thaw it: its fence is closed, and it must find out it lost the Lease.
    let thawed_wall = jiff::Timestamp::now();
    replicas[first_leader].signal("CONT");
    let thawed_at = Instant::now();
    support::eventually(
        "the thawed replica to step down",
        Duration::from_secs(10),
        || {
            let stepped_down = replicas[first_leader].exited()
                || scrape(&replicas[first_leader]).is_some_and(|s| s.leader == 0.0);
            async move { stepped_down.then_some(()) }
        },
    )
    .await;
    let step_down = thawed_at.elapsed();
    apply_numbers(8..12).await;
    wait_pending(8..12).await;

    let thawed_exited = replicas[first_leader].exited();
    // A standby reports ready (it must not block a rollout); what it must not do is claim to
    // lead while idle, which the leader gauge shows.
    let thawed_readyz = replicas[first_leader].readyz();
    let after_thaw = scrape(&replicas[first_leader]);
    let leader_now = single_leader(&replicas, Some(first_leader));
    assert_eq!(
        leader_now,
        Some(second_leader),
        "the new leader keeps leading"
    );
    let old_requests_after = after_thaw
        .as_ref()
        .map_or(before_freeze.requests, |s| s.requests);
    let old_writes_after = after_thaw
        .as_ref()
        .map_or(before_freeze.writes, |s| s.writes);
    let state = rig.sandbox.state();
    let pending: u64 = state.counters.values().map(|c| c.pending).sum();
    let enables: u64 = state.counters.values().map(|c| c.enable_requests).sum();
    let new_leader_requests = scrape(&replicas[second_leader]).map_or(0.0, |s| s.requests);
    let thawed_log: Vec<String> = replicas[first_leader].output()[log_mark..]
        .iter()
        .filter(|l| l.contains("caller_reputation_operator"))
        .cloned()
        .collect();
    let fenced_lines = thawed_log
        .iter()
        .filter(|l| l.contains("leadership not confirmed"))
        .count();
    let from_thawed = requests_from(&rig, first_leader, thawed_wall);
    let third = (0..3)
        .find(|&i| i != first_leader && i != second_leader)
        .expect("three replicas");
    let from_third = requests_from(&rig, third, jiff::Timestamp::UNIX_EPOCH);
    let _ = std::fs::write(
        std::env::temp_dir().join("chaos-thawed.log"),
        thawed_log.join("\n"),
    );
    let lines: usize = replicas
        .into_iter()
        .map(|replica| replica.finish(&[AUTH_TOKEN]))
        .sum();

    assert!(
        from_thawed.is_empty(),
        "the thawed leader sent Plivo requests after SIGCONT: {from_thawed:#?}"
    );
    assert!(
        from_third.is_empty(),
        "a replica that never led sent Plivo requests: {from_third:#?}"
    );
    assert_eq!(
        old_writes_after,
        before_freeze.writes,
        "the frozen leader wrote to Plivo after it lost the Lease: before {:#?} after {:#?}",
        before_freeze.series,
        after_thaw.map(|s| s.series)
    );
    assert_eq!(pending, numbers.len() as u64, "each number PENDING once");
    assert_eq!(enables, numbers.len() as u64, "each number enabled once");
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    println!(
        "chaos: one-writer: last-renewal={last_renewal:?} replicas=3 leaders-at-a-time=1 \
         standby-requests=0 takeover={takeover:.1?} step-down={step_down:.1?} thawed-exited={thawed_exited} \
         thawed-leader-gauge=0 thawed-readyz={thawed_readyz:?} \
         old-leader-requests={}->{} old-leader-writes={}->{} \
         old-leader-requests-after-sigcont={} fenced-log-lines={fenced_lines} \
         new-leader-requests={new_leader_requests} \
         numbers={} pending-transitions={pending} enables={enables} log-lines={lines}",
        before_freeze.requests,
        old_requests_after,
        before_freeze.writes,
        old_writes_after,
        from_thawed.len(),
        numbers.len()
    );
    rig.sandbox.shutdown().await;
}

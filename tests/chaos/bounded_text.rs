//! Bounded user-facing text: Plivo error bodies of 1 MiB, plain or hostile, still leave condition
//! messages within the Kubernetes limit (32 KiB) and Event notes within 1 KiB, on one line, and
//! both still name what failed.

use caller_reputation_operator::{
    api::conditions::{ConditionType, find_condition},
    sandbox::FaultConfig,
};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};

use crate::{
    harness::{AUTH_ID, AUTH_TOKEN, number_manifest, profile_manifest, seed},
    rig::{Rig, WAIT, number},
    support,
};

const MIB: usize = 1024 * 1024;
const CONDITION_LIMIT: usize = 32 * 1024;
const NOTE_LIMIT: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_error_bodies_leave_short_messages_that_name_the_failure() {
    let rig = Rig::new("chaos-bounded-text", Vec::new(), |_| {}).await;
    rig.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            error_ratio: 1.0,
            error_status: Some(500),
            error_endpoint: Some("POST /Profile/".into()),
            error_body_bytes: Some(MIB),
            ..FaultConfig::default()
        },
    );
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000071")).await;
    let operator = rig.operator("bounded", &[]);

    let profiles = rig.profiles();
    let message = support::eventually("the profile to report the server error", WAIT, || {
        let api = profiles.clone();
        async move {
            let profile = api.get_opt("acme").await.ok().flatten()?;
            let status = profile.status?;
            let condition = find_condition(&status.conditions, ConditionType::Synced)
                .or_else(|| find_condition(&status.conditions, ConditionType::Ready))?;
            condition
                .message
                .contains("HTTP 500")
                .then(|| condition.message.clone())
        }
    })
    .await;
    let events = Api::<Event>::namespaced(rig.client.clone(), &rig.namespace);
    let notes: Vec<String> = support::eventually("a Warning Event about it", WAIT, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.note)
                .filter(|note| note.contains("HTTP 500"))
                .collect();
            (!notes.is_empty()).then_some(notes)
        }
    })
    .await;
    let largest_note = notes.iter().map(String::len).max().unwrap_or(0);
    let served = rig.requests_to("POST", "/Profile/");
    let lines = operator.finish(&[AUTH_TOKEN]);

    assert!(
        message.len() <= CONDITION_LIMIT,
        "condition message of {} bytes",
        message.len()
    );
    assert!(
        message.contains("profile"),
        "names the operation: {message}"
    );
    assert!(
        largest_note <= NOTE_LIMIT,
        "Event note of {largest_note} bytes"
    );
    println!(
        "chaos: bounded-text: error-body={MIB} bytes x {served} responses, \
         condition-message={} bytes (limit {CONDITION_LIMIT}), largest-event-note={largest_note} \
         bytes (limit {NOTE_LIMIT}), warning-events={} log-lines={lines} message={:?}",
        message.len(),
        notes.len(),
        message.chars().take(120).collect::<String>()
    );
    rig.sandbox.shutdown().await;
}

/// A hostile 400: 1 MiB of an error text that tries to start forged log lines and to reverse what
/// a terminal shows. The number's condition and Event stay short, on one line, and still name the
/// enable and the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_error_body_stays_one_line() {
    const HOSTILE: &str = "bad\r\n2026-12-04T00:00:00Z INFO forged line \u{202e}desrever\u{0000}\t";
    let n = number(71);
    let rig = Rig::new("chaos-hostile-text", vec![seed(&n, "local")], |_| {}).await;
    rig.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            error_ratio: 1.0,
            error_status: Some(400),
            error_endpoint: Some("POST /Number/{number}/".into()),
            error_text: Some(HOSTILE.into()),
            error_body_bytes: Some(MIB),
            ..FaultConfig::default()
        },
    );
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000072")).await;
    rig.apply(number_manifest("line", &n, "acme")).await;
    let operator = rig.operator("hostile", &[]);

    let rejected = rig.number_reason("line", "PlivoError").await;
    let message = find_condition(
        &rejected.status.expect("status").conditions,
        ConditionType::Ready,
    )
    .expect("Ready condition")
    .message
    .clone();
    let events = Api::<Event>::namespaced(rig.client.clone(), &rig.namespace);
    let note = support::eventually("a Warning Event about the rejection", WAIT, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .filter_map(|e| e.note)
                .find(|note| note.contains("HTTP 400"))
        }
    })
    .await;
    let served = rig.requests_to("POST", "/Number/{number}/");
    let lines = operator.finish(&[AUTH_TOKEN]);

    for (what, text, limit) in [
        ("condition message", &message, CONDITION_LIMIT),
        ("Event note", &note, NOTE_LIMIT),
    ] {
        assert!(text.len() <= limit, "{what} of {} bytes", text.len());
        assert!(
            text.contains("enable") && text.contains("HTTP 400"),
            "{what} names the operation and the status: {text}"
        );
        assert!(
            !text.contains(['\r', '\n', '\t', '\u{0}', '\u{202e}']),
            "{what} is one plain line: {text:?}"
        );
    }
    println!(
        "chaos: hostile-text: error-body={MIB} bytes x {served} responses, \
         condition-message={} bytes, event-note={} bytes, log-lines={lines} message={:?}",
        message.len(),
        note.len(),
        message.chars().take(120).collect::<String>()
    );
    rig.sandbox.shutdown().await;
}

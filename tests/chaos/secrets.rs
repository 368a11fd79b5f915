//! Secrets and callbacks: Auth Tokens never show in logs, Events, statuses or metrics, also
//! when a token is wrong; forged or replayed status callbacks are refused and trigger nothing;
//! a callback signed for the public URL behind a proxy is accepted.

use std::time::{Duration, Instant};

use caller_reputation_operator::{plivo::signature::sign_v3, sandbox::state::CrStatus};
use k8s_openapi::api::core::v1::Event;
use kube::{Api, api::ListParams};
use serde_json::json;

use crate::{
    harness::{AUTH_ID, AUTH_TOKEN, number_manifest, profile_manifest, seed},
    process::http_request,
    rig::{Rig, WAIT, digits, number},
    support,
};

/// Public URL a TLS proxy exposes; requests reach the operator on 127.0.0.1 instead.
const PUBLIC_BASE: &str = "https://proxy.example:8443/";
const PUBLIC_CALLBACK: &str = "https://proxy.example:8443/callbacks/caller-reputation";
/// Auth Token of a Secret that names the right account with a wrong token.
const WRONG_TOKEN: &str = "wrong-token-7d2e1b9c0a";

/// Sends a form-encoded POST callback with V3 signature headers; returns the status.
fn post_callback(address: std::net::SocketAddr, body: &str, signature: &str, nonce: &str) -> u16 {
    let head = format!(
        "POST /callbacks/caller-reputation HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         X-Plivo-Signature-V3: {signature}\r\nX-Plivo-Signature-V3-Nonce: {nonce}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    http_request(address, &head, body.as_bytes())
        .expect("the callback endpoint answers")
        .0
}

fn form(number_digits: &str, status: &str) -> (String, Vec<(String, String)>) {
    let params = vec![
        (
            "api_id".to_string(),
            "4d4ad2a4-0000-4000-8000-000000000001".to_string(),
        ),
        ("caller_reputation_status".to_string(), status.to_string()),
        ("number".to_string(), number_digits.to_string()),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    (body, params)
}

/// Reads of the number at the sandbox so far: a triggered reconcile reads it.
fn reads_of(rig: &Rig, number_digits: &str) -> usize {
    rig.sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains(number_digits))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_stay_secret_and_only_signed_callbacks_count() {
    let good = number(61);
    let bad = number(62);
    let rig = Rig::new(
        "chaos-secrets",
        vec![seed(&good, "local"), seed(&bad, "local")],
        |_| {},
    )
    .await;
    rig.create_secret().await;
    // A Secret with the right Auth ID and a wrong token: every request with it fails with 401.
    let wrong: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "wrong-token", "namespace": rig.namespace},
        "stringData": {"authId": AUTH_ID, "authToken": WRONG_TOKEN},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(rig.client.clone(), &rig.namespace)
        .create(&Default::default(), &wrong)
        .await
        .expect("create the wrong-token Secret");

    rig.apply(profile_manifest("acme", "21-0000061")).await;
    rig.apply(number_manifest("good", &good, "acme")).await;
    // Numbers use their profile's credentials, so the wrong token goes on a profile.
    let mut wrong_profile = profile_manifest("wrong", "21-0000062");
    wrong_profile["spec"]["credentialsSecretRef"] = json!({"name": "wrong-token"});
    rig.apply(wrong_profile).await;
    rig.apply(number_manifest("bad", &bad, "wrong")).await;

    let mut operator = rig.operator("callbacks", &["--callback-base-url", PUBLIC_BASE]);
    let address = operator.address().await;
    rig.number_reason("good", "Pending").await;
    let refused = rig.profiles();
    let wrong_token_message =
        support::eventually("the wrong-token profile to report the 401", WAIT, || {
            let api = refused.clone();
            async move {
                let profile = api.get_opt("wrong").await.ok().flatten()?;
                let status = profile.status?;
                status
                    .conditions
                    .iter()
                    .find(|c| c.message.contains("401"))
                    .map(|c| c.message.clone())
            }
        })
        .await;
    assert_eq!(
        rig.sandbox.state().numbers[&digits(&good)]
            .callback_url
            .as_deref(),
        Some(PUBLIC_CALLBACK),
        "the operator registers its public callback URL"
    );

    // Settle: ACTIVE numbers are not re-read on a timer, so any later read was triggered.
    rig.sandbox.force_status(&digits(&good), CrStatus::Active);
    let (body, params) = form(&digits(&good), "ACTIVE");
    let nonce = "12345678901234567890";
    let signed = sign_v3("POST", PUBLIC_CALLBACK, &params, nonce, AUTH_TOKEN);
    assert_eq!(post_callback(address, &body, &signed, nonce), 200);
    rig.number_reason("good", "Active").await;
    let reads_before = reads_of(&rig, &digits(&good));
    let version_before = rig
        .numbers()
        .get("good")
        .await
        .unwrap()
        .metadata
        .resource_version;

    let forged = sign_v3("POST", PUBLIC_CALLBACK, &params, nonce, "not-the-token");
    let (other_body, _) = form(&digits(&good), "FAILED");
    let local_url = format!("http://{address}/callbacks/caller-reputation");
    let for_local_url = sign_v3("POST", &local_url, &params, nonce, AUTH_TOKEN);
    let refusals = [
        (
            "forged signature",
            post_callback(address, &body, &forged, nonce),
        ),
        (
            "signature replayed with another body",
            post_callback(address, &other_body, &signed, nonce),
        ),
        (
            "signature replayed with another nonce",
            post_callback(address, &body, &signed, "99999999999999999999"),
        ),
        (
            "signed for the address it arrived on, not the public URL",
            post_callback(address, &body, &for_local_url, nonce),
        ),
        ("unsigned", post_callback(address, &body, "", "")),
    ];
    for (what, status) in &refusals {
        assert_eq!(*status, 403, "{what}");
    }
    // A short observation window: a refused callback must trigger no reconcile, so no read.
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            reads_of(&rig, &digits(&good)),
            reads_before,
            "a refused callback triggered a reconcile"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = rig.numbers().get("good").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, version_before,
        "nothing changed"
    );

    // The accepted callback triggers a read.
    assert_eq!(post_callback(address, &body, &signed, nonce), 200);
    support::eventually("the accepted callback's reconcile", WAIT, || {
        let reads = reads_of(&rig, &digits(&good));
        async move { (reads > reads_before).then_some(()) }
    })
    .await;

    // Tokens nowhere: Events, statuses, /metrics, and (in finish) every output line.
    let events = Api::<Event>::namespaced(rig.client.clone(), &rig.namespace)
        .list(&ListParams::default())
        .await
        .expect("list Events");
    let numbers = rig.numbers().list(&ListParams::default()).await.unwrap();
    let profiles = rig.profiles().list(&ListParams::default()).await.unwrap();
    let metrics = operator.metrics().expect("/metrics answers");
    let published = [
        ("Events", serde_json::to_string(&events.items).unwrap()),
        (
            "number statuses",
            serde_json::to_string(&numbers.items).unwrap(),
        ),
        (
            "profile statuses",
            serde_json::to_string(&profiles.items).unwrap(),
        ),
        ("/metrics", metrics),
    ];
    for (what, text) in &published {
        for token in [AUTH_TOKEN, WRONG_TOKEN] {
            assert!(!text.contains(token), "an Auth Token in {what}");
        }
    }
    let lines = operator.finish(&[AUTH_TOKEN, WRONG_TOKEN]);
    println!(
        "chaos: secrets: refused-callbacks={} accepted-callbacks=2 events-checked={} \
         objects-checked={} log-lines-checked={lines} token-hits=0 wrong-token-message={wrong_token_message:?}",
        refusals.len(),
        events.items.len(),
        numbers.items.len() + profiles.items.len()
    );
    rig.sandbox.shutdown().await;
}

//! No leaked enrollment: what is deleted while the operator is down, or is already gone at
//! Plivo, still ends de-registered with every finalizer released.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use serde_json::json;

/// Finalizer the operator keeps on a credentials Secret while a resource uses it.
const SECRET_FINALIZER: &str = "callerreputation.io/credentials-in-use";

use crate::{
    harness::{AUTH_TOKEN, SECRET, number_manifest, profile_manifest, seed},
    rig::{Rig, WAIT, digits, number},
    support,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_deleted_while_operator_is_down_is_deregistered() {
    let numbers: Vec<String> = (21..=25).map(number).collect();
    let rig = Rig::new(
        "chaos-delete-while-down",
        numbers.iter().map(|n| seed(n, "local")).collect(),
        |_| {},
    )
    .await;
    rig.create_secret().await;
    // Referenced explicitly, so the operator guards the Secret with its finalizer (the
    // operator's own default Secret is configuration and is not guarded).
    let reference = json!({"name": SECRET});
    let mut profile = profile_manifest("acme", "21-0000021");
    profile["spec"]["credentialsSecretRef"] = reference.clone();
    rig.apply(profile).await;
    for (index, n) in numbers.iter().enumerate() {
        let mut manifest = number_manifest(&format!("n{index}"), n, "acme");
        manifest["spec"]["credentialsSecretRef"] = reference.clone();
        rig.apply(manifest).await;
    }
    let mut first = rig.operator("first", &[]);
    for index in 0..numbers.len() {
        rig.number_reason(&format!("n{index}"), "Pending").await;
    }
    let secrets = Api::<Secret>::namespaced(rig.client.clone(), &rig.namespace);
    support::eventually(
        "the credentials-in-use finalizer on the Secret",
        WAIT,
        || async {
            let secret = secrets.get(SECRET).await.ok()?;
            secret
                .metadata
                .finalizers?
                .iter()
                .any(|f| f == SECRET_FINALIZER)
                .then_some(())
        },
    )
    .await;

    first.signal("TERM");
    support::eventually("the operator to exit", WAIT, || {
        let exited = first.exited();
        async move { exited.then_some(()) }
    })
    .await;
    let lines_first = first.finish(&[AUTH_TOKEN]);

    // One call each, as `kubectl delete --all` would do.
    let everything = DeleteParams::default();
    rig.numbers()
        .delete_collection(&everything, &ListParams::default())
        .await
        .expect("delete every number");
    rig.profiles()
        .delete_collection(&everything, &ListParams::default())
        .await
        .expect("delete every profile");
    secrets
        .delete_collection(
            &everything,
            &ListParams::default().fields(&format!("metadata.name={SECRET}")),
        )
        .await
        .expect("delete the Secret");

    let second = rig.operator("second", &[]);
    rig.all_gone(&rig.numbers(), "CallerReputationNumber").await;
    rig.all_gone(&rig.profiles(), "BusinessProfile").await;
    support::eventually("the Secret gone", WAIT, || async {
        secrets.get_opt(SECRET).await.ok()?.is_none().then_some(())
    })
    .await;
    let lines_second = second.finish(&[AUTH_TOKEN]);

    let state = rig.sandbox.state();
    let mut disables = 0;
    for n in &numbers {
        let at_plivo = &state.numbers[&digits(n)];
        assert_eq!(at_plivo.status, None, "{n} de-registered");
        assert_eq!(at_plivo.profile_uuid, None, "{n} unlinked");
        disables += state.counters[&digits(n)].disable_requests;
    }
    assert_eq!(disables, numbers.len() as u64, "one disable per number");
    println!(
        "chaos: delete-while-down: numbers={} disables={disables} numbers-left=0 profiles-left=0 \
         secret-left=0 log-lines={}",
        numbers.len(),
        lines_first + lines_second
    );
    rig.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_unrented_behind_the_operator_releases_its_finalizer() {
    let n = number(31);
    let rig = Rig::new(
        "chaos-unrented",
        vec![seed(&n, "local"), seed(&number(32), "local")],
        |_| {},
    )
    .await;
    rig.create_secret().await;
    rig.apply(profile_manifest("acme", "21-0000031")).await;
    rig.apply(number_manifest("gone", &n, "acme")).await;
    rig.apply(number_manifest("kept", &number(32), "acme"))
        .await;
    let operator = rig.operator("only", &[]);
    rig.number_reason("gone", "Pending").await;
    rig.number_reason("kept", "Pending").await;

    let url = rig
        .sandbox
        .base_url()
        .join(&format!("_sandbox/numbers/{}", digits(&n)))
        .unwrap();
    let response = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("unrent at the sandbox");
    assert!(response.status().is_success(), "{}", response.status());
    rig.numbers()
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete the number");
    let started = std::time::Instant::now();
    support::eventually("the unrented number's object gone", WAIT, || async {
        rig.numbers()
            .get_opt("gone")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let released_after = started.elapsed();
    // The other number is untouched: still enrolled.
    assert_eq!(
        rig.sandbox.state().numbers[&digits(&number(32))]
            .status
            .map(|s| s.as_str()),
        Some("PENDING")
    );
    let lines = operator.finish(&[AUTH_TOKEN]);
    assert!(released_after < Duration::from_secs(20));
    println!(
        "chaos: unrented-then-deleted: finalizer released after {released_after:.1?} \
         other-number=PENDING log-lines={lines}"
    );
    rig.sandbox.shutdown().await;
}

/// Two installs split one namespace with `--label-selector`. The install whose selection uses
/// no Secret must leave the shared finalizer alone, and the Secret is released once the other
/// install's resources are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_installs_leave_a_shared_secret_alone() {
    const QUIET_WINDOW: Duration = Duration::from_secs(3);
    let n = number(41);
    let rig = Rig::new("chaos-split-installs", vec![seed(&n, "local")], |_| {}).await;
    rig.create_secret().await;
    let mut profile = profile_manifest("acme", "21-0000041");
    profile["metadata"]["labels"] = json!({"team": "a"});
    profile["spec"]["credentialsSecretRef"] = json!({"name": SECRET});
    rig.apply(profile).await;
    let mut line = number_manifest("line", &n, "acme");
    line["metadata"]["labels"] = json!({"team": "a"});
    rig.apply(line).await;
    let team_a = rig.operator("team-a", &["--label-selector", "team=a"]);
    rig.number_reason("line", "Pending").await;

    let secrets = Api::<Secret>::namespaced(rig.client.clone(), &rig.namespace);
    let guarded = |secret: &Secret| {
        secret
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == SECRET_FINALIZER))
    };
    support::eventually("the credentials-in-use finalizer", WAIT, || async {
        guarded(&secrets.get(SECRET).await.ok()?).then_some(())
    })
    .await;
    let mut team_b = rig.operator("team-b", &["--label-selector", "team=b"]);
    let readyz = format!("http://{}/readyz", team_b.address().await);
    support::eventually("team b's operator to be ready", WAIT, || async {
        let response = reqwest::get(&readyz).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;

    // Nothing may change in this window: a fixed watch, not a wait for an outcome.
    let before = secrets.get(SECRET).await.expect("the Secret");
    let watched = std::time::Instant::now();
    let mut versions = std::collections::BTreeSet::new();
    while watched.elapsed() < QUIET_WINDOW {
        let secret = secrets.get(SECRET).await.expect("the Secret");
        assert!(
            guarded(&secret),
            "the finalizer was removed while team a uses the Secret"
        );
        versions.insert(secret.metadata.resource_version.clone().unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = secrets.get(SECRET).await.expect("the Secret");

    rig.numbers()
        .delete("line", &DeleteParams::default())
        .await
        .expect("delete the number");
    rig.profiles()
        .delete("acme", &DeleteParams::default())
        .await
        .expect("delete the profile");
    support::eventually(
        "the finalizer released once nothing uses the Secret",
        WAIT,
        || async { (!guarded(&secrets.get(SECRET).await.ok()?)).then_some(()) },
    )
    .await;
    let lines_a = team_a.finish(&[AUTH_TOKEN]);
    let lines_b = team_b.finish(&[AUTH_TOKEN]);

    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "the Secret was rewritten {} times in {QUIET_WINDOW:?}",
        versions.len() - 1
    );
    println!(
        "chaos: split-installs: secret-versions-in-window={} released-after-delete=yes log-lines={}+{}",
        versions.len(),
        lines_a,
        lines_b
    );
    rig.sandbox.shutdown().await;
}

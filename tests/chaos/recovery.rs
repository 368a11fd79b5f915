//! Recovery: the kube-apiserver restarts under a running operator. Its watches expire (410)
//! and relist. A change made after the restart is reconciled within seconds, and the relist
//! sends no Plivo write.
//!
//! Restarting the shared control plane would disturb the other tests, so this test starts its
//! own through `hack/control-plane.sh` in a temporary directory and stops it at the end.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use caller_reputation_operator::{
    api::{
        CallerReputationNumber,
        conditions::{ConditionType, find_condition},
    },
    sandbox::{Sandbox, SandboxConfig},
};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

use crate::{
    harness::{
        AUTH_ID, AUTH_TOKEN, SECRET, create_credentials_secret, number_manifest, profile_manifest,
        seed,
    },
    process::{OperatorProcess, base_flags},
    rig::{WAIT, digits, number},
    support,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/control-plane.sh")
}

/// A control plane of this test only; stopped and deleted when dropped.
struct OwnControlPlane {
    dir: PathBuf,
}

impl OwnControlPlane {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("caller-reputation-chaos-recovery-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        let plane = Self { dir };
        plane.run("start").await;
        plane
    }

    async fn run(&self, command: &str) {
        let output = tokio::process::Command::new(script())
            .arg(command)
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("hack/control-plane.sh runs");
        assert!(
            output.status.success(),
            "hack/control-plane.sh {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    async fn client(&self) -> Client {
        let file = Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig reads");
        let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig loads");
        Client::try_from(config).expect("client")
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn apply<K>(api: &Api<K>, manifest: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(
        &name,
        &PatchParams::apply("chaos-test").force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|error| panic!("applying {name} failed: {error}"));
}

async fn pending(numbers: &Api<CallerReputationNumber>, name: &str, within: Duration) {
    support::eventually(&format!("{name} Pending"), within, || async {
        let number = numbers.get_opt(name).await.ok().flatten()?;
        let status = number.status?;
        let ready = find_condition(&status.conditions, ConditionType::Ready)?;
        (ready.reason == "Pending").then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_costs_no_plivo_write() {
    let plane = OwnControlPlane::start().await;
    let client = plane.client().await;
    support::install_crds(&client).await;
    let namespace = "chaos-recovery";
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .expect("create the namespace");
    let phones: Vec<String> = (91..=94).map(number).collect();
    let sandbox = Sandbox::start(SandboxConfig {
        accounts: vec![(AUTH_ID.into(), AUTH_TOKEN.into())],
        numbers: phones.iter().map(|n| seed(n, "local")).collect(),
        activation_delay: Duration::from_secs(3600),
        rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    create_credentials_secret(&client, namespace, SECRET).await;
    let profiles = Api::<caller_reputation_operator::api::BusinessProfile>::namespaced(
        client.clone(),
        namespace,
    );
    let numbers = Api::<CallerReputationNumber>::namespaced(client.clone(), namespace);
    apply(&profiles, profile_manifest("acme", "21-0000091")).await;
    for (index, phone) in phones.iter().take(3).enumerate() {
        apply(
            &numbers,
            number_manifest(&format!("n{index}"), phone, "acme"),
        )
        .await;
    }
    let mut flags = base_flags(namespace, &sandbox.base_url(), SECRET);
    // Pending numbers are not re-read during the test, so every request below is the relist's.
    let at = flags
        .iter()
        .position(|f| f == "--pending-recheck-min")
        .unwrap();
    flags[at + 1] = "10m".into();
    let at = flags
        .iter()
        .position(|f| f == "--pending-recheck-max")
        .unwrap();
    flags[at + 1] = "30m".into();
    let operator = OperatorProcess::start("recovery", &plane.kubeconfig(), &flags);
    for index in 0..3 {
        pending(&numbers, &format!("n{index}"), WAIT).await;
    }

    let writes = |sandbox: &caller_reputation_operator::sandbox::RunningSandbox| {
        sandbox
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let writes_before = writes(&sandbox);
    let requests_before = sandbox.requests().len();
    let restart_started = Instant::now();
    plane.run("restart-apiserver").await;
    let restart = restart_started.elapsed();
    // /readyz returns 200 now. The operator's watches reconnect, get one 410 Expired each and
    // relist. A watch request that reached the apiserver before it had installed the CRD paths
    // got 503 with a retry-after of 5 s, which kube-client waits out, so in our runs a change
    // took up to 6 s. The wait is longer than the bound so that a failure shows the time.
    let changed_at = Instant::now();
    apply(&numbers, number_manifest("n3", &phones[3], "acme")).await;
    pending(&numbers, "n3", Duration::from_secs(30)).await;
    let reconciled_after = changed_at.elapsed();
    let writes_after = writes(&sandbox);
    let requests_after = sandbox.requests().len();
    let state = sandbox.state();
    // Each watch resumes from a resourceVersion older than the new apiserver's watch cache, so
    // it gets 410 Expired and relists. The restart therefore also covers an expired watch.
    let expired_watches = operator
        .output()
        .iter()
        .filter(|line| line.contains("Watch failed; retrying") && line.contains("Expired"))
        .count();
    let lines = operator.finish(&[AUTH_TOKEN]);

    assert_eq!(
        writes_after - writes_before,
        1,
        "only the new number's enable is written"
    );
    for phone in &phones {
        assert_eq!(state.counters[&digits(phone)].enable_requests, 1, "{phone}");
    }
    assert!(
        expired_watches > 0,
        "no watch got 410 Expired over the restart, so the relist after it went untested"
    );
    assert!(
        reconciled_after < Duration::from_secs(10),
        "the change after the restart was reconciled after {reconciled_after:?}, not within 10 s"
    );
    println!(
        "chaos: apiserver-restart: restart={restart:.1?} change-reconciled-after={reconciled_after:.1?} \
         plivo-requests-over-restart={} plivo-writes-over-restart={} (the new number's enable) \
         enables-per-number=1 expired-watches={expired_watches} log-lines={lines}",
        requests_after - requests_before,
        writes_after - writes_before
    );
    sandbox.shutdown().await;
    drop(plane);
}

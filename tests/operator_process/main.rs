//! End-to-end tests of the `run` process: status callbacks, metrics, TLS to
//! Plivo, SIGTERM during work, and that no Auth Token reaches its output.

#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../controllers/harness.rs"]
mod harness;

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use caller_reputation_operator::{
    api::{
        CallerReputationNumber,
        conditions::{ConditionType, find_condition},
    },
    sandbox::{RunningSandbox, Sandbox, SandboxConfig, SeedNumber, TlsConfig},
};
use harness::{AUTH_ID, AUTH_TOKEN, SECRET, number_manifest, profile_manifest, seed};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// An operator process whose output goes to a file.
struct Operator {
    child: Child,
    address: String,
    output: PathBuf,
}

impl Operator {
    fn start(
        kubeconfig: &Path,
        directory: &Path,
        sandbox: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Self {
        Self::start_on(
            free_port(),
            kubeconfig,
            directory,
            sandbox,
            namespace,
            extra,
        )
    }

    fn start_on(
        port: u16,
        kubeconfig: &Path,
        directory: &Path,
        sandbox: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Self {
        let address = format!("127.0.0.1:{port}");
        let output = directory.join(format!("operator-{port}.log"));
        let log = File::create(&output).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_caller-reputation-operator"))
            .arg("run")
            .args(["--kubeconfig".as_ref(), kubeconfig.as_os_str()])
            .args([
                "--listen",
                &address,
                "--plivo-base-url",
                sandbox,
                "--namespaces",
                namespace,
            ])
            .args([
                "--default-credentials-secret",
                &format!("{namespace}/{SECRET}"),
            ])
            .args([
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "--shutdown-timeout",
                "20s",
            ])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("operator starts");
        Self {
            child,
            address,
            output,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    async fn wait_ready(&self) {
        let url = self.url("/readyz");
        support::eventually("operator /readyz is 200", WAIT, || {
            let url = url.clone();
            async move {
                let response = reqwest::get(url).await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "operator did not exit within {timeout:?}"
            );
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sums every sample of a counter family in Prometheus text.
fn counter_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Setup {
    client: Client,
    namespace: String,
    kubeconfig: PathBuf,
    directory: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Setup {
    let cluster = support::cluster().await;
    let client = cluster.client();
    support::install_crds(&client).await;
    let namespace = support::namespace(prefix).await;
    harness::create_credentials_secret(&client, &namespace.name, SECRET).await;
    Setup {
        client,
        namespace: namespace.name,
        kubeconfig: cluster.kubeconfig.clone(),
        directory: tempfile::tempdir().unwrap(),
    }
}

async fn sandbox(numbers: Vec<SeedNumber>, tls: Option<TlsConfig>) -> RunningSandbox {
    Sandbox::start(SandboxConfig {
        accounts: vec![(AUTH_ID.into(), AUTH_TOKEN.into())],
        numbers,
        activation_delay: Duration::from_secs(3600),
        tls,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

async fn apply(client: &Client, namespace: &str, manifest: Value) {
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    let resource = match kind.as_str() {
        "BusinessProfile" => "businessprofiles",
        _ => "callerreputationnumbers",
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &kube::discovery::ApiResource {
            group: "callerreputation.io".into(),
            version: "v1alpha1".into(),
            api_version: "callerreputation.io/v1alpha1".into(),
            kind,
            plural: resource.into(),
        },
    );
    api.patch(
        &name,
        &PatchParams::apply("e2e-test").force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap();
}

async fn number_reason(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> CallerReputationNumber {
    let api: Api<CallerReputationNumber> = Api::namespaced(client.clone(), namespace);
    support::eventually(&format!("{name} with Ready reason {reason}"), WAIT, || {
        let api = api.clone();
        async move {
            let number = api.get_opt(name).await.ok().flatten()?;
            let ready =
                find_condition(&number.status.as_ref()?.conditions, ConditionType::Ready)?.clone();
            (ready.reason == reason).then_some(number)
        }
    })
    .await
}

async fn decide(sandbox: &RunningSandbox, digits: &str, status: &str) {
    let url = sandbox
        .base_url()
        .join(&format!("_sandbox/numbers/{digits}/decision"))
        .unwrap();
    let response = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .post(url)
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_activates_number_without_polling() {
    let s = setup("callback").await;
    let sandbox = sandbox(vec![seed("+14155550121", "local")], None).await;
    let port = free_port();
    let callback_base = format!("http://127.0.0.1:{port}");
    let operator = Operator::start_on(
        port,
        &s.kubeconfig,
        s.directory.path(),
        sandbox.base_url().as_str(),
        &s.namespace,
        // Re-checks are an hour apart, so only a callback can bring the news in time.
        &[
            "--pending-recheck-min",
            "1h",
            "--pending-recheck-max",
            "2h",
            "--callback-base-url",
            &callback_base,
        ],
    );
    operator.wait_ready().await;
    let reconciles_before = counter_total(
        &operator.metrics().await,
        "caller_reputation_reconciles_total",
    );

    apply(
        &s.client,
        &s.namespace,
        profile_manifest("acme", "12-3456721"),
    )
    .await;
    apply(
        &s.client,
        &s.namespace,
        number_manifest("line", "+14155550121", "acme"),
    )
    .await;
    number_reason(&s.client, &s.namespace, "line", "Pending").await;

    let decided = Instant::now();
    decide(&sandbox, "14155550121", "ACTIVE").await;
    number_reason(&s.client, &s.namespace, "line", "Active").await;
    println!(
        "callback: ACTIVE reported {:?} after the carrier decision",
        decided.elapsed()
    );
    assert!(
        sandbox
            .callbacks()
            .iter()
            .any(|c| c.url.contains(&port.to_string())),
        "the sandbox called the operator"
    );

    let metrics = operator.metrics().await;
    assert!(
        counter_total(&metrics, "caller_reputation_reconciles_total") > reconciles_before,
        "reconcile counter moved"
    );
    assert!(
        counter_total(&metrics, "caller_reputation_plivo_requests_total") >= 3.0,
        "Plivo requests counted"
    );
    assert!(
        !operator.output().contains(AUTH_TOKEN),
        "the Auth Token reached the operator's output"
    );
    assert!(!metrics.contains(AUTH_TOKEN));
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_leaves_no_duplicate_writes() {
    let s = setup("sigterm").await;
    let numbers: Vec<String> = (0..30)
        .map(|i| format!("+1415555{:04}", 1300 + i))
        .collect();
    let sandbox = sandbox(numbers.iter().map(|n| seed(n, "local")).collect(), None).await;
    let mut operator = Operator::start(
        &s.kubeconfig,
        s.directory.path(),
        sandbox.base_url().as_str(),
        &s.namespace,
        &["--concurrency", "4"],
    );
    operator.wait_ready().await;

    apply(
        &s.client,
        &s.namespace,
        profile_manifest("acme", "12-3456722"),
    )
    .await;
    for (index, number) in numbers.iter().enumerate() {
        apply(
            &s.client,
            &s.namespace,
            number_manifest(&format!("line-{index}"), number, "acme"),
        )
        .await;
    }
    support::eventually("the first enables reach the sandbox", WAIT, || async {
        (sandbox
            .state()
            .counters
            .values()
            .filter(|c| c.enable_requests > 0)
            .count()
            >= 3)
            .then_some(())
    })
    .await;
    operator.terminate();
    let status = operator.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");

    let restarted = Operator::start(
        &s.kubeconfig,
        s.directory.path(),
        sandbox.base_url().as_str(),
        &s.namespace,
        &[],
    );
    restarted.wait_ready().await;
    for index in 0..numbers.len() {
        number_reason(&s.client, &s.namespace, &format!("line-{index}"), "Pending").await;
    }
    let state = sandbox.state();
    let creates = sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.endpoint.ends_with("/Profile/"))
        .count();
    assert_eq!(creates, 1, "one profile create across the restart");
    for number in &numbers {
        let counters = &state.counters[number.trim_start_matches('+')];
        assert_eq!(counters.enable_requests, 1, "{number} was enabled once");
        assert_eq!(counters.pending, 1, "{number} went to PENDING once");
    }
    println!("sigterm: 30 numbers, 1 profile create, 1 enable each across the restart");
    assert!(!operator.output().contains(AUTH_TOKEN));
    assert!(!restarted.output().contains(AUTH_TOKEN));
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_over_tls_with_sandbox_certificate() {
    let s = setup("tls").await;
    let tls = TlsConfig::self_signed().unwrap();
    let ca_file = s.directory.path().join("sandbox-ca.pem");
    std::fs::write(&ca_file, &tls.cert_pem).unwrap();
    let sandbox = sandbox(vec![seed("+14155550123", "local")], Some(tls)).await;
    assert_eq!(sandbox.base_url().scheme(), "https");

    let operator = Operator::start(
        &s.kubeconfig,
        s.directory.path(),
        sandbox.base_url().as_str(),
        &s.namespace,
        &["--plivo-ca-file", ca_file.to_str().unwrap()],
    );
    operator.wait_ready().await;
    // The same process talks TLS to the apiserver (kube) and to the sandbox (reqwest).
    apply(
        &s.client,
        &s.namespace,
        profile_manifest("acme", "12-3456723"),
    )
    .await;
    apply(
        &s.client,
        &s.namespace,
        number_manifest("line", "+14155550123", "acme"),
    )
    .await;
    number_reason(&s.client, &s.namespace, "line", "Pending").await;
    assert!(
        !operator.output().contains("panicked"),
        "{}",
        operator.output()
    );
    sandbox.shutdown().await;
}

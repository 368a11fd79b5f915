//! Tests of `caller-reputation-operator run` as a process: configuration
//! errors, `--help`, the HTTP port, shutdown on SIGTERM, and leader election
//! between two processes on the local control plane of `tests/support`.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_caller-reputation-operator");

/// Default name of the election Lease.
const LEASE_NAME: &str = "caller-reputation-operator";

/// Every flag of `run`; `--help` must list each one.
const FLAGS: &[&str] = &[
    "--kubeconfig",
    "--namespaces",
    "--label-selector",
    "--plivo-base-url",
    "--default-credentials-secret",
    "--plivo-requests-per-window",
    "--plivo-timeout",
    "--plivo-ca-file",
    "--resync-period",
    "--pending-recheck-min",
    "--pending-recheck-max",
    "--concurrency",
    "--callback-base-url",
    "--listen",
    "--log-format",
    "--log-level",
    "--leader-election",
    "--leader-election-namespace",
    "--leader-election-lease-name",
    "--leader-election-identity",
    "--lease-duration",
    "--shutdown-timeout",
];

/// A `run` command with no `CRO_*` variables inherited from the test
/// environment, so each case runs with only the variables it sets.
fn run_command() -> Command {
    let mut command = Command::new(BINARY);
    command.arg("run");
    for (name, _) in std::env::vars() {
        if name.starts_with("CRO_") || name == "POD_NAME" {
            command.env_remove(name);
        }
    }
    command
}

fn stderr_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn invalid_flag_exits_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--default-credentials-secret", "foo"],
            "--default-credentials-secret",
        ),
        (
            &["--pending-recheck-min", "1h", "--pending-recheck-max", "5m"],
            "--pending-recheck-min",
        ),
        (
            &["--callback-base-url", "ftp://callbacks.example.com"],
            "--callback-base-url",
        ),
        (&["--label-selector", "tier in (a"], "--label-selector"),
        (&["--namespaces", "Bad_Namespace"], "--namespaces"),
        (&["--concurrency", "none"], "--concurrency"),
        (&["--resync-period", "hourly"], "--resync-period"),
        (&["--log-format", "xml"], "--log-format"),
        (&["--lease-duration", "1s"], "--lease-duration"),
        (&["--listen", "localhost"], "--listen"),
        (&["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig"),
    ];
    for (flags, flag) in cases {
        let output = run_command().args(*flags).output().expect("binary starts");

        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{flags:?}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("invalid value for {flag}: ")),
            "{flags:?}: {}",
            lines[0]
        );
    }
}

#[test]
fn invalid_environment_variable_names_flag() {
    let cases = [
        ("CRO_CONCURRENCY", "0", "--concurrency"),
        ("CRO_LEADER_ELECTION", "maybe", "--leader-election"),
    ];
    for (variable, value, flag) in cases {
        let output = run_command()
            .env(variable, value)
            .output()
            .expect("binary starts");

        assert_eq!(output.status.code(), Some(2), "{variable}");
        let lines = stderr_lines(&output);
        assert_eq!(lines.len(), 1, "{variable}: {lines:?}");
        assert!(
            lines[0].starts_with(&format!("invalid value for {flag}: ")),
            "{variable}: {}",
            lines[0]
        );
    }
}

#[test]
fn help_lists_every_flag() {
    let output = run_command().arg("--help").output().expect("binary starts");

    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in FLAGS {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "--help lacks {flag}"
        );
    }
    let documented_variables = help.matches("[env: CRO_").count();
    assert_eq!(
        documented_variables,
        FLAGS.len() - 1,
        "every flag but the identity reads CRO_*"
    );
    assert!(help.contains("[env: POD_NAME="));
}

/// Writes a kubeconfig that points at a closed loopback port: enough to
/// build a client, and no request leaves the machine.
fn write_loopback_kubeconfig(directory: &Path) -> PathBuf {
    let path = directory.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: loopback\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n\
         - name: tester\n  user:\n    token: not-a-real-token\n\
         contexts:\n\
         - name: loopback\n  context:\n    cluster: loopback\n    user: tester\n    namespace: default\n\
         current-context: loopback\n",
    )
    .expect("kubeconfig is written");
    path
}

/// A started operator process whose JSON log lines arrive on a channel.
struct Operator {
    child: Child,
    logs: mpsc::Receiver<serde_json::Value>,
}

impl Operator {
    /// Starts `run` with `--listen listen`, JSON logs and `extra` flags.
    fn start(kubeconfig: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut child = run_command()
            .args(["--kubeconfig".as_ref(), kubeconfig.as_os_str()])
            .args(["--listen", listen, "--log-format", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, logs) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str(&line) {
                    let _ = sender.send(entry);
                }
            }
        });
        Self { child, logs }
    }

    /// Waits for the log line with `message` and returns it.
    fn wait_for_log(&self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let entry = self
                .logs
                .recv_timeout(remaining)
                .unwrap_or_else(|_| panic!("no log line {message:?} within {timeout:?}"));
            if entry["message"] == message {
                return entry;
            }
        }
    }

    fn http_address(&self) -> SocketAddr {
        let entry = self.wait_for_log(
            "Serving /healthz, /readyz, /metrics and callbacks",
            Duration::from_secs(20),
        );
        entry["address"]
            .as_str()
            .and_then(|address| address.parse().ok())
            .expect("log line carries the bound address")
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status reads") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "operator did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a plain HTTP/1.1 GET and returns the status code and body.
fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_until_ready(address: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !matches!(http_get(address, "/readyz"), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "/readyz not 200 within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_probes_and_metrics() {
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let namespace = support::namespace("probes").await;
    let operator = Operator::start(
        &cluster.kubeconfig,
        "127.0.0.1:0",
        &["--namespaces", &namespace.name],
    );
    let address = operator.http_address();
    // Without election the process leads; /readyz turns 200 once its caches are synced.
    tokio::task::spawn_blocking(move || wait_until_ready(address, Duration::from_secs(30)))
        .await
        .unwrap();

    let (health, _) = http_get(address, "/healthz").expect("healthz responds");
    let (metrics_status, metrics) = http_get(address, "/metrics").expect("metrics respond");
    let (callback, _) = http_get(address, "/callbacks/caller-reputation?number=14155550100")
        .expect("callback endpoint responds");

    assert_eq!(health, 200);
    assert_eq!(metrics_status, 200);
    assert!(
        metrics.contains("# TYPE caller_reputation_leader gauge"),
        "{metrics}"
    );
    assert_eq!(callback, 403, "an unsigned callback is rejected");
}

#[test]
fn unreachable_apiserver_is_not_ready() {
    let directory = tempfile::tempdir().unwrap();
    let operator = Operator::start(
        &write_loopback_kubeconfig(directory.path()),
        "127.0.0.1:0",
        &["--shutdown-timeout", "2s"],
    );
    let address = operator.http_address();
    // The controllers start but can never list anything, so the caches never sync.
    operator.wait_for_log("Controllers started", Duration::from_secs(20));

    assert_eq!(
        http_get(address, "/healthz").expect("healthz responds").0,
        200
    );
    assert_eq!(
        http_get(address, "/readyz").expect("readyz responds").0,
        503
    );
}

#[test]
fn sigterm_stops_with_exit_zero() {
    let directory = tempfile::tempdir().unwrap();
    // The controllers cannot reach the loopback API server; a short
    // timeout bounds how long the drain may wait for them.
    let mut operator = Operator::start(
        &write_loopback_kubeconfig(directory.path()),
        "127.0.0.1:0",
        &["--shutdown-timeout", "5s"],
    );
    let address = operator.http_address();
    assert_eq!(
        http_get(address, "/healthz").expect("healthz responds").0,
        200
    );

    operator.terminate();
    let status = operator.wait_exit(Duration::from_secs(30));

    assert_eq!(status.code(), Some(0));
    operator.wait_for_log("Operator stopped", Duration::from_secs(5));
}

#[test]
fn taken_port_fails_at_start() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port();
    let directory = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut operator = Operator::start(&write_loopback_kubeconfig(directory.path()), &listen, &[]);

    let status = operator.wait_exit(Duration::from_secs(30));

    assert_eq!(status.code(), Some(1));
    let failure = operator.wait_for_log("Operator failed", Duration::from_secs(5));
    let error = failure["error"].as_str().unwrap_or_default();
    assert!(error.contains(&listen), "{error}");
}

/// Lease duration of the election tests; short so a takeover is quick.
const TEST_LEASE_SECONDS: u64 = 4;

/// Returns the holder identity of the Lease, if the Lease exists and has one.
async fn lease_holder(leases: &kube::Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// Returns the value of `caller_reputation_leader` on the operator's `/metrics`.
fn leader_gauge(address: SocketAddr) -> Option<f64> {
    let (_, metrics) = http_get(address, "/metrics").ok()?;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("caller_reputation_leader "))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits up to `within` until `identity` holds the Lease and its `/metrics` at `address`
/// reports it as leader.
async fn wait_until_leading(
    leases: &kube::Api<Lease>,
    address: SocketAddr,
    identity: &str,
    what: &str,
    within: Duration,
) {
    support::eventually(what, within, || async {
        let is_holder = lease_holder(leases, LEASE_NAME).await.as_deref() == Some(identity);
        (is_holder && leader_gauge(address) == Some(1.0)).then_some(())
    })
    .await;
}

/// Starts one operator taking part in the election for `namespace`.
fn start_candidate(kubeconfig: &Path, namespace: &str, identity: &str) -> Operator {
    start_candidate_with_lease(kubeconfig, namespace, identity, TEST_LEASE_SECONDS)
}

fn start_candidate_with_lease(
    kubeconfig: &Path,
    namespace: &str,
    identity: &str,
    lease_seconds: u64,
) -> Operator {
    let lease_duration = format!("{lease_seconds}s");
    Operator::start(
        kubeconfig,
        "127.0.0.1:0",
        &[
            "--leader-election",
            "--leader-election-namespace",
            namespace,
            "--leader-election-identity",
            identity,
            "--lease-duration",
            &lease_duration,
            "--shutdown-timeout",
            "2s",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_elect_one_leader() {
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-election").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let mut first = start_candidate(&cluster.kubeconfig, &namespace.name, "operator-a");
    let mut second = start_candidate(&cluster.kubeconfig, &namespace.name, "operator-b");
    let addresses = [first.http_address(), second.http_address()];

    let holder = support::eventually("a Lease holder", Duration::from_secs(30), || {
        lease_holder(&leases, LEASE_NAME)
    })
    .await;
    let leader_index = match holder.as_str() {
        "operator-a" => 0,
        "operator-b" => 1,
        other => panic!("unexpected Lease holder {other:?}"),
    };
    let standby_index = 1 - leader_index;
    support::eventually(
        "the holder's leader gauge at 1",
        Duration::from_secs(10),
        || async { (leader_gauge(addresses[leader_index]) == Some(1.0)).then_some(()) },
    )
    .await;

    // A full lease period later the election is settled: still one holder,
    // and the standby neither leads nor blocks a rollout.
    tokio::time::sleep(Duration::from_secs(TEST_LEASE_SECONDS)).await;
    assert_eq!(
        lease_holder(&leases, LEASE_NAME).await.as_deref(),
        Some(holder.as_str())
    );
    assert_eq!(leader_gauge(addresses[leader_index]), Some(1.0));
    assert_eq!(leader_gauge(addresses[standby_index]), Some(0.0));
    let (standby_ready, _) =
        http_get(addresses[standby_index], "/readyz").expect("readyz responds");
    assert_eq!(standby_ready, 200);

    drop_both(&mut first, &mut second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_lease_to_standby() {
    // A long Lease shows the handover does not wait for expiry.
    const LEASE_SECONDS: u64 = 20;
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-handover").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let mut candidates = [
        start_candidate_with_lease(
            &cluster.kubeconfig,
            &namespace.name,
            "operator-a",
            LEASE_SECONDS,
        ),
        start_candidate_with_lease(
            &cluster.kubeconfig,
            &namespace.name,
            "operator-b",
            LEASE_SECONDS,
        ),
    ];
    let addresses = [candidates[0].http_address(), candidates[1].http_address()];
    let holder = support::eventually("a Lease holder", Duration::from_secs(30), || {
        lease_holder(&leases, LEASE_NAME)
    })
    .await;
    let leader_index = usize::from(holder == "operator-b");
    let standby_index = 1 - leader_index;
    let standby_identity = if leader_index == 0 {
        "operator-b"
    } else {
        "operator-a"
    };

    candidates[leader_index].terminate();
    let terminated_at = Instant::now();
    let status = candidates[leader_index].wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    support::eventually(
        "the standby to hold the Lease",
        Duration::from_secs(5),
        || async {
            (lease_holder(&leases, LEASE_NAME).await.as_deref() == Some(standby_identity))
                .then_some(())
        },
    )
    .await;
    let handover = terminated_at.elapsed();
    support::eventually(
        "the new leader's gauge at 1",
        Duration::from_secs(5),
        || async { (leader_gauge(addresses[standby_index]) == Some(1.0)).then_some(()) },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "handover after SIGTERM: {handover:?}");

    let _ = candidates[standby_index].child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_after_leader_is_killed() {
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-takeover").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let mut candidates = [
        start_candidate(&cluster.kubeconfig, &namespace.name, "operator-a"),
        start_candidate(&cluster.kubeconfig, &namespace.name, "operator-b"),
    ];
    let addresses = [candidates[0].http_address(), candidates[1].http_address()];
    let holder = support::eventually("a Lease holder", Duration::from_secs(30), || {
        lease_holder(&leases, LEASE_NAME)
    })
    .await;
    let leader_index = usize::from(holder == "operator-b");
    let standby_index = 1 - leader_index;
    let standby_identity = if leader_index == 0 {
        "operator-b"
    } else {
        "operator-a"
    };

    candidates[leader_index]
        .child
        .kill()
        .expect("SIGKILL is sent");
    let killed_at = Instant::now();
    // The standby takes the Lease once its watch has shown the last renewal
    // unchanged for one duration. It then waits up to 1 s of jitter.
    let takeover_deadline = Duration::from_secs(TEST_LEASE_SECONDS + 4);
    support::eventually(
        "the standby to hold the Lease",
        takeover_deadline,
        || async {
            (lease_holder(&leases, LEASE_NAME).await.as_deref() == Some(standby_identity))
                .then_some(())
        },
    )
    .await;
    let takeover = killed_at.elapsed();
    support::eventually(
        "the new leader's gauge at 1",
        Duration::from_secs(5),
        || async { (leader_gauge(addresses[standby_index]) == Some(1.0)).then_some(()) },
    )
    .await;
    let _ = writeln!(std::io::stderr(), "takeover after SIGKILL: {takeover:?}");

    // SIGTERM on the new leader releases the Lease before the process exits.
    candidates[standby_index].terminate();
    let status = candidates[standby_index].wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        lease_holder(&leases, LEASE_NAME).await,
        None,
        "Lease is released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_lease_is_taken() {
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-stepdown").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let operator = start_candidate(&cluster.kubeconfig, &namespace.name, "operator-a");
    let address = operator.http_address();
    wait_until_leading(
        &leases,
        address,
        "operator-a",
        "operator-a to lead",
        Duration::from_secs(30),
    )
    .await;

    // Another holder appears, as after a network partition in which the
    // Lease expired and another replica took it.
    let intruder = serde_json::json!({
        "spec": {
            "holderIdentity": "operator-elsewhere",
            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now()
            ),
        }
    });
    leases
        .patch(
            LEASE_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&intruder),
        )
        .await
        .expect("Lease is patched");

    // The holder notices at its next renewal, at most one duration later.
    support::eventually(
        "operator-a to step down",
        Duration::from_secs(TEST_LEASE_SECONDS + 2),
        || async { (leader_gauge(address) == Some(0.0)).then_some(()) },
    )
    .await;
    let (ready, _) = http_get(address, "/readyz").expect("readyz responds");
    assert_eq!(ready, 200, "a standby stays ready");

    // The other holder never renews, so operator-a takes the Lease back.
    wait_until_leading(
        &leases,
        address,
        "operator-a",
        "operator-a to lead again",
        Duration::from_secs(4 * TEST_LEASE_SECONDS),
    )
    .await;
}

fn drop_both(first: &mut Operator, second: &mut Operator) {
    let _ = first.child.kill();
    let _ = second.child.kill();
}

/// Returns the Lease's renewTime, if the Lease exists and has one.
async fn lease_renew_time(
    leases: &kube::Api<Lease>,
    name: &str,
) -> Option<k8s_openapi::jiff::Timestamp> {
    leases
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.renew_time)
        .map(|time| time.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_same_identity_renews_at_once() {
    // Long enough that the library's own first renewal (after two thirds of
    // the duration) cannot be mistaken for the one checked here.
    const LEASE_SECONDS: u64 = 15;
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-restart").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let mut first = start_candidate_with_lease(
        &cluster.kubeconfig,
        &namespace.name,
        "operator-a",
        LEASE_SECONDS,
    );
    let address = first.http_address();
    wait_until_leading(
        &leases,
        address,
        "operator-a",
        "operator-a to lead",
        Duration::from_secs(30),
    )
    .await;

    first.child.kill().expect("SIGKILL is sent");
    first.child.wait().expect("the killed operator is reaped");
    let renewed_before = lease_renew_time(&leases, LEASE_NAME)
        .await
        .expect("the Lease has a renewTime");
    let restarted = start_candidate_with_lease(
        &cluster.kubeconfig,
        &namespace.name,
        "operator-a",
        LEASE_SECONDS,
    );
    let restarted_at = Instant::now();

    restarted.wait_for_log(
        "Renewed the Lease this identity held before the restart",
        Duration::from_secs(5),
    );
    let renewal_after = restarted_at.elapsed();
    let renewed_now = lease_renew_time(&leases, LEASE_NAME)
        .await
        .expect("the Lease has a renewTime");

    assert_eq!(
        lease_holder(&leases, LEASE_NAME).await.as_deref(),
        Some("operator-a")
    );
    assert!(
        renewed_now > renewed_before,
        "renewTime moved: {renewed_before} -> {renewed_now}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "renewal of the inherited Lease after restart: {renewal_after:?}"
    );
}

/// Keeps Lease `name` held by `holder`, renewing it every second with a
/// renewTime `skew` away from the real time, like a holder whose clock is
/// off by `skew` (negative: late, positive: early).
async fn hold_with_skewed_clock(
    leases: kube::Api<Lease>,
    name: &str,
    holder: &str,
    skew: k8s_openapi::jiff::SignedDuration,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    let skewed_now = || MicroTime(k8s_openapi::jiff::Timestamp::now() + skew);
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": TEST_LEASE_SECONDS,
            "acquireTime": skewed_now(),
            "renewTime": skewed_now(),
        },
    }))
    .expect("Lease literal is valid");
    leases
        .create(&kube::api::PostParams::default(), &lease)
        .await
        .expect("Lease is created");
    loop {
        // The renewal cadence of the skewed holder, well inside the lease duration.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let renewal = serde_json::json!({
            "spec": { "holderIdentity": holder, "renewTime": skewed_now() },
        });
        let _ = leases
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&renewal),
            )
            .await;
    }
}

/// Runs two candidates against a fake `holder` that renews every second with
/// a renewTime `skew` away from the real time. Asserts that neither candidate
/// leads while it renews (three lease durations), then stops the holder and
/// returns how long until exactly one candidate leads, waiting at most
/// `takeover_limit`.
async fn takeover_after_skewed_holder(
    namespace_prefix: &str,
    holder: &'static str,
    skew: k8s_openapi::jiff::SignedDuration,
    takeover_limit: Duration,
) -> Duration {
    let cluster = support::cluster().await;
    let namespace = support::namespace(namespace_prefix).await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let skewed_holder = tokio::spawn({
        let leases = leases.clone();
        async move { hold_with_skewed_clock(leases, LEASE_NAME, holder, skew).await }
    });
    support::eventually(
        "the skewed holder's Lease",
        Duration::from_secs(10),
        || async {
            (lease_holder(&leases, LEASE_NAME).await.as_deref() == Some(holder)).then_some(())
        },
    )
    .await;
    let candidates = [
        start_candidate(&cluster.kubeconfig, &namespace.name, "operator-a"),
        start_candidate(&cluster.kubeconfig, &namespace.name, "operator-b"),
    ];
    let addresses = [candidates[0].http_address(), candidates[1].http_address()];

    // Whatever time its renewTime records, the Lease changes every second, so for
    // three lease durations no candidate may take it.
    let window = Instant::now() + Duration::from_secs(3 * TEST_LEASE_SECONDS);
    while Instant::now() < window {
        for address in addresses {
            assert_ne!(
                leader_gauge(address),
                Some(1.0),
                "{address} took a renewed Lease"
            );
        }
        assert_eq!(
            lease_holder(&leases, LEASE_NAME).await.as_deref(),
            Some(holder)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    skewed_holder.abort();
    let stopped_at = Instant::now();
    support::eventually(
        "a candidate to lead after the skewed holder stopped",
        takeover_limit,
        || async {
            let gauges = addresses.map(leader_gauge);
            (gauges.iter().filter(|gauge| **gauge == Some(1.0)).count() == 1).then_some(())
        },
    )
    .await;
    let takeover = stopped_at.elapsed();
    let new_holder = lease_holder(&leases, LEASE_NAME).await;
    assert!(
        matches!(new_holder.as_deref(), Some("operator-a" | "operator-b")),
        "Lease holder after the takeover: {new_holder:?}"
    );
    takeover
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_with_late_clock_keeps_the_lease() {
    // By its renewTime the Lease expired an hour ago.
    let takeover = takeover_after_skewed_holder(
        "leader-late-clock",
        "late-holder",
        k8s_openapi::jiff::SignedDuration::from_hours(-1),
        Duration::from_secs(2 * TEST_LEASE_SECONDS + 5),
    )
    .await;

    let _ = writeln!(
        std::io::stderr(),
        "takeover after the late holder stopped: {takeover:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_with_early_clock_is_replaced() {
    // By its renewTime the Lease stays valid for an hour after the last
    // renewal, but a candidate that saw it unchanged for one lease duration
    // takes it.
    let takeover = takeover_after_skewed_holder(
        "leader-early-clock",
        "early-holder",
        k8s_openapi::jiff::SignedDuration::from_hours(1),
        Duration::from_secs(TEST_LEASE_SECONDS + 5),
    )
    .await;

    let _ = writeln!(
        std::io::stderr(),
        "takeover after the early holder stopped: {takeover:?}"
    );
}

/// Creates a ValidatingAdmissionPolicy and its binding that deny every
/// update of the Leases in `namespace`, as if the operator had lost the
/// `update` verb on Leases. Returns the policy name; the binding has the same.
async fn deny_lease_updates(client: &kube::Client, namespace: &str) -> String {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };

    let name = format!("deny-lease-updates-{namespace}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": ["coordination.k8s.io"],
                    "apiVersions": ["v1"],
                    "operations": ["UPDATE"],
                    "resources": ["leases"],
                }],
            },
            "validations": [{ "expression": "false", "message": "Lease updates are denied" }],
        },
    }))
    .expect("policy literal is valid");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchLabels": { "kubernetes.io/metadata.name": namespace },
                },
            },
        },
    }))
    .expect("binding literal is valid");
    let params = kube::api::PostParams::default();
    kube::Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .create(&params, &policy)
        .await
        .expect("policy is created");
    kube::Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&params, &binding)
        .await
        .expect("binding is created");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_renewal_is_denied() {
    let cluster = support::cluster().await;
    let namespace = support::namespace("leader-denied").await;
    let leases = kube::Api::<Lease>::namespaced(namespace.client.clone(), &namespace.name);
    let operator = start_candidate(&cluster.kubeconfig, &namespace.name, "operator-a");
    let address = operator.http_address();
    wait_until_leading(
        &leases,
        address,
        "operator-a",
        "operator-a to lead",
        Duration::from_secs(30),
    )
    .await;

    let policy = deny_lease_updates(&namespace.client, &namespace.name).await;
    let denied_at = Instant::now();

    // The next renewal, at most one duration later, is rejected; the
    // controllers stop at once and the fence closes with them.
    support::eventually(
        "operator-a to step down",
        Duration::from_secs(TEST_LEASE_SECONDS + 5),
        || async { (leader_gauge(address) == Some(0.0)).then_some(()) },
    )
    .await;
    let step_down = denied_at.elapsed();
    operator.wait_for_log(
        "Cannot renew the Lease; stopping the controllers",
        Duration::from_secs(5),
    );
    let (ready, _) = http_get(address, "/readyz").expect("readyz responds");
    assert_eq!(ready, 200, "a standby stays ready");

    kube::Api::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>::all(
        namespace.client.clone(),
    )
    .delete(&policy, &kube::api::DeleteParams::default())
    .await
    .expect("binding is deleted");
    support::eventually(
        "operator-a to lead again",
        Duration::from_secs(60),
        || async { (leader_gauge(address) == Some(1.0)).then_some(()) },
    )
    .await;
    let _ = writeln!(
        std::io::stderr(),
        "step-down after Lease updates were denied: {step_down:?}"
    );
    kube::Api::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy>::all(
        namespace.client.clone(),
    )
    .delete(&policy, &kube::api::DeleteParams::default())
    .await
    .expect("policy is deleted");
}

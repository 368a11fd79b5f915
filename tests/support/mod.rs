//! Shared support for tests that run against a real kube-apiserver.
//!
//! Each test binary that declares `mod support;` starts one local control plane (etcd and
//! kube-apiserver through `hack/control-plane.sh`) the first time a test calls [`cluster`], in a
//! fresh temporary directory. A watchdog process stops it and deletes that directory once the
//! test binary exits, however it exits: normally, after a panic, or killed by a signal.
//!
//! Environment:
//! - `USE_EXISTING_CLUSTER=1` uses the cluster of the current `KUBECONFIG` (or the default
//!   kubeconfig) instead of starting one.
//! - `KEEP_TEST_DIR=1` leaves the control plane running and its directory (logs, kubeconfig)
//!   in place after the tests, and prints how to reach and stop it.
//!
//! The control plane has no controller-manager, so deleted namespaces never finish terminating
//! and garbage collection never runs. Tests create a namespace each and leave it behind.

// Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

/// Field manager of every server-side apply the test support sends.
const FIELD_MANAGER: &str = "caller-reputation-operator-tests";

/// Interval between two checks of [`eventually`].
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A control plane the tests of one binary share.
pub struct Cluster {
    /// Admin kubeconfig of the local control plane, or the kubeconfig in use for an existing cluster.
    pub kubeconfig: PathBuf,
    /// Directory with the local control plane's data and logs, or `None` for an existing cluster.
    pub dir: Option<PathBuf>,
    config: Config,
    // The test process closes this pipe when it exits for any reason, and that makes the
    // watchdog stop the control plane. Nothing is ever written to it.
    _watchdog: Option<ChildStdin>,
}

impl Cluster {
    /// Creates a client for the calling test.
    ///
    /// `#[tokio::test]` gives every test its own runtime, and a client keeps a background task
    /// on the runtime that created it, so clients are not shared between tests.
    pub fn client(&self) -> Client {
        Client::try_from(self.config.clone()).unwrap_or_else(|error| {
            panic!(
                "creating a client for {} failed: {error}",
                self.kubeconfig.display()
            )
        })
    }
}

static CLUSTER: OnceCell<Result<Cluster, String>> = OnceCell::const_new();

/// Starts (once per test binary) the local control plane through `hack/control-plane.sh` in a
/// fresh temporary directory, or, when `USE_EXISTING_CLUSTER=1`, uses the current `KUBECONFIG`.
///
/// # Panics
/// When the control plane does not start or its kubeconfig cannot be loaded. Every later call
/// panics with the same message instead of trying again.
pub async fn cluster() -> &'static Cluster {
    let cluster = CLUSTER
        .get_or_init(|| async { connect().await.map_err(|error| error.to_string()) })
        .await;
    match cluster {
        Ok(cluster) => cluster,
        Err(message) => panic!("no cluster for the tests: {message}"),
    }
}

/// Creates a client for the shared cluster; short for `cluster().await.client()`.
pub async fn client() -> Client {
    cluster().await.client()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect() -> Result<Cluster, BoxError> {
    if std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|value| value == "1") {
        let kubeconfig = existing_kubeconfig()?;
        let config = load_config(&kubeconfig).await?;
        return Ok(Cluster {
            kubeconfig,
            dir: None,
            config,
            _watchdog: None,
        });
    }

    let dir = tempfile::Builder::new()
        .prefix("caller-reputation-operator-test-")
        .tempdir()
        .map_err(|error| {
            format!("creating a temporary directory for the control plane failed: {error}")
        })?
        .keep();
    let keep = std::env::var("KEEP_TEST_DIR").is_ok_and(|value| value == "1");
    // The watchdog starts before the control plane so that a test process killed during `start`
    // still gets it stopped.
    let watchdog = if keep {
        None
    } else {
        Some(spawn_watchdog(&dir)?)
    };

    let output = tokio::process::Command::new(control_plane_script())
        .arg("start")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!(
            "hack/control-plane.sh start {} failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }

    let kubeconfig = dir.join("kubeconfig");
    if keep {
        // Written to stderr directly because libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "KEEP_TEST_DIR=1: the control plane keeps running after the tests.\n  \
             export KUBECONFIG={}\n  stop it with: hack/control-plane.sh stop {} && rm -r {}",
            kubeconfig.display(),
            dir.display(),
            dir.display()
        );
    }
    let config = load_config(&kubeconfig).await?;
    Ok(Cluster {
        kubeconfig,
        dir: Some(dir),
        config,
        _watchdog: watchdog,
    })
}

fn existing_kubeconfig() -> Result<PathBuf, BoxError> {
    if let Some(path) = std::env::var_os("KUBECONFIG").filter(|path| !path.is_empty()) {
        // Only the first file of a KUBECONFIG list is used.
        return std::env::split_paths(&path)
            .next()
            .ok_or_else(|| "KUBECONFIG is set but names no file".into());
    }
    let home = std::env::var_os("HOME").ok_or("neither KUBECONFIG nor HOME is set")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

async fn load_config(kubeconfig: &Path) -> Result<Config, BoxError> {
    let file = Kubeconfig::read_from(kubeconfig).map_err(|error| {
        format!(
            "reading kubeconfig {} failed: {error}",
            kubeconfig.display()
        )
    })?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|error| {
            format!(
                "loading kubeconfig {} failed: {error}",
                kubeconfig.display()
            )
        })?;
    Ok(config)
}

fn control_plane_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hack")
        .join("control-plane.sh")
}

/// Spawns a process that waits until the test process is gone, then stops the control plane in
/// `dir` and deletes `dir`.
///
/// The watchdog reads its stdin, a pipe whose only writer is this process, so it reads end of file
/// exactly when this process exits, including by SIGKILL. It runs in its own process group so a
/// Ctrl-C sent to the test run does not stop it before it has cleaned up.
fn spawn_watchdog(dir: &Path) -> Result<ChildStdin, BoxError> {
    use std::os::unix::process::CommandExt;

    let mut child = Command::new("bash")
        .arg("-c")
        .arg(r#"while read -r _; do :; done; "$0" stop "$1"; rm -rf -- "$1""#)
        .arg(control_plane_script())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("spawning the control-plane watchdog failed: {error}"))?;
    let stdin = child.stdin.take().ok_or("the watchdog has no stdin pipe")?;
    Ok(stdin)
}

/// A namespace created for one test.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

/// Creates a uniquely named namespace (`prefix` + random suffix) for one test.
///
/// The namespace stays after the test: without a controller-manager it could never finish
/// terminating anyway.
///
/// # Panics
/// When `prefix` would make an invalid namespace name, or the apiserver rejects the namespace.
pub async fn namespace(prefix: &str) -> TestNamespace {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let name = format!("{prefix}-{suffix}");
    assert!(
        is_dns_label(&name),
        "namespace prefix {prefix:?} is invalid: {name:?} must be a DNS label \
         (lowercase letters, digits and '-', at most 63 characters)"
    );

    let client = client().await;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|error| panic!("creating namespace {name} failed: {error}"));
    TestNamespace { name, client }
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Polls `check` until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Applies every CRD from `crds/` (server-side apply) and waits until each is Established.
///
/// Reads every `*.yaml` file in `crds/`, each holding one or more documents. A missing or empty
/// `crds/` directory installs nothing.
///
/// # Panics
/// When a file cannot be read or parsed, the apiserver rejects a CRD, or a CRD is not
/// Established within 30 seconds.
pub async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in read_crds(&crds_dir()) {
        let name = crd
            .metadata
            .name
            .clone()
            .expect("every CRD in crds/ has a metadata.name");
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|error| panic!("applying CRD {name} failed: {error}"));
        wait_until_established(&api, &name).await;
    }
}

/// Names of the CRDs in `crds/`, in the order [`install_crds`] applies them.
pub fn crd_names() -> Vec<String> {
    read_crds(&crds_dir())
        .into_iter()
        .map(|crd| {
            crd.metadata
                .name
                .expect("every CRD in crds/ has a metadata.name")
        })
        .collect()
}

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn read_crds(dir: &Path) -> Vec<CustomResourceDefinition> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => panic!("reading {} failed: {error}", dir.display()),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|error| panic!("reading {} failed: {error}", dir.display()))
                .path()
        })
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .collect();
    files.sort();

    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("reading {} failed: {error}", file.display()));
        let documents: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|error| panic!("{} is not a list of CRDs: {error}", file.display()));
        crds.extend(documents);
    }
    crds
}

/// Waits until the CRD `name` has the condition `Established=True`.
pub async fn wait_until_established(api: &Api<CustomResourceDefinition>, name: &str) {
    eventually(
        &format!("CRD {name} to be Established"),
        Duration::from_secs(30),
        || async {
            let crd = api.get(name).await.ok()?;
            let established =
                crd.status?.conditions?.iter().any(|condition| {
                    condition.type_ == "Established" && condition.status == "True"
                });
            established.then_some(())
        },
    )
    .await;
}

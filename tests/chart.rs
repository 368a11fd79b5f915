//! Tests of the Helm chart in `charts/caller-reputation-operator`.
//!
//! Renders for default and customised values are checked by `helm lint`, by kubeconform in
//! strict mode and by a server-side dry run on the test control plane. The values schema must
//! reject bad values. `chart/rbac.rs` checks that the ClusterRole lets the real controllers
//! work and grants nothing they do not use.
//!
//! helm and kubeconform come from `hack/install-tools.sh`; see `chart/tools.rs`.

#[path = "support/mod.rs"]
mod support;

#[path = "chart/tools.rs"]
mod tools;

#[path = "chart/schemas.rs"]
mod schemas;

#[path = "chart/rbac.rs"]
mod rbac;

// Shared with the controller tests; the RBAC test uses only part of it.
#[allow(dead_code)]
#[path = "controllers/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

/// Release name of every render; object names start with `cro-caller-reputation-operator`.
const RELEASE: &str = "cro";
const FULLNAME: &str = "cro-caller-reputation-operator";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts").join("caller-reputation-operator")
}

fn custom_values() -> PathBuf {
    repo()
        .join("tests")
        .join("chart")
        .join("custom-values.yaml")
}

/// Runs a command to completion, feeding `stdin` to it.
async fn run(program: &Path, args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Output {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("start {}: {error}", program.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    child
        .wait_with_output()
        .await
        .expect("wait for the command")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What `helm template` printed, and its objects.
struct Rendered {
    yaml: String,
    objects: Vec<Value>,
}

impl Rendered {
    fn kinds(&self) -> Vec<&str> {
        self.objects
            .iter()
            .map(|object| object["kind"].as_str().unwrap_or_default())
            .collect()
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|object| object["kind"] == kind)
            .collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(
            found.len(),
            1,
            "expected one {kind}, rendered {:?}",
            self.kinds()
        );
        found[0]
    }

    fn container(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    }

    fn args(&self) -> Vec<&str> {
        self.container()["args"]
            .as_array()
            .expect("container args")
            .iter()
            .map(|arg| arg.as_str().expect("args are strings"))
            .collect()
    }
}

/// `helm template` of the chart (CRDs included) into `namespace` with extra helm arguments.
async fn try_render(namespace: &str, extra: &[&str]) -> Result<Rendered, String> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let output = run(&tools::require("helm"), &args, &[], "").await;
    if !output.status.success() {
        return Err(text(&output.stderr));
    }
    let yaml = text(&output.stdout);
    let objects: Vec<Value> = serde_saphyr::from_multiple(&yaml)
        .unwrap_or_else(|error| panic!("helm template printed invalid YAML: {error}\n{yaml}"));
    let objects = objects.into_iter().filter(Value::is_object).collect();
    Ok(Rendered { yaml, objects })
}

async fn render(namespace: &str, extra: &[&str]) -> Rendered {
    try_render(namespace, extra)
        .await
        .unwrap_or_else(|error| panic!("helm template {extra:?} failed:\n{error}"))
}

static SCHEMAS: OnceCell<PathBuf> = OnceCell::const_new();

async fn schema_dir() -> &'static Path {
    SCHEMAS
        .get_or_init(|| async {
            let cluster = support::cluster().await;
            schemas::generate(&cluster.kubeconfig, &tools::require("kubectl")).await
        })
        .await
}

/// kubeconform's summary of one run.
#[derive(Debug, serde::Deserialize)]
struct Summary {
    valid: usize,
    invalid: usize,
    errors: usize,
    skipped: usize,
}

/// Validates `yaml` with kubeconform in strict mode against the generated schemas.
async fn kubeconform(yaml: &str, skip: &[&str]) -> (Summary, String) {
    let location = schema_dir().await.join(schemas::LOCATION);
    let location = location.to_str().expect("UTF-8 path");
    let skip = skip.join(",");
    let mut args = vec![
        "-strict",
        "-summary",
        "-output",
        "json",
        "-schema-location",
        location,
    ];
    if !skip.is_empty() {
        args.extend(["-skip", &skip]);
    }
    let output = run(&tools::require("kubeconform"), &args, &[], yaml).await;
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "kubeconform printed no JSON report ({error}): {}{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    let summary = serde_json::from_value(report["summary"].clone()).expect("kubeconform summary");
    (summary, report.to_string())
}

async fn assert_kubeconform_valid(rendered: &Rendered, skip: &[&str]) {
    let (summary, report) = kubeconform(&rendered.yaml, skip).await;
    let skipped = rendered
        .objects
        .iter()
        .filter(|object| skip.contains(&object["kind"].as_str().unwrap_or_default()))
        .count();
    assert_eq!(
        (summary.invalid, summary.errors, summary.skipped),
        (0, 0, skipped),
        "kubeconform: {report}"
    );
    assert_eq!(
        summary.valid,
        rendered.objects.len() - skipped,
        "kubeconform: {report}"
    );
}

/// `kubectl apply --server-side --dry-run=server` of `yaml`; returns kubectl's stderr.
async fn assert_server_accepts(yaml: &str) -> String {
    let cluster = support::cluster().await;
    let output = run(
        &tools::require("kubectl"),
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=chart-tests",
            "--dry-run=server",
            "-f",
            "-",
        ],
        &[("KUBECONFIG", &cluster.kubeconfig)],
        yaml,
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "the apiserver rejected the render:\n{stderr}\n{}",
        text(&output.stdout)
    );
    stderr
}

/// Creates a namespace whose Pods and Pod templates are checked against the restricted Pod
/// Security profile, with a warning for each violation.
async fn restricted_namespace(prefix: &str) -> String {
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let namespace = support::namespace(prefix).await;
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/warn": "restricted"}}});
    Api::<Namespace>::all(namespace.client.clone())
        .patch(
            &namespace.name,
            &PatchParams::default(),
            &Patch::Merge(&label),
        )
        .await
        .expect("label the namespace");
    namespace.name
}

const POD_SECURITY_WARNING: &str = "would violate PodSecurity";

#[test]
fn chart_crds_are_the_top_level_crds() {
    let read = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
            .map(|entry| {
                let path = entry.expect("directory entry").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).expect("read a CRD file"))
            })
            .collect();
        files.sort();
        files
    };
    let top = read(&repo().join("crds"));
    assert!(!top.is_empty(), "crds/ holds the CRDs");
    assert!(
        read(&chart_dir().join("crds")) == top,
        "charts/caller-reputation-operator/crds/ differs from crds/: copy crds/* into it"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("read Chart.yaml");
    let chart: Value = serde_saphyr::from_str(&chart).expect("Chart.yaml is YAML");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn helm_lint_passes_with_default_and_custom_values() {
    let chart = chart_dir();
    let values = custom_values();
    for extra in [
        vec![],
        vec![
            "-f",
            values.to_str().unwrap(),
            "--set",
            "watchNamespaces={team-a,team-b}",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let output = run(&tools::require("helm"), &args, &[], "").await;
        assert!(
            output.status.success(),
            "helm lint {extra:?} failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

#[tokio::test]
async fn default_install_is_valid_and_restricted() {
    let namespace = restricted_namespace("chart-default").await;
    let rendered = render(&namespace, &[]).await;

    assert_kubeconform_valid(&rendered, &[]).await;
    let warnings = assert_server_accepts(&rendered.yaml).await;
    assert!(!warnings.contains(POD_SECURITY_WARNING), "{warnings}");

    // The check above only means something if the admission plugin is active here.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: plain, namespace: {namespace}}}\n\
         spec: {{containers: [{{name: c, image: example}}]}}\n"
    );
    let warnings = assert_server_accepts(&pod).await;
    assert!(warnings.contains(POD_SECURITY_WARNING), "{warnings}");
}

#[tokio::test]
async fn customised_install_is_valid_and_restricted() {
    let namespace = restricted_namespace("chart-custom").await;
    let team_a = support::namespace("chart-team-a").await.name;
    let team_b = support::namespace("chart-team-b").await.name;
    let values = custom_values();
    let watch = format!("watchNamespaces={{{team_a},{team_b}}}");
    let rendered = render(
        &namespace,
        &["-f", values.to_str().unwrap(), "--set", &watch],
    )
    .await;

    for kind in ["PodDisruptionBudget", "Ingress", "Role", "RoleBinding"] {
        assert!(
            rendered.kinds().contains(&kind),
            "{kind} rendered: {:?}",
            rendered.kinds()
        );
    }
    assert_kubeconform_valid(&rendered, &[]).await;
    let warnings = assert_server_accepts(&rendered.yaml).await;
    assert!(!warnings.contains(POD_SECURITY_WARNING), "{warnings}");
}

#[tokio::test]
async fn service_monitor_render_is_valid() {
    let rendered = render("monitoring", &["--set", "serviceMonitor.enabled=true"]).await;

    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        rendered.one("Service")["spec"]["selector"]
    );
    // No schema for the Prometheus Operator's kind is at hand; everything else is checked.
    assert_kubeconform_valid(&rendered, &["ServiceMonitor"]).await;
}

#[tokio::test]
async fn strict_validation_rejects_a_misspelt_field() {
    let rendered = render("typo", &[]).await;
    let misspelt = rendered.yaml.replace(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFileSystem: true",
    );
    assert_ne!(misspelt, rendered.yaml);

    let (summary, report) = kubeconform(&misspelt, &[]).await;
    assert_eq!(summary.invalid, 1, "{report}");
    assert!(report.contains("readOnlyRootFileSystem"), "{report}");
}

#[tokio::test]
async fn values_schema_rejects_a_wrong_type() {
    let error = try_render("default", &["--set-string", "replicas=two"])
        .await
        .err()
        .expect("replicas: \"two\" is rejected");
    assert!(error.contains("/replicas"), "{error}");
    assert!(error.contains("want integer"), "{error}");
}

#[tokio::test]
async fn values_schema_rejects_an_unknown_top_level_key() {
    let error = try_render("default", &["--set", "replica=2"])
        .await
        .err()
        .expect("an unknown key is rejected");
    assert!(error.contains("'replica' not allowed"), "{error}");
}

#[tokio::test]
async fn deployment_is_non_root_with_chart_image() {
    let rendered = render("default", &[]).await;
    let container = rendered.container();
    let pod = &rendered.one("Deployment")["spec"]["template"]["spec"];

    assert_eq!(
        container["image"],
        format!(
            "ghcr.io/caller-reputation-operator/caller-reputation-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container["env"][0],
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    assert!(rendered.args().contains(&"--listen=0.0.0.0:8080"));
}

#[tokio::test]
async fn leader_election_and_disruption_budget_follow_replicas() {
    let lease_role = format!("{FULLNAME}-leader-election");
    let has_role = |rendered: &Rendered, name: &str| {
        rendered
            .all("Role")
            .iter()
            .any(|role| role["metadata"]["name"] == name)
    };

    let single = render("ops", &[]).await;
    assert!(!single.args().contains(&"--leader-election"));
    assert!(!single.kinds().contains(&"PodDisruptionBudget"));
    assert!(!has_role(&single, &lease_role));

    let pair = render("ops", &["--set", "replicas=2"]).await;
    let args = pair.args();
    assert!(args.contains(&"--leader-election"), "{args:?}");
    assert!(
        args.contains(&"--leader-election-namespace=ops"),
        "{args:?}"
    );
    assert!(args.contains(&format!("--leader-election-lease-name={FULLNAME}").as_str()));
    assert_eq!(pair.one("PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
    assert!(has_role(&pair, &lease_role));

    let forced_off = render(
        "ops",
        &[
            "--set",
            "replicas=2",
            "--set",
            "leaderElection.enabled=false",
        ],
    )
    .await;
    assert!(!forced_off.args().contains(&"--leader-election"));
    let forced_on = render("ops", &["--set", "leaderElection.enabled=true"]).await;
    assert!(forced_on.args().contains(&"--leader-election"));
    assert!(has_role(&forced_on, &lease_role));
}

#[tokio::test]
async fn default_credentials_name_the_secret() {
    let none = render("ops", &[]).await;
    assert!(
        !none
            .args()
            .iter()
            .any(|arg| arg.starts_with("--default-credentials-secret"))
    );
    assert!(!none.kinds().contains(&"Secret"));

    let existing = render("ops", &["--set", "credentials.existingSecret=plivo"]).await;
    assert!(
        existing
            .args()
            .contains(&"--default-credentials-secret=ops/plivo")
    );
    assert!(!existing.kinds().contains(&"Secret"));

    let created = render(
        "ops",
        &[
            "--set",
            "credentials.authId=MAID",
            "--set",
            "credentials.authToken=token-1",
        ],
    )
    .await;
    let secret = created.one("Secret");
    let name = format!("{FULLNAME}-credentials");
    assert_eq!(secret["metadata"]["name"], name.as_str());
    assert_eq!(
        secret["data"],
        json!({"authId": "TUFJRA==", "authToken": "dG9rZW4tMQ=="})
    );
    assert!(
        created
            .args()
            .contains(&format!("--default-credentials-secret=ops/{name}").as_str())
    );

    let half = try_render("ops", &["--set", "credentials.authToken=token-1"]).await;
    let error = half
        .err()
        .expect("an Auth Token without Auth ID is rejected");
    assert!(error.contains("credentials.authId is required"), "{error}");
}

#[tokio::test]
async fn notes_never_show_the_auth_token() {
    let cluster = support::cluster().await;
    let chart = chart_dir();
    let output = run(
        &tools::require("helm"),
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            "ops",
            "--dry-run=client",
            "--set",
            "credentials.authId=MAID",
            "--set",
            "credentials.authToken=notes-secret-token",
        ],
        &[("KUBECONFIG", &cluster.kubeconfig)],
        "",
    )
    .await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let notes = stdout.split_once("NOTES:").expect("helm prints NOTES").1;
    assert!(
        notes.contains("rollout status deployment/cro-caller-reputation-operator"),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("ops/{FULLNAME}-credentials")),
        "{notes}"
    );
    assert!(!notes.contains("notes-secret-token"), "{notes}");
    assert!(!notes.contains("bm90ZXMtc2VjcmV0LXRva2Vu"), "{notes}");
}

#[tokio::test]
async fn watch_namespaces_replace_the_cluster_role_with_roles() {
    let cluster_wide = render("ops", &[]).await;
    assert_eq!(cluster_wide.all("ClusterRole").len(), 1);
    assert!(
        !cluster_wide
            .args()
            .iter()
            .any(|arg| arg.starts_with("--namespaces"))
    );

    let scoped = render(
        "ops",
        &[
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "credentials.existingSecret=plivo",
        ],
    )
    .await;
    assert!(scoped.all("ClusterRole").is_empty());
    assert!(scoped.all("ClusterRoleBinding").is_empty());
    assert!(scoped.args().contains(&"--namespaces=team-a,team-b"));
    let rules_of = |namespace: &str| {
        scoped
            .all("Role")
            .into_iter()
            .find(|role| {
                role["metadata"]["namespace"] == namespace && role["metadata"]["name"] == FULLNAME
            })
            .unwrap_or_else(|| panic!("a Role in {namespace}"))["rules"]
            .clone()
    };
    let cluster_rules = cluster_wide.one("ClusterRole")["rules"].clone();
    assert_eq!(rules_of("team-a"), cluster_rules);
    assert_eq!(rules_of("team-b"), cluster_rules);
    // The default Secret lives outside the watched namespaces: readable by name, nothing more.
    let credentials = rules_of_named(&scoped, "ops", &format!("{FULLNAME}-credentials"));
    assert_eq!(
        credentials,
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["plivo"], "verbs": ["get"]}])
    );
}

fn rules_of_named(rendered: &Rendered, namespace: &str, name: &str) -> Value {
    rendered
        .all("Role")
        .into_iter()
        .find(|role| role["metadata"]["namespace"] == namespace && role["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("Role {namespace}/{name} rendered"))["rules"]
        .clone()
}

#[tokio::test]
async fn ingress_routes_only_the_callback_path() {
    let rendered = render(
        "ops",
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "ingress.host=callbacks.example.com",
            "--set",
            "ingress.tls[0].secretName=callbacks-tls",
        ],
    )
    .await;
    let rule = &rendered.one("Ingress")["spec"]["rules"][0];
    assert_eq!(rule["host"], "callbacks.example.com");
    assert_eq!(
        rule["http"]["paths"],
        json!([{
            "path": "/callbacks/caller-reputation",
            "pathType": "Exact",
            "backend": {"service": {"name": FULLNAME, "port": {"name": "http"}}}
        }])
    );
    assert!(
        rendered
            .args()
            .contains(&"--callback-base-url=https://callbacks.example.com")
    );

    let explicit = render(
        "ops",
        &[
            "--set",
            "ingress.enabled=true",
            "--set",
            "callbackBaseUrl=https://edge.example.com/plivo",
        ],
    )
    .await;
    assert!(
        explicit
            .args()
            .contains(&"--callback-base-url=https://edge.example.com/plivo")
    );
}

#[tokio::test]
async fn extra_args_and_env_reach_the_container() {
    let values = custom_values();
    let rendered = render("ops", &["-f", values.to_str().unwrap()]).await;
    let args = rendered.args();
    assert_eq!(
        args.last(),
        Some(&"--label-selector=team=voice"),
        "extra args come last: {args:?}"
    );
    assert!(args.contains(&"--log-format=text"), "{args:?}");
    assert_eq!(
        rendered.container()["env"][1],
        json!({"name": "RUST_BACKTRACE", "value": "1"})
    );
}

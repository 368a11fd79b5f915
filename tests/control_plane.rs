//! Smoke tests of the local control plane started by `hack/control-plane.sh`: the API behaviour
//! the operator's end-to-end tests rely on, and the cleanup promised by `tests/support`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const FIELD_MANAGER: &str = "control-plane-smoke-test";
const FINALIZER: &str = "smoke.caller-reputation.test/hold";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A throwaway custom resource with a status subresource, unrelated to the operator's CRDs.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "smoke.caller-reputation.test",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
struct GadgetSpec {
    size: i64,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
struct GadgetStatus {
    observed_size: i64,
}

#[tokio::test]
async fn secret_round_trips() {
    let namespace = support::namespace("smoke-secret").await;
    let secrets = Api::<Secret>::namespaced(namespace.client.clone(), &namespace.name);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("credentials".into()),
            ..ObjectMeta::default()
        },
        data: Some([("token".to_string(), ByteString(b"s3cret".to_vec()))].into()),
        ..Secret::default()
    };

    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    let stored = secrets
        .get("credentials")
        .await
        .expect("reading the Secret back");

    let token = stored.data.as_ref().and_then(|data| data.get("token"));
    assert_eq!(token, Some(&ByteString(b"s3cret".to_vec())));
}

#[tokio::test]
async fn service_account_token_authenticates() {
    let namespace = support::namespace("smoke-token").await;
    let accounts = Api::<ServiceAccount>::namespaced(namespace.client.clone(), &namespace.name);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("operator".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("creating the ServiceAccount");

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request("operator", &PostParams::default(), &request)
        .await
        .expect("requesting a ServiceAccount token");
    let token = issued
        .status
        .and_then(|status| status.token)
        .expect("the TokenRequest response has a token");

    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(namespace.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("reviewing the token");
    let status = reviewed.status.expect("TokenReview has a status");

    assert_eq!(
        status.authenticated,
        Some(true),
        "token rejected: {:?}",
        status.error
    );
    let username = status.user.and_then(|user| user.username);
    assert_eq!(
        username,
        Some(format!("system:serviceaccount:{}:operator", namespace.name))
    );
}

#[tokio::test]
async fn rbac_allows_only_bound_permissions() {
    let namespace = support::namespace("smoke-rbac").await;
    let client = namespace.client.clone();
    let user = format!("system:serviceaccount:{}:reader", namespace.name);
    assert!(
        !may_list_secrets(&client, &user, &namespace.name).await,
        "allowed before any binding"
    );

    let role = Role {
        metadata: ObjectMeta {
            name: Some("secret-reader".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            verbs: vec!["list".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), &namespace.name)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("secret-reader".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "secret-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(namespace.name.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), &namespace.name)
        .create(&PostParams::default(), &binding)
        .await
        .expect("creating the RoleBinding");

    // The RBAC authorizer reads roles from an informer cache, so a new binding takes effect
    // shortly after it is stored.
    support::eventually(
        "the RoleBinding to allow listing Secrets",
        TIMEOUT,
        || async {
            may_list_secrets(&client, &user, &namespace.name)
                .await
                .then_some(())
        },
    )
    .await;
    assert!(
        !may_list_secrets(&client, &user, "default").await,
        "the RoleBinding allowed listing Secrets outside its namespace"
    );
}

/// Asks the authorizer whether `user` may list Secrets in `namespace`.
async fn may_list_secrets(client: &kube::Client, user: &str, namespace: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                resource: Some("secrets".into()),
                verb: Some("list".into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("creating a SubjectAccessReview");
    reviewed
        .status
        .expect("SubjectAccessReview has a status")
        .allowed
}

#[tokio::test]
async fn custom_object_lifecycle_is_watched() {
    let namespace = support::namespace("smoke-crd").await;
    let client = namespace.client.clone();
    install_gadget_crd(&client).await;
    let gadgets = Api::<Gadget>::namespaced(client, &namespace.name);
    let mut events = watcher::watcher(gadgets.clone(), watcher::Config::default()).boxed();

    let gadget = Gadget::new("first", GadgetSpec { size: 3 });
    gadgets
        .create(&PostParams::default(), &gadget)
        .await
        .expect("creating the Gadget");
    next_applied(&mut events, "the created Gadget", |gadget| {
        gadget.spec.size == 3
    })
    .await;

    let status = json!({ "status": { "observed_size": 3 } });
    gadgets
        .patch_status("first", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patching the status subresource");
    let expected_status = Some(GadgetStatus { observed_size: 3 });
    next_applied(&mut events, "the Gadget with its status", |gadget| {
        gadget.status == expected_status
    })
    .await;

    // With a status subresource, the main endpoint ignores changes to status.
    let status_via_main = json!({ "status": { "observed_size": 99 } });
    let patched = gadgets
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(&status_via_main),
        )
        .await
        .expect("patching the main endpoint");
    assert_eq!(patched.status, expected_status);

    let finalizer = json!({ "metadata": { "finalizers": [FINALIZER] } });
    gadgets
        .patch("first", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("adding the finalizer");
    gadgets
        .delete("first", &DeleteParams::default())
        .await
        .expect("deleting the Gadget");
    next_applied(&mut events, "the Gadget marked for deletion", |gadget| {
        gadget.metadata.deletion_timestamp.is_some()
    })
    .await;
    let deleting = gadgets
        .get("first")
        .await
        .expect("the finalizer keeps the Gadget");
    assert_eq!(deleting.finalizers(), [FINALIZER.to_string()]);

    let no_finalizers = json!({ "metadata": { "finalizers": null } });
    gadgets
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(&no_finalizers),
        )
        .await
        .expect("removing the finalizer");
    next_deleted(&mut events, "the Gadget's deletion", "first").await;
    let remaining = gadgets
        .get_opt("first")
        .await
        .expect("reading the deleted Gadget");
    assert!(
        remaining.is_none(),
        "the Gadget still exists after its finalizer was removed"
    );
}

#[tokio::test]
async fn repository_crds_become_established() {
    let client = support::client().await;
    support::install_crds(&client).await;

    let crds = Api::<CustomResourceDefinition>::all(client);
    for name in support::crd_names() {
        let crd = crds.get(&name).await.expect("reading an installed CRD");
        let conditions = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default();
        let established = conditions
            .iter()
            .any(|condition| condition.type_ == "Established" && condition.status == "True");
        assert!(
            established,
            "CRD {name} is not Established after install_crds"
        );
    }
}

async fn install_gadget_crd(client: &kube::Client) {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = Gadget::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("applying the Gadget CRD");
    support::wait_until_established(&crds, &name).await;
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event<Gadget>, watcher::Error>> + Send>>;

/// Reads watch events until one applies a Gadget matching `accept`.
async fn next_applied(events: &mut Events, what: &str, accept: impl Fn(&Gadget) -> bool) {
    next_event(events, what, |event| match event {
        Event::Apply(gadget) | Event::InitApply(gadget) => accept(gadget),
        _ => false,
    })
    .await;
}

/// Reads watch events until one deletes the Gadget `name`.
async fn next_deleted(events: &mut Events, what: &str, name: &str) {
    next_event(
        events,
        what,
        |event| matches!(event, Event::Delete(gadget) if gadget.name_any() == name),
    )
    .await;
}

async fn next_event(events: &mut Events, what: &str, accept: impl Fn(&Event<Gadget>) -> bool) {
    let wait = async {
        while let Some(event) = events.next().await {
            let event = event
                .unwrap_or_else(|error| panic!("watch failed while waiting for {what}: {error}"));
            if accept(&event) {
                return;
            }
        }
        panic!("watch ended while waiting for {what}");
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no watch event for {what} within {TIMEOUT:?}"));
}

// The cleanup tests run this test binary again, filtered to one of the probes below, and check
// that the control plane the probe started is gone after the probe process ends.

/// Environment variable that makes the probes run; without it they return at once.
const PROBE_VARIABLE: &str = "CONTROL_PLANE_CLEANUP_PROBE";
/// Line prefix with which a probe reports its control plane directory.
const PROBE_DIR_PREFIX: &str = "control plane dir: ";

#[tokio::test]
#[ignore = "probe run by panicking_test_leaves_no_process_behind"]
async fn probe_panics_with_running_control_plane() {
    if std::env::var_os(PROBE_VARIABLE).is_none() {
        return;
    }
    report_probe_dir().await;
    panic!("this probe panics on purpose");
}

#[tokio::test]
#[ignore = "probe run by killed_test_leaves_no_process_behind"]
async fn probe_waits_to_be_killed() {
    if std::env::var_os(PROBE_VARIABLE).is_none() {
        return;
    }
    report_probe_dir().await;
    std::future::pending::<()>().await;
}

async fn report_probe_dir() {
    let dir = support::cluster()
        .await
        .dir
        .as_ref()
        .expect("the probe starts its own control plane");
    println!("{PROBE_DIR_PREFIX}{}", dir.display());
}

#[tokio::test]
async fn panicking_test_leaves_no_process_behind() {
    let mut probe = spawn_probe("probe_panics_with_running_control_plane");
    let dir = read_probe_dir(&mut probe).await;

    let status = probe.wait().await.expect("waiting for the probe");
    assert!(!status.success(), "the probe was expected to panic");
    assert_control_plane_cleaned_up(&dir).await;
}

#[tokio::test]
async fn killed_test_leaves_no_process_behind() {
    let mut probe = spawn_probe("probe_waits_to_be_killed");
    let dir = read_probe_dir(&mut probe).await;

    probe.start_kill().expect("sending SIGKILL to the probe");
    probe.wait().await.expect("waiting for the probe");
    assert_control_plane_cleaned_up(&dir).await;
}

fn spawn_probe(test: &str) -> tokio::process::Child {
    let executable = std::env::current_exe().expect("locating the test binary");
    tokio::process::Command::new(executable)
        .args([test, "--exact", "--ignored", "--nocapture"])
        .env(PROBE_VARIABLE, "1")
        // The probe must start its own control plane, and cleanup is what is being tested.
        .env_remove("USE_EXISTING_CLUSTER")
        .env_remove("KEEP_TEST_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning the probe")
}

async fn read_probe_dir(probe: &mut tokio::process::Child) -> PathBuf {
    let stdout = probe.stdout.take().expect("the probe's stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("reading the probe's output") {
            if let Some(dir) = line.strip_prefix(PROBE_DIR_PREFIX) {
                return PathBuf::from(dir);
            }
        }
        panic!("the probe exited without reporting its control plane directory");
    };
    // Starting a control plane takes seconds once `hack/control-plane.sh build` has run, as
    // `make test` does first. A cold build inside the probe would take minutes and fail here.
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the probe did not report its control plane directory within 120s")
}

async fn assert_control_plane_cleaned_up(dir: &Path) {
    support::eventually(
        "the probe's control plane to stop and its directory to go",
        TIMEOUT,
        || async {
            let cleaned_up = processes_mentioning(dir).is_empty() && !dir.exists();
            cleaned_up.then_some(())
        },
    )
    .await;
}

/// Command lines of the running processes whose arguments mention `dir`.
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|byte| byte.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

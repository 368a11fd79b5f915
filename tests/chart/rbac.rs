//! Runs the real controllers with the permissions of the chart's ClusterRole, as the operator's
//! ServiceAccount, through the life of a BusinessProfile and a number: that ClusterRole must be
//! enough. Then, once per rule, with that rule removed: the part of the lifecycle the rule
//! serves must not complete, so no rule grants more than the controllers need.
//!
//! Each run gets its own namespace, ServiceAccount, ClusterRole, binding and Plivo sandbox, and
//! all runs go at once, so the whole test takes about one [`MISSING_RULE_BUDGET`].

use std::fmt;
use std::time::{Duration, Instant};

use caller_reputation_operator::api::conditions::{ConditionType, find_condition};
use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

use crate::harness::{self, Harness};
use crate::support::{self, TestNamespace};

const NUMBER: &str = "+14155550101";
const NUMBER_DIGITS: &str = "14155550101";
const CREDENTIALS: &str = "team-credentials";
const SERVICE_ACCOUNT: &str = "operator";
const SECRET_FINALIZER: &str = "callerreputation.io/credentials-in-use";

/// How long a run with all rules may take for each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a run with a rule missing gets for the whole lifecycle; the step the rule serves
/// must not complete within it.
const MISSING_RULE_BUDGET: Duration = Duration::from_secs(20);

/// The parts of the lifecycle, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    ProfileReady,
    NumberPending,
    SecretInUse,
    EventsRecorded,
    NumberDeregistered,
    ProfileDeletedAndSecretReleased,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ProfileReady => "the BusinessProfile becomes Ready",
            Self::NumberPending => "the number's registration is Pending",
            Self::SecretInUse => "the credentials Secret carries the in-use finalizer",
            Self::EventsRecorded => "Events about the BusinessProfile are recorded",
            Self::NumberDeregistered => "the deleted number is gone and de-registered at Plivo",
            Self::ProfileDeletedAndSecretReleased => {
                "the deleted BusinessProfile is gone and the Secret released"
            }
        })
    }
}

/// The step that cannot complete without `rule`: what the rule is in the ClusterRole for.
///
/// # Panics
/// On a rule this test does not know, so a rule added to the chart needs an entry here.
fn step_needing(rule: &PolicyRule) -> Step {
    let resources = rule.resources.clone().unwrap_or_default();
    let has = |name: &str| resources.iter().any(|resource| resource == name);
    if has("events") {
        Step::EventsRecorded
    } else if has("businessprofiles") || has("businessprofiles/status") || has("secrets") {
        // Without watches, status writes or credentials, nothing gets as far as Ready.
        Step::ProfileReady
    } else {
        panic!("no lifecycle step is known to need rule {rule:?}; add it to step_needing")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_role_is_sufficient_and_minimal() {
    let cluster = support::cluster().await;
    support::install_crds(&cluster.client()).await;
    let rendered = crate::render("rbac", &[]).await;
    let role: ClusterRole = serde_json::from_value(rendered.one("ClusterRole").clone())
        .expect("the rendered ClusterRole parses");
    let rules = role.rules.clone().unwrap_or_default();
    assert!(!rules.is_empty());

    let mut runs = vec![run_lifecycle(rules.clone(), None)];
    for index in 0..rules.len() {
        let mut kept = rules.clone();
        let removed = kept.remove(index);
        runs.push(run_lifecycle(kept, Some(removed)));
    }
    let results = join_all(runs).await;

    let (full, _) = &results[0];
    assert_eq!(
        full, &None,
        "with the chart's ClusterRole, this step did not complete: {full:?}"
    );
    for (stuck, removed) in &results[1..] {
        let removed = removed.as_ref().expect("a removed rule");
        let expected = step_needing(removed);
        assert_eq!(
            *stuck,
            Some(expected),
            "without rule {removed:?} the lifecycle should stop at \"{expected}\", \
             but stopped at {stuck:?}"
        );
    }
}

/// Runs the lifecycle with `rules`; returns the first step that did not complete (`None` when
/// all did) and the rule that was removed.
async fn run_lifecycle(
    rules: Vec<PolicyRule>,
    removed: Option<PolicyRule>,
) -> (Option<Step>, Option<PolicyRule>) {
    let namespace = support::namespace("rbac").await;
    let admin = namespace.client.clone();
    let operator_client = service_account_client(&namespace, rules).await;
    let operator_namespace = TestNamespace {
        name: namespace.name.clone(),
        client: operator_client,
    };
    let mut h = Harness::start(
        &operator_namespace,
        vec![harness::seed(NUMBER, "local")],
        |_| {},
    )
    .await;
    // The operator keeps the ServiceAccount's client; the test acts as the administrator.
    h.client = admin;

    let deadline = removed
        .as_ref()
        .map(|_| Instant::now() + MISSING_RULE_BUDGET);
    let stuck = lifecycle(&h, deadline).await;
    h.stop().await;
    (stuck, removed)
}

/// Creates a ServiceAccount bound to a ClusterRole of `rules` and a client that
/// authenticates with a token of it.
async fn service_account_client(namespace: &TestNamespace, rules: Vec<PolicyRule>) -> Client {
    let admin = &namespace.client;
    let name = format!("rbac-test-{}", namespace.name);
    let service_account = ServiceAccount {
        metadata: meta(SERVICE_ACCOUNT),
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace.name)
        .create(&PostParams::default(), &service_account)
        .await
        .expect("create the ServiceAccount");
    let role = ClusterRole {
        metadata: meta(&name),
        rules: Some(rules.clone()),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create the ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: meta(&name),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SERVICE_ACCOUNT.into(),
            namespace: Some(namespace.name.clone()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the ClusterRoleBinding");
    wait_until_bound(admin, &namespace.name, &rules[0]).await;

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), &namespace.name)
        .create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("request a ServiceAccount token")
        .status
        .expect("the TokenRequest has a status")
        .token
        .expect("the TokenRequest carries a token");

    let cluster = support::cluster().await;
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("read the kubeconfig");
    let admin_config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load the kubeconfig");
    let mut config = Config::new(admin_config.cluster_url.clone());
    config.root_cert = admin_config.root_cert.clone();
    config.default_namespace = namespace.name.clone();
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("a client with the ServiceAccount token")
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

/// Waits until the authorizer allows the ServiceAccount the first verb of `rule`, which
/// means its cache contains the new ClusterRole and binding.
async fn wait_until_bound(admin: &Client, namespace: &str, rule: &PolicyRule) {
    let user = format!("system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}");
    let (group, resource) = (
        rule.api_groups.clone().unwrap_or_default().first().cloned(),
        rule.resources.clone().unwrap_or_default().first().cloned(),
    );
    let (resource, subresource) = match resource.as_deref().and_then(|r| r.split_once('/')) {
        Some((resource, subresource)) => {
            (Some(resource.to_string()), Some(subresource.to_string()))
        }
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                group,
                resource,
                subresource,
                verb: rule.verbs.first().cloned(),
                name: rule
                    .resource_names
                    .clone()
                    .unwrap_or_default()
                    .first()
                    .cloned(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api = Api::<SubjectAccessReview>::all(admin.clone());
    support::eventually(
        &format!("the binding of {user} to take effect"),
        Duration::from_secs(10),
        || async {
            let answer = api.create(&PostParams::default(), &review).await.ok()?;
            answer
                .status
                .is_some_and(|status| status.allowed)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn lease_role_allows_leader_election_calls() {
    let rendered = crate::render("rbac", &["--set", "replicas=2"]).await;
    let lease_role = format!("{}-leader-election", crate::FULLNAME);
    let role = rendered
        .all("Role")
        .into_iter()
        .find(|role| role["metadata"]["name"] == lease_role.as_str())
        .expect("the Lease Role is rendered");
    let role: k8s_openapi::api::rbac::v1::Role =
        serde_json::from_value(role.clone()).expect("the rendered Role parses");
    let namespace = support::namespace("lease").await;
    let client = service_account_client(&namespace, role.rules.unwrap_or_default()).await;
    let leases = Api::<Lease>::namespaced(client, &namespace.name);
    let name = crate::FULLNAME;

    // The calls of kube-lease-manager 0.13 (create, get, patch) and of the standby's watch.
    let lease = Lease {
        metadata: meta(name),
        ..Lease::default()
    };
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create the Lease");
    leases.get(name).await.expect("get the Lease");
    let holder = json!({"spec": {"holderIdentity": "replica-1"}});
    leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&holder))
        .await
        .expect("patch the Lease");
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    leases.list(&by_name).await.expect("list the Lease by name");
    let watch = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut events = leases
        .watch(&watch, "0")
        .await
        .expect("watch the Lease by name")
        .boxed();
    let first = events.next().await.expect("a watch event");
    assert!(first.is_ok(), "watch event: {first:?}");

    // Nothing beyond the one Lease.
    assert!(
        forbidden(leases.get("another-lease").await),
        "get another Lease"
    );
    assert!(
        forbidden(leases.list(&ListParams::default()).await),
        "list every Lease"
    );
    assert!(
        forbidden(leases.delete(name, &Default::default()).await),
        "delete the Lease"
    );
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

/// Walks through the lifecycle and returns the first step that did not complete.
async fn lifecycle(h: &Harness, deadline: Option<Instant>) -> Option<Step> {
    harness::create_credentials_secret(&h.client, &h.namespace, CREDENTIALS).await;
    let mut profile = harness::profile_manifest("acme", "12-3456789");
    profile["spec"]["credentialsSecretRef"] = json!({"name": CREDENTIALS});
    h.apply_profile(profile).await;
    let mut number = harness::number_manifest("support-line", NUMBER, "acme");
    number["spec"]["credentialsSecretRef"] = json!({"name": CREDENTIALS});
    h.apply_number(number).await;

    let steps = [
        Step::ProfileReady,
        Step::NumberPending,
        Step::SecretInUse,
        Step::EventsRecorded,
        Step::NumberDeregistered,
        Step::ProfileDeletedAndSecretReleased,
    ];
    for step in steps {
        if step == Step::NumberDeregistered {
            h.delete_number("support-line").await;
        }
        if step == Step::ProfileDeletedAndSecretReleased {
            h.delete_profile("acme").await;
        }
        let timeout = match deadline {
            None => STEP_TIMEOUT,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        if !completes(h, step, timeout).await {
            return Some(step);
        }
    }
    None
}

/// Polls until `step` is observed, for at most `timeout`.
async fn completes(h: &Harness, step: Step, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if observed(h, step).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn observed(h: &Harness, step: Step) -> bool {
    let secrets = Api::<Secret>::namespaced(h.client.clone(), &h.namespace);
    let secret_in_use = || async {
        secrets
            .get_opt(CREDENTIALS)
            .await
            .ok()
            .flatten()
            .is_some_and(|secret| {
                secret
                    .metadata
                    .finalizers
                    .unwrap_or_default()
                    .iter()
                    .any(|f| f == SECRET_FINALIZER)
            })
    };
    match step {
        Step::ProfileReady => h
            .profiles()
            .get_opt("acme")
            .await
            .ok()
            .flatten()
            .is_some_and(|p| {
                p.status.is_some_and(|s| {
                    find_condition(&s.conditions, ConditionType::Ready)
                        .is_some_and(|c| c.status == "True")
                })
            }),
        Step::NumberPending => h
            .numbers()
            .get_opt("support-line")
            .await
            .ok()
            .flatten()
            .is_some_and(|n| {
                n.status.is_some_and(|s| {
                    find_condition(&s.conditions, ConditionType::Ready)
                        .is_some_and(|c| c.reason == "Pending")
                })
            }),
        Step::SecretInUse => secret_in_use().await,
        Step::EventsRecorded => Api::<Event>::namespaced(h.client.clone(), &h.namespace)
            .list(&Default::default())
            .await
            .is_ok_and(|events| {
                events.items.iter().any(|event| {
                    event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme")
                        && event.reporting_controller.as_deref()
                            == Some("caller-reputation-operator")
                })
            }),
        Step::NumberDeregistered => {
            h.numbers()
                .get_opt("support-line")
                .await
                .is_ok_and(|n| n.is_none())
                && h.sandbox_number(NUMBER_DIGITS) == (None, None)
        }
        Step::ProfileDeletedAndSecretReleased => {
            h.profiles()
                .get_opt("acme")
                .await
                .is_ok_and(|p| p.is_none())
                && !secret_in_use().await
        }
    }
}

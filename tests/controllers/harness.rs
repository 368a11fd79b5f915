//! An operator under test: the real controllers in-process, watching one test
//! namespace, talking to an in-process Plivo sandbox.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use caller_reputation_operator::{
    api::{
        BusinessProfile, CallerReputationNumber,
        conditions::{ConditionType, find_condition},
    },
    controller::{
        self, CallbackHub, ControllerMetrics, SecretReference, Settings, WatchNamespaces,
    },
    plivo::{self, ClientConfig, PlivoClient},
    sandbox::{FaultConfig, RequestRecord, RunningSandbox, Sandbox, SandboxConfig, SeedNumber},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::support::{self, TestNamespace};

pub const AUTH_ID: &str = "MATESTACCOUNT0000001";
pub const AUTH_TOKEN: &str = "sandbox-token-e2e-4f1c9a";
pub const SECRET: &str = "plivo-credentials";
pub const WAIT: Duration = Duration::from_secs(60);
/// Fraction (0 to 1) of sandbox requests answered 503, for a run of the suite under faults.
pub const FAULT_RATIO_VARIABLE: &str = "CRO_E2E_FAULT_RATIO";

/// Counts reconciles per kind, so a test can wait for reconciles that change nothing.
#[derive(Default)]
pub struct CountingMetrics {
    reconciles: Mutex<BTreeMap<&'static str, u64>>,
    pub numbers_reports: AtomicU64,
}

impl CountingMetrics {
    pub fn reconciles(&self, kind: &'static str) -> u64 {
        *self.reconciles.lock().unwrap().get(kind).unwrap_or(&0)
    }
}

impl ControllerMetrics for CountingMetrics {
    fn reconcile_finished(&self, kind: &'static str, _result: &'static str, _elapsed: Duration) {
        *self.reconciles.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn set_numbers_by_status(&self, _counts: &[(String, i64)]) {
        self.numbers_reports.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running operator and its sandbox, for one test namespace.
pub struct Harness {
    pub namespace: String,
    pub client: Client,
    pub sandbox: RunningSandbox,
    pub metrics: Arc<CountingMetrics>,
    pub settings: Settings,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    http: reqwest::Client,
}

/// Builds a rented number the sandbox starts with.
pub fn seed(number: &str, number_type: &str) -> SeedNumber {
    serde_json::from_value(json!({
        "account": AUTH_ID,
        "number": number,
        "type": number_type,
        "country": "US",
    }))
    .expect("seed number")
}

impl Harness {
    /// Starts a sandbox with `numbers` and the operator on `namespace`; `adjust` tunes the sandbox.
    pub async fn start(
        namespace: &TestNamespace,
        numbers: Vec<SeedNumber>,
        adjust: impl FnOnce(&mut SandboxConfig),
    ) -> Self {
        let mut config = SandboxConfig {
            accounts: vec![(AUTH_ID.into(), AUTH_TOKEN.into())],
            numbers,
            // Carriers decide only when a test forces it, unless the test sets a delay.
            activation_delay: Duration::from_secs(3600),
            ..SandboxConfig::default()
        };
        // `make test` runs this suite a second time with a share of requests
        // failing, to show that every scenario still converges.
        if let Some(ratio) = std::env::var(FAULT_RATIO_VARIABLE)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            config.faults = FaultConfig {
                error_ratio: ratio,
                error_status: Some(503),
                ..FaultConfig::default()
            };
        }
        adjust(&mut config);
        let sandbox = Sandbox::start(config).await.expect("start the sandbox");
        let settings = Settings {
            namespaces: WatchNamespaces::List(vec![namespace.name.clone()]),
            label_selector: None,
            default_credentials: Some(SecretReference {
                namespace: namespace.name.clone(),
                name: SECRET.into(),
            }),
            resync_period: Duration::from_secs(3600),
            pending_recheck_min: Duration::from_millis(500),
            pending_recheck_max: Duration::from_secs(2),
            concurrency: 4,
            callback_base_url: None,
        };
        let mut harness = Self {
            namespace: namespace.name.clone(),
            client: namespace.client.clone(),
            sandbox,
            metrics: Arc::default(),
            settings,
            running: None,
            http: reqwest::Client::new(),
        };
        harness.start_operator();
        harness
    }

    /// Starts the controllers (again), with the current settings.
    pub fn start_operator(&mut self) {
        let plivo = PlivoClient::new(ClientConfig {
            base_url: self.sandbox.base_url(),
            ..ClientConfig::default()
        })
        .expect("Plivo client");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            self.client.clone(),
            plivo,
            self.settings.clone(),
            self.metrics.clone(),
            Arc::new(CallbackHub::default()),
            async move {
                let _ = stopped.await;
            },
        ));
        self.running = Some((stop, task));
    }

    /// Kills the controllers at once, as a crash would: no graceful shutdown.
    pub async fn kill_operator(&mut self) {
        if let Some((_stop, task)) = self.running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Creates the default credentials Secret.
    pub async fn create_secret(&self) {
        create_credentials_secret(&self.client, &self.namespace, SECRET).await;
    }

    pub fn profiles(&self) -> Api<BusinessProfile> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn numbers(&self) -> Api<CallerReputationNumber> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies a manifest given as JSON.
    pub async fn apply_profile(&self, manifest: Value) -> BusinessProfile {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        self.profiles()
            .patch(
                &name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("apply BusinessProfile")
    }

    pub async fn apply_number(&self, manifest: Value) -> CallerReputationNumber {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        self.numbers()
            .patch(
                &name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("apply CallerReputationNumber")
    }

    /// Waits until the BusinessProfile's Ready condition has `reason`, and returns the object.
    pub async fn profile_reason(&self, name: &str, reason: &str) -> BusinessProfile {
        let api = self.profiles();
        support::eventually(
            &format!("BusinessProfile {name} with Ready reason {reason}"),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let profile = api.get_opt(name).await.ok().flatten()?;
                    let status = profile.status.as_ref()?;
                    let ready = find_condition(&status.conditions, ConditionType::Ready)?;
                    (ready.reason == reason).then_some(profile)
                }
            },
        )
        .await
    }

    /// Waits until the number's Ready condition has `reason`, and returns the object.
    pub async fn number_reason(&self, name: &str, reason: &str) -> CallerReputationNumber {
        let api = self.numbers();
        support::eventually(
            &format!("CallerReputationNumber {name} with Ready reason {reason}"),
            WAIT,
            || {
                let api = api.clone();
                async move {
                    let number = api.get_opt(name).await.ok().flatten()?;
                    let status = number.status.as_ref()?;
                    let ready = find_condition(&status.conditions, ConditionType::Ready)?;
                    (ready.reason == reason).then_some(number)
                }
            },
        )
        .await
    }

    /// Waits until the object is gone from the apiserver.
    pub async fn gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        support::eventually(&format!("{name} deleted"), WAIT, || async {
            api.get_opt(name)
                .await
                .ok()
                .and_then(|found| found.is_none().then_some(()))
        })
        .await
    }

    pub async fn delete_number(&self, name: &str) {
        self.numbers()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete number");
    }

    pub async fn delete_profile(&self, name: &str) {
        self.profiles()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete profile");
    }

    /// Forces the carriers' decision for a number at the sandbox.
    pub async fn decide(&self, number_digits: &str, status: &str) {
        let url = self
            .sandbox
            .base_url()
            .join(&format!("_sandbox/numbers/{number_digits}/decision"))
            .unwrap();
        let response = self
            .http
            .post(url)
            .json(&json!({"status": status}))
            .send()
            .await
            .expect("force decision");
        assert!(
            response.status().is_success(),
            "force decision: {}",
            response.status()
        );
    }

    /// Calls an admin endpoint of the sandbox with POST or DELETE.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let url = self
            .sandbox
            .base_url()
            .join(path.trim_start_matches('/'))
            .unwrap();
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sandbox admin call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    /// Requests the sandbox received whose endpoint template matches `method` and `suffix`.
    pub fn requests_to(&self, method: &str, suffix: &str) -> usize {
        self.processed_requests()
            .iter()
            .filter(|r| r.method == method && r.endpoint.ends_with(suffix))
            .count()
    }

    /// Requests that reached the sandbox's API logic: injected errors and
    /// dropped connections are left out, because they changed nothing.
    pub fn processed_requests(&self) -> Vec<RequestRecord> {
        self.sandbox
            .requests()
            .into_iter()
            .filter(|r| !matches!(r.fault, Some("error" | "drop" | "rate_limited")))
            .collect()
    }

    /// Requests the sandbox received whose path mentions `needle` (a number or a UUID).
    pub fn requests_mentioning(&self, needle: &str) -> usize {
        self.processed_requests()
            .iter()
            .filter(|r| r.path.contains(needle))
            .count()
    }

    /// Caller reputation status and profile of a number at the sandbox.
    pub fn sandbox_number(&self, number_digits: &str) -> (Option<String>, Option<String>) {
        let state = self.sandbox.state();
        let number = state
            .numbers
            .get(number_digits)
            .expect("number rented at the sandbox");
        (
            number.status.map(|s| s.as_str().to_string()),
            number.profile_uuid.clone(),
        )
    }

    /// Waits until the controllers have finished `count` more reconciles of `kind`.
    pub async fn reconciles_after(&self, kind: &'static str, before: u64, count: u64) {
        let metrics = self.metrics.clone();
        support::eventually(&format!("{count} more {kind} reconciles"), WAIT, || {
            let metrics = metrics.clone();
            async move { (metrics.reconciles(kind) >= before + count).then_some(()) }
        })
        .await
    }

    /// Creates a profile at the sandbox as someone outside the operator would,
    /// through the admin endpoint, which the sandbox's rate limit does not count.
    pub async fn create_sandbox_profile(&self, ein: &str, alias: &str) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let request = build_create_profile(ein, alias);
        let fields = serde_json::to_value(&request).expect("profile fields");
        self.admin(
            reqwest::Method::POST,
            "/_sandbox/profiles",
            Some(json!({"account": AUTH_ID, "profile_uuid": uuid, "fields": fields})),
        )
        .await;
        uuid
    }

    pub async fn stop(mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.sandbox.shutdown().await;
    }
}

fn build_create_profile(ein: &str, alias: &str) -> plivo::CreateProfile {
    plivo::CreateProfile {
        profile_alias: alias.into(),
        customer_type: "DIRECT".into(),
        entity_type: "PRIVATE".into(),
        company_name: "Outside Corp".into(),
        vertical: "TECHNOLOGY".into(),
        ein: Some(ein.into()),
        website: Some("https://outside.example".into()),
        address: plivo::Address {
            street: "2 Side St".into(),
            city: "Austin".into(),
            state: "TX".into(),
            postal_code: "78701".into(),
            country: "US".into(),
        },
        authorized_contact: plivo::AuthorizedContact {
            first_name: "Bo".into(),
            last_name: "Ray".into(),
            email: "bo@outside.example".into(),
            title: "Mr".into(),
            seniority: "CEO".into(),
            phone: "+15125550111".into(),
        },
        ..plivo::CreateProfile::default()
    }
}

pub async fn create_credentials_secret(client: &Client, namespace: &str, name: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"authId": AUTH_ID, "authToken": AUTH_TOKEN},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create credentials Secret");
}

/// Builds a complete BusinessProfile manifest.
pub fn profile_manifest(name: &str, ein: &str) -> Value {
    json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "BusinessProfile",
        "metadata": {"name": name},
        "spec": {
            "customerType": "DIRECT",
            "entityType": "PRIVATE",
            "companyName": "Acme Corp",
            "vertical": "TECHNOLOGY",
            "ein": ein,
            "website": "https://acme.example",
            "address": {"street": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"},
            "authorizedContact": {"firstName": "Ann", "lastName": "Lee", "email": "ann@acme.example", "phone": "+15125550100", "title": "Ms"}
        }
    })
}

/// Builds a CallerReputationNumber manifest that references a BusinessProfile.
pub fn number_manifest(name: &str, number: &str, profile: &str) -> Value {
    json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "CallerReputationNumber",
        "metadata": {"name": name},
        "spec": {"number": number, "profileRef": {"name": profile}}
    })
}

//! The objects a benchmark run creates: BusinessProfiles, CallerReputationNumbers, the numbers the
//! sandbox rents, and the credentials Secret, plus the client that creates them concurrently.

use std::time::{Duration, Instant};

use caller_reputation_operator::sandbox::SeedNumber;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

/// Plivo Auth ID of the one account every benchmark number belongs to.
pub const AUTH_ID: &str = "MABENCHMARK000000001";
/// Auth Token of that account at the sandbox.
pub const AUTH_TOKEN: &str = "sandbox-token-benchmark";
/// Name of the default credentials Secret in each benchmark namespace.
pub const SECRET: &str = "plivo-credentials";

const GROUP: &str = "callerreputation.io";
const VERSION: &str = "v1alpha1";

/// The two kinds the operator reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BusinessProfile,
    CallerReputationNumber,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::BusinessProfile => "BusinessProfile",
            Self::CallerReputationNumber => "CallerReputationNumber",
        }
    }

    /// Returns the untyped API resource, so that creates and status writes carry plain JSON.
    pub fn resource(self) -> ApiResource {
        let plural = match self {
            Self::BusinessProfile => "businessprofiles",
            Self::CallerReputationNumber => "callerreputationnumbers",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, VERSION, self.name()),
            plural,
        )
    }
}

/// One object to create: its kind, name and manifest.
pub struct Manifest {
    pub kind: Kind,
    pub name: String,
    pub body: Value,
}

/// The BusinessProfiles and CallerReputationNumbers of one run.
pub struct Workload {
    pub profiles: usize,
    pub numbers: usize,
}

impl Workload {
    /// Name of profile `index`.
    fn profile_name(index: usize) -> String {
        format!("profile-{index:02}")
    }

    /// Name of the CallerReputationNumber `index`.
    pub fn number_name(index: usize) -> String {
        format!("number-{index:05}")
    }

    /// E.164 form of number `index`: San Francisco local numbers from +1 415 555 0000 upwards, so
    /// 10,000 numbers stay within +1 415 555 xxxx and larger runs move on to 556, 557 and so on.
    pub fn phone_number(index: usize) -> String {
        format!("+1415{:07}", 5_550_000 + index)
    }

    /// Numbers the sandbox account rents: every number of the workload, as US local numbers.
    pub fn seeds(&self) -> Vec<SeedNumber> {
        (0..self.numbers)
            .map(|index| {
                serde_json::from_value(json!({
                    "account": AUTH_ID,
                    "number": Self::phone_number(index),
                    "type": "local",
                    "country": "US",
                }))
                .expect("a seed number is valid JSON for SeedNumber")
            })
            .collect()
    }

    /// Profiles first, then numbers spread over the profiles round-robin.
    pub fn manifests(&self) -> Vec<Manifest> {
        let profiles = (0..self.profiles).map(|index| Manifest {
            kind: Kind::BusinessProfile,
            name: Self::profile_name(index),
            body: profile_manifest(&Self::profile_name(index), index),
        });
        let numbers = (0..self.numbers).map(|index| {
            let name = Self::number_name(index);
            let body = json!({
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "kind": "CallerReputationNumber",
                "metadata": {"name": name},
                "spec": {
                    "number": Self::phone_number(index),
                    "profileRef": {"name": Self::profile_name(index % self.profiles)},
                },
            });
            Manifest {
                kind: Kind::CallerReputationNumber,
                name,
                body,
            }
        });
        profiles.chain(numbers).collect()
    }
}

/// A complete BusinessProfile with an EIN of its own (Plivo keeps one profile per EIN).
fn profile_manifest(name: &str, index: usize) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "BusinessProfile",
        "metadata": {"name": name},
        "spec": {
            "customerType": "DIRECT",
            "entityType": "PRIVATE",
            "companyName": format!("Benchmark Company {index}"),
            "vertical": "TECHNOLOGY",
            "ein": format!("{:02}-{:07}", 10 + index % 90, 1_000_000 + index),
            "website": "https://benchmark.example",
            "address": {
                "street": "1 Market St",
                "city": "San Francisco",
                "state": "CA",
                "postalCode": "94105",
                "country": "US"
            },
            "authorizedContact": {
                "firstName": "Dana",
                "lastName": "Reyes",
                "email": "dana@benchmark.example",
                "phone": "+14155550199",
                "title": "Head of Telephony",
                "seniority": "DIRECTOR"
            }
        }
    })
}

/// Creates the default credentials Secret of the benchmark account in `namespace`.
pub async fn create_secret(client: &Client, namespace: &str) -> Result<(), kube::Error> {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "stringData": {"authId": AUTH_ID, "authToken": AUTH_TOKEN},
    }))
    .map_err(kube::Error::SerdeError)?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

fn api(client: &Client, namespace: &str, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.resource())
}

/// Creates every manifest with at most `concurrency` requests in flight and returns the time taken.
pub async fn create_all(
    client: &Client,
    namespace: &str,
    manifests: Vec<Manifest>,
    concurrency: usize,
) -> Result<Duration, kube::Error> {
    let started = Instant::now();
    stream::iter(manifests)
        .map(|manifest| create(client, namespace, manifest))
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

async fn create(client: &Client, namespace: &str, manifest: Manifest) -> Result<(), kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(manifest.body).map_err(kube::Error::SerdeError)?;
    api(client, namespace, manifest.kind)
        .create(&PostParams::default(), &object)
        .await?;
    Ok(())
}

/// The apiserver half of the floor: creates every manifest and writes one status to each, as a
/// plain client with `concurrency` objects in flight. Returns the time taken.
///
/// The status is the size of the one the operator writes when a number becomes Active: both
/// conditions, the Plivo state, the enrollment inputs and the check times.
pub async fn create_with_status(
    client: &Client,
    namespace: &str,
    manifests: Vec<Manifest>,
    concurrency: usize,
) -> Result<Duration, kube::Error> {
    let started = Instant::now();
    stream::iter(manifests)
        .map(|manifest| async move {
            let kind = manifest.kind;
            let name = manifest.name.clone();
            create(client, namespace, manifest).await?;
            api(client, namespace, kind)
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&final_status(kind)),
                )
                .await?;
            Ok::<(), kube::Error>(())
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

fn final_status(kind: Kind) -> Value {
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": "True",
            "reason": reason,
            "message": message,
            "observedGeneration": 1,
            "lastTransitionTime": now.to_string(),
        })
    };
    let status = match kind {
        Kind::BusinessProfile => json!({
            "observedGeneration": 1,
            "profileUUID": uuid::Uuid::new_v4().to_string(),
            "conditions": [
                condition("Ready", "Created", "The profile exists at Plivo."),
                condition("Synced", "Synced", "The spec was applied at Plivo."),
            ],
        }),
        Kind::CallerReputationNumber => json!({
            "observedGeneration": 1,
            "callerReputationStatus": "ACTIVE",
            "profileUUID": uuid::Uuid::new_v4().to_string(),
            "numberType": "local",
            "lastCheckedTime": now.to_string(),
            "activeSince": now.to_string(),
            "nextCheckTime": now.to_string(),
            "conditions": [
                condition("Ready", "Active", "Caller Reputation is ACTIVE at the carriers."),
                condition("Synced", "Synced", "The spec was applied at Plivo."),
            ],
        }),
    };
    json!({ "status": status })
}

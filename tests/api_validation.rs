//! The CRDs on a real kube-apiserver: invalid objects are rejected at apply
//! time with a message naming the field, immutable fields stay immutable,
//! the CRDs install without warnings, and every file in `examples/` applies.

mod support;

use std::path::Path;

use caller_reputation_operator::api::{
    BusinessProfile, BusinessProfileStatus, CallerReputationNumber, ConditionType, CreationIntent,
    Reason, set_condition,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "api-validation-test";

/// One object that breaks exactly one rule, and the text the rejection must contain.
struct InvalidCase {
    why: &'static str,
    kind: Kind,
    break_rule: fn(&mut Value),
    expected: &'static str,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Profile,
    Number,
}

impl Kind {
    fn api_resource(self) -> ApiResource {
        match self {
            Kind::Profile => ApiResource::erase::<BusinessProfile>(&()),
            Kind::Number => ApiResource::erase::<CallerReputationNumber>(&()),
        }
    }

    fn valid_object(self) -> Value {
        match self {
            Kind::Profile => valid_profile(),
            Kind::Number => valid_number(),
        }
    }
}

fn valid_profile() -> Value {
    json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "BusinessProfile",
        "metadata": {"name": "placeholder"},
        "spec": {
            "customerType": "DIRECT",
            "entityType": "PRIVATE",
            "companyName": "Acme Corporation",
            "vertical": "TECHNOLOGY",
            "ein": "12-3456789",
            "address": {
                "street": "100 Example Street",
                "city": "Austin",
                "state": "TX",
                "postalCode": "78701",
                "country": "US"
            },
            "website": "https://acme.example.com",
            "authorizedContact": {
                "firstName": "Jane",
                "lastName": "Doe",
                "email": "jane.doe@acme.example.com",
                "phone": "+15125550100",
                "title": "Head of Operations"
            }
        }
    })
}

fn valid_number() -> Value {
    json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "CallerReputationNumber",
        "metadata": {"name": "placeholder"},
        "spec": {
            "number": "+14155550100",
            "profileRef": {"name": "acme"}
        }
    })
}

fn spec(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    object["spec"].as_object_mut().expect("spec is an object")
}

fn invalid_cases() -> Vec<InvalidCase> {
    vec![
        InvalidCase {
            why: "an EIN has 9 digits",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["ein"] = json!("12345678"),
            expected: "spec.ein",
        },
        InvalidCase {
            why: "the EIN dash goes after the second digit",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["ein"] = json!("123-456789"),
            expected: "spec.ein",
        },
        InvalidCase {
            why: "ein is required",
            kind: Kind::Profile,
            break_rule: |o| {
                spec(o).remove("ein");
            },
            expected: "spec.ein",
        },
        InvalidCase {
            why: "Plivo needs companyName to create a profile",
            kind: Kind::Profile,
            break_rule: |o| {
                spec(o).remove("companyName");
            },
            expected: "spec.companyName",
        },
        InvalidCase {
            why: "Plivo needs authorizedContact to create a profile",
            kind: Kind::Profile,
            break_rule: |o| {
                spec(o).remove("authorizedContact");
            },
            expected: "spec.authorizedContact",
        },
        InvalidCase {
            why: "Plivo needs customerType to create a profile",
            kind: Kind::Profile,
            break_rule: |o| {
                spec(o).remove("customerType");
            },
            expected: "spec.customerType",
        },
        InvalidCase {
            why: "a public company needs a stock symbol",
            kind: Kind::Profile,
            break_rule: |o| {
                o["spec"]["entityType"] = json!("PUBLIC");
                o["spec"]["stockExchange"] = json!("NASDAQ");
            },
            expected: "spec.stockSymbol",
        },
        InvalidCase {
            why: "a public company needs a stock exchange",
            kind: Kind::Profile,
            break_rule: |o| {
                o["spec"]["entityType"] = json!("PUBLIC");
                o["spec"]["stockSymbol"] = json!("ACME");
            },
            expected: "spec.stockExchange",
        },
        InvalidCase {
            why: "the website must be http or https",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["website"] = json!("ftp://acme.example.com"),
            expected: "spec.website",
        },
        InvalidCase {
            why: "the website must be a URL, not a bare host",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["website"] = json!("acme.example.com"),
            expected: "spec.website",
        },
        InvalidCase {
            why: "the website is at most 100 characters",
            kind: Kind::Profile,
            break_rule: |o| {
                o["spec"]["website"] = json!(format!("https://example.com/{}", "a".repeat(90)))
            },
            expected: "spec.website",
        },
        InvalidCase {
            why: "the contact e-mail must look like an e-mail address",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["authorizedContact"]["email"] = json!("jane.doe"),
            expected: "spec.authorizedContact.email",
        },
        InvalidCase {
            why: "the business e-mail must look like an e-mail address",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["businessContactEmail"] = json!("compliance at acme"),
            expected: "spec.businessContactEmail",
        },
        InvalidCase {
            why: "Plivo limits the company name to 100 characters",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["companyName"] = json!("A".repeat(101)),
            expected: "spec.companyName",
        },
        InvalidCase {
            why: "the EIN issuing country is an alpha-2 code",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["einIssuingCountry"] = json!("USA"),
            expected: "spec.einIssuingCountry",
        },
        InvalidCase {
            why: "the address country is an upper-case alpha-2 code",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["address"]["country"] = json!("us"),
            expected: "spec.address.country",
        },
        InvalidCase {
            why: "the vertical is one of Plivo's list",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["vertical"] = json!("SPACE_TRAVEL"),
            expected: "spec.vertical",
        },
        InvalidCase {
            why: "a profile UUID is a UUID",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["profileUUID"] = json!("acme-profile"),
            expected: "spec.profileUUID",
        },
        InvalidCase {
            why: "the number needs the +1 country code",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["number"] = json!("4155550100"),
            expected: "spec.number",
        },
        InvalidCase {
            why: "the number is +1 and exactly 10 digits",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["number"] = json!("+1415555010"),
            expected: "spec.number",
        },
        InvalidCase {
            why: "a foreign number gets the E.164 message, not a length error",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["number"] = json!("+442071838750"),
            expected: "number must be a US number in E.164 form",
        },
        InvalidCase {
            why: "no US area code starts with 0",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["number"] = json!("+10005550100"),
            expected: "spec.number",
        },
        InvalidCase {
            why: "no US exchange starts with 1",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["number"] = json!("+14151550100"),
            expected: "spec.number",
        },
        InvalidCase {
            why: "a company name of spaces is blank",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["companyName"] = json!("   "),
            expected: "companyName must contain a character other than spaces",
        },
        InvalidCase {
            why: "a company name cannot carry a terminal escape sequence",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["companyName"] = json!("Acme\u{1b}[31m"),
            expected: "companyName cannot contain control characters",
        },
        InvalidCase {
            why: "a company name is one line",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["companyName"] = json!("Acme\nCorp"),
            expected: "companyName cannot contain control characters",
        },
        InvalidCase {
            why: "no EIN starts with 00",
            kind: Kind::Profile,
            break_rule: |o| o["spec"]["ein"] = json!("000000000"),
            expected: "spec.ein",
        },
        InvalidCase {
            why: "a number names its profile only one way",
            kind: Kind::Number,
            break_rule: |o| {
                o["spec"]["profileUUID"] = json!("00000000-0000-4000-8000-000000000001")
            },
            expected: "exactly one of profileRef and profileUUID",
        },
        InvalidCase {
            why: "a number needs a profile",
            kind: Kind::Number,
            break_rule: |o| {
                spec(o).remove("profileRef");
            },
            expected: "exactly one of profileRef and profileUUID",
        },
        InvalidCase {
            why: "the callback URL must be http or https",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["callback"] = json!({"url": "hooks.acme.example.com/cr"}),
            expected: "spec.callback.url",
        },
        InvalidCase {
            why: "Plivo calls back with GET or POST only",
            kind: Kind::Number,
            break_rule: |o| {
                o["spec"]["callback"] =
                    json!({"url": "https://hooks.acme.example.com", "method": "PUT"})
            },
            expected: "spec.callback.method",
        },
        InvalidCase {
            why: "numbers are disabled or orphaned on deletion, never deleted",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["deletionPolicy"] = json!("Delete"),
            expected: "spec.deletionPolicy",
        },
        InvalidCase {
            why: "enabled is a boolean",
            kind: Kind::Number,
            break_rule: |o| o["spec"]["enabled"] = json!("yes"),
            expected: "spec.enabled",
        },
    ]
}

fn dynamic_api(client: &Client, namespace: &str, kind: Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

fn named(mut object: Value, name: &str) -> DynamicObject {
    object["metadata"]["name"] = json!(name);
    serde_json::from_value(object).expect("test objects are valid DynamicObjects")
}

async fn create(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    api.create(&PostParams::default(), object).await
}

fn rejection_message(result: Result<DynamicObject, kube::Error>, why: &str) -> String {
    match result {
        Ok(_) => panic!("{why}: the apiserver accepted the object"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{why}: unexpected status {status:?}");
            status.message.clone()
        }
        Err(error) => panic!("{why}: request failed: {error}"),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected() {
    let namespace = support::namespace("api-invalid").await;
    support::install_crds(&namespace.client).await;

    // The unbroken objects must be accepted, or a rejection below could have any cause.
    for kind in [Kind::Profile, Kind::Number] {
        let api = dynamic_api(&namespace.client, &namespace.name, kind);
        create(&api, &named(kind.valid_object(), "valid"))
            .await
            .unwrap_or_else(|error| panic!("valid {kind:?} was rejected: {error}"));
    }

    let cases = invalid_cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let api = dynamic_api(&namespace.client, &namespace.name, case.kind);
        let mut object = case.kind.valid_object();
        (case.break_rule)(&mut object);
        let result = create(&api, &named(object, &format!("invalid-{index}"))).await;
        let message = match result {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.why));
                continue;
            }
            Err(kube::Error::Api(status)) => status.message.clone(),
            Err(error) => panic!("{}: request failed: {error}", case.why),
        };
        if !message.contains(case.expected) {
            failures.push(format!(
                "{}: message does not name {:?}: {message}",
                case.why, case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn adopting_profile_needs_only_ein() {
    let namespace = support::namespace("api-adopt").await;
    support::install_crds(&namespace.client).await;
    let api = dynamic_api(&namespace.client, &namespace.name, Kind::Profile);

    let adopted = json!({
        "apiVersion": "callerreputation.io/v1alpha1",
        "kind": "BusinessProfile",
        "metadata": {"name": "adopted"},
        "spec": {"profileUUID": "00000000-0000-4000-8000-000000000001", "ein": "987654321"}
    });
    create(&api, &named(adopted, "adopted"))
        .await
        .expect("a profile with profileUUID and ein is accepted");
}

#[tokio::test]
async fn null_optional_field_is_pruned() {
    let namespace = support::namespace("api-null").await;
    support::install_crds(&namespace.client).await;
    let api = dynamic_api(&namespace.client, &namespace.name, Kind::Profile);

    let mut object = valid_profile();
    object["spec"]["website"] = Value::Null;
    let created = create(&api, &named(object, "null-website"))
        .await
        .expect("a null optional field is accepted");
    assert!(
        created.data["spec"].get("website").is_none(),
        "{:?}",
        created.data
    );
}

#[tokio::test]
async fn number_cannot_change() {
    let namespace = support::namespace("api-number").await;
    support::install_crds(&namespace.client).await;
    let api = dynamic_api(&namespace.client, &namespace.name, Kind::Number);
    create(&api, &named(valid_number(), "support-line"))
        .await
        .expect("valid number is accepted");

    let patch = json!({"spec": {"number": "+14155550199"}});
    let result = api
        .patch(
            "support-line",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    let message = rejection_message(result, "changing spec.number");
    assert!(message.contains("spec.number"), "{message}");
    assert!(message.contains("cannot be changed"), "{message}");
}

#[tokio::test]
async fn profile_uuid_cannot_change_once_set() {
    let namespace = support::namespace("api-uuid").await;
    support::install_crds(&namespace.client).await;
    let api = dynamic_api(&namespace.client, &namespace.name, Kind::Profile);
    create(&api, &named(valid_profile(), "acme"))
        .await
        .expect("valid profile is accepted");

    // Setting profileUUID for the first time adopts a profile and is allowed.
    let first = json!({"spec": {"profileUUID": "00000000-0000-4000-8000-000000000001"}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&first))
        .await
        .expect("setting profileUUID the first time is accepted");

    let changed = json!({"spec": {"profileUUID": "00000000-0000-4000-8000-000000000002"}});
    let result = api
        .patch("acme", &PatchParams::default(), &Patch::Merge(&changed))
        .await;
    let message = rejection_message(result, "changing spec.profileUUID");
    assert!(message.contains("spec.profileUUID"), "{message}");

    let removed = json!({"spec": {"profileUUID": null}});
    let result = api
        .patch("acme", &PatchParams::default(), &Patch::Merge(&removed))
        .await;
    let message = rejection_message(result, "removing spec.profileUUID");
    assert!(message.contains("spec.profileUUID"), "{message}");
}

#[tokio::test]
async fn crds_install_without_warnings() {
    let client = support::client().await;
    for crd in [BusinessProfile::crd(), CallerReputationNumber::crd()] {
        let name = crd.metadata.name.clone().expect("generated CRDs are named");
        let request =
            kube::core::Request::new("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&crd),
                )
                .expect("the apply request builds");
        let response = client
            .send(request.map(kube::client::Body::from))
            .await
            .unwrap_or_else(|error| panic!("applying CRD {name} failed: {error}"));
        assert!(
            response.status().is_success(),
            "applying CRD {name}: {}",
            response.status()
        );
        let warnings: Vec<String> = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        assert!(
            warnings.is_empty(),
            "CRD {name} installed with warnings: {warnings:#?}"
        );

        let api = Api::<CustomResourceDefinition>::all(client.clone());
        support::wait_until_established(&api, &name).await;
        let conditions = api
            .get(&name)
            .await
            .expect("the CRD is readable")
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default();
        let non_structural = conditions
            .iter()
            .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True");
        assert!(
            !non_structural,
            "CRD {name} has a non-structural schema: {conditions:#?}"
        );
    }
}

#[tokio::test]
async fn every_example_applies() {
    let namespace = support::namespace("api-examples").await;
    support::install_crds(&namespace.client).await;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {} failed: {error}", dir.display()))
        .map(|entry| entry.expect("examples/ is readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "examples/ has no YAML files");

    let mut applied = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("example is readable");
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|error| panic!("{} is not YAML: {error}", file.display()));
        for document in documents {
            let object: DynamicObject = serde_json::from_value(document)
                .unwrap_or_else(|error| panic!("{} is not an object: {error}", file.display()));
            let kind = object
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let resource = match kind.as_str() {
                "Secret" => ApiResource::erase::<Secret>(&()),
                "BusinessProfile" => ApiResource::erase::<BusinessProfile>(&()),
                "CallerReputationNumber" => ApiResource::erase::<CallerReputationNumber>(&()),
                other => panic!("{} has unexpected kind {other:?}", file.display()),
            };
            let name = object.metadata.name.clone().expect("examples are named");
            let api: Api<DynamicObject> =
                Api::namespaced_with(namespace.client.clone(), &namespace.name, &resource);
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|error| panic!("applying {} failed: {error}", file.display()));
            applied += 1;
        }
    }
    assert!(applied >= 6, "only {applied} example objects applied");
}

#[tokio::test]
async fn typed_status_round_trips() {
    // The controllers write status through these types, so the apiserver must store
    // exactly what they serialize: times, the conditions list-map and renamed fields.
    let namespace = support::namespace("api-status").await;
    support::install_crds(&namespace.client).await;
    let dynamic = dynamic_api(&namespace.client, &namespace.name, Kind::Profile);
    create(&dynamic, &named(valid_profile(), "acme"))
        .await
        .expect("valid profile is accepted");

    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let mut status = BusinessProfileStatus {
        profile_uuid: Some("00000000-0000-4000-8000-000000000001".into()),
        observed_generation: Some(1),
        numbers: Some(2),
        last_sync_time: Some(now.clone()),
        creation_intent: Some(CreationIntent {
            profile_alias: "ns-acme".into(),
            ein: "123456789".into(),
            requested_at: now.clone(),
        }),
        ..Default::default()
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        true,
        Reason::Created,
        "Profile created",
        Some(1),
        now.clone(),
    );
    set_condition(
        &mut status.conditions,
        ConditionType::Synced,
        true,
        Reason::Reconciled,
        "In sync",
        Some(1),
        now,
    );

    let api = Api::<BusinessProfile>::namespaced(namespace.client.clone(), &namespace.name);
    let patch = json!({"status": status});
    api.patch_status("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the status is accepted");

    let stored = api.get("acme").await.expect("the profile is readable");
    assert_eq!(stored.status, Some(status));
}

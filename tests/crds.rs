//! Checks of the generated CustomResourceDefinitions that need no cluster:
//! the committed copy in `crds/` is current, and every schema property is
//! documented for `kubectl explain`.

use std::path::Path;

use caller_reputation_operator::api::{self, BusinessProfile, CallerReputationNumber};
use kube::CustomResourceExt;
use serde_json::Value;

const CRDS_FILE: &str = "crds/callerreputation.io_crds.yaml";

#[test]
fn committed_crds_match_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CRDS_FILE);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()));
    assert!(
        committed == api::crds_yaml(),
        "{CRDS_FILE} differs from the CRDs the types generate; regenerate it with\n\
         \n    cargo run -- crds > {CRDS_FILE}\n"
    );
}

#[test]
fn crds_yaml_is_deterministic() {
    assert_eq!(api::crds_yaml(), api::crds_yaml());
}

#[test]
fn crds_yaml_holds_both_crds() {
    let documents: Vec<Value> = serde_saphyr::from_multiple(&api::crds_yaml()).unwrap();
    let names: Vec<&str> = documents
        .iter()
        .map(|document| document["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "businessprofiles.callerreputation.io",
            "callerreputationnumbers.callerreputation.io"
        ]
    );
}

#[test]
fn every_schema_property_has_description() {
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut undocumented = Vec::new();
        collect_undocumented(schema, kind, &mut undocumented);
        assert!(
            undocumented.is_empty(),
            "properties without a description (add a `///` doc comment): {undocumented:#?}"
        );
    }
}

#[test]
fn schemas_have_no_defaults() {
    // Defaults are applied by the operator, so the stored spec is exactly what the user wrote.
    for (kind, crd) in crds() {
        let text = serde_json::to_string(&crd).unwrap();
        assert!(!text.contains("\"default\""), "{kind} schema has a default");
    }
}

#[test]
fn spec_properties_are_not_nullable() {
    // A null is pruned from a non-nullable field, so `field: ~` means "unset" in CEL rules.
    for (kind, crd) in crds() {
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let text = serde_json::to_string(spec).unwrap();
        assert!(
            !text.contains("nullable"),
            "{kind} spec has a nullable property"
        );
        assert!(!text.contains("null]"), "{kind} spec has null in an enum");
    }
}

#[test]
fn names_short_names_and_category() {
    let cases = [
        (BusinessProfile::crd(), "businessprofiles", "bp"),
        (
            CallerReputationNumber::crd(),
            "callerreputationnumbers",
            "crn",
        ),
    ];
    for (crd, plural, short) in cases {
        assert_eq!(crd.spec.group, "callerreputation.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_owned()]));
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["callerreputation".to_owned()])
        );
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
    }
}

#[test]
fn printer_columns_show_ready_and_wide_reason() {
    for crd in [BusinessProfile::crd(), CallerReputationNumber::crd()] {
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let column = |name: &str| {
            columns
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("{} has no {name} column", crd.spec.names.kind))
        };
        assert_eq!(
            column("Ready").json_path,
            ".status.conditions[?(@.type==\"Ready\")].status"
        );
        assert_eq!(column("Ready").priority, None);
        assert_eq!(column("Reason").priority, Some(1));
        assert_eq!(column("Message").priority, Some(1));
        assert_eq!(column("Age").type_, "date");
    }
}

fn crds() -> [(&'static str, Value); 2] {
    [
        (
            "BusinessProfile",
            serde_json::to_value(BusinessProfile::crd()).unwrap(),
        ),
        (
            "CallerReputationNumber",
            serde_json::to_value(CallerReputationNumber::crd()).unwrap(),
        ),
    ]
}

/// Adds the path of every property below `schema` that lacks a description.
fn collect_undocumented(schema: &Value, path: &str, undocumented: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let property_path = format!("{path}.{name}");
            let described = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                undocumented.push(property_path.clone());
            }
            collect_undocumented(property, &property_path, undocumented);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_undocumented(items, &format!("{path}[]"), undocumented);
    }
}

#[test]
fn examples_parse_as_typed_objects() {
    // The cluster test applies the examples; this catches a broken one without a cluster
    // and checks the values the operator parses later.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut profiles = 0;
    let mut numbers = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // Subfolders (examples/argocd) hold tool-specific manifests, tested on their own.
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let document: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
        match document["kind"].as_str() {
            Some("BusinessProfile") => {
                let profile: BusinessProfile = serde_json::from_value(document)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                profile.spec.parsed_ein().unwrap();
                profiles += 1;
            }
            Some("CallerReputationNumber") => {
                let number: CallerReputationNumber = serde_json::from_value(document)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                let phone = number.spec.phone_number().unwrap();
                assert!(
                    phone.digits().starts_with("1415555010"),
                    "{}: examples use the fictional 555-01XX range",
                    path.display()
                );
                numbers += 1;
            }
            _ => {}
        }
    }
    assert_eq!(profiles, 2);
    assert_eq!(numbers, 3);
}

//! JSON schemas for kubeconform, made on the spot instead of downloaded.
//!
//! The schemas of built-in kinds come from the test control plane's OpenAPI v3 documents, so
//! they describe exactly the Kubernetes version the project tests against. The schemas of our
//! own kinds come from `crds/`. Every object schema that lists its properties is closed with
//! `additionalProperties: false`, which is what kubeconform's `-strict` expects of its schemas:
//! an unknown or misspelt field is an error.
//!
//! Files are named for the schema-location template [`LOCATION`] relative to the directory.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Schema-location template of kubeconform, relative to the schema directory.
pub const LOCATION: &str = "{{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json";

/// OpenAPI v3 documents holding the built-in kinds the chart renders.
const OPENAPI_PATHS: [&str; 6] = [
    "api/v1",
    "apis/apps/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/policy/v1",
    "apis/networking.k8s.io/v1",
    "apis/apiextensions.k8s.io/v1",
];

/// Built-in kinds the chart renders; each schema embeds its whole OpenAPI document, so only
/// these are written.
const KINDS: [&str; 11] = [
    "ServiceAccount",
    "Secret",
    "Service",
    "Deployment",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "PodDisruptionBudget",
    "Ingress",
    "CustomResourceDefinition",
];

/// Writes the schemas into a new directory and returns it.
pub async fn generate(kubeconfig: &Path, kubectl: &Path) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("caller-reputation-operator-schemas-")
        .tempdir()
        .expect("create the schema directory")
        .keep();
    for path in OPENAPI_PATHS {
        let output = tokio::process::Command::new(kubectl)
            .args(["get", "--raw", &format!("/openapi/v3/{path}")])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .await
            .expect("run kubectl get --raw");
        assert!(
            output.status.success(),
            "kubectl get --raw /openapi/v3/{path} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let document: Value =
            serde_json::from_slice(&output.stdout).expect("OpenAPI document is JSON");
        write_builtin_kinds(&dir, document);
    }
    write_custom_kinds(&dir);
    dir
}

fn write_builtin_kinds(dir: &Path, document: Value) {
    let mut components = document["components"]["schemas"].clone();
    close_objects(&mut components);
    let Value::Object(schemas) = &components else {
        panic!("OpenAPI document has no components.schemas");
    };
    for schema in schemas.values() {
        let Some(kinds) = schema["x-kubernetes-group-version-kind"].as_array() else {
            continue;
        };
        for gvk in kinds {
            let kind = gvk["kind"].as_str().unwrap_or_default();
            if !KINDS.contains(&kind) {
                continue;
            }
            let group = gvk["group"].as_str().unwrap_or_default();
            let version = gvk["version"].as_str().unwrap_or_default();
            // The `$ref`s point into `#/components/schemas`, so the document travels along.
            let mut standalone = schema.clone();
            standalone["components"] = json!({ "schemas": components.clone() });
            write(dir, kind, group, version, &standalone);
        }
    }
}

fn write_custom_kinds(dir: &Path) {
    let crds_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for entry in std::fs::read_dir(&crds_dir).expect("read crds/") {
        let path = entry.expect("read crds/").path();
        let text = std::fs::read_to_string(&path).expect("read a CRD file");
        let crds: Vec<Value> = serde_saphyr::from_multiple(&text).expect("CRD file is YAML");
        for crd in crds.iter().filter(|crd| crd.is_object()) {
            let group = crd["spec"]["group"].as_str().expect("CRD group");
            let kind = crd["spec"]["names"]["kind"].as_str().expect("CRD kind");
            for version in crd["spec"]["versions"].as_array().expect("CRD versions") {
                let mut schema = version["schema"]["openAPIV3Schema"].clone();
                close_objects(&mut schema);
                let name = version["name"].as_str().expect("CRD version name");
                write(dir, kind, group, name, &schema);
            }
        }
    }
}

/// Names a schema the way [`LOCATION`] finds it: kubeconform's `.Group` is the part of
/// `apiVersion` before the slash, which is the version itself for the core group.
fn write(dir: &Path, kind: &str, group: &str, version: &str, schema: &Value) {
    let group = if group.is_empty() { version } else { group };
    let file = dir.join(format!("{}-{group}-{version}.json", kind.to_lowercase()));
    std::fs::write(
        &file,
        serde_json::to_vec(schema).expect("serialise a schema"),
    )
    .unwrap_or_else(|error| panic!("write {}: {error}", file.display()));
}

/// Sets `additionalProperties: false` on every schema that lists properties and neither
/// allows other fields already nor preserves unknown ones.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if closes(map) {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn closes(map: &Map<String, Value>) -> bool {
    map.get("properties").is_some_and(Value::is_object)
        && !map.contains_key("additionalProperties")
        && map.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
}

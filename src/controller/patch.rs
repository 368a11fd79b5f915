//! Status writes as JSON merge patches that carry only what changed.
//!
//! A merge patch (RFC 7386) leaves keys it does not mention untouched, so a
//! field that became empty must be sent as an explicit `null`. The status
//! types skip empty fields when serialised; [`merge_diff`] puts the nulls back.

use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

/// Field manager of every write this operator makes.
pub const FIELD_MANAGER: &str = "caller-reputation-operator";

/// Computes the merge patch that turns `old` into `new`, or `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, old_value) in old {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new_value) => {
                        if let Some(inner) = merge_diff(old_value, new_value) {
                            patch.insert(key.clone(), inner);
                        }
                    }
                }
            }
            for (key, new_value) in new {
                if !old.contains_key(key) {
                    patch.insert(key.clone(), new_value.clone());
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Writes `new` as the status of `object` if it differs from `old`; returns whether it wrote.
///
/// With `guard`, the patch carries the object's `resourceVersion`, so the
/// apiserver rejects it with 409 Conflict when the object changed since it was
/// read. The profile creation intent relies on that.
pub async fn write_status<K, S>(
    api: &Api<K>,
    object: &K,
    old: Option<&S>,
    new: &S,
    guard: bool,
) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let old = old
        .map(serde_json::to_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?
        .unwrap_or_else(|| json!({}));
    let new = serde_json::to_value(new).map_err(kube::Error::SerdeError)?;
    let Some(status_patch) = merge_diff(&old, &new) else {
        return Ok(false);
    };

    let mut patch = json!({ "status": status_patch });
    if guard {
        patch["metadata"] = json!({ "resourceVersion": object.meta().resource_version });
    }
    let name = object.meta().name.as_deref().unwrap_or_default();
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_nulls_removed_keys() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}});
        let new = json!({"a": 1, "b": {"c": 2}});
        assert_eq!(merge_diff(&old, &new), Some(json!({"b": {"d": null}})));
    }

    #[test]
    fn merge_diff_of_equal_values_is_none() {
        let value = json!({"a": [1, 2], "b": "x"});
        assert_eq!(merge_diff(&value, &value), None);
    }

    #[test]
    fn merge_diff_replaces_arrays_whole() {
        let old = json!({"conditions": [{"type": "Ready"}]});
        let new = json!({"conditions": [{"type": "Ready"}, {"type": "Synced"}]});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"conditions": [{"type": "Ready"}, {"type": "Synced"}]}))
        );
    }

    #[test]
    fn merge_diff_adds_new_keys() {
        assert_eq!(
            merge_diff(&json!({}), &json!({"profileUUID": "p"})),
            Some(json!({"profileUUID": "p"}))
        );
    }
}

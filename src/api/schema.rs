//! Schema adjustments the derived CRD schemas need beyond what schemars emits.

use schemars::Schema;
use serde_json::{Map, Value};

/// Makes the `Option` properties of a struct schema optional instead of nullable.
///
/// schemars writes an `Option<T>` property as "T or null", which kube renders as
/// `nullable: true` (and `null` inside enums). A user never means to store an
/// explicit `null` in these specs: without `nullable`, the apiserver prunes a
/// `null` value before validation, so a field written as `field: ~` counts as
/// absent in CEL `has()` checks instead of failing them with a type error.
/// Use it as `#[schemars(transform = ...)]` on every struct with `Option` fields.
pub(crate) fn drop_nullable_options(schema: &mut Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for property in properties.values_mut() {
        if let Some(property) = property.as_object_mut() {
            drop_null(property);
        }
    }
}

fn drop_null(property: &mut Map<String, Value>) {
    property.remove("nullable");

    if let Some(Value::Array(types)) = property.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            property.insert("type".into(), single);
        }
    }

    if let Some(Value::Array(values)) = property.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }

    if let Some(Value::Array(variants)) = property.get("anyOf") {
        let kept: Vec<Value> = variants
            .iter()
            .filter(|variant| !is_null_schema(variant))
            .cloned()
            .collect();
        if let [Value::Object(only)] = kept.as_slice() {
            property.remove("anyOf");
            for (key, value) in only {
                // The property's own keys (its description above all) win over the inner type's.
                property.entry(key.clone()).or_insert_with(|| value.clone());
            }
            drop_null(property);
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type") == Some(&Value::from("null"))
        || schema.get("enum") == Some(&Value::Array(vec![Value::Null]))
}

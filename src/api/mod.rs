//! Custom resource types.

/// Renders every CustomResourceDefinition of the operator as a YAML stream.
pub fn crds_yaml() -> String {
    String::new()
}

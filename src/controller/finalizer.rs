//! Adding and removing the operator's finalizer.
//!
//! kube-runtime's helper removes the finalizer as soon as cleanup returns
//! `Ok`; a cleanup here may have to wait (a profile still in use, a paused
//! resource) without that being an error, so the two steps are explicit.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::FINALIZER;

/// Whether `object` carries the operator's finalizer.
pub fn has_finalizer<K: Resource>(object: &K) -> bool {
    object.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer; the write fails with 409 if the object changed since it was read.
pub async fn add<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    patch_finalizers(api, object, finalizers).await
}

/// Removes the finalizer, letting the apiserver delete the object.
pub async fn remove<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match patch_finalizers(api, object, finalizers).await {
        // Already gone: someone else removed the finalizer and the object went with it.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        result => result,
    }
}

async fn patch_finalizers<K>(
    api: &Api<K>,
    object: &K,
    finalizers: Vec<String>,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "metadata": {
            "resourceVersion": object.resource_version(),
            "finalizers": finalizers,
        }
    });
    api.patch(
        &object.name_any(),
        &PatchParams::apply(super::patch::FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

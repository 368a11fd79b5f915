//! Plivo credentials from Secrets, and the finalizer that keeps a referenced
//! Secret readable until the last resource using it has cleaned up at Plivo.
//!
//! When a namespace or an Argo CD application is deleted, the Secret, the
//! BusinessProfile and its numbers go at once. Without the finalizer the
//! Secret would vanish first and the numbers could not be disabled at Plivo.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use secrecy::SecretString;
use serde_json::json;

use super::{SecretReference, patch::FIELD_MANAGER};
use crate::{api::CredentialsSecretRef, plivo::Credentials};

/// Finalizer the operator puts on a credentials Secret while resources use it.
pub const SECRET_FINALIZER: &str = "callerreputation.io/credentials-in-use";
/// Label that marks Secrets carrying [`SECRET_FINALIZER`], so the release
/// controller can watch only those.
pub const SECRET_LABEL: &str = "callerreputation.io/credentials-in-use";

/// Credentials read from a Secret, with where they came from.
pub struct Resolved {
    pub credentials: Credentials,
    /// The Secret reference, `None` for the operator's default credentials.
    pub referenced: Option<CredentialsSecretRef>,
}

/// Why no credentials could be read; the message says what to create or fix.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no Plivo credentials: set spec.credentialsSecretRef, or start the operator with a default credentials Secret"
    )]
    NotConfigured,

    #[error(
        "Secret {namespace}/{name} not found: create it with the keys {id_key} and {token_key}"
    )]
    SecretNotFound {
        namespace: String,
        name: String,
        id_key: String,
        token_key: String,
    },

    #[error(
        "Secret {namespace}/{name} has no non-empty key {key}: add it, or set the key name in spec.credentialsSecretRef"
    )]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },

    #[error("key {key} of Secret {namespace}/{name} is not valid UTF-8")]
    NotUtf8 {
        namespace: String,
        name: String,
        key: String,
    },

    #[error("failed to read Secret {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl CredentialsError {
    /// Whether the user has to act (true) or a retry may succeed (false).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Read { .. })
    }
}

/// Reads the credentials for a resource in `namespace`: from `reference` when
/// given, else from the operator's default Secret.
pub async fn resolve(
    client: &Client,
    namespace: &str,
    reference: Option<&CredentialsSecretRef>,
    default: Option<&SecretReference>,
) -> Result<Resolved, CredentialsError> {
    let (secret_namespace, name, id_key, token_key) = match (reference, default) {
        (Some(reference), _) => (
            namespace.to_string(),
            reference.name.clone(),
            reference.auth_id_key().to_string(),
            reference.auth_token_key().to_string(),
        ),
        (None, Some(default)) => (
            default.namespace.clone(),
            default.name.clone(),
            "authId".to_string(),
            "authToken".to_string(),
        ),
        (None, None) => return Err(CredentialsError::NotConfigured),
    };

    let api: Api<Secret> = Api::namespaced(client.clone(), &secret_namespace);
    let secret = api
        .get_opt(&name)
        .await
        .map_err(|source| CredentialsError::Read {
            namespace: secret_namespace.clone(),
            name: name.clone(),
            source,
        })?;
    let Some(secret) = secret else {
        return Err(CredentialsError::SecretNotFound {
            namespace: secret_namespace,
            name,
            id_key,
            token_key,
        });
    };

    let auth_id = read_key(&secret, &secret_namespace, &name, &id_key)?;
    let auth_token = read_key(&secret, &secret_namespace, &name, &token_key)?;
    if reference.is_some() {
        ensure_finalizer(&api, &secret)
            .await
            .map_err(|source| CredentialsError::Read {
                namespace: secret_namespace.clone(),
                name: name.clone(),
                source,
            })?;
    }
    Ok(Resolved {
        credentials: Credentials {
            auth_id,
            auth_token: SecretString::from(auth_token),
        },
        referenced: reference.cloned(),
    })
}

fn read_key(
    secret: &Secret,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, CredentialsError> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|value| value.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(key))
                .map(|value| value.clone().into_bytes())
        });
    let missing = || CredentialsError::KeyMissing {
        namespace: namespace.to_string(),
        name: name.to_string(),
        key: key.to_string(),
    };
    let bytes = bytes.ok_or_else(missing)?;
    let text = String::from_utf8(bytes).map_err(|_| CredentialsError::NotUtf8 {
        namespace: namespace.to_string(),
        name: name.to_string(),
        key: key.to_string(),
    })?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(missing());
    }
    Ok(text)
}

async fn ensure_finalizer(api: &Api<Secret>, secret: &Secret) -> Result<(), kube::Error> {
    let has_finalizer = secret
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == SECRET_FINALIZER));
    // A Secret being deleted takes no new finalizer; the users it still has
    // keep it alive through the finalizer it already carries.
    if has_finalizer || secret.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let mut finalizers = secret.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(SECRET_FINALIZER.to_string());
    let patch = json!({
        "metadata": {
            "resourceVersion": secret.metadata.resource_version,
            "finalizers": finalizers,
            "labels": { SECRET_LABEL: "true" },
        }
    });
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Removes [`SECRET_FINALIZER`] and its label from a Secret no resource uses any more.
pub async fn release(api: &Api<Secret>, secret: &Secret) -> Result<(), kube::Error> {
    let finalizers: Vec<String> = secret
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != SECRET_FINALIZER)
        .collect();
    let patch = json!({
        "metadata": {
            "resourceVersion": secret.metadata.resource_version,
            "finalizers": finalizers,
            "labels": { SECRET_LABEL: null },
        }
    });
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

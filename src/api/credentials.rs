//! The reference from either custom resource to the Secret with Plivo credentials.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Key in the credentials Secret that holds the Plivo Auth ID when `authIdKey` is unset.
pub const DEFAULT_AUTH_ID_KEY: &str = "authId";

/// Key in the credentials Secret that holds the Plivo Auth Token when `authTokenKey` is unset.
pub const DEFAULT_AUTH_TOKEN_KEY: &str = "authToken";

/// A Secret in the object's own namespace that holds a Plivo Auth ID and Auth Token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key in the Secret whose value is the Plivo Auth ID. Default: `authId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub auth_id_key: Option<String>,

    /// Key in the Secret whose value is the Plivo Auth Token. Default: `authToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub auth_token_key: Option<String>,
}

impl CredentialsSecretRef {
    /// Returns the Secret key of the Auth ID, `authId` unless set.
    pub fn auth_id_key(&self) -> &str {
        self.auth_id_key.as_deref().unwrap_or(DEFAULT_AUTH_ID_KEY)
    }

    /// Returns the Secret key of the Auth Token, `authToken` unless set.
    pub fn auth_token_key(&self) -> &str {
        self.auth_token_key
            .as_deref()
            .unwrap_or(DEFAULT_AUTH_TOKEN_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_default_when_unset() {
        let reference = CredentialsSecretRef {
            name: "plivo".into(),
            auth_id_key: None,
            auth_token_key: None,
        };
        assert_eq!(reference.auth_id_key(), "authId");
        assert_eq!(reference.auth_token_key(), "authToken");
    }

    #[test]
    fn secret_keys_follow_spec() {
        let reference = CredentialsSecretRef {
            name: "plivo".into(),
            auth_id_key: Some("id".into()),
            auth_token_key: Some("token".into()),
        };
        assert_eq!(reference.auth_id_key(), "id");
        assert_eq!(reference.auth_token_key(), "token");
    }
}

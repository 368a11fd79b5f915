//! Business profile types of Plivo's Profile API (`/v1/Account/{auth_id}/Profile/`).
//!
//! Enumerated profile fields (`entity_type`, `vertical`, `seniority`, ...) are plain strings: Plivo
//! stores values outside its documented sets (`PUBLIC_PROFIT`, `Mr.`, lower-case country codes), so
//! the client passes them through unchanged.

use serde::{Deserialize, Serialize};

use super::lenient::optional_string;

/// A business address; `state` is a state code such as `TX`, `country` an ISO 3166 alpha-2 code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub country: String,
}

/// The person authorised to represent the business; `phone` is E.164.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedContact {
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    /// Salutation, e.g. `Ms`.
    #[serde(default)]
    pub title: String,
    /// Documented values: `DIRECTOR`, `GM`, `VP`, `CEO`, `CFO`, `GENERAL_COUNSEL`, `OTHER`.
    #[serde(default)]
    pub seniority: String,
    #[serde(default)]
    pub phone: String,
}

/// Body of `POST /Profile/`. Unset optional fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateProfile {
    pub profile_alias: String,
    /// `DIRECT` or `RESELLER`.
    pub customer_type: String,
    /// `PRIVATE`, `PUBLIC`, `NON_PROFIT`, `GOVERNMENT` or `INDIVIDUAL`.
    pub entity_type: String,
    pub company_name: String,
    /// e.g. `TECHNOLOGY`, `RETAIL`, `HEALTHCARE`.
    pub vertical: String,
    pub address: Address,
    pub authorized_contact: AuthorizedContact,
    /// Employer Identification Number; Caller Reputation needs a 9-digit US EIN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ein: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ein_issuing_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_symbol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_exchange: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_business_id: Option<String>,
    /// `DUNS`, `LEI`, `GIIN` or `NONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_business_id_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Auth ID of the subaccount the profile belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plivo_subaccount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_contact_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doing_business_as: Option<String>,
}

/// Body of `POST /Profile/{uuid}/`: only the fields Plivo lets you change. Unset fields are not sent.
///
/// Build it with `..Default::default()` so that fields added later (such as the profile-level Caller
/// Reputation keys) need no change at the call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_contact: Option<AuthorizedContact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plivo_subaccount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_contact_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ein: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ein_issuing_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_business_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_business_id_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doing_business_as: Option<String>,
}

impl UpdateProfile {
    /// Whether the update would send no field at all (Plivo's SDKs refuse such an update).
    pub fn is_empty(&self) -> bool {
        *self == UpdateProfile::default()
    }
}

/// A business profile as Plivo returns it from get, list and update.
///
/// Every field except the UUID may be missing; `null` and `""` both read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Profile {
    #[serde(default, deserialize_with = "required_string")]
    pub profile_uuid: String,
    #[serde(default, deserialize_with = "optional_string")]
    pub profile_alias: Option<String>,
    /// `PRIMARY` or `SECONDARY`.
    #[serde(default, deserialize_with = "optional_string")]
    pub profile_type: Option<String>,
    /// UUID of the account's primary profile.
    #[serde(default, deserialize_with = "optional_string")]
    pub primary_profile: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub customer_type: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub entity_type: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub company_name: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub vertical: Option<String>,
    /// Older documentation calls the EIN an integer, so numbers are read as text too.
    #[serde(default, deserialize_with = "optional_string")]
    pub ein: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub ein_issuing_country: Option<String>,
    #[serde(default)]
    pub address: Option<Address>,
    #[serde(default)]
    pub authorized_contact: Option<AuthorizedContact>,
    #[serde(default, deserialize_with = "optional_string")]
    pub stock_symbol: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub stock_exchange: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub alt_business_id: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub alt_business_id_type: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub website: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub plivo_subaccount: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub business_contact_email: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub doing_business_as: Option<String>,
    /// ISO 8601 creation time, e.g. `2023-02-28T11:06:00.360401Z`.
    #[serde(default, deserialize_with = "optional_string")]
    pub created_at: Option<String>,
}

fn required_string<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(optional_string(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_profile_omits_unset_optional_fields() {
        let request = CreateProfile {
            profile_alias: "acme-main".into(),
            ein: Some("123456789".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["profile_alias"], "acme-main");
        assert_eq!(json["ein"], "123456789");
        assert_eq!(json["address"]["postal_code"], "");
        assert!(json.get("website").is_none());
        assert!(json.get("doing_business_as").is_none());
    }

    #[test]
    fn update_profile_sends_only_set_fields() {
        let request = UpdateProfile {
            website: Some("https://acme.example".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json, serde_json::json!({"website": "https://acme.example"}));
        assert!(!request.is_empty());
        assert!(UpdateProfile::default().is_empty());
    }

    #[test]
    fn profile_reads_sparse_and_odd_values() {
        let profile: Profile = serde_json::from_value(serde_json::json!({
            "profile_uuid": "f3a1",
            "entity_type": "PUBLIC_PROFIT",
            "ein": 123456789,
            "website": "",
            "stock_symbol": null,
            "authorized_contact": {"first_name": "Ann", "seniority": "Mr."},
            "unknown_field": {"nested": true}
        }))
        .unwrap();
        assert_eq!(profile.profile_uuid, "f3a1");
        assert_eq!(profile.entity_type.as_deref(), Some("PUBLIC_PROFIT"));
        assert_eq!(profile.ein.as_deref(), Some("123456789"));
        assert_eq!(profile.website, None);
        assert_eq!(profile.stock_symbol, None);
        let contact = profile.authorized_contact.unwrap();
        assert_eq!(contact.seniority, "Mr.");
        assert_eq!(contact.email, "");
        assert_eq!(profile.address, None);
    }
}

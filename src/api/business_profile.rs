//! The `BusinessProfile` custom resource: one Plivo business profile.
//!
//! A BusinessProfile either describes a business for the operator to create
//! at Plivo, or adopts an existing Plivo profile by `profileUUID`. Plivo allows
//! one profile per EIN, and one profile serves any number of phone numbers.

// Printer columns repeat keys such as `type_ = "string"`, which this lint takes for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::credentials::CredentialsSecretRef;
use super::ein::{Ein, EinError};

/// Issuing country assumed for the EIN when `einIssuingCountry` is unset.
pub const DEFAULT_EIN_ISSUING_COUNTRY: &str = "US";

/// The business to register for Caller Reputation, as a Plivo business profile.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "callerreputation.io",
    version = "v1alpha1",
    kind = "BusinessProfile",
    namespaced,
    status = "BusinessProfileStatus",
    derive = "PartialEq",
    shortname = "bp",
    category = "callerreputation",
    doc = "BusinessProfile is a Plivo business profile (company name, EIN, address, website, contact) that CallerReputationNumbers register with US carriers. The operator creates the profile at Plivo, or adopts an existing one named by spec.profileUUID.",
    printcolumn(name = "Company", type_ = "string", json_path = ".spec.companyName"),
    printcolumn(
        name = "Profile UUID",
        type_ = "string",
        json_path = ".status.profileUUID"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Numbers",
        type_ = "integer",
        json_path = ".status.numbers",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
#[x_kube(
    validation = Rule::new("has(self.profileUUID) || has(self.customerType)")
        .message("customerType is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".customerType")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.profileUUID) || has(self.entityType)")
        .message("entityType is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".entityType")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.profileUUID) || has(self.companyName)")
        .message("companyName is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".companyName")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.profileUUID) || has(self.vertical)")
        .message("vertical is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".vertical")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.profileUUID) || has(self.address)")
        .message("address is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".address")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.profileUUID) || has(self.authorizedContact)")
        .message("authorizedContact is required unless profileUUID is set: Plivo needs it to create a profile")
        .field_path(".authorizedContact")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.entityType) || self.entityType != 'PUBLIC' || has(self.stockSymbol)")
        .message("stockSymbol is required when entityType is PUBLIC")
        .field_path(".stockSymbol")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.entityType) || self.entityType != 'PUBLIC' || has(self.stockExchange)")
        .message("stockExchange is required when entityType is PUBLIC")
        .field_path(".stockExchange")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(oldSelf.profileUUID) || (has(self.profileUUID) && self.profileUUID == oldSelf.profileUUID)")
        .message("profileUUID cannot be changed or removed once set; create a new BusinessProfile to use another Plivo profile")
        .field_path(".profileUUID")
        .reason(Reason::FieldValueForbidden),
)]
pub struct BusinessProfileSpec {
    /// Friendly name of the profile at Plivo. Default: `<namespace>-<name>` of
    /// this object. At most 100 characters. Plivo does not let an existing
    /// profile change its alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub profile_alias: Option<String>,

    /// Whether the business uses Plivo for itself (`DIRECT`) or provides
    /// voice or messaging to other businesses (`RESELLER`). Required unless
    /// `profileUUID` is set. Plivo does not let an existing profile change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_type: Option<CustomerType>,

    /// Legal form of the business: `PRIVATE`, `PUBLIC`, `NON_PROFIT`,
    /// `GOVERNMENT` or `INDIVIDUAL`. Required unless `profileUUID` is set.
    /// `PUBLIC` also requires `stockSymbol` and `stockExchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<EntityType>,

    /// Legal name of the business, shown to called parties once Caller
    /// Reputation is active. Required unless `profileUUID` is set. At most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(
        validation = Rule::new(r"self.matches('\\S')")
            .message("companyName must contain a character other than spaces"),
        validation = Rule::new(r"!self.matches('[\\x00-\\x1f\\x7f]')")
            .message("companyName cannot contain control characters such as line breaks, tabs or terminal escape sequences"),
    )]
    pub company_name: Option<String>,

    /// Name the business trades under, if it differs from `companyName`
    /// ("doing business as"). At most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub doing_business_as: Option<String>,

    /// Industry of the business, one of Plivo's verticals (e.g. `TECHNOLOGY`,
    /// `HEALTHCARE`, `FINANCIAL`). Required unless `profileUUID` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertical: Option<Vertical>,

    /// US Employer Identification Number: 9 digits, written `123456789` or
    /// `12-3456789`. Caller Reputation requires a US EIN. Plivo allows one
    /// profile per EIN in an account.
    #[x_kube(
        validation = Rule::new("self.matches('^[0-9]{2}-?[0-9]{7}$')")
            .message("ein must be 9 digits, written 123456789 or 12-3456789"),
        validation = Rule::new("!self.startsWith('00')")
            .message("ein cannot start with 00: the IRS issues no EIN with that prefix")
    )]
    #[schemars(length(max = 10))]
    pub ein: String,

    /// Country that issued the EIN, as an upper-case ISO 3166-1 alpha-2 code.
    /// Default: `US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub ein_issuing_country: Option<String>,

    /// Registered address of the business. Required unless `profileUUID` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,

    /// Website of the business, an `http://` or `https://` URL of at most 100
    /// characters. Caller Reputation needs it for carrier review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''")
            .message("website must be an http:// or https:// URL with a host, e.g. https://example.com")
    )]
    #[schemars(length(max = 100))]
    pub website: Option<String>,

    /// Ticker symbol of a public company, at most 10 characters. Required
    /// when `entityType` is `PUBLIC`. Plivo does not let an existing profile change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10))]
    pub stock_symbol: Option<String>,

    /// Exchange where a public company is listed (e.g. `NASDAQ`, `NYSE`).
    /// Required when `entityType` is `PUBLIC`. Plivo does not let an existing
    /// profile change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_exchange: Option<StockExchange>,

    /// Another registry identifier of the business (see `altBusinessIdType`),
    /// at most 50 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub alt_business_id: Option<String>,

    /// Registry of `altBusinessId`: `DUNS`, `LEI`, `GIIN` or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_business_id_type: Option<AltBusinessIdType>,

    /// Person authorised to represent the business. Required unless
    /// `profileUUID` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_contact: Option<AuthorizedContact>,

    /// Business e-mail address for carrier contact, at most 255 characters.
    /// Plivo expects it for `PUBLIC` entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.matches('^[^@ ]+@[^@ ]+[.][^@ ]+$')")
            .message("businessContactEmail must be an e-mail address such as ops@example.com")
    )]
    #[schemars(length(max = 255))]
    pub business_contact_email: Option<String>,

    /// UUID of an existing Plivo profile to adopt instead of creating one.
    /// When set, the fields Plivo needs to create a profile become optional,
    /// and fields that are set are applied to the adopted profile. Cannot be
    /// changed or removed once set.
    // NOTE: Plivo's docs and SDK fixtures show profile UUIDs in the standard
    // 8-4-4-4-12 hex form; the pattern rejects any other spelling.
    #[serde(
        rename = "profileUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub profile_uuid: Option<String>,

    /// Secret with the Plivo credentials to use for this profile. Default:
    /// the credentials the operator was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Action on the Plivo profile when this object is deleted. `Orphan`
    /// (default) keeps the profile at Plivo. `Delete` deletes it once no
    /// CallerReputationNumber refers to this object. Plivo rejects deleting
    /// the account's primary profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<ProfileDeletionPolicy>,
}

/// Kind of Plivo customer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomerType {
    Direct,
    Reseller,
}

/// Legal form of a business.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityType {
    Private,
    Public,
    NonProfit,
    Government,
    Individual,
}

/// Industry of a business, as Plivo's Profile API lists them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Vertical {
    Professional,
    RealEstate,
    Healthcare,
    HumanResources,
    Energy,
    Entertainment,
    Retail,
    Transportation,
    Agriculture,
    Insurance,
    Postal,
    Education,
    Hospitality,
    Financial,
    Political,
    Gambling,
    Legal,
    Construction,
    Ngo,
    Manufacturing,
    Government,
    Technology,
    Communication,
}

/// Stock exchange of a public company, as Plivo's Profile API lists them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockExchange {
    Nasdaq,
    Nyse,
    Amex,
    Amx,
    Asx,
    B3,
    Bme,
    Bse,
    Fra,
    Icex,
    Jpx,
    Jse,
    Krx,
    Lon,
    Nse,
    Omx,
    Sehk,
    Sgx,
    Sse,
    Sto,
    Swx,
    Szse,
    Tsx,
    Twse,
    Vse,
    Other,
}

/// Registry of an alternative business identifier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AltBusinessIdType {
    Duns,
    Lei,
    Giin,
    // Plivo's spelling for "no alternative identifier".
    #[serde(rename = "NONE")]
    NoId,
}

/// Role of the authorised contact in the business.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Seniority {
    Director,
    Gm,
    Vp,
    Ceo,
    Cfo,
    GeneralCounsel,
    Other,
}

/// Action the operator takes on the Plivo profile when a BusinessProfile is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProfileDeletionPolicy {
    // Keep the Plivo profile; the safe default because a profile may back
    // numbers or 10DLC brands outside this cluster.
    #[default]
    Orphan,
    Delete,
}

/// Registered address of a business.
// Plivo publishes no length limits for address fields; these maxima are this
// project's, chosen to keep CEL cost bounded and typos visible at apply time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct Address {
    /// Street and number, at most 200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub street: String,

    /// City, at most 100 characters.
    #[schemars(length(min = 1, max = 100))]
    pub city: String,

    /// State or region code, e.g. `TX` for a US address. At most 50 characters.
    #[schemars(length(min = 1, max = 50))]
    pub state: String,

    /// Postal code, e.g. `78701`. At most 20 characters.
    #[schemars(length(min = 1, max = 20))]
    pub postal_code: String,

    /// Country as an upper-case ISO 3166-1 alpha-2 code, e.g. `US`.
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country: String,
}

/// Person authorised to represent a business towards Plivo and the carriers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct AuthorizedContact {
    /// Given name, at most 100 characters.
    #[schemars(length(min = 1, max = 100))]
    pub first_name: String,

    /// Family name, at most 100 characters.
    #[schemars(length(min = 1, max = 100))]
    pub last_name: String,

    /// Work e-mail address, at most 255 characters. Plivo rejects addresses at
    /// personal e-mail domains.
    #[x_kube(
        validation = Rule::new("self.matches('^[^@ ]+@[^@ ]+[.][^@ ]+$')")
            .message("authorizedContact.email must be an e-mail address such as jane.doe@example.com")
    )]
    #[schemars(length(max = 255))]
    pub email: String,

    /// Phone number in E.164 form, e.g. `+14155550100`.
    #[schemars(regex(pattern = r"^[+][1-9][0-9]{6,14}$"))]
    pub phone: String,

    /// Salutation or job title, e.g. `Ms.` or `Head of Operations`. At most 100 characters.
    #[schemars(length(min = 1, max = 100))]
    pub title: String,

    /// Seniority of the contact: `DIRECTOR`, `GM`, `VP`, `CEO`, `CFO`,
    /// `GENERAL_COUNSEL` or `OTHER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seniority: Option<Seniority>,
}

/// Observed state of a BusinessProfile, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct BusinessProfileStatus {
    /// UUID of the Plivo profile this object manages, written by the operator
    /// after it creates or adopts the profile.
    #[serde(
        rename = "profileUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_uuid: Option<String>,

    /// `metadata.generation` of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` (the Plivo profile exists and matches the spec),
    /// `Synced` (the last attempt to apply the spec succeeded), `Stalled` (the
    /// operator waits for a change by the user) and `InUse` (numbers refer to
    /// this profile). Written by the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Number of CallerReputationNumbers that refer to this profile, written by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<i32>,

    /// When the operator last compared this profile with Plivo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// Profile create request in flight, written by the operator just before
    /// it sends Plivo the create request and removed once the UUID is in
    /// `profileUUID`. If the operator restarts in between, it looks the
    /// profile up by this alias and EIN instead of creating a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_intent: Option<CreationIntent>,
}

/// A profile create request the operator sent, or was about to send, to Plivo.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct CreationIntent {
    /// Profile alias sent in the create request.
    pub profile_alias: String,

    /// EIN sent in the create request, 9 digits without a dash.
    pub ein: String,

    /// When the operator recorded the request.
    pub requested_at: Time,
}

impl BusinessProfile {
    /// Returns the Plivo profile alias: `spec.profileAlias`, or `<namespace>-<name>` when unset.
    ///
    /// The default is not shortened, so it can exceed the 100 characters the schema
    /// allows for an explicit alias; Plivo publishes no limit for the alias.
    pub fn effective_alias(&self) -> String {
        if let Some(alias) = &self.spec.profile_alias {
            return alias.clone();
        }
        match self.namespace() {
            Some(namespace) => format!("{namespace}-{}", self.name_any()),
            None => self.name_any(),
        }
    }
}

impl BusinessProfileSpec {
    /// Parses `ein` into an [`Ein`].
    ///
    /// # Errors
    /// Returns [`EinError`] when `ein` is not 9 digits with an optional dash.
    /// The CRD rejects such values, so only objects stored before that rule
    /// existed can fail.
    pub fn parsed_ein(&self) -> Result<Ein, EinError> {
        Ein::parse(&self.ein)
    }

    /// Returns the EIN as 9 digits without a dash, as Plivo takes it.
    ///
    /// # Errors
    /// The same as [`BusinessProfileSpec::parsed_ein`].
    pub fn ein_digits(&self) -> Result<String, EinError> {
        self.parsed_ein().map(|ein| ein.digits().to_owned())
    }

    /// Returns the EIN issuing country, `US` unless set.
    pub fn effective_ein_issuing_country(&self) -> &str {
        self.ein_issuing_country
            .as_deref()
            .unwrap_or(DEFAULT_EIN_ISSUING_COUNTRY)
    }

    /// Returns the deletion policy, `Orphan` unless set.
    pub fn effective_deletion_policy(&self) -> ProfileDeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(namespace: Option<&str>, alias: Option<&str>) -> BusinessProfile {
        let mut profile = BusinessProfile::new(
            "acme",
            BusinessProfileSpec {
                profile_alias: alias.map(str::to_owned),
                ein: "12-3456789".into(),
                ..Default::default()
            },
        );
        profile.metadata.namespace = namespace.map(str::to_owned);
        profile
    }

    #[test]
    fn alias_defaults_to_namespace_and_name() {
        assert_eq!(
            profile(Some("team-a"), None).effective_alias(),
            "team-a-acme"
        );
    }

    #[test]
    fn alias_from_spec_wins() {
        assert_eq!(
            profile(Some("team-a"), Some("Acme main")).effective_alias(),
            "Acme main"
        );
    }

    #[test]
    fn alias_without_namespace_is_name() {
        assert_eq!(profile(None, None).effective_alias(), "acme");
    }

    #[test]
    fn ein_digits_drop_the_dash() {
        let spec = profile(None, None).spec;
        assert_eq!(spec.ein_digits().unwrap(), "123456789");
        let plain = BusinessProfileSpec {
            ein: "123456789".into(),
            ..Default::default()
        };
        assert_eq!(plain.ein_digits().unwrap(), "123456789");
        let bad = BusinessProfileSpec {
            ein: "1234".into(),
            ..Default::default()
        };
        assert!(bad.ein_digits().is_err());
    }

    #[test]
    fn unset_defaults_are_applied_by_accessors() {
        let spec = BusinessProfileSpec::default();
        assert_eq!(spec.effective_ein_issuing_country(), "US");
        assert_eq!(
            spec.effective_deletion_policy(),
            ProfileDeletionPolicy::Orphan
        );
        let spec = BusinessProfileSpec {
            ein_issuing_country: Some("CA".into()),
            deletion_policy: Some(ProfileDeletionPolicy::Delete),
            ..Default::default()
        };
        assert_eq!(spec.effective_ein_issuing_country(), "CA");
        assert_eq!(
            spec.effective_deletion_policy(),
            ProfileDeletionPolicy::Delete
        );
    }

    #[test]
    fn spec_uses_plivo_field_spellings() {
        let spec = BusinessProfileSpec {
            profile_uuid: Some("f3a1c2d4-0000-4000-8000-000000000001".into()),
            entity_type: Some(EntityType::NonProfit),
            vertical: Some(Vertical::RealEstate),
            alt_business_id_type: Some(AltBusinessIdType::NoId),
            ein: "123456789".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "profileUUID": "f3a1c2d4-0000-4000-8000-000000000001",
                "entityType": "NON_PROFIT",
                "vertical": "REAL_ESTATE",
                "altBusinessIdType": "NONE",
                "ein": "123456789",
            })
        );
    }

    #[test]
    fn empty_status_serializes_to_empty_object() {
        let json = serde_json::to_value(BusinessProfileStatus::default()).unwrap();
        assert_eq!(json, serde_json::json!({}));
    }
}

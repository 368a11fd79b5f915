//! The `CallerReputationNumber` custom resource: Caller Reputation on one US number.
//!
//! A CallerReputationNumber names a number on the Plivo account and the
//! business profile it registers with the carriers, either through a
//! BusinessProfile in the same namespace or by Plivo profile UUID.

// Printer columns repeat keys such as `type_ = "string"`, which this lint takes for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::credentials::CredentialsSecretRef;
use super::phone_number::{PhoneNumber, PhoneNumberError};

/// Caller Reputation for one US local or toll-free number on the Plivo account.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "callerreputation.io",
    version = "v1alpha1",
    kind = "CallerReputationNumber",
    namespaced,
    status = "CallerReputationNumberStatus",
    derive = "PartialEq",
    shortname = "crn",
    category = "callerreputation",
    doc = "CallerReputationNumber enables Plivo Caller Reputation on one US local or toll-free number of the Plivo account, registering the number with US carriers under a business profile.",
    selectable = ".spec.number",
    selectable = ".spec.profileRef.name",
    printcolumn(name = "Number", type_ = "string", json_path = ".spec.number"),
    printcolumn(
        name = "Profile",
        type_ = "string",
        json_path = ".spec.profileRef.name"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.callerReputationStatus"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Profile UUID",
        type_ = "string",
        json_path = ".status.profileUUID",
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
        name = "Last Checked",
        type_ = "date",
        json_path = ".status.lastCheckedTime",
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
    validation = Rule::new("has(self.profileRef) != has(self.profileUUID)")
        .message("exactly one of profileRef and profileUUID must be set")
        .reason(Reason::FieldValueInvalid),
)]
pub struct CallerReputationNumberSpec {
    /// The number, in E.164 form: `+1` and 10 digits, e.g. `+14155550100`.
    /// It must be a US local or toll-free number on the Plivo account.
    /// Cannot be changed; create another CallerReputationNumber instead.
    #[x_kube(
        validation = Rule::new("self.matches('^[+]1[2-9][0-9]{2}[2-9][0-9]{6}$')")
            .message("number must be a US number in E.164 form: +1 and 10 digits, with an area code and exchange that start with 2 to 9, e.g. +14155550100"),
        validation = Rule::new("self == oldSelf")
            .message("number cannot be changed; create another CallerReputationNumber instead")
            .reason(Reason::FieldValueForbidden),
    )]
    // E.164 allows up to 15 digits after the `+`. Room for them lets a foreign
    // number reach the rule above, whose message describes a valid value.
    #[schemars(length(max = 16))]
    pub number: String,

    /// BusinessProfile in this namespace whose Plivo profile the number is
    /// registered with. Exactly one of `profileRef` and `profileUUID` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_ref: Option<ProfileRef>,

    /// UUID of a Plivo profile not managed in this cluster to register the
    /// number with. Exactly one of `profileRef` and `profileUUID` must be set.
    #[serde(
        rename = "profileUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub profile_uuid: Option<String>,

    /// Whether Caller Reputation should be enabled on the number. Default:
    /// `true`. Setting `false` disables it at Plivo and keeps this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// URL Plivo notifies when the number's Caller Reputation status changes.
    /// Unset: Plivo sends no notifications and the operator polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<StatusCallback>,

    /// Secret with the Plivo credentials to use for this number. Default: the
    /// credentials the operator was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Action at Plivo when this object is deleted. `Disable` (default)
    /// disables Caller Reputation on the number. `Orphan` leaves it enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<NumberDeletionPolicy>,
}

/// Reference to a BusinessProfile in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct ProfileRef {
    /// Name of the BusinessProfile.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Destination of Plivo's notifications about Caller Reputation status changes of the number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct StatusCallback {
    /// An `http://` or `https://` URL of at most 2048 characters.
    #[x_kube(
        validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''")
            .message("callback.url must be an http:// or https:// URL with a host")
    )]
    #[schemars(length(max = 2048))]
    pub url: String,

    /// HTTP method Plivo uses for the notification: `GET` or `POST`. Default: `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<CallbackMethod>,
}

/// HTTP method of a status callback.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CallbackMethod {
    Get,
    #[default]
    Post,
}

/// Action the operator takes at Plivo when a CallerReputationNumber is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum NumberDeletionPolicy {
    #[default]
    Disable,
    Orphan,
}

/// Observed state of a CallerReputationNumber, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct CallerReputationNumberStatus {
    /// Caller Reputation status as Plivo last reported it: `PENDING` (carriers
    /// are processing the registration, which can take 2 business days),
    /// `ACTIVE`, `FAILED` or `NOT_ENROLLED` (not eligible). Absent when Plivo
    /// reports no registration. Other values Plivo may add are shown as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_reputation_status: Option<String>,

    /// UUID of the profile Plivo reports for the number.
    #[serde(
        rename = "profileUUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub profile_uuid: Option<String>,

    /// Type of the number as Plivo reports it, e.g. `local` or `tollfree`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_type: Option<String>,

    /// `metadata.generation` of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` (registration active, or disabled as the spec
    /// requests), `Synced` (the last attempt to apply the spec succeeded) and
    /// `Stalled` (the operator waits for a change by the user). Written by the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the operator last read the number from Plivo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_time: Option<Time>,

    /// When the operator first saw the registration `ACTIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since: Option<Time>,

    /// When the operator plans to read the number from Plivo again, unless a
    /// callback or a change arrives first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_time: Option<Time>,

    /// The last enable request sent to Plivo, written by the operator. A
    /// `FAILED` registration is retried only after the profile's spec or the
    /// `callerreputation.io/retry` annotation differs from what is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,

    /// The credentials Secret the number was last enrolled with, written by
    /// the operator; absent for the operator's default credentials. Deletion
    /// uses it to disable the number even after its BusinessProfile is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
}

/// The inputs of the last Caller Reputation enable request for a number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::api::schema::drop_nullable_options)]
pub struct Enrollment {
    /// Profile UUID the request carried.
    #[serde(rename = "profileUUID")]
    pub profile_uuid: String,

    /// `metadata.generation` of the referenced BusinessProfile at the time of
    /// the request. Absent when the number names a profile by UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_generation: Option<i64>,

    /// Value of the `callerreputation.io/retry` annotation at the time of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_token: Option<String>,

    /// Status callback URL the request carried: `spec.callback.url`, or the
    /// operator's own endpoint when the operator has a public callback URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,

    /// Status callback method the request carried, `GET` or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_method: Option<String>,
}

/// The profile a number is registered with, as its spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSource<'a> {
    /// A BusinessProfile in the number's namespace, by name.
    Reference(&'a str),
    /// A Plivo profile, by UUID.
    Uuid(&'a str),
}

impl CallerReputationNumberSpec {
    /// Parses `number` into a [`PhoneNumber`].
    ///
    /// # Errors
    /// Returns [`PhoneNumberError`] when `number` is not `+1` and 10 digits.
    /// The CRD rejects such values, so only objects stored before that rule existed can fail.
    pub fn phone_number(&self) -> Result<PhoneNumber, PhoneNumberError> {
        PhoneNumber::parse(&self.number)
    }

    /// Returns the profile the spec names, or `None` unless exactly one of
    /// `profileRef` and `profileUUID` is set.
    pub fn profile_source(&self) -> Option<ProfileSource<'_>> {
        match (&self.profile_ref, &self.profile_uuid) {
            (Some(reference), None) => Some(ProfileSource::Reference(&reference.name)),
            (None, Some(uuid)) => Some(ProfileSource::Uuid(uuid)),
            _ => None,
        }
    }

    /// Returns whether Caller Reputation should be enabled, `true` unless set.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Returns the deletion policy, `Disable` unless set.
    pub fn effective_deletion_policy(&self) -> NumberDeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }
}

impl StatusCallback {
    /// Returns the callback method, `POST` unless set.
    pub fn effective_method(&self) -> CallbackMethod {
        self.method.unwrap_or_default()
    }
}

impl CallbackMethod {
    /// Returns the method as Plivo takes it: `GET` or `POST`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// Caller Reputation status of a number as Plivo reports it, kept lenient so
/// that a value Plivo adds later is carried through instead of lost.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerReputationState {
    /// `PENDING`: submitted, the carriers are processing it.
    Pending,
    /// `ACTIVE`: registered; the business name shows on outbound calls.
    Active,
    /// `FAILED`: the carriers rejected the registration.
    Failed,
    /// `NOT_ENROLLED`: the number is not eligible.
    NotEnrolled,
    /// Any other value, as received.
    Other(String),
}

impl CallerReputationState {
    /// Parses Plivo's `caller_reputation_status`; values are matched case-insensitively.
    pub fn parse(value: &str) -> Self {
        match value.to_ascii_uppercase().as_str() {
            "PENDING" => Self::Pending,
            "ACTIVE" => Self::Active,
            "FAILED" => Self::Failed,
            "NOT_ENROLLED" => Self::NotEnrolled,
            _ => Self::Other(value.to_owned()),
        }
    }

    /// Returns the value written to `status.callerReputationStatus`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::Active => "ACTIVE",
            Self::Failed => "FAILED",
            Self::NotEnrolled => "NOT_ENROLLED",
            Self::Other(value) => value,
        }
    }
}

impl fmt::Display for CallerReputationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CallerReputationNumberStatus {
    /// Returns `callerReputationStatus` parsed, or `None` when Plivo reports no registration.
    pub fn state(&self) -> Option<CallerReputationState> {
        self.caller_reputation_status
            .as_deref()
            .map(CallerReputationState::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CallerReputationNumberSpec {
        CallerReputationNumberSpec {
            number: "+14155550100".into(),
            profile_ref: Some(ProfileRef {
                name: "acme".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn unset_defaults_are_applied_by_accessors() {
        let spec = spec();
        assert!(spec.is_enabled());
        assert_eq!(
            spec.effective_deletion_policy(),
            NumberDeletionPolicy::Disable
        );
        let callback = StatusCallback {
            url: "https://hooks.example.com/cr".into(),
            method: None,
        };
        assert_eq!(callback.effective_method(), CallbackMethod::Post);
        assert_eq!(callback.effective_method().as_str(), "POST");
    }

    #[test]
    fn set_values_override_defaults() {
        let spec = CallerReputationNumberSpec {
            enabled: Some(false),
            deletion_policy: Some(NumberDeletionPolicy::Orphan),
            ..spec()
        };
        assert!(!spec.is_enabled());
        assert_eq!(
            spec.effective_deletion_policy(),
            NumberDeletionPolicy::Orphan
        );
    }

    #[test]
    fn profile_source_needs_exactly_one() {
        assert_eq!(
            spec().profile_source(),
            Some(ProfileSource::Reference("acme"))
        );
        let by_uuid = CallerReputationNumberSpec {
            profile_ref: None,
            profile_uuid: Some("u".into()),
            ..spec()
        };
        assert_eq!(by_uuid.profile_source(), Some(ProfileSource::Uuid("u")));
        let both = CallerReputationNumberSpec {
            profile_uuid: Some("u".into()),
            ..spec()
        };
        assert_eq!(both.profile_source(), None);
        let neither = CallerReputationNumberSpec {
            profile_ref: None,
            ..spec()
        };
        assert_eq!(neither.profile_source(), None);
    }

    #[test]
    fn phone_number_parses_spec_number() {
        assert_eq!(spec().phone_number().unwrap().digits(), "14155550100");
    }

    #[test]
    fn unknown_plivo_status_is_kept() {
        let status = CallerReputationNumberStatus {
            caller_reputation_status: Some("UNDER_REVIEW".into()),
            ..Default::default()
        };
        assert_eq!(
            status.state(),
            Some(CallerReputationState::Other("UNDER_REVIEW".into()))
        );
        assert_eq!(status.state().unwrap().as_str(), "UNDER_REVIEW");
        assert_eq!(
            CallerReputationState::parse("not_enrolled"),
            CallerReputationState::NotEnrolled
        );
        assert_eq!(CallerReputationNumberStatus::default().state(), None);
    }

    #[test]
    fn status_uses_documented_field_names() {
        let status = CallerReputationNumberStatus {
            profile_uuid: Some("p".into()),
            enrollment: Some(Enrollment {
                profile_uuid: "p".into(),
                profile_generation: Some(2),
                retry_token: None,
                callback_url: None,
                callback_method: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "profileUUID": "p",
                "enrollment": {"profileUUID": "p", "profileGeneration": 2},
            })
        );
    }
}

//! Account phone number types of Plivo's Number API (`/v1/Account/{auth_id}/Number/`).

use serde::{Deserialize, Serialize};
use url::Url;

use super::lenient::{lenient_enum, optional_bool, optional_enum, optional_string};

lenient_enum! {
    /// Caller Reputation registration state of a number; `None` on a [`Number`] means no
    /// registration was ever started.
    pub enum CallerReputationStatus {
        /// Submitted; the carriers are processing it.
        Pending => "PENDING",
        /// Registered; the business name is displayed on outbound calls.
        Active => "ACTIVE",
        /// Rejected; check the profile details and enable again.
        Failed => "FAILED",
        /// The number is not eligible (any more).
        NotEnrolled => "NOT_ENROLLED",
    }
}

lenient_enum! {
    /// Kind of a phone number.
    pub enum NumberType {
        Local => "local",
        Tollfree => "tollfree",
        Mobile => "mobile",
        Fixed => "fixed",
        National => "national",
    }
}

lenient_enum! {
    /// HTTP method Plivo uses for status callbacks.
    pub enum CallbackMethod {
        Get => "GET",
        Post => "POST",
    }
}

/// A phone number rented by the account, as returned by get and list.
///
/// Every field except `number` may be missing; `null` and `""` both read as `None`; unknown fields
/// are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Number {
    /// Digits only, country code included, no `+` (e.g. `14155550100`).
    #[serde(default)]
    pub number: String,
    #[serde(default, deserialize_with = "optional_string")]
    pub alias: Option<String>,
    #[serde(default, deserialize_with = "optional_enum")]
    pub number_type: Option<NumberType>,
    #[serde(default, deserialize_with = "optional_string")]
    pub country: Option<String>,
    /// e.g. `California, UNITED STATES`.
    #[serde(default, deserialize_with = "optional_string")]
    pub region: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "optional_string")]
    pub carrier: Option<String>,
    /// Auth ID of the subaccount that owns the number.
    #[serde(default, deserialize_with = "optional_string")]
    pub sub_account: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "optional_string")]
    pub added_on: Option<String>,
    /// URI path of the application, `/v1/Account/{auth_id}/Application/{app_id}/`.
    #[serde(default, deserialize_with = "optional_string")]
    pub application: Option<String>,
    #[serde(default, deserialize_with = "optional_bool")]
    pub voice_enabled: Option<bool>,
    #[serde(default, deserialize_with = "optional_bool")]
    pub sms_enabled: Option<bool>,
    #[serde(default, deserialize_with = "optional_bool")]
    pub mms_enabled: Option<bool>,
    #[serde(default, deserialize_with = "optional_bool")]
    pub active: Option<bool>,
    /// UUID of the business profile linked for Caller Reputation.
    #[serde(default, deserialize_with = "optional_string")]
    pub profile_uuid: Option<String>,
    #[serde(default, deserialize_with = "optional_enum")]
    pub caller_reputation_status: Option<CallerReputationStatus>,
    /// `/v1/Account/{auth_id}/Number/{number}/`.
    #[serde(default, deserialize_with = "optional_string")]
    pub resource_uri: Option<String>,
}

/// Query of `GET /Number/`. [`Default`] asks for the first page of 20 numbers of any type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListNumbers {
    /// Page size, 1 to 20.
    pub limit: u32,
    pub offset: u32,
    /// Sent as `type`.
    pub number_type: Option<NumberType>,
    pub number_startswith: Option<String>,
    /// Auth ID of a subaccount.
    pub subaccount: Option<String>,
    /// Exact alias.
    pub alias: Option<String>,
    /// Comma-separated list of `voice`, `sms`, `mms`.
    pub services: Option<String>,
}

impl Default for ListNumbers {
    fn default() -> Self {
        Self {
            limit: super::page::MAX_PAGE_SIZE,
            offset: 0,
            number_type: None,
            number_startswith: None,
            subaccount: None,
            alias: None,
            services: None,
        }
    }
}

impl ListNumbers {
    pub(crate) fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let Self {
            limit,
            offset,
            number_type,
            number_startswith,
            subaccount,
            alias,
            services,
        } = self;
        let mut pairs = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        let optional = [
            (
                "type",
                number_type.as_ref().map(|kind| kind.as_str().to_owned()),
            ),
            ("number_startswith", number_startswith.clone()),
            ("subaccount", subaccount.clone()),
            ("alias", alias.clone()),
            ("services", services.clone()),
        ];
        pairs.extend(
            optional
                .into_iter()
                .filter_map(|(key, value)| value.map(|value| (key, value))),
        );
        pairs
    }
}

/// Whether Caller Reputation is switched on or off on a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Switch {
    Enabled,
    Disabled,
}

/// Body of `POST /Number/{number}/`. Plivo answers 202 without the new state, so read the number back.
///
/// Build it with a constructor; the fields stay private so that more keys can be added later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateNumber {
    caller_reputation: Switch,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_reputation_callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_reputation_callback_method: Option<CallbackMethod>,
}

impl UpdateNumber {
    /// Enables Caller Reputation on the number with `profile_uuid`, optionally with a status callback.
    pub fn enable_caller_reputation(
        profile_uuid: impl Into<String>,
        callback: Option<(Url, CallbackMethod)>,
    ) -> Self {
        let (url, method) = callback.unzip();
        Self {
            caller_reputation: Switch::Enabled,
            profile_uuid: Some(profile_uuid.into()),
            caller_reputation_callback_url: url.map(String::from),
            caller_reputation_callback_method: method,
        }
    }

    /// Disables Caller Reputation on the number, which de-registers it at the carriers.
    pub fn disable_caller_reputation() -> Self {
        Self {
            caller_reputation: Switch::Disabled,
            profile_uuid: None,
            caller_reputation_callback_url: None,
            caller_reputation_callback_method: None,
        }
    }

    /// The profile UUID sent with an enable, if any.
    pub fn profile_uuid(&self) -> Option<&str> {
        self.profile_uuid.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_serialises_caller_reputation_keys() {
        let callback = Url::parse("https://operator.example/callbacks/plivo").unwrap();
        let request =
            UpdateNumber::enable_caller_reputation("f3a1", Some((callback, CallbackMethod::Post)));
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "caller_reputation": "enabled",
                "profile_uuid": "f3a1",
                "caller_reputation_callback_url": "https://operator.example/callbacks/plivo",
                "caller_reputation_callback_method": "POST",
            })
        );
    }

    #[test]
    fn enable_without_callback_sends_no_callback_keys() {
        let request = UpdateNumber::enable_caller_reputation("f3a1", None);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"caller_reputation": "enabled", "profile_uuid": "f3a1"})
        );
    }

    #[test]
    fn disable_sends_only_the_switch() {
        assert_eq!(
            serde_json::to_value(UpdateNumber::disable_caller_reputation()).unwrap(),
            serde_json::json!({"caller_reputation": "disabled"})
        );
    }

    #[test]
    fn number_reads_null_empty_and_unknown_values() {
        let number: Number = serde_json::from_value(serde_json::json!({
            "api_id": "b2c4",
            "number": "14155550100",
            "alias": "",
            "number_type": "shortcode",
            "profile_uuid": null,
            "caller_reputation_status": "",
            "voice_enabled": true,
            "sms_enabled": "false",
            "fallback_number": "1"
        }))
        .unwrap();
        assert_eq!(number.number, "14155550100");
        assert_eq!(number.alias, None);
        assert_eq!(
            number.number_type,
            Some(NumberType::Other("shortcode".into()))
        );
        assert_eq!(number.profile_uuid, None);
        assert_eq!(number.caller_reputation_status, None);
        assert_eq!(number.voice_enabled, Some(true));
        assert_eq!(number.sms_enabled, Some(false));
        assert_eq!(number.region, None);
    }

    #[test]
    fn status_values_parse_leniently() {
        let cases = [
            ("PENDING", CallerReputationStatus::Pending),
            ("active", CallerReputationStatus::Active),
            ("FAILED", CallerReputationStatus::Failed),
            ("NOT_ENROLLED", CallerReputationStatus::NotEnrolled),
            (
                "SUSPENDED",
                CallerReputationStatus::Other("SUSPENDED".into()),
            ),
        ];
        for (wire, expected) in cases {
            let parsed: CallerReputationStatus =
                serde_json::from_value(serde_json::json!(wire)).unwrap();
            assert_eq!(parsed, expected, "{wire}");
        }
        assert_eq!(CallerReputationStatus::NotEnrolled.as_str(), "NOT_ENROLLED");
        assert_eq!(CallerReputationStatus::Other("X".into()).as_str(), "X");
    }

    #[test]
    fn list_query_uses_plivo_keys() {
        let query = ListNumbers {
            limit: 5,
            offset: 10,
            number_type: Some(NumberType::Tollfree),
            ..Default::default()
        };
        assert_eq!(
            query.query_pairs(),
            vec![
                ("limit", "5".to_owned()),
                ("offset", "10".to_owned()),
                ("type", "tollfree".to_owned()),
            ]
        );
    }
}

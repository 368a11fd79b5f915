//! Profile API handlers: create, get, list, update and delete business
//! profiles, with the validation Plivo applies.
//!
//! Every profile is `SECONDARY`: the sandbox has no account-primary profile,
//! so any profile can be deleted.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Page, json_object, new_api_id, query_value};
use super::server::Shared;
use super::state::{ApiError, Effects, Profile};

/// Required fields of Create Profile, in the order they are checked.
const REQUIRED: [&str; 7] = [
    "profile_alias",
    "customer_type",
    "entity_type",
    "company_name",
    "vertical",
    "address",
    "authorized_contact",
];

/// Optional fields of Create Profile that are stored.
const OPTIONAL: [&str; 10] = [
    "ein",
    "ein_issuing_country",
    "stock_symbol",
    "stock_exchange",
    "alt_business_id",
    "alt_business_id_type",
    "website",
    "plivo_subaccount",
    "business_contact_email",
    "doing_business_as",
];

/// Fields Update Profile changes; others in the body are ignored.
const UPDATABLE: [&str; 13] = [
    "entity_type",
    "company_name",
    "vertical",
    "address",
    "authorized_contact",
    "website",
    "plivo_subaccount",
    "business_contact_email",
    "ein",
    "ein_issuing_country",
    "alt_business_id",
    "alt_business_id_type",
    "doing_business_as",
];

const CUSTOMER_TYPES: [&str; 2] = ["DIRECT", "RESELLER"];
const ENTITY_TYPES: [&str; 5] = [
    "PRIVATE",
    "PUBLIC",
    "NON_PROFIT",
    "GOVERNMENT",
    "INDIVIDUAL",
];
const VERTICALS: [&str; 23] = [
    "PROFESSIONAL",
    "REAL_ESTATE",
    "HEALTHCARE",
    "HUMAN_RESOURCES",
    "ENERGY",
    "ENTERTAINMENT",
    "RETAIL",
    "TRANSPORTATION",
    "AGRICULTURE",
    "INSURANCE",
    "POSTAL",
    "EDUCATION",
    "HOSPITALITY",
    "FINANCIAL",
    "POLITICAL",
    "GAMBLING",
    "LEGAL",
    "CONSTRUCTION",
    "NGO",
    "MANUFACTURING",
    "GOVERNMENT",
    "TECHNOLOGY",
    "COMMUNICATION",
];

/// `POST …/Profile/`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Path(auth_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let fields = validate_create(body)?;
    let profile_uuid = uuid::Uuid::new_v4().to_string();
    let created_at = created_at_now();
    let uuid = shared.change(|state| {
        let uuid = state.create_profile(&auth_id, fields, profile_uuid, created_at)?;
        Ok::<_, ApiError>((uuid, Effects::default()))
    })?;
    tracing::info!(account = %auth_id, profile_uuid = %uuid, "Profile created");
    Ok(Json(json!({
        "api_id": new_api_id(),
        "message": "Profile created successfully.",
        "profile_uuid": uuid,
    }))
    .into_response())
}

/// `GET …/Profile/{uuid}/`.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, uuid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let profile = shared
        .read(|state| state.profile(&auth_id, &uuid).map(render))
        .ok_or(ApiError::ProfileNotFound)?;
    Ok(Json(json!({"api_id": new_api_id(), "profile": profile})).into_response())
}

/// `GET …/Profile/` with `limit`, `offset` and the filters `type`,
/// `entity_type` and `vertical`.
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Path(auth_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(query.as_deref());
    let page = Page::from_query(&query)?;
    let type_filter = query_value(&query, "type");
    let entity_filter = query_value(&query, "entity_type");
    let vertical_filter = query_value(&query, "vertical");

    let mut profiles: Vec<Value> = shared.read(|state| {
        let mut owned: Vec<&Profile> = state
            .profiles
            .values()
            .filter(|profile| profile.account == auth_id)
            .collect();
        owned.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        owned.into_iter().map(render).collect()
    });
    profiles.retain(|profile| {
        field_matches(profile, "profile_type", type_filter)
            && field_matches(profile, "entity_type", entity_filter)
            && field_matches(profile, "vertical", vertical_filter)
    });

    let path = format!("/v1/Account/{auth_id}/Profile/");
    Ok(Json(json!({
        "api_id": new_api_id(),
        "meta": page.meta(&path, &query, profiles.len()),
        "profiles": page.slice(&profiles),
    }))
    .into_response())
}

/// `POST …/Profile/{uuid}/`: changes only the updatable fields and returns the
/// full profile.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, uuid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let changes = validate_update(body)?;
    let profile = shared.change(|state| {
        let profile = render(state.update_profile(&auth_id, &uuid, changes)?);
        Ok::<_, ApiError>((profile, Effects::default()))
    })?;
    tracing::info!(account = %auth_id, profile_uuid = %uuid, "Profile updated");
    Ok(Json(json!({"api_id": new_api_id(), "profile": profile})).into_response())
}

/// `DELETE …/Profile/{uuid}/`; numbers using the profile lose Caller Reputation.
pub async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, uuid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    shared.change(|state| Ok::<_, ApiError>(((), state.delete_profile(&auth_id, &uuid)?)))?;
    tracing::info!(account = %auth_id, profile_uuid = %uuid, "Profile deleted");
    Ok(Json(json!({
        "api_id": new_api_id(),
        "message": "Profile deleted successfully.",
    }))
    .into_response())
}

/// Returns the profile object as Plivo renders it.
pub fn render(profile: &Profile) -> Value {
    let mut object = profile.fields.clone();
    object.insert(
        "profile_uuid".into(),
        Value::from(profile.profile_uuid.clone()),
    );
    object
        .entry("profile_type")
        .or_insert_with(|| Value::from("SECONDARY"));
    object.insert("created_at".into(), Value::from(profile.created_at.clone()));
    Value::Object(object)
}

fn field_matches(profile: &Value, key: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|wanted| {
        profile
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|value| value.eq_ignore_ascii_case(wanted))
    })
}

/// Parses a raw query string into decoded pairs.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn created_at_now() -> String {
    // Plivo writes microseconds and `Z`, e.g. 2023-02-28T11:06:00.360401Z.
    let now = jiff::Timestamp::now();
    format!(
        "{}.{:06}Z",
        now.strftime("%Y-%m-%dT%H:%M:%S"),
        now.subsec_microsecond()
    )
}

fn validate_create(body: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    for field in REQUIRED {
        if is_blank(body.get(field)) {
            return Err(ApiError::InvalidParameter(field.to_string()));
        }
    }
    let mut fields = Map::new();
    for (key, value) in body {
        let known = REQUIRED.contains(&key.as_str()) || OPTIONAL.contains(&key.as_str());
        if !known || is_blank(Some(&value)) {
            continue;
        }
        let value = check_field(&key, value)?;
        fields.insert(key, value);
    }
    Ok(fields)
}

fn validate_update(body: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut changes = Map::new();
    for (key, value) in body {
        if !UPDATABLE.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let value = check_field(&key, value)?;
        changes.insert(key, value);
    }
    Ok(changes)
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.trim().is_empty(),
        Some(_) => false,
    }
}

/// Checks one field's type and allowed values; an integer EIN is stored as a string.
fn check_field(key: &str, value: Value) -> Result<Value, ApiError> {
    let invalid = || ApiError::InvalidParameter(key.to_string());
    match key {
        "address" | "authorized_contact" => {
            let Value::Object(object) = &value else {
                return Err(invalid());
            };
            for (inner, inner_value) in object {
                if !inner_value.is_string() && !inner_value.is_null() {
                    return Err(ApiError::InvalidParameter(inner.clone()));
                }
            }
            let email = object.get("email").and_then(Value::as_str);
            if email.is_some_and(|email| !looks_like_email(email)) {
                return Err(ApiError::InvalidParameter("email".to_string()));
            }
            Ok(value)
        }
        "ein" => match value {
            Value::String(_) => Ok(value),
            Value::Number(number) => Ok(Value::from(number.to_string())),
            _ => Err(invalid()),
        },
        "customer_type" => one_of(value, &CUSTOMER_TYPES).ok_or_else(invalid),
        "entity_type" => one_of(value, &ENTITY_TYPES).ok_or_else(invalid),
        "vertical" => one_of(value, &VERTICALS).ok_or_else(invalid),
        "business_contact_email" => match value.as_str() {
            Some(email) if looks_like_email(email) => Ok(value),
            _ => Err(invalid()),
        },
        _ if value.is_string() => Ok(value),
        _ => Err(invalid()),
    }
}

fn one_of(value: Value, allowed: &[&str]) -> Option<Value> {
    value
        .as_str()
        .filter(|text| allowed.contains(text))
        .map(|_| value.clone())
}

fn looks_like_email(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_body() -> Map<String, Value> {
        let Value::Object(body) = json!({
            "profile_alias": "acme",
            "customer_type": "DIRECT",
            "entity_type": "PRIVATE",
            "company_name": "Acme",
            "vertical": "TECHNOLOGY",
            "address": {"street": "1 Main St", "city": "Austin", "state": "TX",
                        "postal_code": "78701", "country": "US"},
            "authorized_contact": {"first_name": "Ann", "last_name": "Lee",
                                   "email": "ann@acme.example"},
            "ein": 123456789,
            "website": "",
            "unknown": "x",
        }) else {
            unreachable!("literal is an object")
        };
        body
    }

    #[test]
    fn create_drops_blank_and_unknown_fields() {
        let fields = validate_create(valid_body()).unwrap();
        assert!(!fields.contains_key("website"));
        assert!(!fields.contains_key("unknown"));
        assert_eq!(fields["ein"], json!("123456789"));
    }

    #[test]
    fn create_names_each_missing_required_field() {
        for field in REQUIRED {
            let mut body = valid_body();
            body.remove(field);
            assert_eq!(
                validate_create(body).unwrap_err(),
                ApiError::InvalidParameter(field.to_string())
            );
        }
    }

    #[test]
    fn create_rejects_unknown_vertical() {
        let mut body = valid_body();
        body.insert("vertical".into(), json!("SPACE"));
        assert_eq!(
            validate_create(body).unwrap_err(),
            ApiError::InvalidParameter("vertical".to_string())
        );
    }

    #[test]
    fn update_ignores_immutable_fields() {
        let Value::Object(body) = json!({"profile_alias": "new", "website": "https://a.example"})
        else {
            unreachable!("literal is an object")
        };
        let changes = validate_update(body).unwrap();
        assert!(!changes.contains_key("profile_alias"));
        assert_eq!(changes["website"], json!("https://a.example"));
    }
}

//! Account Phone Number handlers: list, get, update (including Caller
//! Reputation enable/disable) and unrent.
//!
//! Number paths accept digits only or a leading `+` (raw or `%2B`); responses
//! always use digits only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Page, json_object, new_api_id, query_value};
use super::config::NumberType;
use super::profiles::parse_query;
use super::server::{Shared, now_ms};
use super::state::{ApiError, CallbackMethod, Effects, Number, NumberUpdate, digits_only};

/// Update Number keys stored as plain settings and echoed where Plivo shows them.
const SETTINGS: [&str; 9] = [
    "app_id",
    "subaccount",
    "alias",
    "compliance_application_id",
    "cnam_lookup",
    "cnam",
    "cnam_callback_url",
    "cnam_callback_method",
    "verification_info",
];

/// `GET …/Number/` with `limit`, `offset` and the filters `type`,
/// `number_startswith` and `alias`.
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Path(auth_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(query.as_deref());
    let page = Page::from_query(&query)?;
    let type_filter = query_value(&query, "type");
    let prefix = query_value(&query, "number_startswith").map(digits_only);
    let alias = query_value(&query, "alias");

    let objects: Vec<Value> = shared.read(|state| {
        state
            .numbers
            .values()
            .filter(|number| number.account == auth_id)
            .filter(|number| type_filter.is_none_or(|wanted| number.number_type.as_str() == wanted))
            .filter(|number| {
                prefix
                    .as_deref()
                    .is_none_or(|prefix| number.number.starts_with(prefix))
            })
            .filter(|number| {
                alias.is_none_or(|alias| {
                    number.settings.get("alias").map(String::as_str) == Some(alias)
                })
            })
            .map(render)
            .collect()
    });

    let path = format!("/v1/Account/{auth_id}/Number/");
    Ok(Json(json!({
        "api_id": new_api_id(),
        "meta": page.meta(&path, &query, objects.len()),
        "objects": page.slice(&objects),
    }))
    .into_response())
}

/// `GET …/Number/{number}/`: the number object with `api_id` mixed in.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, number)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut object = shared
        .read(|state| state.number(&auth_id, &number).map(render))
        .ok_or(ApiError::NumberNotFound)?;
    if let Value::Object(map) = &mut object {
        map.insert("api_id".into(), Value::from(new_api_id()));
    }
    Ok(Json(object).into_response())
}

/// `POST …/Number/{number}/`: 202 `{"message":"changed"}`; the new state is
/// read back with GET, as on Plivo.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, number)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let update = parse_update(json_object(&body)?)?;
    let enabling = update.caller_reputation;
    let delay_ms = i64::try_from(shared.activation_delay.as_millis()).unwrap_or(i64::MAX);
    shared.change(|state| {
        let effects = state.update_number(&auth_id, &number, update, delay_ms, now_ms())?;
        Ok::<_, ApiError>(((), effects))
    })?;
    match enabling {
        Some(true) => tracing::info!(account = %auth_id, "Enabled caller reputation"),
        Some(false) => tracing::info!(account = %auth_id, "Disabled caller reputation"),
        None => tracing::info!(account = %auth_id, "Number updated"),
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "changed", "api_id": new_api_id()})),
    )
        .into_response())
}

/// `DELETE …/Number/{number}/`: 204 without a body.
pub async fn unrent(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, number)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    shared.change(|state| {
        if state.unrent(&auth_id, &number) {
            Ok(((), Effects::default()))
        } else {
            Err(ApiError::NumberNotFound)
        }
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_update(body: Map<String, Value>) -> Result<NumberUpdate, ApiError> {
    let mut update = NumberUpdate::default();
    for (key, value) in body {
        let invalid = || ApiError::InvalidParameter(key.clone());
        match key.as_str() {
            "caller_reputation" => {
                let flag = value.as_str().ok_or_else(invalid)?;
                update.caller_reputation = match flag.to_ascii_lowercase().as_str() {
                    "enabled" => Some(true),
                    "disabled" => Some(false),
                    _ => return Err(invalid()),
                };
            }
            "profile_uuid" => {
                update.profile_uuid = Some(value.as_str().ok_or_else(invalid)?.to_string());
            }
            "caller_reputation_callback_url" => {
                let url = value.as_str().ok_or_else(invalid)?;
                if !url.is_empty() && url::Url::parse(url).is_err() {
                    return Err(invalid());
                }
                update.callback_url = Some(url.to_string());
            }
            "caller_reputation_callback_method" => {
                let method = value.as_str().ok_or_else(invalid)?;
                update.callback_method = Some(match method.to_ascii_uppercase().as_str() {
                    "GET" => CallbackMethod::Get,
                    "POST" => CallbackMethod::Post,
                    _ => return Err(invalid()),
                });
            }
            "cnam_lookup" => {
                let flag = value.as_str().ok_or_else(invalid)?;
                if flag != "enabled" && flag != "disabled" {
                    return Err(invalid());
                }
                update.settings.insert(key.clone(), flag.to_string());
            }
            _ if SETTINGS.contains(&key.as_str()) => {
                let text = match &value {
                    Value::Null => String::new(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                update.settings.insert(key.clone(), text);
            }
            // Plivo ignores keys it does not know; so does the sandbox.
            _ => {}
        }
    }
    Ok(update)
}

/// Returns the number object as Plivo renders it, with realistic values for
/// the fields the sandbox does not model.
pub fn render(number: &Number) -> Value {
    let us = number.country == "US";
    let tollfree = number.number_type == NumberType::Tollfree;
    let setting = |key: &str| {
        number
            .settings
            .get(key)
            .filter(|value| !value.is_empty())
            .cloned()
    };
    let application =
        setting("app_id").map(|app| format!("/v1/Account/{}/Application/{app}/", number.account));
    let (region, city) = place(number);
    let monthly = match number.number_type {
        NumberType::Tollfree => "1.00000",
        NumberType::Mobile => "0.80000",
        NumberType::Local | NumberType::Fixed | NumberType::National => "0.50000",
    };

    json!({
        "number": number.number,
        "alias": setting("alias"),
        "sub_account": setting("subaccount"),
        "sub_account_name": "",
        "added_on": number.added_on,
        "application": application,
        "carrier": "Plivo",
        "region": region,
        "city": city,
        "country": country_name(&number.country),
        "number_type": number.number_type.as_str(),
        "monthly_rental_rate": monthly,
        "renewal_date": renewal_date(&number.added_on),
        "voice_enabled": true,
        "voice_rate": "0.00850",
        "sms_enabled": true,
        "sms_rate": "0.00500",
        "mms_enabled": !tollfree,
        "mms_rate": "0.01500",
        "active": true,
        "cnam_lookup": if us { Value::from(setting("cnam_lookup").unwrap_or_else(|| "disabled".to_string())) } else { Value::Null },
        "cnam": setting("cnam").unwrap_or_default(),
        "tendlc_registration_status": if us && !tollfree { Value::from("UNREGISTERED") } else { Value::Null },
        "tendlc_campaign_id": Value::Null,
        "toll_free_sms_verification": if tollfree { Value::from("unverified") } else { Value::Null },
        "toll_free_sms_verification_id": Value::Null,
        "toll_free_sms_verification_order_status": Value::Null,
        "compliance_application_id": setting("compliance_application_id"),
        "compliance_status": Value::Null,
        "profile_uuid": number.profile_uuid,
        "caller_reputation_status": number.status.map(|status| status.as_str()),
        "resource_uri": format!("/v1/Account/{}/Number/{}/", number.account, number.number),
    })
}

fn country_name(code: &str) -> &str {
    match code {
        "US" => "UNITED STATES",
        "CA" => "CANADA",
        "GB" => "UNITED KINGDOM",
        "IN" => "INDIA",
        "DE" => "GERMANY",
        "AU" => "AUSTRALIA",
        other => other,
    }
}

/// Returns `region` and `city` from a few well-known US area codes.
fn place(number: &Number) -> (String, String) {
    let country = country_name(&number.country);
    if number.country != "US" || number.number_type == NumberType::Tollfree {
        return (country.to_string(), String::new());
    }
    let area = number.number.get(1..4).unwrap_or_default();
    let (state, city) = match area {
        "415" | "628" => ("California", "San Francisco"),
        "213" | "310" => ("California", "Los Angeles"),
        "212" | "646" => ("New York", "New York"),
        "512" | "737" => ("Texas", "Austin"),
        "312" => ("Illinois", "Chicago"),
        "206" => ("Washington", "Seattle"),
        _ => ("", ""),
    };
    if state.is_empty() {
        (country.to_string(), String::new())
    } else {
        (format!("{state}, {country}"), city.to_string())
    }
}

fn renewal_date(added_on: &str) -> String {
    added_on
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|date| date.checked_add(jiff::Span::new().months(1)).ok())
        .map_or_else(|| added_on.to_string(), |date| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn update_reads_caller_reputation_keys() {
        let update = parse_update(body(json!({
            "caller_reputation": "enabled",
            "profile_uuid": "p1",
            "caller_reputation_callback_url": "http://127.0.0.1:9/cb",
            "caller_reputation_callback_method": "GET",
        })))
        .unwrap();
        assert_eq!(update.caller_reputation, Some(true));
        assert_eq!(update.profile_uuid.as_deref(), Some("p1"));
        assert_eq!(update.callback_method, Some(CallbackMethod::Get));
    }

    #[test]
    fn update_rejects_unknown_flag_value() {
        let error = parse_update(body(json!({"caller_reputation": "on"}))).unwrap_err();
        assert_eq!(
            error,
            ApiError::InvalidParameter("caller_reputation".to_string())
        );
    }

    #[test]
    fn renewal_is_one_month_after_purchase() {
        assert_eq!(renewal_date("2026-01-31"), "2026-02-28");
    }
}

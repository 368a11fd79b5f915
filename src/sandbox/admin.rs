//! Admin endpoints under `/_sandbox/`: not part of Plivo's API. They let tests
//! and demos seed numbers, force carrier decisions, change state behind the
//! operator's back, read the request log and counters, and switch faults.
//! They need no credentials and are not rate-limited, faulted or logged.
//! See the module documentation of [`crate::sandbox`] for the list.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::SeedNumber;
use super::faults::FaultConfig;
use super::server::{Shared, lock, now_ms};
use super::state::{CrStatus, Effects, digits_only};
use super::{numbers, profiles};

/// Builds the router of `/_sandbox/` paths.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/counters", get(counters))
        .route("/_sandbox/requests", get(requests).delete(clear_requests))
        .route("/_sandbox/callbacks", get(callbacks))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/numbers", post(add_numbers))
        .route("/_sandbox/numbers/{number}", delete(unrent_number))
        .route("/_sandbox/numbers/{number}/decision", post(force_decision))
        .route("/_sandbox/numbers/{number}/disable", post(disable_number))
        .route("/_sandbox/numbers/{number}/profile", post(move_number))
        .route("/_sandbox/profiles", post(add_profile))
        .route("/_sandbox/profiles/{uuid}", delete(delete_profile))
        .route("/_sandbox/faults", get(all_faults))
        .route(
            "/_sandbox/faults/{account}",
            get(account_faults).put(put_faults).delete(clear_faults),
        )
        .with_state(shared)
}

/// An admin failure: status and message, rendered as `{"error": message}`.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, message.into())
}

fn number_not_found(number: &str) -> AdminError {
    AdminError(
        StatusCode::NOT_FOUND,
        format!("number {number} is not rented by any account"),
    )
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /_sandbox/state`: profiles and numbers of every account, counters and faults.
async fn state(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let (profiles, numbers, counters) = shared.read(|state| {
        let profiles: Vec<Value> = state
            .profiles
            .values()
            .map(|profile| {
                let mut rendered = profiles::render(profile);
                rendered["account"] = Value::from(profile.account.clone());
                rendered
            })
            .collect();
        let numbers: Vec<Value> = state
            .numbers
            .values()
            .map(|number| {
                let mut rendered = numbers::render(number);
                rendered["account"] = Value::from(number.account.clone());
                rendered["caller_reputation_callback_url"] = json!(number.callback_url);
                rendered["caller_reputation_callback_method"] = json!(number.callback_method);
                rendered
            })
            .collect();
        (profiles, numbers, state.counters.clone())
    });
    Json(json!({
        "accounts": shared.account_ids(),
        "profiles": profiles,
        "numbers": numbers,
        "counters": counters,
        "faults": shared.all_faults(),
    }))
}

/// `GET /_sandbox/counters`: transition and request counters by number.
async fn counters(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(shared.read(|state| state.counters.clone())))
}

#[derive(Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    since: u64,
    account: Option<String>,
}

/// `GET /_sandbox/requests?since=SEQ&account=AUTH_ID`.
async fn requests(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<RequestsQuery>,
) -> Json<Value> {
    let log = lock(&shared.log);
    let requests = log.since(query.since, query.account.as_deref());
    Json(json!({"requests": requests, "last_seq": log.last_seq()}))
}

/// `DELETE /_sandbox/requests`.
async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.log).clear();
    StatusCode::NO_CONTENT
}

/// `GET /_sandbox/callbacks`: every delivery attempt.
async fn callbacks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"callbacks": shared.deliveries()}))
}

/// `POST /_sandbox/reset`.
async fn reset(State(shared): State<Arc<Shared>>) -> Result<StatusCode, AdminError> {
    shared
        .reset()
        .map_err(|error| AdminError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    tracing::info!("Sandbox reset");
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /_sandbox/numbers`: one number or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumbersBody {
    Many(Vec<SeedNumber>),
    One(SeedNumber),
}

/// `POST /_sandbox/numbers`.
async fn add_numbers(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let seeds = match parse_json::<NumbersBody>(&body)? {
        NumbersBody::Many(seeds) => seeds,
        NumbersBody::One(seed) => vec![seed],
    };
    for seed in &seeds {
        if !shared.has_account(&seed.account) {
            return Err(bad_request(format!(
                "account {} is not configured in this sandbox",
                seed.account
            )));
        }
    }
    let today = jiff::Zoned::now().date().to_string();
    let added = shared.change(|state| {
        // Applied to a copy so that one invalid entry leaves every number unchanged.
        let mut next = state.clone();
        let mut effects = Effects::default();
        for seed in &seeds {
            next.add_number(seed, &today, &mut effects)
                .map_err(bad_request)?;
        }
        *state = next;
        Ok::<_, AdminError>((seeds.len(), effects))
    })?;
    Ok((StatusCode::CREATED, Json(json!({"added": added}))))
}

/// Body of `POST /_sandbox/profiles`: a profile made outside the operator,
/// with the UUID the caller chooses, so demos and tests can adopt a known UUID.
#[derive(Deserialize)]
struct ProfileBody {
    account: String,
    profile_uuid: String,
    /// Profile fields as Plivo's create request carries them.
    fields: serde_json::Map<String, Value>,
}

/// `POST /_sandbox/profiles`.
async fn add_profile(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let ProfileBody {
        account,
        profile_uuid,
        fields,
    } = parse_json(&body)?;
    if !shared.has_account(&account) {
        return Err(bad_request(format!(
            "account {account} is not configured in this sandbox"
        )));
    }
    let created_at = profiles::created_at_now();
    let uuid = shared.change(|state| {
        if state.profiles.contains_key(&profile_uuid) {
            return Err(bad_request(format!(
                "profile {profile_uuid} already exists"
            )));
        }
        let uuid = state
            .create_profile(&account, fields, profile_uuid.clone(), created_at)
            .map_err(|error| bad_request(format!("{error:?}")))?;
        Ok::<_, AdminError>((uuid, Effects::default()))
    })?;
    Ok((StatusCode::CREATED, Json(json!({"profile_uuid": uuid}))))
}

/// `DELETE /_sandbox/numbers/{number}`: unrent behind the operator's back.
async fn unrent_number(
    State(shared): State<Arc<Shared>>,
    Path(number): Path<String>,
) -> Result<StatusCode, AdminError> {
    let key = digits_only(&number);
    shared.change(|state| {
        let account = state
            .numbers
            .get(&key)
            .map(|found| found.account.clone())
            .ok_or_else(|| number_not_found(&key))?;
        state.unrent(&account, &key);
        Ok::<_, AdminError>(((), Effects::default()))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    status: CrStatus,
}

/// `POST /_sandbox/numbers/{number}/decision` with `{"status": "ACTIVE"}`,
/// `FAILED`, `NOT_ENROLLED` or `PENDING`.
async fn force_decision(
    State(shared): State<Arc<Shared>>,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let DecisionBody { status } = parse_json(&body)?;
    let key = digits_only(&number);
    let rendered = shared.change(|state| {
        let mut effects = Effects::default();
        if !state.force_status(&key, status, &mut effects) {
            return Err(number_not_found(&key));
        }
        Ok((numbers::render(&state.numbers[&key]), effects))
    })?;
    Ok(Json(rendered))
}

/// `POST /_sandbox/numbers/{number}/disable`: Caller Reputation off, as if
/// someone disabled it in the Plivo console.
async fn disable_number(
    State(shared): State<Arc<Shared>>,
    Path(number): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let key = digits_only(&number);
    let rendered = shared.change(|state| {
        if !state.numbers.contains_key(&key) {
            return Err(number_not_found(&key));
        }
        let mut effects = Effects::default();
        state.clear(&key, &mut effects);
        Ok((numbers::render(&state.numbers[&key]), effects))
    })?;
    Ok(Json(rendered))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    profile_uuid: String,
}

/// `POST /_sandbox/numbers/{number}/profile` with `{"profile_uuid": …}`:
/// links another profile of the same account and starts a new `PENDING` period.
async fn move_number(
    State(shared): State<Arc<Shared>>,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let MoveBody { profile_uuid } = parse_json(&body)?;
    let key = digits_only(&number);
    let delay_ms = i64::try_from(shared.activation_delay.as_millis()).unwrap_or(i64::MAX);
    let rendered = shared.change(|state| {
        let account = state
            .numbers
            .get(&key)
            .map(|found| found.account.clone())
            .ok_or_else(|| number_not_found(&key))?;
        if state.profile(&account, &profile_uuid).is_none() {
            return Err(bad_request(format!(
                "profile {profile_uuid} does not exist in account {account}"
            )));
        }
        let mut effects = Effects::default();
        state.start_pending(&key, &profile_uuid, delay_ms, now_ms(), &mut effects);
        Ok((numbers::render(&state.numbers[&key]), effects))
    })?;
    Ok(Json(rendered))
}

/// `DELETE /_sandbox/profiles/{uuid}`: delete behind the operator's back; its
/// numbers lose Caller Reputation.
async fn delete_profile(
    State(shared): State<Arc<Shared>>,
    Path(uuid): Path<String>,
) -> Result<StatusCode, AdminError> {
    shared.change(|state| {
        let account = state
            .profiles
            .get(&uuid)
            .map(|profile| profile.account.clone())
            .ok_or_else(|| {
                AdminError(StatusCode::NOT_FOUND, format!("profile {uuid} not found"))
            })?;
        let effects = state
            .delete_profile(&account, &uuid)
            .map_err(|error| AdminError(StatusCode::NOT_FOUND, error.to_string()))?;
        Ok(((), effects))
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_sandbox/faults`: faults of every account.
async fn all_faults(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, FaultConfig>> {
    Json(shared.all_faults().into_iter().collect())
}

/// `GET /_sandbox/faults/{account}`.
async fn account_faults(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
) -> Result<Json<FaultConfig>, AdminError> {
    known_account(&shared, &account)?;
    Ok(Json(shared.faults_for(&account)))
}

/// `PUT /_sandbox/faults/{account}` with a fault configuration; replaces the
/// account's faults entirely.
async fn put_faults(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    body: Bytes,
) -> Result<Json<FaultConfig>, AdminError> {
    known_account(&shared, &account)?;
    let faults: FaultConfig = parse_json(&body)?;
    faults
        .validate()
        .map_err(|error| bad_request(error.to_string()))?;
    tracing::info!(account = %account, "Faults changed");
    shared.set_faults(&account, faults.clone());
    Ok(Json(faults))
}

/// `DELETE /_sandbox/faults/{account}`: no faults for the account.
async fn clear_faults(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
) -> Result<StatusCode, AdminError> {
    known_account(&shared, &account)?;
    shared.set_faults(&account, FaultConfig::default());
    Ok(StatusCode::NO_CONTENT)
}

fn known_account(shared: &Shared, account: &str) -> Result<(), AdminError> {
    if shared.has_account(account) {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("account {account} is not configured in this sandbox"),
        ))
    }
}

//! The Plivo API surface: routes, Plivo-shaped errors and pagination shared by
//! the Profile and Number handlers.
//!
//! Paths must end with `/` as every Plivo SDK sends them. A path without the
//! trailing slash gets 404 `{"api_id","error":"not found"}`, because
//! Plivo's behaviour there is unknown and a client that drops the slash should
//! notice in tests rather than in production.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::server::Shared;
use super::state::ApiError;
use super::{guard, numbers, profiles};

/// Largest `limit` Plivo accepts on list endpoints.
pub const MAX_LIMIT: usize = 20;

/// Builds the router of Plivo paths, guarded by authentication, the rate
/// limit, faults and the request log.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/Account/{auth_id}/Profile/",
            get(profiles::list).post(profiles::create),
        )
        .route(
            "/v1/Account/{auth_id}/Profile/{profile_uuid}/",
            get(profiles::get)
                .post(profiles::update)
                .delete(profiles::delete),
        )
        .route("/v1/Account/{auth_id}/Number/", get(numbers::list))
        .route(
            "/v1/Account/{auth_id}/Number/{number}/",
            get(numbers::get)
                .post(numbers::update)
                .delete(numbers::unrent),
        )
        .route("/v1/Account/{auth_id}/", get(account))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            guard::guard,
        ))
        .with_state(shared)
}

/// `GET /v1/Account/{auth_id}/`, the credential check Plivo's docs start with.
async fn account(axum::extract::Path(auth_id): axum::extract::Path<String>) -> axum::Json<Value> {
    axum::Json(json!({
        "api_id": new_api_id(),
        "account_type": "standard",
        "auth_id": auth_id,
        "name": "Plivo sandbox",
        "resource_uri": format!("/v1/Account/{auth_id}/"),
    }))
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Returns a fresh `api_id`.
pub fn new_api_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds `{"api_id": …, "error": message}` with `status`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"api_id": new_api_id(), "error": message})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        error_response(status, &self.to_string())
    }
}

/// Parses a request body as a JSON object; an empty body is an empty object.
///
/// # Errors
/// [`ApiError::InvalidParameter`] when the body is not a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) | Err(_) => Err(ApiError::InvalidParameter(
            "request body must be a JSON object".to_string(),
        )),
    }
}

/// `limit` and `offset` of a list request.
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    /// Reads `limit` (1 to 20, default 20) and `offset` (default 0).
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] naming the bad parameter.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, ApiError> {
        let limit = parse_number(query, "limit")?.unwrap_or(MAX_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::InvalidParameter(format!(
                "limit (must be between 1 and {MAX_LIMIT})"
            )));
        }
        let offset = parse_number(query, "offset")?.unwrap_or(0);
        Ok(Self { limit, offset })
    }

    /// Builds the `meta` object with relative `next`/`previous` links that keep
    /// the other query parameters.
    pub fn meta(&self, path: &str, query: &[(String, String)], total: usize) -> Value {
        let link = |offset: usize| {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in query {
                if key != "limit" && key != "offset" {
                    serializer.append_pair(key, value);
                }
            }
            serializer.append_pair("limit", &self.limit.to_string());
            serializer.append_pair("offset", &offset.to_string());
            format!("{path}?{}", serializer.finish())
        };
        let next = (self.offset + self.limit < total).then(|| link(self.offset + self.limit));
        let previous = (self.offset > 0).then(|| link(self.offset.saturating_sub(self.limit)));
        json!({
            "limit": self.limit,
            "offset": self.offset,
            "next": next,
            "previous": previous,
            "total_count": total,
        })
    }

    /// Returns this page of `items`.
    pub fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect()
    }
}

fn parse_number(query: &[(String, String)], key: &str) -> Result<Option<usize>, ApiError> {
    match query.iter().find(|(name, _)| name == key) {
        None => Ok(None),
        Some((_, value)) => value
            .parse()
            .map(Some)
            .map_err(|_| ApiError::InvalidParameter(key.to_string())),
    }
}

/// Returns the value of `key` in `query`.
pub fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

use std::{collections::HashMap, sync::Mutex};

use axum::{body::Body, http::Request};
use futures::future::BoxFuture;
use secrecy::SecretString;
use tower::ServiceExt;

use super::*;
use crate::controller::CallbackTarget;

const TOKEN: &str = "owner-auth-token";
const MAIN_TOKEN: &str = "main-account-auth-token";
const NUMBER: &str = "14155550100";
const NONCE: &str = "31627761595286130198";
const LOCAL_HOST: &str = "127.0.0.1:8080";

/// A sink that manages one number and records every trigger.
#[derive(Default)]
struct RecordingSink {
    targets: HashMap<String, Vec<(String, String, Vec<String>)>>,
    triggered: Mutex<Vec<(String, String)>>,
}

impl RecordingSink {
    fn with_number(number: &str, tokens: &[&str]) -> Self {
        let mut sink = Self::default();
        sink.targets.insert(
            number.to_string(),
            vec![(
                "team-a".to_string(),
                "main-line".to_string(),
                tokens.iter().map(|token| token.to_string()).collect(),
            )],
        );
        sink
    }

    fn triggered(&self) -> Vec<(String, String)> {
        self.triggered.lock().unwrap().clone()
    }
}

impl CallbackSink for RecordingSink {
    fn targets(&self, number_digits: &str) -> BoxFuture<'_, Vec<CallbackTarget>> {
        let targets = self
            .targets
            .get(number_digits)
            .into_iter()
            .flatten()
            .map(|(namespace, name, tokens)| CallbackTarget {
                namespace: namespace.clone(),
                name: name.clone(),
                auth_tokens: tokens
                    .iter()
                    .map(|token| SecretString::from(token.clone()))
                    .collect(),
            })
            .collect();
        Box::pin(async move { targets })
    }

    fn trigger(&self, namespace: &str, name: &str) {
        self.triggered
            .lock()
            .unwrap()
            .push((namespace.to_string(), name.to_string()));
    }
}

struct Harness {
    sink: Arc<RecordingSink>,
    readiness: Arc<Readiness>,
    router: Router,
}

fn harness(sink: RecordingSink, public_base_url: Option<&str>) -> Harness {
    let sink = Arc::new(sink);
    let readiness = Arc::new(Readiness::default());
    readiness.set_role(Role::Leader);
    let router = routes(CallbackState {
        sink: sink.clone(),
        public_base_url: public_base_url.map(|url| Url::parse(url).expect("base URL parses")),
        readiness: readiness.clone(),
        metrics: Arc::new(Metrics::new()),
    });
    Harness {
        sink,
        readiness,
        router,
    }
}

fn status_form(number: &str) -> Vec<(String, String)> {
    [
        ("number", number),
        ("profile_uuid", "201faedc-7df9-4840-9ab1-3997ce3f7cf4"),
        ("caller_reputation_status", "ACTIVE"),
        ("api_id", "5b1b1a4e-1f0b-11ef-9c2f-0242ac110002"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

fn encode_form(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn local_url() -> String {
    format!("http://{LOCAL_HOST}{CALLBACK_PATH}")
}

/// Builds a POST as the server receives it, with extra headers.
fn post(body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(CALLBACK_PATH)
        .header(header::HOST, LOCAL_HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Body::from(body.to_string()))
        .expect("request builds")
}

fn v3_headers(signature: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Plivo-Signature-V3", signature.to_string()),
        ("X-Plivo-Signature-V3-Nonce", NONCE.to_string()),
    ]
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

async fn send(router: &Router, request: Request<Body>) -> StatusCode {
    router
        .clone()
        .oneshot(request)
        .await
        .expect("router responds")
        .status()
}

fn triggered_main_line() -> Vec<(String, String)> {
    vec![("team-a".to_string(), "main-line".to_string())]
}

#[tokio::test]
async fn v3_signed_post_triggers_reconcile() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn number_with_plus_sign_is_found() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form("+14155550100");
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn duplicate_delivery_is_accepted_again() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);
    let headers = v3_headers(&signature);

    let first = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&headers)),
    )
    .await;
    let second = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&headers)),
    )
    .await;

    assert_eq!(first, StatusCode::OK);
    assert_eq!(second, StatusCode::OK);
    assert_eq!(
        harness.sink.triggered().len(),
        2,
        "trigger is idempotent downstream"
    );
}

#[tokio::test]
async fn forged_signature_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);

    let status = send(
        &harness.router,
        post(
            &encode_form(&form),
            &as_refs(&v3_headers("JfmxIim/qymUcRLjm5Bk60+3mKWPBsNVJ/IoXMLpN1g=")),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn unsigned_callback_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);

    let status = send(
        &harness.router,
        post(&encode_form(&status_form(NUMBER)), &[]),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn signature_without_nonce_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &[("X-Plivo-Signature-V3", &signature)]),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn replay_with_other_body_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let signed_form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &signed_form, NONCE, TOKEN);
    let mut altered_form = signed_form.clone();
    altered_form[2].1 = "FAILED".to_string();

    let status = send(
        &harness.router,
        post(
            &encode_form(&altered_form),
            &as_refs(&v3_headers(&signature)),
        ),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn wrong_token_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, "another-token");

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn unknown_number_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form("14155550199");
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn missing_number_is_bad_request() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form: Vec<(String, String)> = status_form(NUMBER)
        .into_iter()
        .filter(|(key, _)| key != "number")
        .collect();
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn main_account_v3_signature_is_accepted() {
    let harness = harness(
        RecordingSink::with_number(NUMBER, &[TOKEN, MAIN_TOKEN]),
        None,
    );
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, MAIN_TOKEN);

    let status = send(
        &harness.router,
        post(
            &encode_form(&form),
            &[
                ("X-Plivo-Signature-Ma-V3", &signature),
                ("X-Plivo-Signature-V3-Nonce", NONCE),
            ],
        ),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn any_comma_separated_v3_signature_may_match() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let stale = signature::sign_v3("POST", &local_url(), &form, NONCE, "rotated-out-token");
    let current = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);
    let header_value = format!("{stale},{current}");

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&header_value))),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn v2_signature_is_accepted_without_v3() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let signature = signature::sign_v2(&local_url(), "v2-nonce", TOKEN);

    let status = send(
        &harness.router,
        post(
            &encode_form(&form),
            &[
                ("X-Plivo-Signature-V2", &signature),
                ("X-Plivo-Signature-V2-Nonce", "v2-nonce"),
            ],
        ),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn v2_is_ignored_when_v3_is_present() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let form = status_form(NUMBER);
    let valid_v2 = signature::sign_v2(&local_url(), "v2-nonce", TOKEN);

    let status = send(
        &harness.router,
        post(
            &encode_form(&form),
            &[
                ("X-Plivo-Signature-V3", "bm90IGEgc2lnbmF0dXJl"),
                ("X-Plivo-Signature-V3-Nonce", NONCE),
                ("X-Plivo-Signature-V2", &valid_v2),
                ("X-Plivo-Signature-V2-Nonce", "v2-nonce"),
            ],
        ),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn public_url_verifies_behind_proxy() {
    // Plivo signed the public HTTPS URL; the request reaches the operator
    // as plain HTTP on loopback after the proxy terminated TLS.
    let harness = harness(
        RecordingSink::with_number(NUMBER, &[TOKEN]),
        Some("https://callbacks.example.com"),
    );
    let form = status_form(NUMBER);
    let public_url = "https://callbacks.example.com/callbacks/caller-reputation";
    let signature = signature::sign_v3("POST", public_url, &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn host_header_is_ignored_with_public_url() {
    let harness = harness(
        RecordingSink::with_number(NUMBER, &[TOKEN]),
        Some("https://callbacks.example.com"),
    );
    let form = status_form(NUMBER);
    // Signed for the address the request arrives at, not the registered URL.
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let status = send(
        &harness.router,
        post(&encode_form(&form), &as_refs(&v3_headers(&signature))),
    )
    .await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn public_url_keeps_query_and_port() {
    let harness = harness(
        RecordingSink::with_number(NUMBER, &[TOKEN]),
        Some("https://callbacks.example.com:8443/operator/"),
    );
    let form = status_form(NUMBER);
    let signed_url =
        "https://callbacks.example.com:8443/operator/callbacks/caller-reputation?cluster=east";
    let signature = signature::sign_v3("POST", signed_url, &form, NONCE, TOKEN);
    let headers = v3_headers(&signature);
    let mut request = Request::post(format!("{CALLBACK_PATH}?cluster=east"))
        .header(header::HOST, LOCAL_HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in &headers {
        request = request.header(*name, value.as_str());
    }

    let status = send(
        &harness.router,
        request.body(Body::from(encode_form(&form))).unwrap(),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn v3_signed_get_triggers_reconcile() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let query = encode_form(&status_form(NUMBER));
    let url = format!("{}?{query}", local_url());
    let signature = signature::sign_v3("GET", &url, &[], NONCE, TOKEN);
    let request = Request::get(format!("{CALLBACK_PATH}?{query}"))
        .header(header::HOST, LOCAL_HOST)
        .header("X-Plivo-Signature-V3", signature)
        .header("X-Plivo-Signature-V3-Nonce", NONCE)
        .body(Body::empty())
        .unwrap();

    let status = send(&harness.router, request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.sink.triggered(), triggered_main_line());
}

#[tokio::test]
async fn standby_returns_unavailable() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    harness.readiness.set_role(Role::Standby);
    let form = status_form(NUMBER);
    let signature = signature::sign_v3("POST", &local_url(), &form, NONCE, TOKEN);

    let response = harness
        .router
        .clone()
        .oneshot(post(&encode_form(&form), &as_refs(&v3_headers(&signature))))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert!(harness.sink.triggered().is_empty());
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let harness = harness(RecordingSink::with_number(NUMBER, &[TOKEN]), None);
    let body = format!("number={NUMBER}&padding={}", "a".repeat(BODY_LIMIT));

    let status = send(&harness.router, post(&body, &[])).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(harness.sink.triggered().is_empty());
}

#[test]
fn public_callback_url_appends_path() {
    let cases = [
        (
            "https://callbacks.example.com",
            "https://callbacks.example.com/callbacks/caller-reputation",
        ),
        (
            "https://callbacks.example.com/",
            "https://callbacks.example.com/callbacks/caller-reputation",
        ),
        (
            "https://example.com/operator/",
            "https://example.com/operator/callbacks/caller-reputation",
        ),
        (
            "http://10.0.0.5:8080",
            "http://10.0.0.5:8080/callbacks/caller-reputation",
        ),
    ];
    for (base, expected) in cases {
        let url = public_callback_url(&Url::parse(base).unwrap());

        assert_eq!(url.as_str(), expected, "{base}");
    }
}

#[test]
fn public_callback_url_matches_url_join() {
    // Validated base URLs end with '/', so joining the relative callback
    // path, as the number controller does, gives the same URL.
    for base in [
        "https://callbacks.example.com/",
        "https://example.com/operator/",
    ] {
        let base = Url::parse(base).unwrap();
        let joined = base.join(CALLBACK_PATH.trim_start_matches('/')).unwrap();

        assert_eq!(public_callback_url(&base), joined, "{base}");
    }
}

#[test]
fn masked_number_keeps_last_four_digits() {
    assert_eq!(mask_number("14155550100"), "*******0100");
    assert_eq!(mask_number("12"), "12");
}

#[test]
fn throttle_admits_one_warning_per_interval() {
    let throttle = Throttle::new(Duration::from_secs(60));
    let start = Instant::now();

    assert_eq!(throttle.admit(start), Some(0));
    assert_eq!(throttle.admit(start + Duration::from_secs(1)), None);
    assert_eq!(throttle.admit(start + Duration::from_secs(59)), None);
    assert_eq!(throttle.admit(start + Duration::from_secs(60)), Some(2));
    assert_eq!(throttle.admit(start + Duration::from_secs(61)), None);
}

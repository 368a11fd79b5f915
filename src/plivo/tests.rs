//! HTTP-level tests of the client against a scripted server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::*;

const AUTH_ID: &str = "MATESTACCOUNT0000001";
const TOKEN: &str = "tok-5ecret-never-shown";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path_and_query: String,
    authorization: Option<String>,
    content_type: Option<String>,
    user_agent: Option<String>,
    body: Vec<u8>,
    at: std::time::Instant,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A scripted response.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: impl Into<String>) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.into(),
        delay: Duration::ZERO,
    }
}

impl Canned {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Seen, usize) -> Canned + Send + Sync;

struct Script {
    respond: Box<Responder>,
    seen: Mutex<Vec<Seen>>,
}

/// A running scripted server; `respond` gets each request and its index (from 0).
struct Server {
    base_url: Url,
    script: Arc<Script>,
}

impl Server {
    async fn start(respond: impl Fn(&Seen, usize) -> Canned + Send + Sync + 'static) -> Self {
        let script = Arc::new(Script {
            respond: Box::new(respond),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(respond_scripted)
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: Url::parse(&format!("http://{address}")).unwrap(),
            script,
        }
    }

    /// Starts a server that sends the same response to every request.
    async fn always(canned: Canned) -> Self {
        Self::start(move |_, _| canned.clone()).await
    }

    /// Starts a server that sends `replies` in order, repeating the last one.
    async fn sequence(replies: Vec<Canned>) -> Self {
        Self::start(move |_, index| replies[index.min(replies.len() - 1)].clone()).await
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }

    fn account(&self) -> Account {
        self.account_with(|_| {})
    }

    fn account_with(&self, adjust: impl FnOnce(&mut ClientConfig)) -> Account {
        client_for(&self.base_url, adjust).account(Credentials::new(AUTH_ID, TOKEN))
    }
}

fn client_for(base_url: &Url, adjust: impl FnOnce(&mut ClientConfig)) -> PlivoClient {
    let mut config = ClientConfig {
        base_url: base_url.clone(),
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    adjust(&mut config);
    PlivoClient::new(config).unwrap()
}

async fn respond_scripted(
    State(script): State<Arc<Script>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let seen = Seen {
        method,
        path_and_query: uri.path_and_query().unwrap().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        body: body.to_vec(),
        at: std::time::Instant::now(),
    };
    let index = {
        let mut all = script.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let canned = (script.respond)(&seen, index);
    tokio::time::sleep(canned.delay).await;
    let mut response = (StatusCode::from_u16(canned.status).unwrap(), canned.body).into_response();
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    for (name, value) in canned.headers {
        response
            .headers_mut()
            .insert(name, axum::http::HeaderValue::from_str(&value).unwrap());
    }
    response
}

fn number_json(number: &str) -> String {
    serde_json::json!({
        "api_id": "b2c4", "number": number, "alias": null, "number_type": "local",
        "country": "United States", "region": "California, UNITED STATES",
        "profile_uuid": "f3a1", "caller_reputation_status": "PENDING",
        "resource_uri": format!("/v1/Account/{AUTH_ID}/Number/{number}/")
    })
    .to_string()
}

fn profile_json(uuid: &str) -> serde_json::Value {
    serde_json::json!({
        "profile_uuid": uuid, "profile_alias": "acme-main", "entity_type": "PRIVATE",
        "company_name": "Acme Corp", "ein": "123456789",
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX",
                    "postal_code": "78701", "country": "US"}
    })
}

fn create_request() -> CreateProfile {
    CreateProfile {
        profile_alias: "acme-main".into(),
        customer_type: "DIRECT".into(),
        entity_type: "PRIVATE".into(),
        company_name: "Acme Corp".into(),
        vertical: "TECHNOLOGY".into(),
        ein: Some("123456789".into()),
        website: Some("https://acme.example".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn number_paths_use_digits_and_trailing_slash() {
    let server = Server::start(|seen, _| match seen.method {
        Method::GET => reply(200, number_json("14155550100")),
        _ => reply(202, r#"{"message":"changed","api_id":"x"}"#),
    })
    .await;
    let account = server.account();

    let number = account.get_number("+14155550100").await.unwrap();
    account
        .update_number("14155550100", &UpdateNumber::disable_caller_reputation())
        .await
        .unwrap();

    let seen = server.seen();
    let expected = format!("/v1/Account/{AUTH_ID}/Number/14155550100/");
    assert_eq!(seen[0].path_and_query, expected);
    assert_eq!(seen[1].method, Method::POST);
    assert_eq!(seen[1].path_and_query, expected);
    assert_eq!(number.number, "14155550100");
    assert_eq!(number.number_type, Some(NumberType::Local));
    assert_eq!(
        number.caller_reputation_status,
        Some(CallerReputationStatus::Pending)
    );
    assert_eq!(number.profile_uuid.as_deref(), Some("f3a1"));
}

#[tokio::test]
async fn profile_paths_keep_a_base_url_prefix() {
    let server = Server::always(reply(
        200,
        serde_json::json!({"api_id": "x", "profile": profile_json("f3a1")}).to_string(),
    ))
    .await;
    let prefixed = server.base_url.join("/plivo/").unwrap();
    let account = client_for(&prefixed, |_| {}).account(Credentials::new(AUTH_ID, TOKEN));

    let profile = account.get_profile("f3a1").await.unwrap();

    assert_eq!(
        server.seen()[0].path_and_query,
        format!("/plivo/v1/Account/{AUTH_ID}/Profile/f3a1/")
    );
    assert_eq!(profile.profile_uuid, "f3a1");
    assert_eq!(profile.company_name.as_deref(), Some("Acme Corp"));
}

#[tokio::test]
async fn list_numbers_sends_filters_as_query() {
    let server = Server::always(reply(
        200,
        r#"{"api_id":"x","meta":{"limit":5,"offset":10,"next":null,"previous":null,"total_count":11},
            "objects":[{"number":"18005550100","number_type":"tollfree"}]}"#,
    ))
    .await;
    let query = ListNumbers {
        limit: 5,
        offset: 10,
        number_type: Some(NumberType::Tollfree),
        ..Default::default()
    };

    let page = server.account().list_numbers(&query).await.unwrap();

    assert_eq!(
        server.seen()[0].path_and_query,
        format!("/v1/Account/{AUTH_ID}/Number/?limit=5&offset=10&type=tollfree")
    );
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.meta.total_count, Some(11));
    assert_eq!(page.meta.next, None);
}

#[tokio::test]
async fn every_request_carries_basic_auth() {
    let server = Server::always(reply(200, number_json("14155550100"))).await;

    server.account().get_number("14155550100").await.unwrap();

    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:{TOKEN}"));
    assert_eq!(
        server.seen()[0].authorization.as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
}

#[tokio::test]
async fn create_profile_sends_json_and_returns_the_uuid() {
    let server = Server::always(reply(
        200,
        r#"{"api_id":"x","message":"Profile created successfully.","profile_uuid":"f3a1"}"#,
    ))
    .await;

    let uuid = server
        .account()
        .create_profile(&create_request())
        .await
        .unwrap();

    let seen = &server.seen()[0];
    assert_eq!(uuid, "f3a1");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.path_and_query,
        format!("/v1/Account/{AUTH_ID}/Profile/")
    );
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    let body = seen.json();
    assert_eq!(body["company_name"], "Acme Corp");
    assert_eq!(body["address"]["country"], "");
    assert!(body.get("stock_symbol").is_none());
}

#[tokio::test]
async fn update_number_sends_caller_reputation_keys() {
    let server = Server::always(reply(202, r#"{"message":"changed","api_id":"x"}"#)).await;
    let callback = Url::parse("https://operator.example/plivo/callback").unwrap();
    let request =
        UpdateNumber::enable_caller_reputation("f3a1", Some((callback, CallbackMethod::Get)));

    server
        .account()
        .update_number("+14155550100", &request)
        .await
        .unwrap();

    assert_eq!(
        server.seen()[0].json(),
        serde_json::json!({
            "caller_reputation": "enabled",
            "profile_uuid": "f3a1",
            "caller_reputation_callback_url": "https://operator.example/plivo/callback",
            "caller_reputation_callback_method": "GET",
        })
    );
}

#[tokio::test]
async fn update_profile_returns_the_stored_profile() {
    let server = Server::always(reply(
        200,
        serde_json::json!({"api_id": "x", "profile": profile_json("f3a1")}).to_string(),
    ))
    .await;
    let request = UpdateProfile {
        website: Some("https://acme.example".into()),
        ..Default::default()
    };

    let profile = server
        .account()
        .update_profile("f3a1", &request)
        .await
        .unwrap();

    let seen = &server.seen()[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.path_and_query,
        format!("/v1/Account/{AUTH_ID}/Profile/f3a1/")
    );
    assert_eq!(
        seen.json(),
        serde_json::json!({"website": "https://acme.example"})
    );
    assert_eq!(profile.profile_uuid, "f3a1");
}

#[tokio::test]
async fn list_all_profiles_follows_pages() {
    let server = Server::start(|seen, _| {
        let offset: usize = seen
            .path_and_query
            .split("offset=")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let count = if offset < 40 { 20 } else { 3 };
        let profiles: Vec<_> = (0..count)
            .map(|index| profile_json(&format!("p{}", offset + index)))
            .collect();
        let next = (offset < 40).then(|| {
            format!(
                "/v1/Account/{AUTH_ID}/Profile/?limit=20&offset={}",
                offset + 20
            )
        });
        reply(
            200,
            serde_json::json!({"api_id": "x", "meta": {"limit": 20, "offset": offset, "next": next},
                               "profiles": profiles})
            .to_string(),
        )
    })
    .await;

    let profiles = server.account().list_all_profiles().await.unwrap();

    let paths: Vec<_> = server
        .seen()
        .into_iter()
        .map(|seen| seen.path_and_query)
        .collect();
    assert_eq!(
        paths,
        [0, 20, 40]
            .map(|offset| format!("/v1/Account/{AUTH_ID}/Profile/?limit=20&offset={offset}"))
    );
    assert_eq!(profiles.len(), 43);
    assert_eq!(profiles[42].profile_uuid, "p42");
}

#[tokio::test]
async fn bad_arguments_are_rejected_before_sending() {
    let server = Server::always(reply(200, "{}")).await;
    let account = server.account();

    let cases = [
        account.get_number("+1 415 555").await.unwrap_err(),
        account.get_number("").await.unwrap_err(),
        account.get_profile("../Number").await.unwrap_err(),
        account.list_profiles(21, 0).await.unwrap_err(),
        account
            .update_profile("f3a1", &UpdateProfile::default())
            .await
            .unwrap_err(),
    ];

    for error in cases {
        assert_eq!(error.kind(), "invalid_argument", "{error}");
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn error_responses_are_classified() {
    let cases = [
        (404, "{}", "not_found"),
        (404, r#"{"api_id":"x","error":"not found"}"#, "not_found"),
        (
            400,
            r#"{"api_id":"x","error":{"error":"bad alias"}}"#,
            "invalid_request",
        ),
        (
            400,
            r#"{"api_id":"x","error":"Request failed: invalid_profile_uuid for profile f3a1"}"#,
            "invalid_profile_uuid",
        ),
        (
            400,
            r#"{"api_id":"x","error":"number_not_eligible"}"#,
            "number_not_eligible",
        ),
        (
            400,
            r#"{"error_message":"number_not_eligible: mobile"}"#,
            "number_not_eligible",
        ),
        (
            401,
            r#"{"error":"authentication credentials were not provided"}"#,
            "unauthorized",
        ),
        (
            403,
            r#"{"error":"caller reputation not enabled"}"#,
            "forbidden",
        ),
        (422, r#"{"error":"unprocessable"}"#, "invalid_request"),
        (
            429,
            r#"{"api_id":"x","error":"too many requests"}"#,
            "rate_limited",
        ),
        (500, "", "server_error"),
        (200, "[1, 2]", "decode"),
    ];
    for (status, body, kind) in cases {
        let server = Server::always(reply(status, body)).await;
        let account = server.account_with(|config| config.max_retries = 0);

        let error = account.get_number("14155550100").await.unwrap_err();

        assert_eq!(error.kind(), kind, "HTTP {status} {body}: {error}");
        assert!(
            error.to_string().starts_with("get number 14155550100: "),
            "{error}"
        );
    }
}

#[tokio::test]
async fn nested_error_text_reaches_the_message() {
    let server = Server::always(reply(
        400,
        r#"{"api_id":"x","error":{"error":"Invalid request parameter(s) - email"}}"#,
    ))
    .await;

    let error = server
        .account()
        .create_profile(&create_request())
        .await
        .unwrap_err();

    match &error {
        Error::InvalidRequest { message, .. } => {
            assert_eq!(message, "Invalid request parameter(s) - email")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "create profile acme-main: Plivo rejected the request (HTTP 400): \
         Invalid request parameter(s) - email"
    );
}

#[tokio::test]
async fn huge_error_body_is_truncated() {
    let huge = format!(r#"{{"error":"{}"}}"#, "x".repeat(1 << 20));
    let server = Server::always(reply(400, huge)).await;

    let error = server.account().get_profile("f3a1").await.unwrap_err();

    let Error::InvalidRequest { message, .. } = &error else {
        panic!("unexpected {error:?}");
    };
    assert!(message.len() <= MAX_MESSAGE_BYTES + 3, "{}", message.len());
    assert!(error.to_string().len() < 2 * MAX_MESSAGE_BYTES);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads() {
    let server = Server::sequence(vec![
        reply(503, ""),
        reply(502, "<html>bad gateway</html>"),
        reply(200, number_json("14155550100")),
    ])
    .await;

    let number = server.account().get_number("14155550100").await.unwrap();

    assert_eq!(number.number, "14155550100");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let server = Server::always(reply(500, r#"{"error":"internal"}"#)).await;
    let account = server.account_with(|config| config.max_retries = 2);

    let error = account.delete_profile("f3a1").await.unwrap_err();

    assert_eq!(error.kind(), "server_error");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = Server::sequence(vec![
        reply(429, r#"{"error":"too many requests"}"#).header("retry-after", "1"),
        reply(202, r#"{"message":"changed"}"#),
    ])
    .await;

    server
        .account()
        .update_number("14155550100", &UpdateNumber::disable_caller_reputation())
        .await
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(2), "retried after {gap:?}");
}

#[tokio::test]
async fn long_retry_after_goes_to_the_caller() {
    let server = Server::always(reply(429, "").header("retry-after", "120")).await;

    let error = server
        .account()
        .get_number("14155550100")
        .await
        .unwrap_err();

    assert_eq!(server.seen().len(), 1);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn create_is_not_retried_after_server_error() {
    let server = Server::always(reply(500, "")).await;

    let error = server
        .account()
        .create_profile(&create_request())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "server_error");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn create_is_not_retried_after_timeout() {
    let server =
        Server::always(reply(200, r#"{"profile_uuid":"late"}"#).delayed(Duration::from_secs(3)))
            .await;
    let account = server.account_with(|config| config.timeout = Duration::from_millis(300));

    let error = account.create_profile(&create_request()).await.unwrap_err();

    let Error::Transport { source, .. } = &error else {
        panic!("unexpected {error:?}");
    };
    assert!(source.is_timeout());
    assert_eq!(
        error.to_string(),
        "create profile acme-main: request to Plivo timed out"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn create_is_retried_after_429() {
    let server = Server::sequence(vec![
        reply(429, "").header("retry-after", "0"),
        reply(200, r#"{"profile_uuid":"f3a1"}"#),
    ])
    .await;

    let uuid = server
        .account()
        .create_profile(&create_request())
        .await
        .unwrap();

    assert_eq!(uuid, "f3a1");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn reads_are_retried_after_timeout() {
    let server = Server::sequence(vec![
        reply(200, number_json("14155550100")).delayed(Duration::from_secs(3)),
        reply(200, number_json("14155550100")),
    ])
    .await;
    let account = server.account_with(|config| config.timeout = Duration::from_millis(300));

    account.get_number("14155550100").await.unwrap();

    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let base_url = Url::parse(&format!("http://{address}")).unwrap();
    let account = client_for(&base_url, |config| config.max_retries = 1)
        .account(Credentials::new(AUTH_ID, TOKEN));

    let error = account.get_number("14155550100").await.unwrap_err();

    assert_eq!(error.kind(), "transport");
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "get number 14155550100: could not connect to Plivo"
    );
}

/// Sends `responses` one after another on a single keep-alive connection, writing raw bytes so that
/// a 204 can carry a body as Plivo's does.
async fn raw_server(responses: Vec<String>) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut responses = responses.into_iter();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(read @ 1..) = stream.read(&mut chunk).await {
                buffer.extend_from_slice(&chunk[..read]);
                // Requests in this test carry no body, so a blank line ends each one.
                while let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    let Some(response) = responses.next() else {
                        return;
                    };
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Url::parse(&format!("http://{address}")).unwrap()
}

fn raw_response(status_line: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn no_content_with_a_body_is_tolerated() {
    let deleted = raw_response(
        "204 No Content",
        r#"{"api_id":"x","message":"Profile deleted successfully."}"#,
    );
    let number = raw_response("200 OK", r#"{"number":"14155550100"}"#);
    let base_url = raw_server(vec![deleted, number.clone(), number]).await;
    let account = client_for(&base_url, |config| config.max_retries = 0)
        .account(Credentials::new(AUTH_ID, TOKEN));

    account.delete_profile("f3a1").await.unwrap();
    let found = account.get_number("14155550100").await.unwrap();

    assert_eq!(found.number, "14155550100");
}

#[tokio::test]
async fn closed_fence_sends_nothing() {
    let server = Server::always(reply(202, r#"{"message":"changed","api_id":"x"}"#)).await;
    let fence = crate::fence::Fence::elected(Duration::from_secs(2));
    let recorder = Arc::new(Recorder::default());
    let account = client_for(&server.base_url, |_| {})
        .with_observer(recorder.clone())
        .with_fence(fence)
        .account(Credentials::new(AUTH_ID, TOKEN));

    let write = account
        .update_number(
            "+14155550100",
            &UpdateNumber::enable_caller_reputation("f3a1", None),
        )
        .await
        .unwrap_err();
    let read = account.get_number("14155550100").await.unwrap_err();

    for error in [&write, &read] {
        assert!(matches!(error, Error::NotLeader { .. }), "{error}");
        assert!(error.is_retryable(), "{error}");
        assert_eq!(error.kind(), "not_leader");
    }
    assert!(
        write.to_string().contains("leadership not confirmed"),
        "{write}"
    );
    assert!(server.seen().is_empty(), "nothing reached the server");
    assert!(recorder.finished.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expired_fence_sends_nothing() {
    let server = Server::always(reply(200, number_json("14155550100"))).await;
    let fence = crate::fence::Fence::elected(Duration::from_secs(2));
    let account = client_for(&server.base_url, |_| {})
        .with_fence(fence.clone())
        .account(Credentials::new(AUTH_ID, TOKEN));

    fence.confirm(tokio::time::Instant::now());
    account.get_number("14155550100").await.unwrap();
    // The last renewal was sent 3 s ago, as for a leader stopped since then.
    fence.close();
    fence.confirm(tokio::time::Instant::now() - Duration::from_secs(3));
    let error = account.get_number("14155550100").await.unwrap_err();

    assert!(matches!(error, Error::NotLeader { .. }), "{error}");
    assert_eq!(
        server.seen().len(),
        1,
        "only the request inside the deadline"
    );
}

#[tokio::test]
async fn user_agent_names_the_replica() {
    let server = Server::always(reply(200, number_json("14155550100"))).await;

    server
        .account_with(|config| config.replica = Some("replica-2".into()))
        .get_number("14155550100")
        .await
        .unwrap();
    server.account().get_number("14155550100").await.unwrap();

    let seen = server.seen();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        seen[0].user_agent.as_deref(),
        Some(format!("caller-reputation-operator/{version} (replica-2)").as_str())
    );
    assert_eq!(
        seen[1].user_agent.as_deref(),
        Some(format!("caller-reputation-operator/{version}").as_str())
    );
}

#[derive(Default)]
struct Recorder {
    finished: Mutex<Vec<(&'static str, Option<u16>)>>,
    waits: Mutex<Vec<(String, Duration)>>,
}

impl RequestObserver for Recorder {
    fn request_finished(&self, endpoint: &'static str, status: Option<u16>, _elapsed: Duration) {
        self.finished.lock().unwrap().push((endpoint, status));
    }

    fn rate_limit_waited(&self, account: &str, waited: Duration) {
        self.waits
            .lock()
            .unwrap()
            .push((account.to_owned(), waited));
    }
}

#[tokio::test]
async fn observer_sees_every_attempt() {
    let server =
        Server::sequence(vec![reply(503, ""), reply(200, number_json("14155550100"))]).await;
    let recorder = Arc::new(Recorder::default());
    let client = client_for(&server.base_url, |_| {}).with_observer(recorder.clone());

    client
        .account(Credentials::new(AUTH_ID, TOKEN))
        .get_number("14155550100")
        .await
        .unwrap();

    assert_eq!(
        *recorder.finished.lock().unwrap(),
        [
            ("GET /Number/{number}/", Some(503)),
            ("GET /Number/{number}/", Some(200))
        ]
    );
}

/// Largest number of instants within any half-open interval of length `window`.
fn max_in_any_window(mut instants: Vec<std::time::Instant>, window: Duration) -> usize {
    instants.sort();
    let mut max = 0;
    let mut first = 0;
    for (last, instant) in instants.iter().enumerate() {
        while *instant - instants[first] >= window {
            first += 1;
        }
        max = max.max(last - first + 1);
    }
    max
}

#[tokio::test]
async fn accounts_of_one_auth_id_share_the_limit() {
    let server = Server::always(reply(200, number_json("14155550100"))).await;
    let recorder = Arc::new(Recorder::default());
    let client = client_for(&server.base_url, |config| {
        config.requests_per_window = 5;
        config.window = Duration::from_millis(400);
    })
    .with_observer(recorder.clone());
    let first = client.account(Credentials::new(AUTH_ID, TOKEN));
    let second = client.account(Credentials::new(AUTH_ID, TOKEN));

    let calls = (0..12).map(|index| {
        let account = if index % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move { account.get_number("14155550100").await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }

    let arrivals: Vec<_> = server.seen().into_iter().map(|seen| seen.at).collect();
    assert_eq!(arrivals.len(), 12);
    assert_eq!(max_in_any_window(arrivals, Duration::from_millis(400)), 5);
    let waits = recorder.waits.lock().unwrap();
    assert_eq!(waits.len(), 7);
    assert!(waits.iter().all(|(account, _)| account == AUTH_ID));
}

#[tokio::test]
async fn other_auth_ids_have_their_own_limit() {
    let server = Server::always(reply(200, number_json("14155550100"))).await;
    let client = client_for(&server.base_url, |config| {
        config.requests_per_window = 1;
        config.window = Duration::from_secs(30);
    });

    let first = client.account(Credentials::new("MAFIRST", TOKEN));
    let second = client.account(Credentials::new("MASECOND", TOKEN));
    first.get_number("14155550100").await.unwrap();
    // A shared limiter would block this call for 30 s; the test would then hit its deadline.
    tokio::time::timeout(Duration::from_secs(5), second.get_number("14155550100"))
        .await
        .expect("second account was not held back by the first account's limit")
        .unwrap();
}

#[tokio::test]
async fn token_never_appears_in_debug_or_errors() {
    let server = Server::always(reply(401, r#"{"error":"authentication failed"}"#)).await;
    let client = client_for(&server.base_url, |_| {});
    let credentials = Credentials::new(AUTH_ID, TOKEN);
    let account = client.account(credentials.clone());
    let unauthorized = account.get_number("14155550100").await.unwrap_err();
    let closed = client_for(&Url::parse("http://127.0.0.1:9").unwrap(), |config| {
        config.max_retries = 0
    })
    .account(credentials.clone())
    .get_number("14155550100")
    .await
    .unwrap_err();

    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(&closed);
    while let Some(error) = source {
        chain.push(error.to_string());
        source = error.source();
    }
    let outputs = [
        format!("{credentials:?}"),
        format!("{account:?}"),
        format!("{client:?}"),
        format!("{unauthorized:?}"),
        unauthorized.to_string(),
        format!("{closed:?}"),
        chain.join(": "),
    ];
    for output in outputs {
        assert!(!output.contains(TOKEN), "token leaked in {output}");
        assert!(!output.contains("5ecret"), "token leaked in {output}");
    }
    assert_eq!(unauthorized.kind(), "unauthorized");
}

/// Writer that keeps everything the tracing subscriber prints.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_endpoint_and_hide_the_token() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // With exactly one scoped subscriber alive, tracing-core 0.1 computes the interest of callsites
    // first hit on other test threads from those threads' (empty) subscriber and caches "never".
    // A second registered dispatcher makes it consult every live subscriber, including this one.
    let _second_dispatcher = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let server =
        Server::sequence(vec![reply(500, ""), reply(200, number_json("14155550100"))]).await;

    server.account().get_number("14155550100").await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("endpoint=\"GET /Number/{number}/\""),
        "{text}"
    );
    assert!(text.contains("http.status=500"), "{text}");
    assert!(text.contains("http.status=200"), "{text}");
    assert!(text.contains("Retrying Plivo request"), "{text}");
    assert!(!text.contains(TOKEN), "token leaked in logs");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:{TOKEN}"));
    assert!(
        !text.contains(&encoded),
        "authorization header leaked in logs"
    );
}

/// Accepts connections, reads the request and closes without a response; returns the URL and the
/// number of accepted connections.
async fn closing_server() -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut chunk = [0u8; 4096];
            let _ = stream.read(&mut chunk).await;
        }
    });
    (Url::parse(&format!("http://{address}")).unwrap(), accepted)
}

#[tokio::test]
async fn closed_connection_is_retried_only_for_reads() {
    let (base_url, accepted) = closing_server().await;
    let account = client_for(&base_url, |config| config.max_retries = 2)
        .account(Credentials::new(AUTH_ID, TOKEN));

    let read = account.get_profile("f3a1").await.unwrap_err();
    let reads = accepted.swap(0, std::sync::atomic::Ordering::SeqCst);
    let create = account.create_profile(&create_request()).await.unwrap_err();
    let creates = accepted.load(std::sync::atomic::Ordering::SeqCst);

    assert_eq!(read.kind(), "transport");
    assert_eq!(create.kind(), "transport");
    assert_eq!(reads, 3);
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn echoed_credentials_are_redacted_from_errors() {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:{TOKEN}"));
    let body = format!(r#"{{"error":"bad auth {TOKEN} in header Basic {basic}"}}"#);
    let server = Server::always(reply(400, body)).await;

    let error = server
        .account()
        .create_profile(&create_request())
        .await
        .unwrap_err();

    let text = error.to_string();
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains(&basic), "{text}");
    assert!(
        text.ends_with("bad auth [redacted] in header Basic [redacted]"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn send_resumed_after_the_deadline_stops() {
    let fence = crate::fence::Fence::elected(Duration::from_secs(2));
    fence.confirm(tokio::time::Instant::now());
    // Stands for a request whose next step (connect, write) runs only after the process was
    // stopped past the fence's deadline.
    let send = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "written"
    };

    let result = super::client::fenced(&fence, send).await;

    assert!(result.is_err(), "the send went on: {result:?}");
}

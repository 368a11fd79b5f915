//! Raw-HTTP tests of the Plivo sandbox, run in-process (and, for the command
//! line, as a subprocess).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caller_reputation_operator::plivo::signature::verify_v3;
use caller_reputation_operator::sandbox::state::CrStatus;
use caller_reputation_operator::sandbox::{
    FaultConfig, NumberType, RunningSandbox, Sandbox, SandboxConfig, SeedNumber, TlsConfig,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNT: &str = "MATESTACCOUNT0000001";
const TOKEN: &str = "token-one";
const OTHER: &str = "MATESTACCOUNT0000002";
const OTHER_TOKEN: &str = "token-two";

const LOCAL: &str = "14155550100";
const TOLLFREE: &str = "18005550100";
const MOBILE: &str = "14155550199";
const CANADIAN: &str = "16045550100";

fn seed(number: &str, number_type: NumberType, country: &str) -> SeedNumber {
    SeedNumber {
        account: ACCOUNT.to_string(),
        number: number.to_string(),
        number_type,
        country: country.to_string(),
    }
}

fn config() -> SandboxConfig {
    SandboxConfig {
        accounts: vec![
            (ACCOUNT.to_string(), TOKEN.to_string()),
            (OTHER.to_string(), OTHER_TOKEN.to_string()),
        ],
        numbers: vec![
            seed(&format!("+{LOCAL}"), NumberType::Local, "US"),
            seed(TOLLFREE, NumberType::Tollfree, "US"),
            seed(MOBILE, NumberType::Mobile, "US"),
            seed(CANADIAN, NumberType::Local, "CA"),
        ],
        activation_delay: Duration::from_secs(3600),
        ..SandboxConfig::default()
    }
}

async fn start(config: SandboxConfig) -> RunningSandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A raw HTTP client for one account of one sandbox.
struct Api {
    http: reqwest::Client,
    base: url::Url,
    account: String,
    token: String,
}

impl Api {
    fn new(sandbox: &RunningSandbox) -> Self {
        Self::for_account(sandbox, ACCOUNT, TOKEN)
    }

    fn for_account(sandbox: &RunningSandbox, account: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .tls_danger_accept_invalid_certs(true)
                .build()
                .expect("client builds"),
            base: sandbox.base_url(),
            account: account.to_string(),
            token: token.to_string(),
        }
    }

    fn url(&self, path: &str) -> url::Url {
        self.base
            .join(&format!("v1/Account/{}/{path}", self.account))
            .expect("valid path")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request
            .basic_auth(&self.account, Some(&self.token))
            .send()
            .await
            .expect("request is answered");
        let status = response.status();
        let text = response.text().await.expect("body is read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("body is JSON")
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(self.url(path))).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.base.join(path).expect("valid path"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request is answered");
        assert!(
            response.status().is_success(),
            "admin {path} answered {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn create_profile(&self, alias: &str, ein: &str) -> String {
        let (status, body) = self.post("Profile/", profile_body(alias, ein)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["profile_uuid"]
            .as_str()
            .expect("profile_uuid")
            .to_string()
    }

    async fn enable(&self, number: &str, profile_uuid: &str) -> (StatusCode, Value) {
        self.post(
            &format!("Number/{number}/"),
            json!({"caller_reputation": "enabled", "profile_uuid": profile_uuid}),
        )
        .await
    }

    async fn status_of(&self, number: &str) -> Value {
        let (status, body) = self.get(&format!("Number/{number}/")).await;
        assert_eq!(status, StatusCode::OK);
        body["caller_reputation_status"].clone()
    }

    async fn wait_for_status(&self, number: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status_of(number).await;
            if status == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{number} stayed {status}, expected {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn profile_body(alias: &str, ein: &str) -> Value {
    json!({
        "profile_alias": alias,
        "customer_type": "DIRECT",
        "entity_type": "PRIVATE",
        "company_name": "Acme Corp",
        "vertical": "TECHNOLOGY",
        "ein": ein,
        "ein_issuing_country": "US",
        "website": "https://acme.example",
        "address": {"street": "1 Main St", "city": "Austin", "state": "TX",
                    "postal_code": "78701", "country": "US"},
        "authorized_contact": {"first_name": "Ann", "last_name": "Lee",
                               "email": "ann@acme.example", "title": "Ms",
                               "seniority": "CEO", "phone": "+15125550100"},
    })
}

#[tokio::test]
async fn profile_lifecycle_has_plivo_shapes() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);

    let (status, created) = api
        .post("Profile/", profile_body("acme", "123456789"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["message"], "Profile created successfully.");
    assert!(created["api_id"].is_string());
    let uuid = created["profile_uuid"].as_str().unwrap().to_string();

    let (status, fetched) = api.get(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fetched["api_id"].is_string());
    let profile = &fetched["profile"];
    assert_eq!(profile["profile_uuid"], uuid.as_str());
    assert_eq!(profile["company_name"], "Acme Corp");
    assert_eq!(profile["ein"], "123456789");
    assert_eq!(profile["address"]["state"], "TX");
    assert!(profile["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        profile.get("stock_symbol").is_none(),
        "omitted fields are absent"
    );

    let (status, updated) = api
        .post(
            &format!("Profile/{uuid}/"),
            json!({"company_name": "Acme Inc", "profile_alias": "renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["profile"]["company_name"], "Acme Inc");
    assert_eq!(
        updated["profile"]["profile_alias"], "acme",
        "alias is immutable"
    );
    assert_eq!(updated["profile"]["vertical"], "TECHNOLOGY");

    let (status, deleted) = api.delete(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["message"], "Profile deleted successfully.");

    let (status, missing) = api.get(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "Profile not found.");
    assert!(missing["api_id"].is_string());
    let (status, _) = api.delete(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn profile_list_pages_with_meta_links() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    for index in 0..3 {
        api.create_profile(&format!("p{index}"), &format!("10000000{index}"))
            .await;
    }

    let (status, page) = api.get("Profile/?limit=2&offset=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["profiles"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["total_count"], 3);
    assert_eq!(
        page["meta"]["next"],
        format!("/v1/Account/{ACCOUNT}/Profile/?limit=2&offset=2")
    );
    assert_eq!(page["meta"]["previous"], Value::Null);

    let (_, last) = api.get("Profile/?limit=2&offset=2").await;
    assert_eq!(last["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(last["meta"]["next"], Value::Null);

    let (status, error) = api.get("Profile/?limit=21").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"].as_str().unwrap().contains("limit"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn profile_create_names_missing_field() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let mut body = profile_body("acme", "1");
    body.as_object_mut().unwrap().remove("vertical");
    let (status, error) = api.post("Profile/", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "Invalid request parameter(s) - vertical");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn second_profile_with_same_ein_is_rejected() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    api.create_profile("first", "123456789").await;

    let (status, error) = api
        .post("Profile/", profile_body("second", "123456789"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = error["error"].as_str().unwrap();
    assert!(text.contains("EIN"), "{text}");
    assert!(text.contains("123456789"), "{text}");

    let other = Api::for_account(&sandbox, OTHER, OTHER_TOKEN);
    let (status, _) = other
        .post("Profile/", profile_body("other", "123456789"))
        .await;
    assert_eq!(status, StatusCode::OK, "the rule is per account");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn number_get_update_list_and_unrent_shapes() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);

    let (status, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(number["api_id"].is_string());
    assert_eq!(number["number"], LOCAL);
    assert_eq!(number["number_type"], "local");
    assert_eq!(number["country"], "UNITED STATES");
    assert_eq!(number["monthly_rental_rate"], "0.50000");
    assert_eq!(number["caller_reputation_status"], Value::Null);
    assert_eq!(number["profile_uuid"], Value::Null);
    assert_eq!(
        number["resource_uri"],
        format!("/v1/Account/{ACCOUNT}/Number/{LOCAL}/")
    );

    let (status, plus) = api.get(&format!("Number/%2B{LOCAL}/")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "E.164 in the path names the same number"
    );
    assert_eq!(plus["number"], LOCAL);

    let (status, changed) = api
        .post(&format!("Number/{LOCAL}/"), json!({"alias": "support"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(changed["message"], "changed");
    assert!(changed["api_id"].is_string());
    let (_, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(number["alias"], "support");

    let (status, list) = api.get("Number/?type=tollfree").await;
    assert_eq!(status, StatusCode::OK);
    let objects = list["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["number"], TOLLFREE);
    let (_, list) = api.get("Number/?number_startswith=1415").await;
    assert_eq!(list["meta"]["total_count"], 2);
    let (status, _) = api.get("Number/?limit=50").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, missing) = api.get("Number/19999999999/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "not found");

    let (status, body) = api.delete(&format!("Number/{TOLLFREE}/")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, _) = api.get(&format!("Number/{TOLLFREE}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let url = api.url("Number/");

    let response = api.http.get(url.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "authentication credentials were not provided"
    );

    let response = api
        .http
        .get(url.clone())
        .basic_auth(ACCOUNT, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid credentials");

    let response = api
        .http
        .get(url)
        .basic_auth(OTHER, Some(OTHER_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "credentials of another account do not open this account's path"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn path_without_trailing_slash_is_404() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let (status, body) = api.get(&format!("Number/{LOCAL}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not found");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn only_us_local_and_tollfree_numbers_are_eligible() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let uuid = api.create_profile("acme", "1").await;

    for number in [MOBILE, CANADIAN] {
        let (status, body) = api.enable(number, &uuid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{number}");
        assert_eq!(body["error"], "number_not_eligible", "{number}");
        assert!(body["api_id"].is_string());
        assert_eq!(api.status_of(number).await, Value::Null);
    }
    for number in [LOCAL, TOLLFREE] {
        let (status, _) = api.enable(number, &uuid).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{number}");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn enable_with_unknown_or_foreign_profile_is_rejected() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let other = Api::for_account(&sandbox, OTHER, OTHER_TOKEN);
    let foreign = other.create_profile("theirs", "2").await;

    for uuid in ["8c1e7d3a-0000-4000-8000-000000000000", foreign.as_str()] {
        let (status, body) = api.enable(LOCAL, uuid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_profile_uuid");
    }
    let (status, body) = api
        .post(
            &format!("Number/{LOCAL}/"),
            json!({"caller_reputation": "enabled"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_profile_uuid");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn status_machine_with_forced_decisions() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let first = api.create_profile("first", "111111111").await;
    let second = api.create_profile("second", "222222222").await;

    api.enable(LOCAL, &first).await;
    assert_eq!(api.status_of(LOCAL).await, "PENDING");
    api.enable(LOCAL, &first).await;
    assert_eq!(api.status_of(LOCAL).await, "PENDING");

    api.admin(
        reqwest::Method::POST,
        &format!("_sandbox/numbers/{LOCAL}/decision"),
        Some(json!({"status": "ACTIVE"})),
    )
    .await;
    assert_eq!(api.status_of(LOCAL).await, "ACTIVE");
    api.enable(LOCAL, &first).await;
    assert_eq!(
        api.status_of(LOCAL).await,
        "ACTIVE",
        "same profile changes nothing"
    );

    api.enable(LOCAL, &second).await;
    let (_, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(number["caller_reputation_status"], "PENDING");
    assert_eq!(number["profile_uuid"], second.as_str());

    let (status, _) = api
        .post(
            &format!("Number/{LOCAL}/"),
            json!({"caller_reputation": "disabled"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(number["caller_reputation_status"], Value::Null);
    assert_eq!(number["profile_uuid"], Value::Null);

    let counters = api
        .admin(reqwest::Method::GET, "_sandbox/counters", None)
        .await;
    let local = &counters[LOCAL];
    assert_eq!(local["pending"], 2);
    assert_eq!(local["active"], 1);
    assert_eq!(local["enable_requests"], 4);
    assert_eq!(local["unchanged_enables"], 2);
    assert_eq!(local["disable_requests"], 1);
    assert_eq!(local["cleared"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn activation_without_delay_follows_fail_rules() {
    let sandbox = start(SandboxConfig {
        activation_delay: Duration::ZERO,
        fail_eins: vec!["999999999".to_string()],
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    let good = api.create_profile("good", "111111111").await;
    let bad = api.create_profile("bad", "999999999").await;

    api.enable(LOCAL, &good).await;
    api.wait_for_status(LOCAL, "ACTIVE").await;

    api.enable(TOLLFREE, &bad).await;
    api.wait_for_status(TOLLFREE, "FAILED").await;
    api.enable(TOLLFREE, &bad).await;
    assert_eq!(
        api.status_of(TOLLFREE).await,
        "FAILED",
        "re-enabling without fixing the profile changes nothing"
    );

    let (status, _) = api
        .post(&format!("Profile/{bad}/"), json!({"ein": "333333333"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    api.enable(TOLLFREE, &bad).await;
    api.wait_for_status(TOLLFREE, "ACTIVE").await;
    let state = sandbox.state();
    assert_eq!(state.counters[TOLLFREE].pending, 2);
    assert_eq!(state.counters[TOLLFREE].failed, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn profiles_without_website_fail_when_configured() {
    let sandbox = start(SandboxConfig {
        activation_delay: Duration::ZERO,
        fail_without_website: true,
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    let mut body = profile_body("no-site", "444444444");
    body.as_object_mut().unwrap().remove("website");
    let (_, created) = api.post("Profile/", body).await;
    let uuid = created["profile_uuid"].as_str().unwrap();
    api.enable(LOCAL, uuid).await;
    api.wait_for_status(LOCAL, "FAILED").await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limit_rejects_301st_request_in_window() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let started = Instant::now();
    for index in 0..300 {
        let (status, _) = api.get(&format!("Number/{LOCAL}/")).await;
        assert_eq!(status, StatusCode::OK, "request {}", index + 1);
    }
    let response = api
        .http
        .get(api.url(&format!("Number/{LOCAL}/")))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "the 301 requests took {elapsed:?}, longer than the window"
    );
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too many requests");
    assert!(body["api_id"].is_string());

    let other = Api::for_account(&sandbox, OTHER, OTHER_TOKEN);
    let (status, _) = other.get("Number/").await;
    assert_eq!(status, StatusCode::OK, "the limit is per account");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limit_sends_retry_after_only_when_configured() {
    let sandbox = start(SandboxConfig {
        rate_limit: Some(1),
        faults: FaultConfig {
            retry_after_s: Some(7),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    api.get("Number/").await;
    let response = api
        .http
        .get(api.url("Number/"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn error_ratio_faults_about_that_share_of_requests() {
    let sandbox = start(SandboxConfig {
        rate_limit: None,
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    api.admin(
        reqwest::Method::PUT,
        &format!("_sandbox/faults/{ACCOUNT}"),
        Some(json!({"error_ratio": 0.5, "error_status": 503})),
    )
    .await;

    let total = 400;
    let mut failed = 0;
    for _ in 0..total {
        let (status, body) = api.get("Number/").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
            assert!(body["api_id"].is_string());
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    println!("error_ratio 0.5: {failed} of {total} requests answered 503");
    assert!((140..=260).contains(&failed), "{failed} of {total} failed");

    let other = Api::for_account(&sandbox, OTHER, OTHER_TOKEN);
    for _ in 0..20 {
        assert_eq!(
            other.get("Number/").await.0,
            StatusCode::OK,
            "faults are per account"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn endpoint_faults_error_drop_and_delay() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(
        ACCOUNT,
        FaultConfig {
            error_ratio: 1.0,
            error_status: Some(502),
            error_endpoint: Some("GET /Profile/".to_string()),
            error_body_bytes: Some(100_000),
            drop_ratio: 1.0,
            drop_endpoint: Some("DELETE /Number/{number}/".to_string()),
            latency_ms: 300,
            latency_endpoint: Some("GET /Number/{number}/".to_string()),
            ..FaultConfig::default()
        },
    );

    let response = api
        .http
        .get(api.url("Profile/"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().len() >= 100_000);
    assert_eq!(api.get("Number/").await.0, StatusCode::OK);

    let dropped = api
        .http
        .delete(api.url(&format!("Number/{TOLLFREE}/")))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await;
    assert!(dropped.is_err(), "connection closed without a response");
    assert_eq!(
        api.get(&format!("Number/{TOLLFREE}/")).await.0,
        StatusCode::OK,
        "a dropped request is not processed"
    );

    let started = Instant::now();
    api.get(&format!("Number/{LOCAL}/")).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");

    let log = api
        .admin(reqwest::Method::GET, "_sandbox/requests", None)
        .await;
    let faults: Vec<&str> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|record| record["fault"].as_str())
        .collect();
    assert_eq!(faults, ["error", "drop"]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn fault_budget_fails_next_requests_only() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    api.admin(
        reqwest::Method::PUT,
        &format!("_sandbox/faults/{ACCOUNT}"),
        Some(json!({"error_ratio": 1.0, "error_status": 429, "retry_after_s": 2, "remaining": 2})),
    )
    .await;

    for _ in 0..2 {
        let response = api
            .http
            .get(api.url("Number/"))
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "2");
    }
    assert_eq!(api.get("Number/").await.0, StatusCode::OK);

    let faults = api
        .admin(
            reqwest::Method::GET,
            &format!("_sandbox/faults/{ACCOUNT}"),
            None,
        )
        .await;
    assert_eq!(faults["remaining"], 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn commit_then_fail_keeps_the_change() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    api.admin(
        reqwest::Method::PUT,
        &format!("_sandbox/faults/{ACCOUNT}"),
        Some(json!({"commit_then_fail": {"endpoint": "POST /Profile/", "status": 500}})),
    )
    .await;
    let (status, _) = api
        .post("Profile/", profile_body("acme", "555555555"))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, list) = api.get("Profile/").await;
    assert_eq!(
        list["profiles"].as_array().unwrap().len(),
        1,
        "the create was applied"
    );

    api.admin(
        reqwest::Method::PUT,
        &format!("_sandbox/faults/{ACCOUNT}"),
        Some(json!({"commit_then_fail": {"endpoint": "POST /Number/{number}/"}})),
    )
    .await;
    let uuid = list["profiles"][0]["profile_uuid"].as_str().unwrap();
    let result = api
        .http
        .post(api.url(&format!("Number/{LOCAL}/")))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .json(&json!({"caller_reputation": "enabled", "profile_uuid": uuid}))
        .send()
        .await;
    assert!(
        result.is_err(),
        "the connection is dropped after the change"
    );
    assert_eq!(api.status_of(LOCAL).await, "PENDING");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn fault_admin_rejects_invalid_settings() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let response = api
        .http
        .put(
            sandbox
                .base_url()
                .join(&format!("_sandbox/faults/{ACCOUNT}"))
                .unwrap(),
        )
        .json(&json!({"error_ratio": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("error_ratio"));
    sandbox.shutdown().await;
}

/// What the in-test receiver saw of one callback.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    url: String,
    headers: reqwest::header::HeaderMap,
    params: Vec<(String, String)>,
}

/// Starts a callback receiver on 127.0.0.1 that responds 500 to the first
/// `failures` requests, then 200.
async fn start_receiver(failures: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    use axum::extract::Request;
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cr/callback", listener.local_addr().unwrap());
    let store = Arc::clone(&received);
    let base = url.clone();
    let app = axum::Router::new().route(
        "/cr/callback",
        axum::routing::any(move |request: Request| {
            let store = Arc::clone(&store);
            let base = base.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let params = url::form_urlencoded::parse(&bytes).into_owned().collect();
                let full_url = match parts.uri.query() {
                    Some(query) => format!("{base}?{query}"),
                    None => base,
                };
                let mut seen = store.lock().unwrap();
                seen.push(Received {
                    method: parts.method.to_string(),
                    url: full_url,
                    headers: parts.headers,
                    params,
                });
                if seen.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn wait_for_callbacks(received: &Mutex<Vec<Received>>, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = received.lock().unwrap().clone();
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {} callbacks arrived",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn callbacks_are_signed_with_v3() {
    let sandbox = start(SandboxConfig {
        activation_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    let (callback_url, received) = start_receiver(0).await;
    let uuid = api.create_profile("acme", "123456789").await;
    api.post(
        &format!("Number/{LOCAL}/"),
        json!({"caller_reputation": "enabled", "profile_uuid": uuid,
               "caller_reputation_callback_url": callback_url}),
    )
    .await;

    let seen = wait_for_callbacks(&received, 2).await;
    let statuses: Vec<&str> = seen
        .iter()
        .map(|r| {
            r.params
                .iter()
                .find(|(key, _)| key == "caller_reputation_status")
                .map(|(_, value)| value.as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, ["PENDING", "ACTIVE"]);

    for callback in &seen {
        assert_eq!(callback.method, "POST");
        let keys: Vec<&str> = callback
            .params
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        for key in [
            "number",
            "profile_uuid",
            "caller_reputation_status",
            "api_id",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let nonce = header(callback, "x-plivo-signature-v3-nonce");
        let signature = header(callback, "x-plivo-signature-v3");
        let main_signature = header(callback, "x-plivo-signature-ma-v3");
        assert!(verify_v3(
            "POST",
            &callback.url,
            &callback.params,
            nonce,
            signature,
            &[TOKEN]
        ));
        assert!(verify_v3(
            "POST",
            &callback.url,
            &callback.params,
            nonce,
            main_signature,
            &[TOKEN]
        ));
        assert!(!verify_v3(
            "POST",
            &callback.url,
            &callback.params,
            nonce,
            signature,
            &[OTHER_TOKEN]
        ));

        let mut tampered = callback.params.clone();
        for (key, value) in &mut tampered {
            if key == "caller_reputation_status" {
                *value = "FAILED".to_string();
            }
        }
        assert!(!verify_v3(
            "POST",
            &callback.url,
            &tampered,
            nonce,
            signature,
            &[TOKEN]
        ));
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn get_callbacks_carry_signed_query() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let (callback_url, received) = start_receiver(0).await;
    let uuid = api.create_profile("acme", "123456789").await;
    api.post(
        &format!("Number/{LOCAL}/"),
        json!({"caller_reputation": "enabled", "profile_uuid": uuid,
               "caller_reputation_callback_url": callback_url,
               "caller_reputation_callback_method": "GET"}),
    )
    .await;

    let seen = wait_for_callbacks(&received, 1).await;
    let callback = &seen[0];
    assert_eq!(callback.method, "GET");
    assert!(
        callback.url.contains("caller_reputation_status=PENDING"),
        "{}",
        callback.url
    );

    let nonce = header(callback, "x-plivo-signature-v3-nonce");
    let signature = header(callback, "x-plivo-signature-v3");
    assert!(verify_v3(
        "GET",
        &callback.url,
        &[],
        nonce,
        signature,
        &[TOKEN]
    ));
    let tampered = callback.url.replace("PENDING", "ACTIVE");
    assert!(!verify_v3(
        "GET",
        &tampered,
        &[],
        nonce,
        signature,
        &[TOKEN]
    ));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn callbacks_are_retried_until_answered_200() {
    let sandbox = start(SandboxConfig {
        callback_retry_scale: 0.001,
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    let (callback_url, received) = start_receiver(2).await;
    let uuid = api.create_profile("acme", "123456789").await;
    api.post(
        &format!("Number/{LOCAL}/"),
        json!({"caller_reputation": "enabled", "profile_uuid": uuid,
               "caller_reputation_callback_url": callback_url}),
    )
    .await;
    let seen = wait_for_callbacks(&received, 3).await;
    assert_eq!(seen.len(), 3);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempts: Vec<(u32, Option<u16>)> = sandbox
            .callbacks()
            .iter()
            .map(|record| (record.attempt, record.response_status))
            .collect();
        if attempts.len() == 3 {
            assert_eq!(attempts, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
            break;
        }
        assert!(Instant::now() < deadline, "attempts: {attempts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn callbacks_to_other_hosts_are_refused() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let uuid = api.create_profile("acme", "123456789").await;
    api.post(
        &format!("Number/{LOCAL}/"),
        json!({"caller_reputation": "enabled", "profile_uuid": uuid,
               "caller_reputation_callback_url": "http://192.0.2.10/cb"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = sandbox.callbacks();
        if let Some(record) = records.first() {
            assert!(record.error.as_deref().unwrap().contains("refused"));
            assert_eq!(record.response_status, None);
            break;
        }
        assert!(Instant::now() < deadline, "no delivery record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn state_survives_restart_with_state_file() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("sandbox.json");
    let with_file = || SandboxConfig {
        state_file: Some(state_file.clone()),
        ..config()
    };

    let sandbox = start(with_file()).await;
    let api = Api::new(&sandbox);
    let uuid = api.create_profile("acme", "123456789").await;
    api.enable(LOCAL, &uuid).await;
    api.admin(
        reqwest::Method::POST,
        "_sandbox/numbers",
        Some(json!({"account": ACCOUNT, "number": "+12125550100", "type": "local"})),
    )
    .await;
    sandbox.shutdown().await;

    let restarted = start(with_file()).await;
    let api = Api::new(&restarted);
    let (status, profile) = api.get(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["profile"]["ein"], "123456789");
    let (_, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(number["caller_reputation_status"], "PENDING");
    assert_eq!(number["profile_uuid"], uuid.as_str());
    assert_eq!(api.get("Number/12125550100/").await.0, StatusCode::OK);
    let (status, _) = api
        .post("Profile/", profile_body("again", "123456789"))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the EIN rule sees restored profiles"
    );
    restarted.shutdown().await;
}

#[tokio::test]
async fn pending_decision_resumes_after_restart() {
    let directory = tempfile::tempdir().unwrap();
    let state_file = directory.path().join("sandbox.json");
    let sandbox = start(SandboxConfig {
        state_file: Some(state_file.clone()),
        activation_delay: Duration::from_millis(300),
        ..config()
    })
    .await;
    let api = Api::new(&sandbox);
    let uuid = api.create_profile("acme", "123456789").await;
    api.enable(LOCAL, &uuid).await;
    sandbox.shutdown().await;

    let restarted = start(SandboxConfig {
        state_file: Some(state_file),
        ..config()
    })
    .await;
    Api::new(&restarted).wait_for_status(LOCAL, "ACTIVE").await;
    restarted.shutdown().await;
}

#[tokio::test]
async fn admin_changes_state_behind_the_operator() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let first = api.create_profile("first", "111111111").await;
    let second = api.create_profile("second", "222222222").await;
    api.enable(LOCAL, &first).await;
    api.enable(TOLLFREE, &first).await;

    api.admin(
        reqwest::Method::POST,
        &format!("_sandbox/numbers/{LOCAL}/profile"),
        Some(json!({"profile_uuid": second})),
    )
    .await;
    let (_, number) = api.get(&format!("Number/{LOCAL}/")).await;
    assert_eq!(number["profile_uuid"], second.as_str());
    assert_eq!(number["caller_reputation_status"], "PENDING");

    api.admin(
        reqwest::Method::POST,
        &format!("_sandbox/numbers/{LOCAL}/disable"),
        None,
    )
    .await;
    assert_eq!(api.status_of(LOCAL).await, Value::Null);

    api.admin(
        reqwest::Method::DELETE,
        &format!("_sandbox/profiles/{first}"),
        None,
    )
    .await;
    assert_eq!(
        api.get(&format!("Profile/{first}/")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, number) = api.get(&format!("Number/{TOLLFREE}/")).await;
    assert_eq!(number["caller_reputation_status"], Value::Null);
    assert_eq!(number["profile_uuid"], Value::Null);

    api.admin(
        reqwest::Method::POST,
        &format!("_sandbox/numbers/{TOLLFREE}/decision"),
        Some(json!({"status": "NOT_ENROLLED"})),
    )
    .await;
    assert_eq!(api.status_of(TOLLFREE).await, "NOT_ENROLLED");

    api.admin(
        reqwest::Method::DELETE,
        &format!("_sandbox/numbers/{LOCAL}"),
        None,
    )
    .await;
    assert_eq!(
        api.get(&format!("Number/{LOCAL}/")).await.0,
        StatusCode::NOT_FOUND
    );

    let state = api
        .admin(reqwest::Method::GET, "_sandbox/state", None)
        .await;
    assert_eq!(state["profiles"].as_array().unwrap().len(), 1);
    assert_eq!(state["numbers"].as_array().unwrap().len(), 3);

    api.admin(reqwest::Method::POST, "_sandbox/reset", None)
        .await;
    let state = api
        .admin(reqwest::Method::GET, "_sandbox/state", None)
        .await;
    assert_eq!(state["profiles"].as_array().unwrap().len(), 0);
    assert_eq!(state["numbers"].as_array().unwrap().len(), 4);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn in_process_helpers_seed_and_decide() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    sandbox
        .add_number(&seed("+12065550100", NumberType::Local, "US"))
        .unwrap();
    let uuid = api.create_profile("acme", "123456789").await;
    api.enable("12065550100", &uuid).await;

    assert!(sandbox.force_status("+12065550100", CrStatus::Failed));
    assert_eq!(api.status_of("12065550100").await, "FAILED");
    assert!(!sandbox.force_status("19999999999", CrStatus::Active));

    let unknown = SeedNumber {
        account: "MAUNKNOWN00000000000".to_string(),
        ..seed("12065550101", NumberType::Local, "US")
    };
    assert!(sandbox.add_number(&unknown).is_err());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn request_log_lists_endpoints_since_a_sequence() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    api.get(&format!("Number/{LOCAL}/")).await;
    let log = api
        .admin(reqwest::Method::GET, "_sandbox/requests", None)
        .await;
    let last_seq = log["last_seq"].as_u64().unwrap();
    let first = &log["requests"][0];
    assert_eq!(first["account"], ACCOUNT);
    assert_eq!(first["method"], "GET");
    assert_eq!(
        first["path"],
        format!("/v1/Account/{ACCOUNT}/Number/{LOCAL}/")
    );
    assert_eq!(first["status"], 200);
    assert_eq!(
        first["endpoint"],
        "GET /v1/Account/{auth_id}/Number/{number}/"
    );
    assert!(first["time"].is_string());

    api.post("Profile/", profile_body("acme", "1")).await;
    let newer = api
        .admin(
            reqwest::Method::GET,
            &format!("_sandbox/requests?since={last_seq}"),
            None,
        )
        .await;
    let requests = newer["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["endpoint"],
        "POST /v1/Account/{auth_id}/Profile/"
    );
    assert_eq!(sandbox.requests().len(), 2);

    api.admin(reqwest::Method::DELETE, "_sandbox/requests", None)
        .await;
    assert!(sandbox.requests().is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn https_with_self_signed_certificate() {
    let sandbox = start(SandboxConfig {
        tls: Some(TlsConfig::self_signed().unwrap()),
        ..config()
    })
    .await;
    assert_eq!(sandbox.base_url().scheme(), "https");
    let api = Api::new(&sandbox);
    assert_eq!(api.get(&format!("Number/{LOCAL}/")).await.0, StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn in_process_start_takes_under_a_second() {
    let started = Instant::now();
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let (status, _) = api.get("Number/").await;
    let elapsed = started.elapsed();
    println!("in-process start to first answer: {elapsed:?}");
    assert_eq!(status, StatusCode::OK);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    sandbox.shutdown().await;
}

#[test]
fn binary_starts_and_prints_url_under_a_second() {
    use std::io::BufRead as _;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caller-reputation-operator"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--account",
            "MATESTACCOUNT0000001:token",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let elapsed = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    println!("subprocess start to printed URL: {elapsed:?}");
    assert!(
        line.starts_with("Plivo sandbox listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn help_documents_every_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_caller-reputation-operator"))
        .args(["sandbox", "--help"])
        .output()
        .expect("binary runs");
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--account",
        "--accounts-file",
        "--numbers-file",
        "--activation-delay",
        "--fail-ein",
        "--fail-without-website",
        "--rate-limit",
        "--callback-retry-scale",
        "--state-file",
        "--tls-cert",
        "--tls-key",
        "--tls-self-signed",
        "--tls-cert-out",
        "--fault-5xx-ratio",
        "--fault-status",
        "--fault-latency",
        "--fault-drop-ratio",
        "--fault-retry-after",
        "/_sandbox/faults/{account}",
        "/_sandbox/numbers/{number}/decision",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

#[test]
fn binary_rejects_missing_account_clearly() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_caller-reputation-operator"))
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--account"), "{stderr}");
}

#[test]
fn numbers_file_accepts_yaml() {
    use std::io::BufRead as _;
    let directory = tempfile::tempdir().unwrap();
    let numbers = directory.path().join("numbers.yaml");
    std::fs::write(
        &numbers,
        "- account: MATESTACCOUNT0000001\n  number: \"+14155550100\"\n  type: local\n  country: US\n",
    )
    .unwrap();
    let accounts = directory.path().join("accounts.json");
    std::fs::write(
        &accounts,
        r#"[{"auth_id": "MATESTACCOUNT0000001", "auth_token": "token"}]"#,
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caller-reputation-operator"))
        .arg("sandbox")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--accounts-file")
        .arg(&accounts)
        .arg("--numbers-file")
        .arg(&numbers)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "{base}v1/Account/MATESTACCOUNT0000001/Number/14155550100/"
            ))
            .basic_auth("MATESTACCOUNT0000001", Some("token"))
            .send()
            .await
            .unwrap()
            .status()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn admin_profile_keeps_chosen_uuid() {
    let sandbox = start(config()).await;
    let api = Api::new(&sandbox);
    let uuid = "00000000-0000-4000-8000-000000000001";
    let mut fields = profile_body("outside", "987654321");
    fields.as_object_mut().unwrap().remove("profile_uuid");
    api.admin(
        reqwest::Method::POST,
        "_sandbox/profiles",
        Some(json!({"account": ACCOUNT, "profile_uuid": uuid, "fields": fields})),
    )
    .await;
    let (status, body) = api.get(&format!("Profile/{uuid}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["profile"]["profile_uuid"], uuid);
    assert_eq!(body["profile"]["ein"], "987654321");
    sandbox.shutdown().await;
}

//! Contract tests of the Plivo client against the in-process Plivo sandbox.
//!
//! Every test starts its own sandbox on 127.0.0.1 with a random port, so tests run in parallel
//! without sharing rate-limit windows, faults or state.

use std::time::{Duration, Instant};

use caller_reputation_operator::plivo::{
    Account, Address, AuthorizedContact, CallbackMethod, CallerReputationStatus, ClientConfig,
    CreateProfile, Credentials, Error, ListNumbers, MAX_MESSAGE_BYTES, NumberType, PlivoClient,
    UpdateNumber, UpdateProfile,
};
use caller_reputation_operator::sandbox::state::CrStatus;
use caller_reputation_operator::sandbox::{
    CommitThenFail, FaultConfig, NumberType as SeedType, RunningSandbox, Sandbox, SandboxConfig,
    SeedNumber, TlsConfig,
};

const AUTH_ID: &str = "MAZZZCONTRACTTEST001";
const TOKEN: &str = "contract-t0ken-must-not-leak";
const LOCAL: &str = "14155550100";
const TOLLFREE: &str = "18005550100";
const MOBILE: &str = "14155550199";
const FOREIGN: &str = "442071234567";

fn seed(number: &str, number_type: SeedType, country: &str) -> SeedNumber {
    SeedNumber {
        account: AUTH_ID.into(),
        number: number.into(),
        number_type,
        country: country.into(),
    }
}

fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        accounts: vec![(AUTH_ID.into(), TOKEN.into())],
        numbers: vec![
            seed(LOCAL, SeedType::Local, "US"),
            seed(TOLLFREE, SeedType::Tollfree, "US"),
            seed(MOBILE, SeedType::Mobile, "US"),
            seed(FOREIGN, SeedType::Local, "GB"),
        ],
        activation_delay: Duration::from_millis(300),
        ..Default::default()
    }
}

struct Fixture {
    sandbox: RunningSandbox,
    client: PlivoClient,
    account: Account,
}

async fn start(sandbox: SandboxConfig, adjust: impl FnOnce(&mut ClientConfig)) -> Fixture {
    let sandbox = Sandbox::start(sandbox).await.expect("sandbox starts");
    let mut config = ClientConfig {
        base_url: sandbox.base_url(),
        ..Default::default()
    };
    adjust(&mut config);
    let client = PlivoClient::new(config).expect("client builds");
    let account = client.account(Credentials::new(AUTH_ID, TOKEN));
    Fixture {
        sandbox,
        client,
        account,
    }
}

fn acme(ein: &str) -> CreateProfile {
    CreateProfile {
        profile_alias: format!("acme-{ein}"),
        customer_type: "DIRECT".into(),
        entity_type: "PRIVATE".into(),
        company_name: "Acme Corp".into(),
        vertical: "TECHNOLOGY".into(),
        address: Address {
            street: "1 Main St".into(),
            city: "Austin".into(),
            state: "TX".into(),
            postal_code: "78701".into(),
            country: "US".into(),
        },
        authorized_contact: AuthorizedContact {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            email: "ann@acme.example".into(),
            title: "Ms".into(),
            seniority: "CEO".into(),
            phone: "+15125550100".into(),
        },
        ein: Some(ein.into()),
        ein_issuing_country: Some("US".into()),
        website: Some("https://acme.example".into()),
        ..Default::default()
    }
}

/// Polls `read` every 50 ms until it returns `Some`, failing after `deadline`.
async fn eventually<T, F, Fut>(deadline: Duration, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = read().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "condition not reached within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn profile_lifecycle_round_trips() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let account = &fixture.account;

    let uuid = account.create_profile(&acme("123456789")).await.unwrap();
    let created = account.get_profile(&uuid).await.unwrap();
    let update = UpdateProfile {
        website: Some("https://acme-corp.example".into()),
        doing_business_as: Some("Acme".into()),
        ..Default::default()
    };
    let updated = account.update_profile(&uuid, &update).await.unwrap();
    let page = account.list_profiles(20, 0).await.unwrap();
    let all = account.list_all_profiles().await.unwrap();
    account.delete_profile(&uuid).await.unwrap();
    let gone = account.get_profile(&uuid).await.unwrap_err();
    let deleted_again = account.delete_profile(&uuid).await.unwrap_err();

    assert_eq!(created.profile_uuid, uuid);
    assert_eq!(created.company_name.as_deref(), Some("Acme Corp"));
    assert_eq!(created.ein.as_deref(), Some("123456789"));
    assert_eq!(created.address.as_ref().unwrap().state, "TX");
    assert_eq!(
        created.authorized_contact.as_ref().unwrap().email,
        "ann@acme.example"
    );
    assert!(created.created_at.is_some());
    assert_eq!(
        updated.website.as_deref(),
        Some("https://acme-corp.example")
    );
    assert_eq!(updated.doing_business_as.as_deref(), Some("Acme"));
    assert_eq!(updated.company_name.as_deref(), Some("Acme Corp"));
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.meta.offset, Some(0));
    assert_eq!(all.len(), 1);
    assert!(matches!(gone, Error::NotFound { .. }), "{gone}");
    assert!(
        matches!(deleted_again, Error::NotFound { .. }),
        "{deleted_again}"
    );
}

#[tokio::test]
async fn requests_use_trailing_slash_and_digits() {
    let fixture = start(sandbox_config(), |_| {}).await;

    fixture
        .account
        .get_number(&format!("+{LOCAL}"))
        .await
        .unwrap();
    fixture.account.list_profiles(5, 0).await.unwrap();

    let paths: Vec<_> = fixture
        .sandbox
        .requests()
        .into_iter()
        .map(|record| (record.path, record.status))
        .collect();
    assert_eq!(
        paths,
        [
            (format!("/v1/Account/{AUTH_ID}/Number/{LOCAL}/"), 200),
            (format!("/v1/Account/{AUTH_ID}/Profile/"), 200),
        ]
    );
}

#[tokio::test]
async fn duplicate_ein_keeps_plivo_text() {
    let fixture = start(sandbox_config(), |_| {}).await;
    fixture
        .account
        .create_profile(&acme("123456789"))
        .await
        .unwrap();

    let mut second = acme("123456789");
    second.profile_alias = "acme-other".into();
    let error = fixture.account.create_profile(&second).await.unwrap_err();

    let Error::InvalidRequest {
        status, message, ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*status, 400);
    assert!(message.contains("123456789"), "{message}");
    assert!(
        error.to_string().starts_with("create profile acme-other: "),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn invalid_profile_field_is_an_invalid_request() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let mut request = acme("223456789");
    request.authorized_contact.email = "not-an-email".into();

    let error = fixture.account.create_profile(&request).await.unwrap_err();

    let Error::InvalidRequest { message, .. } = &error else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(message, "Invalid request parameter(s) - email");
}

#[tokio::test]
async fn numbers_are_read_and_listed() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let account = &fixture.account;

    let local = account.get_number(LOCAL).await.unwrap();
    let tollfree_page = account
        .list_numbers(&ListNumbers {
            number_type: Some(NumberType::Tollfree),
            ..Default::default()
        })
        .await
        .unwrap();
    let first_two = account
        .list_numbers(&ListNumbers {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let all = account
        .list_all_numbers(&ListNumbers {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(local.number, LOCAL);
    assert_eq!(local.number_type, Some(NumberType::Local));
    assert_eq!(local.caller_reputation_status, None);
    assert_eq!(local.profile_uuid, None);
    assert_eq!(
        local.resource_uri.as_deref(),
        Some(format!("/v1/Account/{AUTH_ID}/Number/{LOCAL}/").as_str())
    );
    let tollfree: Vec<_> = tollfree_page
        .items
        .iter()
        .map(|n| n.number.as_str())
        .collect();
    assert_eq!(tollfree, [TOLLFREE]);
    assert_eq!(first_two.items.len(), 2);
    assert_eq!(first_two.meta.total_count, Some(4));
    assert!(first_two.meta.next.is_some());
    let mut numbers: Vec<_> = all.into_iter().map(|n| n.number).collect();
    numbers.sort();
    let mut expected = [LOCAL, TOLLFREE, MOBILE, FOREIGN];
    expected.sort();
    assert_eq!(numbers, expected);
}

#[tokio::test]
async fn enabling_goes_pending_then_active() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let account = &fixture.account;
    let uuid = account.create_profile(&acme("323456789")).await.unwrap();
    let callback = url::Url::parse("http://127.0.0.1:9/callback").unwrap();

    account
        .update_number(
            &format!("+{LOCAL}"),
            &UpdateNumber::enable_caller_reputation(&uuid, Some((callback, CallbackMethod::Post))),
        )
        .await
        .unwrap();
    let pending = account.get_number(LOCAL).await.unwrap();
    let active = eventually(Duration::from_secs(10), || async {
        let number = account.get_number(LOCAL).await.unwrap();
        (number.caller_reputation_status == Some(CallerReputationStatus::Active)).then_some(number)
    })
    .await;

    assert_eq!(
        pending.caller_reputation_status,
        Some(CallerReputationStatus::Pending)
    );
    assert_eq!(pending.profile_uuid.as_deref(), Some(uuid.as_str()));
    assert_eq!(active.profile_uuid.as_deref(), Some(uuid.as_str()));
}

#[tokio::test]
async fn rejected_and_ineligible_statuses_are_read() {
    let mut config = sandbox_config();
    config.fail_eins = vec!["823456789".into()];
    let fixture = start(config, |_| {}).await;
    let account = &fixture.account;
    let rejected = account.create_profile(&acme("823456789")).await.unwrap();
    let accepted = account.create_profile(&acme("923456789")).await.unwrap();
    account
        .update_number(
            LOCAL,
            &UpdateNumber::enable_caller_reputation(&rejected, None),
        )
        .await
        .unwrap();
    account
        .update_number(
            TOLLFREE,
            &UpdateNumber::enable_caller_reputation(&accepted, None),
        )
        .await
        .unwrap();

    let failed = eventually(Duration::from_secs(10), || async {
        let number = account.get_number(LOCAL).await.unwrap();
        (number.caller_reputation_status != Some(CallerReputationStatus::Pending)).then_some(number)
    })
    .await;
    assert!(
        fixture
            .sandbox
            .force_status(TOLLFREE, CrStatus::NotEnrolled)
    );
    let not_enrolled = account.get_number(TOLLFREE).await.unwrap();

    assert_eq!(
        failed.caller_reputation_status,
        Some(CallerReputationStatus::Failed)
    );
    assert_eq!(
        not_enrolled.caller_reputation_status,
        Some(CallerReputationStatus::NotEnrolled)
    );
}

#[tokio::test]
async fn disabling_clears_status_and_profile() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let account = &fixture.account;
    let uuid = account.create_profile(&acme("423456789")).await.unwrap();
    account
        .update_number(
            TOLLFREE,
            &UpdateNumber::enable_caller_reputation(&uuid, None),
        )
        .await
        .unwrap();

    account
        .update_number(TOLLFREE, &UpdateNumber::disable_caller_reputation())
        .await
        .unwrap();
    // Disabling what is already disabled succeeds too.
    account
        .update_number(TOLLFREE, &UpdateNumber::disable_caller_reputation())
        .await
        .unwrap();
    let number = account.get_number(TOLLFREE).await.unwrap();

    assert_eq!(number.caller_reputation_status, None);
    assert_eq!(number.profile_uuid, None);
}

#[tokio::test]
async fn caller_reputation_errors_are_recognised() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let account = &fixture.account;
    let uuid = account.create_profile(&acme("523456789")).await.unwrap();

    let unknown_profile = account
        .update_number(
            LOCAL,
            &UpdateNumber::enable_caller_reputation("no-such-profile", None),
        )
        .await
        .unwrap_err();
    let mobile = account
        .update_number(MOBILE, &UpdateNumber::enable_caller_reputation(&uuid, None))
        .await
        .unwrap_err();
    let foreign = account
        .update_number(
            FOREIGN,
            &UpdateNumber::enable_caller_reputation(&uuid, None),
        )
        .await
        .unwrap_err();
    let unknown_number = account
        .update_number(
            "14155559999",
            &UpdateNumber::enable_caller_reputation(&uuid, None),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(unknown_profile, Error::InvalidProfileUuid { .. }),
        "{unknown_profile}"
    );
    assert!(
        matches!(mobile, Error::NumberNotEligible { .. }),
        "{mobile}"
    );
    assert!(
        matches!(foreign, Error::NumberNotEligible { .. }),
        "{foreign}"
    );
    assert!(
        matches!(unknown_number, Error::NotFound { .. }),
        "{unknown_number}"
    );
    assert_eq!(
        mobile.to_string(),
        format!(
            "enable caller reputation on number {MOBILE}: the number is not eligible for Caller \
             Reputation (number_not_eligible); only US local and toll-free numbers are"
        )
    );
}

#[tokio::test]
async fn unknown_number_is_not_found() {
    let fixture = start(sandbox_config(), |_| {}).await;

    let error = fixture.account.get_number("14155559999").await.unwrap_err();

    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert_eq!(error.kind(), "not_found");
}

#[tokio::test]
async fn wrong_token_is_unauthorized_without_leaking_it() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let wrong = "wrong-t0ken-also-secret";
    let account = fixture.client.account(Credentials::new(AUTH_ID, wrong));

    let error = account.get_number(LOCAL).await.unwrap_err();

    assert!(matches!(error, Error::Unauthorized { .. }), "{error}");
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{account:?}"),
    ] {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    // A 401 is not repeated: credentials do not fix themselves.
    assert_eq!(fixture.sandbox.requests().len(), 1);
}

#[tokio::test]
async fn burst_of_400_requests_gets_no_429() {
    let fixture = start(sandbox_config(), |_| {}).await;
    let started = Instant::now();

    let calls = (0..400).map(|_| {
        let account = fixture.account.clone();
        async move { account.get_number(LOCAL).await }
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();

    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed, first: {}",
        failures.len(),
        failures[0]
    );
    let records = fixture.sandbox.requests();
    let limited = records.iter().filter(|record| record.status == 429).count();
    assert_eq!(limited, 0);
    assert_eq!(records.len(), 400);
    // 300 fit into the first window; the other 100 wait for permits to come back.
    assert!(elapsed >= Duration::from_secs(5), "burst took {elapsed:?}");
    eprintln!("400 requests through the client limiter took {elapsed:?}");
}

#[tokio::test]
async fn sandbox_429_without_retry_after_is_rate_limited() {
    let mut config = sandbox_config();
    config.rate_limit = Some(3);
    // The client is configured with a higher limit than the sandbox enforces.
    let fixture = start(config, |client| client.max_retries = 0).await;
    for _ in 0..3 {
        fixture.account.get_number(LOCAL).await.unwrap();
    }

    let error = fixture.account.get_number(LOCAL).await.unwrap_err();

    assert!(
        matches!(
            error,
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn retry_after_from_sandbox_is_honoured() {
    let mut config = sandbox_config();
    config.rate_limit = Some(2);
    let fixture = start(config, |_| {}).await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            retry_after_s: Some(2),
            ..Default::default()
        },
    );
    for _ in 0..2 {
        fixture.account.get_number(LOCAL).await.unwrap();
    }

    // The window frees 5 s after the first two requests; three retries 2 s apart reach it.
    fixture.account.get_number(LOCAL).await.unwrap();

    let records = fixture.sandbox.requests();
    let statuses: Vec<_> = records.iter().map(|record| record.status).collect();
    assert_eq!(statuses, [200, 200, 429, 429, 429, 200]);
    let times: Vec<jiff::Timestamp> = records.iter().map(|r| r.time.parse().unwrap()).collect();
    for pair in times[2..].windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= jiff::SignedDuration::from_secs(2),
            "retried after {gap:?}"
        );
    }
}

#[tokio::test]
async fn reads_survive_30_percent_server_errors() {
    let fixture = start(sandbox_config(), |client| client.max_retries = 8).await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            error_ratio: 0.3,
            error_status: Some(503),
            ..Default::default()
        },
    );

    for _ in 0..30 {
        let number = fixture.account.get_number(LOCAL).await.unwrap();
        assert_eq!(number.number, LOCAL);
    }
    let page = fixture
        .account
        .list_numbers(&ListNumbers::default())
        .await
        .unwrap();

    assert_eq!(page.items.len(), 4);
    let records = fixture.sandbox.requests();
    let injected = records.iter().filter(|record| record.status == 503).count();
    eprintln!("{} requests, {injected} got an injected 503", records.len());
    assert!(
        injected > 0,
        "no fault was injected in {} requests",
        records.len()
    );
}

#[tokio::test]
async fn committed_create_is_not_repeated() {
    let fixture = start(sandbox_config(), |_| {}).await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            commit_then_fail: Some(CommitThenFail {
                endpoint: Some("POST /Profile/".into()),
                ratio: 1.0,
                status: Some(500),
            }),
            ..Default::default()
        },
    );

    let error = fixture
        .account
        .create_profile(&acme("623456789"))
        .await
        .unwrap_err();
    fixture.sandbox.set_faults(AUTH_ID, FaultConfig::default());
    let profiles = fixture.account.list_all_profiles().await.unwrap();

    assert!(
        matches!(error, Error::Server { status: 500, .. }),
        "{error}"
    );
    let creates = fixture
        .sandbox
        .requests()
        .into_iter()
        .filter(|record| record.method == "POST")
        .count();
    assert_eq!(creates, 1);
    // The create did happen: the caller must look it up rather than create again.
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].ein.as_deref(), Some("623456789"));
}

#[tokio::test]
async fn dropped_connections_are_transport_errors() {
    let fixture = start(sandbox_config(), |client| client.max_retries = 1).await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            drop_ratio: 1.0,
            ..Default::default()
        },
    );

    let read = fixture.account.get_number(LOCAL).await.unwrap_err();
    let create = fixture
        .account
        .create_profile(&acme("723456789"))
        .await
        .unwrap_err();

    assert!(matches!(read, Error::Transport { .. }), "{read}");
    assert!(matches!(create, Error::Transport { .. }), "{create}");
    let records = fixture.sandbox.requests();
    let gets = records
        .iter()
        .filter(|record| record.method == "GET")
        .count();
    let posts = records
        .iter()
        .filter(|record| record.method == "POST")
        .count();
    assert_eq!(gets, 2, "a read is retried once");
    assert_eq!(
        posts, 1,
        "a create is never retried after the request was sent"
    );
}

#[tokio::test]
async fn slow_responses_time_out() {
    let fixture = start(sandbox_config(), |client| {
        client.timeout = Duration::from_millis(300);
        client.max_retries = 0;
    })
    .await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            latency_ms: 2_000,
            ..Default::default()
        },
    );

    let error = fixture.account.get_number(LOCAL).await.unwrap_err();

    let Error::Transport { source, .. } = &error else {
        panic!("unexpected {error:?}");
    };
    assert!(source.is_timeout());
    assert_eq!(
        error.to_string(),
        format!("get number {LOCAL}: request to Plivo timed out")
    );
}

#[tokio::test]
async fn huge_error_bodies_are_truncated() {
    let fixture = start(sandbox_config(), |client| client.max_retries = 0).await;
    fixture.sandbox.set_faults(
        AUTH_ID,
        FaultConfig {
            error_ratio: 1.0,
            error_status: Some(502),
            error_body_bytes: Some(1_000_000),
            ..Default::default()
        },
    );

    let error = fixture.account.get_number(LOCAL).await.unwrap_err();

    let Error::Server {
        status, message, ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*status, 502);
    assert!(
        message.len() <= MAX_MESSAGE_BYTES + 3,
        "message of {} bytes",
        message.len()
    );
}

#[tokio::test]
async fn untrusted_certificate_is_rejected() {
    let mut config = sandbox_config();
    config.tls = Some(TlsConfig::self_signed().expect("certificate generates"));
    let fixture = start(config, |client| client.max_retries = 0).await;

    let error = fixture.account.get_number(LOCAL).await.unwrap_err();

    assert_eq!(fixture.sandbox.base_url().scheme(), "https");
    assert!(matches!(error, Error::Transport { .. }), "{error}");
    // The handshake failed, so the sandbox never saw the request.
    assert!(fixture.sandbox.requests().is_empty());
}

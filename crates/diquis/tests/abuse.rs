//! What a public server meets at its sign-in (issue 14): a flood of wrong passwords (bounded
//! hashing, 503 with Retry-After, liveness answers), brute force (rate limits per address and per
//! account, lockout and its expiry), a password oracle on disabled accounts, open redirects after
//! sign-in, forged proxy headers, and log injection through the sign-in email.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use diquis::ProcessRole;
use reqwest::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

/// Limits high enough not to interfere with what a test looks at.
const NO_LIMITS: &[(&str, &str)] = &[
    ("Security:RateLimit:PerAddress:PermitLimit", "1000000"),
    ("Security:RateLimit:PerAccount:PermitLimit", "1000000"),
    ("Security:Lockout:MaxFailedAccessAttempts", "0"),
];

fn with(base: &[(&'static str, &'static str)], extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = base.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).copied().collect();
    all.extend_from_slice(extra);
    all
}

/// `POST /api/tokens` with extra headers; status, `Retry-After` and body.
async fn sign_in(url: &str, email: &str, password: &str, headers: &[(&str, &str)]) -> (u16, Option<u64>, Value) {
    let mut req = client().post(format!("{url}/api/tokens")).json(&json!({"email": email, "password": password, "tenant": "root"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("sign-in request");
    let status = r.status().as_u16();
    let retry = r.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_bounded_and_liveness_answers() {
    let db = TestDb::sqlite();
    let settings = with(NO_LIMITS, &[("Security:PasswordHashing:MaxConcurrency", "1"), ("Security:PasswordHashing:QueueLimit", "2")]);
    let app = start(&db, ProcessRole::All, &settings).await;
    let url = app.url();
    let flood: Vec<_> = (0..64)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { sign_in(&url, &format!("nobody{i}@test.local"), "Wrong-passw0rd", &[]).await })
        })
        .collect();
    // Liveness is answered while the flood is in progress.
    let (live, _) = api(reqwest::Method::GET, &format!("{url}/health/live"), None, None).await;
    assert_eq!(live, 200);
    let mut unauthorized = 0;
    let mut busy = 0;
    for f in flood {
        let (status, retry, body) = f.await.unwrap();
        match status {
            401 => {
                unauthorized += 1;
                assert_eq!(body["messages"][0], "Invalid email, password or tenant.");
            }
            503 => {
                busy += 1;
                assert_eq!(retry, Some(1), "503 carries Retry-After");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(unauthorized >= 1, "some checks ran");
    assert!(busy >= 1, "past one running and two queued checks, sign-ins are refused at once ({unauthorized} answered 401)");
    assert_eq!(app.state.security.passwords.peak_running(), 1, "never more than one hash at a time");
    // After the burst the pool takes work again.
    login(&url, ADMIN_EMAIL, ADMIN_PASSWORD, "root").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_verify_on_the_bounded_pool() {
    // A signed-in user's password change checks the current password: on the same bounded pool
    // as sign-ins, so a flood of them is refused with 503 instead of hashing without bound.
    let db = TestDb::sqlite();
    let settings = with(NO_LIMITS, &[("Security:PasswordHashing:MaxConcurrency", "1"), ("Security:PasswordHashing:QueueLimit", "0")]);
    let app = start(&db, ProcessRole::All, &settings).await;
    let url = app.url();
    let token = login(&url, ADMIN_EMAIL, ADMIN_PASSWORD, "root").await;
    let flood: Vec<_> = (0..32)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let r = client()
                    .put(format!("{url}/api/personal/change-password"))
                    .bearer_auth(token)
                    .json(&json!({"password": "Wrong-passw0rd", "newPassword": "Newer1Passw0rd"}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_string()))
            })
        })
        .collect();
    let mut busy = 0;
    for f in flood {
        match f.await.unwrap() {
            (400, _) => {}
            (503, retry) => {
                busy += 1;
                assert_eq!(retry.as_deref(), Some("1"), "503 carries Retry-After");
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(busy >= 1, "past one running check, password changes are refused at once");
    assert_eq!(app.state.security.passwords.peak_running(), 1, "the checks ran on the pool, one at a time");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_account_until_the_lockout_ends() {
    let db = TestDb::sqlite();
    let settings =
        with(NO_LIMITS, &[("Security:Lockout:MaxFailedAccessAttempts", "3"), ("Security:Lockout:DefaultLockoutTimeSpan", "00:00:02")]);
    let app = start(&db, ProcessRole::All, &settings).await;
    let url = app.url();
    for _ in 0..2 {
        assert_eq!(sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[]).await.0, 401);
    }
    // The third failure locks the account, like Identity's MaxFailedAccessAttempts.
    let (status, retry, _) = sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[]).await;
    assert_eq!((status, retry), (429, Some(2)));
    // Locked: even the right password is refused, with Retry-After.
    let (status, retry, body) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert!(matches!(retry, Some(1..=2)), "{retry:?}");
    // Another account is not locked.
    assert_eq!(sign_in(&url, "someone@test.local", "Wrong-passw0rd", &[]).await.0, 401);
    // Once the lockout ends, the right password works again (attempts while locked do not count).
    wait_for("the lockout to end", || async {
        let (status, _, _) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
        assert!(status == 429 || status == 200, "{status}");
        (status == 200).then_some(())
    })
    .await;
    // The success cleared the failures: two more wrong passwords do not lock.
    for _ in 0..2 {
        assert_eq!(sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[]).await.0, 401);
    }
    assert_eq!(sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await.0, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_is_shared_by_every_web_node() {
    // Behind a load balancer the failures of one account land on different nodes: they count
    // together (the lockout lives in the database), so N nodes do not give N times the guesses.
    let db = TestDb::postgres();
    let settings =
        with(NO_LIMITS, &[("Security:Lockout:MaxFailedAccessAttempts", "3"), ("Security:Lockout:DefaultLockoutTimeSpan", "00:05:00")]);
    let a = start(&db, ProcessRole::Web, &settings).await;
    let b = start(&db, ProcessRole::Web, &settings).await;
    assert_eq!(sign_in(&a.url(), ADMIN_EMAIL, "Wrong-passw0rd", &[]).await.0, 401);
    assert_eq!(sign_in(&b.url(), ADMIN_EMAIL, "Wrong-passw0rd", &[]).await.0, 401);
    let (status, retry, _) = sign_in(&a.url(), ADMIN_EMAIL, "Wrong-passw0rd", &[]).await;
    assert_eq!((status, retry), (429, Some(300)), "the third failure, on either node, locks");
    let (status, _, body) = sign_in(&b.url(), ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
    assert_eq!(status, 429, "locked on the other node too: {body}");
    // A restart forgets nothing.
    b.stop().await;
    let b = start(&db, ProcessRole::Web, &settings).await;
    assert_eq!(sign_in(&b.url(), ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await.0, 429);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_address_and_per_account() {
    let db = TestDb::sqlite();
    let settings =
        with(NO_LIMITS, &[("Security:RateLimit:PerAddress:PermitLimit", "3"), ("Security:RateLimit:PerAddress:Window", "01:00:00")]);
    let app = start(&db, ProcessRole::All, &settings).await;
    let url = app.url();
    for _ in 0..3 {
        assert_eq!(sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[]).await.0, 401);
    }
    let (status, retry, body) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|s| s > 60), "about 20 minutes until the next permit: {retry:?}");
    // The refresh endpoint and the login form share the address's limit.
    let r = client().post(format!("{url}/api/tokens/refresh")).json(&json!({"refreshToken": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key(RETRY_AFTER));
    let r = client().post(format!("{url}/login")).form(&[("email", ADMIN_EMAIL)]).send().await.unwrap();
    assert_eq!(r.status(), 429);
    // The form itself still loads.
    assert_eq!(client().get(format!("{url}/login")).send().await.unwrap().status(), 200);
    // Behind a trusted proxy (loopback by default) each client address has its own limit.
    let (status, _, _) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(status, 200);
    app.stop().await;

    // A peer that is not a known proxy cannot pick its address.
    let db = TestDb::sqlite();
    let untrusted = with(&settings, &[("ForwardedHeaders:KnownProxies", "10.9.9.9")]);
    let app = start(&db, ProcessRole::All, &untrusted).await;
    let url = app.url();
    for i in 0..3 {
        let forged = format!("198.51.100.{i}");
        assert_eq!(sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[("x-forwarded-for", &forged)]).await.0, 401);
    }
    assert_eq!(sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[("x-forwarded-for", "203.0.113.50")]).await.0, 429);
    app.stop().await;

    // Per account: the account's limit holds whatever the address.
    let db = TestDb::sqlite();
    let per_account =
        with(NO_LIMITS, &[("Security:RateLimit:PerAccount:PermitLimit", "2"), ("Security:RateLimit:PerAccount:Window", "01:00:00")]);
    let app = start(&db, ProcessRole::All, &per_account).await;
    let url = app.url();
    for i in 0..2 {
        let addr = format!("198.51.100.{i}");
        assert_eq!(sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[("x-forwarded-for", &addr)]).await.0, 401);
    }
    let (status, retry, _) = sign_in(&url, &ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD, &[("x-forwarded-for", "198.51.100.9")]).await;
    assert_eq!(status, 429);
    assert!(retry.is_some());
    assert_eq!(sign_in(&url, "other@test.local", "Wrong-passw0rd", &[]).await.0, 401, "another account has its own limit");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_or_tenant_answers_like_a_wrong_password() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, NO_LIMITS).await;
    let url = app.url();
    let (wrong_status, _, wrong_body) = sign_in(&url, ADMIN_EMAIL, "Wrong-passw0rd", &[]).await;
    assert_eq!(wrong_status, 401);

    app.state.db.query("UPDATE users SET is_active = $1 WHERE email = $2").bind(false).bind(ADMIN_EMAIL).execute().await.unwrap();
    let (status, _, body) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
    assert_eq!((status, &body), (wrong_status, &wrong_body), "a disabled user with the right password");
    let (form_status, form_body) = login_form_post(&url, ADMIN_PASSWORD, "/").await;
    assert_eq!(form_status, 401);
    assert!(form_body.contains("Invalid email, password or tenant.") && !form_body.contains("not active"), "{form_body}");

    app.state.db.query("UPDATE users SET is_active = $1 WHERE email = $2").bind(true).bind(ADMIN_EMAIL).execute().await.unwrap();
    app.state.db.query("UPDATE tenants SET is_active = $1 WHERE id = 'root'").bind(false).execute().await.unwrap();
    let (status, _, body) = sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, &[]).await;
    assert_eq!((status, &body), (wrong_status, &wrong_body), "a deactivated tenant with the right password");
    app.stop().await;
}

/// Loads `/login` (for its CSRF pair), then posts the form; status and body or `Location`.
async fn login_form_post(url: &str, password: &str, return_url: &str) -> (u16, String) {
    let c = client();
    let page = c.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = field_value(&page, "_csrf");
    let r = c
        .post(format!("{url}/login"))
        .form(&[("_csrf", csrf.as_str()), ("email", ADMIN_EMAIL), ("password", password), ("tenant", "root"), ("returnUrl", return_url)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string());
    (status, location.unwrap_or(r.text().await.unwrap()))
}

/// The value of the hidden input `name` in a page.
fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_after_sign_in_stay_on_the_site() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, NO_LIMITS).await;
    let url = app.url();
    // (query as sent, where the form will send the browser)
    let table: &[(&str, &str)] = &[
        ("%2Ftenants", "/tenants"),
        ("%2Ftenants%3Fa%3D1", "/tenants?a=1"),
        ("%2F%09%2Fevil.example", "/"),
        ("%0A", "/"),
        ("%2F%0A%2Fevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%20%2F%2Fevil.example", "/"),
        ("%2F%252F%2Fevil.example", "/"),
        ("~%2Ftenants", "/"),
    ];
    for (query, want) in table {
        let r = client().get(format!("{url}/login?returnUrl={query}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET /login?returnUrl={query}");
        let page = r.text().await.unwrap();
        assert_eq!(field_value(&page, "returnUrl").replace("&amp;", "&"), *want, "returnUrl={query}");
    }
    // Posted directly (not through the form's cleaned field), the same rules apply and nothing fails.
    let posted: &[(&str, &str)] =
        &[("/\t/evil.example", "/"), ("\n", "/"), ("/\r\nSet-Cookie: a=b", "/"), ("//evil.example", "/"), ("/tenants", "/tenants")];
    for (value, want) in posted {
        let (status, location) = login_form_post(&url, ADMIN_PASSWORD, value).await;
        assert_eq!((status, location.as_str()), (303, *want), "returnUrl={value:?}");
    }
    app.stop().await;
}

/// The `Set-Cookie` values of a successful form sign-in sent with `headers`.
async fn session_cookies(url: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let c = client();
    let page = c.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = field_value(&page, "_csrf");
    let mut req = c.post(format!("{url}/login")).form(&[
        ("_csrf", csrf.as_str()),
        ("email", ADMIN_EMAIL),
        ("password", ADMIN_PASSWORD),
        ("tenant", "root"),
        ("returnUrl", "/"),
    ]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookies: Vec<String> = r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("diquis_auth=")), "{cookies:?}");
    cookies
}

fn all_secure(cookies: &[String]) -> bool {
    cookies.iter().filter(|c| c.starts_with("diquis_auth=") || c.starts_with("diquis_refresh=")).all(|c| c.ends_with("; Secure"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    // Loopback is a known proxy by default (ASP.NET Core's default), reading X-Forwarded-*.
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, NO_LIMITS).await;
    let url = app.url();
    assert!(!all_secure(&session_cookies(&url, &[]).await), "plain HTTP: no Secure");
    assert!(all_secure(&session_cookies(&url, &[("x-forwarded-proto", "https")]).await));
    assert!(all_secure(&session_cookies(&url, &[("x-forwarded-proto", "HTTPS"), ("x-forwarded-for", "203.0.113.1")]).await));
    // One hop is read (ForwardLimit 1): the proxy's own leg was plain HTTP.
    assert!(!all_secure(&session_cookies(&url, &[("x-forwarded-proto", "https, http")]).await));
    // RFC 7239 is not read in this mode.
    assert!(!all_secure(&session_cookies(&url, &[("forwarded", "proto=https")]).await));
    app.stop().await;

    // Two proxies: the client's leg decides.
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &with(NO_LIMITS, &[("ForwardedHeaders:ForwardLimit", "2")])).await;
    assert!(all_secure(&session_cookies(&app.url(), &[("x-forwarded-proto", "https, http")]).await));
    app.stop().await;

    // RFC 7239 `Forwarded`.
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &with(NO_LIMITS, &[("ForwardedHeaders:Headers", "Forwarded")])).await;
    let url = app.url();
    assert!(all_secure(&session_cookies(&url, &[("forwarded", "proto=https")]).await));
    assert!(all_secure(&session_cookies(&url, &[("forwarded", r#"for="[2001:db8::7]:4711";proto=https;host=app.example"#)]).await));
    assert!(!all_secure(&session_cookies(&url, &[("x-forwarded-proto", "https")]).await));
    app.stop().await;

    // A peer that is not a known proxy: nothing it says about the scheme counts.
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &with(NO_LIMITS, &[("ForwardedHeaders:KnownNetworks", "10.0.0.0/8")])).await;
    let url = app.url();
    assert!(!all_secure(&session_cookies(&url, &[("x-forwarded-proto", "https")]).await));
    assert!(!all_secure(&session_cookies(&url, &[("forwarded", "proto=https")]).await));
    app.stop().await;
}

#[test]
fn control_characters_in_the_sign_in_email_are_escaped_in_the_text_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_diquis"))
        .current_dir(dir.path())
        .env("Urls", "http://127.0.0.1:0")
        .env("Seed__AdminPassword", ADMIN_PASSWORD)
        .env("Jwt__Key", "a-test-signing-key-that-is-long-enough-0123456789")
        .env("Logging__LogLevel__Default", "Information")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = stdout.next().expect("'Now listening on' before stdout closes").unwrap();
        if let Some(url) = line.strip_prefix("Now listening on: ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || stdout.for_each(drop));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let forged = "2026-12-05T00:00:00.000000Z  INFO diquis: signed in as root";
    let email = format!("x@evil.example\n{forged}\u{1b}[2J");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/api/tokens"))
            .json(&json!({"email": email, "password": "Wrong-passw0rd"}))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    assert_eq!(status, 401);
    let mut seen = Vec::new();
    let refused = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the refusal is logged");
        seen.push(line.clone());
        if line.contains("sign-in refused") {
            break line;
        }
    };
    unsafe_kill(child.id(), 15);
    assert!(child.wait().unwrap().success());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(refused.contains(&format!("x@evil.example\\n{forged}\\u{{1b}}[2J")), "{refused}");
    for line in seen.iter().chain(&rest) {
        assert!(!line.contains(forged) || line.contains("sign-in refused"), "a forged line: {line}");
        assert!(!line.contains("\u{1b}[2J"), "a raw escape sequence: {line:?}");
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

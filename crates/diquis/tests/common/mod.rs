//! Shared test harness: a fresh database per test ([`TestDb`]: an SQLite temp file or a new
//! PostgreSQL database on the server of [`test_support::postgres_server`]), Diquis started
//! in-process on a free port, an HTTP client, and a minimal SignalR JSON client over WebSockets.

#![allow(dead_code)]

pub mod hub;
pub mod processes;

use std::time::Duration;

use diquis::config::{Configuration, Settings};
use diquis::{ProcessRole, RunningApp};
use serde_json::{Value, json};

/// The root administrator's password in tests.
pub const ADMIN_PASSWORD: &str = "Adm1nPassw0rd";
/// The root administrator's email in tests.
pub const ADMIN_EMAIL: &str = "admin@test.local";

/// A database for one test: a fresh SQLite file (`diquis.db` in a temporary directory) or a
/// fresh PostgreSQL database, dropped with the value together with the isolated tenant databases
/// made from it (`<name>-<tenant>`). `TestDb::postgres()` only picks the name: Diquis creates
/// its database at start; `test_support::both_databases!` creates it first (Diquis opens an existing one).
pub use test_support::{ScratchDb as TestDb, postgres_url};

/// Settings for a test app on `db`, with extra `key=value` pairs.
pub fn settings(db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    let mut c = Configuration::new();
    c.set("ConnectionStrings:DefaultConnection", db.url(), "test");
    c.set("Urls", "http://127.0.0.1:0", "test");
    c.set("Seed:AdminEmail", ADMIN_EMAIL, "test");
    c.set("Seed:AdminPassword", ADMIN_PASSWORD, "test");
    c.set("Jwt:Key", "a-test-signing-key-that-is-long-enough-0123456789", "test");
    for (k, v) in extra {
        c.set(k, *v, "test");
    }
    Settings::from_configuration(&c).expect("valid test settings")
}

/// Starts Diquis in-process.
pub async fn start(db: &TestDb, role: ProcessRole, extra: &[(&str, &str)]) -> RunningApp {
    diquis::start(settings(db, extra), role).await.expect("diquis starts")
}

/// An HTTP client that does not follow redirects and keeps cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Signs in through `POST /api/tokens`; returns the access token.
pub async fn login(url: &str, email: &str, password: &str, tenant: &str) -> String {
    let r = client()
        .post(format!("{url}/api/tokens"))
        .json(&json!({"email": email, "password": password, "tenant": tenant}))
        .send()
        .await
        .expect("sign-in request");
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert_eq!(status, 200, "sign-in of {email}@{tenant}: {body}");
    body["data"]["token"].as_str().expect("token").to_string()
}

/// The root administrator's token.
pub async fn root_token(url: &str) -> String {
    login(url, ADMIN_EMAIL, ADMIN_PASSWORD, "root").await
}

/// Sends a JSON request with a bearer token; returns status and body.
pub async fn api(method: reqwest::Method, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub use test_support::wait_for;

/// Polls `GET /api/tenants/{id}` until its status is `want` (the jobs run asynchronously; the
/// hub events are the primary synchronisation, this is for tests without a hub client).
pub async fn wait_status(url: &str, token: &str, id: &str, want: &str) -> Value {
    wait_for(&format!("tenant {id} to reach {want}"), || async {
        let (s, b) = api(reqwest::Method::GET, &format!("{url}/api/tenants/{id}"), Some(token), None).await;
        assert_eq!(s, 200, "{b}");
        (b["data"]["status"] == want).then(|| b["data"].clone())
    })
    .await
}

/// A create request body.
pub fn new_tenant(id: &str, isolated: bool) -> Value {
    json!({"id": id, "name": format!("Academy {id}"), "adminEmail": format!("owner@{id}.test"), "password": "Owner1Passw0rd", "hasIsolatedDatabase": isolated})
}

/// Makes the isolated database of tenant `id` impossible to open, and returns how to undo it.
pub async fn block_isolated_database(
    db: &TestDb,
    id: &str,
) -> Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send> {
    match db {
        TestDb::Sqlite(dir) => {
            // A directory where the file should be: SQLite cannot open it.
            let path = dir.path().join(format!("diquis-{id}.db"));
            std::fs::create_dir_all(&path).unwrap();
            Box::new(move || Box::pin(async move { std::fs::remove_dir_all(&path).unwrap() }))
        }
        TestDb::Postgres(name) => {
            use sqlx::Connection;
            let db_name = format!("{name}-{id}");
            let mut c = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db_name}\" ALLOW_CONNECTIONS false")))
                .execute(&mut c)
                .await
                .unwrap();
            Box::new(move || {
                Box::pin(async move {
                    let mut c = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
                    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS true")))
                        .execute(&mut c)
                        .await
                        .unwrap();
                })
            })
        }
    }
}

/// The CSRF token of a page's form (`_csrf` field).
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A browser-like client (cookies, no redirects followed) signed in as root through `/login`.
pub async fn root_browser(url: &str) -> reqwest::Client {
    let browser = client();
    let page = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let r = browser
        .post(format!("{url}/login"))
        .form(&[("_csrf", csrf_of(&page).as_str()), ("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("tenant", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in through the form");
    browser
}

//! Who gets tenant events and who may connect: root admins and the requester only (unless
//! `Notifications:BroadcastToAll`), never another tenant's users; no, bad, expired or foreign
//! credentials are refused. Also the browser session: cookie sign-in, CSRF, cookie on the hub.

mod common;

use std::sync::Arc;

use common::hub::{self, ConnectError};
use common::*;
use diquis::ProcessRole;
use reqwest::Method;
use serde_json::json;
use signalr::SerializedMessage;
use signalr_protocol::Value as WireValue;
use signalr_protocol::message::{HubMessage, InvocationMessage};

/// Sends target `Sentinel` to one user through the app's lifetime manager. Delivery to one
/// connection is in order, so once the sentinel arrives anything sent to that connection
/// before it has arrived too.
async fn send_sentinel(app: &diquis::RunningApp, user: &str) {
    let message = Arc::new(SerializedMessage::new(HubMessage::Invocation(InvocationMessage {
        headers: Default::default(),
        invocation_id: None,
        target: "Sentinel".into(),
        arguments: vec![WireValue::Json(json!("end"))],
        stream_ids: vec![],
    })));
    app.lifetime_manager().send_user(user, message).await.unwrap();
}

/// Starts an app with a provisioned second tenant `other` whose owner is signed in.
async fn with_other_tenant(db: &TestDb, extra: &[(&str, &str)]) -> (diquis::RunningApp, String, String) {
    let app = start(db, ProcessRole::All, extra).await;
    let url = app.url();
    let token = root_token(&url).await;
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("other", false))).await;
    assert_eq!(s, 202);
    wait_status(&url, &token, "other", "Active").await;
    let other = login(&url, "owner@other.test", "Owner1Passw0rd", "other").await;
    (app, token, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_user_gets_no_tenant_events() {
    let db = TestDb::sqlite();
    let (app, token, other_token) = with_other_tenant(&db, &[]).await;
    let url = app.url();
    let mut root = hub::connect(&url, Some(&token)).await.unwrap();
    let mut other = hub::connect(&url, Some(&other_token)).await.unwrap();
    other.next("Connected").await;

    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("secret", false))).await;
    assert_eq!(s, 202);
    root.next("TenantCreated").await;
    send_sentinel(&app, "owner@other.test.other").await;
    let seen = other.until("Sentinel").await;
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, vec!["Sentinel"], "the other tenant's user must get no tenant event");

    // Its catch-up API shows nothing either; the root admin's shows everything.
    let (_, b) = api(Method::GET, &format!("{url}/api/notifications"), Some(&other_token), None).await;
    assert_eq!(b["data"], json!([]));
    let (_, b) = api(Method::GET, &format!("{url}/api/notifications"), Some(&token), None).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_all_restores_the_original_behaviour() {
    let db = TestDb::sqlite();
    let (app, token, other_token) = with_other_tenant(&db, &[("Notifications:BroadcastToAll", "true")]).await;
    let url = app.url();
    let mut other = hub::connect(&url, Some(&other_token)).await.unwrap();
    other.next("Connected").await;
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("shared", false))).await;
    assert_eq!(s, 202);
    let got = other.next("TenantCreated").await;
    assert_eq!(got.arguments[0]["tenantId"], "shared");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bad_expired_or_foreign_credentials_cannot_connect() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    assert!(matches!(hub::connect(&url, None).await, Err(ConnectError::Negotiate(401))));
    assert!(matches!(hub::connect(&url, Some("garbage")).await, Err(ConnectError::Negotiate(401))));
    let user = diquis::auth::users::find_by_email(&app.state.db, "root", ADMIN_EMAIL).await.unwrap().unwrap();
    let (session, _, _) = diquis::auth::tokens::new_session(&app.state.db, &user.id, None, 1).await.unwrap();
    let identity = diquis::auth::tokens::identity_of(&app.state.db, &user, &session, None).await.unwrap();
    let expired = app.state.jwt.issue_with_lifetime(&identity, -60);
    assert!(matches!(hub::connect(&url, Some(&expired)).await, Err(ConnectError::Negotiate(401))));
    // A token signed with another key.
    let other_key = diquis::auth::jwt::JwtService::new(&[9u8; 32], &app.state.settings.jwt);
    assert!(matches!(hub::connect(&url, Some(&other_key.issue(&identity))).await, Err(ConnectError::Negotiate(401))));
    // A valid session cookie sent by a page of another origin is refused (no cross-site hijacking).
    let cookie_token = app.state.jwt.issue(&identity);
    let cookie = format!("diquis_auth={cookie_token}");
    let foreign = hub::connect_with(&url, None, &[("cookie", &cookie), ("origin", "http://evil.example")]).await;
    assert!(matches!(foreign, Err(ConnectError::Negotiate(401))), "{:?}", foreign.err());
    // The same cookie from the app's own origin connects.
    let host = url.trim_start_matches("http://").to_string();
    let own = hub::connect_with(&url, None, &[("cookie", &cookie), ("origin", &url)]).await;
    let mut own = own.unwrap_or_else(|e| panic!("own origin ({host}): {e:?}"));
    own.next("Connected").await;
    // A valid token connects.
    let mut ok = hub::connect(&url, Some(&cookie_token)).await.unwrap();
    ok.next("Connected").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_session_with_csrf_protection() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let browser = client();

    // Pages need a session.
    let r = browser.get(format!("{url}/tenants")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?returnUrl="));

    // The login form needs its CSRF pair.
    let login_page = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let login_csrf = csrf_of(&login_page);
    let r = client()
        .post(format!("{url}/login"))
        .form(&[("_csrf", login_csrf.as_str()), ("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a login post without the CSRF cookie is refused");
    let r = browser
        .post(format!("{url}/login"))
        .form(&[("_csrf", login_csrf.as_str()), ("email", ADMIN_EMAIL), ("password", "wrong-passw0rd"), ("tenant", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let login_csrf = csrf_of(&r.text().await.unwrap());
    let r = browser
        .post(format!("{url}/login"))
        .form(&[
            ("_csrf", login_csrf.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("tenant", "root"),
            ("returnUrl", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/", "no open redirect");
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let auth = cookies.iter().find(|c| c.starts_with("diquis_auth=")).expect("auth cookie");
    assert!(auth.contains("HttpOnly") && auth.contains("SameSite=Strict"), "{auth}");

    // The tenant page, with the official client served locally and no CDN.
    let page = browser.get(format!("{url}/tenants")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/lib/signalr/signalr.min.js") && !page.contains("cdn."), "served locally");
    let csrf = csrf_of(&page);
    let js = browser.get(format!("{url}/lib/signalr/signalr.min.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("HubConnectionBuilder"));

    // Forms without the session's CSRF token are refused; with it they work.
    let r = browser
        .post(format!("{url}/tenants"))
        .form(&[("id", "formy"), ("name", "Formy"), ("adminEmail", "o@formy.test"), ("password", "Owner1Passw0rd")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = browser
        .post(format!("{url}/tenants"))
        .form(&[("_csrf", csrf.as_str()), ("id", "Bad Id"), ("name", ""), ("adminEmail", "x"), ("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    // Every problem next to its field, in the label's words (not the API's field names).
    for (field, words) in [
        ("id", "Id must be lower-case"),
        ("name", "Name is required."),
        ("adminEmail", "Admin email must be an email address"),
        ("password", "Admin password must be at least 8"),
    ] {
        let at = body.find(&format!(r#"<p class="field-error" id="{field}-error">"#)).unwrap_or_else(|| panic!("{field}'s error: {body}"));
        assert!(body[at..].split("</p>").next().unwrap().contains(words), "{field}: {body}");
        assert!(body.contains(&format!(r#"aria-describedby="{field}-error""#)), "{field} points at its error");
    }
    assert!(!body.contains("'adminEmail'") && !body.contains("class=\"problems\""), "no API field names, no box: {body}");
    let r = browser
        .post(format!("{url}/tenants"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("id", "formy"),
            ("name", "Formy"),
            ("adminEmail", "o@formy.test"),
            ("password", "Owner1Passw0rd"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Cookie-authenticated API writes need the X-CSRF-Token header; reads do not.
    let r = browser.get(format!("{url}/api/tenants/formy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = browser.put(format!("{url}/api/tenants/formy")).json(&json!({"name": "F", "isActive": true})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let row = browser.get(format!("{url}/tenants/formy/row")).send().await.unwrap().text().await.unwrap();
    assert!(row.starts_with("<tr id=\"tenant-formy\""), "{row}");

    // The cookie authenticates the hub (same origin), as the seed page's script needs.
    let r = browser.post(format!("{url}/hubs/notifications/negotiate?negotiateVersion=1")).header("origin", &url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seed = browser.get(format!("{url}/seed-demo")).send().await.unwrap().text().await.unwrap();
    assert!(seed.contains(".withUrl(\"/hubs/notifications\")") && seed.contains("/lib/toastr/toastr.min.js"));

    // The jobs dashboard is for root admins.
    let r = browser.get(format!("{url}/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(format!("{url}/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    wait_status(&url, &root_token(&url).await, "formy", "Active").await;
    let owner = login(&url, "o@formy.test", "Owner1Passw0rd", "formy").await;
    let r = client().get(format!("{url}/jobs")).bearer_auth(&owner).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Sign-out revokes the session.
    let r = browser.post(format!("{url}/logout")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = browser.get(format!("{url}/tenants")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let r = client().get(format!("{url}/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(format!("{url}/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["status"], "Healthy");
    for entry in ["database", "jobs", "backplane"] {
        assert_eq!(b["entries"][entry]["status"], "Healthy", "{entry}: {b}");
    }
    let token = root_token(&url).await;
    let mut c = hub::connect(&url, Some(&token)).await.unwrap();
    c.next("Connected").await;
    let text = client().get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("diquis_hub_connections_total"), "{text}");
    assert!(text.contains("jobs_by_state"), "{text}");
    assert!(text.contains("signalr_backplane_healthy 1"), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_an_unreachable_redis() {
    // A port nothing listens on: the node starts, serves, and reports the backplane unhealthy.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = TestDb::sqlite();
    let redis = format!("127.0.0.1:{port},abortConnect=false");
    let app = start(&db, ProcessRole::Web, &[("ConnectionStrings:RedisConnection", &redis)]).await;
    let r = client().get(format!("{}/health/ready", app.url())).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["entries"]["backplane"]["status"], "Unhealthy");
    assert_eq!(b["entries"]["database"]["status"], "Healthy");
    let r = client().get(format!("{}/health/live", app.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_from_configuration_with_credentials() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::Web, &[("Cors:AllowedOrigins", "http://localhost:3000")]).await;
    let url = app.url();
    for path in ["/api/tenants", "/hubs/notifications/negotiate"] {
        let r = client()
            .request(Method::OPTIONS, format!("{url}{path}"))
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()["access-control-allow-origin"], "http://localhost:3000", "{path}");
        assert_eq!(r.headers()["access-control-allow-credentials"], "true", "{path}");
    }
    let r = client()
        .request(Method::OPTIONS, format!("{url}/api/tenants"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

//! Revocation that takes effect: disabling, deleting, a password change, a tenant's
//! deactivation and sign-out end access tokens, cookie sessions and open hub connections at once
//! (on the other web node too, through Redis); a reused refresh token ends its whole session;
//! forged tokens for missing users or tenants, or from the future, are refused; the generated
//! signing key and the SQLite database are private files. On a Redis Cluster, the announcements
//! reach the other web node after the primary serving their channel was killed.

mod common;

use std::time::Duration;

use base64::Engine;
use common::hub::{self, ConnectError};
use common::processes::{Node, RedisCluster, RedisServer, mode, with_suffix};
use common::*;
use diquis::ProcessRole;
use reqwest::Method;
use serde_json::{Value, json};

/// The issue's window for hub connections on every node.
const CLOSE_WINDOW: Duration = Duration::from_secs(5);
/// The key `common::settings` configures.
const TEST_KEY: &str = "a-test-signing-key-that-is-long-enough-0123456789";

/// The claims of a JWT (not verified).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs `claims` with the test key.
fn forge(claims: &Value) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(TEST_KEY.as_bytes())).unwrap()
}

async fn status(method: Method, url: &str, token: &str) -> u16 {
    api(method, url, Some(token), None).await.0
}

/// Creates tenant `id` (through the jobs of an `All` app) and returns its owner's id and token.
async fn tenant_with_owner(url: &str, root: &str, id: &str) -> (String, String) {
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(root), Some(new_tenant(id, false))).await;
    assert_eq!(s, 202, "{b}");
    wait_status(url, root, id, "Active").await;
    let token = login(url, &format!("owner@{id}.test"), "Owner1Passw0rd", id).await;
    let uid = claims(&token)["uid"].as_str().unwrap().to_string();
    (uid, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_deleting_password_change_and_tenant_deactivation_end_tokens_and_hub_connections() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let root = root_token(&url).await;
    let mut root_hub = hub::connect(&url, Some(&root)).await.unwrap();
    root_hub.next("Connected").await;
    let notifications = format!("{url}/api/notifications");

    // Disable: the token, a new hub connection and the open one all end; enabling does not
    // bring the old token back.
    let (owner_id, owner) = tenant_with_owner(&url, &root, "acme").await;
    let mut owner_hub = hub::connect(&url, Some(&owner)).await.unwrap();
    owner_hub.next("Connected").await;
    assert_eq!(status(Method::GET, &notifications, &owner).await, 200);
    let (s, b) = api(Method::POST, &format!("{url}/api/users/{owner_id}/disable"), Some(&root), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["isActive"], false);
    let (s, b) = api(Method::GET, &notifications, Some(&owner), None).await;
    assert_eq!(s, 401);
    assert!(b["messages"][0].as_str().unwrap().contains("revoked"), "{b}");
    assert!(matches!(hub::connect(&url, Some(&owner)).await, Err(ConnectError::Negotiate(401))));
    assert!(owner_hub.closed_within(CLOSE_WINDOW).await, "the open hub connection is closed");
    let (s, _) = api(Method::POST, &format!("{url}/api/users/{owner_id}/enable"), Some(&root), None).await;
    assert_eq!(s, 200);
    assert_eq!(status(Method::GET, &notifications, &owner).await, 401, "the old token stays revoked");

    // Password change: every earlier token ends, the answer's token works, and so does the new
    // password.
    let owner = login(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    let other_session = login(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    let change = format!("{url}/api/personal/change-password");
    let (s, b) =
        api(Method::PUT, &change, Some(&owner), Some(json!({"password": "wrong-Passw0rd", "newPassword": "Newer1Passw0rd"}))).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) =
        api(Method::PUT, &change, Some(&owner), Some(json!({"password": "Owner1Passw0rd", "newPassword": "Newer1Passw0rd"}))).await;
    assert_eq!(s, 200, "{b}");
    let renewed = b["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(status(Method::GET, &notifications, &owner).await, 401);
    assert_eq!(status(Method::GET, &notifications, &other_session).await, 401);
    assert_eq!(status(Method::GET, &notifications, &renewed).await, 200);
    login(&url, "owner@acme.test", "Newer1Passw0rd", "acme").await;

    // A tenant administrator manages only their tenant's users, and not themselves.
    let (s, _) = api(Method::POST, &format!("{url}/api/users/{owner_id}/disable"), Some(&renewed), None).await;
    assert_eq!(s, 400, "not oneself");
    let root_id = claims(&root)["uid"].as_str().unwrap().to_string();
    let (s, _) = api(Method::POST, &format!("{url}/api/users/{root_id}/disable"), Some(&renewed), None).await;
    assert_eq!(s, 404, "another tenant's user is not found");
    let (s, b) = api(Method::GET, &format!("{url}/api/users"), Some(&renewed), None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"].as_array().unwrap().len(), 1, "only the own tenant: {b}");

    // Tenant deactivation (run by the update job): its users' tokens and hub connections end.
    let mut owner_hub = hub::connect(&url, Some(&renewed)).await.unwrap();
    owner_hub.next("Connected").await;
    let (s, b) = api(Method::PUT, &format!("{url}/api/tenants/acme"), Some(&root), Some(json!({"name": "Acme", "isActive": false}))).await;
    assert_eq!(s, 202, "{b}");
    root_hub.next("TenantUpdated").await;
    assert_eq!(status(Method::GET, &notifications, &renewed).await, 401);
    assert!(owner_hub.closed_within(CLOSE_WINDOW).await, "the tenant's hub connection is closed");

    // Delete: a user of a reactivated tenant, deleted, can use nothing and cannot sign in.
    let (s, _) = api(Method::PUT, &format!("{url}/api/tenants/acme"), Some(&root), Some(json!({"name": "Acme", "isActive": true}))).await;
    assert_eq!(s, 202);
    root_hub.next("TenantUpdated").await;
    let owner = login(&url, "owner@acme.test", "Newer1Passw0rd", "acme").await;
    assert_eq!(status(Method::GET, &notifications, &owner).await, 200);
    let (s, b) = api(Method::DELETE, &format!("{url}/api/users/{owner_id}"), Some(&root), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(status(Method::GET, &notifications, &owner).await, 401);
    let (s, _) = api(
        Method::POST,
        &format!("{url}/api/tokens"),
        None,
        Some(json!({"email": "owner@acme.test", "password": "Newer1Passw0rd", "tenant": "acme"})),
    )
    .await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_for_missing_users_or_tenants_or_from_the_future_are_refused() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let root = root_token(&url).await;
    let tenants = format!("{url}/api/tenants");
    let real = claims(&root);
    let now = chrono::Utc::now().timestamp();
    let variant = |change: &dyn Fn(&mut Value)| {
        let mut c = real.clone();
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        change(&mut c);
        forge(&c)
    };

    // The forging works: an exact copy of the real claims is accepted.
    assert_eq!(status(Method::GET, &tenants, &variant(&|_| {})).await, 200);
    let refused: Vec<(&str, String)> = vec![
        ("a user id that does not exist", variant(&|c| c["uid"] = json!(uuid::Uuid::new_v4().to_string()))),
        ("a tenant that does not exist", variant(&|c| c["tenant"] = json!("ghost"))),
        ("another user name", variant(&|c| c["sub"] = json!("someone@else.root"))),
        ("a session that does not exist", variant(&|c| c["sid"] = json!(uuid::Uuid::new_v4().to_string()))),
        ("a wrong security stamp", variant(&|c| c["sst"] = json!("0123456789abcdef"))),
        (
            "no security stamp",
            variant(&|c| {
                c.as_object_mut().unwrap().remove("sst");
            }),
        ),
        ("issued an hour from now", variant(&|c| c["iat"] = json!(now + 3600))),
        ("not valid for an hour", variant(&|c| c["nbf"] = json!(now + 3600))),
        (
            "no iat",
            variant(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
    ];
    for (what, token) in &refused {
        let (s, b) = api(Method::GET, &tenants, Some(token), None).await;
        assert_eq!(s, 401, "{what}: {b}");
        assert!(matches!(hub::connect(&url, Some(token)).await, Err(ConnectError::Negotiate(401))), "hub: {what}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_ends_its_whole_session() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let tenants = format!("{url}/api/tenants");
    let refresh = |token: String| {
        let url = url.clone();
        async move { api(Method::POST, &format!("{url}/api/tokens/refresh"), None, Some(json!({"refreshToken": token}))).await }
    };
    let (_, b) =
        api(Method::POST, &format!("{url}/api/tokens"), None, Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))).await;
    let (access0, refresh0) = (b["data"]["token"].as_str().unwrap().to_string(), b["data"]["refreshToken"].as_str().unwrap().to_string());
    let other_session = root_token(&url).await;

    let (s, b) = refresh(refresh0.clone()).await;
    assert_eq!(s, 200, "{b}");
    let (access1, refresh1) = (b["data"]["token"].as_str().unwrap().to_string(), b["data"]["refreshToken"].as_str().unwrap().to_string());
    assert_ne!(refresh1, refresh0, "rotated");
    assert_eq!(claims(&access1)["sid"], claims(&access0)["sid"], "same session");
    let (s, b) = refresh(refresh1.clone()).await;
    assert_eq!(s, 200, "{b}");
    let (access2, refresh2) = (b["data"]["token"].as_str().unwrap().to_string(), b["data"]["refreshToken"].as_str().unwrap().to_string());
    let mut hub2 = hub::connect(&url, Some(&access2)).await.unwrap();
    hub2.next("Connected").await;
    assert_eq!(status(Method::GET, &tenants, &access2).await, 200);

    // The first token, replayed: refused, and the family is gone with it.
    let (s, _) = refresh(refresh0).await;
    assert_eq!(s, 401);
    let (s, _) = refresh(refresh2).await;
    assert_eq!(s, 401, "the latest refresh token of the family is revoked too");
    for access in [&access0, &access1, &access2] {
        assert_eq!(status(Method::GET, &tenants, access).await, 401);
    }
    assert!(hub2.closed_within(CLOSE_WINDOW).await, "the session's hub connection is closed");
    assert_eq!(status(Method::GET, &tenants, &other_session).await, 200, "other sessions go on");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_negotiate_however_it_is_spelled() {
    // The connection layer takes the scheme and `access_token` in any letter case and a cookie
    // value in quotes; each spelling of a revoked token must meet the revocation check.
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let other = root_token(&url).await;
    let (s, b) = api(
        Method::PUT,
        &format!("{url}/api/personal/change-password"),
        Some(&other),
        Some(json!({"password": ADMIN_PASSWORD, "newPassword": "Changed1Passw0rd"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let negotiate = format!("{url}/hubs/notifications/negotiate?negotiateVersion=1");
    // (what, added to the query, header name, header value)
    let spellings = [
        ("Bearer", String::new(), "authorization", format!("Bearer {token}")),
        ("BEARER", String::new(), "authorization", format!("BEARER {token}")),
        ("access_token", format!("&access_token={token}"), "", String::new()),
        ("ACCESS_TOKEN", format!("&ACCESS_TOKEN={token}"), "", String::new()),
        ("a quoted cookie", String::new(), "cookie", format!("diquis_auth=\"{token}\"")),
        ("a cookie with a space", String::new(), "cookie", format!("diquis_auth ={token}")),
    ];
    for (what, query, header, value) in spellings {
        let mut request = client().post(format!("{negotiate}{query}"));
        if !header.is_empty() {
            request = request.header(header, value);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{what}");
    }
    app.stop().await;
}

/// Signs in through the login form; returns the `Cookie` header of the session and its CSRF token.
async fn browser_sign_in(url: &str) -> (String, String) {
    let browser = client();
    let page = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let login_csrf = page[start..].split('"').next().unwrap().to_string();
    let r = browser
        .post(format!("{url}/login"))
        .form(&[("_csrf", login_csrf.as_str()), ("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("tenant", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookies = set_cookies(&r);
    let auth = cookies.iter().find(|(k, _)| k == "diquis_auth").unwrap().1.clone();
    let refresh = cookies.iter().find(|(k, _)| k == "diquis_refresh").unwrap().1.clone();
    let csrf = claims(&auth)["csrf"].as_str().unwrap().to_string();
    (format!("diquis_auth={auth}; diquis_refresh={refresh}"), csrf)
}

fn set_cookies(r: &reqwest::Response) -> Vec<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// A request with exactly the cookies `cookie` (no cookie store).
fn with_cookies(method: Method, url: &str, cookie: &str) -> reqwest::RequestBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap().request(method, url).header("cookie", cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_cookie_session_everywhere() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let (cookie, csrf) = browser_sign_in(&url).await;
    let negotiate = format!("{url}/hubs/notifications/negotiate?negotiateVersion=1");

    // Before: everything works with the cookies.
    assert_eq!(with_cookies(Method::GET, &format!("{url}/api/tenants"), &cookie).send().await.unwrap().status(), 200);
    assert_eq!(with_cookies(Method::GET, &format!("{url}/jobs"), &cookie).send().await.unwrap().status(), 200);
    assert_eq!(with_cookies(Method::POST, &negotiate, &cookie).send().await.unwrap().status(), 200);
    let mut cookie_hub = hub::connect_with(&url, None, &[("cookie", &cookie)]).await.unwrap();
    cookie_hub.next("Connected").await;

    let r = with_cookies(Method::POST, &format!("{url}/logout"), &cookie).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(cookie_hub.closed_within(CLOSE_WINDOW).await, "the session's hub connection is closed");

    // After: the same cookies, replayed, get nothing.
    let r = with_cookies(Method::GET, &format!("{url}/api/tenants"), &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = with_cookies(Method::POST, &format!("{url}/api/tenants"), &cookie)
        .header("x-csrf-token", &csrf)
        .json(&new_tenant("replayed", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no tenant created with the replayed cookies and CSRF header");
    assert_eq!(with_cookies(Method::POST, &negotiate, &cookie).send().await.unwrap().status(), 401);
    let r = with_cookies(Method::GET, &format!("{url}/jobs"), &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303, "the dashboard sends to the login page");
    let r = with_cookies(Method::GET, &format!("{url}/tenants"), &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (s, _) = api(Method::GET, &format!("{url}/api/tenants/replayed"), Some(&root_token(&url).await), None).await;
    assert_eq!(s, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_refresh_cookie_rotates() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let (cookie, _) = browser_sign_in(&url).await;
    let refresh0 = cookie.split("diquis_refresh=").nth(1).unwrap().to_string();
    // The access cookie has expired: the refresh cookie renews it, and is itself replaced.
    let auth = cookie.split(';').next().unwrap().trim_start_matches("diquis_auth=");
    let c = claims(auth);
    let user = diquis::auth::users::find_by_id(&app.state.db, c["uid"].as_str().unwrap()).await.unwrap().unwrap();
    let identity =
        diquis::auth::tokens::identity_of(&app.state.db, &user, c["sid"].as_str().unwrap(), c["csrf"].as_str().map(String::from))
            .await
            .unwrap();
    let expired = app.state.jwt.issue_with_lifetime(&identity, -60);
    let r = with_cookies(Method::GET, &format!("{url}/api/tenants"), &format!("diquis_auth={expired}; diquis_refresh={refresh0}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed = set_cookies(&r);
    let refresh1 = renewed.iter().find(|(k, _)| k == "diquis_refresh").expect("a new refresh cookie").1.clone();
    assert_ne!(refresh1, refresh0);
    let auth1 = renewed.iter().find(|(k, _)| k == "diquis_auth").unwrap().1.clone();
    assert_eq!(claims(&auth1)["sid"], c["sid"], "the same session goes on");
    // An access cookie of an earlier version (no stamp, no session) is renewed the same way.
    let mut old = claims(&auth1);
    old.as_object_mut().unwrap().remove("sst");
    old.as_object_mut().unwrap().remove("sid");
    let r = with_cookies(Method::GET, &format!("{url}/api/tenants"), &format!("diquis_auth={}; diquis_refresh={refresh1}", forge(&old)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed = set_cookies(&r);
    let refresh2 = renewed.iter().find(|(k, _)| k == "diquis_refresh").expect("a new refresh cookie").1.clone();
    let auth2 = renewed.iter().find(|(k, _)| k == "diquis_auth").unwrap().1.clone();
    assert!(refresh2 != refresh1 && refresh2 != refresh0);
    // A rotated-out cookie is spent: past the browser's grace time it would revoke the
    // session; an API client presenting it does so at once.
    let (s, _) = api(Method::POST, &format!("{url}/api/tokens/refresh"), None, Some(json!({"refreshToken": refresh0}))).await;
    assert_eq!(s, 401);
    let r = with_cookies(Method::GET, &format!("{url}/api/tenants"), &format!("diquis_auth={auth2}; diquis_refresh={refresh2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the reuse ended the session");
    app.stop().await;
}

/// Waits until `n` processes listen for revocations on `redis`.
async fn wait_for_listeners(redis: &RedisServer, n: i64) {
    let channel = format!("Diquis{}", diquis::auth::revocation::CHANNEL_SUFFIX);
    wait_for("every node to subscribe to the revocation channel", || async {
        let reply: Vec<redis::Value> = redis.query(&["PUBSUB", "NUMSUB", &channel]).await.ok()?;
        let count = match reply.get(1) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        };
        (count >= n).then_some(())
    })
    .await;
}

/// On a Redis Cluster the revocations channel is on its slot's primary, and follows that
/// shard's failover: the primary SIGKILLed, both web nodes subscribe again on the promoted
/// replica, and a sign-out on one node still closes the session's connection on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_announcements_follow_a_failover_of_their_shard() {
    let mut cluster = RedisCluster::start().await;
    let channel = format!("Diquis{}", diquis::auth::revocation::CHANNEL_SUFFIX);
    let db = TestDb::postgres();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("--ConnectionStrings:DefaultConnection={}", db.url());
    let backplane = format!("--ConnectionStrings:RedisConnection={}", cluster.connection_string());
    let args = [
        "web".to_string(),
        database,
        backplane,
        format!("--Seed:AdminEmail={ADMIN_EMAIL}"),
        format!("--Seed:AdminPassword={ADMIN_PASSWORD}"),
        format!("--Jwt:Key={TEST_KEY}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Node::start(dir.path(), &args);
    let b = Node::start(dir.path(), &args);
    let old = cluster.primary_for(&channel).await.expect("the channel's slot is served");
    wait_for_listeners(&cluster.nodes[old], 2).await;

    cluster.nodes[old].kill();
    let promoted = wait_for("a replica to take the channel's slot over", || async {
        cluster.primary_for(&channel).await.filter(|&index| index != old)
    })
    .await;
    wait_for_listeners(&cluster.nodes[promoted], 2).await;

    let (cookie, csrf) = browser_sign_in(&a.url).await;
    let mut on_b = hub::connect_with(&b.url, None, &[("cookie", &cookie)]).await.unwrap();
    on_b.next("Connected").await;
    let r = with_cookies(Method::POST, &format!("{}/logout", a.url), &cookie).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(on_b.closed_within(CLOSE_WINDOW).await, "node B closed the signed-out session's connection");

    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_connections_on_the_other_web_node_close() {
    let redis = RedisServer::start().await;
    let db = TestDb::postgres();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("--ConnectionStrings:DefaultConnection={}", db.url());
    let backplane = format!("--ConnectionStrings:RedisConnection={}", redis.connection_string());
    let args = |role: &'static str| {
        vec![
            role.to_string(),
            database.clone(),
            backplane.clone(),
            format!("--Seed:AdminEmail={ADMIN_EMAIL}"),
            format!("--Seed:AdminPassword={ADMIN_PASSWORD}"),
            format!("--Jwt:Key={TEST_KEY}"),
        ]
    };
    let a_args = args("web");
    let a = Node::start(dir.path(), &a_args.iter().map(String::as_str).collect::<Vec<_>>());
    let b_args = args("web");
    let b = Node::start(dir.path(), &b_args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for_listeners(&redis, 2).await;

    // Sign-out on node A closes the session's cookie connection on node B.
    let (cookie, csrf) = browser_sign_in(&a.url).await;
    let mut on_b = hub::connect_with(&b.url, None, &[("cookie", &cookie)]).await.unwrap();
    on_b.next("Connected").await;
    let r = with_cookies(Method::POST, &format!("{}/logout", a.url), &cookie).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(on_b.closed_within(CLOSE_WINDOW).await, "node B closed the signed-out session's connection");
    let negotiate_b = format!("{}/hubs/notifications/negotiate?negotiateVersion=1", b.url);
    assert_eq!(with_cookies(Method::POST, &negotiate_b, &cookie).send().await.unwrap().status(), 401);

    // A password change on node A closes the user's Bearer connections on node B and ends the
    // token there at once (node B's cached verdict was dropped with the announcement).
    let token = root_token(&a.url).await;
    let mut on_b = hub::connect(&b.url, Some(&token)).await.unwrap();
    on_b.next("Connected").await;
    assert_eq!(status(Method::GET, &format!("{}/api/tenants", b.url), &token).await, 200);
    let (s, b_) = api(
        Method::PUT,
        &format!("{}/api/personal/change-password", a.url),
        Some(&token),
        Some(json!({"password": ADMIN_PASSWORD, "newPassword": "Changed1Passw0rd"})),
    )
    .await;
    assert_eq!(s, 200, "{b_}");
    assert!(on_b.closed_within(CLOSE_WINDOW).await, "node B closed the user's connection");
    assert_eq!(status(Method::GET, &format!("{}/api/tenants", b.url), &token).await, 401);
    assert!(matches!(hub::connect(&b.url, Some(&token)).await, Err(ConnectError::Negotiate(401))));

    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_signing_key_and_the_database_are_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--Seed:AdminPassword=Adm1nPassw0rd", "--Seed:AdminEmail=admin@test.local"];
    let node = Node::start(dir.path(), &args);
    let database = dir.path().join("diquis.db");
    let key_file = with_suffix(&database, ".jwt-key");
    assert_eq!(mode(&database), 0o600, "the database file");
    assert_eq!(mode(&key_file), 0o600, "the key file");
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(&database, suffix);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
    let token = root_token(&node.url).await;
    node.stop();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", database.display())).await.unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = 'jwt_key'").fetch_optional(&pool).await.unwrap();
    assert!(stored.is_none(), "the key is not in the database");
    pool.close().await;

    // The key survives a restart: the token is still good; a key file others could read is
    // made private again.
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let node = Node::start(dir.path(), &args);
    assert_eq!(status(Method::GET, &format!("{}/api/tenants", node.url), &token).await, 200);
    assert_eq!(mode(&key_file), 0o600);
    node.stop();

    // A key an earlier version kept in the database moves into the file.
    let earlier = "a-key-an-earlier-version-kept-in-the-database-0123";
    std::fs::remove_file(&key_file).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", database.display())).await.unwrap();
    sqlx::query("INSERT INTO app_secrets (name, value) VALUES ('jwt_key', $1)").bind(earlier).execute(&pool).await.unwrap();
    pool.close().await;
    let node = Node::start(dir.path(), &args);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), earlier);
    assert_eq!(mode(&key_file), 0o600);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", database.display())).await.unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = 'jwt_key'").fetch_optional(&pool).await.unwrap();
    assert!(stored.is_none(), "moved, not copied");
    pool.close().await;
    let mut c = claims(&root_token(&node.url).await);
    c["jti"] = json!("x");
    let signed_with_earlier =
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &c, &jsonwebtoken::EncodingKey::from_secret(earlier.as_bytes())).unwrap();
    assert_eq!(status(Method::GET, &format!("{}/api/tenants", node.url), &signed_with_earlier).await, 200);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_be_checked_is_neither_accepted_nor_called_revoked() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    // The database goes away before the token was ever checked (nothing cached).
    app.state.db.close().await;
    let (s, b) = api(Method::GET, &format!("{url}/api/notifications"), Some(&token), None).await;
    assert_eq!(s, 503, "{b}");
    assert!(matches!(hub::connect(&url, Some(&token)).await, Err(ConnectError::Negotiate(503))));
    app.stop().await;
}

//! User management: the `diquis users reset-password` command (the real binary) and its
//! one-time link, the signed-in user's password change page, and the Users page of a tenant.

mod common;

use common::*;
use diquis::ProcessRole;
use reqwest::Method;
use serde_json::json;

const NEW_PASSWORD: &str = "N3wPassw0rdAfterReset";

/// Runs `diquis users reset-password ARGS…` in `dir` against the test database.
fn reset_command(db: &TestDb, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_diquis"))
        .current_dir(dir)
        .args(["users", "reset-password"])
        .args(args)
        .arg(format!("--ConnectionStrings:DefaultConnection={}", db.url()))
        .arg("--Jwt:Key=a-test-signing-key-that-is-long-enough-0123456789")
        .output()
        .expect("the diquis binary runs")
}

/// Whether a browser session can still open a signed-in page.
async fn session_works(browser: &reqwest::Client, url: &str) -> bool {
    browser.get(format!("{url}/tenants")).send().await.unwrap().status() == 200
}

#[tokio::test]
async fn reset_link_sets_a_password_once_and_ends_every_session() {
    reset_flow(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn reset_link_on_postgres() {
    let db = TestDb::postgres();
    reset_flow(&db).await;
}

/// The reset command and its link on `db`.
async fn reset_flow(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    let old_session = root_browser(&url).await;
    assert!(session_works(&old_session, &url).await);
    let dir = tempfile::tempdir().unwrap();

    // An unknown user: status 1 and a clear message, no link.
    let unknown = reset_command(db, dir.path(), &["nobody@test.local", "--url", &url]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user 'nobody@test.local' in tenant 'root'"), "{unknown:?}");
    assert!(unknown.stdout.is_empty());

    let out = reset_command(db, dir.path(), &[ADMIN_EMAIL, "--url", &url]);
    assert!(out.status.success(), "{out:?}");
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(link.starts_with(&format!("{url}/reset-password?token=")), "{link}");

    let browser = client();
    let form = browser.get(&link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    let token = link.split("token=").nth(1).unwrap();
    // A weak password is refused and the link still works.
    let weak = browser
        .post(format!("{url}/reset-password"))
        .form(&[("_csrf", csrf_of(&form).as_str()), ("token", token), ("newPassword", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 400);
    let weak = weak.text().await.unwrap();
    assert!(weak.contains("at least 8 characters"), "{weak}");
    // Without the CSRF pair: refused.
    let forged = client()
        .post(format!("{url}/reset-password"))
        .form(&[("_csrf", "x"), ("token", token), ("newPassword", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let done = browser
        .post(format!("{url}/reset-password"))
        .form(&[("_csrf", csrf_of(&weak).as_str()), ("token", token), ("newPassword", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/login");

    // Once only.
    assert_eq!(browser.get(&link).send().await.unwrap().status(), 404);
    let again = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let reuse = browser
        .post(format!("{url}/reset-password"))
        .form(&[("_csrf", csrf_of(&again).as_str()), ("token", token), ("newPassword", "An0therPassw0rd")])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 404);

    // The old password fails, the new one works, the old session has ended.
    let (status, _) = api(
        Method::POST,
        &format!("{url}/api/tokens"),
        None,
        Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "tenant": "root"})),
    )
    .await;
    assert_ne!(status, 200);
    login(&url, ADMIN_EMAIL, NEW_PASSWORD, "root").await;
    assert!(!session_works(&old_session, &url).await, "the session from before the reset has ended");

    // A garbage token shows the same clear page.
    let bad = client().get(format!("{url}/reset-password?token=nonsense")).send().await.unwrap();
    assert_eq!(bad.status(), 404);
    assert!(bad.text().await.unwrap().contains("invalid, already used or expired"));
    app.stop().await;
}

#[tokio::test]
async fn change_password_page_keeps_this_session_and_ends_the_others() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let other = root_browser(&url).await;
    let browser = root_browser(&url).await;
    let form = browser.get(format!("{url}/account/password")).send().await.unwrap().text().await.unwrap();
    let wrong = browser
        .post(format!("{url}/account/password"))
        .form(&[("_csrf", csrf_of(&form).as_str()), ("password", "Wr0ngPassword"), ("newPassword", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.unwrap().contains("The current password is not the current password"));
    let forged = browser
        .post(format!("{url}/account/password"))
        .form(&[("_csrf", "forged"), ("password", ADMIN_PASSWORD), ("newPassword", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let changed = browser
        .post(format!("{url}/account/password"))
        .form(&[("_csrf", csrf_of(&form).as_str()), ("password", ADMIN_PASSWORD), ("newPassword", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 303);
    let page = browser.get(format!("{url}/account/password?changed=1")).send().await.unwrap();
    assert_eq!(page.status(), 200, "signed in with the new session's cookies");
    assert!(page.text().await.unwrap().contains("password-changed"));
    assert!(session_works(&browser, &url).await);
    assert!(!session_works(&other, &url).await, "the other session has ended");
    login(&url, ADMIN_EMAIL, NEW_PASSWORD, "root").await;
    app.stop().await;
}

/// A browser client signed in through `/login` as `email` of `tenant`.
async fn browser_of(url: &str, email: &str, password: &str, tenant: &str) -> reqwest::Client {
    let browser = client();
    let page = browser.get(format!("{url}/login")).send().await.unwrap().text().await.unwrap();
    let r = browser
        .post(format!("{url}/login"))
        .form(&[("_csrf", csrf_of(&page).as_str()), ("email", email), ("password", password), ("tenant", tenant)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{email}@{tenant} signed in through the form");
    browser
}

/// The `<tr>` of the user `email` on a Users page, if listed.
fn row_of<'a>(html: &'a str, email: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"data-email="{email}""#))?;
    let row_start = html[..start].rfind("<tr")?;
    let end = html[start..].find("</tr>")? + start;
    Some(&html[row_start..end])
}

/// The id of a listed user.
fn id_of(html: &str, email: &str) -> String {
    let row = row_of(html, email).unwrap_or_else(|| panic!("{email} listed in {html}"));
    row.split(r#"id="user-"#).nth(1).unwrap().split('"').next().unwrap().to_string()
}

async fn can_sign_in(url: &str, email: &str, password: &str, tenant: &str) -> bool {
    let (status, _) =
        api(Method::POST, &format!("{url}/api/tokens"), None, Some(json!({"email": email, "password": password, "tenant": tenant}))).await;
    status == 200
}

#[tokio::test]
async fn users_page_lists_adds_disables_enables_and_removes() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let root = root_browser(&url).await;
    let users_page = |browser: reqwest::Client, tenant: &'static str| {
        let url = url.clone();
        async move { browser.get(format!("{url}/users?tenant={tenant}")).send().await.unwrap() }
    };
    let page = users_page(root.clone(), "root").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let me = row_of(&page, ADMIN_EMAIL).expect("the root administrator is listed");
    assert!(me.contains("root") && me.contains("you") && !me.contains("Disable"), "{me}");
    let csrf = csrf_of(&page);
    let tenant_list = root.get(format!("{url}/tenants")).send().await.unwrap().text().await.unwrap();
    assert!(tenant_list.contains(r#"href="/users?tenant=root""#), "the tenant rows link to their users");

    let add =
        |browser: reqwest::Client, csrf: String, tenant: &'static str, email: &'static str, password: &'static str, role: &'static str| {
            let url = url.clone();
            async move {
                browser
                    .post(format!("{url}/users"))
                    .form(&[("_csrf", csrf.as_str()), ("tenant", tenant), ("email", email), ("password", password), ("role", role)])
                    .send()
                    .await
                    .unwrap()
            }
        };
    // Bad input: clear problems, nothing added.
    let weak = add(root.clone(), csrf.clone(), "root", "second@test.local", "short", "root").await;
    assert_eq!(weak.status(), 400);
    let weak = weak.text().await.unwrap();
    assert!(weak.contains("at least 8 characters") && row_of(&weak, "second@test.local").is_none(), "{weak}");
    let bad_role = add(root.clone(), csrf.clone(), "root", "second@test.local", "Sec0ndPassword", "academy_admin").await;
    assert_eq!(bad_role.status(), 400);
    assert!(bad_role.text().await.unwrap().contains("must be one of: root"));
    let forged = add(root.clone(), "forged".into(), "root", "second@test.local", "Sec0ndPassword", "root").await;
    assert_eq!(forged.status(), 403);

    let added = add(root.clone(), csrf.clone(), "root", "second@test.local", "Sec0ndPassword", "root").await;
    assert_eq!(added.status(), 303);
    assert_eq!(added.headers()["location"], "/users?tenant=root");
    let duplicate = add(root.clone(), csrf.clone(), "root", "Second@test.local", "Sec0ndPassword", "root").await;
    assert_eq!(duplicate.status(), 409);
    assert!(can_sign_in(&url, "second@test.local", "Sec0ndPassword", "root").await);
    let second = browser_of(&url, "second@test.local", "Sec0ndPassword", "root").await;
    assert!(session_works(&second, &url).await);

    let page = users_page(root.clone(), "root").await.text().await.unwrap();
    let id = id_of(&page, "second@test.local");
    assert!(row_of(&page, "second@test.local").unwrap().contains(r#"data-active="true""#));
    let act = |action: &'static str| {
        let (root, url, csrf, id) = (root.clone(), url.clone(), csrf.clone(), id.clone());
        async move {
            root.post(format!("{url}/users/{id}/{action}")).form(&[("_csrf", csrf.as_str()), ("tenant", "root")]).send().await.unwrap()
        }
    };
    assert_eq!(act("disable").await.status(), 303);
    let page = users_page(root.clone(), "root").await.text().await.unwrap();
    assert!(row_of(&page, "second@test.local").unwrap().contains(r#"data-active="false""#));
    assert!(!can_sign_in(&url, "second@test.local", "Sec0ndPassword", "root").await);
    assert!(!session_works(&second, &url).await, "disabling ends the user's sessions");
    assert_eq!(act("enable").await.status(), 303);
    assert!(can_sign_in(&url, "second@test.local", "Sec0ndPassword", "root").await);
    assert_eq!(act("remove").await.status(), 303);
    let page = users_page(root.clone(), "root").await.text().await.unwrap();
    assert!(row_of(&page, "second@test.local").is_none(), "removed");
    assert!(!can_sign_in(&url, "second@test.local", "Sec0ndPassword", "root").await);

    // Never oneself.
    let my_id = id_of(&page, ADMIN_EMAIL);
    let own = root.post(format!("{url}/users/{my_id}/disable")).form(&[("_csrf", csrf.as_str()), ("tenant", "root")]).send().await.unwrap();
    assert_eq!(own.status(), 400);
    assert!(own.text().await.unwrap().contains("You cannot disable or delete your own account."));
    app.stop().await;
}

#[tokio::test]
async fn tenant_administrators_manage_their_own_tenant_only() {
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let (status, body) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("acme", false))).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&url, &token, "acme", "Active").await;

    // The API route: root adds a member to tenant acme.
    let (status, body) = api(
        Method::POST,
        &format!("{url}/api/users"),
        Some(&token),
        Some(json!({"tenant": "acme", "email": "member@acme.test", "password": "Memb3rPassword", "role": "coach"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["email"], "member@acme.test");
    assert_eq!(body["data"]["tenantId"], "acme");
    let (status, body) = api(
        Method::POST,
        &format!("{url}/api/users"),
        Some(&token),
        Some(json!({"tenant": "nope", "email": "x@y.test", "password": "Memb3rPassword", "role": "coach"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(Method::POST, &format!("{url}/api/users"), Some(&token), Some(json!({"email": 5}))).await;
    assert_eq!(status, 400, "{body}");

    let owner = browser_of(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    let home = owner.get(format!("{url}/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains(r#"id="users-link""#), "the header links tenant administrators to their users");
    let page = owner.get(format!("{url}/users")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Users of <code>acme</code>"));
    assert!(row_of(&page, "member@acme.test").unwrap().contains("coach"));
    assert!(row_of(&page, ADMIN_EMAIL).is_none(), "no root users on a tenant's page");
    let csrf = csrf_of(&page);
    let added = owner
        .post(format!("{url}/users"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("tenant", "acme"),
            ("email", "admin2@acme.test"),
            ("password", "Adm1nTwoPassword"),
            ("role", "academy_admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 303);
    assert!(can_sign_in(&url, "admin2@acme.test", "Adm1nTwoPassword", "acme").await);
    // An administrator (not the owner) adds no owner.
    let admin2 = login(&url, "admin2@acme.test", "Adm1nTwoPassword", "acme").await;
    let (status, body) = api(
        Method::POST,
        &format!("{url}/api/users"),
        Some(&admin2),
        Some(json!({"email": "boss@acme.test", "password": "B0ssPassword", "role": "academy_owner"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api(
        Method::POST,
        &format!("{url}/api/users"),
        Some(&admin2),
        Some(json!({"email": "parent@acme.test", "password": "Par3ntPassword", "role": "parent"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["tenantId"], "acme", "the caller's tenant by default");

    // Another tenant's users, or root's: not for a tenant administrator.
    assert_eq!(owner.get(format!("{url}/users?tenant=root")).send().await.unwrap().status(), 403);
    let into_root = owner
        .post(format!("{url}/users"))
        .form(&[("_csrf", csrf.as_str()), ("tenant", "root"), ("email", "evil@acme.test"), ("password", "Ev1lPassword"), ("role", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(into_root.status(), 403);
    assert!(!can_sign_in(&url, "evil@acme.test", "Ev1lPassword", "root").await);
    let root_page = root_browser(&url).await.get(format!("{url}/users?tenant=root")).send().await.unwrap().text().await.unwrap();
    let root_id = id_of(&root_page, ADMIN_EMAIL);
    let disable_root =
        owner.post(format!("{url}/users/{root_id}/disable")).form(&[("_csrf", csrf.as_str()), ("tenant", "acme")]).send().await.unwrap();
    assert_eq!(disable_root.status(), 404);
    assert!(can_sign_in(&url, ADMIN_EMAIL, ADMIN_PASSWORD, "root").await);

    // A member manages nobody.
    let member = browser_of(&url, "member@acme.test", "Memb3rPassword", "acme").await;
    assert_eq!(member.get(format!("{url}/users")).send().await.unwrap().status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn user_lists_are_paged() {
    user_paging(&TestDb::sqlite()).await;
}

#[tokio::test]
async fn user_lists_are_paged_on_postgres() {
    let db = TestDb::postgres();
    user_paging(&db).await;
}

/// `GET /api/users` and `/users?tenant=` in pages, like the tenant list, on `db`.
async fn user_paging(db: &TestDb) {
    let app = start(db, ProcessRole::Web, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    // 24 more users of root: 25 with the administrator (a stored hash; nobody signs in as them).
    let mut tx = app.state.db.begin().await.unwrap();
    for i in 0..24 {
        let email = format!("user{i:02}@paged.test");
        let user = diquis::auth::users::NewUser { tenant_id: "root", email: &email, password_hash: "x", roles: &[] };
        assert!(diquis::auth::users::ensure_user(&mut tx, &user).await.unwrap().1);
    }
    tx.commit().await.unwrap();

    let get = |query: &'static str| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let r = client().get(format!("{url}/api/users{query}")).bearer_auth(token).send().await.unwrap();
            let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), link, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (s, link, b) = get("?page=2&pageSize=10").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["succeeded"], true);
    assert_eq!(b["data"].as_array().unwrap().len(), 10);
    assert_eq!((b["currentPage"].as_i64(), b["pageSize"].as_i64()), (Some(2), Some(10)));
    assert_eq!((b["totalCount"].as_i64(), b["totalPages"].as_i64()), (Some(25), Some(3)));
    assert_eq!((b["hasPreviousPage"].as_bool(), b["hasNextPage"].as_bool()), (Some(true), Some(true)));
    assert_eq!(link.as_deref(), Some("</api/users?page=1&pageSize=10>; rel=\"prev\", </api/users?page=3&pageSize=10>; rel=\"next\""));
    // Pages do not overlap and together hold every user; the last holds the rest.
    let mut names = std::collections::BTreeSet::new();
    for page in 1..=3 {
        let r = client().get(format!("{url}/api/users?page={page}&pageSize=10")).bearer_auth(&token).send().await.unwrap();
        let b: serde_json::Value = r.json().await.unwrap();
        assert_eq!(b["data"].as_array().unwrap().len(), if page == 3 { 5 } else { 10 }, "{b}");
        for u in b["data"].as_array().unwrap() {
            assert!(names.insert(u["userName"].as_str().unwrap().to_string()), "{u} on two pages");
        }
    }
    assert_eq!(names.len(), 25);
    // A tenant's list: its links keep the tenant.
    let (s, link, b) = get("?tenant=root&pageSize=10").await;
    assert_eq!((s, b["totalCount"].as_i64(), b["data"].as_array().unwrap().len()), (200, Some(25), 10), "{b}");
    assert_eq!(link.as_deref(), Some("</api/users?tenant=root&page=2&pageSize=10>; rel=\"next\""));
    let (_, _, b) = get("?tenant=nobody").await;
    assert_eq!((b["totalCount"].as_i64(), b["totalPages"].as_i64(), b["data"].as_array().unwrap().len()), (Some(0), Some(1), 0));
    // Without parameters: the first page of the default size; too large a size is capped.
    let (_, link, b) = get("").await;
    assert_eq!((b["pageSize"].as_i64(), b["data"].as_array().unwrap().len()), (Some(20), 20));
    assert_eq!(link.as_deref(), Some("</api/users?page=2&pageSize=20>; rel=\"next\""));
    let (s, link, b) = get("?pageSize=100000").await;
    assert_eq!((s, b["pageSize"].as_i64(), b["data"].as_array().unwrap().len()), (200, Some(100), 25));
    assert!(link.is_none(), "one page holds every user");
    let (s, _, b) = get("?page=0&pageSize=x").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["messages"].as_array().unwrap().len(), 2, "{b}");
    let (s, _, b) = get("?page=-1").await;
    assert_eq!(s, 400, "{b}");
    assert!(b["messages"][0].as_str().unwrap().starts_with("'page'"), "{b}");

    // The Users page: a pager whose links keep the tenant, and page 2.
    let browser = root_browser(&url).await;
    let html = browser.get(format!("{url}/users?tenant=root&pageSize=10")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr id=\"user-").count(), 10, "{html}");
    assert!(html.contains("Page 1 of 3 (25 users)"), "{html}");
    assert!(html.contains("href=\"/users?tenant=root&amp;page=2&amp;pageSize=10\""), "{html}");
    assert!(!html.contains("rel=\"prev\""), "the first page has no previous link");
    let html = browser.get(format!("{url}/users?tenant=root&page=2&pageSize=10")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr id=\"user-").count(), 10, "{html}");
    assert!(html.contains("Page 2 of 3 (25 users)"), "{html}");
    assert!(html.contains("href=\"/users?tenant=root&amp;page=1&amp;pageSize=10\""), "{html}");
    assert!(html.contains("href=\"/users?tenant=root&amp;page=3&amp;pageSize=10\""), "{html}");
    // Page 2 holds other users than page 1 (by user name: admin@… first, then user00…).
    assert!(!html.contains(&format!("data-email=\"{ADMIN_EMAIL}\"")), "{html}");
    assert!(html.contains("data-email=\"user09@paged.test\""), "{html}");
    // An action on page 2 comes back to page 2.
    let csrf = csrf_of(&html);
    let id = id_of(&html, "user10@paged.test");
    let r = browser
        .post(format!("{url}/users/{id}/disable"))
        .form(&[("_csrf", csrf.as_str()), ("tenant", "root"), ("page", "2"), ("pageSize", "10")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/users?tenant=root&page=2&pageSize=10");
    // The default: 20 rows; a bad page value: 400 with the problem named.
    let html = browser.get(format!("{url}/users?tenant=root")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<tr id=\"user-").count(), 20, "{html}");
    let r = browser.get(format!("{url}/users?tenant=root&page=zero")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("must be a whole number of at least 1; 'zero'"), "the problem is named");
    app.stop().await;
}

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
        .arg(format!("--ConnectionStrings:DefaultConnection={}", db.connection_string()))
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
    let db = TestDb::sqlite();
    let app = start(&db, ProcessRole::All, &[]).await;
    let url = app.url();
    let old_session = root_browser(&url).await;
    assert!(session_works(&old_session, &url).await);
    let dir = tempfile::tempdir().unwrap();

    // An unknown user: status 1 and a clear message, no link.
    let unknown = reset_command(&db, dir.path(), &["nobody@test.local", "--url", &url]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user 'nobody@test.local' in tenant 'root'"), "{unknown:?}");
    assert!(unknown.stdout.is_empty());

    let out = reset_command(&db, dir.path(), &[ADMIN_EMAIL, "--url", &url]);
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
    let forged = client().post(format!("{url}/reset-password")).form(&[("_csrf", "x"), ("token", token), ("newPassword", NEW_PASSWORD)]).send().await.unwrap();
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
    let (status, _) = api(Method::POST, &format!("{url}/api/tokens"), None, Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "tenant": "root"}))).await;
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

//! The tenant API and jobs on SQLite and on PostgreSQL: the whole lifecycle with live hub events,
//! every bad input, and retries of half-finished or failed provisioning.

mod common;

use common::hub;
use common::*;
use diquis::ProcessRole;
use reqwest::Method;
use serde_json::{Value, json};
use test_support::both_databases;

both_databases!(lifecycle_with_live_events);
both_databases!(every_bad_input_is_named);
both_databases!(half_finished_provisioning_is_retried);
both_databases!(failed_provisioning_then_retry);
both_databases!(failed_provisioning_gives_up_after_its_attempts);
both_databases!(update_job_of_a_missing_tenant_fails_with_an_event);

fn assert_round_trip_timestamp(v: &Value) {
    let t = v.as_str().expect("timestamp string");
    // DateTime.UtcNow.ToString("o"): 2025-11-27T07:33:59.1234567Z
    assert_eq!(t.len(), 28, "{t}");
    assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
}

async fn lifecycle_with_live_events(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("root connects");
    let hello = root.next("Connected").await;
    assert_eq!(hello.arguments, vec![json!("Successfully connected to notification hub")]);

    // Create (isolated database) → 202, then TenantCreated on the hub.
    let (s, b) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("acme", true))).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["succeeded"], true);
    assert_eq!(b["data"], "acme");
    let created = root.next("TenantCreated").await;
    let p = &created.arguments[0];
    assert_eq!(p["type"], "success");
    assert_eq!(p["message"], "Tenant 'Academy acme' has been created successfully!");
    assert_eq!(p["userId"], format!("{ADMIN_EMAIL}.root"));
    assert_eq!(p["tenantId"], "acme");
    assert_eq!(p["tenantName"], "Academy acme");
    assert_round_trip_timestamp(&p["timestamp"]);
    let created_id = p["id"].as_i64().expect("id");

    let (s, b) = api(Method::GET, &format!("{url}/api/tenants/acme"), Some(&token), None).await;
    assert_eq!(s, 200);
    assert_eq!(b["data"]["status"], "Active");
    assert_eq!(b["data"]["hasIsolatedDatabase"], true);
    assert!(b["data"]["provisioningError"].is_null());
    // Routes match case-insensitively and with a trailing slash.
    let (s, b) = api(Method::GET, &format!("{url}/API/Tenants/"), Some(&token), None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = b["data"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["acme", "root"], "newest first");

    // The isolated database exists and was migrated.
    match db {
        TestDb::Sqlite(dir) => assert!(dir.path().join("diquis-acme.db").is_file()),
        TestDb::Postgres(name) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&postgres_url(&format!("{name}-acme"))).await.unwrap();
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM tenant_metadata WHERE tenant_id = 'acme'").fetch_one(&mut c).await.unwrap();
            assert_eq!(n, 1);
        }
    }

    // The tenant's admin signs in to its tenant, has academy_owner, and is not a root admin.
    let owner = login(&url, "owner@acme.test", "Owner1Passw0rd", "acme").await;
    let (s, _) = api(Method::GET, &format!("{url}/api/tenants"), Some(&owner), None).await;
    assert_eq!(s, 403);

    // Update → 202, TenantUpdated, name and flag applied.
    let (s, b) =
        api(Method::PUT, &format!("{url}/api/tenants/acme"), Some(&token), Some(json!({"name": "Acme FC", "isActive": false}))).await;
    assert_eq!(s, 202, "{b}");
    let updated = root.next("TenantUpdated").await;
    let p = &updated.arguments[0];
    assert_eq!(p["message"], "Tenant 'Acme FC' has been updated successfully!");
    assert_eq!(p["tenantName"], "Acme FC");
    assert!(p["id"].as_i64().unwrap() > created_id);
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants/acme"), Some(&token), None).await;
    assert_eq!(b["data"]["name"], "Acme FC");
    assert_eq!(b["data"]["isActive"], false);
    assert_eq!(b["data"]["status"], "Active");
    // What the status means, as the page shows it: Inactive, in the list too.
    assert_eq!(b["data"]["outlook"]["state"], "Inactive", "{b}");
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants"), Some(&token), None).await;
    let outlooks: Vec<&str> = b["data"].as_array().unwrap().iter().map(|t| t["outlook"]["state"].as_str().unwrap()).collect();
    assert_eq!(outlooks, vec!["Inactive", "Active"], "{b}");

    // A deactivated tenant's users cannot sign in.
    let (s, b) = api(
        Method::POST,
        &format!("{url}/api/tokens"),
        None,
        Some(json!({"email": "owner@acme.test", "password": "Owner1Passw0rd", "tenant": "acme"})),
    )
    .await;
    assert_eq!(s, 401, "{b}");

    // Missed notifications: the same payloads with the same ids.
    let (s, b) = api(Method::GET, &format!("{url}/api/notifications?after=0"), Some(&token), None).await;
    assert_eq!(s, 200);
    let list = b["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["event"], "TenantCreated");
    assert_eq!(list[0]["data"], created.arguments[0]);
    assert_eq!(list[1]["data"], updated.arguments[0]);
    let (_, b) = api(Method::GET, &format!("{url}/api/notifications?after={created_id}"), Some(&token), None).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);

    // Exactly one admin user in the tenant.
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "acme").await.unwrap(), 1);
    app.stop().await;
}

async fn every_bad_input_is_named(db: &TestDb) {
    // Web only: jobs stay Pending, so "busy" is observable.
    let app = start(db, ProcessRole::Web, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let tenants = format!("{url}/api/tenants");

    let (s, b) = api(Method::POST, &tenants, Some(&token), Some(json!({}))).await;
    assert_eq!(s, 400);
    assert_eq!(b["succeeded"], false);
    let messages: Vec<String> = b["messages"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
    for field in ["'id'", "'name'", "'adminEmail'", "'password'"] {
        assert!(messages.iter().any(|m| m.starts_with(field)), "{field} in {messages:?}");
    }
    let (s, b) = api(
        Method::POST,
        &tenants,
        Some(&token),
        Some(json!({"id": "Not A Slug", "name": "x".repeat(101), "adminEmail": "nope", "password": "weak", "hasIsolatedDatabase": 1})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(b["messages"].as_array().unwrap().len(), 5, "{b}");
    for body in ["{not json", "[1,2]", ""] {
        let r = client().post(&tenants).bearer_auth(&token).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["succeeded"], false);
    }

    // Duplicate id → 409; root → 409 too (it exists).
    let (s, _) = api(Method::POST, &tenants, Some(&token), Some(new_tenant("dup", false))).await;
    assert_eq!(s, 202);
    let (s, b) = api(Method::POST, &tenants, Some(&token), Some(new_tenant("dup", false))).await;
    assert_eq!(s, 409, "{b}");
    assert!(b["messages"][0].as_str().unwrap().contains("already exists"));
    let (s, _) = api(Method::POST, &tenants, Some(&token), Some(new_tenant("root", false))).await;
    assert_eq!(s, 409);

    // Updates: root, unknown, busy (Pending), bad bodies.
    let (s, b) = api(Method::PUT, &format!("{tenants}/root"), Some(&token), Some(json!({"name": "X", "isActive": true}))).await;
    assert_eq!(s, 400);
    assert!(b["messages"][0].as_str().unwrap().contains("root tenant cannot be edited"));
    let (s, _) = api(Method::PUT, &format!("{tenants}/nobody"), Some(&token), Some(json!({"name": "X", "isActive": true}))).await;
    assert_eq!(s, 404);
    let (s, b) = api(Method::PUT, &format!("{tenants}/dup"), Some(&token), Some(json!({"name": "X", "isActive": true}))).await;
    assert_eq!(s, 409, "{b}");
    assert!(b["messages"][0].as_str().unwrap().contains("Pending"));
    let (s, b) = api(Method::PUT, &format!("{tenants}/dup"), Some(&token), Some(json!({"name": "", "isActive": "yes"}))).await;
    assert_eq!(s, 400);
    assert_eq!(b["messages"].as_array().unwrap().len(), 2, "{b}");
    let (s, _) = api(Method::GET, &format!("{tenants}/nobody"), Some(&token), None).await;
    assert_eq!(s, 404);

    // Authentication and authorization.
    let (s, b) = api(Method::GET, &tenants, None, None).await;
    assert_eq!(s, 401);
    assert_eq!(b["succeeded"], false);
    let (s, _) = api(Method::GET, &tenants, Some("not.a.jwt"), None).await;
    assert_eq!(s, 401);
    let expired = expired_root_token(&app).await;
    let (s, b) = api(Method::GET, &tenants, Some(&expired), None).await;
    assert_eq!(s, 401);
    assert!(b["messages"][0].as_str().unwrap().contains("expired"));
    let (s, _) = api(Method::GET, &format!("{url}/api/notifications?after=abc"), Some(&token), None).await;
    assert_eq!(s, 400);
    let (s, _) = api(Method::GET, &format!("{url}/api/notifications?after=-1"), Some(&token), None).await;
    assert_eq!(s, 400);

    // Sign-in errors.
    let signin = format!("{url}/api/tokens");
    let (s, b) = api(Method::POST, &signin, None, Some(json!({}))).await;
    assert_eq!(s, 400);
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);
    let (s, _) = api(Method::POST, &signin, None, Some(json!({"email": ADMIN_EMAIL, "password": "wrong-passw0rd"}))).await;
    assert_eq!(s, 401);
    let (s, _) = api(Method::POST, &signin, None, Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "tenant": "nope"}))).await;
    assert_eq!(s, 401);
    let (s, _) = api(Method::POST, &signin, None, Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "tenant": "dup"}))).await;
    assert_eq!(s, 401);
    let (s, _) = api(Method::POST, &format!("{url}/api/tokens/refresh"), None, Some(json!({"refreshToken": "bogus"}))).await;
    assert_eq!(s, 401);

    // Refresh rotates: the new refresh token works once, the old one no longer, and its reuse
    // ends the whole session (tests/revocation.rs covers the family in detail).
    let (_, b) = api(Method::POST, &signin, None, Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))).await;
    let refresh = b["data"]["refreshToken"].as_str().unwrap().to_string();
    let (s, b2) = api(Method::POST, &format!("{url}/api/tokens/refresh"), None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(s, 200, "{b2}");
    let fresh = b2["data"]["token"].as_str().unwrap();
    let (s, _) = api(Method::GET, &tenants, Some(fresh), None).await;
    assert_eq!(s, 200);
    let (s, _) = api(Method::POST, &format!("{url}/api/tokens/refresh"), None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(s, 401);
    let (s, _) = api(Method::GET, &tenants, Some(fresh), None).await;
    assert_eq!(s, 401);
    app.stop().await;
}

/// A token of the root admin that expired a minute ago, signed with the app's key.
pub async fn expired_root_token(app: &diquis::RunningApp) -> String {
    let user = diquis::auth::users::find_by_email(&app.state.db, "root", ADMIN_EMAIL).await.unwrap().unwrap();
    let (session, _, _) = diquis::auth::tokens::new_session(&app.state.db, &user.id, None, 1).await.unwrap();
    let identity = diquis::auth::tokens::identity_of(&app.state.db, &user, &session, None).await.unwrap();
    app.state.jwt.issue_with_lifetime(&identity, -60)
}

async fn half_finished_provisioning_is_retried(db: &TestDb) {
    // The web part records the tenant and its job; nothing runs it yet.
    let web = start(db, ProcessRole::Web, &[]).await;
    let token = root_token(&web.url()).await;
    let (s, _) = api(Method::POST, &format!("{}/api/tenants", web.url()), Some(&token), Some(new_tenant("half", true))).await;
    assert_eq!(s, 202);
    let pending = wait_status(&web.url(), &token, "half", "Pending").await;
    let stored = pending["connectionString"].as_str().unwrap().to_string();

    // A previous attempt got half-way: Provisioning, its database created and migrated, and the
    // admin user already inserted (the step the .NET original fails to repeat).
    let target = diquis::tenants::isolated::from_stored(&web.state.settings.database, &stored);
    diquis::tenants::isolated::prepare(&target, "half").await.unwrap();
    let mut tx = web.state.db.begin().await.unwrap();
    diquis::tenants::repo::set_status(&mut tx, "half", diquis::tenants::model::TenantStatus::Provisioning, None, true).await.unwrap();
    let hash = diquis::auth::password::hash("Owner1Passw0rd");
    diquis::auth::users::ensure_user(
        &mut tx,
        &diquis::auth::users::NewUser { tenant_id: "half", email: "owner@half.test", password_hash: &hash, roles: &[] },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Now the jobs part runs the job: it completes without "user already exists".
    let jobs = start(db, ProcessRole::Jobs, &[]).await;
    let tenant = wait_status(&web.url(), &token, "half", "Active").await;
    assert!(tenant["provisioningError"].is_null());
    assert_eq!(diquis::auth::users::count_in_tenant(&web.state.db, "half").await.unwrap(), 1);
    let owner = login(&web.url(), "owner@half.test", "Owner1Passw0rd", "half").await;
    assert!(!owner.is_empty());
    let (_, b) = api(Method::GET, &format!("{}/api/notifications", web.url()), Some(&token), None).await;
    let events: Vec<&str> = b["data"].as_array().unwrap().iter().map(|n| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["TenantCreated"]);
    // The owner role was granted on the retry.
    let user = diquis::auth::users::find_by_email(&web.state.db, "half", "owner@half.test").await.unwrap().unwrap();
    assert_eq!(diquis::auth::users::roles_of(&web.state.db, &user.id).await.unwrap(), vec!["academy_owner"]);
    jobs.stop().await;
    web.stop().await;
}

async fn failed_provisioning_then_retry(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("connects");
    let unblock = block_isolated_database(db, "broken").await;

    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("broken", true))).await;
    assert_eq!(s, 202);
    let failed = root.next("TenantCreationFailed").await;
    let p = &failed.arguments[0];
    assert_eq!(p["type"], "error");
    assert_eq!(p["tenantId"], "broken");
    let error = p["error"].as_str().unwrap().to_string();
    assert!(error.contains("Could not prepare the tenant database"), "{error}");
    assert_eq!(p["message"], format!("Failed to create tenant: {error}"));
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants/broken"), Some(&token), None).await;
    assert_eq!(b["data"]["status"], "Failed");
    assert_eq!(b["data"]["provisioningError"], error.as_str());
    // The API tells what the page tells: the job waits for its second attempt of 11, at a time.
    let outlook = &b["data"]["outlook"];
    assert_eq!(outlook["state"], "Retrying", "{b}");
    assert_eq!(outlook["attempt"], 2, "{b}");
    assert_eq!(outlook["maxAttempts"], 11, "{b}");
    let next: chrono::DateTime<chrono::Utc> = outlook["nextAttemptAt"].as_str().expect("a time").parse().unwrap();
    assert!(next > chrono::Utc::now() - chrono::Duration::minutes(1), "{b}");
    assert!(outlook["detail"].as_str().unwrap().starts_with("attempt 2 of 11 at "), "{b}");
    let (_, list) = api(Method::GET, &format!("{url}/api/tenants"), Some(&token), None).await;
    assert_eq!(list["data"][0]["id"], "broken");
    assert_eq!(list["data"][0]["outlook"], *outlook);
    // Never provisioned: cannot be edited.
    let (s, _) = api(Method::PUT, &format!("{url}/api/tenants/broken"), Some(&token), Some(json!({"name": "B", "isActive": true}))).await;
    assert_eq!(s, 409);

    // The page shows what is true: the job waits for its next attempt.
    let browser = root_browser(&url).await;
    let row = || async { browser.get(format!("{url}/tenants/broken/row")).send().await.unwrap().text().await.unwrap() };
    let html = row().await;
    assert!(html.contains(r#"data-status="Failed" data-shown="Retrying""#), "{html}");
    assert!(html.contains("attempt 2 of 11 at "), "{html}");

    // The cause goes away; the job is retried (as the dashboard's Requeue does) and succeeds.
    unblock().await;
    let job = app.state.jobs.list(jobs::JobState::Scheduled, 0, 10).await.unwrap();
    assert_eq!(job.len(), 1, "the failed attempt is scheduled for a retry");
    app.state.jobs.requeue(job[0].id).await.unwrap();
    let created = root.next("TenantCreated").await;
    assert_eq!(created.arguments[0]["tenantId"], "broken");
    assert!(created.arguments[0]["id"].as_i64().unwrap() > p["id"].as_i64().unwrap());
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants/broken"), Some(&token), None).await;
    assert_eq!(b["data"]["status"], "Active");
    assert!(b["data"]["provisioningError"].is_null());
    assert_eq!(diquis::auth::users::count_in_tenant(&app.state.db, "broken").await.unwrap(), 1);
    assert!(row().await.contains(r#"data-shown="Active""#));
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants/broken"), Some(&token), None).await;
    assert_eq!(
        b["data"]["outlook"],
        json!({"state": "Active", "attempt": null, "maxAttempts": null, "nextAttemptAt": null, "detail": null})
    );
    app.stop().await;
}

/// With `Jobs:TenantRetry:*` set short, a provisioning that keeps failing is Retrying with
/// attempt 2 of 2, then Failed when no attempt is left, in the API and on the page.
async fn failed_provisioning_gives_up_after_its_attempts(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[("Jobs:TenantRetry:Attempts", "2"), ("Jobs:TenantRetry:Delay", "00:00:00.5")]).await;
    let url = app.url();
    let token = root_token(&url).await;
    let mut root = hub::connect(&url, Some(&token)).await.expect("connects");
    let _blocked = block_isolated_database(db, "doomed").await;
    let (s, _) = api(Method::POST, &format!("{url}/api/tenants"), Some(&token), Some(new_tenant("doomed", true))).await;
    assert_eq!(s, 202);
    root.next("TenantCreationFailed").await;
    // The first failure's row is read before the second attempt's failure is committed, or after:
    // either it is retrying (attempt 2 of 2) or it has given up.
    let (_, b) = api(Method::GET, &format!("{url}/api/tenants/doomed"), Some(&token), None).await;
    let outlook = &b["data"]["outlook"];
    match outlook["state"].as_str() {
        Some("Retrying") => {
            assert_eq!(outlook["attempt"], 2, "{b}");
            assert_eq!(outlook["maxAttempts"], 2, "{b}");
        }
        Some("Failed") => {}
        other => panic!("Retrying or Failed expected, got {other:?}: {b}"),
    }
    root.next("TenantCreationFailed").await;
    let b = wait_for("the tenant to be Failed for good", || async {
        let (_, b) = api(Method::GET, &format!("{url}/api/tenants/doomed"), Some(&token), None).await;
        (b["data"]["outlook"]["state"] == "Failed").then_some(b)
    })
    .await;
    assert_eq!(b["data"]["status"], "Failed");
    assert!(b["data"]["outlook"]["attempt"].is_null());
    assert_eq!(b["data"]["outlook"]["detail"], "no attempt left: fix the cause, then Requeue its job in Jobs");
    let job = app.state.jobs.list(jobs::JobState::Failed, 0, 10).await.unwrap();
    assert_eq!(job.len(), 1, "the job is in the dashboard's Failed list");
    assert_eq!(job[0].attempt, 2);
    let browser = root_browser(&url).await;
    let html = browser.get(format!("{url}/tenants/doomed/row")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-status="Failed" data-shown="Failed""#), "{html}");
    app.stop().await;
}

async fn update_job_of_a_missing_tenant_fails_with_an_event(db: &TestDb) {
    let app = start(db, ProcessRole::All, &[]).await;
    let token = root_token(&app.url()).await;
    let mut root = hub::connect(&app.url(), Some(&token)).await.expect("connects");
    let job = diquis::tenants::jobs::update_job(&diquis::tenants::jobs::UpdateTenant {
        tenant_id: "ghost".into(),
        name: "Ghost".into(),
        is_active: true,
        initiated_by: format!("{ADMIN_EMAIL}.root"),
        request_id: None,
    });
    let id = app.state.jobs.enqueue(job).await.unwrap();
    let failed = root.next("TenantUpdateFailed").await;
    let p = &failed.arguments[0];
    assert_eq!(p["error"], "Tenant not found");
    assert_eq!(p["message"], "Failed to update tenant: Tenant not found");
    assert_eq!(p["tenantId"], "ghost");
    // A permanent failure: no retry.
    let rec = wait_for("the job to end Failed", || async {
        let rec = app.state.jobs.get(id).await.unwrap().unwrap();
        (rec.state == jobs::JobState::Failed).then_some(rec)
    })
    .await;
    assert_eq!(rec.last_error.as_deref(), Some("Tenant not found"));
    app.stop().await;
}

//! The server-rendered UI: sign-in, the tenant list (live), create and edit forms, and a page
//! running the seed document's script unchanged.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::assets::{SIGNALR_PATH, TOASTR_ESCAPE_PATH};
use maud::{Markup, PreEscaped, html};

use super::account::password_hint;
use super::html::{is_local_path, page, url_encode};
use crate::auth::extract::{PageCaller, RootPageCaller};
use crate::auth::session::{AUTH_COOKIE, CSRF_FIELD, LOGIN_CSRF_COOKIE, REFRESH_COOKIE, cookie, is_https, secrets_equal, set_cookie};
use crate::auth::{Identity, ROOT_TENANT, tokens};
use crate::notifications::outbox;
use crate::state::AppState;
use crate::tenants::api::{create_tenant, update_tenant, validate_create, validate_update};
use crate::tenants::model::{TenantRow, TenantStatus};
use crate::tenants::outlook::{self, Shown};
use crate::tenants::repo;
use crate::web::envelope::ApiError;
use crate::web::form_errors::{CREATE_TENANT_FIELDS, EDIT_TENANT_FIELDS, FormErrors};
use crate::web::forms::{Fields, csrf_ok, field, forbidden_csrf, problems_html};
use crate::web::paging::{MAX_PAGE_SIZE, PageInfo, PageRequest};

// ---------- sign-in ----------

fn login_page(csrf: &str, return_url: &str, email: &str, tenant: &str, problems: &[String]) -> String {
    let body = html! {
        div class="card login" {
            h1 { "Sign in" }
            (problems_html(problems))
            form method="post" action="/login" {
                input type="hidden" name="_csrf" value=(csrf);
                input type="hidden" name="returnUrl" value=(return_url);
                label for="email" { "Email" }
                input id="email" name="email" type="email" autocomplete="username" required value=(email);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                label for="tenant" { "Tenant" }
                input id="tenant" name="tenant" type="text" value=(if tenant.is_empty() { ROOT_TENANT } else { tenant });
                p { button type="submit" id="sign-in" { "Sign in" } }
            }
        }
    };
    page("Sign in", None, "", body, "")
}

/// `GET /login`: the form, with a fresh double-submit CSRF cookie.
pub async fn login_form(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let csrf = tokens::random_token();
    let ret = q.get("returnUrl").map(String::as_str).filter(|r| is_local_path(r)).unwrap_or("/");
    let mut response = Html(login_page(&csrf, ret, "", ROOT_TENANT, &[])).into_response();
    response.headers_mut().append(SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, is_https(&headers)));
    response
}

/// `POST /login`: checks the form's CSRF pair and the credentials, then sets the session
/// cookies (access token with a session CSRF claim, refresh token) and redirects.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(f): Fields) -> Response {
    let secure = is_https(&headers);
    let sent = field(&f, CSRF_FIELD);
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !secrets_equal(sent, &expected) {
        return forbidden_csrf();
    }
    let email = field(&f, "email").trim();
    let tenant = match field(&f, "tenant").trim() {
        "" => ROOT_TENANT,
        t => t,
    };
    let ret = Some(field(&f, "returnUrl")).filter(|r| is_local_path(r)).unwrap_or("/");
    let user = match crate::security::check_sign_in(&state, email, field(&f, "password"), tenant).await {
        Ok(u) => u,
        Err(crate::security::Refusal::Database(e)) => return ApiError::from(e).into_response(),
        Err(e) => {
            tracing::info!(%email, %tenant, reason = %e, "sign-in refused (browser)");
            let csrf = tokens::random_token();
            let mut r = (e.status(), Html(login_page(&csrf, ret, email, tenant, &[e.to_string()]))).into_response();
            e.add_retry_after(&mut r);
            r.headers_mut().append(SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, secure));
            return r;
        }
    };
    let session_csrf = tokens::random_token();
    let issued = match crate::auth::api::issue(&state, &user, Some(session_csrf)).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let refresh_age = state.settings.jwt.refresh_days * 86_400;
    let mut r = crate::security::redirect::local_redirect(ret);
    let h = r.headers_mut();
    h.append(SET_COOKIE, set_cookie(AUTH_COOKIE, &issued.token, state.jwt.lifetime_secs(), secure));
    h.append(SET_COOKIE, set_cookie(REFRESH_COOKIE, &issued.refresh_token, refresh_age, secure));
    h.append(SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure));
    tracing::info!(user = %user.user_name, "signed in (browser)");
    r
}

/// `POST /logout`: ends the session (its refresh tokens, the access cookie and its hub
/// connections, on every node) and clears the cookies.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, PageCaller(identity): PageCaller, Form(f): Fields) -> Response {
    if !csrf_ok(&identity, &f) {
        return forbidden_csrf();
    }
    if let Err(e) = state.revocations.revoke_session(&identity.user_id, &identity.session_id).await {
        return ApiError::from(e).into_response();
    }
    // A refresh cookie of another session (should the cookies disagree) ends too.
    if let Some(refresh) = cookie(&headers, REFRESH_COOKIE) {
        match tokens::session_of_refresh_token(&state.db, &refresh).await {
            Ok(Some(session)) if session != identity.session_id => {
                if let Err(e) = tokens::revoke_session(&state.db, &session).await {
                    return ApiError::from(e).into_response();
                }
            }
            Ok(_) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let secure = is_https(&headers);
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(AUTH_COOKIE, "", 0, secure));
    r.headers_mut().append(SET_COOKIE, set_cookie(REFRESH_COOKIE, "", 0, secure));
    r
}

/// `GET /`: the tenant list for root administrators, a short welcome for others.
pub async fn index(PageCaller(identity): PageCaller) -> Response {
    if identity.is_root_admin() {
        return Redirect::to("/tenants").into_response();
    }
    let body = html! {
        div class="card" { h1 { "Welcome" } p { "You are signed in as " (identity.email) " in tenant " b { (identity.tenant) } "." } }
    };
    Html(page("Home", Some(&identity), "", body, "")).into_response()
}

// ---------- tenants ----------

/// One table row; `/tenants/{id}/row` serves it alone so the page can replace a row in place.
/// `shown` is what its status means (see [`outlook`]); `data-status` keeps the stored status.
pub fn tenant_row(t: &TenantRow, shown: &Shown) -> Markup {
    let status = TenantStatus::parse(&t.status).unwrap_or(TenantStatus::Failed);
    let spinning = matches!(status, TenantStatus::Provisioning | TenantStatus::Updating | TenantStatus::Pending)
        || matches!(shown, Shown::Retrying { .. });
    let error = t.provisioning_error.as_deref().filter(|_| status == TenantStatus::Failed);
    let label = shown.label();
    let encoded = url_encode(&t.id);
    html! {
        tr id={ "tenant-" (t.id) } data-status=(status.as_str()) data-shown=(label) {
            td { code { (t.id) } }
            td class="name" {
                (t.name)
                @if let Some(e) = error { div class="error-text" { (e) } }
            }
            td {
                span class={ "badge badge-" (label) } {
                    @if spinning { span class="spinner" aria-hidden="true" {} }
                    (label)
                }
                @if let Some(d) = shown.detail() { div class="status-detail" { (d) } }
            }
            td { @if t.is_active { "Yes" } @else { "No" } }
            td { @if t.has_isolated_database { "Isolated" } @else { "Shared" } }
            td {
                @if t.id == ROOT_TENANT {
                } @else if status.is_busy() || t.provisioned_on.is_none() {
                    span class="button secondary disabled" { "Edit" }
                } @else {
                    a class="button secondary" href={ "/tenants/" (t.id) "/edit" } { "Edit" }
                }
                " "
                a class="button secondary" href={ "/users?tenant=" (encoded) } { "Users" }
                " "
                a class="button secondary" href={ "/jobs/key/tenant%3A" (encoded) } { "Jobs" }
            }
        }
    }
}

/// The rows of `tenants`, each with what its status means.
async fn tenant_rows(state: &AppState, tenants: &[TenantRow]) -> Markup {
    let mut rows = Vec::with_capacity(tenants.len());
    for t in tenants {
        rows.push(tenant_row(t, &outlook::shown_for(&state.jobs, t, state.settings.tenant_job_attempts).await));
    }
    html! { @for row in rows { (row) } }
}

fn create_form(csrf: &str, values: &HashMap<String, String>, problems: &[String]) -> Markup {
    let errors = FormErrors::sort(problems, CREATE_TENANT_FIELDS);
    let invalid = |f: &str| errors.invalid(f).then_some("true");
    html! {
        div class="card" id="create" {
            h2 { "Add tenant" }
            div id="create-problems" { (errors.summary_html()) }
            form method="post" action="/tenants" novalidate {
                input type="hidden" name="_csrf" value=(csrf);
                label for="id" { "Id (slug)" }
                input id="id" name="id" type="text" required maxlength=(crate::tenants::validation::MAX_ID_LEN) pattern="[a-z0-9]+(-[a-z0-9]+)*"
                    title=(SLUG_RULE) value=(field(values, "id")) aria-invalid=[invalid("id")] aria-describedby=[errors.described_by("id")];
                p class="hint" { (SLUG_RULE) }
                (errors.field("id"))
                label for="name" { "Name" }
                input id="name" name="name" type="text" required maxlength=(crate::tenants::validation::MAX_NAME_LEN) value=(field(values, "name"))
                    aria-invalid=[invalid("name")] aria-describedby=[errors.described_by("name")];
                (errors.field("name"))
                label for="adminEmail" { "Admin email" }
                input id="adminEmail" name="adminEmail" type="email" required value=(field(values, "adminEmail"))
                    aria-invalid=[invalid("adminEmail")] aria-describedby=[errors.described_by("adminEmail")];
                (errors.field("adminEmail"))
                label for="password" { "Admin password" }
                input id="password" name="password" type="password" required minlength="8"
                    aria-invalid=[invalid("password")] aria-describedby=[errors.described_by("password")];
                (password_hint())
                (errors.field("password"))
                label class="check" {
                    input id="hasIsolatedDatabase" name="hasIsolatedDatabase" type="checkbox" checked[values.contains_key("hasIsolatedDatabase")];
                    " Isolated database"
                }
                (errors.field("hasIsolatedDatabase"))
                p { button type="submit" id="create-tenant" { "Create tenant" } }
            }
        }
    }
}

/// What a tenant id may be, in words (the browser shows it for a pattern mismatch too).
const SLUG_RULE: &str = "Lower-case letters and digits; words separated by single hyphens, like my-academy.";

/// The links under a paged list of `noun` (`tenants`, `users`): previous, position, next.
/// `path` may carry a query of its own (already URL-encoded), which the links keep.
pub(crate) fn pager(path: &str, noun: &str, info: &PageInfo) -> Markup {
    let link = |page: u32, rel: &str, text: &str| {
        html! { a class="button secondary" rel=(rel) id={ "page-" (rel) } href=(info.href(path, page)) { (text) } }
    };
    html! {
        nav class="pager" aria-label="pages" {
            @if let Some(p) = info.previous_page() { (link(p, "prev", "← Previous")) }
            " "
            span class="muted" { "Page " (info.current_page) " of " (info.total_pages) " (" (info.total_count) " " (noun) ")" }
            " "
            @if info.has_next_page { (link(info.current_page + 1, "next", "Next →")) }
        }
    }
}

/// Which tenants the page lists: a page of all, or one tenant (`?id=`, where the jobs
/// dashboard links a tenant's jobs back to).
enum Listing {
    Page(PageRequest),
    One(String),
}

async fn tenants_page(state: &AppState, identity: &Identity, listing: Listing, form: Markup, status: StatusCode) -> Response {
    let (rows, pager) = match listing {
        Listing::Page(paging) => {
            let rows = match repo::list_page(&state.db, paging.offset(), paging.limit()).await {
                Ok(r) => r,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let total = match repo::count(&state.db).await {
                Ok(n) => n,
                Err(e) => return ApiError::from(e).into_response(),
            };
            (rows, pager("/tenants", "tenants", &PageInfo::new(paging, total)))
        }
        Listing::One(id) => {
            let rows = match repo::get(&state.db, &id).await {
                Ok(r) => r.into_iter().collect::<Vec<_>>(),
                Err(e) => return ApiError::from(e).into_response(),
            };
            let pager = html! {
                nav class="pager" aria-label="pages" {
                    span class="muted" { @if rows.is_empty() { "No tenant " (id) ". " } }
                    a class="button secondary" id="all-tenants" href="/tenants" { "All tenants" }
                }
            };
            (rows, pager)
        }
    };
    let last = outbox::latest_id(&state.db).await.unwrap_or(0);
    let rows_html = tenant_rows(state, &rows).await;
    let body = html! {
        h1 { "Tenants" }
        div class="card" {
            table {
                thead { tr { th { "Id" } th { "Name" } th { "Status" } th { "Active" } th { "Database" } th {} } }
                tbody id="tenant-rows" { (rows_html) }
            }
            (pager)
        }
        (form)
    };
    let head = html! {
        meta name="diquis-last-notification-id" content=(last);
        meta name="csrf-token" content=(identity.csrf.as_deref().unwrap_or(""));
    };
    (status, Html(page("Tenants", Some(identity), head, body, live_scripts(html! { script src="/js/diquis.js" {} })))).into_response()
}

/// The scripts of a live tenant list (jQuery, toastr made to escape, the SignalR client), then
/// the page's own.
fn live_scripts(own: Markup) -> Markup {
    html! {
        script src="/lib/jquery/jquery.min.js" {}
        script src="/lib/toastr/toastr.min.js" {}
        script src=(TOASTR_ESCAPE_PATH) {}
        script src=(SIGNALR_PATH) {}
        (own)
    }
}

/// `GET /tenants?page=1&pageSize=20`: one page of the list (paged like `GET /api/tenants`);
/// `GET /tenants?id=acme`: that tenant's row alone.
pub async fn tenants(
    State(state): State<AppState>,
    RootPageCaller(identity): RootPageCaller,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let paging = match PageRequest::from_query(&q) {
        Ok(p) => p,
        Err(problems) => {
            return (StatusCode::BAD_REQUEST, Html(page("Tenants", Some(&identity), "", problems_html(&problems), ""))).into_response();
        }
    };
    let form = create_form(identity.csrf.as_deref().unwrap_or(""), &HashMap::new(), &[]);
    let listing = match q.iter().find(|(k, _)| k.eq_ignore_ascii_case("id")).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()) {
        Some(id) => Listing::One(id.to_owned()),
        None => Listing::Page(paging),
    };
    tenants_page(&state, &identity, listing, form, StatusCode::OK).await
}

/// `GET /tenants/{id}/row`: one row's HTML.
pub async fn tenant_row_fragment(State(state): State<AppState>, RootPageCaller(_): RootPageCaller, Path(id): Path<String>) -> Response {
    match repo::get(&state.db, &id).await {
        Ok(Some(t)) => Html(tenant_row(&t, &outlook::shown_for(&state.jobs, &t, state.settings.tenant_job_attempts).await).into_string())
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such tenant").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /tenants`: creates a tenant from the form (202 semantics: redirect back to the live list).
pub async fn create(State(state): State<AppState>, RootPageCaller(identity): RootPageCaller, Form(f): Fields) -> Response {
    if !csrf_ok(&identity, &f) {
        return forbidden_csrf();
    }
    let mut json = serde_json::Map::new();
    for key in ["id", "name", "adminEmail", "password"] {
        json.insert(key.into(), serde_json::Value::String(field(&f, key).to_string()));
    }
    json.insert("hasIsolatedDatabase".into(), serde_json::Value::Bool(f.contains_key("hasIsolatedDatabase")));
    let csrf = identity.csrf.clone().unwrap_or_default();
    let request = match validate_create(&serde_json::Value::Object(json), &state.settings.database) {
        Ok(r) => r,
        Err(problems) => {
            return tenants_page(
                &state,
                &identity,
                Listing::Page(PageRequest::default()),
                create_form(&csrf, &f, &problems),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    match create_tenant(&state, request, &identity.user_name).await {
        Ok(_) => Redirect::to("/tenants").into_response(),
        Err(e) => {
            let status = e.status;
            tenants_page(&state, &identity, Listing::Page(PageRequest::default()), create_form(&csrf, &f, &e.messages), status).await
        }
    }
}

fn edit_page(identity: &Identity, t: &TenantRow, name: &str, active: bool, problems: &[String]) -> String {
    let errors = FormErrors::sort(problems, EDIT_TENANT_FIELDS);
    let body = html! {
        div class="card" {
            h1 { "Edit tenant " code { (t.id) } }
            (errors.summary_html())
            form method="post" action={ "/tenants/" (t.id) "/edit" } novalidate {
                input type="hidden" name="_csrf" value=(identity.csrf.as_deref().unwrap_or(""));
                label for="name" { "Name" }
                input id="name" name="name" type="text" required maxlength=(crate::tenants::validation::MAX_NAME_LEN) value=(name)
                    aria-invalid=[errors.invalid("name").then_some("true")] aria-describedby=[errors.described_by("name")];
                (errors.field("name"))
                label class="check" { input id="isActive" name="isActive" type="checkbox" checked[active]; " Active" }
                (errors.field("isActive"))
                p {
                    button type="submit" id="save-tenant" { "Save" }
                    " "
                    a class="button secondary" href="/tenants" { "Cancel" }
                }
            }
        }
    };
    page("Edit tenant", Some(identity), "", body, "")
}

/// `GET /tenants/{id}/edit`.
pub async fn edit_form(State(state): State<AppState>, RootPageCaller(identity): RootPageCaller, Path(id): Path<String>) -> Response {
    match repo::get(&state.db, &id).await {
        Ok(Some(t)) => Html(edit_page(&identity, &t, &t.name, t.is_active, &[])).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such tenant").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /tenants/{id}/edit`.
pub async fn edit(
    State(state): State<AppState>,
    RootPageCaller(identity): RootPageCaller,
    Path(id): Path<String>,
    Form(f): Fields,
) -> Response {
    if !csrf_ok(&identity, &f) {
        return forbidden_csrf();
    }
    let tenant = match repo::get(&state.db, &id).await {
        Ok(Some(t)) => t,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such tenant").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let active = f.contains_key("isActive");
    let body = serde_json::json!({"name": field(&f, "name"), "isActive": active});
    let result = match validate_update(&body) {
        Ok(edit) => update_tenant(&state, &id, edit, &identity.user_name).await,
        Err(problems) => Err(ApiError::validation(problems)),
    };
    match result {
        Ok(()) => Redirect::to("/tenants").into_response(),
        Err(e) => (e.status, Html(edit_page(&identity, &tenant, field(&f, "name"), active, &e.messages))).into_response(),
    }
}

/// The script of the seed document (`redis-backplane-setup.md` §6), verbatim except for the
/// client's address: the CDN URL is replaced by the copy this app serves.
pub const SEED_SCRIPT: &str = r#"<script>
    const connection = new signalR.HubConnectionBuilder()
        .withUrl("/hubs/notifications")
        .withAutomaticReconnect()
        .build();

    connection.on("TenantCreated", (data) => {
        console.log("? Tenant created:", data);
        toastr.success(`Tenant "${data.tenantName}" created successfully!`);
        
        // Update UI - refresh tenant list or update specific row
        location.reload(); // Simple approach, or use AJAX to update specific elements
    });

    connection.on("TenantCreationFailed", (data) => {
        console.error("? Tenant creation failed:", data);
        toastr.error(`Failed to create tenant: ${data.error}`);
    });

    connection.on("TenantUpdated", (data) => {
        console.log("? Tenant updated:", data);
        toastr.success(`Tenant "${data.tenantName}" updated successfully!`);
        location.reload();
    });

    connection.on("TenantUpdateFailed", (data) => {
        console.error("? Tenant update failed:", data);
        toastr.error(`Failed to update tenant: ${data.error}`);
    });

    connection.start()
        .then(() => console.log("?? SignalR connected"))
        .catch(err => console.error("? SignalR connection error:", err));
</script>"#;

/// `GET /seed-demo`: the tenant list with the seed document's script pasted in unchanged.
pub async fn seed_demo(State(state): State<AppState>, PageCaller(identity): PageCaller) -> Response {
    // The newest page only: the seed's script reloads the page on every event.
    let rows = if identity.is_root_admin() {
        repo::list_page(&state.db, 0, i64::from(MAX_PAGE_SIZE)).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let rows_html = tenant_rows(&state, &rows).await;
    let body = html! {
        h1 { "Seed document page" }
        div class="notice" { "This page runs the script of the seed document unchanged, with the SignalR client served by this app." }
        div class="card" { table { tbody id="tenant-rows" { (rows_html) } } }
    };
    // Trusted: the seed document's script, a constant whose hash the Content-Security-Policy allows.
    let scripts = live_scripts(PreEscaped(SEED_SCRIPT.to_owned()));
    Html(page("Seed page", Some(&identity), "", body, scripts)).into_response()
}

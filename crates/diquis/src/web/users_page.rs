//! The Users page of a tenant (`/users?tenant=ID`, paged like the tenant list): the list with Disable/Enable and Remove
//! buttons, and a form adding a user. Root administrators see any tenant, a tenant's
//! administrators their own. Every action calls what the API's routes call
//! ([`crate::auth::users_api`], [`crate::auth::user_admin`]).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::html::{escape, page, url_encode};
use crate::auth::extract::PageCaller;
use crate::auth::user_admin::{AddUser, add_user, roles_for_tenant};
use crate::auth::users_api::{may_manage, remove_user, set_active};
use crate::auth::{Identity, users};
use crate::state::AppState;
use crate::web::envelope::ApiError;
use crate::web::forms::{Fields, csrf_ok, field, forbidden_csrf, problems_html};
use crate::web::pages::pager;
use crate::web::paging::{PageInfo, PageRequest};

/// The tenant a request is about: the `tenant` given, else the caller's own.
fn tenant_of<'a>(identity: &'a Identity, given: Option<&'a str>) -> &'a str {
    given.map(str::trim).filter(|t| !t.is_empty()).unwrap_or(&identity.tenant)
}

fn users_url(tenant: &str) -> String {
    format!("/users?tenant={}", url_encode(tenant))
}

/// The list's address at the page a request was on (the first page: no paging parameters).
fn users_url_at(tenant: &str, paging: PageRequest) -> String {
    if paging == PageRequest::default() {
        users_url(tenant)
    } else {
        format!("{}&page={}&pageSize={}", users_url(tenant), paging.page, paging.page_size)
    }
}

/// The page the form was posted from (its hidden `page`, `pageSize`); the first when absent or bad.
fn paging_of(f: &HashMap<String, String>) -> PageRequest {
    PageRequest::from_query(f).unwrap_or_default()
}

fn action_form(csrf: &str, tenant: &str, paging: PageRequest, user_id: &str, action: &str, label: &str, class: &str) -> String {
    format!(
        r#"<form method="post" action="/users/{id}/{action}" class="inline"><input type="hidden" name="_csrf" value="{csrf}"><input type="hidden" name="tenant" value="{tenant}"><input type="hidden" name="page" value="{page}"><input type="hidden" name="pageSize" value="{page_size}"><button type="submit" class="{class}" id="{action}-{id}">{label}</button></form>"#,
        id = escape(user_id),
        csrf = escape(csrf),
        tenant = escape(tenant),
        page = paging.page,
        page_size = paging.page_size,
    )
}

async fn users_page(
    state: &AppState,
    identity: &Identity,
    tenant: &str,
    paging: PageRequest,
    values: &HashMap<String, String>,
    problems: &[String],
    status: StatusCode,
) -> Response {
    if !may_manage(identity, tenant) {
        return (
            StatusCode::FORBIDDEN,
            Html(page(
                "Users",
                Some(identity),
                "",
                "<div class=\"card\"><h1>Users</h1><p>You may not manage the users of this tenant.</p></div>",
                "",
            )),
        )
            .into_response();
    }
    let total = match users::count(&state.db, Some(tenant)).await {
        Ok(n) => n,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let list = match users::list_page(&state.db, Some(tenant), paging.offset(), paging.limit()).await {
        Ok(l) => l,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let pager = pager(&users_url(tenant), "users", &PageInfo::new(paging, total));
    let csrf = identity.csrf.as_deref().unwrap_or("");
    let mut rows = String::new();
    for u in &list {
        let roles = match users::roles_of(&state.db, &u.id).await {
            Ok(r) => r.join(", "),
            Err(e) => return ApiError::from(e).into_response(),
        };
        let actions = if u.id == identity.user_id {
            r#"<span class="muted">you</span>"#.to_string()
        } else {
            let toggle = if u.is_active {
                action_form(csrf, tenant, paging, &u.id, "disable", "Disable", "secondary")
            } else {
                action_form(csrf, tenant, paging, &u.id, "enable", "Enable", "secondary")
            };
            format!("{toggle} {}", action_form(csrf, tenant, paging, &u.id, "remove", "Remove", "danger"))
        };
        rows.push_str(&format!(
            r#"<tr id="user-{id}" data-email="{email}" data-active="{active}"><td>{email}</td><td>{roles}</td><td>{active_text}</td><td>{actions}</td></tr>"#,
            id = escape(&u.id),
            email = escape(&u.email),
            active = u.is_active,
            roles = escape(&roles),
            active_text = if u.is_active { "Yes" } else { "No" },
        ));
    }
    let problems_html = problems_html(problems);
    let role_options: String = roles_for_tenant(tenant)
        .iter()
        .map(|r| format!(r#"<option value="{r}"{sel}>{r}</option>"#, sel = if field(values, "role") == *r { " selected" } else { "" }))
        .collect();
    let body = format!(
        r#"<h1>Users of <code>{tenant}</code></h1>{problems_html}
<div class="card"><table><thead><tr><th>Email</th><th>Roles</th><th>Active</th><th></th></tr></thead>
<tbody id="user-rows">{rows}</tbody></table>{pager}</div>
<div class="card" id="add-user"><h2>Add user</h2>
<form method="post" action="/users" novalidate>
<input type="hidden" name="_csrf" value="{csrf}">
<input type="hidden" name="tenant" value="{tenant}">
<label for="email">Email</label><input id="email" name="email" type="email" required value="{email}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="new-password" required minlength="8">
<p class="hint">At least 8 characters, with a letter and a digit.</p>
<label for="role">Role</label><select id="role" name="role">{role_options}</select>
<p><button type="submit" id="add-user-button">Add user</button></p>
</form></div>"#,
        tenant = escape(tenant),
        csrf = escape(csrf),
        email = escape(field(values, "email")),
    );
    (status, Html(page("Users", Some(identity), "", &body, ""))).into_response()
}

/// `GET /users?tenant=ID&page=1&pageSize=20` (default: the caller's tenant, the first page;
/// paged like `GET /api/users`).
pub async fn list(State(state): State<AppState>, PageCaller(identity): PageCaller, Query(q): Query<HashMap<String, String>>) -> Response {
    let paging = match PageRequest::from_query(&q) {
        Ok(p) => p,
        Err(problems) => {
            return (StatusCode::BAD_REQUEST, Html(page("Users", Some(&identity), "", &problems_html(&problems), ""))).into_response();
        }
    };
    let tenant = tenant_of(&identity, q.get("tenant").map(String::as_str)).to_string();
    users_page(&state, &identity, &tenant, paging, &HashMap::new(), &[], StatusCode::OK).await
}

/// `POST /users`: adds a user (the form's fields: tenant, email, password, role).
pub async fn add(State(state): State<AppState>, PageCaller(identity): PageCaller, Form(f): Fields) -> Response {
    if !csrf_ok(&identity, &f) {
        return forbidden_csrf();
    }
    let tenant = tenant_of(&identity, f.get("tenant").map(String::as_str)).to_string();
    let new = AddUser {
        tenant: tenant.clone(),
        email: field(&f, "email").to_string(),
        password: field(&f, "password").to_string(),
        role: field(&f, "role").to_string(),
    };
    match add_user(&state, &identity, new).await {
        Ok(_) => Redirect::to(&users_url(&tenant)).into_response(),
        Err(e) => users_page(&state, &identity, &tenant, PageRequest::default(), &f, &e.messages, e.status).await,
    }
}

/// `POST /users/{id}/{disable|enable|remove}`.
pub async fn act(
    State(state): State<AppState>,
    PageCaller(identity): PageCaller,
    Path((id, action)): Path<(String, String)>,
    Form(f): Fields,
) -> Response {
    if !csrf_ok(&identity, &f) {
        return forbidden_csrf();
    }
    let tenant = tenant_of(&identity, f.get("tenant").map(String::as_str)).to_string();
    let paging = paging_of(&f);
    let result = match action.as_str() {
        "disable" => set_active(&state, &identity, &id, false).await.map(|_| ()),
        "enable" => set_active(&state, &identity, &id, true).await.map(|_| ()),
        "remove" => remove_user(&state, &identity, &id).await.map(|_| ()),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match result {
        Ok(()) => Redirect::to(&users_url_at(&tenant, paging)).into_response(),
        Err(e) => users_page(&state, &identity, &tenant, paging, &HashMap::new(), &e.messages, e.status).await,
    }
}

//! The Users page of a tenant (`/users?tenant=ID`, paged like the tenant list): the list with Disable/Enable and Remove
//! buttons, and a form adding a user. Root administrators see any tenant, a tenant's
//! administrators their own. Every action calls what the API's routes call
//! ([`crate::auth::users_api`], [`crate::auth::user_admin`]).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use maud::{Markup, html};

use super::account::password_hint;
use super::html::{page, url_encode};
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

fn action_form(csrf: &str, tenant: &str, paging: PageRequest, user_id: &str, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action={ "/users/" (user_id) "/" (action) } class="inline" {
            input type="hidden" name="_csrf" value=(csrf);
            input type="hidden" name="tenant" value=(tenant);
            input type="hidden" name="page" value=(paging.page);
            input type="hidden" name="pageSize" value=(paging.page_size);
            button type="submit" class=(class) id={ (action) "-" (user_id) } { (label) }
        }
    }
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
                html! { div class="card" { h1 { "Users" } p { "You may not manage the users of this tenant." } } },
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
    let mut rows = Vec::with_capacity(list.len());
    for u in &list {
        let roles = match users::roles_of(&state.db, &u.id).await {
            Ok(r) => r.join(", "),
            Err(e) => return ApiError::from(e).into_response(),
        };
        rows.push(html! {
            tr id={ "user-" (u.id) } data-email=(u.email) data-active=(u.is_active.to_string()) {
                td { (u.email) }
                td { (roles) }
                td { @if u.is_active { "Yes" } @else { "No" } }
                td {
                    @if u.id == identity.user_id {
                        span class="muted" { "you" }
                    } @else {
                        @if u.is_active {
                            (action_form(csrf, tenant, paging, &u.id, "disable", "Disable", "secondary"))
                        } @else {
                            (action_form(csrf, tenant, paging, &u.id, "enable", "Enable", "secondary"))
                        }
                        " "
                        (action_form(csrf, tenant, paging, &u.id, "remove", "Remove", "danger"))
                    }
                }
            }
        });
    }
    let body = html! {
        h1 { "Users of " code { (tenant) } }
        (problems_html(problems))
        div class="card" {
            table {
                thead { tr { th { "Email" } th { "Roles" } th { "Active" } th {} } }
                tbody id="user-rows" { @for row in &rows { (row) } }
            }
            (pager)
        }
        div class="card" id="add-user" {
            h2 { "Add user" }
            form method="post" action="/users" novalidate {
                input type="hidden" name="_csrf" value=(csrf);
                input type="hidden" name="tenant" value=(tenant);
                label for="email" { "Email" }
                input id="email" name="email" type="email" required value=(field(values, "email"));
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="new-password" required minlength="8";
                (password_hint())
                label for="role" { "Role" }
                select id="role" name="role" {
                    @for r in roles_for_tenant(tenant) {
                        option value=(r) selected[field(values, "role") == *r] { (r) }
                    }
                }
                p { button type="submit" id="add-user-button" { "Add user" } }
            }
        }
    };
    (status, Html(page("Users", Some(identity), "", body, ""))).into_response()
}

/// `GET /users?tenant=ID&page=1&pageSize=20` (default: the caller's tenant, the first page;
/// paged like `GET /api/users`).
pub async fn list(State(state): State<AppState>, PageCaller(identity): PageCaller, Query(q): Query<HashMap<String, String>>) -> Response {
    let paging = match PageRequest::from_query(&q) {
        Ok(p) => p,
        Err(problems) => {
            return (StatusCode::BAD_REQUEST, Html(page("Users", Some(&identity), "", problems_html(&problems), ""))).into_response();
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

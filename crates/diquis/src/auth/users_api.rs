//! The minimal user administration API, enough for revocation to be used and tested; user pages
//! build on it.
//!
//! * `GET /api/users[?tenant=id][&page=1&pageSize=20]`: a page of the users a caller may manage.
//! * `POST /api/users` `{email, password, role, tenant?}`: adds a user ([`super::user_admin`]).
//! * `POST /api/users/{id}/disable`, `POST /api/users/{id}/enable`, `DELETE /api/users/{id}`.
//! * `PUT /api/personal/change-password` `{password, newPassword}`: the caller's own password.
//!
//! Root administrators manage every user; a tenant's administrators (roles `academy_owner`,
//! `academy_admin`) the users of their tenant. Nobody disables or deletes themselves. Disabling,
//! deleting and a password change end every session of the user at once ([`super::revocation`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::extract::Caller;
use super::revocation::{Revocation, revoke_user_in};
use super::tokens::TokenResponse;
use super::users::{self, UserRow};
use super::{Identity, TENANT_OWNER_ROLE, password};
use crate::state::AppState;
use crate::tenants::validation::string_field;
use crate::web::envelope::{ApiError, Envelope};
use crate::web::html::url_encode;
use crate::web::paging::{PageInfo, PageRequest};

/// The role of a tenant's other administrators.
pub const TENANT_ADMIN_ROLE: &str = "academy_admin";

/// The routes (web role).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list).post(super::user_admin::create))
        .route("/api/users/{id}", delete(remove))
        .route("/api/users/{id}/disable", post(disable))
        .route("/api/users/{id}/enable", post(enable))
        .route("/api/personal/change-password", put(change_password))
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Email.
    pub email: String,
    /// `email.tenant`.
    pub user_name: String,
    /// Whether the user may sign in.
    pub is_active: bool,
    /// When created.
    pub created_on: DateTime<Utc>,
}

impl From<UserRow> for UserDto {
    fn from(u: UserRow) -> Self {
        Self { id: u.id, tenant_id: u.tenant_id, email: u.email, user_name: u.user_name, is_active: u.is_active, created_on: u.created_on }
    }
}

pub(crate) fn is_tenant_admin(identity: &Identity) -> bool {
    identity.roles.iter().any(|r| r == TENANT_OWNER_ROLE || r == TENANT_ADMIN_ROLE)
}

/// Whether `caller` may manage users of `tenant`.
pub(crate) fn may_manage(caller: &Identity, tenant: &str) -> bool {
    caller.is_root_admin() || (caller.tenant == tenant && is_tenant_admin(caller))
}

/// The target user, if the caller may manage them; a user the caller may not see is "not found".
async fn managed_user(state: &AppState, caller: &Identity, id: &str) -> Result<UserRow, ApiError> {
    if !caller.is_root_admin() && !is_tenant_admin(caller) {
        return Err(ApiError::forbidden("This requires the root role or a tenant administrator's role."));
    }
    match users::find_by_id(&state.db, id).await? {
        Some(u) if may_manage(caller, &u.tenant_id) => {
            if u.id == caller.user_id {
                return Err(ApiError::validation(vec!["You cannot disable or delete your own account.".into()]));
            }
            Ok(u)
        }
        _ => Err(ApiError::not_found(format!("User {id} not found."))),
    }
}

/// The answer of `GET /api/users`: the envelope (`data` is this page's users) with where the
/// page sits in the whole list, as `GET /api/tenants` answers.
#[derive(Debug, Serialize)]
pub struct UserPage {
    /// The envelope.
    #[serde(flatten)]
    pub envelope: Envelope<Vec<UserDto>>,
    /// Page number, size, totals and whether previous and next pages exist.
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /api/users[?tenant=id]&page=1&pageSize=20`: one page of the users a caller may manage,
/// by user name (`pageSize` at most [`crate::web::paging::MAX_PAGE_SIZE`]), with a `Link` header
/// to the previous and next pages. `tenant` narrows a root administrator's list to one tenant;
/// a tenant's administrators always get their own tenant's users.
pub async fn list(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = if identity.is_root_admin() {
        query.iter().find(|(k, _)| k.eq_ignore_ascii_case("tenant")).map(|(_, v)| v.trim().to_owned()).filter(|t| !t.is_empty())
    } else if is_tenant_admin(&identity) {
        Some(identity.tenant.clone())
    } else {
        return Err(ApiError::forbidden("This requires the root role or a tenant administrator's role."));
    };
    let request = PageRequest::from_query(&query).map_err(ApiError::validation)?;
    let total = users::count(&state.db, tenant.as_deref()).await?;
    let rows = users::list_page(&state.db, tenant.as_deref(), request.offset(), request.limit()).await?;
    let page = PageInfo::new(request, total);
    // The links keep the `tenant` the caller named (a tenant administrator's needs none).
    let path = match query.iter().find(|(k, _)| k.eq_ignore_ascii_case("tenant")).map(|(_, v)| v.trim()).filter(|t| !t.is_empty()) {
        Some(t) if identity.is_root_admin() => format!("/api/users?tenant={}", url_encode(t)),
        _ => "/api/users".to_owned(),
    };
    let body = UserPage { envelope: Envelope::ok(rows.into_iter().map(UserDto::from).collect(), vec![]), page };
    let mut response = Json(body).into_response();
    if let Some(link) = page.link_header(&path).and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// Disables or enables a user the caller manages (the API's and the Users page's).
pub async fn set_active(state: &AppState, caller: &Identity, id: &str, active: bool) -> Result<Json<Envelope<UserDto>>, ApiError> {
    let user = managed_user(state, caller, id).await?;
    let mut tx = state.db.begin().await?;
    tx.query("UPDATE users SET is_active = $2 WHERE id = $1").bind(&user.id).bind(active).execute().await?;
    if !active {
        revoke_user_in(&mut tx, &user.id).await?;
    }
    tx.commit().await?;
    if !active {
        state.revocations.announce(Revocation::User { user_id: user.id.clone() });
    }
    tracing::info!(user = %user.user_name, by = %caller.user_name, active, "user active flag set");
    let user = users::find_by_id(&state.db, id).await?.ok_or_else(|| ApiError::not_found(format!("User {id} not found.")))?;
    Ok(Json(Envelope::ok(user.into(), vec![])))
}

/// `POST /api/users/{id}/disable`: the user can no longer sign in, and every session of theirs
/// ends now.
pub async fn disable(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<Envelope<UserDto>>, ApiError> {
    set_active(&state, &identity, &id, false).await
}

/// `POST /api/users/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<Envelope<UserDto>>, ApiError> {
    set_active(&state, &identity, &id, true).await
}

/// `DELETE /api/users/{id}`: the user, their roles and refresh tokens are deleted; their
/// sessions end now.
pub async fn remove(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<Envelope<String>>, ApiError> {
    Ok(Json(Envelope::ok(remove_user(&state, &identity, &id).await?, vec![])))
}

/// Deletes a user the caller manages (the API's and the Users page's); returns the id.
pub async fn remove_user(state: &AppState, identity: &Identity, id: &str) -> Result<String, ApiError> {
    let user = managed_user(state, identity, id).await?;
    let mut tx = state.db.begin().await?;
    for sql in [
        "DELETE FROM refresh_tokens WHERE user_id = $1",
        "DELETE FROM refresh_families WHERE user_id = $1",
        "DELETE FROM user_roles WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        tx.query(sql).bind(&user.id).execute().await?;
    }
    tx.commit().await?;
    state.revocations.announce(Revocation::User { user_id: user.id.clone() });
    tracing::info!(user = %user.user_name, by = %identity.user_name, "user deleted");
    Ok(user.id)
}

/// `PUT /api/personal/change-password` `{password, newPassword}`: every session of the caller
/// ends (this one too); the answer carries the tokens of a new session.
pub async fn change_password(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    body: Bytes,
) -> Result<Json<Envelope<TokenResponse>>, ApiError> {
    let body: serde_json::Value = serde_json::from_slice(&body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| ApiError::validation(vec!["The request body must be a JSON object.".into()]))?;
    let mut problems = Vec::new();
    let current = string_field(&body, "password", &mut problems).unwrap_or("").to_string();
    let new = string_field(&body, "newPassword", &mut problems).unwrap_or("").to_string();
    if current.is_empty() && problems.is_empty() {
        problems.push("'password' is required.".into());
    }
    if let Some(w) = password::weakness(&new) {
        problems.push(format!("'newPassword' {w}."));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    Ok(Json(Envelope::ok(change_own_password(&state, &identity, current, new, None).await?, vec![])))
}

/// The caller's password change (the API's and the page's): checks the current password and
/// the policy, sets the new one, ends every session and issues a new one (`csrf`: a browser
/// session's CSRF secret).
pub async fn change_own_password(
    state: &AppState,
    identity: &Identity,
    current: String,
    new: String,
    csrf: Option<String>,
) -> Result<TokenResponse, ApiError> {
    if let Some(w) = password::weakness(&new) {
        return Err(ApiError::validation(vec![format!("'newPassword' {w}.")]));
    }
    let user =
        users::find_by_id(&state.db, &identity.user_id).await?.ok_or_else(|| ApiError::unauthorized("The token has been revoked."))?;
    // On the bounded hashing pool, like sign-ins: a flood of password changes is refused (503)
    // rather than run one Argon2 work area per request.
    let matches = state.security.passwords.verify(user.password_hash.clone(), current).await.map_err(|_| ApiError::busy())?;
    if !matches {
        return Err(ApiError::validation(vec!["'password' is not the current password.".into()]));
    }
    set_password(state, &user.id, new).await?;
    tracing::info!(user = %user.user_name, "password changed; every session ended");
    let user = users::find_by_id(&state.db, &user.id).await?.ok_or_else(|| ApiError::unauthorized("The token has been revoked."))?;
    super::api::issue(state, &user, csrf).await
}

/// Sets a user's password (already checked against the policy) and ends every session of theirs,
/// on every node: the password change and the reset link both end here.
pub async fn set_password(state: &AppState, user_id: &str, new_password: String) -> Result<(), sqlx::Error> {
    let hash = password::hash_async(new_password).await;
    let mut tx = state.db.begin().await?;
    tx.query("UPDATE users SET password_hash = $2 WHERE id = $1").bind(user_id).bind(&hash).execute().await?;
    revoke_user_in(&mut tx, user_id).await?;
    tx.commit().await?;
    state.revocations.announce(Revocation::User { user_id: user_id.to_string() });
    Ok(())
}

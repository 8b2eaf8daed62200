//! Adding a user to a tenant: `POST /api/users` `{email, password, role, tenant?}` and the Users
//! page's form ([`add_user`]). Root administrators add users to any tenant, a tenant's
//! administrators to their own. The roles a user may get depend on the tenant
//! ([`roles_for_tenant`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::Caller;
use super::users::{self, NewUser};
use super::users_api::{TENANT_ADMIN_ROLE, UserDto, may_manage};
use super::{Identity, ROOT_ROLE, ROOT_TENANT, TENANT_OWNER_ROLE, password};
use crate::state::AppState;
use crate::tenants::repo;
use crate::tenants::validation::{is_email, string_field};
use crate::web::envelope::{ApiError, Envelope};

/// The roles of a tenant's users (the `roles` table of migration 0001, but `root`).
pub const TENANT_ROLES: &[&str] = &[TENANT_OWNER_ROLE, TENANT_ADMIN_ROLE, "director_of_football", "coach", "parent", "player"];

/// The roles a new user of `tenant` may be given.
pub fn roles_for_tenant(tenant: &str) -> &'static [&'static str] {
    if tenant == ROOT_TENANT { &[ROOT_ROLE] } else { TENANT_ROLES }
}

/// A user to add, as a form or a JSON body gives it.
#[derive(Debug, Clone)]
pub struct AddUser {
    /// The tenant.
    pub tenant: String,
    /// Email.
    pub email: String,
    /// Password (checked against the policy).
    pub password: String,
    /// One of [`roles_for_tenant`].
    pub role: String,
}

/// Adds the user: 403 if the caller may not manage the tenant, 404 for an unknown tenant,
/// 400 for invalid fields, 409 if the email is taken in the tenant.
pub async fn add_user(state: &AppState, caller: &Identity, new: AddUser) -> Result<users::UserRow, ApiError> {
    if !may_manage(caller, &new.tenant) {
        return Err(ApiError::forbidden("This requires the root role or an administrator's role in the tenant."));
    }
    // An owner is made by root or another owner, never by an administrator of lower rank.
    if new.role == TENANT_OWNER_ROLE && !caller.is_root_admin() && !caller.roles.iter().any(|r| r == TENANT_OWNER_ROLE) {
        return Err(ApiError::forbidden("Only the root role or the tenant's owner may add an owner."));
    }
    let mut problems = Vec::new();
    let email = new.email.trim();
    if email.is_empty() {
        problems.push("'email' is required.".to_string());
    } else if !is_email(email) {
        problems.push(format!("'email' must be an email address; '{email}' is not."));
    }
    if let Some(w) = password::weakness(&new.password) {
        problems.push(format!("'password' {w}."));
    }
    let roles = roles_for_tenant(&new.tenant);
    if !roles.contains(&new.role.as_str()) {
        problems.push(format!("'role' must be one of: {}.", roles.join(", ")));
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    if repo::get(&state.db, &new.tenant).await?.is_none() {
        return Err(ApiError::not_found(format!("Tenant {} not found.", new.tenant)));
    }
    let hash = password::hash_async(new.password).await;
    let mut tx = state.db.begin().await?;
    let roles = [new.role.as_str()];
    let (id, created) =
        users::ensure_user(&mut tx, &NewUser { tenant_id: &new.tenant, email, password_hash: &hash, roles: &roles }).await?;
    if !created {
        tx.rollback().await?;
        return Err(ApiError::conflict(format!("A user with email '{email}' already exists in tenant '{}'.", new.tenant)));
    }
    tx.commit().await?;
    tracing::info!(email = %email, tenant = %new.tenant, role = %new.role, by = %caller.user_name, "user added");
    users::find_by_id(&state.db, &id).await?.ok_or_else(|| ApiError::not_found(format!("User {id} not found.")))
}

/// `POST /api/users` `{email, password, role, tenant?}` (`tenant`: default the caller's): 201
/// with the user.
pub async fn create(
    State(state): State<AppState>,
    Caller { identity, .. }: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Envelope<UserDto>>), ApiError> {
    let body: serde_json::Value = serde_json::from_slice(&body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| ApiError::validation(vec!["The request body must be a JSON object.".into()]))?;
    let mut problems = Vec::new();
    let email = string_field(&body, "email", &mut problems).unwrap_or("").to_string();
    let password = string_field(&body, "password", &mut problems).unwrap_or("").to_string();
    let role = string_field(&body, "role", &mut problems).unwrap_or("").to_string();
    let tenant = string_field(&body, "tenant", &mut problems).unwrap_or(&identity.tenant).to_string();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let user = add_user(&state, &identity, AddUser { tenant, email, password, role }).await?;
    Ok((StatusCode::CREATED, Json(Envelope::ok(user.into(), vec![]))))
}

//! `/api/tenants`: list, read, create (202 + ProvisionTenant job) and update (202 + UpdateTenant
//! job). Root administrators only. The job is submitted in the same transaction as the row:
//! enqueued there, or written to the job outbox when the job storage is another database.

use axum::body::Bytes;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::jobs::{ProvisionTenant, UpdateTenant, provision_request, update_request};
use super::model::{TenantDto, TenantStatus};
use super::validation::{MAX_ID_LEN, bool_field, check_name, is_email, is_slug, string_field};
use super::{admin_password, isolated, outlook, repo};
use crate::auth::extract::RootCaller;
use crate::auth::{ROOT_TENANT, password};
use crate::config::DatabaseTarget;
use crate::job_outbox::{self, new_request_id};
use crate::state::AppState;
use crate::web::envelope::{ApiError, Envelope};
use crate::web::paging::{PageInfo, PageRequest};

/// The answer of `GET /api/tenants`: the envelope (`data` is this page's tenants) with where the
/// page sits in the whole list.
#[derive(Debug, Serialize)]
pub struct TenantPage {
    /// The envelope.
    #[serde(flatten)]
    pub envelope: Envelope<Vec<TenantDto>>,
    /// Page number, size, totals and whether previous and next pages exist.
    #[serde(flatten)]
    pub page: PageInfo,
}

/// `GET /api/tenants?page=1&pageSize=20`: one page of the tenants, newest first (`pageSize` at
/// most [`crate::web::paging::MAX_PAGE_SIZE`]), with a `Link` header to the previous and next pages.
pub async fn list(
    State(state): State<AppState>,
    _caller: RootCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let request = PageRequest::from_query(&query).map_err(ApiError::validation)?;
    let total = repo::count(&state.db).await?;
    let rows = repo::list_page(&state.db, request.offset(), request.limit()).await?;
    let page = PageInfo::new(request, total);
    let link = page.link_header("/api/tenants");
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let shown = outlook::shown_for(&state.jobs, &row, state.settings.tenant_job_attempts).await;
        tenants.push(TenantDto::new(row, &shown));
    }
    let body = TenantPage { envelope: Envelope::ok(tenants, vec![]), page };
    let mut response = Json(body).into_response();
    if let Some(link) = link.and_then(|l| axum::http::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(axum::http::header::LINK, link);
    }
    Ok(response)
}

/// `GET /api/tenants/{id}`: the tenant, with its `outlook` (what its status means).
pub async fn get(
    State(state): State<AppState>,
    _caller: RootCaller,
    Path(id): Path<String>,
) -> Result<Json<Envelope<TenantDto>>, ApiError> {
    match repo::get(&state.db, &id).await? {
        Some(row) => {
            let shown = outlook::shown_for(&state.jobs, &row, state.settings.tenant_job_attempts).await;
            Ok(Json(Envelope::ok(TenantDto::new(row, &shown), vec![])))
        }
        None => Err(ApiError::not_found(format!("Tenant '{id}' was not found."))),
    }
}

fn parse_object(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::validation(vec![format!("The request body is not valid JSON: {e}")]))?;
    if !value.is_object() {
        return Err(ApiError::validation(vec!["The request body must be a JSON object.".into()]));
    }
    Ok(value)
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct CreateTenant {
    /// Slug id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Admin email.
    pub admin_email: String,
    /// Admin password (plain, hashed before storage).
    pub password: String,
    /// Own database?
    pub has_isolated_database: bool,
}

/// Checks a create request; every problem is listed.
pub fn validate_create(body: &serde_json::Value, main: &DatabaseTarget) -> Result<CreateTenant, Vec<String>> {
    let mut problems = Vec::new();
    let id = string_field(body, "id", &mut problems);
    let name = string_field(body, "name", &mut problems);
    let email = string_field(body, "adminEmail", &mut problems);
    let password_text = string_field(body, "password", &mut problems);
    let isolated_db = bool_field(body, "hasIsolatedDatabase", &mut problems).unwrap_or(false);
    match id {
        None | Some("") => {
            if !problems.iter().any(|p| p.starts_with("'id'")) {
                problems.push("'id' is required.".into())
            }
        }
        Some(id) if !is_slug(id) => problems.push(format!(
            "'id' must be lower-case letters and digits in words separated by single hyphens (like 'my-academy'); '{id}' is not."
        )),
        Some(id) if id.len() > MAX_ID_LEN => problems.push(format!("'id' must be at most {MAX_ID_LEN} characters.")),
        Some(id) => {
            if isolated_db
                && let DatabaseTarget::Postgres(pg) = main
                && pg.database.len() + 1 + id.len() > 63
            {
                problems
                    .push(format!("'id' is too long for an isolated database: '{}-{id}' exceeds PostgreSQL's 63-byte limit.", pg.database));
            }
        }
    }
    if !problems.iter().any(|p| p.starts_with("'name'")) {
        check_name(name, &mut problems);
    }
    match email.map(str::trim) {
        None | Some("") if !problems.iter().any(|p| p.starts_with("'adminEmail'")) => problems.push("'adminEmail' is required.".into()),
        Some(e) if !is_email(e) => problems.push(format!("'adminEmail' must be an email address; '{e}' is not.")),
        _ => {}
    }
    match password_text {
        None | Some("") => {
            if !problems.iter().any(|p| p.starts_with("'password'")) {
                problems.push("'password' is required.".into())
            }
        }
        Some(p) => {
            if let Some(w) = password::weakness(p) {
                problems.push(format!("'password' {w}."));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(CreateTenant {
        id: id.unwrap_or_default().to_string(),
        name: name.unwrap_or_default().trim().to_string(),
        admin_email: email.unwrap_or_default().trim().to_string(),
        password: password_text.unwrap_or_default().to_string(),
        has_isolated_database: isolated_db,
    })
}

/// Inserts the tenant and submits its provisioning in one transaction; returns the tenant id.
pub async fn create_tenant(state: &AppState, request: CreateTenant, initiated_by: &str) -> Result<String, ApiError> {
    let isolated_target = request
        .has_isolated_database
        .then(|| isolated::database_for(&state.settings.database, state.settings.data_directory.as_deref(), &request.id));
    if let Some(target) = &isolated_target
        && let Some(what) = isolated::collision(target, &state.settings.database, &state.settings.job_storage)
    {
        return Err(ApiError::conflict(format!(
            "Tenant '{}' cannot have an isolated database: its database '{}' would be {what}; choose another id.",
            request.id,
            isolated::stored_name(target)
        )));
    }
    let connection_string = isolated_target.as_ref().map(isolated::stored_name);
    let hash = password::hash_async(request.password.clone()).await;
    let mut tx = state.db.begin().await?;
    let inserted = repo::insert(
        &mut tx,
        &repo::NewTenant {
            id: &request.id,
            name: &request.name,
            admin_email: &request.admin_email,
            connection_string: connection_string.as_deref(),
            created_by: Some(initiated_by),
        },
    )
    .await?;
    if !inserted {
        tx.rollback().await?;
        return Err(ApiError::conflict(format!("Tenant '{}' already exists.", request.id)));
    }
    // The hash stays in the application database; the job's payload (shown on the dashboard,
    // kept by the job storage) does not carry it.
    admin_password::store(&mut tx, &request.id, &hash).await?;
    let payload = ProvisionTenant {
        tenant_id: request.id.clone(),
        admin_email: request.admin_email.clone(),
        admin_password_hash: None,
        initiated_by: initiated_by.to_string(),
        request_id: Some(new_request_id()),
    };
    let job = provision_request(payload).map_err(|e| ApiError::internal("cannot encode the provisioning job", e))?;
    job_outbox::submit(&mut tx, state.job_storage, &job).await.map_err(|e| ApiError::internal("cannot enqueue the provisioning job", e))?;
    tx.commit().await?;
    job_outbox::after_commit(state.job_storage, &state.jobs, &state.relay_wake);
    metrics::counter!("diquis_tenant_requests_total", "kind" => "create").increment(1);
    tracing::info!(tenant = %request.id, by = %initiated_by, "tenant creation requested");
    Ok(request.id)
}

/// `POST /api/tenants` `{id, name, adminEmail, password, hasIsolatedDatabase}` → 202.
pub async fn create(State(state): State<AppState>, RootCaller(caller): RootCaller, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_object(&body)?;
    let request = validate_create(&body, &state.settings.database).map_err(ApiError::validation)?;
    let id = create_tenant(&state, request, &caller.identity.user_name).await?;
    let envelope = Envelope::ok(id, vec!["Tenant creation initiated. You will be notified when provisioning completes.".into()]);
    Ok((StatusCode::ACCEPTED, Json(envelope)).into_response())
}

/// A validated update request.
#[derive(Debug, Clone)]
pub struct EditTenant {
    /// New name.
    pub name: String,
    /// New active flag.
    pub is_active: bool,
}

/// Checks an update request; every problem is listed.
pub fn validate_update(body: &serde_json::Value) -> Result<EditTenant, Vec<String>> {
    let mut problems = Vec::new();
    let name = string_field(body, "name", &mut problems);
    let is_active = bool_field(body, "isActive", &mut problems);
    if !problems.iter().any(|p| p.starts_with("'name'")) {
        check_name(name, &mut problems);
    }
    if is_active.is_none() && !problems.iter().any(|p| p.starts_with("'isActive'")) {
        problems.push("'isActive' is required.".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(EditTenant { name: name.unwrap_or_default().trim().to_string(), is_active: is_active.unwrap_or(true) })
}

/// Marks the tenant Updating and submits its update in one transaction.
pub async fn update_tenant(state: &AppState, id: &str, edit: EditTenant, initiated_by: &str) -> Result<(), ApiError> {
    if id == ROOT_TENANT {
        return Err(ApiError::validation(vec!["The root tenant cannot be edited.".into()]));
    }
    let mut tx = state.db.begin().await?;
    let Some(tenant) = repo::get_for_update(&mut tx, id).await? else {
        tx.rollback().await?;
        return Err(ApiError::not_found(format!("Tenant '{id}' was not found.")));
    };
    let status = TenantStatus::parse(&tenant.status).unwrap_or(TenantStatus::Failed);
    if status.is_busy() {
        tx.rollback().await?;
        return Err(ApiError::conflict(format!("Tenant '{id}' is {}; edit it when its current job has finished.", status.as_str())));
    }
    if tenant.provisioned_on.is_none() {
        tx.rollback().await?;
        return Err(ApiError::conflict(format!(
            "Tenant '{id}' was never provisioned; retry its provisioning job from the jobs dashboard first."
        )));
    }
    repo::set_status(&mut tx, id, TenantStatus::Updating, tenant.provisioning_error.as_deref(), false).await?;
    let payload = UpdateTenant {
        tenant_id: id.to_string(),
        name: edit.name,
        is_active: edit.is_active,
        initiated_by: initiated_by.to_string(),
        request_id: Some(new_request_id()),
    };
    let job = update_request(payload).map_err(|e| ApiError::internal("cannot encode the update job", e))?;
    job_outbox::submit(&mut tx, state.job_storage, &job).await.map_err(|e| ApiError::internal("cannot enqueue the update job", e))?;
    tx.commit().await?;
    job_outbox::after_commit(state.job_storage, &state.jobs, &state.relay_wake);
    metrics::counter!("diquis_tenant_requests_total", "kind" => "update").increment(1);
    tracing::info!(tenant = %id, by = %initiated_by, "tenant update requested");
    Ok(())
}

/// `PUT /api/tenants/{id}` `{name, isActive}` → 202.
pub async fn update(
    State(state): State<AppState>,
    RootCaller(caller): RootCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if id == ROOT_TENANT {
        return Err(ApiError::validation(vec!["The root tenant cannot be edited.".into()]));
    }
    let body = parse_object(&body)?;
    let edit = validate_update(&body).map_err(ApiError::validation)?;
    update_tenant(&state, &id, edit, &caller.identity.user_name).await?;
    let envelope = Envelope::ok(id, vec!["Tenant update initiated. You will be notified when it completes.".into()]);
    Ok((StatusCode::ACCEPTED, Json(envelope)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sqlite() -> DatabaseTarget {
        DatabaseTarget::Sqlite { path: "x.db".into() }
    }

    #[test]
    fn every_create_problem_is_named() {
        let problems = validate_create(&json!({}), &sqlite()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for field in ["'id'", "'name'", "'adminEmail'", "'password'"] {
            assert!(problems.iter().any(|p| p.starts_with(field)), "{field}: {problems:?}");
        }
        let problems = validate_create(
            &json!({"id": "Bad Id", "name": 5, "adminEmail": "nope", "password": "short", "hasIsolatedDatabase": "yes"}),
            &sqlite(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("'hasIsolatedDatabase' must be true or false")));
        assert!(problems.iter().any(|p| p.contains("'name' must be a string")));
    }

    #[test]
    fn long_isolated_postgres_name_is_refused() {
        let main =
            crate::config::connection_string::parse_database("Host=h;Database=diquis_main_database_with_a_long_name;Username=u").unwrap();
        let body = json!({"id": "a-very-long-tenant-identifier-here", "name": "N", "adminEmail": "a@b.co", "password": "Passw0rd!", "hasIsolatedDatabase": true});
        let problems = validate_create(&body, &main).unwrap_err();
        assert!(problems[0].contains("63-byte"), "{problems:?}");
        let ok = validate_create(&json!({"id": "acme", "name": " Acme ", "adminEmail": "a@b.co", "password": "Passw0rd!"}), &main).unwrap();
        assert_eq!(ok.name, "Acme");
        assert!(!ok.has_isolated_database);
    }

    #[test]
    fn every_update_problem_is_named() {
        let problems = validate_update(&json!({})).unwrap_err();
        assert_eq!(problems.len(), 2);
        let problems = validate_update(&json!({"name": "", "isActive": "no"})).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(validate_update(&json!({"name": "X", "isActive": false})).is_ok());
    }
}

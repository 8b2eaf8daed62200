//! The two tenant jobs, run by the jobs process: `ProvisionTenant` and `UpdateTenant`.
//!
//! Each execution first marks the tenant (Provisioning/Updating) under its job lease, then does
//! the slow, idempotent work (an isolated tenant's database), then writes everything final in
//! one transaction: the job's Succeeded (or failed) state, the tenant's status, the admin user
//! and role, and the notification in the outbox. A retry after a crash at any point ends in the
//! same place, with one admin user and no "user already exists".

use std::sync::Arc;

use jobs::{handler_fn, JobContext, JobError, JobHandler, NewJob};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::model::TenantStatus;
use super::{isolated, repo};
use crate::auth::{users, ROOT_TENANT, TENANT_OWNER_ROLE};
use crate::config::DatabaseTarget;
use crate::db::{Db, Tx};
use crate::notifications::event::Event;
use crate::notifications::outbox;

/// Stable job name of tenant provisioning (payload version 1).
pub const PROVISION_TENANT: &str = "diquis.provision-tenant@1";
/// Stable job name of tenant updates (payload version 1).
pub const UPDATE_TENANT: &str = "diquis.update-tenant@1";
/// The queue both jobs use.
pub const TENANT_QUEUE: &str = "tenants";

/// Payload of [`PROVISION_TENANT`]. The admin password travels only as its Argon2 hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionTenant {
    /// Tenant id.
    pub tenant_id: String,
    /// First admin's email.
    pub admin_email: String,
    /// Argon2 hash of the first admin's password.
    pub admin_password_hash: String,
    /// User name of who asked (notification recipient).
    pub initiated_by: String,
}

/// Payload of [`UPDATE_TENANT`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTenant {
    /// Tenant id.
    pub tenant_id: String,
    /// New name.
    pub name: String,
    /// New active flag.
    pub is_active: bool,
    /// User name of who asked.
    pub initiated_by: String,
}

/// The job for a provisioning request; jobs of one tenant never run concurrently.
pub fn provision_job(p: &ProvisionTenant) -> NewJob {
    NewJob::new(PROVISION_TENANT, p).queue(TENANT_QUEUE).concurrency_key(format!("tenant:{}", p.tenant_id))
}

/// The job for an update request.
pub fn update_job(p: &UpdateTenant) -> NewJob {
    NewJob::new(UPDATE_TENANT, p).queue(TENANT_QUEUE).concurrency_key(format!("tenant:{}", p.tenant_id))
}

/// Enqueues `job` inside the caller's transaction.
pub async fn enqueue(tx: &mut Tx, job: NewJob) -> Result<i64, JobError> {
    match tx {
        Tx::Postgres(t) => jobs::enqueue_in_tx(t, job).await,
        Tx::Sqlite(t) => jobs::enqueue_in_tx(t, job).await,
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct JobDeps {
    /// Main database.
    pub db: Db,
    /// Where the main database is (to derive isolated ones).
    pub main_target: DatabaseTarget,
    /// Directory for isolated SQLite files.
    pub data_directory: Option<std::path::PathBuf>,
    /// Wakes the outbox publisher after a notification is committed.
    pub outbox_wake: Arc<Notify>,
}

async fn complete_in(ctx: &JobContext, tx: &mut Tx) -> Result<(), JobError> {
    match tx {
        Tx::Postgres(t) => ctx.complete_in_tx(t).await,
        Tx::Sqlite(t) => ctx.complete_in_tx(t).await,
    }
}

async fn fail_in(ctx: &JobContext, tx: &mut Tx, error: &JobError) -> Result<(), JobError> {
    match tx {
        Tx::Postgres(t) => ctx.fail_in_tx(t, error).await,
        Tx::Sqlite(t) => ctx.fail_in_tx(t, error).await,
    }
}

async fn check_lease(ctx: &JobContext, tx: &mut Tx) -> Result<(), JobError> {
    match tx {
        Tx::Postgres(t) => ctx.check_lease_in_tx(t).await,
        Tx::Sqlite(t) => ctx.check_lease_in_tx(t).await,
    }
}

/// The `ProvisionTenant` handler.
pub fn provision_handler(deps: JobDeps) -> impl JobHandler {
    handler_fn(PROVISION_TENANT, move |ctx: JobContext, p: ProvisionTenant| {
        let deps = deps.clone();
        async move { provision(&deps, &ctx, &p).await }
    })
}

/// The `UpdateTenant` handler.
pub fn update_handler(deps: JobDeps) -> impl JobHandler {
    handler_fn(UPDATE_TENANT, move |ctx: JobContext, p: UpdateTenant| {
        let deps = deps.clone();
        async move { update(&deps, &ctx, &p).await }
    })
}

fn db_error(e: sqlx::Error) -> JobError {
    JobError::Database(e)
}

async fn provision(deps: &JobDeps, ctx: &JobContext, p: &ProvisionTenant) -> Result<(), JobError> {
    // Step 1: Provisioning, under the lease.
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    check_lease(ctx, &mut tx).await?;
    let Some(tenant) = repo::get_for_update(&mut tx, &p.tenant_id).await.map_err(db_error)? else {
        drop(tx);
        return finish_failed(deps, ctx, Event::tenant_creation_failed(&p.initiated_by, &p.tenant_id, "Tenant not found"), JobError::fatal("Tenant not found")).await;
    };
    repo::set_status(&mut tx, &p.tenant_id, TenantStatus::Provisioning, None, true).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let _ = ctx.log(format!("provisioning tenant {} (attempt {})", p.tenant_id, ctx.attempt())).await;

    // Step 2: the isolated database, if any (idempotent: created if missing, migrations tracked).
    if let Some(stored) = &tenant.connection_string {
        let target = isolated::from_stored(&deps.main_target, stored);
        if let Err(e) = isolated::prepare(&target, &p.tenant_id).await {
            let message = format!("Could not prepare the tenant database {stored}: {e}");
            return finish_failed(
                deps,
                ctx,
                Event::tenant_creation_failed(&p.initiated_by, &p.tenant_id, &message),
                JobError::failed(&message),
            )
            .await;
        }
        let _ = ctx.log(format!("tenant database {stored} is ready")).await;
    }

    // Step 3: everything final in one transaction.
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    complete_in(ctx, &mut tx).await?;
    users::ensure_user(
        &mut tx,
        &users::NewUser {
            tenant_id: &p.tenant_id,
            email: &p.admin_email,
            password_hash: &p.admin_password_hash,
            roles: &[TENANT_OWNER_ROLE],
        },
    )
    .await
    .map_err(db_error)?;
    repo::mark_provisioned(&mut tx, &p.tenant_id).await.map_err(db_error)?;
    outbox::insert(&mut tx, &Event::tenant_created(&p.initiated_by, &p.tenant_id, &tenant.name)).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    deps.outbox_wake.notify_one();
    metrics::counter!("diquis_tenants_provisioned_total").increment(1);
    tracing::info!(tenant = %p.tenant_id, "tenant provisioned");
    Ok(())
}

/// Records a failed execution: the job's failure (retry or Failed), the tenant's status and
/// error, and the failure notification, in one transaction.
async fn finish_failed(deps: &JobDeps, ctx: &JobContext, event: Event, error: JobError) -> Result<(), JobError> {
    let message = match &error {
        JobError::Failed(m) | JobError::Fatal(m) => m.clone(),
        other => other.to_string(),
    };
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    fail_in(ctx, &mut tx, &error).await?;
    let exists = repo::get_for_update(&mut tx, &event.tenant_id).await.map_err(db_error)?.is_some();
    if exists && event.tenant_id != ROOT_TENANT {
        repo::set_status(&mut tx, &event.tenant_id, TenantStatus::Failed, Some(&message), false).await.map_err(db_error)?;
    }
    outbox::insert(&mut tx, &event).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    deps.outbox_wake.notify_one();
    metrics::counter!("diquis_tenant_jobs_failed_total", "job" => ctx.name().to_string()).increment(1);
    tracing::warn!(tenant = %event.tenant_id, job = ctx.job_id(), error = %message, "tenant job failed");
    Ok(())
}

async fn update(deps: &JobDeps, ctx: &JobContext, p: &UpdateTenant) -> Result<(), JobError> {
    if p.tenant_id == ROOT_TENANT {
        return finish_failed(
            deps,
            ctx,
            Event::tenant_update_failed(&p.initiated_by, &p.tenant_id, "Cannot edit root tenant"),
            JobError::fatal("Cannot edit root tenant"),
        )
        .await;
    }
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    complete_in(ctx, &mut tx).await?;
    if repo::get_for_update(&mut tx, &p.tenant_id).await.map_err(db_error)?.is_none() {
        tx.rollback().await.map_err(db_error)?;
        return finish_failed(
            deps,
            ctx,
            Event::tenant_update_failed(&p.initiated_by, &p.tenant_id, "Tenant not found"),
            JobError::fatal("Tenant not found"),
        )
        .await;
    }
    repo::apply_update(&mut tx, &p.tenant_id, &p.name, p.is_active).await.map_err(db_error)?;
    outbox::insert(&mut tx, &Event::tenant_updated(&p.initiated_by, &p.tenant_id, &p.name)).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    deps.outbox_wake.notify_one();
    metrics::counter!("diquis_tenants_updated_total").increment(1);
    tracing::info!(tenant = %p.tenant_id, "tenant updated");
    Ok(())
}

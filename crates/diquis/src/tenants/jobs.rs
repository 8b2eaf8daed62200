//! The two tenant jobs, run by the jobs process: `ProvisionTenant` and `UpdateTenant`.
//!
//! Each execution first marks the tenant (Provisioning/Updating) under its job lease, then does
//! the slow, idempotent work (an isolated tenant's database), then writes everything final in
//! one transaction: the tenant's status, the admin user and role, and the notification in the
//! outbox — and, when the job storage is the application database, the job's Succeeded (or
//! failed) state too. A retry after a crash at any point ends in the same place, with one admin
//! user and no "user already exists".
//!
//! With a separate job storage ([`JobStorage::SeparateDatabase`]) the job's state cannot join
//! that transaction. The lease is checked in the job storage just before the application
//! transaction commits, then the worker records the job's state. A crash in between runs the job
//! again: its success notification carries the request's outcome key, so the new execution finds
//! the result already committed and writes nothing (see docs/decisions/0009-separate-job-storage.md).

use std::sync::Arc;

use jobs::{JobContext, JobError, JobHandler, NewJob, RetryPolicy, handler_fn};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::model::TenantStatus;
use super::{admin_password, isolated, repo};
use crate::auth::{ROOT_TENANT, TENANT_OWNER_ROLE, users};
use crate::config::DatabaseTarget;
use crate::db::{Db, Tx};
use crate::job_outbox::{JobRequest, JobStorage, new_request_id};
use crate::notifications::event::Event;
use crate::notifications::outbox;

/// Stable job name of tenant provisioning (payload version 1).
pub const PROVISION_TENANT: &str = "diquis.provision-tenant@1";
/// Stable job name of tenant updates (payload version 1).
pub const UPDATE_TENANT: &str = "diquis.update-tenant@1";
/// The queue both jobs use.
pub const TENANT_QUEUE: &str = "tenants";

/// Payload of [`PROVISION_TENANT`]. The admin password is not in it: its Argon2 hash waits in
/// the application database ([`super::admin_password`]) until the job creates the user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionTenant {
    /// Tenant id.
    pub tenant_id: String,
    /// First admin's email.
    pub admin_email: String,
    /// Argon2 hash of the first admin's password, only in jobs enqueued by older versions (new
    /// ones leave it out; the hash is kept in the application database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_hash: Option<String>,
    /// User name of who asked (notification recipient).
    pub initiated_by: String,
    /// Id of the request (absent in jobs enqueued by older versions): with a separate job
    /// storage, the key of the request's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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
    /// Id of the request, as in [`ProvisionTenant::request_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Jobs of one tenant never run concurrently.
fn tenant_key(tenant_id: &str) -> String {
    format!("tenant:{tenant_id}")
}

/// The job for a provisioning request.
pub fn provision_job(p: &ProvisionTenant) -> NewJob {
    NewJob::new(PROVISION_TENANT, p).queue(TENANT_QUEUE).concurrency_key(tenant_key(&p.tenant_id))
}

/// The job for an update request.
pub fn update_job(p: &UpdateTenant) -> NewJob {
    NewJob::new(UPDATE_TENANT, p).queue(TENANT_QUEUE).concurrency_key(tenant_key(&p.tenant_id))
}

/// [`provision_job`] as a request to submit ([`crate::job_outbox::submit`]), under the
/// payload's request id (a new one when it has none).
pub fn provision_request(mut p: ProvisionTenant) -> Result<JobRequest, serde_json::Error> {
    let id = p.request_id.get_or_insert_with(new_request_id).clone();
    Ok(JobRequest::new(&id, PROVISION_TENANT, TENANT_QUEUE, &p)?.concurrency_key(tenant_key(&p.tenant_id)))
}

/// [`update_job`] as a request to submit, like [`provision_request`].
pub fn update_request(mut p: UpdateTenant) -> Result<JobRequest, serde_json::Error> {
    let id = p.request_id.get_or_insert_with(new_request_id).clone();
    Ok(JobRequest::new(&id, UPDATE_TENANT, TENANT_QUEUE, &p)?.concurrency_key(tenant_key(&p.tenant_id)))
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
    /// Whether the job storage is the main database (decides how outcomes commit).
    pub storage: JobStorage,
    /// Announces a tenant's deactivation (its users' sessions end on every node); `None`: the
    /// database changes alone, which every node sees within its check cache time.
    pub revocations: Option<crate::auth::revocation::Revocations>,
    /// How often and how far apart a failed tenant job runs again ([`retry_policy`]).
    pub retry: RetryPolicy,
}

/// The retry policy of the tenant jobs: `attempts` executions in all, `delay` apart, or with
/// Hangfire's back-off when `delay` is `None` (`Jobs:TenantRetry:Attempts`, `Jobs:TenantRetry:Delay`).
pub fn retry_policy(attempts: u32, delay: Option<std::time::Duration>) -> RetryPolicy {
    match delay {
        Some(d) => RetryPolicy::fixed(attempts, d),
        None => RetryPolicy::hangfire().with_max_attempts(attempts),
    }
}

async fn complete_in(ctx: &JobContext, tx: &mut Tx) -> Result<(), JobError> {
    tx.complete_job(ctx).await
}

async fn fail_in(ctx: &JobContext, tx: &mut Tx, error: &JobError) -> Result<(), JobError> {
    tx.fail_job(ctx, error).await
}

async fn check_lease(ctx: &JobContext, tx: &mut Tx) -> Result<(), JobError> {
    tx.check_job_lease(ctx).await
}

/// Begins a main-database transaction guarded by the job's lease. Same database: the lease is
/// checked (and the job row locked) first, inside it. Separate: [`commit_fenced`] checks it.
async fn begin_fenced(deps: &JobDeps, ctx: &JobContext) -> Result<Tx, JobError> {
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    if deps.storage == JobStorage::SameDatabase {
        check_lease(ctx, &mut tx).await?;
    }
    Ok(tx)
}

/// Begins the transaction that records an execution's outcome: `None` for success, else the
/// error. Same database: the job's own final state is written first (fenced, locking its row),
/// so both commit together.
async fn begin_outcome(deps: &JobDeps, ctx: &JobContext, failure: Option<&JobError>) -> Result<Tx, JobError> {
    let mut tx = deps.db.begin().await.map_err(db_error)?;
    if deps.storage == JobStorage::SameDatabase {
        match failure {
            None => complete_in(ctx, &mut tx).await?,
            Some(error) => fail_in(ctx, &mut tx, error).await?,
        }
    }
    Ok(tx)
}

/// Commits `tx`. Separate job storage: checks in it, just before, that this execution still
/// holds the job, so a stale execution commits nothing (only the moment between this check and
/// the commit is left, which the outcome keys cover).
async fn commit_fenced(deps: &JobDeps, ctx: &JobContext, tx: Tx) -> Result<(), JobError> {
    if deps.storage == JobStorage::SeparateDatabase
        && let Err(e) = ctx.check_lease().await
    {
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await.map_err(db_error)
}

/// Commits an outcome begun with [`begin_outcome`] and wakes the publisher. With a separate job
/// storage the job's state is left to the worker: it records success when the handler returns
/// `Ok`, and applies the retry policy to a returned error.
async fn commit_outcome(deps: &JobDeps, ctx: &JobContext, tx: Tx) -> Result<(), JobError> {
    commit_fenced(deps, ctx, tx).await?;
    deps.outbox_wake.notify_one();
    Ok(())
}

/// The key under which a request's success is notified, once: the request's id (the job's id for
/// jobs enqueued without one). A later execution of the same request finds it and writes
/// nothing: after a crash between the application's commit and the job storage's (separate job
/// storage), and when an operator requeues a job that had succeeded (either storage), which then
/// only reports in the job's log that the work was done.
fn success_key(ctx: &JobContext, request_id: Option<&str>) -> String {
    request_id.map(str::to_string).unwrap_or_else(|| format!("job:{}", ctx.job_id()))
}

/// The key of a failure notification: once per execution (its fencing token), because each
/// failed execution is reported, retries included.
fn failure_key(ctx: &JobContext, request_id: Option<&str>) -> Option<String> {
    Some(format!("{}:failed:{}", success_key(ctx, request_id), ctx.lease().token))
}

/// The `ProvisionTenant` handler.
pub fn provision_handler(deps: JobDeps) -> impl JobHandler {
    let retry = deps.retry.clone();
    handler_fn(PROVISION_TENANT, move |ctx: JobContext, p: ProvisionTenant| {
        let deps = deps.clone();
        async move { provision(&deps, &ctx, &p).await }
    })
    .retry(retry)
}

/// The `UpdateTenant` handler.
pub fn update_handler(deps: JobDeps) -> impl JobHandler {
    let retry = deps.retry.clone();
    handler_fn(UPDATE_TENANT, move |ctx: JobContext, p: UpdateTenant| {
        let deps = deps.clone();
        async move { update(&deps, &ctx, &p).await }
    })
    .retry(retry)
}

fn db_error(e: sqlx::Error) -> JobError {
    JobError::Database(e)
}

/// Whether an earlier execution committed the request's success (then this one only lets the
/// worker mark the job done).
async fn already_succeeded(tx: &mut Tx, key: Option<&str>) -> Result<bool, JobError> {
    match key {
        Some(key) => Ok(outbox::find_outcome(tx, key).await.map_err(db_error)?.is_some()),
        None => Ok(false),
    }
}

async fn provision(deps: &JobDeps, ctx: &JobContext, p: &ProvisionTenant) -> Result<(), JobError> {
    let key = Some(success_key(ctx, p.request_id.as_deref()));
    let failure_key = failure_key(ctx, p.request_id.as_deref());
    // Step 1: Provisioning, under the lease.
    let mut tx = begin_fenced(deps, ctx).await?;
    let Some(tenant) = repo::get_for_update(&mut tx, &p.tenant_id).await.map_err(db_error)? else {
        drop(tx);
        let event = Event::tenant_creation_failed(&p.initiated_by, &p.tenant_id, "Tenant not found");
        return finish_failed(deps, ctx, event, failure_key, JobError::fatal("Tenant not found")).await;
    };
    // Checked after locking the tenant row, so an execution committing meanwhile is seen.
    if already_succeeded(&mut tx, key.as_deref()).await? {
        tx.rollback().await.map_err(db_error)?;
        let _ = ctx.log(format!("tenant {} was provisioned by an earlier execution of this request; nothing to do", p.tenant_id)).await;
        return Ok(());
    }
    repo::set_status(&mut tx, &p.tenant_id, TenantStatus::Provisioning, None, true).await.map_err(db_error)?;
    commit_fenced(deps, ctx, tx).await?;
    let _ = ctx.log(format!("provisioning tenant {} (attempt {})", p.tenant_id, ctx.attempt())).await;

    // Step 2: the isolated database, if any (idempotent: created if missing, migrations tracked).
    if let Some(stored) = &tenant.connection_string {
        let target = isolated::from_stored(&deps.main_target, stored);
        if let Err(e) = isolated::prepare(&target, &p.tenant_id).await {
            let message = format!("Could not prepare the tenant database {stored}: {e}");
            // A database that is not new stays refused however often it is retried.
            let error = match e {
                isolated::IsolatedDbError::NotNew(_) => JobError::fatal(&message),
                _ => JobError::failed(&message),
            };
            return finish_failed(deps, ctx, Event::tenant_creation_failed(&p.initiated_by, &p.tenant_id, &message), failure_key, error)
                .await;
        }
        let _ = ctx.log(format!("tenant database {stored} is ready")).await;
    }

    // Step 3: everything final in one transaction.
    let mut tx = begin_outcome(deps, ctx, None).await?;
    let stored_hash = admin_password::find(&mut tx, &p.tenant_id).await.map_err(db_error)?;
    let Some(hash) = stored_hash.or_else(|| p.admin_password_hash.clone()) else {
        drop(tx);
        let message = "The first admin's password is no longer stored; create the tenant again";
        let event = Event::tenant_creation_failed(&p.initiated_by, &p.tenant_id, message);
        return finish_failed(deps, ctx, event, failure_key, JobError::fatal(message)).await;
    };
    users::ensure_user(
        &mut tx,
        &users::NewUser { tenant_id: &p.tenant_id, email: &p.admin_email, password_hash: &hash, roles: &[TENANT_OWNER_ROLE] },
    )
    .await
    .map_err(db_error)?;
    admin_password::forget(&mut tx, &p.tenant_id).await.map_err(db_error)?;
    repo::mark_provisioned(&mut tx, &p.tenant_id).await.map_err(db_error)?;
    let event = Event::tenant_created(&p.initiated_by, &p.tenant_id, &tenant.name);
    if outbox::insert(&mut tx, &event, key.as_deref()).await.map_err(db_error)?.is_none() {
        // Another execution recorded the success since step 1.
        tx.rollback().await.map_err(db_error)?;
        return Ok(());
    }
    commit_outcome(deps, ctx, tx).await?;
    metrics::counter!("diquis_tenants_provisioned_total").increment(1);
    tracing::info!(tenant = %p.tenant_id, "tenant provisioned");
    Ok(())
}

/// Records a failed execution: the tenant's status and error and the failure notification in
/// one transaction (with the job's failure — retry or Failed — when it shares the database;
/// else the worker records it from the returned error).
async fn finish_failed(deps: &JobDeps, ctx: &JobContext, event: Event, key: Option<String>, error: JobError) -> Result<(), JobError> {
    let message = match &error {
        JobError::Failed(m) | JobError::Fatal(m) => m.clone(),
        other => other.to_string(),
    };
    let mut tx = begin_outcome(deps, ctx, Some(&error)).await?;
    let exists = repo::get_for_update(&mut tx, &event.tenant_id).await.map_err(db_error)?.is_some();
    if exists && event.tenant_id != ROOT_TENANT {
        repo::set_status(&mut tx, &event.tenant_id, TenantStatus::Failed, Some(&message), false).await.map_err(db_error)?;
        repo::set_failed_job(&mut tx, &event.tenant_id, ctx.job_id()).await.map_err(db_error)?;
    }
    // A repeat within one execution finds its notification written: nothing more to add.
    outbox::insert(&mut tx, &event, key.as_deref()).await.map_err(db_error)?;
    commit_outcome(deps, ctx, tx).await?;
    metrics::counter!("diquis_tenant_jobs_failed_total", "job" => ctx.name().to_string()).increment(1);
    tracing::warn!(tenant = %event.tenant_id, job = ctx.job_id(), error = %message, "tenant job failed");
    match deps.storage {
        JobStorage::SameDatabase => Ok(()),
        JobStorage::SeparateDatabase => Err(error),
    }
}

async fn update(deps: &JobDeps, ctx: &JobContext, p: &UpdateTenant) -> Result<(), JobError> {
    let key = Some(success_key(ctx, p.request_id.as_deref()));
    let failure_key = failure_key(ctx, p.request_id.as_deref());
    if p.tenant_id == ROOT_TENANT {
        return finish_failed(
            deps,
            ctx,
            Event::tenant_update_failed(&p.initiated_by, &p.tenant_id, "Cannot edit root tenant"),
            failure_key,
            JobError::fatal("Cannot edit root tenant"),
        )
        .await;
    }
    let mut tx = begin_outcome(deps, ctx, None).await?;
    if repo::get_for_update(&mut tx, &p.tenant_id).await.map_err(db_error)?.is_none() {
        tx.rollback().await.map_err(db_error)?;
        return finish_failed(
            deps,
            ctx,
            Event::tenant_update_failed(&p.initiated_by, &p.tenant_id, "Tenant not found"),
            failure_key,
            JobError::fatal("Tenant not found"),
        )
        .await;
    }
    if already_succeeded(&mut tx, key.as_deref()).await? {
        tx.rollback().await.map_err(db_error)?;
        let _ = ctx.log(format!("tenant {} was updated by an earlier execution of this request; nothing to do", p.tenant_id)).await;
        return Ok(());
    }
    repo::apply_update(&mut tx, &p.tenant_id, &p.name, p.is_active).await.map_err(db_error)?;
    if !p.is_active {
        crate::auth::revocation::revoke_tenant_in(&mut tx, &p.tenant_id).await.map_err(db_error)?;
    }
    let event = Event::tenant_updated(&p.initiated_by, &p.tenant_id, &p.name);
    if outbox::insert(&mut tx, &event, key.as_deref()).await.map_err(db_error)?.is_none() {
        tx.rollback().await.map_err(db_error)?;
        return Ok(());
    }
    commit_outcome(deps, ctx, tx).await?;
    if !p.is_active
        && let Some(revocations) = &deps.revocations
    {
        revocations.announce(crate::auth::revocation::Revocation::Tenant { tenant_id: p.tenant_id.clone() });
    }
    metrics::counter!("diquis_tenants_updated_total").increment(1);
    tracing::info!(tenant = %p.tenant_id, "tenant updated");
    Ok(())
}

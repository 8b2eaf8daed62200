//! Starting and stopping a Diquis process: database, job storage, seed, backplane, hub, jobs,
//! publisher, job-outbox relay and the HTTP listeners.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use signalr::HubLifetimeManager;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::hub::HubAuthenticator;
use crate::auth::jwt::JwtService;
use crate::auth::revocation::Revocations;
use crate::auth::{ROOT_ROLE, ROOT_TENANT, password, signing_key, users};
use crate::config::{ConfigError, Settings};
use crate::db::{Db, DbError};
use crate::job_outbox::{JobStorage, Relay};
use crate::notifications::hub::{HUB_NAME, HUB_PATH, connection_options, notification_service};
use crate::notifications::publisher::{Audience, Publisher};
use crate::ops::health::{Backplane, Health};
use crate::state::{AppInner, AppState, ProcessRole};
use crate::tenants::jobs::{JobDeps, TENANT_QUEUE, provision_handler, update_handler};
use crate::tenants::repo;
use crate::web;

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The job storage could not be prepared.
    #[error("job storage: {0}")]
    Jobs(#[from] jobs::JobError),
    /// The application's database could not be opened or migrated.
    #[error("database (configuration key 'ConnectionStrings:DefaultConnection'): {0}")]
    MainDatabase(DbError),
    /// The job storage's own database (another one than the application's) could not be opened.
    #[error("job storage (configuration key 'ConnectionStrings:HangfireConnection'): {0}")]
    JobDatabase(DbError),
    /// The generated JWT signing key could not be read or stored.
    #[error(transparent)]
    SigningKey(#[from] crate::auth::signing_key::SigningKeyError),
    /// The Redis backplane could not be created (a wrong connection string, or no runtime).
    #[error("Redis backplane (configuration key 'ConnectionStrings:RedisConnection'): {0}")]
    Backplane(#[from] signalr_redis::ConnectError),
    /// A listener could not be bound.
    #[error("cannot listen on http://{addr} (configuration key 'Urls'): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A started process.
pub struct RunningApp {
    /// The bound addresses (with the real port when port 0 was asked for).
    pub addrs: Vec<SocketAddr>,
    /// The shared state (for tests and embedding).
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    worker: Option<jobs::WorkerHandle>,
    lifetime: Arc<dyn HubLifetimeManager>,
    /// The job storage's pool when it is another database than `state.db`.
    job_db: Option<Db>,
}

impl RunningApp {
    /// The first URL, e.g. `http://127.0.0.1:5000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// A token that stops the process when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The hub's lifetime manager.
    pub fn lifetime_manager(&self) -> &Arc<dyn HubLifetimeManager> {
        &self.lifetime
    }

    /// Waits for the shutdown signal, then stops: listeners close, running jobs finish or are
    /// handed back, the publisher stops, the pool closes.
    pub async fn wait(mut self) {
        self.shutdown.cancelled().await;
        self.stop_inner().await;
    }

    /// Stops now.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(worker) = self.worker.take()
            && let Err(e) = worker.shutdown().await
        {
            tracing::warn!(error = %e, "jobs worker shutdown");
        }
        for t in self.tasks.drain(..) {
            // Open WebSockets keep a graceful HTTP shutdown waiting; give them a moment, then go.
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t).await.is_err() {
                abort.abort();
            }
        }
        self.state.db.close().await;
        if let Some(job_db) = &self.job_db {
            job_db.close().await;
        }
        tracing::info!("stopped");
    }
}

/// Checks what can be checked before touching anything. Connection strings were parsed with the
/// settings already (a bad one names its key); `HangfireConnection` may name another database
/// than `DefaultConnection`.
pub fn preflight(settings: &Settings) -> Result<(), ConfigError> {
    for (key, target) in
        [("ConnectionStrings:DefaultConnection", &settings.database), ("ConnectionStrings:HangfireConnection", &settings.job_storage)]
    {
        crate::ops::startup::check_sqlite_path(key, target)?;
    }
    if let Some(redis) = &settings.redis {
        signalr_redis::RedisConfig::parse(redis).map_err(|e| ConfigError {
            key: "ConnectionStrings:RedisConnection".into(),
            problem: format!("is not a valid StackExchange.Redis connection string: {e}"),
        })?;
    }
    Ok(())
}

/// Creates tenant `root` and, when no root administrator exists, one from `Seed:*` (printing a
/// generated password once). Returns the generated password, if one was made.
pub async fn seed(db: &Db, settings: &Settings) -> Result<Option<String>, sqlx::Error> {
    repo::ensure_root(db).await?;
    let existing: Option<i32> = db
        .query_scalar("SELECT 1 FROM users u JOIN user_roles r ON r.user_id = u.id WHERE u.tenant_id = $1 AND r.role = $2 LIMIT 1")
        .bind(ROOT_TENANT)
        .bind(ROOT_ROLE)
        .fetch_optional()
        .await?;
    if existing.is_some() {
        return Ok(None);
    }
    let (password_text, generated) = match &settings.seed.admin_password {
        Some(p) => (p.clone(), false),
        None => (password::generate(), true),
    };
    let hash = password::hash_async(password_text.clone()).await;
    let mut tx = db.begin().await?;
    let (_, created) = users::ensure_user(
        &mut tx,
        &users::NewUser { tenant_id: ROOT_TENANT, email: &settings.seed.admin_email, password_hash: &hash, roles: &[ROOT_ROLE] },
    )
    .await?;
    tx.commit().await?;
    if created {
        tracing::info!(email = %settings.seed.admin_email, "created the root administrator");
        if generated {
            return Ok(Some(password_text));
        }
    }
    Ok(None)
}

/// Starts a process with `settings` in `role`; returns once it accepts connections.
pub async fn start(settings: Settings, role: ProcessRole) -> Result<RunningApp, StartError> {
    preflight(&settings)?;
    crate::ops::metrics::install();
    let shutdown = CancellationToken::new();
    let db = Db::open(&settings.database).await.map_err(StartError::MainDatabase)?;
    let job_storage = JobStorage::of(&settings.database, &settings.job_storage);
    // Same database: the job tables share the application's pool, so jobs enqueue and complete in
    // its transactions. Else their own pool (the job engine migrates its tables).
    let job_db = match job_storage {
        JobStorage::SameDatabase => None,
        JobStorage::SeparateDatabase => Some(Db::connect(&settings.job_storage).await.map_err(StartError::JobDatabase)?),
    };
    let job_store = job_db.as_ref().unwrap_or(&db).job_store().await?;
    if let Some(generated) = seed(&db, &settings).await.map_err(DbError::from)? {
        crate::ops::logging::announce(
            "WARN",
            &format!(
                "Created the root administrator '{}' (tenant 'root') with the generated password:\n\n    {generated}\n\n\
                 It is shown only this once. Set Seed:AdminPassword before the first start to choose it yourself.",
                settings.seed.admin_email
            ),
            &[("email", &settings.seed.admin_email), ("password", &generated)],
        );
    }
    let (key, key_source) = signing_key::signing_key(&db, &settings.database, settings.jwt.key.as_deref()).await?;
    signing_key::report(&key_source, &settings.environment);
    let jwt = JwtService::new(&key, &settings.jwt);
    let revocations =
        Revocations::new(db.clone(), settings.redis.as_deref().map(|cs| (cs, settings.channel_prefix.as_str())), shutdown.clone());

    let (lifetime, backplane): (Arc<dyn HubLifetimeManager>, Backplane) = match &settings.redis {
        None => (Arc::new(signalr::DefaultHubLifetimeManager::new()), Backplane::InProcess),
        Some(cs) => {
            let options = signalr_redis::RedisBackplaneOptions::from_connection_string(cs, HUB_NAME)
                .map_err(signalr_redis::ConnectError::from)?
                .with_channel_prefix(settings.channel_prefix.clone())
                .with_sharded_pub_sub(settings.redis_sharded);
            let manager = Arc::new(signalr_redis::RedisHubLifetimeManager::new(options).map_err(signalr_redis::ConnectError::from)?);
            (manager.clone() as Arc<dyn HubLifetimeManager>, Backplane::Redis(manager))
        }
    };
    let service = notification_service(lifetime.clone(), revocations.clone(), settings.hub);
    let hub_options = connection_options(HubAuthenticator::new(jwt.clone(), settings.cors_origins.clone()));
    let hub_router = service.router(HUB_PATH, settings.hub_limits.apply(hub_options));

    let outbox_wake = Arc::new(Notify::new());
    let relay_wake = Arc::new(Notify::new());
    let state = AppState::new(AppInner {
        settings: settings.clone(),
        db: db.clone(),
        jwt,
        revocations: revocations.clone(),
        jobs: job_store.clone(),
        job_storage,
        relay_wake: relay_wake.clone(),
        outbox_wake: outbox_wake.clone(),
        health: Health { backplane: backplane.clone() },
        role,
        security: crate::security::Security::new(&settings.security),
    });

    let mut tasks = Vec::new();
    let mut worker = None;
    if job_storage == JobStorage::SeparateDatabase {
        // In every role: requests left by any process (even one that died) get relayed.
        tasks.push(tokio::spawn(Relay::new(db.clone(), job_store.clone(), relay_wake).run(shutdown.clone())));
    }
    if role.runs_jobs() {
        let deps = JobDeps {
            db: db.clone(),
            main_target: settings.database.clone(),
            data_directory: settings.data_directory.clone(),
            outbox_wake: outbox_wake.clone(),
            storage: job_storage,
            revocations: Some(revocations.clone()),
            retry: crate::tenants::jobs::retry_policy(settings.tenant_job_attempts, settings.tenant_job_retry_delay),
        };
        worker = Some(
            jobs::Worker::builder(job_store.clone())
                .queue(TENANT_QUEUE, settings.job_workers)
                .lease_duration(Duration::from_secs(settings.job_lease_seconds))
                .register(provision_handler(deps.clone()))
                .register(update_handler(deps))
                .queue(crate::ops::housekeeping::QUEUE, 1)
                .register(crate::ops::housekeeping::handler(db.clone(), chrono::Duration::minutes(settings.jwt.expiry_minutes)))
                .start()
                .await?,
        );
        use crate::ops::housekeeping::{CRON, RECURRING_ID, recurring_job};
        job_store.add_recurring(RECURRING_ID, CRON, "UTC", recurring_job()).await?;
        let audience = if settings.broadcast_to_all { Audience::Everyone } else { Audience::RootAndRequester };
        let publisher = Publisher::new(db.clone(), lifetime.clone(), audience, outbox_wake, backplane);
        tasks.push(tokio::spawn(publisher.run(shutdown.clone())));
    }

    // Every process signals its job changes to the dashboards (through the backplane if any).
    tasks.push(tokio::spawn(web::dashboard::publish_job_changes(job_store.clone(), lifetime.clone(), shutdown.clone())));
    let app = web::router(state.clone(), hub_router);
    let addrs_wanted = settings.urls.clone().unwrap_or_else(|| vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), role.default_port())]);
    let mut addrs = Vec::new();
    for addr in addrs_wanted {
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        addrs.push(local);
        let app = app.clone();
        let token = shutdown.clone();
        let limits = settings.http_limits.clone();
        tasks.push(tokio::spawn(async move {
            let result = signalr_connections::server::serve(listener, app, limits, token.cancelled_owned()).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }));
    }
    tracing::info!(role = role.name(), database = %settings.database, job_storage = %settings.job_storage, backplane = match &settings.redis { Some(_) => "redis", None => "in-process" }, "Diquis started");
    Ok(RunningApp { addrs, state, shutdown, tasks, worker, lifetime, job_db })
}

//! The main database: PostgreSQL or SQLite behind one handle, connected and migrated at start.
//!
//! Queries are written once with `$1`-style parameters (SQLite accepts them too) and run on
//! either backend through [`Db::query`] / [`Tx::query`] and their `query_as` / `query_scalar`
//! (module `query`, the one place that matches on the backend for them).

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::config::{DatabaseTarget, PostgresTarget};

mod query;

pub use query::{FromBothRows, Query, QueryAs, QueryResult, QueryScalar};

/// A pool on the main database.
#[derive(Clone, Debug)]
pub enum Db {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// An open transaction on the main database.
pub enum Tx {
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
    /// SQLite (begun with `BEGIN IMMEDIATE`, so writers queue instead of failing to upgrade).
    Sqlite(Transaction<'static, Sqlite>),
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Where (without password).
        target: String,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Creating a missing PostgreSQL database failed.
    #[error("cannot create database {database} on {target}: {source}")]
    Create {
        /// The database name.
        database: String,
        /// Where.
        target: String,
        /// The driver error.
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migrating {target} failed: {source}")]
    Migrate {
        /// Where.
        target: String,
        /// The migration error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// The main schema's migrations table (the job engine keeps its own).
const MIGRATIONS_TABLE: &str = "_diquis_migrations";

impl Db {
    /// Connects (creating a missing PostgreSQL database or SQLite file) and applies the main
    /// schema's migrations.
    pub async fn open(target: &DatabaseTarget) -> Result<Db, DbError> {
        let db = Self::connect(target).await?;
        db.migrate(target).await?;
        Ok(db)
    }

    /// Connects without migrating.
    pub async fn connect(target: &DatabaseTarget) -> Result<Db, DbError> {
        match target {
            DatabaseTarget::Postgres(pg) => Ok(Db::Postgres(connect_postgres(pg, 10).await?)),
            DatabaseTarget::Sqlite { path } => Ok(Db::Sqlite(connect_sqlite(path).await?)),
        }
    }

    async fn migrate(&self, target: &DatabaseTarget) -> Result<(), DbError> {
        let err = |source| DbError::Migrate { target: target.to_string(), source };
        match self {
            Db::Postgres(p) => {
                let mut m = sqlx::migrate!("./migrations/postgres");
                m.dangerous_set_table_name(MIGRATIONS_TABLE);
                m.set_ignore_missing(true);
                m.run(p).await.map_err(err)
            }
            Db::Sqlite(p) => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.dangerous_set_table_name(MIGRATIONS_TABLE);
                m.set_ignore_missing(true);
                m.run(p).await.map_err(err)
            }
        }
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// A statement on the pool (`$1`-style parameters).
    pub fn query(&self, sql: impl sqlx::SqlSafeStr) -> Query<'_> {
        match self {
            Db::Postgres(p) => Query::on_pg_pool(p, sql),
            Db::Sqlite(p) => Query::on_sqlite_pool(p, sql),
        }
    }

    /// A query on the pool whose rows decode into `O`.
    pub fn query_as<O: FromBothRows>(&self, sql: impl sqlx::SqlSafeStr) -> QueryAs<'_, O> {
        QueryAs::new(self.query(sql))
    }

    /// A query on the pool whose rows are one value of type `O`.
    pub fn query_scalar<O>(&self, sql: impl sqlx::SqlSafeStr) -> QueryScalar<'_, O>
    where
        (O,): FromBothRows,
    {
        QueryScalar::new(self.query(sql))
    }

    /// Whether a trivial query succeeds (readiness).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.query("SELECT 1").execute().await.map(|_| ())
    }

    /// A job store on this database's pool (runs the job engine's migrations).
    pub async fn job_store(&self) -> Result<jobs::JobStore, jobs::JobError> {
        match self {
            Db::Postgres(p) => jobs::JobStore::from_pg_pool(p.clone()).await,
            Db::Sqlite(p) => jobs::JobStore::from_sqlite_pool(p.clone()).await,
        }
    }

    /// Whether the database is PostgreSQL (for the few statements whose SQL differs).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// The backend's name, for logs and health output.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgresql",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }
}

impl Tx {
    /// A statement on the transaction's connection (`$1`-style parameters).
    pub fn query(&mut self, sql: impl sqlx::SqlSafeStr) -> Query<'_> {
        match self {
            Tx::Postgres(t) => Query::on_pg_conn(t, sql),
            Tx::Sqlite(t) => Query::on_sqlite_conn(t, sql),
        }
    }

    /// A query on the transaction's connection whose rows decode into `O`.
    pub fn query_as<O: FromBothRows>(&mut self, sql: impl sqlx::SqlSafeStr) -> QueryAs<'_, O> {
        QueryAs::new(self.query(sql))
    }

    /// A query on the transaction's connection whose rows are one value of type `O`.
    pub fn query_scalar<O>(&mut self, sql: impl sqlx::SqlSafeStr) -> QueryScalar<'_, O>
    where
        (O,): FromBothRows,
    {
        QueryScalar::new(self.query(sql))
    }

    /// Whether the transaction is on PostgreSQL (for the few statements whose SQL differs).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Enqueues `job` in this transaction (job tables in the main database): it exists only if
    /// the transaction commits.
    pub async fn enqueue_job(&mut self, job: jobs::NewJob) -> Result<jobs::JobId, jobs::JobError> {
        match self {
            Tx::Postgres(t) => jobs::enqueue_in_tx(t, job).await,
            Tx::Sqlite(t) => jobs::enqueue_in_tx(t, job).await,
        }
    }

    /// Marks the running job of `ctx` `Succeeded` in this transaction (fenced by its lease).
    pub async fn complete_job(&mut self, ctx: &jobs::JobContext) -> Result<(), jobs::JobError> {
        match self {
            Tx::Postgres(t) => ctx.complete_in_tx(t).await,
            Tx::Sqlite(t) => ctx.complete_in_tx(t).await,
        }
    }

    /// Records a failure of the running job of `ctx` in this transaction (fenced by its lease).
    pub async fn fail_job(&mut self, ctx: &jobs::JobContext, error: &jobs::JobError) -> Result<(), jobs::JobError> {
        match self {
            Tx::Postgres(t) => ctx.fail_in_tx(t, error).await,
            Tx::Sqlite(t) => ctx.fail_in_tx(t, error).await,
        }
    }

    /// Checks that `ctx` still holds its job and locks the job row until this transaction ends.
    pub async fn check_job_lease(&mut self, ctx: &jobs::JobContext) -> Result<(), jobs::JobError> {
        match self {
            Tx::Postgres(t) => ctx.check_lease_in_tx(t).await,
            Tx::Sqlite(t) => ctx.check_lease_in_tx(t).await,
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.rollback().await,
            Tx::Sqlite(t) => t.rollback().await,
        }
    }
}

/// Opens a PostgreSQL pool, creating the database first when it does not exist (like EF Core's
/// `Database.Migrate()`).
pub async fn connect_postgres(pg: &PostgresTarget, max_connections: u32) -> Result<PgPool, DbError> {
    let options = || PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10));
    match options().connect_with(pg.connect_options()).await {
        Ok(pool) => Ok(pool),
        Err(e) if is_missing_database(&e) => {
            create_postgres_database(pg).await?;
            options()
                .connect_with(pg.connect_options())
                .await
                .map_err(|source| DbError::Connect { target: DatabaseTarget::Postgres(pg.clone()).to_string(), source })
        }
        Err(source) => Err(DbError::Connect { target: DatabaseTarget::Postgres(pg.clone()).to_string(), source }),
    }
}

/// `CREATE DATABASE` on the server of `pg` (through its `postgres` database); a database that
/// appeared meanwhile is fine.
pub async fn create_postgres_database(pg: &PostgresTarget) -> Result<(), DbError> {
    use sqlx::Connection;
    let admin = pg.with_database("postgres");
    let target = DatabaseTarget::Postgres(admin.clone()).to_string();
    let mut conn = sqlx::PgConnection::connect_with(&admin.connect_options())
        .await
        .map_err(|source| DbError::Connect { target: target.clone(), source })?;
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1").bind(&pg.database).fetch_optional(&mut conn).await?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", pg.database.replace('"', "\"\""));
        if let Err(source) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
            // 42P04 duplicate_database: someone else created it in between.
            let duplicate = source.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P04" || c == "23505");
            if !duplicate {
                return Err(DbError::Create { database: pg.database.clone(), target, source });
            }
        }
    }
    let _ = conn.close().await;
    Ok(())
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "3D000")
}

/// Opens an SQLite pool on `path` (WAL, foreign keys, a busy timeout), creating the file
/// readable and writable by the service's user alone (0600; SQLite gives its `-wal` and `-shm`
/// files the database file's mode).
pub async fn connect_sqlite(path: &Path) -> Result<SqlitePool, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    // An existing file keeps its mode; any error shows when SQLite opens it just below.
    let _ = crate::auth::signing_key::private_options().open(path);
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect { target: format!("sqlite:{}", path.display()), source })
}

/// Applies the isolated-tenant schema to a tenant's own PostgreSQL database.
pub async fn migrate_tenant_postgres(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations/tenant-postgres");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m.run(pool).await
}

/// Applies the isolated-tenant schema to a tenant's own SQLite file.
pub async fn migrate_tenant_sqlite(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations/tenant-sqlite");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m.run(pool).await
}

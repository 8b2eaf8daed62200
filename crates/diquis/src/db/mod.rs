//! The main database: PostgreSQL or SQLite behind one handle, connected and migrated at start.
//!
//! Queries are written once with `$1`-style parameters (SQLite accepts them too) and run on
//! either backend through [`with_db!`] / [`with_tx!`], which compile the same body for both.

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::config::{DatabaseTarget, PostgresTarget};

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

/// Runs `$body` with `$c` bound to the pool of either backend.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($c) => $body,
            $crate::db::Db::Sqlite($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the `&mut` connection of either backend's transaction.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
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

    /// Whether a trivial query succeeds (readiness).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, |p| sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
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
        with_db!(self, |p| p.close().await)
    }
}

impl Tx {
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

//! An isolated tenant's own database: named after the main one (`<main>-<tenant>`, as .NET
//! Diquis does), created if missing and migrated. Every step is safe to repeat.

use std::path::{Path, PathBuf};

use crate::config::{DatabaseTarget, PostgresTarget};
use crate::db;

/// Where an isolated tenant's database goes, given the main database.
pub fn database_for(main: &DatabaseTarget, data_directory: Option<&Path>, tenant_id: &str) -> DatabaseTarget {
    match main {
        DatabaseTarget::Postgres(pg) => DatabaseTarget::Postgres(pg.with_database(&format!("{}-{}", pg.database, tenant_id))),
        DatabaseTarget::Sqlite { path } => {
            let dir = data_directory
                .map(Path::to_path_buf)
                .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("diquis");
            DatabaseTarget::Sqlite { path: dir.join(format!("{stem}-{tenant_id}.db")) }
        }
    }
}

/// What the tenant row stores for its database: the PostgreSQL database name or the SQLite file
/// (never credentials).
pub fn stored_name(target: &DatabaseTarget) -> String {
    match target {
        DatabaseTarget::Postgres(pg) => pg.database.clone(),
        DatabaseTarget::Sqlite { path } => path.display().to_string(),
    }
}

/// Rebuilds the target from the stored name.
pub fn from_stored(main: &DatabaseTarget, stored: &str) -> DatabaseTarget {
    match main {
        DatabaseTarget::Postgres(pg) => DatabaseTarget::Postgres(pg.with_database(stored)),
        DatabaseTarget::Sqlite { .. } => DatabaseTarget::Sqlite { path: PathBuf::from(stored) },
    }
}

/// Why an isolated database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum IsolatedDbError {
    /// Creating or connecting failed.
    #[error("{0}")]
    Open(#[from] db::DbError),
    /// Migrating failed.
    #[error("migrating the tenant database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Writing the tenant's metadata failed.
    #[error("writing to the tenant database failed: {0}")]
    Write(#[from] sqlx::Error),
}

/// Creates (if missing) and migrates the tenant's own database, and records the tenant in it.
pub async fn prepare(target: &DatabaseTarget, tenant_id: &str) -> Result<(), IsolatedDbError> {
    let now = chrono::Utc::now();
    match target {
        DatabaseTarget::Postgres(pg) => {
            let pool = open_postgres(pg).await?;
            let result = async {
                db::migrate_tenant_postgres(&pool).await?;
                sqlx::query("INSERT INTO tenant_metadata (tenant_id, provisioned_on) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(tenant_id)
                    .bind(now)
                    .execute(&pool)
                    .await?;
                Ok::<_, IsolatedDbError>(())
            }
            .await;
            pool.close().await;
            result
        }
        DatabaseTarget::Sqlite { path } => {
            let pool = db::connect_sqlite(path).await?;
            let result = async {
                db::migrate_tenant_sqlite(&pool).await?;
                sqlx::query("INSERT INTO tenant_metadata (tenant_id, provisioned_on) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(tenant_id)
                    .bind(now)
                    .execute(&pool)
                    .await?;
                Ok::<_, IsolatedDbError>(())
            }
            .await;
            pool.close().await;
            result
        }
    }
}

async fn open_postgres(pg: &PostgresTarget) -> Result<sqlx::PgPool, db::DbError> {
    db::connect_postgres(pg, 2).await
}

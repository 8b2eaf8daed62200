//! An isolated tenant's own database: named after the main one (`<main>-<tenant>`, as .NET
//! Diquis does), created if missing and migrated. Every step is safe to repeat.
//!
//! The database must be new: a request whose name is the application's or the job storage's
//! database is refused ([`collision`]), and the job refuses a database that holds anything but
//! this tenant's own schema ([`IsolatedDbError::NotNew`]) without writing to it. A database the
//! tenant's earlier attempt created (empty, or with its schema) is continued.

use std::path::{Path, PathBuf};

use crate::config::{DatabaseTarget, PostgresTarget};
use crate::db;

/// Where an isolated tenant's database goes, given the main database.
pub fn database_for(main: &DatabaseTarget, data_directory: Option<&Path>, tenant_id: &str) -> DatabaseTarget {
    match main {
        DatabaseTarget::Postgres(pg) => DatabaseTarget::Postgres(pg.with_database(&format!("{}-{}", pg.database, tenant_id))),
        DatabaseTarget::Sqlite { path } => {
            let dir = data_directory.map(Path::to_path_buf).unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
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

/// Whether `candidate` is the application's or the job storage's database: the name (or the
/// database it names) that makes it unusable as a new tenant database, if so.
pub fn collision(candidate: &DatabaseTarget, main: &DatabaseTarget, job_storage: &DatabaseTarget) -> Option<&'static str> {
    let same = |other: &DatabaseTarget| match (candidate, other) {
        (DatabaseTarget::Postgres(a), DatabaseTarget::Postgres(b)) => {
            a.database == b.database && a.port == b.port && a.host.eq_ignore_ascii_case(&b.host)
        }
        (DatabaseTarget::Sqlite { path: a }, DatabaseTarget::Sqlite { path: b }) => {
            let full = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            full(a) == full(b)
        }
        _ => false,
    };
    if same(main) {
        Some("the application's database (ConnectionStrings:DefaultConnection)")
    } else if same(job_storage) {
        Some("the job storage's database (ConnectionStrings:HangfireConnection)")
    } else {
        None
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
    /// The database exists and holds something else than this tenant's schema.
    #[error("the database exists already and is not new: {0}; an isolated tenant database must be a new one")]
    NotNew(String),
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
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                )
                .fetch_all(&pool)
                .await?;
                let tables: Vec<String> = tables.into_iter().map(|t| t.strip_prefix("public.").map(str::to_string).unwrap_or(t)).collect();
                let owners: Vec<String> = if tables.iter().any(|t| t == "tenant_metadata") {
                    sqlx::query_scalar("SELECT tenant_id FROM tenant_metadata").fetch_all(&pool).await?
                } else {
                    Vec::new()
                };
                check_new_or_own(&tables, &owners, tenant_id)?;
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
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")
                        .fetch_all(&pool)
                        .await?;
                let owners: Vec<String> = if tables.iter().any(|t| t == "tenant_metadata") {
                    sqlx::query_scalar("SELECT tenant_id FROM tenant_metadata").fetch_all(&pool).await?
                } else {
                    Vec::new()
                };
                check_new_or_own(&tables, &owners, tenant_id)?;
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

/// The tables of an isolated tenant database (its schema and the migrations' record).
const TENANT_TABLES: &[&str] = &["tenant_metadata", "_diquis_migrations"];

/// Accepts a database with no tables, or with only the tenant schema recorded for `tenant_id`
/// alone (an earlier attempt of this tenant); refuses anything else, naming what is there.
fn check_new_or_own(tables: &[String], owners: &[String], tenant_id: &str) -> Result<(), IsolatedDbError> {
    let foreign: Vec<&str> = tables.iter().map(String::as_str).filter(|t| !TENANT_TABLES.contains(t)).collect();
    if !foreign.is_empty() {
        let shown = foreign.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
        return Err(IsolatedDbError::NotNew(format!("it holds other tables ({shown}{more})")));
    }
    if let Some(other) = owners.iter().find(|o| o.as_str() != tenant_id) {
        return Err(IsolatedDbError::NotNew(format!("it belongs to tenant '{other}'")));
    }
    Ok(())
}

async fn open_postgres(pg: &PostgresTarget) -> Result<sqlx::PgPool, db::DbError> {
    db::connect_postgres(pg, 2).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::connection_string::parse_database;

    #[test]
    fn collisions_with_the_application_and_job_databases() {
        let main = parse_database("Host=db;Port=5432;Database=diquis;Username=u").unwrap();
        let jobs = parse_database("Host=DB;Port=5432;Database=diquis-jobs;Username=other").unwrap();
        let for_jobs = database_for(&main, None, "jobs");
        assert!(collision(&for_jobs, &main, &jobs).unwrap().contains("HangfireConnection"));
        assert!(collision(&database_for(&main, None, "acme"), &main, &jobs).is_none());
        assert!(collision(&main, &main, &jobs).unwrap().contains("DefaultConnection"));
        let sqlite = DatabaseTarget::Sqlite { path: "data/diquis.db".into() };
        let sqlite_jobs = DatabaseTarget::Sqlite { path: "data/./diquis-jobs.db".into() };
        assert!(collision(&database_for(&sqlite, None, "jobs"), &sqlite, &sqlite_jobs).is_some());
    }

    #[test]
    fn only_an_empty_or_own_database_is_continued() {
        let own = ["_diquis_migrations".to_string(), "tenant_metadata".to_string()];
        assert!(check_new_or_own(&[], &[], "acme").is_ok());
        assert!(check_new_or_own(&own, &["acme".into()], "acme").is_ok());
        let e = check_new_or_own(&own, &["root".into()], "acme").unwrap_err().to_string();
        assert!(e.contains("tenant 'root'"), "{e}");
        let e = check_new_or_own(&["jobs".into(), "job_logs".into()], &[], "acme").unwrap_err().to_string();
        assert!(e.contains("not new") && e.contains("jobs, job_logs"), "{e}");
    }
}

//! A scratch database per test, on PostgreSQL or SQLite, and [`both_databases!`](crate::both_databases)
//! that runs a test on each.

use std::future::Future;
use std::path::PathBuf;

use sqlx::Connection;

/// The PostgreSQL server of the tests: `DIQUIS_TEST_POSTGRES` (a `postgres://` URL without a
/// database), by default the machine's `postgres://postgres@127.0.0.1:5432` (trust auth).
pub fn postgres_server() -> String {
    std::env::var("DIQUIS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()).trim_end_matches('/').to_string()
}

/// The URL of database `name` on [`postgres_server`].
pub fn postgres_url(name: &str) -> String {
    format!("{}/{name}", postgres_server())
}

/// The name of a scratch SQLite database file in its directory. Named after the application
/// because Diquis derives the files of isolated tenant databases from it (`diquis-{tenant}.db`).
pub const SQLITE_FILE: &str = "diquis.db";

/// A database for one test, removed when the value is dropped (also when the test panics):
/// PostgreSQL databases are dropped, together with every database whose name is this one's
/// followed by `-` (what Diquis makes for isolated tenants), and SQLite directories deleted.
#[derive(Debug)]
pub enum ScratchDb {
    /// A database of this name on [`postgres_server`]; [`ScratchDb::postgres`] only picks the
    /// name, [`ScratchDb::create`] creates it.
    Postgres(String),
    /// A temporary directory for the database file [`SQLITE_FILE`] (created by whoever opens it)
    /// and any other file a test puts beside it.
    Sqlite(tempfile::TempDir),
}

impl ScratchDb {
    /// A fresh PostgreSQL database name, not created yet: for code under test that creates its
    /// own database (Diquis does at start). Call [`ScratchDb::create`] for one that exists.
    pub fn postgres() -> Self {
        ScratchDb::Postgres(format!("diquis_test_{:016x}", rand::random::<u64>()))
    }

    /// A fresh SQLite database in a new temporary directory.
    pub fn sqlite() -> Self {
        ScratchDb::Sqlite(tempfile::Builder::new().prefix("diquis-test-").tempdir().expect("a temporary directory"))
    }

    /// Creates the PostgreSQL database (an SQLite file is created by whoever opens it).
    pub async fn create(&self) {
        if let ScratchDb::Postgres(name) = self {
            let mut admin =
                sqlx::PgConnection::connect(&postgres_url("postgres")).await.expect("connect to the PostgreSQL server of the tests");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await
                .expect("create the test database");
        }
    }

    /// The connection string: a `postgres://` URL, or the SQLite file's path.
    pub fn url(&self) -> String {
        match self {
            ScratchDb::Postgres(name) => postgres_url(name),
            ScratchDb::Sqlite(_) => self.sqlite_file().expect("an SQLite database").display().to_string(),
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self, ScratchDb::Postgres(_))
    }

    /// The SQLite database file's path, if this is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self {
            ScratchDb::Sqlite(dir) => Some(dir.path().join(SQLITE_FILE)),
            ScratchDb::Postgres(_) => None,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let ScratchDb::Postgres(name) = self else { return };
        let name = std::mem::take(name);
        // Drop cannot await, and blocking on the test's own runtime from inside it panics: a
        // private runtime on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(drop_postgres(&name));
        })
        .join();
    }
}

/// Drops database `name` and its `name-…` companions; a server that cannot be reached leaves
/// them (the test has failed already, or will say so).
async fn drop_postgres(name: &str) {
    let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_url("postgres")).await else { return };
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname = $1 OR starts_with(datname, $2)")
        .bind(name)
        .bind(format!("{name}-"))
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
    for n in names {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)"))).execute(&mut admin).await;
    }
}

/// Runs `test` on `db`; what [`both_databases!`](crate::both_databases) expands to, a function so
/// that the closure's argument type is inferred.
#[doc(hidden)]
pub async fn run<F, Fut>(db: ScratchDb, test: F)
where
    F: FnOnce(ScratchDb) -> Fut,
    Fut: Future<Output = ()>,
{
    test(db).await
}

/// Defines `mod $name { postgres, sqlite }`: two tests running the same body on a fresh,
/// existing PostgreSQL database ([`ScratchDb::create`]d) and on a fresh SQLite directory. The
/// module sees the calling module's items; the calling crate needs tokio (`#[tokio::test]`).
///
/// * `both_databases!(name, |db: ScratchDb| async move { ... })`: the body takes the database.
/// * `both_databases!(name)`: the body is the calling module's `async fn name(db: &ScratchDb)`.
///
/// The database is dropped when the body's future ends.
#[macro_export]
macro_rules! both_databases {
    ($name:ident) => {
        $crate::both_databases!($name, |db: $crate::ScratchDb| async move { super::$name(&db).await });
    };
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::ScratchDb::postgres();
                db.create().await;
                $crate::run(db, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::run($crate::ScratchDb::sqlite(), $body).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(name: &str) -> bool {
        let mut admin = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1").bind(name).fetch_optional(&mut admin).await.unwrap();
        found.is_some()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_database_and_its_companions_are_dropped_with_the_value() {
        let db = ScratchDb::postgres();
        let ScratchDb::Postgres(name) = &db else { unreachable!() };
        let name = name.clone();
        assert!(!exists(&name).await, "only a name until created");
        db.create().await;
        assert!(exists(&name).await);
        assert_eq!(db.url(), postgres_url(&name));
        let companion = format!("{name}-acme");
        let mut admin = sqlx::PgConnection::connect(&postgres_url("postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{companion}\""))).execute(&mut admin).await.unwrap();
        // An open connection does not keep it alive.
        let _open = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        drop(db);
        assert!(!exists(&name).await && !exists(&companion).await, "dropped");
    }

    #[test]
    fn an_sqlite_directory_is_deleted_with_the_value() {
        let db = ScratchDb::sqlite();
        let file = db.sqlite_file().unwrap();
        assert_eq!(db.url(), file.display().to_string());
        std::fs::write(&file, b"").unwrap();
        drop(db);
        assert!(!file.parent().unwrap().exists());
    }

    crate::both_databases!(the_pair_runs_on_each_database, |db: ScratchDb| async move {
        if db.is_postgres() {
            let ScratchDb::Postgres(name) = &db else { unreachable!() };
            assert!(exists(name).await, "created before the body");
        } else {
            assert!(db.sqlite_file().unwrap().parent().unwrap().is_dir());
        }
    });

    async fn by_reference(db: &ScratchDb) {
        assert!(!db.url().is_empty());
    }

    crate::both_databases!(by_reference);
}

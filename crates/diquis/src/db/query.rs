//! Queries written once for both backends: [`Db::query`](super::Db::query) and
//! [`Tx::query`](super::Tx::query) (and their `query_as` / `query_scalar`) pick the backend
//! when the query is made, bind values either backend encodes, and run on the pool or on the
//! transaction's connection. This is the one place that matches on the backend for them.

use std::marker::PhantomData;

use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Encode, FromRow, Postgres, Sqlite, Type};

type PgQuery = sqlx::query::Query<'static, Postgres, PgArguments>;
type SqliteQuery = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Where a query runs, with the query built for that backend.
enum Run<'c> {
    PgPool(&'c PgPool, PgQuery),
    PgConn(&'c mut PgConnection, PgQuery),
    SqlitePool(&'c SqlitePool, SqliteQuery),
    SqliteConn(&'c mut SqliteConnection, SqliteQuery),
}

/// One fetched row of either backend.
enum AnyRow {
    Pg(PgRow),
    Sqlite(SqliteRow),
}

/// A row type both backends decode (every `#[derive(sqlx::FromRow)]` type and tuple of
/// decodable values).
pub trait FromBothRows: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}
impl<T> FromBothRows for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

impl AnyRow {
    fn decode<O: FromBothRows>(&self) -> Result<O, sqlx::Error> {
        match self {
            AnyRow::Pg(row) => O::from_row(row),
            AnyRow::Sqlite(row) => O::from_row(row),
        }
    }
}

/// The outcome of [`Query::execute`].
#[derive(Debug, Clone, Copy)]
pub struct QueryResult {
    rows_affected: u64,
}

impl QueryResult {
    /// How many rows the statement inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// A statement on the main database, ready to bind and run (see [`Db::query`](super::Db::query)).
#[must_use = "a query does nothing until it is executed"]
pub struct Query<'c> {
    run: Run<'c>,
}

impl<'c> Query<'c> {
    pub(super) fn on_pg_pool(pool: &'c PgPool, sql: impl sqlx::SqlSafeStr) -> Self {
        Query { run: Run::PgPool(pool, sqlx::query(sql)) }
    }

    pub(super) fn on_pg_conn(conn: &'c mut PgConnection, sql: impl sqlx::SqlSafeStr) -> Self {
        Query { run: Run::PgConn(conn, sqlx::query(sql)) }
    }

    pub(super) fn on_sqlite_pool(pool: &'c SqlitePool, sql: impl sqlx::SqlSafeStr) -> Self {
        Query { run: Run::SqlitePool(pool, sqlx::query(sql)) }
    }

    pub(super) fn on_sqlite_conn(conn: &'c mut SqliteConnection, sql: impl sqlx::SqlSafeStr) -> Self {
        Query { run: Run::SqliteConn(conn, sqlx::query(sql)) }
    }

    /// Binds the next `$n` parameter.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Postgres> + Type<Postgres> + Encode<'t, Sqlite> + Type<Sqlite>,
    {
        let run = match self.run {
            Run::PgPool(e, q) => Run::PgPool(e, q.bind(value)),
            Run::PgConn(e, q) => Run::PgConn(e, q.bind(value)),
            Run::SqlitePool(e, q) => Run::SqlitePool(e, q.bind(value)),
            Run::SqliteConn(e, q) => Run::SqliteConn(e, q.bind(value)),
        };
        Query { run }
    }

    /// Runs the statement.
    pub async fn execute(self) -> Result<QueryResult, sqlx::Error> {
        let rows_affected = match self.run {
            Run::PgPool(e, q) => q.execute(e).await?.rows_affected(),
            Run::PgConn(e, q) => q.execute(e).await?.rows_affected(),
            Run::SqlitePool(e, q) => q.execute(e).await?.rows_affected(),
            Run::SqliteConn(e, q) => q.execute(e).await?.rows_affected(),
        };
        Ok(QueryResult { rows_affected })
    }

    async fn fetch_all(self) -> Result<Vec<AnyRow>, sqlx::Error> {
        Ok(match self.run {
            Run::PgPool(e, q) => q.fetch_all(e).await?.into_iter().map(AnyRow::Pg).collect(),
            Run::PgConn(e, q) => q.fetch_all(e).await?.into_iter().map(AnyRow::Pg).collect(),
            Run::SqlitePool(e, q) => q.fetch_all(e).await?.into_iter().map(AnyRow::Sqlite).collect(),
            Run::SqliteConn(e, q) => q.fetch_all(e).await?.into_iter().map(AnyRow::Sqlite).collect(),
        })
    }

    async fn fetch_one(self) -> Result<AnyRow, sqlx::Error> {
        Ok(match self.run {
            Run::PgPool(e, q) => AnyRow::Pg(q.fetch_one(e).await?),
            Run::PgConn(e, q) => AnyRow::Pg(q.fetch_one(e).await?),
            Run::SqlitePool(e, q) => AnyRow::Sqlite(q.fetch_one(e).await?),
            Run::SqliteConn(e, q) => AnyRow::Sqlite(q.fetch_one(e).await?),
        })
    }

    async fn fetch_optional(self) -> Result<Option<AnyRow>, sqlx::Error> {
        Ok(match self.run {
            Run::PgPool(e, q) => q.fetch_optional(e).await?.map(AnyRow::Pg),
            Run::PgConn(e, q) => q.fetch_optional(e).await?.map(AnyRow::Pg),
            Run::SqlitePool(e, q) => q.fetch_optional(e).await?.map(AnyRow::Sqlite),
            Run::SqliteConn(e, q) => q.fetch_optional(e).await?.map(AnyRow::Sqlite),
        })
    }
}

/// A query whose rows decode into `O` (see [`Db::query_as`](super::Db::query_as)).
#[must_use = "a query does nothing until it is fetched"]
pub struct QueryAs<'c, O> {
    query: Query<'c>,
    output: PhantomData<fn() -> O>,
}

impl<'c, O: FromBothRows> QueryAs<'c, O> {
    pub(super) fn new(query: Query<'c>) -> Self {
        QueryAs { query, output: PhantomData }
    }

    /// Binds the next `$n` parameter.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Postgres> + Type<Postgres> + Encode<'t, Sqlite> + Type<Sqlite>,
    {
        QueryAs { query: self.query.bind(value), output: PhantomData }
    }

    /// Every row.
    pub async fn fetch_all(self) -> Result<Vec<O>, sqlx::Error> {
        self.query.fetch_all().await?.iter().map(AnyRow::decode).collect()
    }

    /// The first row; [`sqlx::Error::RowNotFound`] when there is none.
    pub async fn fetch_one(self) -> Result<O, sqlx::Error> {
        self.query.fetch_one().await?.decode()
    }

    /// The first row, if any.
    pub async fn fetch_optional(self) -> Result<Option<O>, sqlx::Error> {
        self.query.fetch_optional().await?.map(|row| row.decode()).transpose()
    }
}

/// A query whose rows are one value of type `O` (see [`Db::query_scalar`](super::Db::query_scalar)).
#[must_use = "a query does nothing until it is fetched"]
pub struct QueryScalar<'c, O> {
    inner: QueryAs<'c, (O,)>,
}

impl<'c, O> QueryScalar<'c, O>
where
    (O,): FromBothRows,
{
    pub(super) fn new(query: Query<'c>) -> Self {
        QueryScalar { inner: QueryAs::new(query) }
    }

    /// Binds the next `$n` parameter.
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: Encode<'t, Postgres> + Type<Postgres> + Encode<'t, Sqlite> + Type<Sqlite>,
    {
        QueryScalar { inner: self.inner.bind(value) }
    }

    /// Every row's value.
    pub async fn fetch_all(self) -> Result<Vec<O>, sqlx::Error> {
        Ok(self.inner.fetch_all().await?.into_iter().map(|(v,)| v).collect())
    }

    /// The first row's value; [`sqlx::Error::RowNotFound`] when there is none.
    pub async fn fetch_one(self) -> Result<O, sqlx::Error> {
        Ok(self.inner.fetch_one().await?.0)
    }

    /// The first row's value, if any.
    pub async fn fetch_optional(self) -> Result<Option<O>, sqlx::Error> {
        Ok(self.inner.fetch_optional().await?.map(|(v,)| v))
    }
}

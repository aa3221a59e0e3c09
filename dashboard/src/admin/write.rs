//! The admin API's writes, through `--admin-database-url` (a role limited to
//! incidents and maintenance windows). One SQL text serves both databases,
//! as in [`crate::read`]: instants go in as integer milliseconds.

use sqlx::{FromRow, PgPool, Postgres, Sqlite, SqlitePool, postgres::PgRow, sqlite::SqliteRow};

/// A writing connection to the store.
#[derive(Clone, Debug)]
pub enum Writer {
    /// PostgreSQL, through the admin role.
    Pg(PgPool),
    /// The SQLite file of standalone mode.
    Sqlite(SqlitePool),
}

/// One value bound to a statement.
#[derive(Clone, Debug)]
pub enum Arg {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Text or NULL.
    MaybeText(Option<String>),
}

/// A write transaction on either database.
#[derive(Debug)]
pub enum Tx {
    /// PostgreSQL.
    Pg(sqlx::Transaction<'static, Postgres>),
    /// SQLite, begun `IMMEDIATE` (it holds the write lock from the start).
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::MaybeText(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

impl Writer {
    /// A lazily connecting writer over `url` (`postgres://` or `sqlite://`).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Writer, crate::read::UrlError> {
        use crate::read::{Pool, lazy_pool};
        Ok(
            match lazy_pool(url, max_connections, "statuspage-dashboard-admin", false)? {
                Pool::Pg(p) => Writer::Pg(p),
                Pool::Sqlite(p) => Writer::Sqlite(p),
            },
        )
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Writer::Pg(p) => Tx::Pg(p.begin().await?),
            Writer::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }
}

/// `sql` marked as the admin's. sqlx caches prepared statements by their
/// text, and where ingest shares the pool (standalone) a statement of the
/// same text that ingest prepared with int4 parameters would be reused for
/// these int8 ones.
fn own(sql: &str) -> String {
    format!("/* admin */ {sql}")
}

impl Tx {
    /// The instant in parameter `n` (integer ms).
    pub fn at(&self, n: u8) -> String {
        match self {
            Tx::Pg(_) => format!("to_timestamp(${n}::int8 / 1000.0)"),
            Tx::Sqlite(_) => format!("?{n}"),
        }
    }

    /// Parameter `n`.
    pub fn p(&self, n: u8) -> String {
        match self {
            Tx::Pg(_) => format!("${n}"),
            Tx::Sqlite(_) => format!("?{n}"),
        }
    }

    /// `col` as integer ms.
    pub fn ms(&self, col: &str) -> String {
        match self {
            Tx::Pg(_) => format!("(extract(epoch FROM {col}) * 1000)::int8"),
            Tx::Sqlite(_) => col.to_string(),
        }
    }

    /// `col` as a 64-bit integer.
    pub fn int(&self, col: &str) -> String {
        match self {
            Tx::Pg(_) => format!("({col})::int8"),
            Tx::Sqlite(_) => format!("({col})"),
        }
    }

    /// A list of text (a JSON array in text) for an insert.
    pub fn list(&self, n: u8) -> String {
        match self {
            Tx::Pg(_) => format!("ARRAY(SELECT json_array_elements_text(${n}::json))"),
            Tx::Sqlite(_) => format!("?{n}"),
        }
    }

    /// A list column as a JSON array in text.
    pub fn json_list(&self, col: &str) -> String {
        match self {
            Tx::Pg(_) => format!("array_to_json({col})::text"),
            Tx::Sqlite(_) => col.to_string(),
        }
    }

    /// `FOR UPDATE` where the database has row locks.
    pub fn for_update(&self) -> &'static str {
        match self {
            Tx::Pg(_) => " FOR UPDATE",
            Tx::Sqlite(_) => "",
        }
    }

    /// Runs a statement; returns the rows it touched.
    pub async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        let sql = own(sql);
        Ok(match self {
            Tx::Pg(tx) => bind_all!(sqlx::query(&sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Sqlite(tx) => bind_all!(sqlx::query(&sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Rows of a query.
    pub async fn rows<T>(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = own(sql);
        Ok(match self {
            Tx::Pg(tx) => {
                bind_all!(sqlx::query_as(&sql), args)
                    .fetch_all(&mut **tx)
                    .await?
            }
            Tx::Sqlite(tx) => {
                bind_all!(sqlx::query_as(&sql), args)
                    .fetch_all(&mut **tx)
                    .await?
            }
        })
    }

    /// Announces a change to every dashboard replica (PostgreSQL `NOTIFY`;
    /// in one process the caller empties its own cache).
    pub async fn announce(&mut self) -> Result<(), sqlx::Error> {
        if let Tx::Pg(tx) = self {
            sqlx::query("SELECT pg_notify('statuspage_changes', '')")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

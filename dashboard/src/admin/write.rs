//! The admin API's writes, through `--admin-database-url` (a role limited to
//! incidents and maintenance windows). One SQL text serves both databases,
//! as in [`crate::read`]: instants go in as integer milliseconds.

use ingest::store::sql::Pool;
pub use ingest::store::sql::{Arg, Tx};
use sqlx::{PgPool, SqlitePool};

/// A writing connection to the store.
#[derive(Clone, Debug)]
pub enum Writer {
    /// PostgreSQL, through the admin role.
    Pg(PgPool),
    /// The SQLite file of standalone mode.
    Sqlite(SqlitePool),
}

impl Writer {
    /// A lazily connecting writer over `url` (`postgres://` or `sqlite://`).
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        limits: ingest::store::sql::Limits,
    ) -> Result<Writer, crate::read::UrlError> {
        use crate::read::{Pool, lazy_pool};
        let app = "statuspage-dashboard-admin";
        Ok(match lazy_pool(url, max_connections, app, false, limits)? {
            Pool::Pg(p) => Writer::Pg(p),
            Pool::Sqlite(p) => Writer::Sqlite(p),
        })
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Writer::Pg(p) => Pool::Pg(p.clone()),
            Writer::Sqlite(p) => Pool::Sqlite(p.clone()),
        }
        .begin()
        .await
    }
}

/// Announces a change to every dashboard replica (PostgreSQL `NOTIFY`; in
/// one process the caller empties its own cache).
pub async fn announce(tx: &mut Tx) -> Result<(), sqlx::Error> {
    if let Tx::Pg(_) = tx {
        tx.exec("SELECT pg_notify('statuspage_changes', '')", &[])
            .await?;
    }
    Ok(())
}

//! The SQLite store: the embedded backend of standalone mode. The same flow
//! as PostgreSQL's ([`super::flow`]) over [`SqliteOps`]; WAL mode, a busy
//! timeout, and write transactions that take the write lock at once
//! (`BEGIN IMMEDIATE`): see `sqlite_ops.rs` for the locking story.

use super::sqlite_ops::SqliteOps;
use super::{Dropped, StoreError, Stored, flow};
use crate::rollup::Level;
use crate::state::Millis;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// The embedded SQLite migrations.
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const DAY_MS: Millis = 86_400_000;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    pub(super) changes: tokio::sync::broadcast::Sender<Vec<String>>,
    /// The deadlines (the client-side one applies; the rest are PostgreSQL's).
    pub(super) limits: super::sql::Limits,
    /// Transactions run again (see [`super::retrying`]).
    pub(super) retries: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite://PATH` URL,
    /// in WAL mode with a 5 s busy timeout.
    pub fn connect_lazy(url: &str, limits: super::sql::Limits) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let (changes, _) = tokio::sync::broadcast::channel(256);
        Ok(SqliteStore {
            pool,
            changes,
            limits,
            retries: Default::default(),
        })
    }

    /// The pool, for read-only queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Receives the ids of the checks whose status or incident changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Vec<String>> {
        self.changes.subscribe()
    }

    /// Applies the migrations (a second run is a no-op).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        SQLITE_MIGRATIONS.run(&self.pool).await?;
        Ok(())
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Stores several screened messages in one transaction: all or none.
    pub async fn store_messages(
        &self,
        messages: &[flow::Message<'_>],
        now: Millis,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.begin().await?;
        let stored = flow::write_messages(&mut SqliteOps(&mut tx), messages, now).await?;
        tx.commit().await?;
        if !stored.changed.is_empty() {
            let _ = self.changes.send(stored.changed.clone());
        }
        Ok(stored)
    }

    /// Deletes raw results of the days past `raw_retention` (whole UTC days,
    /// as PostgreSQL drops partitions) in batches, and old rollups.
    pub async fn retain(
        &self,
        now: Millis,
        raw_retention_ms: Millis,
    ) -> Result<Dropped, StoreError> {
        let before = (now - raw_retention_ms).div_euclid(DAY_MS) * DAY_MS;
        let mut out = Dropped::default();
        loop {
            // Batches keep each write transaction (and the writer lock) short.
            let gone = sqlx::query(
                "DELETE FROM results WHERE (check_id, scheduled_at, agent_id) IN
                   (SELECT check_id, scheduled_at, agent_id FROM results WHERE scheduled_at < ?1 LIMIT 5000)",
            )
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
            out.results += gone;
            if gone < 5000 {
                break;
            }
        }
        for level in Level::ALL {
            if let Some(keep) = level.retention_ms() {
                out.rollups += sqlx::query("DELETE FROM rollups WHERE level = ?1 AND bucket < ?2")
                    .bind(level.code())
                    .bind(now - keep)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            }
        }
        Ok(out)
    }
}

//! The PostgreSQL store: migrations, the per-message transaction, the
//! per-check recompute, catalog sync and the leader's ticks.
//!
//! Queries are checked at run time (`query`/`query_as`), since issue 6 adds
//! SQLite behind the same operations.

/// `transaction!(store, tx => body)`: `body` (an expression with `tx`, a
/// `&mut sql::Tx`, in scope; `?` ends it with an error) in a transaction of
/// `store.begin()`, committed when the body gives its value, and run again
/// from the start after a deadlock, a serialization failure or a lock wait
/// past `lock_timeout` (see [`retrying`]). A future, to await.
macro_rules! transaction {
    ($store:expr, $tx:ident => $body:expr) => {
        $crate::store::retrying($store.retry_count(), || async {
            let mut open = $store.begin().await?;
            let $tx = &mut open;
            let out = $body;
            open.commit().await?;
            Ok(out)
        })
    };
}

mod flow;
mod incidents;
mod lease;
#[cfg(test)]
mod mem;
mod ops;
pub mod outbox;
mod pg_columns;
mod pg_ops;
mod pg_rollups;
mod reads;
mod retention;
mod rows;
pub mod sql;
mod sqlite;
mod sqlite_ops;
pub mod subscriptions;
mod sync;
mod url;

pub use flow::Message;
pub use lease::LEASE;
pub use retention::Dropped;
pub use rows::slo as stored_slo;
pub use sqlite::{SQLITE_MIGRATIONS, SqliteStore};
pub use sync::{CheckUp, FOLD_BUDGET, FoldReport, Pruned, TickReport};
pub use url::DatabaseUrl;

use crate::state::{Millis, Thresholds};
use crate::timeline::Rules;
use chrono::{DateTime, Utc};
use config::defaults::{Locations, Quorum};
use config::wire::{AgentInfo, ProbeResult, Timestamp};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// The embedded PostgreSQL migrations.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key under which partitions are made (a transaction
/// lock: replicas starting together make them once); an arbitrary
/// constant, "statuspg" in ASCII.
pub const PARTITION_LOCK: i64 = 0x7374_6174_7573_7067;

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The underlying errors are kept out of `source()`: their text is already
    // in the message, and an error chain would print it twice.
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// A migration failed.
    #[error("migrations: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The database URL is not one this version can use.
    #[error("expected a postgres:// or sqlite:// database URL, found one starting {0:?}")]
    Url(String),
    /// The database holds something this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Rows read under the check locks changed before the write's end (the
    /// write runs again, upserting).
    #[error("{0} changed during the write")]
    Raced(String),
    /// The database did not answer within the client-side deadline.
    #[error("database: {0}")]
    Deadline(sql::Deadline),
    /// This replica's lead lapsed: leader work it began is not done.
    #[error("the lead lapsed")]
    NotLeader,
}

impl From<sql::Deadline> for StoreError {
    fn from(e: sql::Deadline) -> Self {
        StoreError::Deadline(e)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

impl StoreError {
    /// A deadlock, a serialization failure or a lock wait past
    /// `lock_timeout`: run the transaction again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.sql_state().as_deref(),
            Some("40001" | "40P01" | "55P03")
        )
    }

    /// A row with this key was there already, or one read was gone: the
    /// write must run again trusting nothing it read.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Raced(_)) || self.sql_state().as_deref() == Some("23505")
    }

    /// Trying again later may well succeed: the database is unavailable, or
    /// the write lost out on locks or time (a lock wait past `lock_timeout`,
    /// a statement past `statement_timeout`, a deadlock or serialization
    /// failure its retries did not get past, SQLite's busy timeout, a
    /// server short of resources). Such a message comes back whole; only a
    /// refusal that is about the data splits it into results to store alone.
    pub fn is_transient(&self) -> bool {
        if self.is_unavailable() || self.is_retryable() {
            return true;
        }
        let Some(code) = self.sql_state() else {
            return false;
        };
        // SQLite's codes are numbers: BUSY (5) and LOCKED (6), with their
        // extended forms in the high bits.
        if let Ok(n) = code.parse::<u32>() {
            return matches!(n & 0xff, 5 | 6);
        }
        code == "57014" || code.starts_with("53") || code.starts_with("58")
    }

    /// The database is unreachable or not accepting work: stop receiving.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Deadline(_) => true,
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => self
                .sql_state()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        }
    }

    fn sql_state(&self) -> Option<String> {
        match self {
            StoreError::Db(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            _ => None,
        }
    }
}

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Every committed status or incident change, by check id: the in-process
    /// signal standalone's dashboard listens to (distributed dashboards use
    /// PostgreSQL `NOTIFY statuspage_changes`).
    changes: tokio::sync::broadcast::Sender<Vec<String>>,
    /// Held for each write of results: this process's writes wait for each
    /// other here rather than on row locks inside PostgreSQL (see
    /// [`PgStore::store_messages`]).
    writing: Arc<tokio::sync::Mutex<()>>,
    /// The database deadlines its pool was made with.
    limits: sql::Limits,
    /// The lease holder fencing this store's transactions (see [`lease`]).
    lead: Option<Arc<str>>,
    /// Transactions run again (see [`retrying`]).
    retries: Arc<std::sync::atomic::AtomicU64>,
}

impl PgStore {
    /// A lazily connecting pool: ingest starts (and reports not ready) while
    /// the database is down.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        limits: sql::Limits,
    ) -> Result<PgStore, StoreError> {
        let pool = sql::pg_pool(url, max_connections, "statuspage-ingest", limits)?;
        Ok(PgStore::from_pool(pool, limits))
    }

    /// A store over an existing pool (made with `limits`).
    pub fn from_pool(pool: PgPool, limits: sql::Limits) -> PgStore {
        let (changes, _) = tokio::sync::broadcast::channel(256);
        PgStore {
            pool,
            changes,
            writing: Arc::default(),
            limits,
            lead: None,
            retries: Arc::default(),
        }
    }

    /// Receives the ids of the checks whose status or incident changed, after
    /// each commit that changed any.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Vec<String>> {
        self.changes.subscribe()
    }

    /// The pool, for read-only queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations (sqlx holds an advisory lock meanwhile, so
    /// replicas starting together migrate once), through a pool of its own
    /// without `statement_timeout`: a migration may rewrite a big table.
    /// `lock_timeout` stays, so it never queues every writer behind it.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // A later `-c` of the same setting wins over the pool's.
        let options = (*self.pool.connect_options())
            .clone()
            .options([("statement_timeout", "0")]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.limits.deadline.min(Duration::from_secs(5)))
            .connect_lazy_with(options);
        let migrated = MIGRATIONS.run(&pool).await;
        pool.close().await;
        migrated?;
        Ok(())
    }
}

/// The stored code of a reason: its index in the documented list, or 255
/// for one from a newer version.
pub(crate) fn reason_code(r: &config::wire::Reason) -> i16 {
    config::wire::Reason::KNOWN
        .iter()
        .position(|k| *k == r.as_str())
        .map_or(255, |i| i as i16)
}

/// The text of a stored reason code.
pub(crate) fn reason_text(code: i16) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| config::wire::Reason::KNOWN.get(i))
        .copied()
        .unwrap_or("other")
}

/// Each location's newest sample, as stored in `checks.latest`: 20 bytes a
/// location (agent i32, at i64, state u8, interval ms i32, assigned u16,
/// reason code u8), little-endian.
pub fn encode_latest(samples: &[crate::status::Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 * samples.len());
    for s in samples {
        out.extend_from_slice(&(s.pair as i32).to_le_bytes());
        out.extend_from_slice(&s.at.to_le_bytes());
        out.push(s.state.code() as u8);
        out.extend_from_slice(&(s.interval_ms.clamp(0, i64::from(i32::MAX)) as i32).to_le_bytes());
        out.extend_from_slice(&(s.assigned.min(u32::from(u16::MAX)) as u16).to_le_bytes());
        let code = config::wire::Reason::KNOWN
            .iter()
            .position(|k| *k == s.reason)
            .unwrap_or(255);
        out.push(code as u8);
    }
    out
}

/// The inverse of [`encode_latest`]; `None` for bytes not of that shape.
pub fn decode_latest(bytes: &[u8]) -> Option<Vec<crate::status::Sample>> {
    if !bytes.len().is_multiple_of(20) {
        return None;
    }
    bytes
        .chunks_exact(20)
        .map(|c| {
            Some(crate::status::Sample {
                pair: i64::from(i32::from_le_bytes(c[0..4].try_into().ok()?)),
                at: i64::from_le_bytes(c[4..12].try_into().ok()?),
                state: crate::state::PairState::from_code(i16::from(c[12]))?,
                interval_ms: i64::from(i32::from_le_bytes(c[13..17].try_into().ok()?)),
                assigned: u32::from(u16::from_le_bytes(c[17..19].try_into().ok()?)),
                reason: reason_text(i16::from(c[19])),
            })
        })
        .collect()
}

/// The author of everything ingest writes on incidents.
pub const AUTHOR: &str = "statuspage";

/// What one message did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Rows inserted.
    pub inserted: u64,
    /// Results already stored (a redelivered or retried message).
    pub duplicate: u64,
    /// Inserted, but too late to move state (more than R newer ones of its pair).
    pub too_old: u64,
    /// Checks whose status or incident changed.
    pub changed: Vec<String>,
}

/// The columns of a check the state machines need.
#[derive(Clone, Debug)]
pub(crate) struct CheckRow {
    pub id: i32,
    pub slug: String,
    pub name: String,
    pub interval_ms: i64,
    pub failure_threshold: i32,
    pub success_threshold: i32,
    pub quorum: Option<i32>,
    pub reopen_window_ms: i64,
    pub decided_through: Option<Millis>,
    pub created_at: Millis,
    /// Each location's newest sample; `None` until first recorded.
    pub latest: Option<Vec<crate::status::Sample>>,
    /// How many locations it asks for; `None` for a placeholder.
    pub locations: Option<Locations>,
}

/// `locations` as stored: 0 for `all`.
pub(crate) fn locations_code(l: Locations) -> i32 {
    match l {
        Locations::All => 0,
        Locations::Count(n) => n as i32,
    }
}

/// The inverse of [`locations_code`].
pub(crate) fn locations_of(code: i32) -> Locations {
    match code {
        n if n > 0 => Locations::Count(n as u32),
        _ => Locations::All,
    }
}

impl CheckRow {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            failure: self.failure_threshold.max(1) as u32,
            success: self.success_threshold.max(1) as u32,
        }
    }

    pub fn rules(&self) -> Rules {
        Rules {
            thresholds: self.thresholds(),
            quorum: match self.quorum {
                Some(n) => Quorum::Count(n.max(1) as u32),
                None => Quorum::Majority,
            },
            reopen_window_ms: self.reopen_window_ms,
        }
    }
}

impl PgStore {
    /// Stores the screened messages of one receive in one transaction (one
    /// commit, and the per-check work once for all), retried on deadlock:
    /// all of them or none.
    ///
    /// One such write at a time per process: a receive holds nearly every
    /// check's row lock (each agent probes every check), so concurrent writes
    /// would only queue on those locks, and a statement waiting there holds
    /// a snapshot that keeps PostgreSQL from pruning the rows the running
    /// write replaces. Writers of other replicas still meet at the row locks.
    pub async fn store_messages(
        &self,
        messages: &[Message<'_>],
        now: i64,
    ) -> Result<Stored, StoreError> {
        let _turn = self.writing.lock().await;
        retrying(&self.retries, || async move {
            let stored = match self.write(messages, now, pg_ops::Writes::Known).await {
                Err(e) if e.is_conflict() => {
                    // What was read under the locks was not all (see `Writes`).
                    tracing::warn!(event = "copy_conflict", error = %e);
                    self.write(messages, now, pg_ops::Writes::Upsert).await?
                }
                other => other?,
            };
            if !stored.changed.is_empty() {
                let _ = self.changes.send(stored.changed.clone());
            }
            Ok(stored)
        })
        .await
    }

    /// One attempt at [`PgStore::store_messages`]'s transaction.
    async fn write(
        &self,
        messages: &[Message<'_>],
        now: i64,
        writes: pg_ops::Writes,
    ) -> Result<Stored, StoreError> {
        let mut tx = self.pool.begin().await?;
        let stored =
            flow::write_messages(&mut pg_ops::PgOps(&mut tx, writes), messages, now).await?;
        tx.commit().await?;
        Ok(stored)
    }
}

/// Milliseconds to a timestamp (clamped to what PostgreSQL stores).
pub(crate) fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A timestamp to milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Runs `f` in a transaction, again after a deadlock, a serialization
/// failure or a lock wait past `lock_timeout` (up to 8 attempts, with a
/// short jittered pause), counting each run again in `retries`.
pub(crate) async fn retrying<T, F, Fut>(
    retries: &std::sync::atomic::AtomicU64,
    mut f: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0_u32;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt < 7 => {
                attempt += 1;
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(event = "transaction_retry", attempt, error = %e);
                let jitter = u64::from(std::process::id() % 7) + u64::from(attempt) * 11;
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
            }
            other => return other,
        }
    }
}

/// The store ingest runs on: PostgreSQL (distributed) or SQLite (embedded).
/// Both run the same flow, and the same conformance tests.
#[derive(Clone, Debug)]
pub enum Store {
    /// PostgreSQL.
    Pg(PgStore),
    /// SQLite.
    Sqlite(SqliteStore),
}

macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Store::Pg($s) => $e,
            Store::Sqlite($s) => $e,
        }
    };
}

impl Store {
    /// A lazily connecting store for a `postgres://` or `sqlite://` URL.
    pub fn connect_lazy(
        url: &str,
        max_connections: u32,
        limits: sql::Limits,
    ) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        match scheme {
            "sqlite" => Ok(Store::Sqlite(SqliteStore::connect_lazy(url, limits)?)),
            "postgres" | "postgresql" => Ok(Store::Pg(PgStore::connect_lazy(
                url,
                max_connections,
                limits,
            )?)),
            // Only the scheme is shown: the rest may hold a password.
            other => Err(StoreError::Url(other.chars().take(16).collect())),
        }
    }

    /// Applies the migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        both!(self, s => s.migrate().await)
    }

    /// Whether every migration is applied (and none is unknown).
    pub async fn migrated(&self) -> Result<bool, StoreError> {
        let pool = self.sql();
        let has: Vec<(bool,)> = pool
            .rows(&pool.dialect().has_table("_sqlx_migrations"), &[])
            .await?;
        if !has.first().is_some_and(|h| h.0) {
            return Ok(false);
        }
        let applied: Vec<(i64,)> = pool
            .rows(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                &[],
            )
            .await?;
        let migrator = match self {
            Store::Pg(_) => &MIGRATIONS,
            Store::Sqlite(_) => &SQLITE_MIGRATIONS,
        };
        Ok(migrator
            .iter()
            .map(|m| m.version)
            .eq(applied.iter().map(|a| a.0)))
    }

    /// How many migrations this version has.
    pub fn migrations(&self) -> usize {
        match self {
            Store::Pg(_) => MIGRATIONS.iter().count(),
            Store::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
        }
    }

    /// How many transactions ran again after a deadlock, a serialization
    /// failure or a lock timeout, since the store was made.
    pub fn retries(&self) -> u64 {
        self.retry_count()
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counter of [`Store::retries`].
    pub(crate) fn retry_count(&self) -> &std::sync::atomic::AtomicU64 {
        both!(self, s => &s.retries)
    }

    /// The database deadlines this store was made with.
    pub fn limits(&self) -> sql::Limits {
        both!(self, s => s.limits)
    }

    /// Runs `work` within the client-side deadline (see [`sql::within`]).
    pub async fn within<T>(
        &self,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        sql::within(self.limits().deadline, what, work).await
    }

    /// Runs `deletes` in order within one deadline, each `DELETE` with its
    /// cutoff instant written `{cutoff}`; returns how many rows the first
    /// deleted. The pruning of the notification tables.
    pub(crate) async fn delete_before(
        &self,
        what: &'static str,
        deletes: &[(&str, Millis)],
    ) -> Result<u64, StoreError> {
        let pool = self.sql();
        let at = pool.dialect().at(1);
        self.within(what, async {
            let mut first = None;
            for (sql, cutoff) in deletes {
                let sql = sql.replace("{cutoff}", &at);
                let gone = pool.exec(&sql, &[sql::Arg::Int(*cutoff)]).await?;
                first.get_or_insert(gone);
            }
            Ok(first.unwrap_or(0))
        })
        .await
    }

    /// A cheap round trip, within the deadline: the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.within("ping", async {
            self.sql().exec("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    /// Stores a screened batch in one transaction.
    pub async fn store_batch(
        &self,
        agent: &AgentInfo,
        sent_at: Timestamp,
        results: &[ProbeResult],
        now: Millis,
    ) -> Result<Stored, StoreError> {
        let one = [Message {
            agent,
            sent_at,
            results,
        }];
        self.store_messages(&one, now).await
    }

    /// Stores several screened messages in one transaction, all or none,
    /// within the deadline (counted from the call: a write queued behind
    /// another spends its own time waiting).
    pub async fn store_messages(
        &self,
        messages: &[Message<'_>],
        now: Millis,
    ) -> Result<Stored, StoreError> {
        self.within("storing results", async {
            both!(self, s => s.store_messages(messages, now).await)
        })
        .await
    }

    /// Makes raw-result partitions from `now - back` ahead (PostgreSQL only).
    pub async fn ensure_partitions_back(
        &self,
        now: Millis,
        back: Millis,
    ) -> Result<(), StoreError> {
        match self {
            Store::Pg(s) => s.ensure_partitions_back(now, back).await,
            Store::Sqlite(_) => Ok(()),
        }
    }

    /// Drops raw results and rollups past their retention.
    pub async fn retain(
        &self,
        now: Millis,
        raw_retention_ms: Millis,
    ) -> Result<Dropped, StoreError> {
        both!(self, s => s.retain(now, raw_retention_ms).await)
    }

    /// Receives the ids of the checks whose status or incident changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Vec<String>> {
        both!(self, s => s.subscribe())
    }

    /// Wakes this process's notification workers at once: outbox events
    /// were committed outside the incident flow (which wakes them itself).
    pub fn wake_notifications(&self) {
        self.announce(Vec::new());
    }

    /// Tells subscribers these checks' status or incident changed.
    pub(crate) fn announce(&self, changed: Vec<String>) {
        let _ = both!(self, s => s.changes.send(changed));
    }

    /// The pool, for SQL written once for both databases.
    pub(crate) fn sql(&self) -> sql::Pool {
        match self {
            Store::Pg(s) => sql::Pool::Pg(s.pool.clone()),
            Store::Sqlite(s) => sql::Pool::Sqlite(s.pool().clone()),
        }
    }
}

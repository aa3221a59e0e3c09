//! The SQLite store: the embedded backend of standalone mode. The same flow
//! as PostgreSQL's ([`super::flow`]) over [`SqliteOps`]; WAL mode, a busy
//! timeout, and write transactions that take the write lock at once
//! (`BEGIN IMMEDIATE`): see `sqlite_ops.rs` for the locking story.

use super::sqlite_ops::{SqliteOps, check_by_id};
use super::sync::occurrences;
use super::{CheckUp, Dropped, StoreError, Stored, TickReport, flow};
use crate::rollup::Level;
use crate::state::Millis;
use crate::status::Status;
use config::Catalog;
use config::defaults::Quorum;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use std::str::FromStr;
use std::time::Duration;

/// The embedded SQLite migrations.
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const DAY_MS: Millis = 86_400_000;

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    changes: tokio::sync::broadcast::Sender<Vec<String>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite://PATH` URL,
    /// in WAL mode with a 5 s busy timeout.
    pub fn connect_lazy(url: &str) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore { pool, changes })
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

    /// Whether every migration is applied (and none is unknown).
    pub async fn migrated(&self) -> Result<bool, StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        if table.is_none() {
            return Ok(false);
        }
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(super::all_applied(&SQLITE_MIGRATIONS, &applied))
    }

    /// A cheap round trip: the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
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

    /// Folds changed minute rollups into hours, and hours into days.
    pub async fn fold_rollups(&self) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let n = flow::fold(&mut SqliteOps(&mut tx)).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The catalog sync (see [`super::PgStore::sync_catalog`]).
    pub async fn sync_catalog(
        &self,
        catalog: &Catalog,
        now: Millis,
        retire_after: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin().await?;
        for (position, c) in catalog.checks.iter().enumerate() {
            let quorum = match c.quorum {
                Quorum::Majority => None,
                Quorum::Count(n) => Some(n as i32),
            };
            sqlx::query(
                "INSERT INTO checks (slug, name, group_name, description, public, kind, position,
                     interval_ms, failure_threshold, success_threshold, quorum, reopen_window_ms,
                     config_hash, placeholder, created_at, locations)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, ?14, ?15)
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name,
                     group_name = excluded.group_name, description = excluded.description,
                     public = excluded.public, kind = excluded.kind, position = excluded.position,
                     interval_ms = excluded.interval_ms,
                     failure_threshold = excluded.failure_threshold,
                     success_threshold = excluded.success_threshold, quorum = excluded.quorum,
                     reopen_window_ms = excluded.reopen_window_ms,
                     config_hash = excluded.config_hash, placeholder = 0,
                     locations = excluded.locations, absent_since = NULL, retired_at = NULL
                 WHERE checks.config_hash IS NOT excluded.config_hash OR checks.name IS NOT excluded.name
                    OR checks.locations IS NOT excluded.locations
                    OR checks.group_name IS NOT excluded.group_name OR checks.position IS NOT excluded.position
                    OR checks.public IS NOT excluded.public OR checks.placeholder
                    OR checks.absent_since IS NOT NULL OR checks.retired_at IS NOT NULL",
            )
            .bind(c.id.as_str())
            .bind(&c.name)
            .bind(&c.group)
            .bind(&c.description)
            .bind(c.public)
            .bind(c.probe.kind().as_str())
            .bind(position as i32)
            .bind(c.schedule.period().as_millis().max(1) as i64)
            .bind(c.failure_threshold as i32)
            .bind(c.success_threshold as i32)
            .bind(quorum)
            .bind(c.reopen_window.as_millis() as i64)
            .bind(&c.config_hash)
            .bind(now)
            .bind(super::locations_code(c.locations))
            .execute(&mut *tx)
            .await?;
        }
        let slugs: Vec<&str> = catalog.checks.iter().map(|c| c.id.as_str()).collect();
        sqlx::query(
            "UPDATE checks SET absent_since = ?2
             WHERE slug NOT IN (SELECT value FROM json_each(?1)) AND retired_at IS NULL
               AND absent_since IS NULL",
        )
        .bind(Json(&slugs))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let cutoff = now - retire_after.as_millis() as i64;
        let gone: Vec<i32> = sqlx::query_scalar(
            "SELECT id FROM checks WHERE retired_at IS NULL AND absent_since <= ?1
               AND NOT EXISTS (SELECT 1 FROM results r WHERE r.check_id = checks.id AND r.scheduled_at > ?1)
             ORDER BY id",
        )
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        let mut retired = Vec::new();
        for id in gone {
            let Some(check) = check_by_id(&mut tx, id).await? else {
                continue;
            };
            flow::retire(&mut SqliteOps(&mut tx), &check, now).await?;
            sqlx::query("UPDATE checks SET retired_at = ?2 WHERE id = ?1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tracing::info!(event = "check_retired", check = %check.slug);
            retired.push(check.slug);
        }
        let mut kept: Vec<(String, i64)> = Vec::new();
        for w in &catalog.maintenance {
            let checks: Vec<&str> = w.checks.iter().map(|c| c.as_str()).collect();
            for (start, end) in occurrences(w, now) {
                sqlx::query(
                    "INSERT INTO maintenance_windows (source, name, description, checks, starts_at,
                         ends_at, created_by, created_at)
                     VALUES ('config', ?1, ?2, ?3, max(?4, ?5), ?6, 'config', ?5)
                     ON CONFLICT (source, name, ends_at) DO UPDATE
                         SET description = excluded.description, checks = excluded.checks",
                )
                .bind(&w.name)
                .bind(&w.description)
                .bind(Json(&checks))
                .bind(start)
                .bind(now)
                .bind(end)
                .execute(&mut *tx)
                .await?;
                kept.push((w.name.clone(), end));
            }
        }
        let future: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, name, ends_at FROM maintenance_windows WHERE source = 'config' AND starts_at > ?1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (id, name, end) in future {
            if !kept.contains(&(name, end)) {
                sqlx::query("DELETE FROM maintenance_windows WHERE id = ?1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(retired)
    }

    /// Decides silence and maintenance up to `now` (see [`super::PgStore::tick`]).
    pub async fn tick(
        &self,
        now: Millis,
        lag_ms: Option<Millis>,
    ) -> Result<TickReport, StoreError> {
        let due_ids: Vec<(i32, Option<i64>)> = sqlx::query_as(
            "SELECT c.id, (SELECT min(scheduled_at) FROM results WHERE check_id = c.id)
             FROM checks c WHERE retired_at IS NULL AND (
                 decided_through IS NULL
                 OR decided_through <= ?1 - min(interval_ms, 60000) / 4
                 OR EXISTS (SELECT 1 FROM maintenance_windows m, json_each(m.checks) j
                            WHERE j.value = c.slug
                              AND ((m.starts_at > c.decided_through AND m.starts_at <= ?1)
                                OR (m.ends_at > c.decided_through AND m.ends_at <= ?1))))
             ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut report = TickReport::default();
        let mut tx = self.begin().await?;
        let mut due = Vec::new();
        for (id, first) in due_ids {
            let Some(check) = check_by_id(&mut tx, id).await? else {
                continue;
            };
            report.checks += 1;
            if lag_ms.is_some_and(|lag| lag > check.interval_ms) {
                report.lagging += 1;
                continue;
            }
            let from = check
                .decided_through
                .unwrap_or_else(|| first.map_or(check.created_at, |f| f.min(check.created_at)));
            due.push(flow::Due {
                check,
                from: from.min(now),
                fresh: None,
                cert_not_after: None,
            });
        }
        report.changed = flow::recompute(&mut SqliteOps(&mut tx), &due, Some(now)).await?;
        tx.commit().await?;
        if !report.changed.is_empty() {
            let _ = self.changes.send(report.changed.clone());
        }
        Ok(report)
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

    /// Every active, configured check's status.
    pub async fn check_statuses(&self) -> Result<Vec<CheckUp>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT slug, group_name, status FROM checks
             WHERE retired_at IS NULL AND NOT placeholder ORDER BY position, slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(slug, group, status)| {
                let status = Status::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status:?}")))?;
                Ok(CheckUp {
                    slug,
                    group,
                    status,
                })
            })
            .collect()
    }

    /// Each agent's id, zone and last-seen instant.
    pub async fn agents_seen(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT name, zone, last_seen FROM agents ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// How many incidents are open.
    pub async fn open_incidents(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM incidents WHERE state <> 'resolved'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

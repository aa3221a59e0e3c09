//! Retention (DESIGN §6): raw results are dropped a whole day partition at a
//! time once past `raw_retention`; minute rollups are deleted after 14 days
//! and hour rollups after 400; day rollups, status changes and incidents are
//! kept forever.

use super::{PgStore, StoreError, ts};
use crate::rollup::Level;
use crate::state::Millis;
use chrono::NaiveDate;
use sqlx::Executor;

const DAY_MS: Millis = 86_400_000;

/// What a retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// The raw-result partitions dropped, by name (PostgreSQL).
    pub partitions: Vec<String>,
    /// Raw results deleted (SQLite, which has no partitions).
    pub results: u64,
    /// Rollup rows deleted (minute and hour).
    pub rollups: u64,
}

/// How long partition DDL waits for a lock before it gives up until the
/// next pass, rather than queue every writer of `results` behind it.
pub(crate) const DDL_LOCK_TIMEOUT: &str = "2s";

impl PgStore {
    /// Drops raw partitions that end at or before `now - raw_retention`, and
    /// rollups past their level's retention.
    ///
    /// A partition is first detached with `DETACH PARTITION ... CONCURRENTLY`
    /// (outside any transaction; it never blocks readers or writers of
    /// `results`, and waits for the readers that may still see it), then
    /// dropped on its own. A detach interrupted (a deadline, a crash, a lock
    /// not had within [`DDL_LOCK_TIMEOUT`]) is finished at the next pass
    /// with `DETACH PARTITION ... FINALIZE`; a detached table whose drop
    /// failed is dropped then too.
    pub async fn retain(
        &self,
        now: Millis,
        raw_retention_ms: Millis,
    ) -> Result<Dropped, StoreError> {
        let cutoff = now - raw_retention_ms;
        let tables: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT c.relname::text, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
             FROM pg_class c
             LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'results'::regclass
             WHERE c.relkind = 'r' AND c.relname ~ '^results_[0-9]{8}$'
               AND c.relnamespace = current_schema()::regnamespace
             ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Dropped::default();
        let expired: Vec<_> = tables
            .into_iter()
            .filter(|(name, _, _)| {
                name.strip_prefix("results_")
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
                    .and_then(|day| day.and_hms_opt(0, 0, 0))
                    .is_some_and(|t| t.and_utc().timestamp_millis() + DAY_MS <= cutoff)
            })
            .collect();
        if !expired.is_empty() {
            // A session of its own (DETACH CONCURRENTLY runs outside any
            // transaction), with its own settings: never given back to the pool.
            let mut conn = self.pool.acquire().await?;
            conn.close_on_drop();
            let statement = self.limits.statement_timeout.as_millis().max(1);
            // Text without parameters goes by the simple protocol, outside
            // any transaction, as DETACH CONCURRENTLY requires.
            let settings = format!(
                "SET lock_timeout = '{DDL_LOCK_TIMEOUT}'; SET statement_timeout = '{statement}ms'"
            );
            conn.execute(settings.as_str()).await?;
            for (name, attached, pending) in expired {
                // The name came from the catalog and matched results_YYYYMMDD.
                if attached {
                    let how = if pending { "FINALIZE" } else { "CONCURRENTLY" };
                    let detach = format!("ALTER TABLE results DETACH PARTITION {name} {how}");
                    let detached = conn.execute(detach.as_str()).await;
                    if let Err(e) = detached {
                        tracing::warn!(event = "partition_detach_deferred", partition = %name, error = %e, "finished at the next pass");
                        continue;
                    }
                }
                let drop = format!("DROP TABLE IF EXISTS {name}");
                conn.execute(drop.as_str()).await?;
                tracing::info!(event = "partition_dropped", partition = %name);
                out.partitions.push(name);
            }
        }
        for level in Level::ALL {
            if let Some(keep) = level.retention_ms() {
                out.rollups += sqlx::query("DELETE FROM rollups WHERE level = $1 AND bucket < $2")
                    .bind(level.code())
                    .bind(ts(now - keep))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            }
        }
        Ok(out)
    }
}

//! Retention (DESIGN §6): raw results are dropped a whole day partition at a
//! time once past `raw_retention`; minute rollups are deleted after 14 days
//! and hour rollups after 400; day rollups, status changes and incidents are
//! kept forever.

use super::{PgStore, StoreError, ts};
use crate::rollup::Level;
use crate::state::Millis;
use chrono::NaiveDate;

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

impl PgStore {
    /// Drops raw partitions that end at or before `now - raw_retention`, and
    /// rollups past their level's retention.
    pub async fn retain(
        &self,
        now: Millis,
        raw_retention_ms: Millis,
    ) -> Result<Dropped, StoreError> {
        let cutoff = now - raw_retention_ms;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'results'::regclass ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Dropped::default();
        for name in names {
            let Some(day) = name
                .strip_prefix("results_")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
            else {
                continue;
            };
            let end = day
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis() + DAY_MS);
            if end.is_some_and(|end| end <= cutoff) {
                // The name came from the catalog and matched results_YYYYMMDD.
                sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                    .execute(&self.pool)
                    .await?;
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

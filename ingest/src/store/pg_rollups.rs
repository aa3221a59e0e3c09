//! Rollup rows written on PostgreSQL, a message's buckets in one statement
//! of arrays (reading them is `reads.rs`'s, for both databases).

use super::ops::RollupKey;
use super::{StoreError, ts};
use crate::rollup::{Rollup, Rollups};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::BTreeSet;

/// Writes these rollups (already merged with the stored ones). With the
/// keys that are `stored` known, those are updated and the rest inserted
/// (either fails should that be wrong: see `pg_ops::Writes`); otherwise
/// every row is upserted.
pub(crate) async fn save_rollups(
    tx: &mut Transaction<'_, Postgres>,
    rollups: &Rollups,
    stored: Option<&BTreeSet<RollupKey>>,
) -> Result<(), StoreError> {
    let (old, new): (Vec<_>, Vec<_>) = rollups
        .iter()
        .partition(|(k, _)| stored.is_some_and(|s| s.contains(k)));
    if !old.is_empty() {
        let c = RollupColumns::of(&old);
        let done = sqlx::query(
            "UPDATE rollups SET count = u.n, up = u.u, measures = u.m, folded = false
             FROM UNNEST($1::int2[], $2::int4[], $3::timestamptz[], $4::int4[], $5::int4[],
                         $6::bytea[]) AS u(l, c, b, n, u, m)
             WHERE rollups.level = u.l AND rollups.check_id = u.c AND rollups.bucket = u.b",
        );
        let done = c.bind(done).execute(&mut **tx).await?;
        if done.rows_affected() != old.len() as u64 {
            return Err(StoreError::Raced("rollups".into()));
        }
    }
    if !new.is_empty() {
        let c = RollupColumns::of(&new);
        let conflict = if stored.is_some() {
            ""
        } else {
            "ON CONFLICT (level, check_id, bucket) DO UPDATE
                 SET count = excluded.count, up = excluded.up, measures = excluded.measures,
                     folded = false"
        };
        let sql = format!(
            "INSERT INTO rollups (level, check_id, bucket, count, up, measures)
             SELECT * FROM UNNEST($1::int2[], $2::int4[], $3::timestamptz[], $4::int4[],
                                  $5::int4[], $6::bytea[]) {conflict}"
        );
        c.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rollup rows, column by column.
struct RollupColumns {
    levels: Vec<i16>,
    checks: Vec<i32>,
    buckets: Vec<DateTime<Utc>>,
    counts: Vec<i32>,
    ups: Vec<i32>,
    measures: Vec<Vec<u8>>,
}

impl RollupColumns {
    fn of(rows: &[(&RollupKey, &Rollup)]) -> RollupColumns {
        RollupColumns {
            levels: rows.iter().map(|r| r.0.0.code()).collect(),
            checks: rows.iter().map(|r| r.0.1).collect(),
            buckets: rows.iter().map(|r| ts(r.0.2)).collect(),
            counts: rows.iter().map(|r| r.1.count as i32).collect(),
            ups: rows.iter().map(|r| r.1.up as i32).collect(),
            measures: rows.iter().map(|r| r.1.encode()).collect(),
        }
    }

    /// Binds the columns as `$1` to `$6`.
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.levels)
            .bind(&self.checks)
            .bind(&self.buckets)
            .bind(&self.counts)
            .bind(&self.ups)
            .bind(&self.measures)
    }
}

//! Rollup rows on PostgreSQL: read and write a message's minute buckets, and
//! the folding of minutes into hours and hours into days.

use super::ops::{At, RollupKey, stored_rollup};
use super::rows::parse_level;
use super::{StoreError, ms, ts};
use crate::rollup::{Level, Rollup, Rollups};
use crate::state::Millis;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::collections::BTreeSet;

/// level, check, bucket, count, up, measures
type RollupRow = (i16, i32, DateTime<Utc>, i32, i32, Vec<u8>);

/// The stored rollups of these buckets.
pub(crate) async fn load_rollups(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[RollupKey],
) -> Result<Vec<(RollupKey, Rollup)>, StoreError> {
    // One index scan with `= ANY` on each key column (a message's rows
    // share a level and mostly a bucket), then the exact keys in Rust.
    let wanted: BTreeSet<RollupKey> = keys.iter().copied().collect();
    let levels: BTreeSet<i16> = keys.iter().map(|k| k.0.code()).collect();
    let checks: BTreeSet<i32> = keys.iter().map(|k| k.1).collect();
    let buckets: BTreeSet<Millis> = keys.iter().map(|k| k.2).collect();
    let rows: Vec<RollupRow> = sqlx::query_as(
        "SELECT level, check_id, bucket, count, up, measures FROM rollups
         WHERE level = ANY($1) AND check_id = ANY($2) AND bucket = ANY($3)",
    )
    .bind(levels.into_iter().collect::<Vec<_>>())
    .bind(checks.into_iter().collect::<Vec<_>>())
    .bind(buckets.into_iter().map(ts).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for (level, check, bucket, count, up, bytes) in rows {
        let key = (parse_level(level)?, check, ms(bucket));
        if !wanted.contains(&key) {
            continue;
        }
        let r = stored_rollup(check, count, up, &bytes)?;
        out.push((key, r));
    }
    Ok(out)
}

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

/// `(check, bucket)` of every row of `level` changed since it was folded.
pub(crate) async fn unfolded(
    tx: &mut Transaction<'_, Postgres>,
    level: Level,
) -> Result<Vec<At>, StoreError> {
    let rows: Vec<(i32, DateTime<Utc>)> =
        sqlx::query_as("SELECT check_id, bucket FROM rollups WHERE level = $1 AND NOT folded")
            .bind(level.code())
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(c, b)| (c, ms(b))).collect())
}

/// The rows of `level` of a check in `[from, to)`.
pub(crate) async fn load_level(
    tx: &mut Transaction<'_, Postgres>,
    level: Level,
    check: i32,
    from: Millis,
    to: Millis,
) -> Result<Vec<Rollup>, StoreError> {
    let rows: Vec<(i32, i32, Vec<u8>)> = sqlx::query_as(
        "SELECT count, up, measures FROM rollups
         WHERE level = $1 AND check_id = $2 AND bucket >= $3 AND bucket < $4",
    )
    .bind(level.code())
    .bind(check)
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(count, up, bytes)| stored_rollup(check, count, up, &bytes))
        .collect()
}

/// Marks the rows of `level` of a check in `[from, to)` folded.
pub(crate) async fn mark_folded(
    tx: &mut Transaction<'_, Postgres>,
    level: Level,
    check: i32,
    from: Millis,
    to: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollups SET folded = true
         WHERE level = $1 AND check_id = $2 AND bucket >= $3 AND bucket < $4 AND NOT folded",
    )
    .bind(level.code())
    .bind(check)
    .bind(ts(from))
    .bind(ts(to))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! Rollup rows: read the existing buckets a message touches, merge in Rust,
//! write back, two statements for any number of buckets. Only rows actually
//! inserted are added, so a redelivered message never counts twice.

use super::{StoreError, ms, ts};
use crate::rollup::{Level, Rollup, Rollups};
use sqlx::{Postgres, Transaction};

/// level, check, bucket, count, up, measures
type RollupRow = (i16, i32, chrono::DateTime<chrono::Utc>, i32, i32, Vec<u8>);

pub(crate) async fn upsert(
    tx: &mut Transaction<'_, Postgres>,
    add: &Rollups,
) -> Result<(), StoreError> {
    if add.is_empty() {
        return Ok(());
    }
    let levels: Vec<i16> = add.keys().map(|k| k.0.code()).collect();
    let checks: Vec<i32> = add.keys().map(|k| k.1).collect();
    let buckets: Vec<_> = add.keys().map(|k| ts(k.2)).collect();
    let rows: Vec<RollupRow> = sqlx::query_as(
        "SELECT r.level, r.check_id, r.bucket, r.count, r.up, r.measures
         FROM UNNEST($1::int2[], $2::int4[], $3::timestamptz[]) AS q(l, c, b)
         JOIN rollups r ON r.level = q.l AND r.check_id = q.c AND r.bucket = q.b",
    )
    .bind(&levels)
    .bind(&checks)
    .bind(&buckets)
    .fetch_all(&mut **tx)
    .await?;
    let mut merged = add.clone();
    for (level, check, bucket, count, up, bytes) in rows {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.code() == level)
            .ok_or_else(|| StoreError::Corrupt(format!("rollup level {level}")))?;
        let old = Rollup::decode(count.max(0) as u32, up.max(0) as u32, &bytes)
            .ok_or_else(|| StoreError::Corrupt(format!("rollup of check {check}")))?;
        if let Some(r) = merged.get_mut(&(level, check, ms(bucket))) {
            r.merge(&old);
        }
    }
    let counts: Vec<i32> = merged.values().map(|r| r.count as i32).collect();
    let ups: Vec<i32> = merged.values().map(|r| r.up as i32).collect();
    let measures: Vec<Vec<u8>> = merged.values().map(Rollup::encode).collect();
    sqlx::query(
        "INSERT INTO rollups (level, check_id, bucket, count, up, measures)
         SELECT * FROM UNNEST($1::int2[], $2::int4[], $3::timestamptz[], $4::int4[], $5::int4[],
                              $6::bytea[])
         ON CONFLICT (level, check_id, bucket) DO UPDATE
             SET count = excluded.count, up = excluded.up, measures = excluded.measures",
    )
    .bind(&levels)
    .bind(&checks)
    .bind(&buckets)
    .bind(&counts)
    .bind(&ups)
    .bind(&measures)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

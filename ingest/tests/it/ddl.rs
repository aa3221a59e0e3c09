//! Partition DDL beside a long reader of `results` (a report, a backup, a
//! stuck dashboard query): making partitions and dropping old ones never
//! holds up a write, and an interrupted detach is finished later.

use crate::support::*;
use sqlx::PgPool;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;

/// Stores a batch of one fresh result, within a deadline: a write queued
/// behind DDL would wait for the reader, which outlives the test's patience.
async fn write_within(store: &ingest::store::Store, n: i64) {
    let at = start() + n * MINUTE;
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        put(store, &batch("a1", vec![result("web", "a1", at, true)])),
    )
    .await
    .expect("a write beside the DDL and the long reader");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[sqlx::test(migrations = false)]
async fn partitions_and_retention_never_hold_up_writes_behind_a_long_reader(pool: PgPool) {
    let store = store(pool.clone()).await;
    let now = now();
    // Ten days of partitions back, three of them past a week's retention.
    store.ensure_partitions_back(now, 10 * DAY).await.unwrap();
    write_within(&store, 0).await;

    // The long reader: a snapshot of every partition, held.
    let mut reader = pool.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&mut *reader)
        .await
        .unwrap();

    // Partitions further ahead are attached beside it, at once.
    tokio::time::timeout(
        Duration::from_secs(10),
        store.ensure_partitions_back(now + 3 * DAY, 0),
    )
    .await
    .expect("attaching never waits for the reader")
    .unwrap();
    write_within(&store, 1).await;

    // Retention detaches the expired days concurrently: it waits for the
    // reader, and writes keep flowing meanwhile.
    let retaining = {
        let store = store.clone();
        tokio::spawn(async move { store.retain(now, 7 * DAY).await })
    };
    for n in 2..12 {
        write_within(&store, n).await;
    }
    assert!(!retaining.is_finished(), "the detach waits for the reader");
    reader.commit().await.unwrap();
    let dropped = tokio::time::timeout(Duration::from_secs(30), retaining)
        .await
        .expect("the detach ends once the reader has")
        .unwrap()
        .unwrap();
    assert_eq!(dropped.partitions.len(), 3, "{dropped:?}");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname = ANY($1) AND relkind = 'r'",
    )
    .bind(&dropped.partitions)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "dropped, not just detached");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 12, "every write beside the DDL is stored");
}

#[sqlx::test(migrations = false)]
async fn an_interrupted_detach_is_finished_at_the_next_pass(pool: PgPool) {
    let store = store(pool.clone()).await;
    let now = now();
    store.ensure_partitions_back(now, 9 * DAY).await.unwrap();
    let day = chrono::DateTime::from_timestamp_millis(now - 9 * DAY).unwrap();
    let name = format!("results_{}", day.format("%Y%m%d"));
    // A detach cut short, as by a deadline: the partition is left pending.
    let mut reader = pool.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::Executor::execute(&mut *conn, "SET statement_timeout = '500ms'")
        .await
        .unwrap();
    let cut = sqlx::Executor::execute(
        &mut *conn,
        format!("ALTER TABLE results DETACH PARTITION {name} CONCURRENTLY").as_str(),
    )
    .await;
    assert!(cut.is_err(), "the detach waited for the reader: {cut:?}");
    conn.close().await.unwrap();
    reader.commit().await.unwrap();
    let pending: bool = sqlx::query_scalar(
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = $1::regclass",
    )
    .bind(&name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(pending, "left pending");

    let dropped = store.retain(now, 7 * DAY).await.unwrap();
    assert!(dropped.partitions.contains(&name), "{dropped:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

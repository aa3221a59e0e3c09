//! The leader's steps are independent: one that cannot finish (its table
//! locked by someone else, past the deadline) is logged and retried, and
//! never keeps the others, the silence tick above all, from running.

use crate::support::*;
use ingest::store::{PgStore, Store};
use sqlx::PgPool;
use std::time::Duration;

#[sqlx::test(migrations = false)]
async fn a_fold_that_cannot_run_never_keeps_the_tick_from_deciding(pool: PgPool) {
    let limits = ingest::store::sql::Limits {
        deadline: Duration::from_secs(2),
        ..Default::default()
    };
    let store = Store::Pg(PgStore::from_pool(pool.clone(), limits));
    store.migrate().await.unwrap();
    store
        .ensure_partitions_back(now(), ingest::screen::MAX_AGE_MS)
        .await
        .unwrap();
    let yaml = "groups:\n  - name: Web\n    checks:\n      - name: Home\n        id: web\n        tcp: { host: 127.0.0.1, port: 9 }\n";
    store
        .sync_catalog(&catalog(yaml), now() - 10 * MINUTE, Duration::ZERO)
        .await
        .unwrap();
    // A minute of another check waits to be folded.
    put(&store, &batch("a", vec![result("api", "a", start(), true)])).await;

    // Someone holds the rollups: the fold (and retention) cannot run.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE rollups IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let settings = ingest::Settings {
        source: ingest::Source::Channel(rx),
        max_message_bytes: 256 * 1024,
        raw_retention: Duration::from_secs(7 * 86_400),
        leader: ingest::leader::Settings {
            config: vec![],
            env: std::sync::Arc::new(|_: &str| None),
            tick_every: Duration::from_millis(200),
            retire_after: Duration::from_secs(600),
            dead_letter_queue: None,
            raw_retention: Duration::ZERO,
            lease: ingest::store::LEASE,
            prune_after: Duration::from_secs(7 * 86_400),
        },
        catalog: None,
        kept: config::Kept::default(),
        notify: None,
    };
    let task = tokio::spawn(ingest::run(
        settings,
        store,
        Meter::new().handle(),
        std::sync::Arc::new(now),
        shutdown.clone(),
    ));
    let decided = "SELECT count(*) FROM checks WHERE slug = 'web' AND decided_through IS NOT NULL";
    eventually(
        20,
        "the tick decides the check while the fold fails",
        || async { count(&pool, decided).await == 1 },
    )
    .await;
    let hours: i64 = sqlx::query_scalar("SELECT count(*) FROM rollups WHERE level = 1")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    assert_eq!(hours, 0, "nothing could be folded yet");

    blocker.commit().await.unwrap();
    eventually(20, "the fold catches up once the table is free", || async {
        count(&pool, "SELECT count(*) FROM rollups WHERE level = 2").await == 1
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

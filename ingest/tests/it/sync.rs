//! Catalog sync beside heavy ingest: sync locks only the rows it changes,
//! in id order (the writers' order), a thousand at most per transaction, so
//! the two never deadlock, and nothing is retried.

use crate::support::*;
use sqlx::PgPool;

/// The catalog of `n` checks, every name carrying `version` (so each sync
/// changes every row).
fn catalog(dir: &std::path::Path, n: usize, version: usize) -> config::Catalog {
    let mut yaml = String::from("groups:\n  - name: G\n    checks:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "      - {{ name: 'C{i} v{version}', id: c{i:03}, interval: 60s, tcp: {{ host: 127.0.0.1, port: 9 }} }}\n"
        ));
    }
    let path = dir.join(format!("checks-{version}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    config::load(&[path], &|_| None).expect("a valid catalog")
}

#[sqlx::test(migrations = false)]
async fn catalog_sync_beside_heavy_ingest_never_deadlocks_or_retries(pool: PgPool) {
    let store = store(pool.clone()).await;
    let n = 200;
    // Ids in the reverse of slug order (placeholders made by results from
    // the last check to the first), so an order by slug and one by id cross.
    for i in (0..n).rev() {
        put(
            &store,
            &batch("a0", vec![result(&format!("c{i:03}"), "a0", start(), true)]),
        )
        .await;
    }
    let dir = std::env::temp_dir().join(format!("statuspage-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalogs = [catalog(&dir, n, 0), catalog(&dir, n, 1)];
    let deadlocks = async |pool: &PgPool| -> i64 {
        sqlx::query_scalar(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let deadlocks_before = deadlocks(&pool).await;
    let retries_before = store.retries();

    // Three agents write every check each minute, while sync rewrites
    // every row again and again.
    let writers: Vec<_> = (1..=3)
        .map(|a| {
            let store = store.clone();
            tokio::spawn(async move {
                let agent = format!("a{a}");
                for minute in 1..=20 {
                    let at = start() + minute * MINUTE;
                    let results = (0..n)
                        .map(|i| result(&format!("c{i:03}"), &agent, at, true))
                        .collect();
                    put(&store, &batch(&agent, results)).await;
                }
            })
        })
        .collect();
    let syncing = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                store
                    .sync_catalog(
                        &catalogs[round % 2],
                        now(),
                        std::time::Duration::from_secs(600),
                    )
                    .await
                    .expect("sync beside the writers");
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    syncing.await.unwrap();

    assert_eq!(
        store.retries() - retries_before,
        0,
        "no transaction ran again"
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM checks ORDER BY slug LIMIT 2")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(names, ["C0 v1", "C1 v1"], "the last sync's names");
    // A backend's statistics reach pg_stat_database when it goes idle or
    // exits: close every connection first.
    let options = (*pool.connect_options()).clone();
    pool.close().await;
    drop(store);
    let fresh = PgPool::connect_with(options).await.unwrap();
    assert_eq!(deadlocks(&fresh).await - deadlocks_before, 0, "no deadlock");
    let _ = std::fs::remove_dir_all(&dir);
}

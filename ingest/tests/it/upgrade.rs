//! An old database, migrated: a store filled at the first schema (0001) is
//! migrated to this version's, on both databases, and every result, status
//! change, incident, rollup, pair, agent, check and maintenance window is
//! found intact, and the store works on it.

use crate::support::*;
use ingest::store::sql::{Arg, Dialect, Pool};
use ingest::store::{MIGRATIONS, PgStore, SQLITE_MIGRATIONS, SqliteStore, Store};
use sqlx::migrate::Migrator;
use std::path::{Path, PathBuf};

/// The first migration alone, as a migrator over a directory of its own.
async fn first_only(all: &Migrator, dir: &Path) -> Migrator {
    let first = all.iter().next().expect("a first migration");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!(
            "{:04}_{}.sql",
            first.version,
            first.description.replace(' ', "_")
        )),
        first.sql.as_bytes(),
    )
    .unwrap();
    Migrator::new(dir).await.expect("the first migration")
}

/// A minute's rollup of two results, one up, as stored.
fn rollup() -> Vec<u8> {
    let mut r = ingest::rollup::Rollup::default();
    r.add(true, [Some(1_000); 6]);
    r.add(false, [None; 6]);
    r.encode()
}

/// Fills a database at the 0001 schema, through SQL written once for both.
async fn fill(pool: &Pool, t0: i64) {
    let d = pool.dialect();
    let sql = |text: &str| text.to_string();
    for (slug, name) in [("web", "Web"), ("api", "API")] {
        pool.exec(
            &format!(
                "INSERT INTO checks (slug, name, group_name, public, kind, position, interval_ms,
                     failure_threshold, success_threshold, reopen_window_ms, config_hash,
                     created_at, decided_through, status, status_since)
                 VALUES ({}, {}, 'Shop', true, 'http', 0, 60000, 2, 2, 600000, 'h', {t0},
                         {t1}, 'down', {t1})",
                d.p(1),
                d.p(2),
                t0 = d.at(3),
                t1 = d.at(4)
            ),
            &[
                Arg::Text(slug.into()),
                Arg::Text(name.into()),
                Arg::Int(t0),
                Arg::Int(t0 + 2 * MINUTE),
            ],
        )
        .await
        .unwrap();
    }
    pool.exec(
        &format!(
            "INSERT INTO agents (name, zone, region, first_seen, last_seen)
             VALUES ('agent-a', 'z-a', 'r', {}, {})",
            d.at(1),
            d.at(2)
        ),
        &[Arg::Int(t0), Arg::Int(t0 + 2 * MINUTE)],
    )
    .await
    .unwrap();
    if d == Dialect::Postgres {
        // The partition the results go in (DDL is PostgreSQL's alone).
        let day = t0.div_euclid(86_400_000) * 86_400_000;
        let (from, to) = (
            chrono::DateTime::from_timestamp_millis(day).unwrap(),
            chrono::DateTime::from_timestamp_millis(day + 86_400_000).unwrap(),
        );
        pool.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS results_{} PARTITION OF results
                 FOR VALUES FROM ('{}') TO ('{}')",
                from.format("%Y%m%d"),
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
            &[],
        )
        .await
        .unwrap();
    }
    for (i, state) in [0_i64, 2].into_iter().enumerate() {
        pool.exec(
            &format!(
                "INSERT INTO results (scheduled_at, check_id, agent_id, start_delay_ms,
                     interval_ms, duration_us, connect_us, assigned, outcome, reason, state)
                 VALUES ({}, 1, 1, 3, 60000, 1234, 99, 1, {}, {}, {})",
                d.at(1),
                d.p(2),
                d.p(3),
                d.p(4)
            ),
            &[
                Arg::Int(t0 + i as i64 * MINUTE),
                Arg::Int(state),
                Arg::Int(state),
                Arg::Int(state),
            ],
        )
        .await
        .unwrap();
    }
    for (at, status) in [(t0, "up"), (t0 + MINUTE, "down")] {
        pool.exec(
            &format!(
                "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing,
                     reasons)
                 VALUES (1, {}, {}, 1, 1, {}, {})",
                d.at(1),
                d.p(2),
                d.p(3),
                d.list_value(4)
            ),
            &[
                Arg::Int(at),
                Arg::Text(status.into()),
                Arg::Int(i64::from(status == "down")),
                Arg::list(&if status == "down" {
                    vec!["http_status"]
                } else {
                    vec![]
                }),
            ],
        )
        .await
        .unwrap();
    }
    pool.exec(
        &format!(
            "INSERT INTO rollups (level, check_id, bucket, count, up, measures, folded)
             VALUES (0, 1, {}, 2, 1, {}, true)",
            d.at(1),
            d.p(2)
        ),
        &[Arg::Int(t0), Arg::Bytes(rollup())],
    )
    .await
    .unwrap();
    pool.exec(
        &format!(
            "INSERT INTO pairs (check_id, agent_id, pair) VALUES (1, 1, {})",
            d.p(1)
        ),
        &[Arg::Bytes(ingest::state::Pair::default().encode())],
    )
    .await
    .unwrap();
    pool.exec(
        &format!(
            "INSERT INTO incidents (title, impact, state, auto, check_id, started_at,
                 resolved_at, resolved_automatically, updated_at)
             VALUES ('Web is down', 'major', 'resolved', true, 1, {}, {}, true, {})",
            d.at(1),
            d.at(2),
            d.at(2)
        ),
        &[Arg::Int(t0 + MINUTE), Arg::Int(t0 + 2 * MINUTE)],
    )
    .await
    .unwrap();
    pool.exec(
        &sql("INSERT INTO incident_checks (incident_id, check_id) VALUES (1, 1)"),
        &[],
    )
    .await
    .unwrap();
    for (at, state) in [
        (t0 + MINUTE, "investigating"),
        (t0 + 2 * MINUTE, "resolved"),
    ] {
        pool.exec(
            &format!(
                "INSERT INTO incident_updates (incident_id, at, state, message, author)
                 VALUES (1, {}, {}, 'said', 'statuspage')",
                d.at(1),
                d.p(2)
            ),
            &[Arg::Int(at), Arg::Text(state.into())],
        )
        .await
        .unwrap();
    }
    pool.exec(
        &format!(
            "INSERT INTO maintenance_windows (source, name, checks, starts_at, ends_at,
                 created_by, created_at)
             VALUES ('api', 'Upgrade', {}, {}, {}, 'ops', {})",
            d.list_value(1),
            d.at(2),
            d.at(3),
            d.at(2)
        ),
        &[
            Arg::list(&["web", "api"]),
            Arg::Int(t0),
            Arg::Int(t0 + 30 * MINUTE),
        ],
    )
    .await
    .unwrap();
}

/// A check as the 0001 schema has it: id, slug, name, group, interval,
/// reopen window, created, status, status since, public, placeholder.
type CheckSnapshot = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    bool,
    bool,
);

/// A result: check, slot, agent, start delay, duration, connect, outcome,
/// reason, state.
type ResultSnapshot = (i64, i64, i64, i64, i64, Option<i64>, i64, i64, Option<i64>);

/// A rollup: level, check, bucket, count, up, measures, folded.
type RollupSnapshot = (i64, i64, i64, i64, i64, Vec<u8>, bool);

/// An incident: id, title, impact, state, auto, started, resolved, resolved automatically.
type IncidentSnapshot = (i64, String, String, String, bool, i64, Option<i64>, bool);

/// Every row of every 0001 table, by its 0001 columns, instants in ms.
async fn snapshot(pool: &Pool) -> Vec<String> {
    let d = pool.dialect();
    let mut out = Vec::new();
    let checks: Vec<CheckSnapshot> = pool
        .rows(
            &format!(
                "SELECT {}, slug, name, group_name, interval_ms, reopen_window_ms, {}, status,
                        {}, public, placeholder
                 FROM checks ORDER BY id",
                d.int("id"),
                d.ms("created_at"),
                d.ms("status_since")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(checks.iter().map(|r| format!("check {r:?}")));
    let agents: Vec<(i64, String, String, String, i64, i64)> = pool
        .rows(
            &format!(
                "SELECT {}, name, zone, region, {}, {} FROM agents ORDER BY id",
                d.int("id"),
                d.ms("first_seen"),
                d.ms("last_seen")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(agents.iter().map(|r| format!("agent {r:?}")));
    let results: Vec<ResultSnapshot> = pool
        .rows(
            &format!(
                "SELECT {}, {}, {}, {}, {}, {}, {}, {}, {} FROM results
                 ORDER BY check_id, scheduled_at",
                d.int("check_id"),
                d.ms("scheduled_at"),
                d.int("agent_id"),
                d.int("start_delay_ms"),
                d.int("duration_us"),
                d.int("connect_us"),
                d.int("outcome"),
                d.int("reason"),
                d.int("state")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(results.iter().map(|r| format!("result {r:?}")));
    let changes: Vec<(i64, i64, String, i64, String)> = pool
        .rows(
            &format!(
                "SELECT {}, {}, status, {}, {} FROM status_changes ORDER BY check_id, at",
                d.int("check_id"),
                d.ms("at"),
                d.int("failing"),
                d.json_list("reasons")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(changes.iter().map(|r| format!("status change {r:?}")));
    let rollups: Vec<RollupSnapshot> = pool
        .rows(
            &format!(
                "SELECT {}, {}, {}, {}, {}, measures, folded FROM rollups ORDER BY level, bucket",
                d.int("level"),
                d.int("check_id"),
                d.ms("bucket"),
                d.int("count"),
                d.int("up")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(rollups.iter().map(|r| format!("rollup {r:?}")));
    let pairs: Vec<(i64, i64, Vec<u8>)> = pool
        .rows(
            &format!(
                "SELECT {}, {}, pair FROM pairs ORDER BY check_id",
                d.int("check_id"),
                d.int("agent_id")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(pairs.iter().map(|r| format!("pair {r:?}")));
    let incidents: Vec<IncidentSnapshot> = pool
        .rows(
            &format!(
                "SELECT {}, title, impact, state, auto, {}, {}, resolved_automatically
                 FROM incidents ORDER BY id",
                d.int("id"),
                d.ms("started_at"),
                d.ms("resolved_at")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(incidents.iter().map(|r| format!("incident {r:?}")));
    let updates: Vec<(i64, i64, String, String, String)> = pool
        .rows(
            &format!(
                "SELECT {}, {}, state, message, author FROM incident_updates ORDER BY id",
                d.int("incident_id"),
                d.ms("at")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(updates.iter().map(|r| format!("update {r:?}")));
    let links: Vec<(i64, i64)> = pool
        .rows(
            &format!(
                "SELECT {}, {} FROM incident_checks",
                d.int("incident_id"),
                d.int("check_id")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(links.iter().map(|r| format!("incident check {r:?}")));
    let windows: Vec<(String, String, String, i64, i64, String)> = pool
        .rows(
            &format!(
                "SELECT source, name, {}, {}, {}, created_by FROM maintenance_windows ORDER BY id",
                d.json_list("checks"),
                d.ms("starts_at"),
                d.ms("ends_at")
            ),
            &[],
        )
        .await
        .unwrap();
    out.extend(windows.iter().map(|r| format!("window {r:?}")));
    out
}

/// Fills at 0001, migrates to now, and finds everything as it was; then the
/// store takes a new result for the old check and reads its statuses.
async fn an_old_database_migrates_with_everything_intact(
    store: Store,
    pool: Pool,
    all: &Migrator,
    dir: PathBuf,
) {
    let old = first_only(all, &dir).await;
    match &pool {
        Pool::Pg(p) => old.run(p).await.unwrap(),
        Pool::Sqlite(p) => old.run(p).await.unwrap(),
    }
    assert!(!store.migrated().await.unwrap(), "only 0001 is applied");
    let t0 = start();
    fill(&pool, t0).await;
    let before = snapshot(&pool).await;
    assert_eq!(
        before.len(),
        2 + 1 + 2 + 2 + 1 + 1 + 1 + 2 + 1 + 1,
        "{before:#?}"
    );

    store
        .migrate()
        .await
        .expect("every later migration applies");
    assert!(store.migrated().await.unwrap());
    assert_eq!(snapshot(&pool).await, before, "nothing changed on the way");

    if let Store::Pg(_) = &store {
        store
            .ensure_partitions_back(now(), ingest::screen::MAX_AGE_MS)
            .await
            .unwrap();
    }
    let stored = put(
        &store,
        &batch(
            "agent-a",
            vec![result("web", "agent-a", t0 + 3 * MINUTE, true)],
        ),
    )
    .await;
    assert_eq!(
        stored.inserted, 1,
        "the store writes on the migrated schema"
    );
    let statuses = store.check_statuses().await.unwrap();
    assert_eq!(
        statuses.iter().map(|c| c.slug.as_str()).collect::<Vec<_>>(),
        ["api", "web"]
    );
    let after = snapshot(&pool).await;
    for row in &before {
        if !row.starts_with("check ") && !row.starts_with("agent ") && !row.starts_with("pair ") {
            assert!(after.contains(row), "{row} survives a write: {after:#?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrations = false)]
async fn an_old_postgres_database_migrates_with_everything_intact(pool: sqlx::PgPool) {
    let dir = std::env::temp_dir().join(format!(
        "statuspage-old-pg-{}-{}",
        std::process::id(),
        now()
    ));
    an_old_database_migrates_with_everything_intact(
        Store::Pg(PgStore::from_pool(pool.clone(), Default::default())),
        Pool::Pg(pool),
        &MIGRATIONS,
        dir,
    )
    .await;
}

#[tokio::test]
async fn an_old_sqlite_database_migrates_with_everything_intact() {
    let dir = std::env::temp_dir().join(format!(
        "statuspage-old-sqlite-{}-{}",
        std::process::id(),
        now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("old.db").display());
    let store = Store::connect_lazy(&url, 4, Default::default()).unwrap();
    let Store::Sqlite(s) = &store else {
        unreachable!("a sqlite URL")
    };
    let pool = Pool::Sqlite(SqliteStore::pool(s).clone());
    an_old_database_migrates_with_everything_intact(
        store.clone(),
        pool,
        &SQLITE_MIGRATIONS,
        dir.join("migrations"),
    )
    .await;
}

//! The store conformance suite: exactly-once rows, quorum status, incidents,
//! placeholders, maintenance, silence, retirement, rollups and retention.
//! Each body runs against PostgreSQL and against SQLite (`conformance!`).

use crate::support::*;
use std::time::Duration;

const AGENTS: [&str; 3] = ["a", "b", "c"];

/// Each agent's results for slots `k` with `up(k)`.
async fn slots(
    store: &ingest::store::Store,
    check: &str,
    t0: i64,
    ks: std::ops::Range<i64>,
    up: impl Fn(i64) -> bool,
) {
    for k in ks {
        for agent in AGENTS {
            put(
                store,
                &batch(agent, vec![result(check, agent, t0 + k * MINUTE, up(k))]),
            )
            .await;
        }
    }
}

async fn duplicate_results_are_ignored_completely_and_counted(db: Db) {
    let store = &db.store;
    let t0 = start();
    let b = batch(
        "a",
        vec![
            result("web", "a", t0, true),
            result("web", "a", t0 + MINUTE, false),
        ],
    );
    let first = put(store, &b).await;
    assert_eq!((first.inserted, first.duplicate), (2, 0));
    let again = put(store, &b).await;
    assert_eq!((again.inserted, again.duplicate), (0, 2));
    assert_eq!(db.count("SELECT count(*) FROM results").await, 2);
    assert_eq!(
        db.count("SELECT count(*) FROM results WHERE detail IS NOT NULL")
            .await,
        1,
        "details are kept only for results that are not ok"
    );
    assert_eq!(db.changes("web", t0).await, [(0, "up".to_string())]);
}

/// Rows a pair's buffer calls new go in without a conflict check (a COPY on
/// PostgreSQL). Should the buffer be wrong (here: the pairs were lost while
/// their results stayed), the write runs again checking every row: nothing
/// is stored twice, nothing is lost, and rollups count each row once.
async fn results_whose_pairs_were_lost_are_still_stored_exactly_once(db: Db) {
    let store = &db.store;
    let t0 = start();
    let slot = |k: i64, up: bool| result("web", "a", t0 + k * MINUTE, up);
    let first = put(store, &batch("a", vec![slot(0, true), slot(1, false)])).await;
    assert_eq!((first.inserted, first.duplicate), (2, 0));
    db.exec("DELETE FROM pairs").await;
    // A redelivery of both, with one new result.
    let again = batch("a", vec![slot(0, true), slot(1, false), slot(2, true)]);
    let again = put(store, &again).await;
    assert_eq!((again.inserted, again.duplicate), (1, 2));
    assert_eq!(db.count("SELECT count(*) FROM results").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM pairs").await, 1);
    // And the next one goes the usual way.
    let next = put(store, &batch("a", vec![slot(3, true)])).await;
    assert_eq!((next.inserted, next.duplicate), (1, 0));
    assert_eq!(db.count("SELECT count(*) FROM results").await, 4);
    let minutes: i64 = db
        .rollups()
        .await
        .iter()
        .filter(|r| r.0 == 0)
        .map(|r| r.1)
        .sum();
    assert_eq!(minutes, 4, "each stored result counted once in the rollups");
}

async fn a_quorum_of_failing_locations_opens_one_incident_that_resolves_with_its_duration(db: Db) {
    let store = &db.store;
    let t0 = start();
    // up, up, down ×3, up ×2 (failure and success thresholds are 2).
    slots(store, "web", t0, 0..7, |k| !(2..5).contains(&k)).await;
    assert_eq!(
        db.changes("web", t0).await,
        [
            (0, "up".to_string()),
            (3 * MINUTE, "down".into()),
            (6 * MINUTE, "up".into())
        ]
    );
    let incidents = db.incidents("web").await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].0, "resolved");
    assert!(
        incidents[0].1[0].starts_with("Detected: ")
            && incidents[0].1[0].ends_with("locations failing (connect_refused)"),
        "{:?}",
        incidents[0].1
    );
    assert_eq!(incidents[0].1[1], "Resolved automatically after 3m.");
    let title = db.rows("SELECT id, title FROM incidents", "").await;
    assert_eq!(title[0].1, "web is down");
    let pairs = db.count("SELECT count(*) FROM pairs").await;
    assert_eq!(pairs, 3, "one state row per (check, location)");
}

async fn fewer_failing_locations_than_the_quorum_is_degraded_without_an_incident(db: Db) {
    let store = &db.store;
    let t0 = start();
    for k in 0..5 {
        for agent in AGENTS {
            let up = agent != "a" || k < 2;
            put(
                store,
                &batch(agent, vec![result("web", agent, t0 + k * MINUTE, up)]),
            )
            .await;
        }
    }
    assert_eq!(
        db.changes("web", t0).await,
        [(0, "up".to_string()), (3 * MINUTE, "degraded".into())]
    );
    assert!(db.incidents("web").await.is_empty());
}

async fn a_late_result_within_the_buffer_is_put_in_place(db: Db) {
    let store = &db.store;
    let t0 = start();
    // Agent a's slot 1 arrives after its slot 2 (one newer result of its
    // pair, fewer than R = 2): the history is as if it came in order.
    let order = [
        (0, "a"),
        (0, "b"),
        (1, "b"),
        (2, "a"),
        (2, "b"),
        (1, "a"),
        (3, "a"),
        (3, "b"),
    ];
    for (k, agent) in order {
        put(
            store,
            &batch(
                agent,
                vec![result("web", agent, t0 + k * MINUTE, !(1..=2).contains(&k))],
            ),
        )
        .await;
    }
    let states = db
        .codes("SELECT r.state FROM results r JOIN agents a ON a.id = r.agent_id WHERE a.name = 'a' ORDER BY scheduled_at")
        .await;
    assert_eq!(
        states,
        [Some(0), Some(0), Some(2), Some(2)],
        "passing, passing, failing, failing"
    );
    assert_eq!(
        db.changes("web", t0).await,
        [(0, "up".to_string()), (2 * MINUTE, "down".into())],
        "2 of 2 failing at slot 2"
    );
}

async fn an_unknown_check_is_kept_under_a_placeholder_and_adopted_by_catalog_sync(db: Db) {
    let store = &db.store;
    let t0 = start();
    put(
        store,
        &batch("a", vec![result("shop-checkout", "a", t0, true)]),
    )
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM checks WHERE slug = 'shop-checkout' AND placeholder AND NOT public").await,
        1,
        "a placeholder is private"
    );
    let catalog = catalog(
        "groups:\n  - name: Shop\n    checks:\n      - name: Checkout\n        http:\n          url: http://127.0.0.1:9/\n",
    );
    store
        .sync_catalog(&catalog, now(), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM checks WHERE slug = 'shop-checkout' AND NOT placeholder AND name = 'Checkout' AND group_name = 'Shop'").await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM checks").await,
        1,
        "the same row, no second check"
    );
    assert_eq!(
        db.changes("shop-checkout", t0).await,
        [(0, "up".to_string())]
    );
}

async fn nothing_opens_during_maintenance_and_a_check_still_down_at_its_end_opens_one(db: Db) {
    let store = &db.store;
    let t0 = start();
    db.add_window("web", t0 + 2 * MINUTE, t0 + 5 * MINUTE + 30_000)
        .await;
    slots(store, "web", t0, 0..8, |k| k < 2).await;
    let got = db.changes("web", t0).await;
    assert_eq!(
        got,
        [
            (0, "up".to_string()),
            (2 * MINUTE, "maintenance".into()),
            (5 * MINUTE + 30_000, "down".into())
        ]
    );
    let incidents = db.incidents("web").await;
    assert_eq!(incidents.len(), 1);
    let started = db
        .rows("SELECT {at}, title FROM incidents", "started_at")
        .await;
    assert_eq!(
        started[0].0,
        t0 + 5 * MINUTE + 30_000,
        "opened when the window ended"
    );
}

async fn an_operator_updated_incident_goes_to_monitoring_instead_of_resolving(db: Db) {
    let store = &db.store;
    let t0 = start();
    slots(store, "web", t0, 0..4, |k| k < 1).await;
    db.exec("UPDATE incidents SET operator_updated = true, state = 'identified'")
        .await;
    slots(store, "web", t0, 4..7, |_| true).await;
    let incidents = db.incidents("web").await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].0, "monitoring");
    assert!(
        incidents[0].1[1].starts_with("Check recovered after "),
        "{:?}",
        incidents[0].1
    );
    // Failing again while the operator watches: back to identified.
    slots(store, "web", t0, 7..10, |_| false).await;
    let incidents = db.incidents("web").await;
    assert_eq!(incidents.len(), 1, "the same incident, not a new one");
    assert_eq!(incidents[0].0, "identified");
    assert!(
        incidents[0].1[2].starts_with("Failing again: "),
        "{:?}",
        incidents[0].1
    );
}

async fn silence_becomes_unknown_without_an_incident_but_never_while_ingest_lags(db: Db) {
    let store = &db.store;
    let t0 = start();
    slots(store, "web", t0, 0..3, |_| true).await;
    let report = store.tick(now(), Some(10 * MINUTE)).await.unwrap();
    assert_eq!(report.lagging, 1, "lag beyond the interval defers silence");
    assert_eq!(db.changes("web", t0).await, [(0, "up".to_string())]);
    let report = store.tick(now(), Some(0)).await.unwrap();
    assert_eq!(report.changed, ["web"]);
    assert_eq!(
        db.changes("web", t0).await,
        [(0, "up".to_string()), (5 * MINUTE, "unknown".into())],
        "three intervals after the newest result"
    );
    assert!(db.incidents("web").await.is_empty());
    assert_eq!(
        db.count("SELECT count(*) FROM checks WHERE status = 'unknown'")
            .await,
        1
    );
}

/// The tick looks at a check only once its status could change with no new
/// result: results that keep coming are decided by their writes; with
/// nothing heard it looks once an interval, and at the instant the newest
/// result falls silent, which it decides exactly.
async fn the_tick_passes_over_a_check_until_its_status_could_change(db: Db) {
    let store = &db.store;
    let t0 = start();
    slots(store, "web", t0, 0..6, |_| true).await;
    let looked = |at: i64| async move {
        let report = store.tick(at, Some(0)).await.unwrap();
        assert!(report.changed.len() <= report.checks, "{report:?}");
        (report.checks, report.changed)
    };
    assert_eq!(
        looked(t0 + 5 * MINUTE + 30_000).await,
        (0, vec![]),
        "decided through its newest result by the write"
    );
    assert_eq!(
        looked(t0 + 6 * MINUTE + 1_000).await,
        (1, vec![]),
        "an interval with nothing heard"
    );
    assert_eq!(looked(t0 + 6 * MINUTE + 2_000).await, (0, vec![]));
    assert_eq!(
        looked(t0 + 8 * MINUTE + 1_000).await,
        (1, vec!["web".to_string()])
    );
    assert_eq!(
        db.changes("web", t0).await,
        [(0, "up".to_string()), (8 * MINUTE, "unknown".into())],
        "unknown exactly three intervals after the newest result"
    );
}

/// 250 checks, none decided, and a tick with no budget at all: each tick
/// decides one hundred (at least one transaction's worth) and defers the
/// rest; the next takes those never decided first, so three ticks decide
/// every check and a fourth finds none due.
async fn a_tick_past_its_budget_leaves_the_rest_to_the_next_most_overdue_first(db: Db) {
    let store = &db.store;
    let mut yaml = String::from("groups:\n  - name: Many\n    checks:\n");
    for n in 0..250 {
        yaml.push_str(&format!(
            "      - name: Check {n}\n        id: c{n}\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n"
        ));
    }
    store
        .sync_catalog(&catalog(&yaml), now() - 10 * MINUTE, Duration::ZERO)
        .await
        .unwrap();
    let undecided = "SELECT count(*) FROM checks WHERE decided_through IS NULL AND slug LIKE 'c%'";
    assert_eq!(db.count(undecided).await, 250);
    for (checked, deferred, left) in [(100, 150, 150), (100, 50, 50), (50, 0, 0)] {
        let report = store
            .tick_within(now(), Some(0), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            (report.checks, report.deferred),
            (checked, deferred),
            "{report:?}"
        );
        assert_eq!(db.count(undecided).await, left);
    }
    // Every check decided: none is due again yet, with the whole budget.
    let report = store.tick(now(), Some(0)).await.unwrap();
    assert_eq!((report.checks, report.deferred), (0, 0), "{report:?}");
}

/// Folding works in chunks of 250 checks (their minutes, then their hours),
/// each level its own transaction: a check waits until its oldest change is
/// a minute old; past its budget a pass folds one chunk, the checks whose
/// changes are oldest first, and leaves the rest, counted, to the next; a
/// full pass then finds every hour and day exact.
async fn a_fold_past_its_budget_folds_one_chunk_oldest_first(db: Db) {
    let store = &db.store;
    let t0 = start();
    let mut rs: Vec<_> = (0..259)
        .map(|n| result(&format!("c{n}"), "a", t0, n % 2 == 0))
        .collect();
    rs.push(result("late", "a", t0 - 60 * MINUTE, true));
    put(store, &batch("a", rs)).await;
    let at = |level: i16| format!("SELECT count(*) FROM rollups WHERE level = {level}");
    let hours_of = |slug: &str| {
        format!(
            "SELECT count(*) FROM rollups r JOIN checks c ON c.id = r.check_id
             WHERE c.slug = '{slug}' AND r.level = 1"
        )
    };
    assert_eq!(db.count(&at(0)).await, 260);

    // Half a minute after t0, only the change an hour older has settled.
    let report = store
        .fold_within(t0 + 30_000, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.written, report.deferred), (2, 0), "{report:?}");
    assert_eq!(db.count(&hours_of("late")).await, 1);

    // A check whose change is half an hour older than the others' goes first.
    put(
        store,
        &batch("a", vec![result("older", "a", t0 - 30 * MINUTE, true)]),
    )
    .await;
    let report = store.fold_within(now(), Duration::ZERO).await.unwrap();
    assert_eq!(
        (report.written, report.deferred),
        (500, 10),
        "250 hours and their 250 days; 10 checks left at the minute level: {report:?}"
    );
    assert_eq!(
        db.count(&hours_of("older")).await,
        1,
        "the oldest change went first"
    );
    assert_eq!((db.count(&at(1)).await, db.count(&at(2)).await), (251, 251));
    let unfolded = "SELECT count(*) FROM rollups WHERE NOT folded AND level < 2";
    assert_eq!(db.count(unfolded).await, 10, "the deferred minutes only");

    assert_eq!(
        store.fold_rollups().await.unwrap(),
        20,
        "the rest: 10 hours, 10 days"
    );
    assert_eq!(
        store.fold_rollups().await.unwrap(),
        0,
        "nothing changed since"
    );
    assert_eq!(db.count(unfolded).await, 0);
    for level in 0..3 {
        assert_eq!(db.count(&at(level)).await, 261, "level {level}");
        let (count, up) = (
            format!("SELECT CAST(sum(count) AS BIGINT) FROM rollups WHERE level = {level}"),
            format!("SELECT CAST(sum(up) AS BIGINT) FROM rollups WHERE level = {level}"),
        );
        assert_eq!(
            (db.count(&count).await, db.count(&up).await),
            (261, 132),
            "level {level}: every result once"
        );
    }
}

/// Catalog sync writes every field of each check, NULLs included, in one
/// statement a chunk, the same on both databases; a catalog that changes
/// one check's field rewrites that check alone.
async fn catalog_sync_stores_every_field_and_rewrites_only_what_changed(db: Db) {
    let store = &db.store;
    let yaml = r#"groups:
  - name: Shop "&" <Co>
    description: Where 'money' changes hands.
    slo: { target: 99.5%, window: 7d }
    checks:
      - name: Checkout ü
        id: checkout
        description: The basket's last step.
        locations: all
        quorum: 2
        failure_threshold: 3
        success_threshold: 1
        reopen_window: 30m
        interval: 2m
        http: { url: "http://127.0.0.1:9/checkout" }
      - name: Internal
        id: internal
        public: false
        tcp: { host: 127.0.0.1, port: 9 }
"#;
    let fields = "SELECT {at}, slug || '|' || name || '|' || group_name || '|'
            || COALESCE(description, '-') || '|' || CAST(CASE WHEN public THEN 1 ELSE 0 END AS TEXT)
            || '|' || kind || '|' || CAST(position AS TEXT) || '|' || CAST(interval_ms AS TEXT)
            || '|' || CAST(failure_threshold AS TEXT) || '|' || CAST(success_threshold AS TEXT)
            || '|' || COALESCE(CAST(quorum AS TEXT), '-') || '|' || CAST(reopen_window_ms AS TEXT)
            || '|' || COALESCE(CAST(locations AS TEXT), '-') || '|' || COALESCE(group_description, '-')
            || '|' || COALESCE(CAST(slo_target_ppm AS TEXT), '-')
            || '|' || COALESCE(CAST(slo_window_days AS TEXT), '-')
            || '|' || CAST(CASE WHEN placeholder THEN 1 ELSE 0 END AS TEXT)
          FROM checks ORDER BY slug";
    let at = now() - MINUTE;
    store
        .sync_catalog(&catalog(yaml), at, Duration::ZERO)
        .await
        .unwrap();
    let rows = db.rows(fields, "created_at").await;
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        [
            "checkout|Checkout ü|Shop \"&\" <Co>|The basket's last step.|1|http|0|120000|3|1|2|1800000|0|Where 'money' changes hands.|995000|7|0",
            "internal|Internal|Shop \"&\" <Co>|-|0|tcp|1|60000|2|2|-|600000|3|Where 'money' changes hands.|995000|7|0",
        ]
    );
    assert!(
        rows.iter().all(|r| r.0 == at),
        "created when synced: {rows:?}"
    );

    // One field of one check changes: that row alone is written.
    let before = db.rows(fields, "created_at").await;
    store
        .sync_catalog(
            &catalog(&yaml.replace("Checkout ü", "Checkout")),
            at + MINUTE,
            Duration::ZERO,
        )
        .await
        .unwrap();
    let after = db.rows(fields, "created_at").await;
    assert_eq!(after[1], before[1], "the other check is untouched");
    assert!(after[0].1.starts_with("checkout|Checkout|"), "{after:?}");
    assert_eq!(after[0].0, at, "an update keeps the row's creation");
}

async fn a_retired_check_resolves_its_automatic_incident(db: Db) {
    let store = &db.store;
    let t0 = start();
    let yaml = "groups:\n  - name: Web\n    checks:\n      - name: Home\n        id: web\n        http:\n          url: http://127.0.0.1:9/\n";
    store
        .sync_catalog(&catalog(yaml), now(), Duration::ZERO)
        .await
        .unwrap();
    slots(store, "web", t0, 0..3, |_| false).await;
    assert_eq!(db.incidents("web").await[0].0, "investigating");
    let empty = catalog(&yaml.replace("id: web", "id: other"));
    let retired = store
        .sync_catalog(&empty, now(), Duration::from_secs(600))
        .await
        .unwrap();
    assert!(retired.is_empty(), "absent, but not yet for 10 minutes");
    let retired = store
        .sync_catalog(&empty, now() + 11 * MINUTE, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(retired, ["web"]);
    let incidents = db.incidents("web").await;
    assert_eq!(incidents[0].0, "resolved");
    assert_eq!(
        incidents[0].1.last().unwrap(),
        "Resolved: the check was removed from the configuration."
    );
}

async fn migrated_is_false_on_an_empty_database_and_true_after_migrate(db: Db) {
    // `db` is migrated already: a second database of the same kind is not.
    let dir =
        std::env::temp_dir().join(format!("statuspage-empty-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    let _keep = TempDir(dir.clone());
    let fresh = match &db.store {
        ingest::store::Store::Pg(pg) => {
            let pool = pg.pool();
            sqlx::query("CREATE SCHEMA IF NOT EXISTS empty")
                .execute(pool)
                .await
                .unwrap();
            let url = std::env::var("DATABASE_URL").unwrap();
            let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
            let options = options.options([("search_path", "empty")]);
            let name: String = sqlx::query_scalar("SELECT current_database()")
                .fetch_one(pool)
                .await
                .unwrap();
            let empty = sqlx::PgPool::connect_with(options.database(&name))
                .await
                .unwrap();
            ingest::store::Store::Pg(ingest::store::PgStore::from_pool(empty, Default::default()))
        }
        ingest::store::Store::Sqlite(_) => ingest::store::Store::connect_lazy(
            &format!("sqlite://{}", dir.join("e.db").display()),
            1,
            Default::default(),
        )
        .unwrap(),
    };
    assert!(db.store.migrated().await.unwrap());
    let store = fresh;
    assert!(!store.migrated().await.unwrap());
    store.migrate().await.unwrap();
    assert!(store.migrated().await.unwrap());
    store.migrate().await.expect("migrating twice is a no-op");
}

/// The README's worked example, row by row.
async fn the_readme_worked_example_holds(db: Db) {
    let store = &db.store;
    let t0 = start();
    let table: [[bool; 3]; 7] = [
        [true, true, true],
        [true, true, true],
        [false, false, true],
        [false, false, true],
        [false, true, true],
        [true, true, true],
        [true, true, true],
    ];
    for (k, row) in table.iter().enumerate() {
        for (agent, up) in AGENTS.iter().zip(row) {
            put(
                store,
                &batch(
                    agent,
                    vec![result("web", agent, t0 + k as i64 * MINUTE, *up)],
                ),
            )
            .await;
        }
    }
    store.tick(now(), Some(0)).await.unwrap();
    let got = db.changes("web", t0).await;
    assert_eq!(
        got,
        [
            (0, "up".to_string()),
            (3 * MINUTE, "down".into()),
            (5 * MINUTE, "degraded".into()),
            (6 * MINUTE, "up".into()),
            (9 * MINUTE, "unknown".into())
        ]
    );
    let incidents = db.incidents("web").await;
    assert_eq!(
        incidents,
        [(
            "resolved".to_string(),
            vec![
                "Detected: 2 of 3 locations failing (connect_refused)".to_string(),
                "Recovered in 2 of 3 locations; still failing in 1. Impact lowered to minor."
                    .into(),
                "Resolved automatically after 3m.".into()
            ]
        )]
    );
    let changes = db.all_changes().await;
    let hour = ingest::uptime::tally(&changes, t0, t0, t0 + 60 * MINUTE);
    assert_eq!((hour.down_ms, hour.observed_ms), (2 * MINUTE, 9 * MINUTE));
    assert_eq!(
        ingest::uptime::percent_floor(hour.ratio().unwrap(), 2),
        "77.77%"
    );
}

async fn rollups_count_each_inserted_result_once_and_estimate_quantiles(db: Db) {
    let store = &db.store;
    let t0 = start();
    let rs: Vec<_> = (0..20)
        .map(|i| {
            let mut r = result("web", "a", t0 + i * 1000, i % 5 != 0);
            r.duration_us = 10_000 + i as u64 * 1000;
            r.phases.connect_us = Some(2_000);
            r
        })
        .collect();
    // Twenty slots one second apart: one minute bucket, one hour, one day.
    let b = batch("a", rs);
    put(store, &b).await;
    put(store, &b).await; // redelivered: nothing counted twice
    assert_eq!(db.rollups().await.len(), 1, "messages write minutes only");
    assert_eq!(store.fold_rollups().await.unwrap(), 2, "an hour and a day");
    assert_eq!(
        store.fold_rollups().await.unwrap(),
        0,
        "nothing changed since"
    );
    let rows = db.rollups().await;
    assert_eq!(rows.len(), 3, "minute, hour and day");
    for (_, count, up, bytes) in &rows {
        assert_eq!((*count, *up), (20, 16));
        let r = ingest::rollup::Rollup::decode(20, 16, bytes).unwrap();
        assert_eq!(r.measures[0].count, 20);
        assert_eq!(r.measures[0].max_us, 29_000);
        assert_eq!(r.measures[2].count, 20, "connect");
        assert_eq!(r.measures[1].count, 0, "no dns phase");
        let p50 = r.measures[0].quantile_us(0.5).unwrap();
        assert!((0.84..=1.19).contains(&(p50 / 19_000.0)), "p50 {p50}");
    }
    // A late result in a folded minute: its hour and day are recomputed whole.
    put(
        store,
        &batch("a", vec![result("web", "a", t0 + 30_500, true)]),
    )
    .await;
    assert_eq!(store.fold_rollups().await.unwrap(), 2);
    let counts: Vec<(i64, i64)> = db.rollups().await.into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(counts, [(0, 21), (1, 21), (2, 21)]);
}

async fn retention_drops_old_raw_days_and_rollups_but_keeps_history(db: Db) {
    let store = &db.store;
    let day = 86_400_000;
    let today = now() / day * day;
    // Twenty days of history: a result, a status change and an incident per day.
    store.ensure_partitions_back(now(), 21 * day).await.unwrap();
    for d in 0..20 {
        // Halfway between midnight and now: clear of both, at any hour.
        let at = today - d * day + (now() - today) / 2;
        let then = at + 1000;
        let b = batch("a", vec![result("web", "a", at, d % 2 == 0)]);
        let screened = ingest::screen::screen(b.clone(), then, 30 * day).unwrap();
        store
            .store_batch(&b.agent, b.sent_at, &screened.accepted, then)
            .await
            .unwrap();
    }
    assert_eq!(
        store.fold_rollups().await.unwrap(),
        40,
        "20 hours and 20 days"
    );
    // An hour rollup from long ago (kept 400 days) and one still inside.
    for (age, level) in [(401, 1_i16), (399, 1), (500, 2)] {
        db.add_rollup(level, today - age * day).await;
    }
    let results_before = db.count("SELECT count(*) FROM results").await;
    let changes_before = db.count("SELECT count(*) FROM status_changes").await;
    let incidents_before = db.count("SELECT count(*) FROM incidents").await;
    assert_eq!(results_before, 20);
    assert!(changes_before > 1);

    let dropped = store.retain(now(), 7 * day).await.unwrap();
    // Whole days go: those that ended at or before now - 7 days (8 to 21
    // days ago). The day that began 7 days ago stays until it has all passed.
    let kept_days = db.count("SELECT count(*) FROM results").await;
    assert_eq!(kept_days, 8, "today and the seven days before: {dropped:?}");
    let names: Vec<String> = (8..=21)
        .rev()
        .map(|d| {
            format!(
                "results_{}",
                chrono::DateTime::from_timestamp_millis(today - d * day)
                    .unwrap()
                    .format("%Y%m%d")
            )
        })
        .collect();
    match &db.store {
        ingest::store::Store::Pg(_) => assert_eq!(dropped.partitions, names),
        ingest::store::Store::Sqlite(_) => {
            assert_eq!(dropped.results, 12, "rows of 8 to 19 days ago")
        }
    }
    let minutes = db
        .count("SELECT count(*) FROM rollups WHERE level = 0")
        .await;
    assert_eq!(
        minutes, 14,
        "minute rollups of the last 14 days stay: {dropped:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM rollups WHERE level = 1")
            .await,
        20 + 1,
        "hours: 20 days of data and the one 399 days old"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM rollups WHERE level = 2")
            .await,
        20 + 1,
        "days are kept forever"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM status_changes").await,
        changes_before,
        "history is never deleted"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM incidents").await,
        incidents_before
    );
    let again = store.retain(now(), 7 * day).await.unwrap();
    assert_eq!(
        again,
        ingest::store::Dropped::default(),
        "a second pass drops nothing"
    );
}

async fn every_status_change_is_announced_in_process(db: Db) {
    let mut rx = db.store.subscribe();
    let t0 = start();
    put(&db.store, &batch("a", vec![result("web", "a", t0, true)])).await;
    put(
        &db.store,
        &batch("a", vec![result("web", "a", t0 + MINUTE, true)]),
    )
    .await;
    assert_eq!(
        rx.try_recv().ok(),
        Some(vec!["web".to_string()]),
        "the first status"
    );
    assert!(rx.try_recv().is_err(), "no change, no signal");
    db.store.tick(now(), Some(0)).await.unwrap();
    assert_eq!(
        rx.try_recv().ok(),
        Some(vec!["web".to_string()]),
        "silence is a change too"
    );
}

#[sqlx::test(migrations = false)]
async fn postgres_notifies_dashboards_of_each_change(pool: sqlx::PgPool) {
    let db = Db::pg(pool.clone()).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("statuspage_changes").await.unwrap();
    put(
        &db.store,
        &batch("a", vec![result("web", "a", start(), true)]),
    )
    .await;
    let got = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(got.payload(), "web");
}

crate::conformance!(
    an_slo_set_for_a_group_reaches_every_check_and_follows_each_change,
    a_partial_recovery_lowers_the_impact_and_a_reopened_incident_counts_only_its_open_time,
    every_status_change_is_announced_in_process,
    duplicate_results_are_ignored_completely_and_counted,
    results_whose_pairs_were_lost_are_still_stored_exactly_once,
    a_quorum_of_failing_locations_opens_one_incident_that_resolves_with_its_duration,
    fewer_failing_locations_than_the_quorum_is_degraded_without_an_incident,
    a_late_result_within_the_buffer_is_put_in_place,
    an_unknown_check_is_kept_under_a_placeholder_and_adopted_by_catalog_sync,
    nothing_opens_during_maintenance_and_a_check_still_down_at_its_end_opens_one,
    an_operator_updated_incident_goes_to_monitoring_instead_of_resolving,
    silence_becomes_unknown_without_an_incident_but_never_while_ingest_lags,
    the_tick_passes_over_a_check_until_its_status_could_change,
    a_tick_past_its_budget_leaves_the_rest_to_the_next_most_overdue_first,
    a_fold_past_its_budget_folds_one_chunk_oldest_first,
    catalog_sync_stores_every_field_and_rewrites_only_what_changed,
    a_retired_check_resolves_its_automatic_incident,
    migrated_is_false_on_an_empty_database_and_true_after_migrate,
    the_readme_worked_example_holds,
    rollups_count_each_inserted_result_once_and_estimate_quantiles,
    retention_drops_old_raw_days_and_rollups_but_keeps_history,
    churning_agents_neither_grow_the_check_row_nor_stay_forever,
);

/// 501 agent ids churn over a simulated week, three at a time, each for an
/// hour (nodes of an autoscaled cluster): the check's row keeps only the
/// locations of the last hours, so it stays far from TOAST size, and a
/// prune deletes the agents unseen since its cutoff, with their pairs.
async fn churning_agents_neither_grow_the_check_row_nor_stay_forever(db: Db) {
    let store = &db.store;
    let hour = 60 * MINUTE;
    let first = now() - 7 * 24 * hour + hour;
    for h in 0..167 {
        let messages: Vec<_> = (0..3)
            .map(|k| {
                let agent = format!("n{}", h * 3 + k);
                let r = result("web", &agent, first + h * hour, true);
                ingest::screen::screen(batch(&agent, vec![r]), now(), ingest::screen::MAX_AGE_MS)
                    .unwrap()
            })
            .collect();
        let messages: Vec<ingest::store::Message> = messages
            .iter()
            .map(|s| ingest::store::Message {
                agent: &s.agent,
                sent_at: s.sent_at,
                results: &s.accepted,
            })
            .collect();
        store.store_messages(&messages, now()).await.unwrap();
    }
    let latest = db
        .count("SELECT CAST(length(latest) AS BIGINT) FROM checks WHERE slug = 'web'")
        .await;
    assert!(
        latest <= 10 * 20,
        "latest keeps the last hours' locations only: {latest} bytes"
    );
    if let View::Pg(_) = &*db {
        let row = db
            .count("SELECT pg_column_size(c.*)::int8 FROM checks c WHERE slug = 'web'")
            .await;
        assert!(row <= 2048, "the check's row is {row} bytes: no TOAST");
    }
    assert_eq!(db.count("SELECT count(*) FROM agents").await, 501);

    // The first 300 were last heard eight days ago.
    let old = match &*db {
        View::Pg(_) => "now() - interval '8 days'",
        View::Sqlite(_) => "(CAST(strftime('%s', 'now') AS INTEGER) - 8 * 86400) * 1000",
    };
    db.exec(&format!(
        "UPDATE agents SET last_seen = {old} WHERE CAST(substr(name, 2) AS INTEGER) < 300"
    ))
    .await;
    let pruned = store.prune(now() - 7 * 24 * hour).await.unwrap();
    assert_eq!(
        pruned,
        ingest::store::Pruned {
            agents: 300,
            pairs: 300
        }
    );
    assert_eq!(db.count("SELECT count(*) FROM agents").await, 201);
    assert_eq!(db.count("SELECT count(*) FROM pairs").await, 201);
    // The results and the status history are untouched.
    assert_eq!(db.count("SELECT count(*) FROM results").await, 501);
}

/// Down everywhere opens a major incident; recovered in two of three
/// locations (`degraded`) lowers it to minor with an update, and only `up`
/// resolves it. Down again within the reopen window reopens it (major), and
/// its duration then counts only the minutes it was open.
async fn a_partial_recovery_lowers_the_impact_and_a_reopened_incident_counts_only_its_open_time(
    db: Db,
) {
    let store = &db.store;
    let t0 = start();
    let fails = |k: i64, agent: &str| match k {
        2..=3 | 8..=9 => true,
        4..=5 => agent == "a",
        _ => false,
    };
    // Each slot's three results arrive together, as one receive.
    for k in 0..12 {
        let screened: Vec<_> = AGENTS
            .iter()
            .map(|agent| {
                let r = result("web", agent, t0 + k * MINUTE, !fails(k, agent));
                ingest::screen::screen(batch(agent, vec![r]), now(), ingest::screen::MAX_AGE_MS)
                    .unwrap()
            })
            .collect();
        let messages: Vec<ingest::store::Message> = screened
            .iter()
            .map(|s| ingest::store::Message {
                agent: &s.agent,
                sent_at: s.sent_at,
                results: &s.accepted,
            })
            .collect();
        store.store_messages(&messages, now()).await.unwrap();
    }
    assert_eq!(
        db.changes("web", t0).await,
        [
            (0, "up".to_string()),
            (3 * MINUTE, "down".into()),
            (5 * MINUTE, "degraded".into()),
            (7 * MINUTE, "up".into()),
            (9 * MINUTE, "down".into()),
            (11 * MINUTE, "up".into()),
        ]
    );
    let incidents = db.incidents("web").await;
    assert_eq!(
        incidents.len(),
        1,
        "reopened, not a second one: {incidents:?}"
    );
    let (state, updates) = &incidents[0];
    assert_eq!(state, "resolved");
    assert_eq!(updates.len(), 5, "{updates:?}");
    assert_eq!(
        updates[0],
        "Detected: 3 of 3 locations failing (connect_refused)"
    );
    assert_eq!(
        updates[1],
        "Recovered in 2 of 3 locations; still failing in 1. Impact lowered to minor."
    );
    assert_eq!(updates[2], "Resolved automatically after 4m.");
    assert_eq!(
        updates[3],
        "Reopened: 3 of 3 locations failing (connect_refused)"
    );
    assert_eq!(
        updates[4], "Resolved automatically after 6m.",
        "4 minutes, then 2 more: not the 8 since it first started"
    );
    let impact = db.rows("SELECT id, impact FROM incidents", "").await;
    assert_eq!(impact[0].1, "major", "a reopened outage is major again");
}

async fn an_slo_set_for_a_group_reaches_every_check_and_follows_each_change(db: Db) {
    let store = &db.store;
    let yaml = |group_slo: &str| {
        format!(
            "defaults: {{ slo: {{ target: 99%, window: 7d }} }}\n\
             groups:\n  - name: Web\n{group_slo}    checks:\n\
             \x20     - {{ name: Home, id: web, tcp: {{ host: 127.0.0.1, port: 9 }} }}\n\
             \x20     - {{ name: Shop, id: shop, slo: {{ target: 99.5%, window: 28d }}, tcp: {{ host: 127.0.0.1, port: 9 }} }}\n"
        )
    };
    let slos = async || {
        let mut got: Vec<(String, Option<config::catalog::Slo>)> = store
            .check_statuses()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.slug, c.slo))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    let slo = |target_ppm, window_days| {
        Some(config::catalog::Slo {
            target_ppm,
            window_days,
        })
    };
    // Syncs `text`, then reads every check's objective back.
    let synced = async |text: String| {
        store
            .sync_catalog(&catalog(&text), now(), Duration::ZERO)
            .await
            .unwrap();
        slos().await
    };
    let shop = ("shop".to_string(), slo(995_000, 28));
    assert_eq!(
        synced(yaml("")).await,
        [shop.clone(), ("web".into(), slo(990_000, 7))]
    );
    // Only the group's objective changes (no check's own text does): sync
    // still rewrites the row.
    assert_eq!(
        synced(yaml("    slo: { target: 99.95%, window: 30d }\n")).await,
        [shop.clone(), ("web".into(), slo(999_500, 30))]
    );
    // Gone from the YAML, gone from the row.
    let without = yaml("").replace("defaults: { slo: { target: 99%, window: 7d } }\n", "");
    assert_eq!(synced(without).await, [shop, ("web".into(), None)]);
}

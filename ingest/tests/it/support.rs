//! Builders and helpers shared by the ingest tests.

use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, ResultBatch, Timestamp};
use ingest::store::PgStore;
use sqlx::PgPool;
use std::path::PathBuf;

pub const MINUTE: i64 = 60_000;

/// Real now, in ms.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A minute boundary an hour ago: the first slot of a test's history.
pub fn start() -> i64 {
    (now() - 60 * MINUTE) / MINUTE * MINUTE
}

/// A result of `check` from `agent` for the slot `at`.
pub fn result(check: &str, agent: &str, at: i64, up: bool) -> ProbeResult {
    let mut r = ProbeResult::new(
        check,
        "hash",
        agent,
        Timestamp::from_unix_ms(at).expect("a valid instant"),
        60_000_000,
        3,
    );
    if !up {
        r.outcome = Outcome::Down;
        r.reason = Reason::ConnectRefused;
        r.set_message("connection refused");
    }
    r.duration_us = 1234;
    r
}

/// A batch from `agent` (zone `z-<agent>`).
pub fn batch(agent: &str, results: Vec<ProbeResult>) -> ResultBatch {
    ResultBatch {
        v: 1,
        agent: AgentInfo {
            id: agent.into(),
            zone: format!("z-{agent}"),
            region: "test-1".into(),
        },
        sent_at: Timestamp::from_unix_ms(now()).expect("now"),
        results,
    }
}

/// A migrated store over the test's database, with partitions made.
pub async fn store(pool: PgPool) -> PgStore {
    let store = PgStore::from_pool(pool);
    store.migrate().await.expect("migrations apply");
    store.ensure_partitions(now()).await.expect("partitions");
    store
}

/// Stores a batch as the consumer would.
pub async fn put(store: &PgStore, b: &ResultBatch) -> ingest::store::Stored {
    let screened = ingest::screen::screen(b.clone(), now()).expect("a v1 batch");
    assert!(screened.rejected.is_empty(), "{:?}", screened.rejected);
    store
        .store_batch(&b.agent, b.sent_at, &screened.accepted, now())
        .await
        .expect("stored")
}

/// `(at - start, status)` of a check's status changes.
pub async fn changes(pool: &PgPool, check: &str, start: i64) -> Vec<(i64, String)> {
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
        "SELECT s.at, s.status FROM status_changes s JOIN checks c ON c.id = s.check_id
         WHERE c.slug = $1 ORDER BY s.at",
    )
    .bind(check)
    .fetch_all(pool)
    .await
    .expect("status changes");
    rows.into_iter()
        .map(|(at, s)| (at.timestamp_millis() - start, s))
        .collect()
}

/// `(state, [update messages])` of each incident of a check, oldest first.
pub async fn incidents(pool: &PgPool, check: &str) -> Vec<(String, Vec<String>)> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT i.id, i.state FROM incidents i JOIN checks c ON c.id = i.check_id
         WHERE c.slug = $1 ORDER BY i.id",
    )
    .bind(check)
    .fetch_all(pool)
    .await
    .expect("incidents");
    let mut out = Vec::new();
    for (id, state) in rows {
        let updates: Vec<String> = sqlx::query_scalar(
            "SELECT message FROM incident_updates WHERE incident_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("updates");
        out.push((state, updates));
    }
    out
}

/// A row count.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// A catalog from YAML text.
pub fn catalog(yaml: &str) -> config::Catalog {
    config::load_str(&[(PathBuf::from("test.yaml"), yaml.to_string())], &|_| None)
        .unwrap_or_else(|e| panic!("valid YAML: {e:?}"))
}

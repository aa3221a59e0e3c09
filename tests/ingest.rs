//! `statuspage migrate` and `statuspage ingest` as they run in production,
//! against the PostgreSQL and moto servers `scripts/test` started.

mod support;

use sqlx::{Connection, PgConnection};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, fresh_queue, metric, metrics, signal};

fn statuspage(args: &[&str], database: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(args)
        .env("STATUSPAGE_DATABASE_URL", database)
        .output()
        .unwrap()
}

/// A fresh, empty database on the test server; returns its URL.
async fn fresh_database(tag: &str) -> String {
    support::fresh_database(tag).await.0
}

#[tokio::test]
async fn migrate_check_tells_unmigrated_from_migrated_and_unreachable() {
    let db = fresh_database("migrate_check").await;
    let out = statuspage(&["migrate", "--check"], &db);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not fully migrated"));
    let out = statuspage(&["migrate"], &db);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    let out = statuspage(&["migrate", "--check"], &db);
    assert_eq!(out.status.code(), Some(0));
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let out = statuspage(&["migrate", "--check"], &closed);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("not reachable"), "{said}");
    assert!(
        !said.contains("postgres://"),
        "the URL is never printed: {said}"
    );
}

#[test]
fn migrate_works_on_sqlite_and_a_second_run_is_a_no_op() {
    let dir = std::env::temp_dir().join(format!("statuspage-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("status.db").display());
    assert_eq!(
        statuspage(&["migrate", "--check"], &db).status.code(),
        Some(1),
        "a new file is not migrated"
    );
    for _ in 0..2 {
        let out = statuspage(&["migrate"], &db);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = statuspage(&["migrate", "--check"], &db);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fully migrated"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_ingest_and_migrate_flags_get_clear_errors() {
    let out = statuspage(&["migrate"], "mysql://nope");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "expected a postgres:// or sqlite:// database URL, found one starting \"mysql\""
        ),
        "{said}"
    );
    assert!(
        !said.contains("mysql://nope"),
        "the URL is never printed: {said}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "ingest",
            "--queue-url",
            "http://127.0.0.1:9/q",
            "--raw-retention",
            "a week",
        ])
        .env("STATUSPAGE_DATABASE_URL", "sqlite://unused.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("expected a duration such as `7d`"), "{said}");
}

fn ingest(db: &str, queue: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "ingest",
            "--queue-url",
            queue,
            "--wait-seconds",
            "1",
            "--log-format",
            "text",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("STATUSPAGE_DATABASE_URL", db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn batch_body(t0: i64) -> String {
    let at = config::wire::Timestamp::from_unix_ms(t0).unwrap();
    let results = ["a", "b", "c"]
        .iter()
        .map(|check| config::wire::ProbeResult::new(check, "h", "agent-1", at, 60_000_000, 1))
        .collect();
    let batch = config::wire::ResultBatch {
        v: 1,
        agent: config::wire::AgentInfo {
            id: "agent-1".into(),
            zone: "z".into(),
            region: String::new(),
            label: String::new(),
        },
        sent_at: at,
        results,
    };
    config::wire::encode(&batch, false).unwrap().body
}

async fn count(db: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_killed_before_commit_loses_and_doubles_nothing() {
    let db = fresh_database("crash_before_commit").await;
    assert!(statuspage(&["migrate"], &db).status.success());
    let (sqs, queue) = fresh_queue("crash").await;
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "2",
        )
        .send()
        .await
        .unwrap();
    // This minute: silence (three intervals on) cannot come before the test ends.
    let t0 = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000;
    sqs.send_message()
        .queue_url(&queue)
        .message_body(batch_body(t0))
        .send()
        .await
        .unwrap();

    // Hold a lock the message's transaction needs, so ingest is stuck inside it.
    let mut blocker = PgConnection::connect(&db).await.unwrap();
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("LOCK TABLE results IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let port = free_port();
    let mut first = ingest(&db, &queue, port);
    let mut watch = PgConnection::connect(&db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut watch, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'statuspage-ingest' AND wait_event_type = 'Lock'").await < 1 {
        assert!(Instant::now() < deadline, "ingest never reached the insert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&first, "KILL");
    first.wait().unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&mut watch, "SELECT count(*) FROM results").await,
        0,
        "nothing was committed"
    );

    let port = free_port();
    let mut second = ingest(&db, &queue, port);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .values()
            .map(|v| v.parse::<i64>().unwrap_or(0))
            .sum::<i64>();
        if count(&mut watch, "SELECT count(*) FROM results").await == 3 && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the redelivered message was not stored and deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = metrics(port);
    assert!(support::http_raw(port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(
        support::http_raw(port, "/readyz").starts_with("HTTP/1.1 200"),
        "ready: the database answers"
    );
    assert_eq!(
        metric(
            &text,
            "statuspage_ingest_results_total{result=\"inserted\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(count(&mut watch, "SELECT count(*) FROM checks").await, 3);
    assert_eq!(
        count(&mut watch, "SELECT count(*) FROM status_changes").await,
        3,
        "one per check"
    );
    assert_eq!(count(&mut watch, "SELECT count(*) FROM agents").await, 1);
    signal(&second, "TERM");
    let status = second.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

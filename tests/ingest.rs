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
            "statuspage_ingest_results_total",
            &[("result", "inserted")]
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

/// A batch from `agent` with an up result for each of `checks`, sent now.
fn batch_from(agent: &str, checks: &[&str]) -> String {
    let at = config::wire::Timestamp::from_unix_ms(chrono::Utc::now().timestamp_millis()).unwrap();
    let batch = config::wire::ResultBatch {
        v: 1,
        agent: config::wire::AgentInfo {
            id: agent.into(),
            zone: "z".into(),
            region: String::new(),
            label: String::new(),
        },
        sent_at: at,
        results: checks
            .iter()
            .map(|c| config::wire::ProbeResult::new(c, "h", agent, at, 60_000_000, 1))
            .collect(),
    };
    config::wire::encode(&batch, false).unwrap().body
}

/// What one ingest process exports of the leader-only families.
fn leader_series(text: &str) -> Vec<String> {
    config::exposition::samples(text)
        .into_iter()
        .filter(|s| {
            [
                "statuspage_check_up",
                "statuspage_check_status",
                "statuspage_agent_last_seen_timestamp_seconds",
                "statuspage_incidents_open",
            ]
            .contains(&s.name.as_str())
        })
        .map(|s| {
            let who = s.label("check").or(s.label("agent")).unwrap_or("");
            format!("{}:{who}", s.name)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_only_series_follow_the_lead_and_leave_with_a_retired_check_or_a_pruned_agent() {
    let db = fresh_database("leader_series").await;
    assert!(statuspage(&["migrate"], &db).status.success());
    let (sqs, queue) = fresh_queue("leader-series").await;
    let dir = std::env::temp_dir().join(format!("statuspage-leader-series-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    let yaml = |checks: &[&str]| {
        let mut y = String::from("groups:\n  - name: G\n    checks:\n");
        for c in checks {
            y.push_str(&format!("      - name: {c}\n        id: {c}\n        interval: 60s\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n"));
        }
        y
    };
    std::fs::write(&config, yaml(&["a", "b"])).unwrap();
    let tick = Duration::from_secs(1);
    let start = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["ingest", "--queue-url", &queue, "--wait-seconds", "1"])
            .args(["--config", config.to_str().unwrap()])
            .args(["--tick-seconds", "1", "--retire-after-seconds", "3"])
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .env("STATUSPAGE_DATABASE_URL", &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let ports = [free_port(), free_port()];
    let mut replicas = [start(ports[0]), start(ports[1])];
    for agent in ["agent-1", "agent-2"] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(batch_from(agent, &["a", "b"]))
            .send()
            .await
            .unwrap();
    }
    let everything = [
        "statuspage_check_status:a",
        "statuspage_check_status:b",
        "statuspage_check_up:a",
        "statuspage_check_up:b",
        "statuspage_agent_last_seen_timestamp_seconds:agent-1",
        "statuspage_agent_last_seen_timestamp_seconds:agent-2",
        "statuspage_incidents_open:",
    ];
    // One replica leads and exports everything; the other exports none of it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let leader = loop {
        let texts: Vec<String> = ports
            .iter()
            .map(|p| support::http_body(*p, "/metrics").unwrap_or_default())
            .collect();
        let leading: Vec<usize> = (0..2)
            .filter(|i| metric(&texts[*i], "statuspage_ingest_leader", &[]) == 1.0)
            .collect();
        if let [l] = leading[..] {
            let series = leader_series(&texts[l]);
            if everything.iter().all(|e| series.iter().any(|s| s == e)) {
                assert_eq!(
                    leader_series(&texts[1 - l]),
                    Vec::<String>::new(),
                    "the follower exports no leader series"
                );
                break l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no single leader exporting everything: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Check b leaves the YAML and goes silent; agent-1 goes silent while agent-2 reports.
    std::fs::write(&config, yaml(&["a"])).unwrap();
    let reporting = {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                let _ = sqs
                    .send_message()
                    .queue_url(&queue)
                    .message_body(batch_from("agent-2", &["a"]))
                    .send()
                    .await;
            }
        })
    };
    let mut watch = PgConnection::connect(&db).await.unwrap();
    // The leader syncs the catalog at a change and then every minute: b is
    // marked absent at once and retired at the first sync 3 s after that.
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut retired_at = None;
    let gone_at = loop {
        if retired_at.is_none()
            && count(
                &mut watch,
                "SELECT count(*) FROM checks WHERE slug = 'b' AND retired_at IS NOT NULL",
            )
            .await
                == 1
        {
            retired_at = Some(Instant::now());
        }
        let series =
            leader_series(&support::http_body(ports[leader], "/metrics").unwrap_or_default());
        let b_gone = !series.iter().any(|s| s.ends_with(":b"));
        let agent_gone = !series.iter().any(|s| s.ends_with(":agent-1"));
        if retired_at.is_some() && b_gone && agent_gone {
            assert!(
                series.iter().any(|s| s == "statuspage_check_status:a"),
                "{series:?}"
            );
            assert!(
                series
                    .iter()
                    .any(|s| s == "statuspage_agent_last_seen_timestamp_seconds:agent-2"),
                "{series:?}"
            );
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "b retired {retired_at:?}; still exported: {series:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = gone_at - retired_at.unwrap();
    assert!(
        took <= 2 * tick + Duration::from_secs(1),
        "a retired check's series stayed {took:?} (two ticks are {:?})",
        2 * tick
    );

    // The leader stops: the other replica takes the lead and the export with it.
    signal(&replicas[leader], "TERM");
    assert!(replicas[leader].wait().unwrap().success());
    let other = 1 - leader;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = support::http_body(ports[other], "/metrics").unwrap_or_default();
        if metric(&text, "statuspage_ingest_leader", &[]) == 1.0
            && leader_series(&text)
                .iter()
                .any(|s| s == "statuspage_check_status:a")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never took the lead: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reporting.abort();
    signal(&replicas[other], "TERM");
    assert!(replicas[other].wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

//! Operating under failure, against real servers: a PostgreSQL that hangs
//! (a half-open connection, through `support::proxy`) and an SQS that does.
//!
//! Timings are compressed through the flags (deadlines of 2 s, a lease of
//! 4 s, a liveness bound of 6 s), so each test takes about a minute.

mod support;

use sqlx::{Connection, PgConnection};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::{
    Reaped, drain_queue, free_port, fresh_database, fresh_queue, http_body, http_status, metric,
    signal,
};

/// An ingest process on `db`, with every deadline compressed.
fn ingest(db: &str, queue: &str, config: &std::path::Path, port: u16, connections: u32) -> Reaped {
    Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["ingest", "--queue-url", queue, "--wait-seconds", "1"])
            .args(["--config", config.to_str().unwrap()])
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .args(["--database-max-connections", &connections.to_string()])
            .args([
                "--database-deadline",
                "2s",
                "--database-statement-timeout",
                "2s",
            ])
            .args(["--database-lock-timeout", "1s"])
            .args(["--database-idle-transaction-timeout", "3s"])
            .args(["--tick-seconds", "1", "--leader-lease", "4s"])
            .args(["--liveness-bound", "6s"])
            .env("STATUSPAGE_DATABASE_URL", db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Whether the ingest on `port` says it leads.
fn leads(port: u16) -> bool {
    metric(
        &http_body(port, "/metrics").unwrap_or_default(),
        "statuspage_ingest_leader",
        &[],
    ) == 1.0
}

/// A message from `agent-1` with an up result for checks a and b, sent now
/// (so each message's results are new).
fn batch() -> String {
    let at = config::wire::Timestamp::from_unix_ms(chrono::Utc::now().timestamp_millis()).unwrap();
    let batch = config::wire::ResultBatch {
        v: 1,
        agent: config::wire::AgentInfo {
            id: "agent-1".into(),
            zone: "z".into(),
            region: String::new(),
            label: String::new(),
        },
        sent_at: at,
        results: ["a", "b"]
            .iter()
            .map(|c| config::wire::ProbeResult::new(c, "h", "agent-1", at, 1_000_000, 1))
            .collect(),
    };
    config::wire::encode(&batch, false).unwrap().body
}

/// Polls `f` every 100 ms until it gives `Some`, checking `invariant` at
/// every poll; fails the test after `within`.
async fn step<T>(
    within: Duration,
    what: &str,
    invariant: &mut impl FnMut(),
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        invariant();
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL's `host:port` in `DATABASE_URL`.
fn postgres_address() -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL: scripts/test starts PostgreSQL");
    let options: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    format!("{}:{}", options.get_host(), options.get_port())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_database_fails_liveness_moves_the_lead_and_heals_without_a_restart_or_a_lost_result()
 {
    let (db, _) = fresh_database("halfopen").await;
    let migrated = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let (sqs, queue) = fresh_queue("halfopen").await;
    // Messages a cut-off replica took come back to the other one soon.
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5",
        )
        .send()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("statuspage-halfopen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        "groups:\n  - name: G\n    checks:\n      - { name: a, id: a, interval: 60s, tcp: { host: 127.0.0.1, port: 9 } }\n      - { name: b, id: b, interval: 60s, tcp: { host: 127.0.0.1, port: 9 } }\n",
    )
    .unwrap();

    // Replica A reaches PostgreSQL through the proxy, with one connection
    // only: were a connection dropped under a deadline to keep its pool slot
    // (sqlx#4349), A could never write again after the cut.
    let address = postgres_address();
    let proxy = Proxy::to(&address);
    let through = db.replacen(&address, &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(through, db, "the URL goes through the proxy");
    // B's port is chosen when B starts: a port chosen free now could be
    // bound by anything else in the seconds until then. Port 0 never leads.
    let (pa, pb) = (free_port(), std::cell::Cell::new(0));
    let mut a = ingest(&through, &queue, &config, pa, 1);
    let mut never_two_leaders = || {
        assert!(!(leads(pa) && leads(pb.get())), "two replicas lead at once");
    };
    step(
        Duration::from_secs(30),
        "A leads",
        &mut never_two_leaders,
        || leads(pa).then_some(()),
    )
    .await;

    let sender = {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tokio::spawn(async move {
            let mut sent = 0_i64;
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                let ok = sqs
                    .send_message()
                    .queue_url(&queue)
                    .message_body(batch())
                    .send()
                    .await
                    .is_ok();
                if ok {
                    sent += 2;
                }
                if sent >= 2 * 240 {
                    return sent;
                }
            }
        })
    };
    let mut watch = PgConnection::connect(&db).await.unwrap();
    let mut stored = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM results")
            .fetch_one(&mut watch)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored().await < 20 {
        assert!(Instant::now() < deadline, "results stored before the cut");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The cut comes while A's connection is in use: its write waits on the
    // check rows, locked here.
    let mut locker = PgConnection::connect(&db).await.unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("SELECT id FROM checks WHERE slug IN ('a', 'b') FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut other = PgConnection::connect(&db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'statuspage-ingest' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut other)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "A waits on the locked rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A's connections and new ones now hang, open, forever.
    proxy.black_hole();
    let cut = Instant::now();
    lock.rollback().await.unwrap();
    pb.set(free_port());
    let mut b = ingest(&db, &queue, &config, pb.get(), 4);
    let unlive = step(
        Duration::from_secs(30),
        "A's /healthz fails",
        &mut never_two_leaders,
        || (http_status(pa, "/healthz") == Some(503)).then(Instant::now),
    )
    .await;
    assert!(
        unlive - cut >= Duration::from_secs(5),
        "liveness held for its bound: {:?}",
        unlive - cut
    );
    step(
        Duration::from_secs(30),
        "B leads",
        &mut never_two_leaders,
        || leads(pb.get()).then_some(()),
    )
    .await;
    step(
        Duration::from_secs(20),
        "A stays cut",
        &mut never_two_leaders,
        || (cut.elapsed() >= Duration::from_secs(15)).then_some(()),
    )
    .await;

    // Healed: A answers again, with no restart.
    proxy.heal();
    step(
        Duration::from_secs(30),
        "A live again",
        &mut never_two_leaders,
        || (http_status(pa, "/healthz") == Some(200)).then_some(()),
    )
    .await;
    assert!(a.try_wait().unwrap().is_none(), "A was never restarted");

    // B leaves (handing the lease back): A alone leads and stores again.
    signal(&b, "TERM");
    assert!(b.wait().unwrap().success());
    step(
        Duration::from_secs(30),
        "A leads again",
        &mut never_two_leaders,
        || leads(pa).then_some(()),
    )
    .await;
    let before = stored().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored().await < before + 20 {
        assert!(Instant::now() < deadline, "A stores after the heal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing lost, nothing doubled.
    let sent = sender.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = stored().await;
        if n == sent {
            break;
        }
        assert!(n < sent, "more stored ({n}) than sent ({sent})");
        assert!(Instant::now() < deadline, "{n} of {sent} results stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal(&a, "TERM");
    assert!(a.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent's liveness is about its own loops, not SQS: a black-holed
/// queue (every send hangs until the SDK's deadline) never fails it, so
/// Kubernetes never restarts an agent and loses its in-memory buffer; once
/// the queue is back, what was buffered arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_queue_never_fails_the_agents_liveness_and_loses_nothing() {
    let (sqs, queue) = fresh_queue("agent-hung").await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("scripts/test starts moto");
    let proxy = Proxy::to(moto.trim_start_matches("http://"));
    let target = support::http_target(|_| false);
    let dir = std::env::temp_dir().join(format!("statuspage-agent-hung-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!("groups:\n  - name: G\n    checks:\n      - {{ name: web, id: web, interval: 1s, timeout: 500ms, http: {{ url: 'http://127.0.0.1:{target}/' }} }}\n"),
    )
    .unwrap();
    let port = free_port();
    let mut agent = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["agent", "--config", config.to_str().unwrap()])
            .args(["--queue-url", &queue, "--agent-id", "node-h"])
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .args(["--liveness-bound", "3s"])
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", proxy.port),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::until(Duration::from_secs(30), "the agent ready", || {
        (http_status(port, "/readyz") == Some(200)).then_some(())
    });
    let sent_before = metric(
        &http_body(port, "/metrics").unwrap_or_default(),
        "statuspage_agent_batches_sent_total",
        &[],
    );
    proxy.black_hole();
    // Five bounds long: every send hangs far longer than the bound.
    support::watch(Duration::from_secs(15), || {
        match http_status(port, "/healthz") {
            Some(200) => Ok(()),
            other => Err(format!(
                "the agent's /healthz answered {other:?} while SQS hung"
            )),
        }
    });
    let buffered = metric(
        &http_body(port, "/metrics").unwrap_or_default(),
        "statuspage_agent_runs_total",
        &[],
    );
    assert!(buffered >= 10.0, "probes kept running: {buffered}");
    proxy.heal();
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent kept running"
    );
    // The queue answers again: the agent delivers what it buffered, and the
    // rest as it stops.
    support::until(Duration::from_secs(60), "the buffer delivered", || {
        let text = http_body(port, "/metrics").unwrap_or_default();
        let sent = metric(&text, "statuspage_agent_batches_sent_total", &[]);
        (sent > sent_before && metric(&text, "statuspage_agent_buffer_results", &[]) == 0.0)
            .then_some(())
    });
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
    let delivered: usize = drain_queue(&sqs, &queue)
        .await
        .iter()
        .map(|b| b.results.len())
        .sum();
    assert!(
        delivered as f64 >= buffered,
        "{delivered} results delivered of the {buffered} run during the hang"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// After an ingest outage of six intervals, no check is ever `unknown`:
/// the restarted ingest judges no silence until its lag is known, from its
/// first receive cycle, and the backlog in the queue holds the results,
/// even while that backlog is invisible to it for a while.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_outage_of_six_intervals_never_shows_a_check_unknown() {
    let (db, _) = fresh_database("lagrestart").await;
    let (sqs, queue) = fresh_queue("lag-restart").await;
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in target.incoming() {});
    let dir = std::env::temp_dir().join(format!("statuspage-lag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!("defaults: {{ failure_threshold: 1, success_threshold: 1 }}\ngroups:\n  - name: G\n    checks:\n      - {{ name: db, id: db, interval: 2s, timeout: 1s, tcp: {{ host: 127.0.0.1, port: {target_port} }} }}\n"),
    )
    .unwrap();
    let mut agent = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["agent", "--config", config.to_str().unwrap()])
            .args(["--queue-url", &queue, "--agent-id", "node-l"])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = |port: u16| {
        Reaped(
            Command::new(env!("CARGO_BIN_EXE_statuspage"))
                .args(["ingest", "--queue-url", &queue, "--wait-seconds", "1"])
                .args(["--config", config.to_str().unwrap(), "--tick-seconds", "1"])
                .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
                .env("STATUSPAGE_DATABASE_URL", &db)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut ingest = start(free_port());
    let mut watch = PgConnection::connect(&db).await.unwrap();
    let mut history = async || -> Vec<String> {
        sqlx::query_scalar(
            "SELECT s.status FROM status_changes s JOIN checks c ON c.id = s.check_id
             WHERE c.slug = 'db' ORDER BY s.at",
        )
        .fetch_all(&mut watch)
        .await
        .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !history().await.contains(&"up".to_string()) {
        assert!(Instant::now() < deadline, "the check up before the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Checked at every poll from now on: the check's current status (what
    // the page and the API show) stays up. (A stretch of its past may read
    // `unknown` while results of that stretch wait invisible in the queue;
    // they rewrite it when they arrive.)
    let mut never_unknown = async || {
        let seen = history().await;
        assert_eq!(
            seen.last().map(String::as_str),
            Some("up"),
            "the check's current status: {seen:?}"
        );
    };

    // Ingest away for six intervals, while the agent goes on sending.
    signal(&ingest, "TERM");
    assert!(ingest.wait().unwrap().success());
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(12) {
        never_unknown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The backlog held invisible for a while (as a receive that failed, or
    // another replica, would): the restarted ingest's first receives find
    // the queue empty, but not its backlog gone.
    let mut held = 0;
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .visibility_timeout(8)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        held += got.messages().len();
    }
    assert!(held >= 6, "a backlog of {held} messages");
    let port = free_port();
    ingest = start(port);
    // Until caught up (the lag known and small again), and for ten ticks
    // after, each free to judge silence.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = None;
    while caught_up.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(10)) {
        never_unknown().await;
        let text = http_body(port, "/metrics").unwrap_or_default();
        let lag = config::exposition::value(&text, "statuspage_ingest_lag_seconds", &[]);
        if caught_up.is_none() && lag.is_some_and(|l| l < 2.0) {
            caught_up = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "ingest caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    never_unknown().await;
    signal(&agent, "TERM");
    assert!(agent.wait().unwrap().success());
    signal(&ingest, "TERM");
    assert!(ingest.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

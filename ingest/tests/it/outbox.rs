//! The notification outbox on both databases: an event is written with the
//! incident change that causes it (or not at all), expanded once per
//! channel, leased in order within its incident and channel, and marked
//! only under its lease.

use crate::support::*;
use ingest::store::outbox::{EventRow, Outcome, Queue};
use std::sync::Mutex;

const AGENTS: [&str; 3] = ["a", "b", "c"];

/// Up, up, down ×3, up ×2 on `web`: one incident opens and resolves.
async fn outage(store: &ingest::store::Store, t0: i64) {
    for k in 0..7 {
        for agent in AGENTS {
            let up = !(2..5).contains(&k);
            put(
                store,
                &batch(agent, vec![result("web", agent, t0 + k * MINUTE, up)]),
            )
            .await;
        }
    }
}

/// Expands every incident and maintenance event to channels `a` and `b`
/// (check events to none, as without routes); returns the events seen.
async fn expand(store: &ingest::store::Store) -> Vec<EventRow> {
    let seen = Mutex::new(Vec::new());
    let route = |e: &EventRow| {
        if e.kind.starts_with("check.") {
            return Vec::new();
        }
        seen.lock().unwrap().push(e.clone());
        vec!["a".to_string(), "b".to_string()]
    };
    store.expand_events(&route, now(), 100).await.unwrap();
    seen.into_inner().unwrap()
}

/// Each recent status change of a check is a `check.status_changed` event,
/// once, even when the span is decided again.
async fn each_recent_status_change_is_one_check_event(db: Db) {
    let t0 = start();
    outage(&db.store, t0).await;
    let seen = Mutex::new(Vec::new());
    let route = |e: &EventRow| {
        if e.kind == "check.status_changed" {
            seen.lock().unwrap().push(e.clone());
        }
        Vec::new()
    };
    db.store.expand_events(&route, now(), 100).await.unwrap();
    let statuses: Vec<(String, String)> = seen
        .into_inner()
        .unwrap()
        .iter()
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            (
                data["check"]["id"].as_str().unwrap().to_string(),
                data["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Each status as it was decided, results arriving one agent at a time
    // (`degraded` while one location fails, then `down`), ending `up`.
    let seq: Vec<&str> = statuses.iter().map(|s| s.1.as_str()).collect();
    assert!(statuses.iter().all(|s| s.0 == "web"));
    let down = seq.iter().position(|s| *s == "down").expect("down");
    assert_eq!(seq.last(), Some(&"up"), "{seq:?}");
    assert!(seq[down..].contains(&"up"));
    assert!(
        seq.windows(2).all(|w| w[0] != w[1]),
        "a change each: {seq:?}"
    );
    // A late duplicate makes the store decide the span again: no new event.
    put(
        &db.store,
        &batch("a", vec![result("web", "a", t0 + 3 * MINUTE, false)]),
    )
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'check.status_changed'")
            .await,
        statuses.len() as i64
    );
}

async fn each_incident_update_writes_one_event_expanded_once_per_channel(db: Db) {
    outage(&db.store, start()).await;
    let events = expand(&db.store).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["incident.opened", "incident.resolved"]);
    for e in &events {
        assert!(e.id.starts_with("incident-"), "{}", e.id);
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["incident"]["checks"][0]["id"], "web");
        assert_eq!(e.subject, events[0].subject, "one incident, one subject");
    }
    assert!(events[0].seq < events[1].seq);
    let resolved: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(resolved["incident"]["state"], "resolved");
    assert_eq!(
        resolved["update"]["message"],
        "Resolved automatically after 3m."
    );
    assert!(expand(&db.store).await.is_empty(), "expanded once");
    assert_eq!(db.count("SELECT count(*) FROM deliveries").await, 4);
    let backlog = db.store.outbox_backlog(now()).await.unwrap();
    assert_eq!(backlog.pending, 4);
    assert!(backlog.oldest_ms > 0);
}

async fn deliveries_go_out_in_order_and_are_marked_only_under_their_lease(db: Db) {
    let store = &db.store;
    outage(store, start()).await;
    expand(store).await;
    let t = now();
    let lease = 60_000;
    let first = store
        .lease_deliveries(Queue::Operators, t, lease, 10)
        .await
        .unwrap();
    let leased: Vec<(&str, &str, i64)> = first
        .iter()
        .map(|l| (l.channel.as_str(), l.event.kind.as_str(), l.attempt))
        .collect();
    assert_eq!(
        leased,
        [("a", "incident.opened", 1), ("b", "incident.opened", 1)],
        "the resolve waits for the open on each channel"
    );
    assert!(
        store
            .lease_deliveries(Queue::Operators, t, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased rows and the rows behind them are not leased twice"
    );
    let a = first.iter().find(|l| l.channel == "a").unwrap();
    let b = first.iter().find(|l| l.channel == "b").unwrap();
    assert!(
        !store
            .finish_delivery(Queue::Operators, a.id, 2, &Outcome::Delivered, t)
            .await
            .unwrap(),
        "a stale lease marks nothing"
    );
    assert!(
        store
            .finish_delivery(Queue::Operators, a.id, 1, &Outcome::Delivered, t)
            .await
            .unwrap()
    );
    let next = store
        .lease_deliveries(Queue::Operators, t, lease, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].channel.as_str(), next[0].event.kind.as_str()),
        ("a", "incident.resolved")
    );
    // b's worker died: its lease expires and the row is taken over, with
    // the same event (and so the same id and body).
    let later = t + lease + 1_000;
    let taken = store
        .lease_deliveries(Queue::Operators, later, lease, 10)
        .await
        .unwrap();
    let b2 = taken.iter().find(|l| l.channel == "b").unwrap();
    assert_eq!((b2.id, b2.attempt), (b.id, 2));
    assert_eq!(b2.event.id, b.event.id);
    assert!(
        !store
            .finish_delivery(Queue::Operators, b.id, 1, &Outcome::Delivered, later)
            .await
            .unwrap(),
        "the dead worker's late answer marks nothing"
    );
    // A retry is not due before its time; a final failure unblocks the next.
    let retry = Outcome::Retry {
        at: later + 10_000,
        error: "the receiver answered 500".into(),
    };
    assert!(
        store
            .finish_delivery(Queue::Operators, b2.id, 2, &retry, later)
            .await
            .unwrap()
    );
    let after = later + lease + 1_000;
    assert!(
        store
            .lease_deliveries(Queue::Operators, later + 5_000, lease, 10)
            .await
            .unwrap()
            .iter()
            .all(|l| l.channel != "b"),
        "not due yet"
    );
    let again = store
        .lease_deliveries(Queue::Operators, after, lease, 10)
        .await
        .unwrap();
    let b3 = again.iter().find(|l| l.channel == "b").unwrap();
    assert_eq!((b3.event.kind.as_str(), b3.attempt), ("incident.opened", 3));
    let failed = Outcome::Failed {
        error: "the receiver answered 410".into(),
    };
    assert!(
        store
            .finish_delivery(Queue::Operators, b3.id, 3, &failed, after)
            .await
            .unwrap()
    );
    let last = store
        .lease_deliveries(Queue::Operators, after, lease, 10)
        .await
        .unwrap();
    assert!(
        last.iter()
            .any(|l| l.channel == "b" && l.event.kind == "incident.resolved"),
        "a finally failed row stops blocking the later ones"
    );
    let rows = store.deliveries(10).await.unwrap();
    let failed_row = rows.iter().find(|r| r.id == b.id).unwrap();
    assert_eq!(failed_row.state, "failed");
    assert_eq!(
        failed_row.last_error.as_deref(),
        Some("the receiver answered 410")
    );
}

/// The event is part of its change: when the database refuses the event,
/// the incident it belongs to is not written either (a trigger stands for
/// any failure of the event's insert).
async fn an_event_that_cannot_be_written_takes_its_incident_change_with_it(db: Db) {
    match &*db {
        View::Pg(_) => {
            db.exec("CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$").await;
            db.exec("CREATE TRIGGER refuse_event BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_event()").await;
        }
        View::Sqlite(_) => {
            db.exec("CREATE TRIGGER refuse_event BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused by the test'); END").await;
        }
    }
    let t0 = start();
    let mut refused = Vec::new();
    for k in 0..3 {
        for agent in AGENTS {
            let b = batch(agent, vec![result("web", agent, t0 + k * MINUTE, k < 1)]);
            let screened =
                ingest::screen::screen(b.clone(), now(), ingest::screen::MAX_AGE_MS).unwrap();
            if let Err(e) = db
                .store
                .store_batch(&b.agent, b.sent_at, &screened.accepted, now())
                .await
            {
                assert!(e.to_string().contains("refused by the test"), "{e}");
                refused.push(b);
            }
        }
    }
    assert!(
        !refused.is_empty(),
        "the writes that open the incident fail"
    );
    assert_eq!(db.count("SELECT count(*) FROM incidents").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM events").await, 0);
    match &*db {
        View::Pg(_) => db.exec("DROP TRIGGER refuse_event ON events").await,
        View::Sqlite(_) => db.exec("DROP TRIGGER refuse_event").await,
    }
    for b in &refused {
        put(&db.store, b).await;
    }
    assert_eq!(db.count("SELECT count(*) FROM incidents").await, 1);
    let events = expand(&db.store).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["incident.opened"]);
}

/// An instant literal in SQL.
fn instant(db: &Db, ms: i64) -> String {
    match &**db {
        View::Pg(_) => format!("to_timestamp({ms} / 1000.0)"),
        View::Sqlite(_) => ms.to_string(),
    }
}

/// A maintenance window tells the channels four times, each once: when it
/// is scheduled, an hour before it starts, when it starts and when it ends,
/// whichever replica looks, however often.
async fn a_maintenance_window_is_scheduled_starting_started_and_completed_once_each(db: Db) {
    let t = now();
    let hour = 60 * MINUTE;
    db.exec(&format!(
        "INSERT INTO maintenance_windows (source, name, description, checks, starts_at, ends_at, created_by, created_at)
         VALUES ('api', 'Database upgrade', 'Minor version.', {checks}, {starts}, {ends}, 'alice', {now})",
        checks = match &*db {
            View::Pg(_) => "ARRAY['web']".to_string(),
            View::Sqlite(_) => "'[\"web\"]'".to_string(),
        },
        starts = instant(&db, t + 3 * hour),
        ends = instant(&db, t + 4 * hour),
        now = instant(&db, t),
    ))
    .await;
    let store = &db.store;
    let lead = hour;
    let kinds =
        |events: Vec<EventRow>| -> Vec<String> { events.into_iter().map(|e| e.kind).collect() };
    assert_eq!(store.write_maintenance_events(t, lead).await.unwrap(), 1);
    assert_eq!(
        store.write_maintenance_events(t, lead).await.unwrap(),
        0,
        "once"
    );
    assert_eq!(kinds(expand(store).await), ["maintenance.scheduled"]);
    assert_eq!(
        store
            .write_maintenance_events(t + 2 * hour + MINUTE, lead)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .write_maintenance_events(t + 3 * hour + MINUTE, lead)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .write_maintenance_events(t + 3 * hour + 2 * MINUTE, lead)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .write_maintenance_events(t + 4 * hour + MINUTE, lead)
            .await
            .unwrap(),
        1
    );
    let events = expand(store).await;
    let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(
        kinds(events),
        [
            "maintenance.starting",
            "maintenance.started",
            "maintenance.completed"
        ]
    );
    assert_eq!(data["window"]["name"], "Database upgrade");
    assert_eq!(data["window"]["checks"][0]["id"], "web");
    // Long after, nothing more.
    assert_eq!(
        store
            .write_maintenance_events(t + 9 * hour, lead)
            .await
            .unwrap(),
        0
    );
}

crate::conformance!(
    each_recent_status_change_is_one_check_event,
    a_maintenance_window_is_scheduled_starting_started_and_completed_once_each,
    each_incident_update_writes_one_event_expanded_once_per_channel,
    deliveries_go_out_in_order_and_are_marked_only_under_their_lease,
    an_event_that_cannot_be_written_takes_its_incident_change_with_it,
);

/// A receiver on loopback: records each request's `webhook-id` in arrival
/// order, answering 503 while `refusing` and 200 otherwise.
struct Receiver {
    port: u16,
    seen: std::sync::Arc<Mutex<Vec<String>>>,
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start() -> Receiver {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, r) = (seen.clone(), refusing.clone());
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // Headers, then the body by its length.
                    let (head_end, length) = loop {
                        let Ok(n) = c.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let Ok(n) = c.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("webhook-id: "))
                        .unwrap_or("")
                        .to_string();
                    let status = if r.load(Ordering::SeqCst) {
                        "503 Service Unavailable"
                    } else {
                        s.lock().unwrap().push(id);
                        "200 OK"
                    };
                    let _ = c
                        .write_all(
                            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                });
            }
        });
        Receiver {
            port,
            seen,
            refusing,
        }
    }

    fn catalog(&self) -> std::sync::Arc<config::Catalog> {
        let port = self.port;
        std::sync::Arc::new(catalog(&format!(
            "groups:\n  - name: G\n    checks:\n      - {{ name: web, id: web, http: {{ url: 'http://127.0.0.1:1/' }} }}\nnotifications:\n  channels:\n    - name: ops\n      webhook: {{ url: 'http://127.0.0.1:{port}/hook', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}\n"
        )))
    }
}

/// `n` incident events, as committed changes would write them: incident
/// `i % incidents`, in order.
async fn events(pool: &sqlx::PgPool, n: i64, incidents: i64) {
    for i in 0..n {
        sqlx::query(
            "INSERT INTO events (id, type, at, subject, seq, data) VALUES ($1, 'incident.updated', now(), $2, $3, $4)",
        )
        .bind(format!("incident-{}-{i}", i % incidents))
        .bind(format!("incident-{}", i % incidents))
        .bind(i)
        .bind(r#"{"incident": {"id": 1, "checks": [{"id": "web", "name": "web"}]}}"#)
        .execute(pool)
        .await
        .unwrap();
    }
}

fn workers(
    stores: &[ingest::store::Store],
    catalog: std::sync::Arc<config::Catalog>,
    schedule: &str,
) -> (
    tokio_util::sync::CancellationToken,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let schedule = schedule
        .split(',')
        .map(|w| std::time::Duration::from_millis(w.parse().unwrap()))
        .collect();
    let settings = ingest::notify::Settings {
        schedule,
        request_deadline: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let tasks = stores
        .iter()
        .map(|s| {
            let (_tx, rx) = tokio::sync::watch::channel(Some(catalog.clone()));
            let clock: ingest::consume::Clock = std::sync::Arc::new(now);
            let store = s.clone();
            let settings = settings.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                // The sender lives as long as the worker.
                let _tx = _tx;
                ingest::notify::run(store, settings, rx, clock, shutdown).await
            })
        })
        .collect();
    (shutdown, tasks)
}

/// Two ingest replicas (two stores on pools of their own) deliver 200
/// events to one receiver: each id exactly once, none lost.
#[sqlx::test(migrations = false)]
async fn two_replicas_deliver_each_event_exactly_once(pool: sqlx::PgPool) {
    let one = store(pool.clone()).await;
    let two = another_store(&pool).await;
    let receiver = Receiver::start().await;
    events(&pool, 200, 200).await;
    let (stop, tasks) = workers(&[one, two], receiver.catalog(), "0,100,100");
    eventually(30, "200 deliveries", || async {
        let received = receiver.seen.lock().unwrap().len();
        received >= 200
            && count(
                &pool,
                "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
            )
            .await
                == 200
    })
    .await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let seen = receiver.seen.lock().unwrap().clone();
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len(), distinct.len()),
        (200, 200),
        "each id exactly once"
    );
}

/// A receiver down for a while gets everything once it is back, and within
/// each incident in the order the changes were made.
#[sqlx::test(migrations = false)]
async fn a_receiver_back_from_an_outage_gets_everything_in_order(pool: sqlx::PgPool) {
    let one = store(pool.clone()).await;
    let receiver = Receiver::start().await;
    receiver
        .refusing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    events(&pool, 30, 3).await;
    let (stop, tasks) = workers(
        &[one],
        receiver.catalog(),
        "0,200,200,200,200,200,200,200,200,200,200,200,200,200,200",
    );
    eventually(
        20,
        "attempts failing while the receiver is down",
        || async { count(&pool, "SELECT count(*) FROM deliveries WHERE attempts >= 2").await >= 3 },
    )
    .await;
    receiver
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    eventually(30, "all 30 delivered", || async {
        count(
            &pool,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        )
        .await
            == 30
    })
    .await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 30);
    for incident in 0..3 {
        let order: Vec<i64> = seen
            .iter()
            .filter_map(|id| {
                let rest = id.strip_prefix(&format!("incident-{incident}-"))?;
                rest.parse().ok()
            })
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "incident {incident} in order");
        assert_eq!(order.len(), 10);
    }
}

/// A receiver that takes the connection and never answers: each attempt
/// ends at the request's deadline, is retried on the schedule, and the
/// delivery finally fails with the reason; nothing else is held up.
#[sqlx::test(migrations = false)]
async fn a_receiver_that_never_answers_is_cut_off_and_finally_failed(pool: sqlx::PgPool) {
    let one = store(pool.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let receiver = Receiver {
        port,
        seen: Default::default(),
        refusing: Default::default(),
    };
    events(&pool, 1, 1).await;
    let (stop, tasks) = workers(&[one], receiver.catalog(), "0,100");
    eventually(20, "the delivery finally failed", || async {
        count(
            &pool,
            "SELECT count(*) FROM deliveries WHERE state = 'failed' AND attempts = 2",
        )
        .await
            == 1
    })
    .await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let error: String = sqlx::query_scalar("SELECT last_error FROM deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.starts_with("no answer within 1s"), "{error}");
    assert!(
        !error.contains("127.0.0.1"),
        "no URL in a stored error: {error}"
    );
}

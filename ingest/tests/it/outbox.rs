//! The notification outbox on both databases: an event is written with the
//! incident change that causes it (or not at all), expanded once per
//! channel, leased in order within its incident and channel, and marked
//! only under its lease.

use crate::support::*;
use ingest::store::outbox::{EventRow, Outcome};
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

/// Expands every event to channels `a` and `b`; returns the events.
async fn expand(store: &ingest::store::Store) -> Vec<EventRow> {
    let seen = Mutex::new(Vec::new());
    let route = |e: &EventRow| {
        seen.lock().unwrap().push(e.clone());
        vec!["a".to_string(), "b".to_string()]
    };
    store.expand_events(&route, now(), 100).await.unwrap();
    seen.into_inner().unwrap()
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
    let first = store.lease_deliveries(t, lease, 10).await.unwrap();
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
            .lease_deliveries(t, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased rows and the rows behind them are not leased twice"
    );
    let a = first.iter().find(|l| l.channel == "a").unwrap();
    let b = first.iter().find(|l| l.channel == "b").unwrap();
    assert!(
        !store
            .finish_delivery(a.id, 2, &Outcome::Delivered, t)
            .await
            .unwrap(),
        "a stale lease marks nothing"
    );
    assert!(
        store
            .finish_delivery(a.id, 1, &Outcome::Delivered, t)
            .await
            .unwrap()
    );
    let next = store.lease_deliveries(t, lease, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(
        (next[0].channel.as_str(), next[0].event.kind.as_str()),
        ("a", "incident.resolved")
    );
    // b's worker died: its lease expires and the row is taken over, with
    // the same event (and so the same id and body).
    let later = t + lease + 1_000;
    let taken = store.lease_deliveries(later, lease, 10).await.unwrap();
    let b2 = taken.iter().find(|l| l.channel == "b").unwrap();
    assert_eq!((b2.id, b2.attempt), (b.id, 2));
    assert_eq!(b2.event.id, b.event.id);
    assert!(
        !store
            .finish_delivery(b.id, 1, &Outcome::Delivered, later)
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
            .finish_delivery(b2.id, 2, &retry, later)
            .await
            .unwrap()
    );
    let after = later + lease + 1_000;
    assert!(
        store
            .lease_deliveries(later + 5_000, lease, 10)
            .await
            .unwrap()
            .iter()
            .all(|l| l.channel != "b"),
        "not due yet"
    );
    let again = store.lease_deliveries(after, lease, 10).await.unwrap();
    let b3 = again.iter().find(|l| l.channel == "b").unwrap();
    assert_eq!((b3.event.kind.as_str(), b3.attempt), ("incident.opened", 3));
    let failed = Outcome::Failed {
        error: "the receiver answered 410".into(),
    };
    assert!(
        store
            .finish_delivery(b3.id, 3, &failed, after)
            .await
            .unwrap()
    );
    let last = store.lease_deliveries(after, lease, 10).await.unwrap();
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

crate::conformance!(
    each_incident_update_writes_one_event_expanded_once_per_channel,
    deliveries_go_out_in_order_and_are_marked_only_under_their_lease,
    an_event_that_cannot_be_written_takes_its_incident_change_with_it,
);

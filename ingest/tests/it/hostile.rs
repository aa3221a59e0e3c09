//! Hostile bytes and refused rows, on both databases: a target's bytes are
//! data, and a result the database refuses costs no other result.

use crate::support::*;
use config::wire::{Assertion, Outcome, Reason};
use ingest::consume::Handled;

/// A down result whose every free-text field holds NUL and what invalid
/// UTF-8 becomes (U+FFFD), as an older agent would send it.
fn poisoned(check: &str, agent: &str, at: i64) -> config::wire::ProbeResult {
    let mut r = result(check, agent, at, false);
    r.outcome = Outcome::Down;
    r.reason = Reason::Assertion;
    r.message = "the reply \"gre\0et\u{fffd}\\n\" does not match".into();
    r.assertions = vec![Assertion::new(
        "reply matches /^nomatch/",
        false,
        "a\0b\u{fffd}\u{1}",
    )];
    r.facts.cert_subject = Some("CN=\0".into());
    r.facts.dns_answers = Some(vec!["\0".into()]);
    r
}

async fn target_bytes_with_nul_are_stored_beside_the_good_results(db: Db) {
    let t0 = start();
    let (handler, metrics) = handler(&db.store);
    let mut b = batch(
        "a",
        vec![
            result("web", "a", t0, true),
            poisoned("greeter", "a", t0),
            result("api", "a", t0, true),
        ],
    );
    b.agent.zone = "zone\0a".into();
    let got = handler.batch("m1", b).await;
    assert!(matches!(got, Handled::Stored), "{got:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM results").await,
        3,
        "every result stored"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM results WHERE CAST(detail AS text) LIKE '%a␀b\u{fffd}␁%'")
            .await,
        1,
        "the bytes are kept, made visible"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM agents WHERE zone = 'zone␀a'")
            .await,
        1
    );
    assert_eq!(metrics.messages(ingest::metrics::MessageOutcome::Stored), 1);
}

/// The store is made to refuse one check's rows (a trigger stands for any
/// refusal that is not "database unavailable"). The other results of the
/// message, and the other messages of the receive, are stored; the refused
/// one is counted and dropped, and the message is done: never retried forever.
async fn a_result_the_database_refuses_is_dropped_alone(db: Db) {
    match &*db {
        View::Pg(_) => {
            db.exec("CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.slug = 'poison' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$").await;
            db.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON checks FOR EACH ROW EXECUTE FUNCTION refuse_poison()").await;
        }
        View::Sqlite(_) => {
            db.exec("CREATE TRIGGER refuse_poison BEFORE INSERT ON checks WHEN NEW.slug = 'poison' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END").await;
        }
    }
    let t0 = start();
    let (handler, metrics) = handler(&db.store);
    let json = |b: &config::wire::ResultBatch| serde_json::to_string(b).unwrap();
    let m1 = json(&batch(
        "a",
        vec![
            result("web", "a", t0, true),
            result("poison", "a", t0, false),
            result("api", "a", t0, true),
        ],
    ));
    let m2 = json(&batch("b", vec![result("web", "b", t0, true)]));
    let got = handler
        .bodies(&[("m1", &m1, None), ("m2", &m2, None)])
        .await;
    assert!(
        got.iter().all(|h| matches!(h, Handled::Stored)),
        "both messages are done: {got:?}"
    );
    assert_eq!(db.count("SELECT count(*) FROM results").await, 3);
    assert_eq!(
        db.count("SELECT count(*) FROM checks WHERE slug = 'poison'")
            .await,
        0
    );
    assert_eq!(
        metrics.rejected_count(ingest::screen::Rejection::Refused),
        1,
        "the refused result is counted"
    );
    // Alone, a message of only refused results is done too.
    let m3 = json(&batch("a", vec![result("poison", "a", t0 + MINUTE, false)]));
    let got = handler.bodies(&[("m3", &m3, None)]).await;
    assert!(matches!(got[0], Handled::Stored), "{got:?}");
    assert_eq!(
        metrics.rejected_count(ingest::screen::Rejection::Refused),
        2
    );
}

/// Another session holds the results table, as a replica cut off mid-write
/// does until the server notices: the write waits out PostgreSQL's
/// `lock_timeout` (set short on this store's own pool) or SQLite's busy
/// timeout. That is contention, not a refusal: every message of the
/// receive comes back whole, none is split and dropped, and once the lock
/// is gone all of it is stored.
async fn a_write_that_waits_out_a_lock_comes_back_whole(db: Db) {
    use sqlx::Connection;
    enum Holder {
        Pg(sqlx::Transaction<'static, sqlx::Postgres>),
        Sqlite(sqlx::SqliteConnection),
    }
    let (store, holder) = match &*db {
        View::Pg(pool) => {
            let o = pool.connect_options();
            let url = format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            );
            let limits = ingest::store::sql::Limits {
                lock_timeout: std::time::Duration::from_millis(300),
                ..Default::default()
            };
            let store = ingest::store::Store::connect_lazy(&url, 2, limits).unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE results IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            (store, Holder::Pg(tx))
        }
        View::Sqlite(pool) => {
            let file = pool.connect_options().get_filename().to_owned();
            let mut c = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new().filename(file),
            )
            .await
            .unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut c)
                .await
                .unwrap();
            (db.store.clone(), Holder::Sqlite(c))
        }
    };
    let t0 = start();
    let (handler, metrics) = handler(&store);
    let json = |b: &config::wire::ResultBatch| serde_json::to_string(b).unwrap();
    let m1 = json(&batch(
        "a",
        vec![result("web", "a", t0, true), result("api", "a", t0, true)],
    ));
    let m2 = json(&batch("b", vec![result("web", "b", t0, true)]));
    let receive = [("m1", m1.as_str(), None), ("m2", m2.as_str(), None)];
    let got = handler.bodies(&receive).await;
    assert!(
        got.iter().all(|h| matches!(h, Handled::Failed(_))),
        "both messages come back: {got:?}"
    );
    let alone = handler.bodies(&receive[..1]).await;
    assert!(matches!(alone[0], Handled::Failed(_)), "{alone:?}");
    assert_eq!(
        metrics.rejected_count(ingest::screen::Rejection::Refused),
        0,
        "no result refused"
    );
    match holder {
        Holder::Pg(tx) => tx.rollback().await.unwrap(),
        Holder::Sqlite(mut c) => {
            sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
        }
    }
    let again = handler.bodies(&receive).await;
    assert!(
        again.iter().all(|h| matches!(h, Handled::Stored)),
        "{again:?}"
    );
    assert_eq!(db.count("SELECT count(*) FROM results").await, 3);
}

crate::conformance!(
    target_bytes_with_nul_are_stored_beside_the_good_results,
    a_result_the_database_refuses_is_dropped_alone,
    a_write_that_waits_out_a_lock_comes_back_whole,
);

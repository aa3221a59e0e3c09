//! The SQS consumer against moto and PostgreSQL: two replicas on one queue,
//! hostile messages, and a check that arrives before its YAML.

use crate::support::*;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn two_replicas_with_duplicates_and_reordering_store_exactly_once(pool: PgPool) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "exactly-once", 30, 10).await;
    let t0 = start();
    // Each agent sends slots two at a time, in its own order; the agents'
    // streams interleave, every message is sent twice, and one message also
    // repeats results of another.
    let agents = ["a", "b", "c"];
    let mut streams: Vec<Vec<config::wire::ResultBatch>> = agents
        .iter()
        .map(|agent| {
            (0..4)
                .map(|j| {
                    let rs = (2 * j..2 * j + 2)
                        .map(|k| result("web", agent, t0 + k * MINUTE, !(2..5).contains(&k)))
                        .collect();
                    batch(agent, rs)
                })
                .collect()
        })
        .collect();
    let mut overlap = streams[1][1].clone();
    overlap.results.extend(streams[1][0].results.clone());
    streams[1].push(overlap);
    // c first, then a and b interleaved: cross-agent reordering.
    let mut order = Vec::new();
    order.extend(streams[2].iter().cloned());
    for j in 0..5 {
        for s in &streams[..2] {
            if let Some(b) = s.get(j) {
                order.push(b.clone());
            }
        }
    }
    // Two stores on pools of their own, as two processes have.
    let replicas = [
        Replica::start(store.clone(), &sqs, &queue, Some(&dlq), vec![], 256 * 1024),
        Replica::start(
            another_store(&pool).await,
            &sqs,
            &queue,
            Some(&dlq),
            vec![],
            256 * 1024,
        ),
    ];
    for b in &order {
        send(&sqs, &queue, b).await;
    }
    for b in &order {
        send(&sqs, &queue, b).await;
    }
    let sent = 2 * order.len() as u64;
    eventually(30, "every message stored and deleted", || async {
        let stored: u64 = replicas
            .iter()
            .map(|r| r.metrics.messages(ingest::metrics::MessageOutcome::Stored))
            .sum();
        stored >= sent && depth(&sqs, &queue).await == 0
    })
    .await;
    for r in &replicas {
        assert_eq!(
            r.metrics
                .messages(ingest::metrics::MessageOutcome::DatabaseError),
            0,
            "{}",
            r.metrics.render()
        );
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 24);
    let (inserted, duplicate, rejected) = replicas.iter().fold((0, 0, 0), |acc, r| {
        let (i, d, x) = r.metrics.results();
        (acc.0 + i, acc.1 + d, acc.2 + x)
    });
    assert_eq!((inserted, rejected), (24, 0));
    assert!(
        duplicate >= 24 + 4,
        "every resent result and the overlap were duplicates: {duplicate}"
    );
    let leaders = replicas.iter().filter(|r| r.metrics.leading()).count();
    assert_eq!(leaders, 1, "one replica holds the leader's lease");
    for r in replicas {
        r.stop().await;
    }
    // The history is an hour old: everyone has been silent since slot 7.
    store.tick(now(), Some(0)).await.unwrap();
    assert_eq!(
        changes(&pool, "web", t0).await,
        [
            (0, "up".to_string()),
            (3 * MINUTE, "down".into()),
            (6 * MINUTE, "up".into()),
            (10 * MINUTE, "unknown".into())
        ]
    );
    let incidents = incidents(&pool, "web").await;
    assert_eq!(incidents.len(), 1, "exactly one incident: {incidents:?}");
    assert_eq!(incidents[0].0, "resolved");
    assert_eq!(depth(&sqs, &dlq).await, 0);
}

fn gzip_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

#[sqlx::test(migrations = false)]
async fn hostile_messages_are_counted_and_left_for_the_dlq_while_good_results_are_kept(
    pool: PgPool,
) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "hostile", 1, 2).await;
    let t0 = start();
    let good = batch("a", vec![result("web", "a", t0, true)]);
    let json = serde_json::to_string(&good).unwrap();

    send_raw(&sqs, &queue, "\u{1}garbage, not JSON", None).await;
    send_raw(&sqs, &queue, &json[..json.len() / 2], None).await;
    send_raw(&sqs, &queue, &json.replace("\"v\":1", "\"v\":2"), None).await;
    send_raw(
        &sqs,
        &queue,
        &format!("{json}{}", " ".repeat(70 * 1024)),
        None,
    )
    .await;
    // 64 MiB of zeros: a few dozen KiB on the wire.
    send_raw(
        &sqs,
        &queue,
        &gzip_base64(&vec![0u8; 64 << 20]),
        Some("gzip+base64"),
    )
    .await;
    let mut mixed = batch("a", vec![result("web", "a", t0 + 60_000, true)]);
    let mut future = result("web", "a", now() + 365 * 86_400_000, true);
    future.id = config::wire::ProbeResult::make_id("web", "a", future.scheduled_at);
    mixed.results.push(future);
    for name in ["<script>alert(1)</script>", "'; DROP TABLE results; --"] {
        let mut r = result("web", "a", t0 + 120_000, true);
        r.check = name.into();
        r.id = config::wire::ProbeResult::make_id(name, "a", r.scheduled_at);
        mixed.results.push(r);
    }
    send(&sqs, &queue, &mixed).await;

    let replica = Replica::start(store.clone(), &sqs, &queue, Some(&dlq), vec![], 64 * 1024);
    eventually(30, "the five bad messages reach the DLQ", || async {
        depth(&sqs, &dlq).await == 5 && depth(&sqs, &queue).await == 0
    })
    .await;
    use ingest::metrics::MessageOutcome::*;
    let m = &replica.metrics;
    assert!(m.messages(Undecodable) >= 4, "{}", m.render());
    assert!(m.messages(UnsupportedVersion) >= 1);
    assert_eq!(m.messages(Stored), 1);
    let text = m.render();
    assert!(
        text.contains("statuspage_ingest_rejected_total{reason=\"future\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("statuspage_ingest_rejected_total{reason=\"bad_check\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("statuspage_ingest_results_total{result=\"inserted\"} 1"),
        "{text}"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM checks").await,
        1,
        "no row for hostile names"
    );

    // Still consuming.
    send(&sqs, &queue, &good).await;
    eventually(
        20,
        "a good message after the hostile ones is stored",
        || async { count(&pool, "SELECT count(*) FROM results").await == 2 },
    )
    .await;
    eventually(10, "the DLQ depth is exported", || async {
        replica
            .metrics
            .render()
            .contains("statuspage_dead_letter_queue_messages 5")
    })
    .await;
    replica.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_result_for_a_check_not_yet_in_the_yaml_appears_under_it_after_the_reload(pool: PgPool) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "unknown-check", 30, 10).await;
    let dir = std::env::temp_dir().join(format!("ingest-reload-{}", now()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checks.yaml");
    let check = |id: &str, name: &str| {
        format!(
            "groups:\n  - name: Shop\n    checks:\n      - name: {name}\n        id: {id}\n        http:\n          url: http://127.0.0.1:9/\n"
        )
    };
    std::fs::write(&file, check("home", "Home")).unwrap();
    let replica = Replica::start(
        store.clone(),
        &sqs,
        &queue,
        Some(&dlq),
        vec![file.clone()],
        256 * 1024,
    );
    let t0 = start();
    send(
        &sqs,
        &queue,
        &batch("a", vec![result("checkout", "a", t0, true)]),
    )
    .await;
    eventually(20, "the result is stored under a placeholder", || async {
        count(
            &pool,
            "SELECT count(*) FROM checks WHERE slug = 'checkout' AND placeholder",
        )
        .await
            == 1
    })
    .await;
    // The ConfigMap rollout reaches ingest: Checkout is now defined.
    std::fs::write(&file, format!("{}      - name: Checkout\n        id: checkout\n        http:\n          url: http://127.0.0.1:9/\n", check("home", "Home"))).unwrap();
    eventually(20, "the placeholder becomes the check", || async {
        count(&pool, "SELECT count(*) FROM checks WHERE slug = 'checkout' AND NOT placeholder AND name = 'Checkout'").await == 1
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM results r JOIN checks c ON c.id = r.check_id WHERE c.slug = 'checkout'").await, 1);
    replica.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write held up past the visibility cap: its message is abandoned to
/// redelivery (and counted) rather than kept invisible forever, and is
/// still stored exactly once.
#[sqlx::test(migrations = false)]
async fn a_message_held_past_the_visibility_cap_is_redelivered_and_stored_once(pool: PgPool) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "capped", 2, 10).await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE results IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let replica = Replica::capped(
        store.clone(),
        &sqs,
        &queue,
        Some(&dlq),
        vec![],
        256 * 1024,
        std::time::Duration::from_secs(3),
    );
    send(
        &sqs,
        &queue,
        &batch("a", vec![result("web", "a", start(), true)]),
    )
    .await;
    eventually(20, "the message abandoned past the cap", || async {
        replica.metrics.abandoned() >= 1
    })
    .await;
    tx.rollback().await.unwrap();
    eventually(30, "stored and the queue drained", || async {
        count(&pool, "SELECT count(*) FROM results").await == 1 && depth(&sqs, &queue).await == 0
    })
    .await;
    let (inserted, _, rejected) = replica.metrics.results();
    assert_eq!((inserted, rejected), (1, 0), "stored once");
    assert_eq!(depth(&sqs, &dlq).await, 0);
    replica.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_slow_message_stays_invisible_while_it_is_worked_on(pool: PgPool) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "slow", 2, 10).await;
    // The transaction waits on this lock for three visibility timeouts.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE results IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let replica = Replica::start(store.clone(), &sqs, &queue, Some(&dlq), vec![], 256 * 1024);
    send(
        &sqs,
        &queue,
        &batch("a", vec![result("web", "a", start(), true)]),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    tx.rollback().await.unwrap();
    eventually(20, "the message is stored and deleted", || async {
        count(&pool, "SELECT count(*) FROM results").await == 1 && depth(&sqs, &queue).await == 0
    })
    .await;
    // Watched for three seconds: a second worker never gets it.
    use ingest::metrics::MessageOutcome::Stored;
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < std::time::Duration::from_secs(3) {
        assert_eq!(
            replica.metrics.messages(Stored),
            1,
            "handled once: {}",
            replica.metrics.render()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        replica.metrics.results(),
        (1, 0, 0),
        "no second worker got it meanwhile"
    );
    replica.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_channel_consumer_stores_what_the_in_process_agent_sends(pool: PgPool) {
    let store = store(pool.clone()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let metrics = Meter::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let settings = ingest::Settings {
        source: ingest::Source::Channel(rx),
        max_message_bytes: 256 * 1024,
        raw_retention: std::time::Duration::from_secs(7 * 86_400),
        leader: ingest::leader::Settings {
            config: vec![],
            env: std::sync::Arc::new(|_: &str| None),
            tick_every: std::time::Duration::from_millis(200),
            retire_after: std::time::Duration::from_secs(600),
            dead_letter_queue: None,
            raw_retention: std::time::Duration::ZERO,
            lease: ingest::store::LEASE,
            prune_after: std::time::Duration::from_secs(7 * 86_400),
        },
        catalog: None,
        kept: config::Kept::default(),
        notify: None,
    };
    let task = tokio::spawn(ingest::run(
        settings,
        store,
        metrics.handle(),
        std::sync::Arc::new(now),
        shutdown.clone(),
    ));
    let t0 = start();
    tx.send(batch("local", vec![result("web", "local", t0, true)]))
        .await
        .unwrap();
    tx.send(batch("local", vec![result("web", "local", t0, true)]))
        .await
        .unwrap();
    let mut hostile = batch("local", vec![result("web", "local", t0 + MINUTE, false)]);
    hostile.results[0].check = "../etc/passwd".into();
    tx.send(hostile).await.unwrap();
    tx.send(batch("local", vec![])).await.unwrap();
    eventually(20, "the batches are handled", || async {
        metrics.messages(ingest::metrics::MessageOutcome::Stored) == 4
    })
    .await;
    assert_eq!(
        metrics.results(),
        (1, 1, 1),
        "inserted, duplicate, rejected"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM agents WHERE name = 'local'").await,
        1
    );
    drop(tx);
    task.await.unwrap().unwrap();
    assert!(shutdown.is_cancelled(), "a closed channel ends ingest");
}

#[sqlx::test(migrations = false)]
async fn a_bad_yaml_reload_keeps_the_last_good_catalog(pool: PgPool) {
    let store = store(pool.clone()).await;
    let sqs = sqs_client().await;
    let (queue, dlq) = fresh_queue(&sqs, "bad-reload", 30, 10).await;
    let dir = std::env::temp_dir().join(format!("ingest-bad-reload-{}", now()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checks.yaml");
    std::fs::write(&file, "groups:\n  - name: Shop\n    checks:\n      - name: Home\n        id: home\n        http:\n          url: http://127.0.0.1:9/\n").unwrap();
    let replica = Replica::start(
        store.clone(),
        &sqs,
        &queue,
        Some(&dlq),
        vec![file.clone()],
        256 * 1024,
    );
    eventually(20, "the catalog is synced", || async {
        count(
            &pool,
            "SELECT count(*) FROM checks WHERE slug = 'home' AND NOT placeholder",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(replica.metrics.config_ok(), Some(1.0));
    // A broken ConfigMap: a tab indent and an unknown key. The reload runs
    // (and says it failed) before anything is looked at.
    std::fs::write(&file, "groups:\n\t- name: Shop\n    checkz: []\n").unwrap();
    eventually(20, "the failed reload said", || async {
        replica.metrics.config_ok() == Some(0.0)
    })
    .await;
    // Watched over four leader ticks from the failed reload on: the check
    // stays, so the bad file was not taken for an empty catalog.
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < std::time::Duration::from_secs(2) {
        assert_eq!(
            count(&pool, "SELECT count(*) FROM checks WHERE slug = 'home' AND absent_since IS NULL AND retired_at IS NULL").await,
            1,
            "the check is still there: the bad file was not taken for an empty catalog"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    replica.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrations = false)]
async fn one_receive_is_stored_together_and_each_message_answered_in_order(pool: PgPool) {
    let store = store(pool.clone()).await;
    let metrics = Meter::new();
    let clock: ingest::consume::Clock = std::sync::Arc::new(now);
    let handler = ingest::consume::Handler::new(
        store,
        metrics.handle(),
        clock,
        256 * 1024,
        std::time::Duration::from_secs(7 * 86_400),
    );
    let t0 = start();
    let json = |b: &config::wire::ResultBatch| serde_json::to_string(b).unwrap();
    // Two agents, two slots each, one message repeated (a redelivery), and
    // two bad messages in between: as one SQS receive.
    let a1 = json(&batch(
        "a",
        vec![result("web", "a", t0, true), result("api", "a", t0, false)],
    ));
    let b1 = json(&batch(
        "b",
        vec![result("web", "b", t0, true), result("api", "b", t0, false)],
    ));
    let a2 = json(&batch("a", vec![result("web", "a", t0 + 60_000, true)]));
    let b2 = json(&batch("b", vec![result("web", "b", t0 + 60_000, false)]));
    let v2 = a2.replace("\"v\":1", "\"v\":2");
    let receive: Vec<(&str, &str, Option<&str>)> = vec![
        ("m1", &a1, None),
        ("m2", "not a batch", None),
        ("m3", &b1, None),
        ("m4", &v2, None),
        ("m5", &a2, None),
        ("m6", &a1, None),
        ("m7", &b2, None),
    ];
    let outcomes = handler.bodies(&receive).await;
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| match o {
            ingest::consume::Handled::Stored => "stored",
            ingest::consume::Handled::Undecodable(_) => "undecodable",
            ingest::consume::Handled::Unusable(_) => "unusable",
            ingest::consume::Handled::Failed(_) => "failed",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "stored",
            "undecodable",
            "stored",
            "unusable",
            "stored",
            "stored",
            "stored"
        ]
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results").await,
        6,
        "each result once, the repeated message included"
    );
    use ingest::metrics::MessageOutcome::*;
    assert_eq!(metrics.messages(Stored), 5);
    assert_eq!(metrics.messages(Undecodable), 1);
    assert_eq!(metrics.messages(UnsupportedVersion), 1);
    let text = metrics.render();
    assert!(
        text.contains("statuspage_ingest_results_total{result=\"inserted\"} 6"),
        "{text}"
    );
    assert!(
        text.contains("statuspage_ingest_results_total{result=\"duplicate\"} 2"),
        "the repeated message's two results are duplicates: {text}"
    );
    // Stored again as one receive, all of it is a duplicate.
    let again = handler
        .bodies(&[("m8", &a1, None), ("m9", &b2, None)])
        .await;
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ingest::consume::Handled::Stored))
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 6);
}

//! The cache on real data: one render for a crowd, a change shown at once
//! (LISTEN/NOTIFY on PostgreSQL, the in-process signal on SQLite), and the
//! last good page while the database is down.

use crate::fixture::Db;
use crate::{get, get_with};
use dashboard::Changes;
use dashboard::read::Reader;
use http::StatusCode;
use ingest::store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

crate::both!(
    a_crowd_of_misses_costs_one_render,
    a_status_change_reaches_the_page_at_once_not_after_the_ttl,
    with_the_database_down_the_last_good_page_is_served_and_says_so,
);

/// What the ops port's `/readyz` answers: 200 or 503, and its line.
async fn readyz(state: &dashboard::AppState) -> (StatusCode, String) {
    match dashboard::readiness(state).await {
        Ok(why) => (StatusCode::OK, format!("{why}\n")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn a_crowd_of_misses_costs_one_render(db: Db) {
    let (state, meter) = db.metered_state(Duration::from_secs(60));
    let mut crowd = Vec::new();
    for _ in 0..25 {
        let state = state.clone();
        crowd.push(tokio::spawn(async move { get(&state, "/").await }));
    }
    let mut etags = Vec::new();
    for c in crowd {
        let got = c.await.unwrap();
        assert_eq!(got.status, StatusCode::OK);
        etags.push(got.header("etag").to_string());
    }
    etags.dedup();
    assert_eq!(etags.len(), 1, "everyone got the same render");
    assert_eq!(
        meter.value("statuspage_dashboard_render_seconds_count", &[]),
        1
    );
}

fn web_status(v: &serde_json::Value) -> String {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "web")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn a_status_change_reaches_the_page_at_once_not_after_the_ttl(db: Db) {
    // An hour's TTL: only the invalidation can show the change in time.
    let (state, meter) = db.metered_state(Duration::from_secs(3600));
    let changes = match &db.store {
        Store::Pg(s) => Changes::Listen(s.pool().clone()),
        Store::Sqlite(s) => Changes::Signal(s.subscribe()),
    };
    let stop = CancellationToken::new();
    let follower = tokio::spawn(dashboard::follow(
        changes,
        state.cache.clone(),
        state.metrics.clone(),
        stop.clone(),
    ));
    if matches!(db.store, Store::Pg(_)) {
        // LISTEN is up once the follower has emptied the cache the first time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while meter.value("statuspage_dashboard_cache_invalidations_total", &[]) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "LISTEN never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let before = get(&state, "/api/v1/status").await;
    assert_eq!(web_status(&before.json()), "down");
    let cached = get(&state, "/api/v1/status").await;
    assert_eq!(cached.header("x-cache"), "hit");

    crate::fixture::recover_web(&db.store, db.seeded.newest).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = get(&state, "/api/v1/status").await.json();
        if web_status(&got) == "up" {
            assert_eq!(
                got["open_incidents"].as_array().unwrap().len(),
                1,
                "web's incident resolved"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the page"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = get(&state, "/").await.body;
    assert!(
        !page.contains("Website is down</a></h3>"),
        "no longer an open incident"
    );
    stop.cancel();
    follower.await.unwrap();
}

/// A loopback TCP proxy to PostgreSQL that can be cut, as a failover or a
/// network partition would.
struct Proxy {
    port: u16,
    cut: CancellationToken,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = CancellationToken::new();
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = stop.cancelled() => return,
                };
                let upstream = upstream.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }
}

async fn with_the_database_down_the_last_good_page_is_served_and_says_so(db: Db) {
    // A reader of its own, whose database can be taken away.
    let (reader, proxy) = match &db.store {
        Store::Pg(s) => {
            let options = s.pool().connect_options();
            let upstream = format!("{}:{}", options.get_host(), options.get_port());
            let proxy = Proxy::start(upstream).await;
            let via = (*options).clone().host("127.0.0.1").port(proxy.port);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy_with(via);
            (Reader::Pg(pool), Some(proxy))
        }
        Store::Sqlite(_) => (db.reader.clone(), None),
    };
    let mut state = db.state(Duration::from_secs(10));
    state.reader = reader.clone();
    let good = get(&state, "/").await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(
        readyz(&state).await,
        (StatusCode::OK, "ready\n".to_string())
    );
    assert!(!good.body.contains("could not be refreshed"));
    assert_eq!(get(&state, "/checks/api").await.status, StatusCode::OK);

    match (&reader, proxy) {
        (_, Some(p)) => p.cut.cancel(),
        (Reader::Sqlite(pool), None) => pool.close().await,
        (Reader::Pg(_), None) => unreachable!(),
    }
    state.cache.invalidate();

    let stale = get(&state, "/").await;
    assert_eq!(stale.status, StatusCode::OK, "never a 500");
    assert_eq!(stale.header("x-statuspage-stale"), "true");
    assert!(stale.body.contains("This page could not be refreshed."));
    assert!(stale.body.contains("It shows the state as of"));
    assert!(
        stale.body.contains("Public API"),
        "the last good page, whole"
    );
    assert!(stale.header("cache-control").contains("stale-if-error"));
    let stale_check = get(&state, "/checks/api").await;
    assert_eq!(stale_check.status, StatusCode::OK);
    assert!(stale_check.body.contains("could not be refreshed"));
    // A conditional request for the stale page gets the page, not a 304 of
    // the fresh one.
    let etag = good.header("etag").to_string();
    let cond = get_with(&state, "/", &[("if-none-match", &etag)]).await;
    assert_eq!(cond.status, StatusCode::OK);

    // Still ready for traffic: it has a page to serve. A replica that has
    // rendered nothing is not.
    let ready = readyz(&state).await;
    assert_eq!(ready.0, StatusCode::OK, "{}", ready.1);
    assert!(
        ready.1.contains("serving the last good page"),
        "{}",
        ready.1
    );
    let mut empty = state.clone();
    empty.cache = std::sync::Arc::new(dashboard::cache::Cache::new(Duration::from_secs(10)));
    let not_ready = readyz(&empty).await;
    assert_eq!(not_ready.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        not_ready.1.contains("nothing is rendered yet"),
        "{}",
        not_ready.1
    );

    // Never rendered before: an honest 503, not a 500.
    let never = get(&state, "/checks/web").await;
    assert_eq!(never.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(never.body.contains("Status temporarily unavailable"));
    assert_eq!(never.header("retry-after"), "10");
    let api = get(&state, "/api/v1/status").await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        api.json()["error"],
        "the status data cannot be read right now"
    );
}

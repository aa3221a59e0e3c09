//! The notification benchmark (`scripts/bench-notify`): EVENTS incident
//! events, each committed in a transaction of its own, through the outbox
//! and ingest's delivery workers to one local webhook receiver, next to a
//! bare hyper POST loop to the same receiver in the same run (a new
//! connection per request, as the workers make).
//!
//! ```text
//! notify_bench [EVENTS]    # default 1000; DATABASE_URL, else a SQLite file
//! ```
//!
//! Prints deliveries/s for both, their ratio, and the p50/p99 from commit
//! to receipt.

use axum::extract::State;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, headers: http::HeaderMap) -> http::StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("bare")
        .to_string();
    if let Ok(mut a) = arrivals.lock() {
        a.insert(id, Instant::now());
    }
    http::StatusCode::NO_CONTENT
}

/// `n` POSTs of `body`, one after another, each on a new connection.
async fn bare_loop(port: u16, n: usize, body: &[u8]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(conn);
        let request = http::Request::post("/hook")
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))?;
        let answer = sender.send_request(request).await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "the receiver answered {}",
            answer.status()
        );
        driver.abort();
    }
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One incident event, committed in a transaction of its own.
async fn commit(pool: &ingest::store::sql::Pool, id: &str, i: i64) -> anyhow::Result<()> {
    use ingest::store::sql::Arg;
    let d = pool.dialect();
    let sql = format!(
        "INSERT INTO events (id, type, at, subject, seq, data) VALUES ({}, 'incident.opened', {}, {}, {}, {})",
        d.p(1),
        d.at(2),
        d.p(3),
        d.p(4),
        d.p(5)
    );
    let data = format!(
        r#"{{"incident": {{"id": {i}, "title": "bench", "impact": "major", "checks": [{{"id": "web", "name": "web"}}]}}}}"#
    );
    pool.exec(
        &sql,
        &[
            Arg::Text(id.to_string()),
            Arg::Int(chrono::Utc::now().timestamp_millis()),
            Arg::Text(id.to_string()),
            Arg::Int(i),
            Arg::Text(data),
        ],
    )
    .await?;
    Ok(())
}

/// The delivery workers of one ingest process.
fn workers(
    store: &ingest::store::Store,
    catalog: Arc<config::Catalog>,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(Some(catalog));
    let clock: ingest::consume::Clock = Arc::new(|| chrono::Utc::now().timestamp_millis());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn({
        let (store, shutdown) = (store.clone(), shutdown.clone());
        async move {
            let _tx = tx;
            ingest::notify::run(
                store,
                ingest::notify::Settings::default(),
                rx,
                clock,
                shutdown,
            )
            .await
        }
    });
    (shutdown, worker)
}

/// Waits (up to two minutes) until `n` requests have arrived.
async fn wait_for(arrivals: &Arrivals, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .len();
        if got >= n {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {got} of {n} delivered within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("statuspage-notify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()));
    let store = ingest::store::Store::connect_lazy(&url, 8, Default::default())?;
    store.migrate().await?;

    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let body = br#"{"type":"incident.opened","timestamp":"2026-12-02T00:00:00Z","data":{}}"#;
    let bare = bare_loop(port, n, body).await?;
    arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();

    let yaml = format!(
        "groups:\n  - name: G\n    checks:\n      - {{ name: web, id: web, http: {{ url: 'http://127.0.0.1:1/' }} }}\nnotifications:\n  channels:\n    - name: bench\n      webhook: {{ url: 'http://127.0.0.1:{port}/hook', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }}\n"
    );
    let catalog = config::load_str(&[("bench.yaml".into(), yaml)], &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let catalog = Arc::new(catalog);
    let pool = match &store {
        ingest::store::Store::Pg(s) => ingest::store::sql::Pool::Pg(s.pool().clone()),
        ingest::store::Store::Sqlite(s) => ingest::store::sql::Pool::Sqlite(s.pool().clone()),
    };
    let run = format!("{}", std::process::id());

    // Throughput: EVENTS committed (each alone) before the workers start,
    // then timed from their start to the last receipt.
    for i in 0..n {
        commit(&pool, &format!("bench-{run}-a{i}"), i as i64).await?;
    }
    let started = Instant::now();
    let (stop, worker) = workers(&store, catalog.clone());
    wait_for(&arrivals, n).await?;
    let through = started.elapsed();
    stop.cancel();
    let _ = worker.await;

    // Latency: the workers running, events committed one every 5 ms (each
    // waking the workers, as an incident's commit does), commit to receipt.
    arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();
    let (stop, worker) = workers(&store, catalog);
    let paced = n.min(500);
    let mut committed: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0..paced {
        tick.tick().await;
        let id = format!("bench-{run}-b{i}");
        commit(&pool, &id, i as i64).await?;
        committed.insert(id, Instant::now());
        store.wake_notifications();
    }
    wait_for(&arrivals, paced).await?;
    stop.cancel();
    let _ = worker.await;
    let arrivals = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut latency: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| arrivals.get(id).map(|r| r.saturating_duration_since(*at)))
        .collect();
    latency.sort();
    let bare_rate = n as f64 / bare.as_secs_f64();
    let outbox_rate = n as f64 / through.as_secs_f64();
    let database = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("events                     {n} ({database})");
    println!("bare hyper POST loop       {bare_rate:.0}/s");
    println!(
        "outbox to the receiver     {outbox_rate:.0}/s (committed beforehand; workers' start to the last receipt)"
    );
    println!("ratio                      {:.2}", outbox_rate / bare_rate);
    println!(
        "commit to receipt          p50 {:.1} ms, p99 {:.1} ms ({paced} events, one every 5 ms)",
        percentile(&latency, 0.5).as_secs_f64() * 1000.0,
        percentile(&latency, 0.99).as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

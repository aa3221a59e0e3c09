//! The scale harness (issue 24), run by `scripts/bench-scale`: many agents,
//! one ingest, a dashboard and a PostgreSQL, in one process, with no cloud.
//!
//! - **Targets.** One real TCP server on 127.0.0.1 that every check
//!   connects to (a TCP check is a connect, so a probe's cost is the real
//!   prober's, not a stub's).
//! - **Agents.** `AGENTS` real agents (`probe_agent::agent::run`), each
//!   with its own id and one of three zones, all of them each other's
//!   static peers, so fleet assignment is the real rendezvous hashing.
//!   They publish through the in-process channel publisher, not SQS: moto
//!   is a protocol double, not a load target.
//! - **Ingest.** The real `ingest::run` on the channel, with its leader,
//!   into a database of its own on the server at `DATABASE_URL` (dropped at
//!   the end), whatever durability that server has (`scripts/bench-scale`
//!   starts one at the default, fsync on).
//! - **Dashboard.** The real router, asked `/api/v1/status?limit=1` once a
//!   second (in process, through the cache with a 1 s TTL).
//!
//! Arguments: `CHECKS AGENTS LOCATIONS INTERVAL_SECONDS SECONDS` (default
//! `10000 4 2 60 120`). After a warm-up of two intervals, it measures for
//! `SECONDS` and prints: results/s; the page's freshness (now minus the
//! API's `data_as_of`, sampled each second, p50/p99); the leader's steps
//! (p50/p99 bucket bounds and count, from `statuspage_ingest_leader_step_seconds`);
//! what the results cost the database (the CPU-seconds of every process
//! named `postgres` on the machine, so run no other busy server; WAL bytes,
//! rows inserted and updated, buffers written, per 1,000 results; waiting
//! locks sampled from `pg_locks` each second; the checks per write, which
//! is the check rows each write locks); the writer's share of the window
//! (ingest writes one receive at a time, so the rate over that share is
//! one process's ceiling at this shape); and the database's growth per day
//! at this rate.

use dashboard::AppState;
use dashboard::pages::Site;
use dashboard::read::Reader;
use ingest::metrics::IngestMetrics;
use ingest::store::Store;
use probe_agent::agent::{self, metrics::AgentMetrics};
use probe_agent::buffer::Limits;
use probe_agent::fleet::Peer;
use probe_agent::publish::PublishStats;
use probe_agent::publish::channel::ChannelPublisher;
use probe_agent::scheduler::SchedulerStats;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Checks per YAML file (a file may not exceed 4 MiB).
const PER_FILE: usize = 1000;

/// The run's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    checks: usize,
    agents: usize,
    locations: usize,
    interval_s: u64,
    seconds: u64,
}

fn shape() -> Result<Shape, Error> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().map_err(|e| format!("{a:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let s = Shape {
        checks: arg(0, 10_000) as usize,
        agents: arg(1, 4) as usize,
        locations: arg(2, 2) as usize,
        interval_s: arg(3, 60),
        seconds: arg(4, 120),
    };
    if s.checks == 0 || s.agents == 0 || s.locations == 0 || s.interval_s == 0 || s.seconds == 0 {
        return Err("CHECKS AGENTS LOCATIONS INTERVAL_SECONDS SECONDS: each from 1".into());
    }
    Ok(s)
}

/// The config directory: `checks` TCP checks on `port`, in files of
/// [`PER_FILE`], one group per file.
fn write_config(dir: &Path, s: Shape, port: u16) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    for (f, first) in (0..s.checks).step_by(PER_FILE).enumerate() {
        let mut y = format!(
            "defaults:\n  interval: {}s\n  timeout: 2s\n  locations: {}\ngroups:\n  - name: Group {f}\n    checks:\n",
            s.interval_s, s.locations
        );
        for n in first..(first + PER_FILE).min(s.checks) {
            y.push_str(&format!(
                "      - name: Check {n}\n        id: c{n}\n        tcp: {{ host: 127.0.0.1, port: {port} }}\n"
            ));
        }
        std::fs::write(dir.join(format!("checks-{f:03}.yaml")), y)?;
    }
    Ok(())
}

/// The TCP target: accepts and closes, until `stop`.
async fn target(stop: CancellationToken) -> Result<u16, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => drop(socket),
                    // Out of descriptors, say: a moment, not a spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    });
    Ok(port)
}

/// CPU seconds (user + system) of every process whose command is `comm`.
fn cpu_of(comm: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ... utime(14) stime(15)
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if !head.ends_with(&format!("({comm}")) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (field(11), field(12)) {
            total += (u + s) / tick;
        }
    }
    total
}

/// This process's CPU seconds.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |r| r.1);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// The database's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Db {
    size: i64,
    wal: i64,
    inserted: i64,
    updated: i64,
    written: i64,
    cpu: f64,
}

async fn db_counters(pool: &sqlx::PgPool, name: &str) -> Result<Db, Error> {
    let (size, wal, inserted, updated): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_database_size($1), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8,
                tup_inserted, tup_updated
         FROM pg_stat_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    let written: i64 = sqlx::query_scalar(
        "SELECT (buffers_checkpoint + buffers_clean + buffers_backend)::int8 FROM pg_stat_bgwriter",
    )
    .fetch_one(pool)
    .await?;
    Ok(Db {
        size,
        wal,
        inserted,
        updated,
        written,
        cpu: cpu_of("postgres"),
    })
}

/// A histogram's cumulative buckets `(bound, le, count)` from the exposition.
fn buckets(text: &str, name: &str, label: &str) -> Vec<(f64, String, u64)> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, String, u64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_string();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// A histogram's p50 and p99 bucket bounds and its count, from the
/// exposition (`+Inf` past the last bound): of what was recorded after
/// `since` (an earlier exposition), or over the whole run.
fn quantiles(
    text: &str,
    since: Option<&str>,
    name: &str,
    label: &str,
) -> Option<(String, String, u64)> {
    let mut counts = buckets(text, name, label);
    if let Some(since) = since {
        for (b, earlier) in counts.iter_mut().zip(buckets(since, name, label)) {
            b.2 = b.2.saturating_sub(earlier.2);
        }
    }
    let total = counts.last()?.2;
    if total == 0 {
        return None;
    }
    let at = |q: f64| {
        counts
            .iter()
            .find(|b| b.2 as f64 >= q * total as f64)
            .map_or("+Inf".to_string(), |b| format!("≤ {} s", b.1))
    };
    Some((at(0.5), at(0.99), total))
}

/// The sum of a counter's series (with `label` in them, if given).
fn counter(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| "a rustls provider is already installed")?;
    let s = shape()?;
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is needed")?;
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for (name, buckets) in ingest::metrics::HISTOGRAMS {
        builder = builder.set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full((*name).into()),
            buckets,
        )?;
    }
    let exposition = builder.install_recorder()?;

    let stop = CancellationToken::new();
    let port = target(stop.clone()).await?;
    let dir = std::env::temp_dir().join(format!("statuspage-scale-{}", std::process::id()));
    write_config(&dir.join("conf"), s, port)?;
    let config = vec![dir.join("conf")];

    let name = format!("scale_{}", std::process::id());
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    let outcome = run(s, &url, &name, &admin, config, &exposition, stop.clone()).await;
    stop.cancel();
    // The pools are closed by now; drop the database whatever happened.
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    dropped?;
    Ok(())
}

async fn run(
    s: Shape,
    url: &str,
    name: &str,
    admin: &sqlx::PgPool,
    config: Vec<PathBuf>,
    exposition: &metrics_exporter_prometheus::PrometheusHandle,
    stop: CancellationToken,
) -> Result<(), Error> {
    let mut db_url = url::Url::parse(url)?;
    db_url.set_path(&format!("/{name}"));
    let db_url = db_url.to_string();
    let store = Store::connect_lazy(&db_url, 16, Default::default())?;
    store.migrate().await?;
    let env: agent::Env = Arc::new(|name: &str| std::env::var(name).ok());
    let catalog = config::load(&config, &*env).map_err(|p| format!("{p:?}"))?;
    println!(
        "shape: {} checks x {} locations every {} s, {} agents: {:.0} results/s expected",
        s.checks,
        s.locations,
        s.interval_s,
        s.agents,
        (s.checks * s.locations.min(s.agents)) as f64 / s.interval_s as f64
    );

    let (tx, rx) = mpsc::channel(256);
    let ingest_metrics = Arc::new(IngestMetrics::new());
    let clock: ingest::consume::Clock = Arc::new(|| chrono::Utc::now().timestamp_millis());
    let ingest_stop = CancellationToken::new();
    let ingest_task = tokio::spawn(ingest::run(
        ingest::Settings {
            source: ingest::Source::Channel(rx),
            max_message_bytes: config::wire::DEFAULT_MAX_MESSAGE_BYTES,
            raw_retention: Duration::from_secs(7 * 86_400),
            leader: ingest::leader::Settings {
                config: config.clone(),
                env: env.clone(),
                tick_every: Duration::from_secs(5),
                retire_after: Duration::from_secs(600),
                dead_letter_queue: None,
                raw_retention: Duration::from_secs(7 * 86_400),
                lease: ingest::store::LEASE,
                prune_after: Duration::from_secs(7 * 86_400),
            },
            catalog: Some(catalog),
            kept: config::Kept::default(),
            notify: None,
        },
        store.clone(),
        ingest_metrics.clone(),
        clock,
        ingest_stop.clone(),
    ));

    let peers: Vec<Peer> = (0..s.agents)
        .map(|a| Peer::new(format!("agent-{a}"), format!("zone-{}", a % 3)))
        .collect();
    let agent_stop = CancellationToken::new();
    let mut agents = Vec::new();
    for me in &peers {
        // The sender is kept, or the agent would see its reload channel closed.
        let (reload, reload_rx) = mpsc::channel(1);
        agents.push((
            reload,
            tokio::spawn(agent::run(
                agent::Settings {
                    config: config.clone(),
                    me: me.clone(),
                    region: String::new(),
                    location_label: String::new(),
                    peers: peers.clone(),
                    discovery: None,
                    rediscover_every: Duration::from_secs(30),
                    concurrency: 256,
                    max_message_bytes: config::wire::DEFAULT_MAX_MESSAGE_BYTES,
                    limits: Limits::default(),
                    watch_every: Duration::from_secs(3600),
                    drain_deadline: Duration::from_secs(5),
                    spool: None,
                    check_series_max: probe_agent::agent::metrics::CHECK_SERIES_MAX,
                },
                env.clone(),
                Arc::new(ChannelPublisher::new(tx.clone())),
                Arc::new(AgentMetrics::new(
                    Arc::new(SchedulerStats::default()),
                    Arc::new(PublishStats::default()),
                )),
                reload_rx,
                agent_stop.clone(),
            )),
        ));
    }
    drop(tx);

    let reader = match &store {
        Store::Pg(p) => Reader::Pg(p.pool().clone()),
        Store::Sqlite(p) => Reader::Sqlite(p.pool().clone()),
    };
    let state = AppState::new(
        reader,
        Site::default(),
        Duration::from_secs(1),
        dashboard::system_clock(),
    );
    let app = dashboard::app(state);

    // Warm-up: two intervals, so every check has run and been decided.
    let warm = Duration::from_secs(2 * s.interval_s);
    println!("warming up for {} s", warm.as_secs());
    tokio::time::sleep(warm).await;

    let before_db = db_counters(admin, name).await?;
    let before_cpu = own_cpu();
    let before = exposition.render();
    let began = Instant::now();
    let mut freshness = Vec::new();
    let mut waiting = Vec::new();
    let mut api_ms = Vec::new();
    let mut fold_waits = Vec::new();
    let until = began + Duration::from_secs(s.seconds);
    let mut next = tokio::time::Instant::now();
    while Instant::now() < until {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next).await;
        let asked = Instant::now();
        let request =
            http::Request::get("/api/v1/status?limit=1").body(axum::body::Body::empty())?;
        let response = tokio::time::timeout(Duration::from_secs(30), app.clone().oneshot(request))
            .await
            .map_err(|_| "the API did not answer within 30 s")??;
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await?
            .to_bytes();
        api_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if let Some(at) = v["data_as_of"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let lag = chrono::Utc::now().timestamp_millis() - at.timestamp_millis();
            freshness.push(lag as f64 / 1000.0);
        }
        let w: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(admin)
            .await?;
        waiting.push(w as f64);
        // Every 10 s: how long the oldest settled minute has waited for the
        // fold (its age less its own minute and the minute it settles for).
        if let Store::Pg(p) = &store
            && api_ms.len() % 10 == 0
        {
            let age: Option<f64> = sqlx::query_scalar(
                "SELECT CAST(EXTRACT(EPOCH FROM now() - min(bucket)) AS float8)
                 FROM rollups WHERE level = 0 AND NOT folded",
            )
            .fetch_one(p.pool())
            .await?;
            fold_waits.push(age.map_or(0.0, |a| (a - 120.0).max(0.0)));
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    let after_cpu = own_cpu();
    // The leader's gauges are set just before a scrape, as a scrape would.
    ingest_metrics.publish();
    let after = exposition.render();
    let after_db = db_counters(admin, name).await?;

    let results_metric = "statuspage_ingest_results_total";
    let results = counter(&after, results_metric, "") - counter(&before, results_metric, "");
    let written = |n: &str| counter(&after, n, "") - counter(&before, n, "");
    let writes = written("statuspage_ingest_db_transaction_seconds_count");
    let writing = written("statuspage_ingest_db_transaction_seconds_sum");
    let sent = |n: &str| counter(&after, n, "") - counter(&before, n, "");
    let (messages, bytes) = (
        sent("statuspage_agent_batches_sent_total"),
        sent("statuspage_agent_bytes_sent_total"),
    );
    println!("measured {elapsed:.0} s");
    println!(
        "agents sent {messages:.0} messages, {:.1} KiB each, {:.0} results each, {:.0} bytes a result (as SQS would carry them)",
        bytes / messages.max(1.0) / 1024.0,
        results / messages.max(1.0),
        bytes / results.max(1.0)
    );
    println!(
        "results stored: {results:.0} ({:.1}/s); writes (one a receive): {writes:.0}, {:.0} results (check rows locked) each",
        results / elapsed,
        results / writes.max(1.0)
    );
    // Ingest writes one receive at a time: the share of the window spent
    // writing says how far this process's one writer is from its ceiling.
    let busy = writing / elapsed;
    println!(
        "the writer: {:.0} ms a write (its transaction), busy {:.0}% of the window: one ingest process stores at most about {:.0} results/s of this shape on this machine",
        writing / writes.max(1.0) * 1000.0,
        busy * 100.0,
        results / elapsed / busy.max(f64::MIN_POSITIVE)
    );
    freshness.sort_by(f64::total_cmp);
    api_ms.sort_by(f64::total_cmp);
    println!(
        "page freshness (now - data_as_of of /api/v1/status): p50 {:.1} s, p99 {:.1} s ({} samples); the API's answer p50 {:.0} ms, p99 {:.0} ms",
        percentile(&freshness, 0.5),
        percentile(&freshness, 0.99),
        freshness.len(),
        percentile(&api_ms, 0.5),
        percentile(&api_ms, 0.99),
    );
    for step in [
        "tick",
        "export",
        "catalog",
        "rollups",
        "partitions",
        "retention",
        "prune",
    ] {
        // The steps of every pass over the measured window; the
        // once-a-minute ones over the whole run, as they run few times.
        let label = format!("step=\"{step}\"");
        let every_pass = matches!(step, "tick" | "rollups" | "export");
        let (since, span) = if every_pass {
            (Some(before.as_str()), "measured window")
        } else {
            (None, "whole run")
        };
        let name = "statuspage_ingest_leader_step_seconds";
        match quantiles(&after, since, name, &label) {
            Some((p50, p99, n)) => {
                let sum = |t: &str| counter(t, &format!("{name}_sum"), &label);
                let sum = sum(&after) - since.map_or(0.0, sum);
                println!(
                    "leader step {step}: p50 {p50}, p99 {p99}, mean {:.2} s ({n} runs, {span})",
                    sum / n.max(1) as f64
                )
            }
            None => println!("leader step {step}: not run"),
        }
    }
    for step in ["tick", "rollups"] {
        println!(
            "leader step {step}: {:.0} checks left to the next pass at the end",
            counter(
                &after,
                "statuspage_ingest_leader_deferred_checks",
                &format!("step=\"{step}\""),
            )
        );
    }
    println!(
        "fold: the oldest settled minute waited {} (every 10 s, in order; 0 when none waited)",
        fold_waits
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
            + " s"
    );
    let per_k = |v: f64| v / results.max(1.0) * 1000.0;
    let pg_cpu = after_db.cpu - before_db.cpu;
    println!(
        "per 1,000 results: PostgreSQL CPU {:.3} s, this process (agents, ingest, dashboard) CPU {:.3} s, WAL {:.0} KiB, rows inserted {:.0}, updated {:.0}, buffers written {:.1}",
        per_k(pg_cpu),
        per_k(after_cpu - before_cpu),
        per_k((after_db.wal - before_db.wal) as f64) / 1024.0,
        per_k((after_db.inserted - before_db.inserted) as f64),
        per_k((after_db.updated - before_db.updated) as f64),
        per_k((after_db.written - before_db.written) as f64),
    );
    println!(
        "CPU: PostgreSQL {:.2} cores, this process {:.2} cores",
        pg_cpu / elapsed,
        (after_cpu - before_cpu) / elapsed
    );
    waiting.sort_by(f64::total_cmp);
    println!(
        "waiting locks (pg_locks, not granted, each second): mean {:.2}, max {:.0}",
        waiting.iter().sum::<f64>() / waiting.len().max(1) as f64,
        waiting.last().copied().unwrap_or(0.0)
    );
    let growth = (after_db.size - before_db.size) as f64 / elapsed * 86_400.0;
    println!(
        "database: {:.1} MiB now, growing {:.0} MiB a day at this rate ({:.0} bytes a result)",
        after_db.size as f64 / 1_048_576.0,
        growth / 1_048_576.0,
        (after_db.size - before_db.size) as f64 / results.max(1.0)
    );

    agent_stop.cancel();
    for (_, a) in agents {
        let _ = tokio::time::timeout(Duration::from_secs(30), a).await;
    }
    ingest_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), ingest_task).await;
    stop.cancel();
    if let Store::Pg(p) = &store {
        p.pool().close().await;
    }
    Ok(())
}

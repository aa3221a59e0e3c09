//! The dashboard benchmark's server (run by `scripts/bench-dashboard`).
//!
//! For each count of `BENCH_CHECKS` (comma-separated, default `200,1000`),
//! seeds a database of its own on the server at `DATABASE_URL` with that
//! many public checks in groups of 20 (each with a 99.9%/30-day SLO, so the
//! render computes every standing) and 90 days of history (outages with
//! their incidents, one in 67 down now with an open one, hourly latency
//! rollups for the last week, three locations each), then:
//!
//! 1. times 30 uncached renders of `/` (read + assemble + render), and
//!    prints their median and p95, the page's size and its gzipped size
//!    (past the default `--collapse-groups-over`, the groups fold), and
//!    each count's median as a ratio to the first's;
//! 2. writes the last count's rendered `/` to `OUT_DIR/index.html` (for
//!    nginx);
//! 3. serves the last count's dashboard twice until stdin closes: with the
//!    default 10 s cache on `CACHED_PORT`, and with a zero TTL (every
//!    request renders, concurrent ones one at a time) on `UNCACHED_PORT`.

use dashboard::read::Reader;
use dashboard::{AppState, Changes, Settings, load, pages};
use ingest::rollup::Rollup;
use ingest::state::PairState;
use ingest::status::Sample;
use ingest::store::{PgStore, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Checks per group.
const PER_GROUP: usize = 20;
const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn yaml(checks: usize) -> String {
    let mut y = String::from(
        "defaults:\n  interval: 60s\n  timeout: 5s\n  locations: 3\n  slo: { target: 99.9%, window: 30d }\ngroups:\n",
    );
    for g in 0..checks.div_ceil(PER_GROUP) {
        y.push_str(&format!("  - name: Group {g}\n    checks:\n"));
        for n in g * PER_GROUP..((g + 1) * PER_GROUP).min(checks) {
            y.push_str(&format!(
                "      - name: Service {n}\n        id: svc-{n}\n        tcp:\n          host: svc-{n}.example.test\n          port: 443\n"
            ));
        }
    }
    y
}

async fn seed(pool: &sqlx::PgPool, now: i64, checks: usize) -> Result<(), Error> {
    let store = Store::Pg(PgStore::from_pool(pool.clone(), Default::default()));
    store.migrate().await?;
    let catalog = config::load_str(&[(PathBuf::from("bench.yaml"), yaml(checks))], &|_| None)
        .map_err(|e| format!("{e:?}"))?;
    store
        .sync_catalog(&catalog, now, Duration::from_secs(600))
        .await?;
    let ts =
        |ms: i64| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let created = now - 95 * DAY;
    sqlx::query("UPDATE checks SET created_at = $1, status = 'up', status_since = $1")
        .bind(ts(created))
        .execute(pool)
        .await?;
    let ids: Vec<(i32, String)> = sqlx::query_as("SELECT id, slug FROM checks ORDER BY id")
        .fetch_all(pool)
        .await?;
    let agents: Vec<i32> = {
        let mut a = Vec::new();
        for name in ["node-a", "node-b", "node-c"] {
            let id: i32 = sqlx::query_scalar(
                "INSERT INTO agents (name, zone, first_seen, last_seen) VALUES ($1, $1, $2, $2) RETURNING id",
            )
            .bind(name)
            .bind(ts(now))
            .fetch_one(pool)
            .await?;
            a.push(id);
        }
        a
    };
    let (mut c_ids, mut c_at, mut c_status) = (Vec::new(), Vec::new(), Vec::new());
    for (n, (id, _)) in ids.iter().enumerate() {
        c_ids.push(*id);
        c_at.push(ts(created));
        c_status.push("up".to_string());
        // Zero to three past outages, 20 to 110 minutes each.
        for k in 0..(n % 4) {
            let start =
                now - ((n * 7 + k * 23) % 85 + 2) as i64 * DAY + (n as i64 * 37 % 1000) * MIN;
            let end = start + (20 + (n as i64 * 13 + k as i64 * 29) % 90) * MIN;
            c_ids.extend([*id, *id]);
            c_at.extend([ts(start), ts(end)]);
            c_status.extend(["down".to_string(), "up".to_string()]);
            let incident: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, impact, state, auto, check_id, started_at, resolved_at, resolved_automatically)
                 VALUES ($1, 'major', 'resolved', true, $2, $3, $4, true) RETURNING id",
            )
            .bind(format!("Service {n} is down"))
            .bind(id)
            .bind(ts(start))
            .bind(ts(end))
            .fetch_one(pool)
            .await?;
            sqlx::query("INSERT INTO incident_checks (incident_id, check_id) VALUES ($1, $2)")
                .bind(incident)
                .bind(id)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO incident_updates (incident_id, at, state, message, author)
                 VALUES ($1, $2, 'investigating', 'Detected: 3 of 3 locations failing (connect_timeout)', 'statuspage'),
                        ($1, $3, 'resolved', 'Recovered.', 'statuspage')",
            )
            .bind(incident)
            .bind(ts(start))
            .bind(ts(end))
            .execute(pool)
            .await?;
        }
        // Three down now, with open incidents.
        if n % 67 == 5 {
            c_ids.push(*id);
            c_at.push(ts(now - 30 * MIN));
            c_status.push("down".to_string());
            let incident: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, impact, state, auto, check_id, started_at)
                 VALUES ($1, 'major', 'investigating', true, $2, $3) RETURNING id",
            )
            .bind(format!("Service {n} is down"))
            .bind(id)
            .bind(ts(now - 30 * MIN))
            .fetch_one(pool)
            .await?;
            sqlx::query("INSERT INTO incident_checks (incident_id, check_id) VALUES ($1, $2)")
                .bind(incident)
                .bind(id)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO incident_updates (incident_id, at, state, message, author)
                 VALUES ($1, $2, 'investigating', 'Detected: 3 of 3 locations failing (connect_refused)', 'statuspage')",
            )
            .bind(incident)
            .bind(ts(now - 30 * MIN))
            .execute(pool)
            .await?;
        }
    }
    sqlx::query(
        "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
         SELECT c, a, s, 3, 3, CASE WHEN s = 'down' THEN 3 ELSE 0 END, ARRAY[]::text[]
         FROM UNNEST($1::int4[], $2::timestamptz[], $3::text[]) AS u(c, a, s)",
    )
    .bind(&c_ids)
    .bind(&c_at)
    .bind(&c_status)
    .execute(pool)
    .await?;
    // Hourly latency for the last week, and three locations reporting now.
    for (n, (id, _)) in ids.iter().enumerate() {
        let (mut buckets, mut measures) = (Vec::new(), Vec::new());
        for h in 0..168 {
            let mut r = Rollup::default();
            for k in 0..60u64 {
                let us = 20_000 + (n as u64 * 997 + h * 131 + k * 7_919) % 180_000;
                r.add(
                    true,
                    [
                        Some(us),
                        Some(1_000),
                        Some(2_000 + k * 10),
                        None,
                        Some(us / 2),
                        Some(500),
                    ],
                );
            }
            buckets.push(ts((now / 3_600_000 - h as i64) * 3_600_000));
            measures.push(r.encode());
        }
        sqlx::query(
            "INSERT INTO rollups (level, check_id, bucket, count, up, measures, folded)
             SELECT 1, $1, b, 60, 60, m, true FROM UNNEST($2::timestamptz[], $3::bytea[]) AS u(b, m)",
        )
        .bind(id)
        .bind(&buckets)
        .bind(&measures)
        .execute(pool)
        .await?;
        let latest: Vec<Sample> = agents
            .iter()
            .map(|a| Sample {
                pair: i64::from(*a),
                at: now - MIN,
                state: PairState::Passing,
                interval_ms: 60_000,
                assigned: 3,
                reason: "ok",
            })
            .collect();
        sqlx::query("UPDATE checks SET latest = $2 WHERE id = $1")
            .bind(id)
            .bind(ingest::store::encode_latest(&latest))
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// Median and p95 of `v`, sorted in place.
fn median_p95(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() * 95 / 100])
}

/// Seeds a database of its own with `checks` checks, measures its `/`, and
/// returns its pool, the page and the median uncached render.
async fn measure(
    admin: &sqlx::PgPool,
    url: &str,
    site: &pages::Site,
    checks: usize,
) -> Result<(sqlx::PgPool, String, f64), Error> {
    let name = format!("bench_{checks}");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin)
        .await?;
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.database(&name))
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    seed(&pool, now, checks).await?;
    let reader = Reader::Pg(pool.clone());

    // Uncached renders of `/`, timed whole: the reads (as the route makes
    // them), the assembly, the HTML; alternately with and without the past-week section, so both
    // see the same machine.
    let mut times = Vec::new();
    let mut without = Vec::new();
    let mut html = String::new();
    for _ in 0..30 {
        let started = Instant::now();
        let b = load::front_page(&reader, chrono::Utc::now().timestamp_millis()).await?;
        html = pages::home::page(site, &b).into_string();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let mut b = load::front_page(&reader, chrono::Utc::now().timestamp_millis()).await?;
        b.history.clear();
        let bare = pages::home::page(site, &b).into_string();
        without.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(bare);
    }
    // The SLO standings' share: the same rows assembled and rendered with
    // and without every check's objective, alternately.
    let rows = load::rows(&reader, chrono::Utc::now().timestamp_millis()).await?;
    let (mut with_slo, mut without_slo) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        for strip in [false, true] {
            let mut r = rows.clone();
            if strip {
                r.checks.iter_mut().for_each(|c| c.slo = None);
            }
            let started = Instant::now();
            let b = dashboard::model::board(r, chrono::Utc::now().timestamp_millis());
            std::hint::black_box(pages::home::page(site, &b).into_string());
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if strip {
                without_slo.push(ms)
            } else {
                with_slo.push(ms)
            }
        }
    }
    let (median, p95) = median_p95(&mut times);
    let (bare, _) = median_p95(&mut without);
    let (slo, _) = median_p95(&mut with_slo);
    let (no_slo, _) = median_p95(&mut without_slo);
    let started = Instant::now();
    let gz = dashboard::cache::gzip(html.as_bytes()).ok_or("gzip failed")?;
    let gzip_ms = started.elapsed().as_secs_f64() * 1000.0;
    let folded = if checks > site.collapse_over {
        ", groups folded"
    } else {
        ""
    };
    println!(
        "uncached render of / : median {median:.1} ms, p95 {p95:.1} ms ({} bytes, {} gzipped, {checks} checks{folded}, 90 days)",
        html.len(),
        gz.len()
    );
    println!(
        "uncached render of / without the past-week section: median {bare:.1} ms (with it: {:.2}x; {checks} checks)",
        median / bare
    );
    println!(
        "assembly and HTML of / from read rows: median {slo:.1} ms with {checks} SLO standings, {no_slo:.1} ms without ({:.2}x)",
        slo / no_slo
    );
    println!(
        "gzip of / (once per render): {gzip_ms:.1} ms, {} bytes ({checks} checks)",
        gz.len()
    );
    Ok((pool, html, median))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| "a rustls provider is already installed")?;
    let url = env("DATABASE_URL")?;
    let out = PathBuf::from(env("OUT_DIR")?);
    let counts: Vec<usize> = std::env::var("BENCH_CHECKS")
        .unwrap_or_else(|_| "200,1000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .map_err(|e| format!("BENCH_CHECKS: {n:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if counts.is_empty() || counts.contains(&0) {
        return Err("BENCH_CHECKS: expected counts from 1, comma-separated".into());
    }
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    let site = pages::Site {
        title: "Bench status".into(),
        logo_url: None,
        links: vec![],
        public_url: "http://127.0.0.1".into(),
        subscribe: false,
        collapse_over: pages::COLLAPSE_OVER,
    };
    let mut measured = Vec::new();
    for &checks in &counts {
        measured.push((checks, measure(&admin, &url, &site, checks).await?));
    }
    let first = measured[0].1.2;
    for (checks, (_, _, median)) in &measured[1..] {
        println!(
            "uncached render of / at {checks} checks: {:.2}x the {} checks' median",
            median / first,
            counts[0]
        );
    }
    let Some((_, (pool, html, _))) = measured.pop() else {
        return Err("nothing measured".into());
    };
    let reader = Reader::Pg(pool);
    std::fs::write(out.join("index.html"), &html)?;

    let stop = tokio_util::sync::CancellationToken::new();
    let mut servers = Vec::new();
    for (port, ttl) in [(env("CACHED_PORT")?, 10), (env("UNCACHED_PORT")?, 0)] {
        let state = AppState::new(
            reader.clone(),
            site.clone(),
            Duration::from_secs(ttl),
            dashboard::system_clock(),
        );
        servers.push(tokio::spawn(dashboard::run(
            Settings {
                listen: format!("127.0.0.1:{port}").parse()?,
                extra: None,
            },
            state,
            Changes::None,
            stop.clone(),
        )));
    }
    println!("ready");
    // Serve until the script closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await?;
    stop.cancel();
    for s in servers {
        s.await??;
    }
    Ok(())
}

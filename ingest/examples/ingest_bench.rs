//! The ingest benchmark (issue 6): results/s stored through the real store
//! (batched, idempotent, with state, status and rollups), against two
//! references on the same rows: a raw `COPY` and a bare multi-row
//! `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO NOTHING` in batches of
//! 1,000, into the reference table. Also bytes per row.
//!
//! Run it with `scripts/bench-ingest` (a PostgreSQL at default durability).
//! Arguments: `CHECKS AGENTS SLOTS WORKERS` (default 100 5 200 4).

use chrono::{DateTime, Utc};
use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, Timestamp};
use ingest::store::{Message, PgStore};
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (checks, agents, slots, workers) = (
        *args.first().unwrap_or(&100),
        *args.get(1).unwrap_or(&5),
        *args.get(2).unwrap_or(&200),
        *args.get(3).unwrap_or(&4),
    );
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is needed")?;
    let rows = checks * agents * slots;
    let start = (Utc::now().timestamp_millis() / 60_000 - slots as i64 - 5) * 60_000;
    println!(
        "rows: {rows} ({checks} checks x {agents} agents x {slots} slots), workers: {workers}"
    );

    // The messages, as agents send them: one agent, every check, one slot.
    let mut messages = Vec::new();
    for slot in 0..slots {
        for a in 0..agents {
            let agent = format!("agent-{a}");
            let at = Timestamp::from_unix_ms(start + slot as i64 * 60_000).ok_or("time")?;
            let results: Vec<ProbeResult> = (0..checks)
                .map(|c| result(&format!("check-{c}"), &agent, at, c, slot, a))
                .collect();
            messages.push((agent, results));
        }
    }

    let store = PgStore::connect_lazy(&url, workers as u32 + 2, Default::default())?;
    store.migrate().await?;
    store
        .ensure_partitions_back(Utc::now().timestamp_millis(), ingest::screen::MAX_AGE_MS)
        .await?;
    // Messages per transaction: ingest stores the (up to) ten messages of one
    // SQS receive together. GROUP=1 measures one transaction per message.
    let group: usize = std::env::var("GROUP")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(10);
    let grouped: Vec<Vec<(String, Vec<ProbeResult>)>> =
        messages.chunks(group.max(1)).map(|c| c.to_vec()).collect();
    let queue = Arc::new(std::sync::Mutex::new(grouped.into_iter()));
    let cpu_before = cpu_seconds();
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (store, queue) = (store.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(receive) = next else {
                    return Ok::<_, Error>(());
                };
                let infos: Vec<AgentInfo> = receive
                    .iter()
                    .map(|(agent, _)| AgentInfo {
                        id: agent.clone(),
                        zone: String::new(),
                        region: String::new(),
                        label: String::new(),
                    })
                    .collect();
                let batch: Vec<Message> = receive
                    .iter()
                    .zip(&infos)
                    .map(|((_, results), agent)| Message {
                        agent,
                        sent_at: results[0].scheduled_at,
                        results,
                    })
                    .collect();
                let now = Utc::now().timestamp_millis();
                store.store_messages(&batch, now).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let ours = rows as f64 / elapsed;
    let client_cpu = cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    let mut conn = PgConnection::connect(&url).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(stored as usize, rows, "every row stored once");
    let our_bytes: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(inhrelid))::int8 FROM pg_inherits WHERE inhparent = 'results'::regclass",
    )
    .fetch_one(&mut conn)
    .await?;

    let flat: Vec<(String, String, ProbeResult)> = messages
        .into_iter()
        .flat_map(|(agent, rs)| {
            rs.into_iter()
                .map(move |r| (r.check.clone(), agent.clone(), r))
        })
        .collect();
    reference_table(&mut conn).await?;
    let began = Instant::now();
    copy(&mut conn, &flat).await?;
    let copy_rate = rows as f64 / began.elapsed().as_secs_f64();
    let copy_bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('reference_results')")
        .fetch_one(&mut conn)
        .await?;
    reference_table(&mut conn).await?;
    let began = Instant::now();
    for chunk in flat.chunks(1000) {
        unnest(&mut conn, chunk).await?;
    }
    let unnest_rate = rows as f64 / began.elapsed().as_secs_f64();

    println!(
        "statuspage store : {ours:>9.0} rows/s  ({:.2} of UNNEST, {:.2} of COPY)",
        ours / unnest_rate,
        ours / copy_rate
    );
    if let Some(cpu) = client_cpu {
        println!(
            "  our process CPU: {:.0}% of the store phase ({cpu:.2} s of {elapsed:.2} s)",
            100.0 * cpu / elapsed
        );
    }
    println!("reference COPY   : {copy_rate:>9.0} rows/s");
    println!("reference UNNEST : {unnest_rate:>9.0} rows/s (batches of 1,000)");
    println!(
        "bytes per row    : {:.0} ours (results, indexes included) vs {:.0} reference ({:.2}x)",
        our_bytes as f64 / rows as f64,
        copy_bytes as f64 / rows as f64,
        our_bytes as f64 / copy_bytes as f64
    );
    Ok(())
}

/// This process's CPU time (user + system) in seconds, where Linux's
/// `/proc/self/stat` tells it (clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// A plausible result: mostly up, some checks slow, a few down.
fn result(check: &str, agent: &str, at: Timestamp, c: usize, slot: usize, a: usize) -> ProbeResult {
    let mut r = ProbeResult::new(check, "hash", agent, at, 60_000_000, 3);
    let wobble = ((c * 7 + slot * 13 + a * 17) % 100) as u64;
    r.phases.dns_us = Some(500 + wobble * 10);
    r.phases.connect_us = Some(1_000 + wobble * 30);
    r.phases.tls_us = Some(5_000 + wobble * 50);
    r.phases.ttfb_us = Some(20_000 + wobble * 400);
    r.phases.transfer_us = Some(300 + wobble);
    r.duration_us = r.phases.dns_us.unwrap_or(0) + 26_300 + wobble * 491;
    r.facts.http_status = Some(200);
    if (c + slot).is_multiple_of(50) {
        r.outcome = Outcome::Down;
        r.reason = Reason::ConnectRefused;
        r.set_message("connection refused");
        r.facts.http_status = None;
    }
    r
}

async fn reference_table(conn: &mut PgConnection) -> Result<(), Error> {
    sqlx::query("DROP TABLE IF EXISTS reference_results")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "CREATE TABLE reference_results (check_id text, location text, scheduled_at timestamptz,
           started_at timestamptz, duration_ms real, outcome smallint, reason text, status_code smallint,
           dns_ms real, connect_ms real, tls_ms real, ttfb_ms real,
           PRIMARY KEY (check_id, location, scheduled_at))",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn ms(us: Option<u64>) -> Option<f32> {
    us.map(|v| v as f32 / 1000.0)
}

fn outcome(r: &ProbeResult) -> i16 {
    match r.outcome {
        Outcome::Up => 0,
        Outcome::Degraded => 1,
        _ => 2,
    }
}

async fn copy(
    conn: &mut PgConnection,
    rows: &[(String, String, ProbeResult)],
) -> Result<(), Error> {
    let mut text = String::new();
    let opt = |v: Option<f32>| v.map_or("\\N".to_string(), |v| v.to_string());
    for (check, agent, r) in rows {
        text.push_str(&format!(
            "{check}\t{agent}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.scheduled_at,
            r.started_at,
            r.duration_us as f32 / 1000.0,
            outcome(r),
            r.reason,
            r.facts
                .http_status
                .map_or("\\N".to_string(), |s| s.to_string()),
            opt(ms(r.phases.dns_us)),
            opt(ms(r.phases.connect_us)),
            opt(ms(r.phases.tls_us)),
            opt(ms(r.phases.ttfb_us)),
        ));
    }
    let mut copy = conn
        .copy_in_raw("COPY reference_results FROM STDIN")
        .await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

async fn unnest(
    conn: &mut PgConnection,
    rows: &[(String, String, ProbeResult)],
) -> Result<(), Error> {
    let col =
        |f: &dyn Fn(&ProbeResult) -> Option<f32>| rows.iter().map(|x| f(&x.2)).collect::<Vec<_>>();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|x| x.2.scheduled_at.datetime()).collect();
    let started: Vec<DateTime<Utc>> = rows.iter().map(|x| x.2.started_at.datetime()).collect();
    sqlx::query(
        "INSERT INTO reference_results SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[],
           $4::timestamptz[], $5::real[], $6::int2[], $7::text[], $8::int2[], $9::real[], $10::real[],
           $11::real[], $12::real[]) ON CONFLICT DO NOTHING",
    )
    .bind(rows.iter().map(|x| x.0.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|x| x.1.clone()).collect::<Vec<_>>())
    .bind(at)
    .bind(started)
    .bind(col(&|r| Some(r.duration_us as f32 / 1000.0)))
    .bind(rows.iter().map(|x| outcome(&x.2)).collect::<Vec<_>>())
    .bind(rows.iter().map(|x| x.2.reason.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|x| x.2.facts.http_status.map(|s| s as i16)).collect::<Vec<_>>())
    .bind(col(&|r| ms(r.phases.dns_us)))
    .bind(col(&|r| ms(r.phases.connect_us)))
    .bind(col(&|r| ms(r.phases.tls_us)))
    .bind(col(&|r| ms(r.phases.ttfb_us)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

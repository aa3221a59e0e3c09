//! One message, one transaction: the agent's row, placeholder checks, the
//! result rows (`UNNEST ... ON CONFLICT DO NOTHING RETURNING`), and the state
//! of the checks that gained rows, under row locks taken in check-id order.

use super::recompute::{CheckRow, recompute};
use super::{PgStore, StoreError, retrying, ts};
use crate::state::{Pair, Verdict};
use crate::timeline::{self, Incoming};
use config::defaults::BUILT_IN;
use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, Timestamp};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};

/// What one message did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Rows inserted.
    pub inserted: u64,
    /// Results already stored (a redelivered or retried message).
    pub duplicate: u64,
    /// Inserted, but too late to move state (more than R newer ones of its pair).
    pub too_old: u64,
    /// Checks whose status or incident changed.
    pub changed: Vec<String>,
}

impl PgStore {
    /// Stores a screened batch in one transaction, retried on deadlock.
    /// `now` is ingest's clock (ms).
    pub async fn store_batch(
        &self,
        agent: &AgentInfo,
        sent_at: Timestamp,
        results: &[ProbeResult],
        now: i64,
    ) -> Result<Stored, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let stored = write(&mut tx, agent, sent_at, results, now).await?;
            tx.commit().await?;
            Ok(stored)
        })
        .await
    }
}

async fn write(
    tx: &mut Transaction<'_, Postgres>,
    agent: &AgentInfo,
    sent_at: Timestamp,
    results: &[ProbeResult],
    now: i64,
) -> Result<Stored, StoreError> {
    let seen = ts(sent_at.unix_ms().min(now));
    let agent_id: i32 = sqlx::query_scalar(
        "INSERT INTO agents (name, zone, region, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, region = excluded.region,
             last_seen = GREATEST(agents.last_seen, excluded.last_seen)
         RETURNING id",
    )
    .bind(&agent.id)
    .bind(&agent.zone)
    .bind(&agent.region)
    .bind(seen)
    .fetch_one(&mut **tx)
    .await?;
    if results.is_empty() {
        return Ok(Stored::default()); // a heartbeat
    }

    let checks = lock_checks(tx, results).await?;
    let id_of: BTreeMap<&str, i32> = checks.iter().map(|c| (c.slug.as_str(), c.id)).collect();
    let inserted = insert_results(tx, agent_id, &id_of, results).await?;
    let mut stored = Stored {
        inserted: inserted.len() as u64,
        duplicate: (results.len() - inserted.len()) as u64,
        ..Stored::default()
    };

    for check in &checks {
        let mine: Vec<&ProbeResult> = results
            .iter()
            .filter(|r| {
                r.check == check.slug && inserted.contains(&(check.id, r.scheduled_at.unix_ms()))
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let pair: Option<Json<Pair>> =
            sqlx::query_scalar("SELECT pair FROM pairs WHERE check_id = $1 AND agent_id = $2")
                .bind(check.id)
                .bind(agent_id)
                .fetch_optional(&mut **tx)
                .await?;
        let mut pairs =
            BTreeMap::from([(i64::from(agent_id), pair.map(|p| p.0).unwrap_or_default())]);
        let incoming: Vec<Incoming> = mine
            .iter()
            .map(|r| Incoming {
                pair: i64::from(agent_id),
                at: r.scheduled_at.unix_ms(),
                verdict: Verdict::from(&r.outcome),
            })
            .collect();
        let admitted = timeline::admit(&mut pairs, &incoming, check.thresholds());
        stored.too_old += admitted.too_old as u64;
        let (ats, states): (Vec<_>, Vec<i16>) = admitted
            .restates
            .iter()
            .map(|(_, at, s)| (ts(*at), s.code()))
            .unzip();
        sqlx::query(
            "UPDATE results SET state = u.state
             FROM UNNEST($3::timestamptz[], $4::int2[]) AS u(at, state)
             WHERE results.check_id = $1 AND results.agent_id = $2 AND results.scheduled_at = u.at",
        )
        .bind(check.id)
        .bind(agent_id)
        .bind(&ats)
        .bind(&states)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO pairs (check_id, agent_id, pair) VALUES ($1, $2, $3)
             ON CONFLICT (check_id, agent_id) DO UPDATE SET pair = excluded.pair",
        )
        .bind(check.id)
        .bind(agent_id)
        .bind(Json(&pairs[&i64::from(agent_id)]))
        .execute(&mut **tx)
        .await?;
        let widest = mine
            .iter()
            .map(|r| (r.interval_us / 1000) as i64)
            .max()
            .unwrap_or(0);
        if widest > check.interval_ms {
            sqlx::query("UPDATE checks SET interval_ms = $2 WHERE id = $1")
                .bind(check.id)
                .bind(widest)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(from) = admitted.from {
            let mut check = check.clone();
            check.interval_ms = check.interval_ms.max(widest);
            if recompute(tx, &check, from, None).await? {
                stored.changed.push(check.slug.clone());
            }
        }
    }
    Ok(stored)
}

/// Makes placeholder rows for unknown checks, then locks every check of the
/// batch in id order.
async fn lock_checks(
    tx: &mut Transaction<'_, Postgres>,
    results: &[ProbeResult],
) -> Result<Vec<CheckRow>, StoreError> {
    let mut widest: BTreeMap<&str, i64> = BTreeMap::new();
    for r in results {
        let w = widest.entry(r.check.as_str()).or_default();
        *w = (*w).max((r.interval_us / 1000).max(1) as i64);
    }
    let (slugs, intervals): (Vec<&str>, Vec<i64>) = widest.into_iter().unzip();
    sqlx::query(
        "INSERT INTO checks (slug, name, placeholder, interval_ms, failure_threshold,
                             success_threshold, reopen_window_ms)
         SELECT s, s, true, i, $3, $4, $5 FROM UNNEST($1::text[], $2::int8[]) AS u(s, i)
         ORDER BY s
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(&slugs)
    .bind(&intervals)
    .bind(BUILT_IN.failure_threshold as i32)
    .bind(BUILT_IN.success_threshold as i32)
    .bind(BUILT_IN.reopen_window.as_millis() as i64)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<CheckRow> = sqlx::query_as(&format!(
        "SELECT {} FROM checks WHERE slug = ANY($1) ORDER BY id FOR UPDATE",
        CheckRow::COLUMNS
    ))
    .bind(&slugs)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows)
}

/// Inserts the rows; returns the `(check_id, scheduled_at ms)` of those
/// actually inserted.
async fn insert_results(
    tx: &mut Transaction<'_, Postgres>,
    agent_id: i32,
    id_of: &BTreeMap<&str, i32>,
    results: &[ProbeResult],
) -> Result<BTreeSet<(i32, i64)>, StoreError> {
    let mut cols = Columns::default();
    for r in results {
        let Some(&check) = id_of.get(r.check.as_str()) else {
            continue;
        };
        cols.push(check, r);
    }
    let rows: Vec<(i32, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "INSERT INTO results (check_id, agent_id, scheduled_at, started_at, interval_ms, assigned,
                              duration_us, outcome, reason, dns_us, connect_us, tls_us, ttfb_us,
                              transfer_us, detail)
         SELECT c, $1, s, st, i, a, d, o, r, p1, p2, p3, p4, p5, dt
         FROM UNNEST($2::int4[], $3::timestamptz[], $4::timestamptz[], $5::int8[], $6::int4[],
                     $7::int8[], $8::int2[], $9::text[], $10::int4[], $11::int4[], $12::int4[],
                     $13::int4[], $14::int4[], $15::jsonb[])
              AS u(c, s, st, i, a, d, o, r, p1, p2, p3, p4, p5, dt)
         ON CONFLICT DO NOTHING
         RETURNING check_id, scheduled_at",
    )
    .bind(agent_id)
    .bind(&cols.check)
    .bind(&cols.scheduled)
    .bind(&cols.started)
    .bind(&cols.interval)
    .bind(&cols.assigned)
    .bind(&cols.duration)
    .bind(&cols.outcome)
    .bind(&cols.reason)
    .bind(&cols.phases[0])
    .bind(&cols.phases[1])
    .bind(&cols.phases[2])
    .bind(&cols.phases[3])
    .bind(&cols.phases[4])
    .bind(&cols.detail)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(c, at)| (c, at.timestamp_millis()))
        .collect())
}

/// The result rows, column by column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    check: Vec<i32>,
    scheduled: Vec<chrono::DateTime<chrono::Utc>>,
    started: Vec<chrono::DateTime<chrono::Utc>>,
    interval: Vec<i64>,
    assigned: Vec<i32>,
    duration: Vec<i64>,
    outcome: Vec<i16>,
    reason: Vec<String>,
    phases: [Vec<Option<i32>>; 5],
    detail: Vec<Option<Json<serde_json::Value>>>,
}

impl Columns {
    fn push(&mut self, check: i32, r: &ProbeResult) {
        let us = |v: Option<u64>| v.map(|v| v.min(i32::MAX as u64) as i32);
        self.check.push(check);
        self.scheduled.push(r.scheduled_at.datetime());
        self.started.push(r.started_at.datetime());
        self.interval.push((r.interval_us / 1000) as i64);
        self.assigned.push(r.assigned as i32);
        self.duration
            .push(r.duration_us.min(i64::MAX as u64) as i64);
        self.outcome.push(match r.outcome {
            Outcome::Up => 0,
            Outcome::Degraded => 1,
            Outcome::Down => 2,
            Outcome::Other(_) => 3,
        });
        self.reason.push(r.reason.as_str().to_string());
        let p = &r.phases;
        for (col, v) in
            self.phases
                .iter_mut()
                .zip([p.dns_us, p.connect_us, p.tls_us, p.ttfb_us, p.transfer_us])
        {
            col.push(us(v));
        }
        // Facts and assertions are kept only for results that are not ok.
        self.detail.push(
            (r.reason != Reason::Ok || r.outcome != Outcome::Up).then(|| {
                Json(serde_json::json!({
                    "outcome": r.outcome.as_str(),
                    "message": r.message,
                    "facts": r.facts,
                    "assertions": r.assertions,
                }))
            }),
        );
    }
}

//! One message, one transaction, a fixed number of statements whatever its
//! size: the agent's row, placeholder checks, the check rows locked in id
//! order, the pairs, the result rows (`UNNEST ... ON CONFLICT DO NOTHING
//! RETURNING`) with their states, the late results' new states, the pairs
//! back, the status recompute of every check that moved, and the rollups.
//!
//! States are computed before the insert, from the pairs' buffers: a result
//! the buffer calls new cannot be in the table (the buffer holds the newest R
//! of its pair, and the check row lock serializes writers). The insert's
//! `RETURNING` is checked against that; should they ever disagree, the slow
//! path admits only what was really inserted.

use super::recompute::{CheckRow, recompute};
use super::{PgStore, StoreError, reason_code, retrying, ts};
use crate::rollup::{self, Rollups};
use crate::state::{Admission, Entry, Millis, Pair, PairState, Verdict};
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
            if !stored.changed.is_empty() {
                let _ = self.changes.send(stored.changed.clone());
            }
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
    let agent_id: i32 = sqlx::query_scalar(
        "INSERT INTO agents (name, zone, region, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, region = excluded.region,
             last_seen = GREATEST(agents.last_seen, excluded.last_seen)
         RETURNING id",
    )
    .bind(&agent.id)
    .bind(&agent.zone)
    .bind(&agent.region)
    .bind(ts(sent_at.unix_ms().min(now)))
    .fetch_one(&mut **tx)
    .await?;
    if results.is_empty() {
        return Ok(Stored::default()); // a heartbeat
    }
    let checks = lock_checks(tx, results).await?;
    let by_slug: BTreeMap<&str, &CheckRow> = checks.iter().map(|c| (c.slug.as_str(), c)).collect();
    let ids: Vec<i32> = checks.iter().map(|c| c.id).collect();
    let stored_pairs = load_pairs(tx, agent_id, &ids).await?;

    let mut pairs = stored_pairs.clone();
    let mut admitted = admit(&mut pairs, &by_slug, results, |_| true);
    let inserted = insert_results(tx, agent_id, &by_slug, results, &admitted.states).await?;
    if admitted.placed.iter().any(|k| !inserted.contains(k)) {
        // The buffers and the table disagree: admit only what was inserted,
        // and write those rows' states afterwards.
        tracing::warn!(event = "pair_buffer_mismatch", agent = %agent.id);
        pairs = stored_pairs;
        admitted = admit(&mut pairs, &by_slug, results, |k| inserted.contains(&k));
        admitted.late.extend(
            admitted
                .states
                .iter()
                .filter(|(k, _)| inserted.contains(&(k.0, k.1)))
                .map(|(k, s)| (*k, *s)),
        );
    }
    write_states(tx, agent_id, &admitted.late).await?;
    save_pairs(tx, agent_id, &pairs).await?;

    let mut rollups = Rollups::new();
    let mut widest: BTreeMap<i32, i64> = BTreeMap::new();
    for r in results {
        let Some(check) = by_slug.get(r.check.as_str()) else {
            continue;
        };
        if !inserted.contains(&(check.id, r.scheduled_at.unix_ms())) {
            continue;
        }
        let p = &r.phases;
        let durations = [
            Some(r.duration_us),
            p.dns_us,
            p.connect_us,
            p.tls_us,
            p.ttfb_us,
            p.transfer_us,
        ];
        rollup::add(
            &mut rollups,
            check.id,
            r.scheduled_at.unix_ms(),
            r.outcome == Outcome::Up,
            durations,
        );
        let w = widest.entry(check.id).or_default();
        *w = (*w).max(interval_ms(r));
    }
    super::rollups::upsert(tx, &rollups).await?;

    let mut due = Vec::new();
    for check in &checks {
        let mut check = check.clone();
        if let Some(&w) = widest.get(&check.id)
            && w > check.interval_ms
        {
            check.interval_ms = w;
            sqlx::query("UPDATE checks SET interval_ms = $2 WHERE id = $1")
                .bind(check.id)
                .bind(w)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(&from) = admitted.from.get(&check.id) {
            due.push((check, from));
        }
    }
    let changed = recompute(tx, &due, None).await?;
    Ok(Stored {
        inserted: inserted.len() as u64,
        duplicate: (results.len() - inserted.len()) as u64,
        too_old: admitted.too_old,
        changed,
    })
}

/// What admitting a batch into its pairs decided.
#[derive(Debug, Default)]
struct Admitted {
    /// `(check, at)` of each result placed in its buffer.
    placed: BTreeSet<(i32, Millis)>,
    /// The state after each result whose state was (re)computed.
    states: BTreeMap<(i32, Millis), PairState>,
    /// Of those, the ones of rows already in the table (late results moved them).
    late: BTreeMap<(i32, Millis), PairState>,
    /// Per check, the earliest instant whose status may have moved.
    from: BTreeMap<i32, Millis>,
    too_old: u64,
}

fn admit(
    pairs: &mut BTreeMap<i32, Pair>,
    by_slug: &BTreeMap<&str, &CheckRow>,
    results: &[ProbeResult],
    keep: impl Fn((i32, Millis)) -> bool,
) -> Admitted {
    let mut out = Admitted::default();
    let batch: BTreeSet<(i32, Millis)> = results
        .iter()
        .filter_map(|r| Some((by_slug.get(r.check.as_str())?.id, r.scheduled_at.unix_ms())))
        .collect();
    for r in results {
        let Some(check) = by_slug.get(r.check.as_str()) else {
            continue;
        };
        let key = (check.id, r.scheduled_at.unix_ms());
        if !keep(key) {
            continue;
        }
        let t = check.thresholds();
        let pair = pairs.entry(check.id).or_default();
        match pair.admit(
            Entry {
                at: key.1,
                verdict: Verdict::from(&r.outcome),
            },
            t,
        ) {
            Admission::Placed { from } => {
                out.placed.insert(key);
                for (at, s) in pair.states(t).into_iter().filter(|(at, _)| *at >= from) {
                    out.states.insert((check.id, at), s);
                    if !batch.contains(&(check.id, at)) {
                        out.late.insert((check.id, at), s);
                    }
                }
                let f = out.from.entry(check.id).or_insert(from);
                *f = (*f).min(from);
            }
            Admission::TooOld => out.too_old += 1,
            Admission::Duplicate => {}
        }
    }
    out
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
        *w = (*w).max(interval_ms(r).max(1));
    }
    let (slugs, intervals): (Vec<&str>, Vec<i64>) = widest.into_iter().unzip();
    sqlx::query(
        "INSERT INTO checks (slug, name, placeholder, interval_ms, failure_threshold,
                             success_threshold, reopen_window_ms)
         SELECT s, s, true, i, $3, $4, $5 FROM UNNEST($1::text[], $2::int8[]) AS u(s, i)
         WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.slug = u.s)
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
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM checks WHERE slug = ANY($1) ORDER BY id FOR UPDATE",
        CheckRow::COLUMNS
    ))
    .bind(&slugs)
    .fetch_all(&mut **tx)
    .await?)
}

async fn load_pairs(
    tx: &mut Transaction<'_, Postgres>,
    agent_id: i32,
    checks: &[i32],
) -> Result<BTreeMap<i32, Pair>, StoreError> {
    let rows: Vec<(i32, Json<Pair>)> = sqlx::query_as(
        "SELECT check_id, pair FROM pairs WHERE agent_id = $1 AND check_id = ANY($2)",
    )
    .bind(agent_id)
    .bind(checks)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(c, p)| (c, p.0)).collect())
}

async fn save_pairs(
    tx: &mut Transaction<'_, Postgres>,
    agent_id: i32,
    pairs: &BTreeMap<i32, Pair>,
) -> Result<(), StoreError> {
    let ids: Vec<i32> = pairs.keys().copied().collect();
    let json: Vec<Json<&Pair>> = pairs.values().map(Json).collect();
    sqlx::query(
        "INSERT INTO pairs (check_id, agent_id, pair)
         SELECT c, $1, p FROM UNNEST($2::int4[], $3::jsonb[]) AS u(c, p)
         ON CONFLICT (check_id, agent_id) DO UPDATE SET pair = excluded.pair",
    )
    .bind(agent_id)
    .bind(&ids)
    .bind(&json)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// New states of rows already stored (moved by a late result).
async fn write_states(
    tx: &mut Transaction<'_, Postgres>,
    agent_id: i32,
    states: &BTreeMap<(i32, Millis), PairState>,
) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let checks: Vec<i32> = states.keys().map(|k| k.0).collect();
    let ats: Vec<_> = states.keys().map(|k| ts(k.1)).collect();
    let codes: Vec<i16> = states.values().map(|s| s.code()).collect();
    sqlx::query(
        "UPDATE results SET state = u.state
         FROM UNNEST($2::int4[], $3::timestamptz[], $4::int2[]) AS u(check_id, at, state)
         WHERE results.check_id = u.check_id AND results.scheduled_at = u.at
           AND results.agent_id = $1",
    )
    .bind(agent_id)
    .bind(&checks)
    .bind(&ats)
    .bind(&codes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn interval_ms(r: &ProbeResult) -> i64 {
    ((r.interval_us / 1000) as i64).clamp(1, i64::from(i32::MAX))
}

fn us(v: u64) -> i32 {
    v.min(i32::MAX as u64) as i32
}

/// Inserts the rows with their states; returns the `(check_id, scheduled_at
/// ms)` of those actually inserted.
async fn insert_results(
    tx: &mut Transaction<'_, Postgres>,
    agent_id: i32,
    by_slug: &BTreeMap<&str, &CheckRow>,
    results: &[ProbeResult],
    states: &BTreeMap<(i32, Millis), PairState>,
) -> Result<BTreeSet<(i32, i64)>, StoreError> {
    let mut c = Columns::default();
    for r in results {
        if let Some(check) = by_slug.get(r.check.as_str()) {
            let state = states
                .get(&(check.id, r.scheduled_at.unix_ms()))
                .map(|s| s.code());
            c.push(check.id, r, state);
        }
    }
    let rows: Vec<(i32, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "INSERT INTO results (scheduled_at, check_id, agent_id, start_delay_ms, interval_ms,
                              duration_us, dns_us, connect_us, tls_us, ttfb_us, transfer_us,
                              assigned, outcome, reason, state, detail)
         SELECT s, c, $1, sd, i, d, p1, p2, p3, p4, p5, a, o, r, st, dt
         FROM UNNEST($2::timestamptz[], $3::int4[], $4::int4[], $5::int4[], $6::int4[],
                     $7::int4[], $8::int4[], $9::int4[], $10::int4[], $11::int4[], $12::int2[],
                     $13::int2[], $14::int2[], $15::int2[], $16::jsonb[])
              AS u(s, c, sd, i, d, p1, p2, p3, p4, p5, a, o, r, st, dt)
         ON CONFLICT DO NOTHING
         RETURNING check_id, scheduled_at",
    )
    .bind(agent_id)
    .bind(&c.scheduled)
    .bind(&c.check)
    .bind(&c.start_delay)
    .bind(&c.interval)
    .bind(&c.duration)
    .bind(&c.phases[0])
    .bind(&c.phases[1])
    .bind(&c.phases[2])
    .bind(&c.phases[3])
    .bind(&c.phases[4])
    .bind(&c.assigned)
    .bind(&c.outcome)
    .bind(&c.reason)
    .bind(&c.state)
    .bind(&c.detail)
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
    scheduled: Vec<chrono::DateTime<chrono::Utc>>,
    check: Vec<i32>,
    start_delay: Vec<i32>,
    interval: Vec<i32>,
    duration: Vec<i32>,
    phases: [Vec<Option<i32>>; 5],
    assigned: Vec<i16>,
    outcome: Vec<i16>,
    reason: Vec<i16>,
    state: Vec<Option<i16>>,
    detail: Vec<Option<Json<serde_json::Value>>>,
}

impl Columns {
    fn push(&mut self, check: i32, r: &ProbeResult, state: Option<i16>) {
        self.scheduled.push(r.scheduled_at.datetime());
        self.check.push(check);
        let delay = r.started_at.unix_ms() - r.scheduled_at.unix_ms();
        self.start_delay
            .push(delay.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        self.interval.push(interval_ms(r) as i32);
        self.duration.push(us(r.duration_us));
        let p = &r.phases;
        for (col, v) in
            self.phases
                .iter_mut()
                .zip([p.dns_us, p.connect_us, p.tls_us, p.ttfb_us, p.transfer_us])
        {
            col.push(v.map(us));
        }
        self.assigned.push(r.assigned.min(i16::MAX as u32) as i16);
        self.outcome.push(match r.outcome {
            Outcome::Up => 0,
            Outcome::Degraded => 1,
            Outcome::Down => 2,
            Outcome::Other(_) => 3,
        });
        self.reason.push(reason_code(&r.reason));
        self.state.push(state);
        // Facts and assertions are kept only for results that are not ok.
        self.detail.push(
            (r.reason != Reason::Ok || r.outcome != Outcome::Up).then(|| {
                Json(serde_json::json!({
                    "outcome": r.outcome.as_str(),
                    "reason": r.reason.as_str(),
                    "message": r.message,
                    "facts": r.facts,
                    "assertions": r.assertions,
                }))
            }),
        );
    }
}

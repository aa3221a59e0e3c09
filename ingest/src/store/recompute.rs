//! The status recompute of a set of checks inside the caller's transaction
//! (their rows already locked): load in one statement per kind what
//! [`timeline::plan`] needs for all of them, plan each, write in one statement
//! per kind (incident actions, which are rare, one by one).

use super::{StoreError, ms, reason_text, ts};
use crate::incident::{self, Action, Latest, State};
use crate::state::{Millis, PairState, Thresholds};
use crate::status::{Change, Detail, Sample, Status};
use crate::timeline::{self, Loaded, Rules};
use chrono::{DateTime, Utc};
use config::defaults::Quorum;
use sqlx::{Postgres, Transaction};
use std::collections::BTreeMap;

/// The columns of a check the state machines need.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct CheckRow {
    pub id: i32,
    pub slug: String,
    pub name: String,
    pub interval_ms: i64,
    pub failure_threshold: i32,
    pub success_threshold: i32,
    pub quorum: Option<i32>,
    pub reopen_window_ms: i64,
    pub decided_through: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl CheckRow {
    pub const COLUMNS: &'static str = "id, slug, name, interval_ms, failure_threshold, \
        success_threshold, quorum, reopen_window_ms, decided_through, created_at";

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            failure: self.failure_threshold.max(1) as u32,
            success: self.success_threshold.max(1) as u32,
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            thresholds: self.thresholds(),
            quorum: match self.quorum {
                Some(n) => Quorum::Count(n.max(1) as u32),
                None => Quorum::Majority,
            },
            reopen_window_ms: self.reopen_window_ms,
        }
    }
}

type SampleRow = (i32, i32, DateTime<Utc>, i16, i32, i16, i16);
type ChangeRow = (i32, DateTime<Utc>, String, i32, i32, i32, Vec<String>);
type IncidentRow = (
    i32,
    i64,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    bool,
    bool,
);

/// One check's span to recompute.
struct Span<'a> {
    check: &'a CheckRow,
    from: Millis,
    low: Millis,
}

/// Recomputes each check's status changes from its `from` (or its
/// `decided_through`, if earlier) through its newest sample, or through
/// `through` when a tick decides silence up to now. Rewrites the changes
/// that moved and applies the incident actions. Returns the checks whose
/// status changes or incidents changed.
pub(crate) async fn recompute(
    tx: &mut Transaction<'_, Postgres>,
    due: &[(CheckRow, Millis)],
    through: Option<Millis>,
) -> Result<Vec<String>, StoreError> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    // Start no later than what was decided before, so instants between the
    // old horizon and the new results (a window's end, a silence) are decided.
    let spans: Vec<Span> = due
        .iter()
        .map(|(check, from)| {
            let from = check.decided_through.map_or(*from, |d| (*from).min(ms(d)));
            Span {
                check,
                from,
                low: from - timeline::lookback(check.interval_ms),
            }
        })
        .collect();
    let ids: Vec<i32> = spans.iter().map(|s| s.check.id).collect();
    let froms: Vec<_> = spans.iter().map(|s| ts(s.from)).collect();
    let lows: Vec<_> = spans.iter().map(|s| ts(s.low)).collect();
    let slugs: Vec<&str> = spans.iter().map(|s| s.check.slug.as_str()).collect();

    let rows: Vec<SampleRow> = sqlx::query_as(
        "SELECT r.check_id, r.agent_id, r.scheduled_at, r.state, r.interval_ms, r.assigned, r.reason
         FROM UNNEST($1::int4[], $2::timestamptz[]) AS q(check_id, low)
         JOIN results r ON r.check_id = q.check_id AND r.scheduled_at >= q.low
         WHERE r.state IS NOT NULL",
    )
    .bind(&ids)
    .bind(&lows)
    .fetch_all(&mut **tx)
    .await?;
    let mut samples: BTreeMap<i32, Vec<Sample>> = BTreeMap::new();
    for (check, agent, at, state, interval, assigned, reason) in rows {
        samples.entry(check).or_default().push(Sample {
            pair: i64::from(agent),
            at: ms(at),
            state: PairState::from_code(state).unwrap_or(PairState::Passing),
            interval_ms: i64::from(interval),
            assigned: assigned.max(0) as u32,
            reason: reason_text(reason).to_string(),
        });
    }
    let before: Vec<(i32, String)> = sqlx::query_as(
        "SELECT q.check_id, s.status FROM UNNEST($1::int4[], $2::timestamptz[]) AS q(check_id, f)
         CROSS JOIN LATERAL (SELECT status FROM status_changes
                             WHERE check_id = q.check_id AND at < q.f ORDER BY at DESC LIMIT 1) s",
    )
    .bind(&ids)
    .bind(&froms)
    .fetch_all(&mut **tx)
    .await?;
    let before: BTreeMap<i32, Status> = before
        .into_iter()
        .map(|(c, s)| Ok((c, parse_status(&s)?)))
        .collect::<Result<_, StoreError>>()?;
    let old: Vec<ChangeRow> = sqlx::query_as(
        "SELECT s.check_id, s.at, s.status, s.assigned, s.reporting, s.failing, s.reasons
         FROM UNNEST($1::int4[], $2::timestamptz[]) AS q(check_id, f)
         JOIN status_changes s ON s.check_id = q.check_id AND s.at >= q.f ORDER BY s.check_id, s.at",
    )
    .bind(&ids)
    .bind(&froms)
    .fetch_all(&mut **tx)
    .await?;
    let mut olds: BTreeMap<i32, Vec<Change>> = BTreeMap::new();
    for (check, at, status, assigned, reporting, failing, reasons) in old {
        olds.entry(check).or_default().push(Change {
            at: ms(at),
            status: parse_status(&status)?,
            detail: Detail {
                assigned: assigned.max(0) as u32,
                reporting: reporting.max(0) as u32,
                failing: failing.max(0) as u32,
                reasons,
            },
        });
    }
    let low = spans.iter().map(|s| s.low).min().unwrap_or(0);
    let windows: Vec<(Vec<String>, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT checks, starts_at, ends_at FROM maintenance_windows
         WHERE checks && $1::text[] AND ends_at >= $2",
    )
    .bind(&slugs)
    .bind(ts(low))
    .fetch_all(&mut **tx)
    .await?;
    let latest = latest_incidents(tx, &ids).await?;

    let mut plans = Vec::new();
    for s in &spans {
        let samples = samples.remove(&s.check.id).unwrap_or_default();
        let newest = samples.iter().map(|x| x.at).max().unwrap_or(s.from);
        let decided = s.check.decided_through.map_or(s.from, ms);
        let until = through
            .unwrap_or(newest)
            .max(newest)
            .max(decided)
            .max(s.from);
        let mine: Vec<(Millis, Millis)> = windows
            .iter()
            .filter(|(checks, _, _)| checks.contains(&s.check.slug))
            .map(|(_, a, b)| (ms(*a), ms(*b)))
            .collect();
        let old = olds.remove(&s.check.id).unwrap_or_default();
        let plan = timeline::plan(
            Loaded {
                samples: &samples,
                before: before.get(&s.check.id).copied(),
                old: &old,
                windows: &mine,
                latest: latest.get(&s.check.id).cloned(),
            },
            s.from,
            until,
            &s.check.rules(),
        );
        plans.push((s, until, plan));
    }

    let decided: Vec<_> = plans.iter().map(|(_, until, _)| ts(*until)).collect();
    sqlx::query(
        "UPDATE checks SET decided_through = u.d FROM UNNEST($1::int4[], $2::timestamptz[]) AS u(id, d)
         WHERE checks.id = u.id",
    )
    .bind(&ids)
    .bind(&decided)
    .execute(&mut **tx)
    .await?;
    let rewrites: Vec<(&Span, &[Change])> = plans
        .iter()
        .filter(|(_, _, p)| p.rewrite)
        .map(|(s, _, p)| (*s, p.changes.as_slice()))
        .collect();
    write_changes(tx, &rewrites).await?;
    let mut changed = Vec::new();
    let (mut status_ids, mut statuses) = (Vec::new(), Vec::new());
    for (s, _, plan) in &plans {
        // An incident opened by this plan has id 0 in later actions of the
        // same plan until the database gives it its id.
        let mut opened = 0;
        for (action, _) in &plan.actions {
            opened = apply(tx, s.check, &with_id(action, opened)).await?;
        }
        if plan.rewrite || !plan.actions.is_empty() {
            changed.push(s.check.slug.clone());
            status_ids.push(s.check.id);
            statuses.push(plan.current.unwrap_or(Status::Unknown).as_str());
        }
    }
    if !status_ids.is_empty() {
        sqlx::query(
            "UPDATE checks SET status = u.s,
                 status_since = (SELECT max(at) FROM status_changes WHERE check_id = u.id)
             FROM UNNEST($1::int4[], $2::text[]) AS u(id, s) WHERE checks.id = u.id",
        )
        .bind(&status_ids)
        .bind(&statuses)
        .execute(&mut **tx)
        .await?;
        // Dashboards drop their cache at once (DESIGN §4.4).
        sqlx::query("SELECT pg_notify('statuspage_changes', c) FROM UNNEST($1::text[]) AS c")
            .bind(&changed)
            .execute(&mut **tx)
            .await?;
    }
    Ok(changed)
}

fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

async fn latest_incidents(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i32],
) -> Result<BTreeMap<i32, Latest>, StoreError> {
    let rows: Vec<IncidentRow> = sqlx::query_as(
        "SELECT q.c, i.id, i.state, i.started_at, i.resolved_at, i.resolved_automatically,
                i.operator_updated
         FROM UNNEST($1::int4[]) AS q(c)
         CROSS JOIN LATERAL (SELECT * FROM incidents WHERE auto AND check_id = q.c
                             ORDER BY id DESC LIMIT 1) i",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(
            |(check, id, state, started, resolved, auto_resolved, operator)| {
                let state = State::parse(&state).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown incident state {state:?}"))
                })?;
                Ok((
                    check,
                    Latest {
                        id,
                        state,
                        started_at: ms(started),
                        resolved_at: resolved.map(ms),
                        resolved_automatically: auto_resolved,
                        operator_updated: operator,
                    },
                ))
            },
        )
        .collect()
}

async fn write_changes(
    tx: &mut Transaction<'_, Postgres>,
    rewrites: &[(&Span<'_>, &[Change])],
) -> Result<(), StoreError> {
    if rewrites.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = rewrites.iter().map(|(s, _)| s.check.id).collect();
    let froms: Vec<_> = rewrites.iter().map(|(s, _)| ts(s.from)).collect();
    sqlx::query(
        "DELETE FROM status_changes s USING UNNEST($1::int4[], $2::timestamptz[]) AS q(c, f)
         WHERE s.check_id = q.c AND s.at >= q.f",
    )
    .bind(&ids)
    .bind(&froms)
    .execute(&mut **tx)
    .await?;
    let all: Vec<(i32, &Change)> = rewrites
        .iter()
        .flat_map(|(s, cs)| cs.iter().map(move |c| (s.check.id, c)))
        .collect();
    let check: Vec<i32> = all.iter().map(|c| c.0).collect();
    let at: Vec<_> = all.iter().map(|c| ts(c.1.at)).collect();
    let status: Vec<_> = all.iter().map(|c| c.1.status.as_str()).collect();
    let assigned: Vec<i32> = all.iter().map(|c| c.1.detail.assigned as i32).collect();
    let reporting: Vec<i32> = all.iter().map(|c| c.1.detail.reporting as i32).collect();
    let failing: Vec<i32> = all.iter().map(|c| c.1.detail.failing as i32).collect();
    // One text per change (reason codes never hold commas), as PostgreSQL has no ragged arrays.
    let reasons: Vec<String> = all.iter().map(|c| c.1.detail.reasons.join(",")).collect();
    sqlx::query(
        "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
         SELECT c, a, s, n, r, f, CASE WHEN rs = '' THEN '{}'::text[] ELSE string_to_array(rs, ',') END
         FROM UNNEST($1::int4[], $2::timestamptz[], $3::text[], $4::int4[], $5::int4[], $6::int4[],
                     $7::text[]) AS u(c, a, s, n, r, f, rs)",
    )
    .bind(&check)
    .bind(&at)
    .bind(&status)
    .bind(&assigned)
    .bind(&reporting)
    .bind(&failing)
    .bind(&reasons)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The author of everything ingest writes on incidents.
pub const AUTHOR: &str = "statuspage";

fn with_id(action: &Action, opened: i64) -> Action {
    let mut a = action.clone();
    if let Action::Reopen { id, .. } | Action::Resolve { id, .. } | Action::Monitor { id, .. } =
        &mut a
        && *id == 0
    {
        *id = opened;
    }
    a
}

/// Applies one action; returns the incident's id.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    check: &CheckRow,
    action: &Action,
) -> Result<i64, StoreError> {
    let (id, at, state, message) = match action {
        Action::Open { at, message } => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, impact, state, auto, check_id, started_at)
                 VALUES ($1, 'major', 'investigating', true, $2, $3) RETURNING id",
            )
            .bind(incident::title(&check.name))
            .bind(check.id)
            .bind(ts(*at))
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query("INSERT INTO incident_checks (incident_id, check_id) VALUES ($1, $2)")
                .bind(id)
                .bind(check.id)
                .execute(&mut **tx)
                .await?;
            (id, *at, State::Investigating, message)
        }
        Action::Reopen { id, at, message } => {
            sqlx::query(
                "UPDATE incidents SET state = 'investigating', resolved_at = NULL,
                     resolved_automatically = false, updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut **tx)
            .await?;
            (*id, *at, State::Investigating, message)
        }
        Action::Resolve { id, at, message } => {
            sqlx::query(
                "UPDATE incidents SET state = 'resolved', resolved_at = $2,
                     resolved_automatically = true, updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(ts(*at))
            .execute(&mut **tx)
            .await?;
            (*id, *at, State::Resolved, message)
        }
        Action::Monitor { id, at, message } => {
            sqlx::query(
                "UPDATE incidents SET state = 'monitoring', updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut **tx)
            .await?;
            (*id, *at, State::Monitoring, message)
        }
    };
    sqlx::query(
        "INSERT INTO incident_updates (incident_id, at, state, message, author)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(ts(at))
    .bind(state.as_str())
    .bind(message)
    .bind(AUTHOR)
    .execute(&mut **tx)
    .await?;
    tracing::info!(event = "incident", check = %check.slug, incident = id, state = state.as_str(), message = %message);
    Ok(id)
}

/// Resolves the check's open automatic incident because it was retired.
pub(crate) async fn retire(
    tx: &mut Transaction<'_, Postgres>,
    check: &CheckRow,
    now: Millis,
) -> Result<(), StoreError> {
    let latest = latest_incidents(tx, &[check.id]).await?;
    if let Some(action) = incident::on_retired(latest.get(&check.id), now) {
        apply(tx, check, &action).await?;
    }
    Ok(())
}

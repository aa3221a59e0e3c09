//! One check's recompute inside the caller's transaction (the check row is
//! already locked): load what [`timeline::plan`] needs, write what it says.

use super::{StoreError, ms, ts};
use crate::incident::{self, Action, Latest, State};
use crate::state::{Millis, PairState, Thresholds};
use crate::status::{Change, Detail, Sample, Status};
use crate::timeline::{self, Loaded, Rules};
use chrono::{DateTime, Utc};
use config::defaults::Quorum;
use sqlx::{Postgres, Transaction};

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

#[derive(sqlx::FromRow)]
struct SampleRow {
    agent_id: i32,
    scheduled_at: DateTime<Utc>,
    state: i16,
    interval_ms: i64,
    assigned: i32,
    reason: String,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    at: DateTime<Utc>,
    status: String,
    assigned: i32,
    reporting: i32,
    failing: i32,
    reasons: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: i64,
    state: String,
    started_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_automatically: bool,
    operator_updated: bool,
}

/// Recomputes the check's status changes from `from` through the newest
/// sample (or `through`, when a tick decides silence up to now), rewrites
/// them if they moved, and applies the incident actions. Returns whether the
/// status changes or an incident changed.
pub(crate) async fn recompute(
    tx: &mut Transaction<'_, Postgres>,
    check: &CheckRow,
    from: Millis,
    through: Option<Millis>,
) -> Result<bool, StoreError> {
    // Start no later than what was decided before, so instants between the
    // old horizon and the new results (a window's end, a silence) are decided.
    let from = check.decided_through.map_or(from, |d| from.min(ms(d)));
    let low = from - timeline::lookback(check.interval_ms);
    let rows: Vec<SampleRow> = sqlx::query_as(
        "SELECT agent_id, scheduled_at, state, interval_ms, assigned, reason FROM results
         WHERE check_id = $1 AND scheduled_at >= $2 AND state IS NOT NULL",
    )
    .bind(check.id)
    .bind(ts(low))
    .fetch_all(&mut **tx)
    .await?;
    let samples: Vec<Sample> = rows
        .into_iter()
        .map(|r| Sample {
            pair: i64::from(r.agent_id),
            at: ms(r.scheduled_at),
            state: PairState::from_code(r.state).unwrap_or(PairState::Passing),
            interval_ms: r.interval_ms,
            assigned: r.assigned.max(0) as u32,
            reason: r.reason,
        })
        .collect();
    let newest = samples.iter().map(|s| s.at).max().unwrap_or(from);
    let decided = check.decided_through.map_or(from, ms);
    let through = through.unwrap_or(newest).max(newest).max(decided).max(from);
    sqlx::query("UPDATE checks SET decided_through = $2 WHERE id = $1")
        .bind(check.id)
        .bind(ts(through))
        .execute(&mut **tx)
        .await?;

    let before: Option<String> = sqlx::query_scalar(
        "SELECT status FROM status_changes WHERE check_id = $1 AND at < $2 ORDER BY at DESC LIMIT 1",
    )
    .bind(check.id)
    .bind(ts(from))
    .fetch_optional(&mut **tx)
    .await?;
    let before = before.map(|s| parse_status(&s)).transpose()?;
    let old: Vec<ChangeRow> = sqlx::query_as(
        "SELECT at, status, assigned, reporting, failing, reasons FROM status_changes
         WHERE check_id = $1 AND at >= $2 ORDER BY at",
    )
    .bind(check.id)
    .bind(ts(from))
    .fetch_all(&mut **tx)
    .await?;
    let old = old
        .into_iter()
        .map(|r| {
            Ok(Change {
                at: ms(r.at),
                status: parse_status(&r.status)?,
                detail: Detail {
                    assigned: r.assigned.max(0) as u32,
                    reporting: r.reporting.max(0) as u32,
                    failing: r.failing.max(0) as u32,
                    reasons: r.reasons,
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT starts_at, ends_at FROM maintenance_windows
         WHERE $1 = ANY(checks) AND ends_at >= $2 AND starts_at <= $3",
    )
    .bind(&check.slug)
    .bind(ts(low))
    .bind(ts(through))
    .fetch_all(&mut **tx)
    .await?;
    let windows: Vec<(Millis, Millis)> = windows.into_iter().map(|(s, e)| (ms(s), ms(e))).collect();
    let latest = latest_incident(tx, check.id).await?;

    let plan = timeline::plan(
        Loaded {
            samples: &samples,
            before,
            old: &old,
            windows: &windows,
            latest,
        },
        from,
        through,
        &check.rules(),
    );
    if plan.rewrite {
        write_changes(tx, check.id, from, &plan.changes).await?;
    }
    // An incident opened by this plan has id 0 in later actions of the same
    // plan until the database gives it its id.
    let mut opened = 0;
    for (action, _) in &plan.actions {
        opened = apply(tx, check, &with_id(action, opened)).await?;
    }
    let changed = plan.rewrite || !plan.actions.is_empty();
    if changed {
        sqlx::query(
            "UPDATE checks SET status = $2,
                 status_since = (SELECT max(at) FROM status_changes WHERE check_id = $1)
             WHERE id = $1",
        )
        .bind(check.id)
        .bind(plan.current.unwrap_or(Status::Unknown).as_str())
        .execute(&mut **tx)
        .await?;
        // Dashboards drop their cache at once (DESIGN §4.4).
        sqlx::query("SELECT pg_notify('statuspage_changes', $1)")
            .bind(&check.slug)
            .execute(&mut **tx)
            .await?;
    }
    Ok(changed)
}

fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

async fn latest_incident(
    tx: &mut Transaction<'_, Postgres>,
    check_id: i32,
) -> Result<Option<Latest>, StoreError> {
    let row: Option<IncidentRow> = sqlx::query_as(
        "SELECT id, state, started_at, resolved_at, resolved_automatically, operator_updated
         FROM incidents WHERE auto AND check_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(check_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(Latest {
            id: r.id,
            state: State::parse(&r.state).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown incident state {:?}", r.state))
            })?,
            started_at: ms(r.started_at),
            resolved_at: r.resolved_at.map(ms),
            resolved_automatically: r.resolved_automatically,
            operator_updated: r.operator_updated,
        })
    })
    .transpose()
}

async fn write_changes(
    tx: &mut Transaction<'_, Postgres>,
    check_id: i32,
    from: Millis,
    changes: &[Change],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM status_changes WHERE check_id = $1 AND at >= $2")
        .bind(check_id)
        .bind(ts(from))
        .execute(&mut **tx)
        .await?;
    let at: Vec<_> = changes.iter().map(|c| ts(c.at)).collect();
    let status: Vec<_> = changes.iter().map(|c| c.status.as_str()).collect();
    let assigned: Vec<i32> = changes.iter().map(|c| c.detail.assigned as i32).collect();
    let reporting: Vec<i32> = changes.iter().map(|c| c.detail.reporting as i32).collect();
    let failing: Vec<i32> = changes.iter().map(|c| c.detail.failing as i32).collect();
    // One text per change (`reasons` joined), since PostgreSQL has no arrays of arrays.
    let reasons: Vec<String> = changes.iter().map(|c| c.detail.reasons.join(",")).collect();
    sqlx::query(
        "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
         SELECT $1, a, s, n, r, f, CASE WHEN rs = '' THEN '{}'::text[] ELSE string_to_array(rs, ',') END
         FROM UNNEST($2::timestamptz[], $3::text[], $4::int4[], $5::int4[], $6::int4[], $7::text[])
              AS u(a, s, n, r, f, rs)",
    )
    .bind(check_id)
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
    let latest = latest_incident(tx, check.id).await?;
    if let Some(action) = incident::on_retired(latest.as_ref(), now) {
        apply(tx, check, &action).await?;
    }
    Ok(())
}

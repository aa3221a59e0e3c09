//! Incident actions on PostgreSQL: one new incident with its first update,
//! or a state change with its update.

use super::{CheckRow, StoreError, ts};
use crate::incident::{self, Action, State};
use sqlx::{Postgres, Transaction};

/// Applies one action; returns the incident's id.
pub(crate) async fn apply(
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
        Action::Reopen {
            id,
            at,
            message,
            earlier_open_ms,
        } => {
            sqlx::query(
                "UPDATE incidents SET state = 'investigating', impact = 'major', resolved_at = NULL,
                     resolved_automatically = false, reopened_at = $2, earlier_open_ms = $3,
                     updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(ts(*at))
            .bind(earlier_open_ms)
            .execute(&mut **tx)
            .await?;
            (*id, *at, State::Investigating, message)
        }
        Action::Revise {
            id,
            at,
            state,
            major,
            message,
        } => {
            sqlx::query(
                "UPDATE incidents SET state = $2, impact = $3, updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(state.as_str())
            .bind(incident::impact_text(*major))
            .execute(&mut **tx)
            .await?;
            (*id, *at, *state, message)
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
    .bind(super::AUTHOR)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

//! Incident actions on SQLite: one new incident with its first update, or a
//! state change with its update.

use super::{CheckRow, StoreError};
use crate::incident::{self, Action, State};
use sqlx::{Sqlite, Transaction};

/// Applies one action; returns the incident's id.
pub(crate) async fn apply_action(
    tx: &mut Transaction<'_, Sqlite>,
    check: &CheckRow,
    action: &Action,
) -> Result<i64, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let (id, at, state, message) = match action {
        Action::Open { at, message } => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, impact, state, auto, check_id, started_at, updated_at)
                 VALUES (?1, 'major', 'investigating', 1, ?2, ?3, ?4) RETURNING id",
            )
            .bind(incident::title(&check.name))
            .bind(check.id)
            .bind(at)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query("INSERT INTO incident_checks (incident_id, check_id) VALUES (?1, ?2)")
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
                     resolved_automatically = 0, reopened_at = ?3, earlier_open_ms = ?4,
                     updated_at = ?2 WHERE id = ?1",
            )
            .bind(id)
            .bind(now)
            .bind(at)
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
                "UPDATE incidents SET state = ?3, impact = ?4, updated_at = ?2 WHERE id = ?1",
            )
            .bind(id)
            .bind(now)
            .bind(state.as_str())
            .bind(incident::impact_text(*major))
            .execute(&mut **tx)
            .await?;
            (*id, *at, *state, message)
        }
        Action::Resolve { id, at, message } => {
            sqlx::query(
                "UPDATE incidents SET state = 'resolved', resolved_at = ?2,
                     resolved_automatically = 1, updated_at = ?3 WHERE id = ?1",
            )
            .bind(id)
            .bind(at)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            (*id, *at, State::Resolved, message)
        }
        Action::Monitor { id, at, message } => {
            sqlx::query("UPDATE incidents SET state = 'monitoring', updated_at = ?2 WHERE id = ?1")
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            (*id, *at, State::Monitoring, message)
        }
    };
    sqlx::query(
        "INSERT INTO incident_updates (incident_id, at, state, message, author)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(id)
    .bind(at)
    .bind(state.as_str())
    .bind(message)
    .bind(super::AUTHOR)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

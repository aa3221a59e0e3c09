//! Incident actions, written once for both databases: one new incident with
//! its first update, or a state change with its update, and the event that
//! tells the notification channels (in the same transaction).

use super::outbox::IncidentEvent;
use super::sql::{Arg, Conn};
use super::{CheckRow, StoreError};
use crate::incident::{self, Action, State};

/// Applies one action; returns the incident's id.
pub(crate) async fn apply(
    mut conn: Conn<'_>,
    check: &CheckRow,
    action: &Action,
) -> Result<i64, StoreError> {
    let d = conn.dialect();
    let now = Arg::Int(chrono::Utc::now().timestamp_millis());
    let (id, at, state, message) = match action {
        Action::Open { at, message } => {
            let id: Vec<(i64,)> = conn
                .rows(
                    &format!(
                        "INSERT INTO incidents (title, impact, state, auto, check_id, started_at,
                             updated_at)
                         VALUES ({}, 'major', 'investigating', true, {}, {}, {}) RETURNING id",
                        d.p(1),
                        d.p(2),
                        d.at(3),
                        d.at(4)
                    ),
                    &[
                        Arg::Text(incident::title(&check.name)),
                        Arg::Int(check.id.into()),
                        Arg::Int(*at),
                        now,
                    ],
                )
                .await?;
            let id = id
                .first()
                .map(|r| r.0)
                .ok_or_else(|| StoreError::Corrupt("no id for a new incident".into()))?;
            conn.exec(
                &format!(
                    "INSERT INTO incident_checks (incident_id, check_id) VALUES ({}, {})",
                    d.p(1),
                    d.p(2)
                ),
                &[Arg::Int(id), Arg::Int(check.id.into())],
            )
            .await?;
            (id, *at, State::Investigating, message)
        }
        Action::Reopen {
            id,
            at,
            message,
            earlier_open_ms,
        } => {
            conn.exec(
                &format!(
                    "UPDATE incidents SET state = 'investigating', impact = 'major',
                         resolved_at = NULL, resolved_automatically = false, reopened_at = {},
                         earlier_open_ms = {}, updated_at = {} WHERE id = {}",
                    d.at(2),
                    d.p(3),
                    d.at(4),
                    d.p(1)
                ),
                &[
                    Arg::Int(*id),
                    Arg::Int(*at),
                    Arg::Int(*earlier_open_ms),
                    now,
                ],
            )
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
            conn.exec(
                &format!(
                    "UPDATE incidents SET state = {}, impact = {}, updated_at = {} WHERE id = {}",
                    d.p(2),
                    d.p(3),
                    d.at(4),
                    d.p(1)
                ),
                &[
                    Arg::Int(*id),
                    Arg::Text(state.as_str().into()),
                    Arg::Text(incident::impact_text(*major).into()),
                    now,
                ],
            )
            .await?;
            (*id, *at, *state, message)
        }
        Action::Resolve { id, at, message } => {
            conn.exec(
                &format!(
                    "UPDATE incidents SET state = 'resolved', resolved_at = {},
                         resolved_automatically = true, updated_at = {} WHERE id = {}",
                    d.at(2),
                    d.at(3),
                    d.p(1)
                ),
                &[Arg::Int(*id), Arg::Int(*at), now],
            )
            .await?;
            (*id, *at, State::Resolved, message)
        }
        Action::Monitor { id, at, message } => {
            conn.exec(
                &format!(
                    "UPDATE incidents SET state = 'monitoring', updated_at = {} WHERE id = {}",
                    d.at(2),
                    d.p(1)
                ),
                &[Arg::Int(*id), now],
            )
            .await?;
            (*id, *at, State::Monitoring, message)
        }
    };
    let update: Vec<(i64,)> = conn
        .rows(
            &format!(
                "INSERT INTO incident_updates (incident_id, at, state, message, author)
             VALUES ({}, {}, {}, {}, {}) RETURNING {}",
                d.p(1),
                d.at(2),
                d.p(3),
                d.p(4),
                d.p(5),
                d.int("id")
            ),
            &[
                Arg::Int(id),
                Arg::Int(at),
                Arg::Text(state.as_str().into()),
                Arg::Text(message.clone()),
                Arg::Text(super::AUTHOR.into()),
            ],
        )
        .await?;
    let update = update
        .first()
        .map(|r| r.0)
        .ok_or_else(|| StoreError::Corrupt("no id for a new incident update".into()))?;
    let event = match action {
        Action::Open { .. } => IncidentEvent::Opened,
        Action::Reopen { .. } => IncidentEvent::Reopened,
        Action::Resolve { .. } => IncidentEvent::Resolved,
        Action::Revise { .. } | Action::Monitor { .. } => IncidentEvent::Updated,
    };
    super::outbox::incident_event(&mut conn, id, update, event).await?;
    Ok(id)
}

//! Operator incidents: create, edit, post an update, resolve. Any edit or
//! update of an automatic incident marks it operator-owned, so ingest never
//! auto-resolves it (it sets `monitoring` when the check recovers).

use super::write::{Arg, Tx};
use super::{AdminError, authorize, checks_named, id_of, json, text};
use crate::AppState;
use crate::read::{IncidentRow, UpdateRow};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest::state::Millis;
use ingest::store::outbox::IncidentEvent;
use serde::Deserialize;

const TITLE_MAX: usize = 200;
const MESSAGE_MAX: usize = 10_000;

/// `POST /admin/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    title: String,
    #[serde(default)]
    impact: Option<String>,
    #[serde(default)]
    state: Option<String>,
    message: String,
    #[serde(default)]
    checks: Vec<String>,
}

/// `PATCH /admin/v1/incidents/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    impact: Option<String>,
    #[serde(default)]
    checks: Option<Vec<String>>,
}

/// `POST /admin/v1/incidents/{id}/updates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    state: String,
    message: String,
}

/// `POST /admin/v1/incidents/{id}/resolve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    #[serde(default)]
    message: Option<String>,
}

fn impact(v: Option<&str>) -> Result<String, AdminError> {
    match v.unwrap_or("minor") {
        i @ ("minor" | "major") => Ok(i.to_string()),
        _ => Err(AdminError::Invalid(
            "`impact`: must be minor or major".into(),
        )),
    }
}

fn state(v: &str) -> Result<ingest::incident::State, AdminError> {
    ingest::incident::State::parse(v).ok_or_else(|| {
        AdminError::Invalid(
            "`state`: must be investigating, identified, monitoring or resolved".into(),
        )
    })
}

/// Reads an incident back whole (every check, private ones too: this is
/// the operator's view).
async fn load(tx: &mut Tx, id: i64) -> Result<(IncidentRow, Vec<UpdateRow>), AdminError> {
    // An operator's incident is never reopened by ingest: one period.
    let sql = format!(
        "SELECT {} AS id, title, impact, state, auto, {} AS started_at, {} AS resolved_at,
                {} - {} AS open_ms
         FROM incidents WHERE id = {}",
        tx.dialect().int("id"),
        tx.dialect().ms("started_at"),
        tx.dialect().ms("resolved_at"),
        tx.dialect().ms("resolved_at"),
        tx.dialect().ms("started_at"),
        tx.dialect().p(1)
    );
    let rows: Vec<IncidentRow> = tx.rows(&sql, &[Arg::Int(id)]).await?;
    let Some(mut incident) = rows.into_iter().next() else {
        return Err(AdminError::NotFound(format!("no incident {id}")));
    };
    let checks: Vec<(String,)> = tx
        .rows(
            &format!(
                "SELECT c.slug FROM incident_checks x JOIN checks c ON c.id = x.check_id
                 WHERE x.incident_id = {} ORDER BY c.position, c.id",
                tx.dialect().p(1)
            ),
            &[Arg::Int(id)],
        )
        .await?;
    let updates: Vec<UpdateRow> = tx
        .rows(
            &format!(
                "SELECT {} AS incident, {} AS at, state, message, author FROM incident_updates
                 WHERE incident_id = {} ORDER BY at, id",
                tx.dialect().int("incident_id"),
                tx.dialect().ms("at"),
                tx.dialect().p(1)
            ),
            &[Arg::Int(id)],
        )
        .await?;
    incident.checks = checks.into_iter().map(|c| c.0).collect();
    Ok((incident, updates))
}

/// Locks an incident for a change (its check first, in the order ingest
/// locks, so an operator's change and ingest's never interleave); returns
/// its state.
async fn lock(tx: &mut Tx, id: i64) -> Result<String, AdminError> {
    let check: Vec<(Option<i64>,)> = tx
        .rows(
            &format!(
                "SELECT {} FROM incidents WHERE id = {}",
                tx.dialect().int("check_id"),
                tx.dialect().p(1)
            ),
            &[Arg::Int(id)],
        )
        .await?;
    let Some((check,)) = check.into_iter().next() else {
        return Err(AdminError::NotFound(format!("no incident {id}")));
    };
    if let Some(c) = check {
        let sql = format!(
            "SELECT {} FROM checks WHERE id = {}{}",
            tx.dialect().int("id"),
            tx.dialect().p(1),
            tx.dialect().for_update()
        );
        let _: Vec<(i64,)> = tx.rows(&sql, &[Arg::Int(c)]).await?;
    }
    let sql = format!(
        "SELECT state FROM incidents WHERE id = {}{}",
        tx.dialect().p(1),
        tx.dialect().for_update()
    );
    let rows: Vec<(String,)> = tx.rows(&sql, &[Arg::Int(id)]).await?;
    rows.into_iter()
        .next()
        .map(|r| r.0)
        .ok_or_else(|| AdminError::NotFound(format!("no incident {id}")))
}

async fn link_checks(tx: &mut Tx, id: i64, checks: &[(String, i64)]) -> Result<(), AdminError> {
    for (_, check) in checks {
        let sql = format!(
            "INSERT INTO incident_checks (incident_id, check_id) VALUES ({}, {})",
            tx.dialect().p(1),
            tx.dialect().p(2)
        );
        tx.exec(&sql, &[Arg::Int(id), Arg::Int(*check)]).await?;
    }
    Ok(())
}

/// Posts an update, and in the same transaction the event that tells the
/// notification channels (`kind`).
async fn add_update(
    tx: &mut Tx,
    id: i64,
    now: Millis,
    (state, kind): (&str, IncidentEvent),
    message: &str,
    author: &str,
) -> Result<(), AdminError> {
    let sql = format!(
        "INSERT INTO incident_updates (incident_id, at, state, message, author)
         VALUES ({}, {}, {}, {}, {}) RETURNING {}",
        tx.dialect().p(1),
        tx.dialect().at(2),
        tx.dialect().p(3),
        tx.dialect().p(4),
        tx.dialect().p(5),
        tx.dialect().int("id")
    );
    let update: Vec<(i64,)> = tx
        .rows(
            &sql,
            &[
                Arg::Int(id),
                Arg::Int(now),
                Arg::Text(state.into()),
                Arg::Text(message.into()),
                Arg::Text(author.into()),
            ],
        )
        .await?;
    let update = update
        .first()
        .map(|r| r.0)
        .ok_or(AdminError::Database(sqlx::Error::RowNotFound))?;
    ingest::store::outbox::incident_event(&mut tx.conn(), id, update, kind)
        .await
        .map_err(|e| match e {
            ingest::store::StoreError::Db(e) => AdminError::Database(e),
            other => AdminError::Database(sqlx::Error::Protocol(other.to_string())),
        })?;
    Ok(())
}

/// Commits, empties this replica's cache and answers with the incident.
async fn finish(
    s: &AppState,
    mut tx: Tx,
    id: i64,
    status: StatusCode,
) -> Result<Response, AdminError> {
    let (i, updates) = load(&mut tx, id).await?;
    super::write::announce(&mut tx).await?;
    tx.commit().await?;
    s.cache.invalidate();
    Ok(super::json_response(
        status,
        &crate::api::incident(&i, &updates),
    ))
}

/// Creates an operator incident with its first update.
pub async fn create(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let req: NewIncident = json(body).await?;
        let title = text("title", &req.title, TITLE_MAX)?;
        let message = text("message", &req.message, MESSAGE_MAX)?;
        let impact = impact(req.impact.as_deref())?;
        let st = state(req.state.as_deref().unwrap_or("investigating"))?;
        if st == ingest::incident::State::Resolved {
            return Err(AdminError::Invalid(
                "`state`: a new incident cannot start resolved".into(),
            ));
        }
        let now = (s.clock)();
        let mut tx = admin.writer.begin().await?;
        let checks = checks_named(&mut tx, "checks", &req.checks).await?;
        let sql = format!(
            "INSERT INTO incidents (title, impact, state, auto, started_at, operator_updated, updated_at)
             VALUES ({}, {}, {}, false, {}, true, {}) RETURNING {}",
            tx.dialect().p(1),
            tx.dialect().p(2),
            tx.dialect().p(3),
            tx.dialect().at(4),
            tx.dialect().at(4),
            tx.dialect().int("id")
        );
        let ids: Vec<(i64,)> = tx
            .rows(
                &sql,
                &[
                    Arg::Text(title),
                    Arg::Text(impact),
                    Arg::Text(st.as_str().into()),
                    Arg::Int(now),
                ],
            )
            .await?;
        let id = ids
            .first()
            .map(|r| r.0)
            .ok_or_else(|| AdminError::Database(sqlx::Error::RowNotFound))?;
        link_checks(&mut tx, id, &checks).await?;
        add_update(
            &mut tx,
            id,
            now,
            (st.as_str(), IncidentEvent::Opened),
            &message,
            &author,
        )
        .await?;
        tracing::info!(event = "incident_created", incident = id, author = %author);
        finish(&s, tx, id, StatusCode::CREATED).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Edits title, impact or checks. An automatic incident becomes the
/// operator's.
pub async fn edit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let id = id_of(&id, "incident")?;
        let req: Edit = json(body).await?;
        if req.title.is_none() && req.impact.is_none() && req.checks.is_none() {
            return Err(AdminError::Invalid(
                "nothing to change: give `title`, `impact` or `checks`".into(),
            ));
        }
        let title = req
            .title
            .as_deref()
            .map(|t| text("title", t, TITLE_MAX))
            .transpose()?;
        let impact = req.impact.as_deref().map(|i| impact(Some(i))).transpose()?;
        let now = (s.clock)();
        let mut tx = admin.writer.begin().await?;
        lock(&mut tx, id).await?;
        let checks = match &req.checks {
            Some(c) => Some(checks_named(&mut tx, "checks", c).await?),
            None => None,
        };
        let sql = format!(
            "UPDATE incidents SET title = COALESCE({}, title), impact = COALESCE({}, impact),
                 operator_updated = true, updated_at = {} WHERE id = {}",
            tx.dialect().p(1),
            tx.dialect().p(2),
            tx.dialect().at(3),
            tx.dialect().p(4)
        );
        tx.exec(
            &sql,
            &[
                Arg::MaybeText(title),
                Arg::MaybeText(impact),
                Arg::Int(now),
                Arg::Int(id),
            ],
        )
        .await?;
        if let Some(checks) = checks {
            let sql = format!(
                "DELETE FROM incident_checks WHERE incident_id = {}",
                tx.dialect().p(1)
            );
            tx.exec(&sql, &[Arg::Int(id)]).await?;
            link_checks(&mut tx, id, &checks).await?;
        }
        tracing::info!(event = "incident_edited", incident = id, author = %author);
        finish(&s, tx, id, StatusCode::OK).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Posts an update (which sets the state); `resolved` resolves it.
async fn update(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    new_state: ingest::incident::State,
    message: String,
) -> Result<Response, AdminError> {
    let (admin, author) = authorize(s, headers)?;
    let id = id_of(id, "incident")?;
    let message = text("message", &message, MESSAGE_MAX)?;
    let now = (s.clock)();
    let mut tx = admin.writer.begin().await?;
    let current = lock(&mut tx, id).await?;
    if current == "resolved" {
        return Err(AdminError::Conflict(format!(
            "incident {id} is resolved and cannot change state; open a new incident instead"
        )));
    }
    let resolved = new_state == ingest::incident::State::Resolved;
    let sql = format!(
        "UPDATE incidents SET state = {}, operator_updated = true, updated_at = {},
             resolved_at = CASE WHEN {} = 1 THEN {} ELSE resolved_at END
         WHERE id = {}",
        tx.dialect().p(1),
        tx.dialect().at(2),
        tx.dialect().p(3),
        tx.dialect().at(2),
        tx.dialect().p(4)
    );
    tx.exec(
        &sql,
        &[
            Arg::Text(new_state.as_str().into()),
            Arg::Int(now),
            Arg::Int(i64::from(resolved)),
            Arg::Int(id),
        ],
    )
    .await?;
    let kind = if resolved {
        IncidentEvent::Resolved
    } else {
        IncidentEvent::Updated
    };
    add_update(
        &mut tx,
        id,
        now,
        (new_state.as_str(), kind),
        &message,
        &author,
    )
    .await?;
    tracing::info!(event = "incident_updated", incident = id, state = new_state.as_str(), author = %author);
    finish(s, tx, id, StatusCode::CREATED).await
}

/// `POST /admin/v1/incidents/{id}/updates`.
pub async fn post_update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        authorize(&s, &headers)?;
        let req: NewUpdate = json(body).await?;
        let st = state(&req.state)?;
        update(&s, &headers, &id, st, req.message).await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/incidents/{id}/resolve`, with an optional message.
pub async fn resolve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        authorize(&s, &headers)?;
        let bytes = axum::body::to_bytes(body, super::MAX_BODY)
            .await
            .map_err(|_| AdminError::TooLarge)?;
        let req: Resolve = if bytes.iter().all(u8::is_ascii_whitespace) {
            Resolve::default()
        } else {
            json(Body::from(bytes)).await?
        };
        let message = req
            .message
            .unwrap_or_else(|| "This incident has been resolved.".to_string());
        update(
            &s,
            &headers,
            &id,
            ingest::incident::State::Resolved,
            message,
        )
        .await
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

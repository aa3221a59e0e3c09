//! Maintenance windows from the API (`source: api`): listed with the
//! config's, created only from now on (history is never recomputed), and
//! deleted before they start or ended early while they run. Config windows
//! belong to the YAML and cannot be changed here.

use super::write::{Arg, Tx};
use super::{AdminError, authorize, checks_named, id_of, json, json_response, text};
use crate::AppState;
use crate::api::instant;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest::state::Millis;
use serde::Deserialize;

/// How far in the past a start may be and still be taken as "now" (clock
/// skew between the operator's machine and ours).
const GRACE_MS: Millis = 60_000;
/// The longest window.
const MAX_DAYS: i64 = 31;

/// `POST /admin/v1/maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWindow {
    name: String,
    #[serde(default)]
    description: Option<String>,
    checks: Vec<String>,
    starts_at: String,
    ends_at: String,
}

fn parse_time(field: &str, v: &str) -> Result<Millis, AdminError> {
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            AdminError::Invalid(format!(
                "`{field}`: expected an RFC 3339 time such as 2026-12-01T02:00:00Z"
            ))
        })
}

/// A window as the admin API shows it.
#[derive(sqlx::FromRow)]
struct Window {
    id: i64,
    source: String,
    name: String,
    description: Option<String>,
    checks: String,
    starts_at: i64,
    ends_at: i64,
    created_by: String,
}

async fn windows(
    tx: &mut Tx,
    clause: &str,
    args: &[Arg],
) -> Result<Vec<serde_json::Value>, AdminError> {
    let sql = format!(
        "SELECT {} AS id, source, name, description, {} AS checks, {} AS starts_at,
                {} AS ends_at, created_by
         FROM maintenance_windows WHERE {clause} ORDER BY starts_at, id",
        tx.dialect().int("id"),
        tx.dialect().json_list("checks"),
        tx.dialect().ms("starts_at"),
        tx.dialect().ms("ends_at"),
    );
    let rows: Vec<Window> = tx.rows(&sql, args).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let checks: Vec<String> = serde_json::from_str(&r.checks).unwrap_or_default();
            serde_json::json!({
                "id": r.id,
                "source": r.source,
                "name": r.name,
                "description": r.description,
                "checks": checks,
                "starts_at": instant(r.starts_at),
                "ends_at": instant(r.ends_at),
                "created_by": r.created_by,
            })
        })
        .collect())
}

/// `GET /admin/v1/maintenance`: every window that has not ended, from the
/// config and the API.
pub async fn list(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let run = async {
        let (admin, _) = authorize(&s, &headers)?;
        let mut tx = admin.writer.begin().await?;
        let clause = format!("ends_at > {}", tx.dialect().at(1));
        let all = windows(&mut tx, &clause, &[Arg::Int((s.clock)())]).await?;
        tx.commit().await?;
        Ok::<_, AdminError>(json_response(
            StatusCode::OK,
            &serde_json::Value::Array(all),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/maintenance`.
pub async fn create(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let req: NewWindow = json(body).await?;
        let name = text("name", &req.name, 200)?;
        let description = req
            .description
            .as_deref()
            .map(|d| text("description", d, 2000))
            .transpose()?;
        if req.checks.is_empty() {
            return Err(AdminError::Invalid(
                "`checks`: name at least one check".into(),
            ));
        }
        let now = (s.clock)();
        let starts = parse_time("starts_at", &req.starts_at)?;
        let ends = parse_time("ends_at", &req.ends_at)?;
        if starts < now - GRACE_MS {
            return Err(AdminError::Invalid(
                "`starts_at`: must not be in the past (a window cannot rewrite history)".into(),
            ));
        }
        let starts = starts.max(now);
        if ends <= starts {
            return Err(AdminError::Invalid(
                "`ends_at`: must be after `starts_at`".into(),
            ));
        }
        if ends - starts > MAX_DAYS * 86_400_000 {
            return Err(AdminError::Invalid(format!(
                "`ends_at`: a window lasts at most {MAX_DAYS} days"
            )));
        }
        let mut tx = admin.writer.begin().await?;
        let checks = checks_named(&mut tx, "checks", &req.checks).await?;
        let slugs: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
        let sql = format!(
            "INSERT INTO maintenance_windows (source, name, description, checks, starts_at, ends_at,
                                              created_by, created_at)
             VALUES ('api', {}, {}, {}, {}, {}, {}, {}) RETURNING {}",
            tx.dialect().p(1),
            tx.dialect().p(2),
            tx.dialect().list_value(3),
            tx.dialect().at(4),
            tx.dialect().at(5),
            tx.dialect().p(6),
            tx.dialect().at(7),
            tx.dialect().int("id")
        );
        let inserted = tx
            .rows::<(i64,)>(
                &sql,
                &[
                    Arg::Text(name),
                    Arg::MaybeText(description),
                    Arg::Text(serde_json::json!(slugs).to_string()),
                    Arg::Int(starts),
                    Arg::Int(ends),
                    Arg::Text(author.clone()),
                    Arg::Int(now),
                ],
            )
            .await;
        let id = match inserted {
            Ok(rows) => rows.first().map(|r| r.0).unwrap_or_default(),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                return Err(AdminError::Conflict(
                    "a window with this name and end already exists".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let clause = format!("id = {}", tx.dialect().p(1));
        let made = windows(&mut tx, &clause, &[Arg::Int(id)]).await?;
        super::write::announce(&mut tx).await?;
        tx.commit().await?;
        s.cache.invalidate();
        tracing::info!(event = "maintenance_created", window = id, author = %author);
        let made = made.into_iter().next().unwrap_or_default();
        Ok(json_response(StatusCode::CREATED, &made))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /admin/v1/maintenance/{id}`: a window that has not started is
/// deleted (204); a running one ends now (200, the window); an ended one,
/// or a config one, is refused (409).
pub async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let id = id_of(&id, "maintenance window")?;
        let now = (s.clock)();
        let mut tx = admin.writer.begin().await?;
        let sql = format!(
            "SELECT source, {}, {} FROM maintenance_windows WHERE id = {}{}",
            tx.dialect().ms("starts_at"),
            tx.dialect().ms("ends_at"),
            tx.dialect().p(1),
            tx.dialect().for_update()
        );
        let rows: Vec<(String, i64, i64)> = tx.rows(&sql, &[Arg::Int(id)]).await?;
        let Some((source, starts, ends)) = rows.into_iter().next() else {
            return Err(AdminError::NotFound(format!("no maintenance window {id}")));
        };
        if source != "api" {
            return Err(AdminError::Conflict(format!(
                "maintenance window {id} comes from the config; change it in the YAML"
            )));
        }
        if ends <= now {
            return Err(AdminError::Conflict(format!(
                "maintenance window {id} has ended; history keeps it"
            )));
        }
        let answer = if starts > now {
            let sql = format!(
                "DELETE FROM maintenance_windows WHERE id = {}",
                tx.dialect().p(1)
            );
            tx.exec(&sql, &[Arg::Int(id)]).await?;
            StatusCode::NO_CONTENT.into_response()
        } else {
            let sql = format!(
                "UPDATE maintenance_windows SET ends_at = {} WHERE id = {}",
                tx.dialect().at(1),
                tx.dialect().p(2)
            );
            tx.exec(&sql, &[Arg::Int(now.max(starts + 1)), Arg::Int(id)])
                .await?;
            let clause = format!("id = {}", tx.dialect().p(1));
            let w = windows(&mut tx, &clause, &[Arg::Int(id)]).await?;
            json_response(StatusCode::OK, &w.into_iter().next().unwrap_or_default())
        };
        super::write::announce(&mut tx).await?;
        tx.commit().await?;
        s.cache.invalidate();
        tracing::info!(event = "maintenance_removed", window = id, author = %author);
        Ok(answer)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

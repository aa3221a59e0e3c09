//! The notification outbox as operators see it: recent deliveries with
//! their state and last error, a re-send, and a test event to a channel.
//! The dashboard knows no channel's URL or secret: it reads and writes the
//! outbox rows, and ingest's workers do the sending.

use super::write::Arg;
use super::{AdminError, authorize, id_of, json_response};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The most deliveries one listing shows.
const MAX_LIST: i64 = 500;

/// The `limit` of `?limit=N` (50 without it); any other parameter is refused.
fn limit(uri: &axum::http::Uri) -> Result<i64, AdminError> {
    let mut limit = 50;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("limit", n)) => {
                limit = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| {
                        AdminError::Invalid(format!("`limit`: a number from 1 to {MAX_LIST}"))
                    })?;
            }
            _ => {
                return Err(AdminError::Invalid(
                    "unknown query parameter: only `limit` is known".into(),
                ));
            }
        }
    }
    Ok(limit)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: String,
    kind: String,
    channel: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    due_at: i64,
    done_at: Option<i64>,
}

fn columns(d: ingest::store::sql::Dialect) -> String {
    format!(
        "{} AS id, d.event_id, e.type AS kind, d.channel, d.state, {} AS attempts, d.last_error,
         {} AS due_at, {} AS done_at
         FROM deliveries d JOIN events e ON e.id = d.event_id",
        d.int("d.id"),
        d.int("d.attempts"),
        d.ms("d.due_at"),
        d.ms("d.done_at")
    )
}

fn shown(r: &Row) -> serde_json::Value {
    let instant = crate::api::instant;
    json!({
        "id": r.id,
        "event_id": r.event_id,
        "type": r.kind,
        "channel": r.channel,
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "due_at": (r.state == "pending").then(|| instant(r.due_at)),
        "done_at": r.done_at.map(instant),
    })
}

/// `GET /admin/v1/deliveries`: the newest first.
pub async fn list(State(s): State<AppState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let run = async {
        let (admin, _) = authorize(&s, &headers)?;
        let limit = limit(&uri)?;
        let mut tx = admin.writer.begin().await?;
        let d = tx.dialect();
        let rows: Vec<Row> = tx
            .rows(
                &format!("SELECT {} ORDER BY d.id DESC LIMIT {}", columns(d), d.p(1)),
                &[Arg::Int(limit)],
            )
            .await?;
        tx.commit().await?;
        Ok::<_, AdminError>(json_response(
            StatusCode::OK,
            &serde_json::Value::Array(rows.iter().map(shown).collect()),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/deliveries/{id}/resend`: a delivered or failed row is
/// sent again with the whole retry schedule, same event id and body.
pub async fn resend(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let id = id_of(&id, "delivery")?;
        let now = (s.clock)();
        let mut tx = admin.writer.begin().await?;
        let d = tx.dialect();
        let rows: Vec<Row> = tx
            .rows(
                &format!(
                    "SELECT {} WHERE d.id = {}{}",
                    columns(d),
                    d.p(1),
                    d.for_update()
                ),
                &[Arg::Int(id)],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(AdminError::NotFound(format!("no delivery {id}")));
        };
        if row.state == "pending" {
            return Err(AdminError::Conflict(format!(
                "delivery {id} is still pending: it is sent on its schedule"
            )));
        }
        tx.exec(
            &format!(
                "UPDATE deliveries SET state = 'pending', attempts = 0, due_at = {},
                     locked_until = NULL, done_at = NULL, last_error = NULL
                 WHERE id = {}",
                d.at(2),
                d.p(1)
            ),
            &[Arg::Int(id), Arg::Int(now)],
        )
        .await?;
        let rows: Vec<Row> = tx
            .rows(
                &format!("SELECT {} WHERE d.id = {}", columns(d), d.p(1)),
                &[Arg::Int(id)],
            )
            .await?;
        tx.commit().await?;
        tracing::info!(event = "delivery_resent", delivery = id, author = %author);
        let row = rows
            .first()
            .ok_or_else(|| AdminError::NotFound(format!("no delivery {id}")))?;
        Ok::<_, AdminError>(json_response(StatusCode::ACCEPTED, &shown(row)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/channels/{name}/test`: a `test` event for that channel
/// alone. Ingest sends it if the channel is in its config (and says
/// nothing otherwise: the dashboard does not know the channels).
pub async fn test(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(AdminError::Invalid(
                "the channel name: letters, digits, `-` and `_`, at most 64".into(),
            ));
        }
        let now = (s.clock)();
        let id = format!("test-{name}-{now}");
        let data = json!({
            "message": format!("A test event from statuspage, sent by {author}."),
            "author": author,
        });
        let mut tx = admin.writer.begin().await?;
        let d = tx.dialect();
        let made = tx
            .exec(
                &format!(
                    "INSERT INTO events (id, type, at, subject, seq, data, channel)
                     VALUES ({}, 'test', {}, {}, {}, {}, {}) ON CONFLICT (id) DO NOTHING",
                    d.p(1),
                    d.at(2),
                    d.p(3),
                    d.p(2),
                    d.p(4),
                    d.p(5)
                ),
                &[
                    Arg::Text(id.clone()),
                    Arg::Int(now),
                    Arg::Text(format!("test-{name}")),
                    Arg::Text(data.to_string()),
                    Arg::Text(name.clone()),
                ],
            )
            .await?;
        tx.commit().await?;
        if made == 0 {
            return Err(AdminError::Conflict(
                "a test event for this channel was sent this very millisecond".into(),
            ));
        }
        tracing::info!(event = "test_event_queued", channel = %name, author = %author);
        Ok::<_, AdminError>(json_response(
            StatusCode::ACCEPTED,
            &json!({"event_id": id, "channel": name}),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

//! The admin API (DESIGN §4.4): operators create, update and resolve
//! incidents, post updates, and create, list and delete maintenance windows;
//! they follow notification deliveries, and suppress or delete subscribers.
//!
//! Every route needs `Authorization: Bearer <token>`; the token's name is the
//! author of what it writes. Bodies are JSON of at most 64 KiB, with unknown
//! fields refused. Every write announces itself, so every dashboard replica
//! empties its cache at once.

pub mod auth;
mod incidents;
mod maintenance;
mod notifications;
mod subscribers;
pub mod write;

use crate::AppState;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::de::DeserializeOwned;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What the admin API needs besides the app state.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The tokens.
    pub tokens: auth::Tokens,
    /// Where writes go.
    pub writer: write::Writer,
}

/// Why an admin request failed; each is a JSON `{"error": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token, or not one of ours (401).
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    /// No such incident or window (404).
    #[error("{0}")]
    NotFound(String),
    /// The body is over [`MAX_BODY`] (413).
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body is not JSON (400).
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    /// A field is missing, unknown or invalid (422); the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Not allowed in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed (503; the detail is logged, never shown).
    #[error("the database cannot be written right now")]
    Database(#[from] sqlx::Error),
    /// The database did not answer within the deadline (503).
    #[error(
        "the database did not answer within {0:?}: the change may or may not have been made, so read it back before trying again"
    )]
    Deadline(std::time::Duration),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::BadJson(_) => StatusCode::BAD_REQUEST,
            AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Database(e) => {
                tracing::error!(event = "admin_write_failed", error = %e);
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdminError::Deadline(after) => {
                tracing::error!(
                    event = "admin_write_failed",
                    deadline_ms = after.as_millis() as u64
                );
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": self.to_string() }).to_string(),
        )
            .into_response();
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"statuspage admin\""),
            );
        }
        r
    }
}

/// Runs an admin request within the database deadline: past it, the
/// request is abandoned (its connection closed, not reused) with a 503.
async fn within_deadline(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(s.deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AdminError::Deadline(s.deadline).into_response(),
    }
}

/// The admin routes, under `/admin/v1`, each within the database deadline.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/v1/incidents", post(incidents::create))
        .route("/admin/v1/incidents/{id}", patch(incidents::edit))
        .route(
            "/admin/v1/incidents/{id}/updates",
            post(incidents::post_update),
        )
        .route("/admin/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route(
            "/admin/v1/maintenance",
            get(maintenance::list).post(maintenance::create),
        )
        .route("/admin/v1/maintenance/{id}", delete(maintenance::remove))
        .route("/admin/v1/deliveries", get(notifications::list))
        .route(
            "/admin/v1/deliveries/{id}/resend",
            post(notifications::resend),
        )
        .route("/admin/v1/channels/{name}/test", post(notifications::test))
        .route(
            "/admin/v1/subscribers/suppress",
            post(subscribers::suppress),
        )
        .route(
            "/admin/v1/subscribers/{email}",
            get(subscribers::show).delete(subscribers::remove),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            within_deadline,
        ))
}

/// The admin and the author of a request, or 401 (also when the admin API
/// is not configured: it does not exist then).
fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(Admin, String), AdminError> {
    let admin = s.admin.as_ref().ok_or(AdminError::Unauthorized)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let author = admin
        .tokens
        .author(presented)
        .ok_or(AdminError::Unauthorized)?;
    Ok(((**admin).clone(), author))
}

/// The JSON body, read up to [`MAX_BODY`].
async fn json<T: DeserializeOwned>(body: Body) -> Result<T, AdminError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| AdminError::TooLarge)?;
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => AdminError::Invalid(e.to_string()),
        _ => AdminError::BadJson(e.to_string()),
    })
}

/// A JSON answer.
fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

/// A path id, or 404.
fn id_of(text: &str, what: &str) -> Result<i64, AdminError> {
    text.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| AdminError::NotFound(format!("no {what} {text:?}")))
}

/// Text of 1 to `max` characters (trimmed), or 422 naming `field`.
fn text(field: &str, value: &str, max: usize) -> Result<String, AdminError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(AdminError::Invalid(format!(
            "`{field}`: must be 1 to {max} characters"
        )));
    }
    Ok(v.to_string())
}

/// The ids of the checks a write names, checked against the catalog:
/// `(slug, id)` for each, in the order given, without repeats.
async fn checks_named(
    tx: &mut write::Tx,
    field: &str,
    slugs: &[String],
) -> Result<Vec<(String, i64)>, AdminError> {
    if slugs.len() > 100 {
        return Err(AdminError::Invalid(format!(
            "`{field}`: at most 100 checks"
        )));
    }
    let sql = format!(
        "SELECT slug, {} FROM checks WHERE NOT placeholder AND retired_at IS NULL",
        tx.dialect().int("id")
    );
    let known: Vec<(String, i64)> = tx.rows(&sql, &[]).await?;
    let mut out: Vec<(String, i64)> = Vec::new();
    for slug in slugs {
        let Some(k) = known.iter().find(|k| &k.0 == slug) else {
            let shown: String = slug.chars().take(100).collect();
            return Err(AdminError::Invalid(format!(
                "`{field}`: unknown check id {shown:?}"
            )));
        };
        if !out.iter().any(|o| o.0 == k.0) {
            out.push(k.clone());
        }
    }
    Ok(out)
}

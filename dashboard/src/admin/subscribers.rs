//! Subscribers as operators manage them: look one up by address, suppress
//! an address that bounced or complained (it gets nothing more, and the
//! form cannot subscribe it again), and delete one outright.

use super::{AdminError, authorize, json, json_response, text};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ingest::store::StoreError;
use ingest::store::subscriptions as store;
use serde::Deserialize;
use serde_json::json;

fn database(e: StoreError) -> AdminError {
    match e {
        StoreError::Db(e) => AdminError::Database(e),
        other => AdminError::Database(sqlx::Error::Protocol(other.to_string())),
    }
}

/// An address from the API: a plain address, or 422.
fn address(value: &str) -> Result<String, AdminError> {
    let v = value.trim();
    if !config::notify::is_address(v) {
        return Err(AdminError::Invalid(
            "`email`: expected one email address, such as name@example.com".into(),
        ));
    }
    Ok(v.to_lowercase())
}

fn shown(r: &store::SubscriptionRow) -> serde_json::Value {
    let (checks, groups) = r.choices();
    json!({"email": r.email, "state": r.state, "checks": checks, "groups": groups})
}

/// `GET /admin/v1/subscribers/{email}`.
pub async fn show(
    State(s): State<AppState>,
    Path(email): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (admin, _) = authorize(&s, &headers)?;
        let email = address(&email)?;
        let mut tx = admin.writer.begin().await?;
        let row = store::by_email(&mut tx.conn(), &email)
            .await
            .map_err(database)?;
        let row =
            row.ok_or_else(|| AdminError::NotFound("no subscription for that address".into()))?;
        Ok::<_, AdminError>(json_response(StatusCode::OK, &shown(&row)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/subscribers/suppress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppress {
    email: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/v1/subscribers/suppress`: `{email, reason?}`.
pub async fn suppress(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let req: Suppress = json(body).await?;
        let email = address(&req.email)?;
        let reason = match &req.reason {
            Some(r) => text("reason", r, 200)?,
            None => format!("suppressed by {author}"),
        };
        let nonce = ingest::notify::token::nonce()
            .map_err(|e| AdminError::Database(sqlx::Error::Protocol(e)))?;
        let mut tx = admin.writer.begin().await?;
        store::suppress(&mut tx.conn(), &email, &reason, &nonce, (s.clock)())
            .await
            .map_err(database)?;
        tx.commit().await?;
        tracing::info!(event = "subscriber_suppressed", author = %author);
        Ok::<_, AdminError>(json_response(
            StatusCode::OK,
            &json!({"email": email, "state": "suppressed", "reason": reason}),
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /admin/v1/subscribers/{email}`.
pub async fn remove(
    State(s): State<AppState>,
    Path(email): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (admin, author) = authorize(&s, &headers)?;
        let email = address(&email)?;
        let mut tx = admin.writer.begin().await?;
        let gone = store::delete(&mut tx.conn(), &email)
            .await
            .map_err(database)?;
        tx.commit().await?;
        if !gone {
            return Err(AdminError::NotFound(
                "no subscription for that address".into(),
            ));
        }
        tracing::info!(event = "subscriber_deleted", author = %author);
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

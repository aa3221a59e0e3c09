//! The dashboard against real data in PostgreSQL and SQLite: every route,
//! hostile input, the cache and a database outage.

mod admin;
mod browser;
mod cache;
mod embed;
mod fixture;
mod groups;
#[path = "../../../tests/support/browser.rs"]
mod headless;
mod hostile;
mod routes;
mod subscribe;

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request to the app: status, headers and the raw body.
async fn request(
    state: &dashboard::AppState,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = dashboard::app(state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

/// Sends `method path` with `headers` and `body`.
pub async fn send(
    state: &dashboard::AppState,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Got {
    let (status, headers, body) = request(state, method, path, headers, body.into()).await;
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GETs `path` from the app, with `headers`.
pub async fn get_with(state: &dashboard::AppState, path: &str, headers: &[(&str, &str)]) -> Got {
    send(state, "GET", path, headers, Body::empty()).await
}

/// GETs `path`.
pub async fn get(state: &dashboard::AppState, path: &str) -> Got {
    get_with(state, path, &[]).await
}

/// The raw body bytes of a GET.
pub async fn send_raw(
    state: &dashboard::AppState,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    request(state, "GET", path, headers, Body::empty()).await.2
}

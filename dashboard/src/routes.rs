//! The routes: each one parses its request (strictly: a bad query string is
//! a 400 before anything is read), then answers from the cache, which renders
//! on a miss. Every response carries the security headers.

use crate::cache::{Outcome, Rendered, Served};
use crate::model::{self, Board};
use crate::pages::{self, NOTICE_MARK, check, group, home, incidents};
use crate::read::{IncidentFilter, ReadError};
use crate::{AppState, api, load};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ingest::state::Millis;
use maud::Markup;
use std::future::Future;
use std::time::Instant;

/// The longest query string accepted.
pub const MAX_QUERY: usize = 1024;
/// The longest check id looked up.
const MAX_ID: usize = 200;
/// The largest page number of a listing.
const MAX_PAGE: i64 = 100_000;
/// How long a client or CDN may serve a page stale while the database is
/// down.
const STALE_IF_ERROR_S: u64 = 86_400;

const STYLE: &str = include_str!("../assets/style.css");

/// The pages' CSP: no script but the one local-time script, by its hash.
static CSP: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src {}; style-src 'self'; img-src 'self' https: data:; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        pages::local_time_hash()
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// Whether this replica should get the public page, for the ops port's
/// `/readyz` (what a load balancer or a Kubernetes readiness probe asks):
/// ready while the database answers, and still ready while it does not if
/// this replica has a page to serve (its last good render, with the "could
/// not be refreshed" notice), since taking every replica out of service
/// during a database failover would turn a stale page into no page. Only a
/// replica with nothing rendered and no database is not ready.
pub async fn readiness(s: &AppState) -> Result<&'static str, &'static str> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), s.reader.ping());
    match ping.await {
        Ok(Ok(())) => Ok("ready"),
        _ if s.cache.has(HOME) => {
            Ok("ready: the database is unreachable; serving the last good page")
        }
        _ => Err("not ready: the database is unreachable and nothing is rendered yet"),
    }
}

/// The cache key of the home page.
const HOME: &str = "/";

/// The CSP of a badge: nothing to load or run, but it may be framed.
const BADGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

pub(crate) async fn security_headers(mut r: Response) -> Response {
    let badge = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"image/svg+xml"));
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if badge {
        // Badges are meant to be hot-linked and framed.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(BADGE_CSP),
        );
        h.insert(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        );
    } else {
        h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    r
}

/// What a route answers with: it decides the shape of its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Html,
    Json,
    /// A badge: errors are badges too, so an embed never breaks.
    Svg,
    /// The Atom feed.
    Feed,
}

/// Why a request is refused before anything is read.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    why: String,
}

/// The query string's pairs (unknown keys dropped), or why it is refused.
pub(crate) fn query(uri: &Uri, known: &[&str]) -> Result<Vec<(String, String)>, Refusal> {
    let raw = uri.query().unwrap_or("");
    if raw.len() > MAX_QUERY {
        return Err(Refusal {
            status: StatusCode::URI_TOO_LONG,
            why: format!("The query string is longer than {MAX_QUERY} bytes."),
        });
    }
    Ok(url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| known.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// `page`: a whole number from 1 (default 1).
fn page_param(params: &[(String, String)]) -> Result<i64, Refusal> {
    match params.iter().rev().find(|p| p.0 == "page") {
        None => Ok(1),
        Some((_, v)) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                why: format!("`page` must be a whole number from 1 to {MAX_PAGE}."),
            }),
        },
    }
}

pub(crate) fn refuse(s: &AppState, kind: Kind, refusal: Refusal) -> Response {
    let mut r = match kind {
        Kind::Html => {
            let now = (s.clock)();
            html_response(pages::incidents::bad_request(&s.site, now, &refusal.why))
        }
        Kind::Json | Kind::Svg | Kind::Feed => {
            json_response(&serde_json::json!({ "error": refusal.why }))
        }
    };
    *r.status_mut() = refusal.status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html_response(m: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

fn json_response(v: &serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn rendered_html(status: StatusCode, m: Markup, at: Millis) -> Rendered {
    let body = m.into_string();
    Rendered {
        status,
        content_type: "text/html; charset=utf-8",
        notice_at: body.find(NOTICE_MARK),
        body: Bytes::from(body),
        at,
    }
}

pub(crate) fn rendered_json(status: StatusCode, v: &serde_json::Value, at: Millis) -> Rendered {
    Rendered {
        status,
        content_type: "application/json",
        body: Bytes::from(v.to_string()),
        notice_at: None,
        at,
    }
}

pub(crate) fn rendered_svg(status: StatusCode, b: &crate::badge::Badge, at: Millis) -> Rendered {
    Rendered {
        status,
        content_type: "image/svg+xml",
        body: Bytes::from(crate::badge::svg(b).into_string()),
        notice_at: None,
        at,
    }
}

pub(crate) fn not_found_rendered(s: &AppState, kind: Kind, now: Millis) -> Rendered {
    match kind {
        Kind::Svg => rendered_svg(StatusCode::NOT_FOUND, &crate::badge::not_found(), now),
        Kind::Html => rendered_html(
            StatusCode::NOT_FOUND,
            incidents::not_found(&s.site, now),
            now,
        ),
        Kind::Json | Kind::Feed => rendered_json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found"}),
            now,
        ),
    }
}

/// Answers `key` from the cache (rendering on a miss), with conditional
/// requests, cache headers and the stale fallback.
pub(crate) async fn serve<F, Fut>(
    s: &AppState,
    route: &'static str,
    key: &str,
    kind: Kind,
    headers: &HeaderMap,
    render: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(Rendered, bool), ReadError>>,
{
    let metrics = s.metrics.clone();
    let timed = || async move {
        let started = Instant::now();
        let out = render().await;
        metrics.render(started.elapsed());
        out
    };
    let (served, outcome) = s.cache.get(key, timed).await;
    s.metrics.cache(outcome);
    let mut response = respond(s, served, outcome, kind, headers);
    if kind == Kind::Json {
        // The public API is meant to be read by other sites' pages.
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    s.metrics.request(route, response.status().as_u16());
    response
}

fn respond(
    s: &AppState,
    served: Served,
    outcome: Outcome,
    kind: Kind,
    headers: &HeaderMap,
) -> Response {
    let ttl = s.cache.ttl().as_secs();
    match served {
        Served::Fresh(e) => {
            let cache_control = if e.rendered.status == StatusCode::OK {
                format!(
                    "public, max-age={ttl}, stale-while-revalidate={ttl}, stale-if-error={STALE_IF_ERROR_S}"
                )
            } else {
                format!("public, max-age={ttl}")
            };
            let gzipped = e.gzip.as_ref().filter(|_| accepts_gzip(headers));
            let etag = match gzipped {
                Some(_) => e.etag_gzip(),
                None => e.etag.clone(),
            };
            let mut b = Response::builder()
                .header(header::ETAG, &etag)
                .header(header::CACHE_CONTROL, cache_control)
                .header(header::VARY, "accept-encoding");
            if matches!(outcome, Outcome::Hit | Outcome::Coalesced) {
                b = b.header("x-cache", "hit");
            }
            if e.rendered.status == StatusCode::OK
                && (not_modified(headers, &e.etag) || not_modified(headers, &e.etag_gzip()))
            {
                return b
                    .status(StatusCode::NOT_MODIFIED)
                    .body(axum::body::Body::empty())
                    .unwrap_or_default();
            }
            let b = b
                .status(e.rendered.status)
                .header(header::CONTENT_TYPE, e.rendered.content_type);
            match gzipped {
                Some(gz) => b
                    .header(header::CONTENT_ENCODING, "gzip")
                    .body(axum::body::Body::from(gz.clone())),
                None => b.body(axum::body::Body::from(e.rendered.body.clone())),
            }
            .unwrap_or_default()
        }
        Served::Stale(e) => {
            let body = match e.rendered.notice_at {
                Some(at) if at <= e.rendered.body.len() => {
                    let mut b = Vec::with_capacity(e.rendered.body.len() + 256);
                    b.extend_from_slice(&e.rendered.body[..at]);
                    b.extend_from_slice(pages::stale_notice(e.rendered.at).as_bytes());
                    b.extend_from_slice(&e.rendered.body[at..]);
                    Bytes::from(b)
                }
                _ => e.rendered.body.clone(),
            };
            let age = (((s.clock)() - e.rendered.at).max(0) / 1000).to_string();
            Response::builder()
                .status(e.rendered.status)
                .header(header::CONTENT_TYPE, e.rendered.content_type)
                .header(
                    header::CACHE_CONTROL,
                    format!("public, max-age=0, stale-if-error={STALE_IF_ERROR_S}"),
                )
                .header(header::AGE, age)
                .header("x-statuspage-stale", "true")
                .body(axum::body::Body::from(body))
                .unwrap_or_default()
        }
        Served::Failed => {
            let now = (s.clock)();
            let mut r = match kind {
                Kind::Html => html_response(incidents::unavailable(&s.site, now)),
                Kind::Svg => {
                    let b = crate::badge::Badge {
                        label: "status".into(),
                        value: "unavailable".into(),
                        color: "#5f6670",
                        title: "The status cannot be read right now".into(),
                    };
                    (
                        [(header::CONTENT_TYPE, "image/svg+xml")],
                        crate::badge::svg(&b).into_string(),
                    )
                        .into_response()
                }
                Kind::Json | Kind::Feed => json_response(
                    &serde_json::json!({"error": "the status data cannot be read right now"}),
                ),
            };
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            r
        }
    }
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak forms match too.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Which ids [`known`] looks up.
#[derive(Clone, Copy)]
pub(crate) enum Ids {
    Checks,
    Incidents,
    Groups,
}

/// The public check (or incident) ids, one a line: the cached list behind
/// [`known`] and [`incident_pages`].
async fn ids(s: &AppState, ids: Ids) -> Result<(Rendered, bool), ReadError> {
    let list: Vec<String> = match ids {
        Ids::Checks => s
            .reader
            .public_checks()
            .await?
            .into_iter()
            .map(|c| c.slug)
            .collect(),
        Ids::Incidents => s
            .reader
            .public_incident_ids()
            .await?
            .iter()
            .map(i64::to_string)
            .collect(),
        // "id checks": each group's id and size.
        Ids::Groups => {
            let checks = s.reader.public_checks().await?;
            let mut sizes = std::collections::HashMap::<&str, usize>::new();
            for c in &checks {
                *sizes.entry(c.group.as_str()).or_default() += 1;
            }
            model::group_ids(checks.iter().map(|c| c.group.as_str()))
                .into_iter()
                .map(|(name, id)| format!("{id} {}", sizes.get(name).copied().unwrap_or(0)))
                .collect()
        }
    };
    let r = Rendered {
        status: StatusCode::OK,
        content_type: "text/plain",
        body: Bytes::from(list.join("\n")),
        notice_at: None,
        at: (s.clock)(),
    };
    Ok((r, true))
}

/// The cached list of `ids`, one a line; `None` when it cannot be read.
async fn listed(s: &AppState, ids: Ids) -> Option<Bytes> {
    let key = match ids {
        Ids::Checks => "ids:checks",
        Ids::Incidents => "ids:incidents",
        Ids::Groups => "ids:groups",
    };
    let (served, outcome) = s.cache.get(key, || self::ids(s, ids)).await;
    s.metrics.cache(outcome);
    match served {
        Served::Fresh(e) | Served::Stale(e) => Some(e.rendered.body.clone()),
        Served::Failed => None,
    }
}

/// Whether `id` is a public check (or incident) id, from a list cached like
/// a page: a made-up id is answered without asking the database, so a flood
/// of them costs one query per TTL. `None` when the list cannot be read.
pub(crate) async fn known(s: &AppState, ids: Ids, id: &str) -> Option<bool> {
    let list = listed(s, ids).await?;
    Some(
        list.split(|b| *b == b'\n')
            .any(|line| line == id.as_bytes()),
    )
}

/// How many checks the group `id` has (`Some(None)` for no such group),
/// from the cached list of groups, like [`known`].
async fn group_size(s: &AppState, id: &str) -> Option<Option<usize>> {
    let list = listed(s, Ids::Groups).await?;
    let list = String::from_utf8_lossy(&list);
    Some(list.lines().find_map(|line| {
        let (g, n) = line.split_once(' ')?;
        (g == id).then(|| n.parse().ok()).flatten()
    }))
}

/// How many pages of `per_page` the public incidents fill (at least one),
/// from the cached list of their ids: at most one count per TTL, whatever
/// page numbers are asked for. `None` when the list cannot be read.
async fn incident_pages(s: &AppState, per_page: i64) -> Option<i64> {
    let (served, outcome) = s
        .cache
        .get("ids:incidents", || ids(s, Ids::Incidents))
        .await;
    s.metrics.cache(outcome);
    match served {
        Served::Fresh(e) | Served::Stale(e) => {
            let total = e
                .rendered
                .body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as i64;
            Some(((total + per_page - 1) / per_page).max(1))
        }
        Served::Failed => None,
    }
}

pub(crate) async fn board(s: &AppState, now: Millis) -> Result<Board, ReadError> {
    load::board(&s.reader, now).await
}

pub(crate) async fn home_page(State(s): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(r) = query(&uri, &[]) {
        return refuse(&s, Kind::Html, r);
    }
    serve(&s, "home", HOME, Kind::Html, &headers, || async {
        let now = (s.clock)();
        let b = load::front_page(&s.reader, now).await?;
        Ok((
            rendered_html(StatusCode::OK, home::page(&s.site, &b), now),
            true,
        ))
    })
    .await
}

pub(crate) async fn api_status(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = match query(&uri, &["group", "page", "limit"]) {
        Ok(p) => p,
        Err(r) => return refuse(&s, Kind::Json, r),
    };
    if params.is_empty() {
        return serve(
            &s,
            "api_status",
            "api:status",
            Kind::Json,
            &headers,
            || async {
                let now = (s.clock)();
                let b = board(&s, now).await?;
                Ok((rendered_json(StatusCode::OK, &api::status(&b), now), true))
            },
        )
        .await;
    }
    let part = match status_part(&params) {
        Ok(p) => p,
        Err(r) => return refuse(&s, Kind::Json, r),
    };
    // An unknown group, or a page past the last: a 404 decided from the
    // cached lists, no slot.
    let total = match part.group {
        Some(id) => group_size(&s, id).await.map(|n| n.ok_or(id)),
        None => listed(&s, Ids::Checks)
            .await
            .map(|l| Ok(l.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())),
    };
    match total {
        Some(Err(id)) => {
            return status_not_found(&s, format!("No public group has the id {id:?}."));
        }
        Some(Ok(n)) if part.page > n.div_ceil(part.limit).max(1) => {
            let pages = n.div_ceil(part.limit).max(1);
            return status_not_found(
                &s,
                format!(
                    "Page {} is past the last page, {pages} ({n} checks, {} a page).",
                    part.page, part.limit
                ),
            );
        }
        _ => {}
    }
    let key = format!(
        "api:status:{}:{}:{}",
        part.group.unwrap_or(""),
        part.page,
        part.limit
    );
    serve(&s, "api_status", &key, Kind::Json, &headers, || async {
        let now = (s.clock)();
        let b = board(&s, now).await?;
        Ok(match api::status_part(&b, part) {
            Some(v) => (rendered_json(StatusCode::OK, &v, now), true),
            None => (not_found_rendered(&s, Kind::Json, now), false),
        })
    })
    .await
}

/// A 404 of `/api/v1/status`, saying why, readable by other sites' pages.
fn status_not_found(s: &AppState, why: String) -> Response {
    let status = StatusCode::NOT_FOUND;
    let mut r = refuse(s, Kind::Json, Refusal { status, why });
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    s.metrics.request("api_status", 404);
    r
}

/// Checks per page of `/api/v1/status` when `group` or `page` is given
/// without `limit`.
pub const API_STATUS_LIMIT: usize = 100;
/// The largest `limit` of `/api/v1/status`.
pub const API_STATUS_MAX_LIMIT: usize = 1000;

/// `group`, `page` and `limit` of `/api/v1/status`, checked.
fn status_part(params: &[(String, String)]) -> Result<api::Part<'_>, Refusal> {
    let last = |k: &str| params.iter().rev().find(|p| p.0 == k).map(|p| p.1.as_str());
    let group = match last("group") {
        Some(g) if g.is_empty() || g.len() > MAX_ID => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                why: format!("`group` must be a group's id, of 1 to {MAX_ID} bytes."),
            });
        }
        g => g,
    };
    let limit = match last("limit") {
        None => API_STATUS_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=API_STATUS_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    why: format!(
                        "`limit` must be a whole number from 1 to {API_STATUS_MAX_LIMIT}."
                    ),
                });
            }
        },
    };
    Ok(api::Part {
        group,
        page: page_param(params)? as usize,
        limit,
    })
}

/// `/groups/{id}`: one group's checks with their bars, [`group::PER_PAGE`]
/// a page (`?page=`); an unknown group, or a page past its last, is a 404.
pub(crate) async fn group_page(
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = match query(&uri, &["page"]).and_then(|p| page_param(&p)) {
        Ok(p) => p as usize,
        Err(r) => return refuse(&s, Kind::Html, r),
    };
    let Some(id) = check_id(id) else {
        return not_found(&s, "group", Kind::Html);
    };
    // An unknown group, or a page past its last: a 404 from the cached
    // list, no slot.
    match group_size(&s, &id).await {
        Some(None) => return not_found(&s, "group", Kind::Html),
        Some(Some(n)) if page > group::pages(n) => return not_found(&s, "page", Kind::Html),
        _ => {}
    }
    let key = format!("group:{id}:{page}");
    serve(&s, "group", &key, Kind::Html, &headers, || async {
        let now = (s.clock)();
        let b = load::front_page(&s.reader, now).await?;
        let groups = model::groups(&b.checks);
        match groups.iter().find(|g| g.id == id) {
            Some(g) if page <= group::pages(g.checks.len()) => {
                let m = group::page(&s.site, now, b.freshness, g, page);
                Ok((rendered_html(StatusCode::OK, m, now), true))
            }
            _ => Ok((not_found_rendered(&s, Kind::Html, now), false)),
        }
    })
    .await
}

/// A check id from the path, if it could be one.
pub(crate) fn check_id(
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Option<String> {
    id.ok()
        .map(|Path(id)| id)
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID)
}

pub(crate) async fn check_page(
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    check_any(s, id, uri, headers, Kind::Html).await
}

pub(crate) async fn api_check(
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    check_any(s, id, uri, headers, Kind::Json).await
}

async fn check_any(
    s: AppState,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    kind: Kind,
) -> Response {
    if let Err(r) = query(&uri, &[]) {
        return refuse(&s, kind, r);
    }
    let (route, prefix) = match kind {
        Kind::Html => ("check", "check:"),
        _ => ("api_check", "api:check:"),
    };
    let Some(id) = check_id(id) else {
        return not_found(&s, route, kind);
    };
    if known(&s, Ids::Checks, &id).await == Some(false) {
        return not_found(&s, route, kind);
    }
    let key = format!("{prefix}{id}");
    serve(&s, route, &key, kind, &headers, || async {
        let now = (s.clock)();
        let Some(detail) = load::check(&s.reader, &id, now).await? else {
            return Ok((not_found_rendered(&s, kind, now), false));
        };
        let r = match kind {
            Kind::Html => rendered_html(StatusCode::OK, check::page(&s.site, now, &detail), now),
            _ => rendered_json(StatusCode::OK, &api::check_detail(&detail), now),
        };
        Ok((r, true))
    })
    .await
}

pub(crate) async fn incident_list(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let page = match query(&uri, &["page"]).and_then(|p| page_param(&p)) {
        Ok(p) => p,
        Err(r) => return refuse(&s, Kind::Html, r),
    };
    // Past the last page: a 404 decided from the cached count, no slot.
    if incident_pages(&s, incidents::PER_PAGE)
        .await
        .is_some_and(|pages| page > pages)
    {
        return not_found(&s, "page", Kind::Html);
    }
    let key = format!("incidents:{page}");
    serve(&s, "incidents", &key, Kind::Html, &headers, || async {
        let now = (s.clock)();
        let (rows, total) =
            load::incidents(&s.reader, IncidentFilter::All, incidents::PER_PAGE, page).await?;
        let pages = ((total + incidents::PER_PAGE - 1) / incidents::PER_PAGE).max(1);
        if page > pages {
            return Ok((not_found_rendered(&s, Kind::Html, now), false));
        }
        let m = incidents::list(&s.site, now, &rows, page, pages);
        Ok((rendered_html(StatusCode::OK, m, now), true))
    })
    .await
}

pub(crate) async fn incident_page(
    State(s): State<AppState>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = query(&uri, &[]) {
        return refuse(&s, Kind::Html, r);
    }
    let Some(id) = id
        .ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .filter(|i| *i > 0)
    else {
        return not_found(&s, "incident", Kind::Html);
    };
    if known(&s, Ids::Incidents, &id.to_string()).await == Some(false) {
        return not_found(&s, "incident", Kind::Html);
    }
    let key = format!("incident:{id}");
    serve(&s, "incident", &key, Kind::Html, &headers, || async {
        let now = (s.clock)();
        let Some(i) = s.reader.incident(id).await? else {
            return Ok((not_found_rendered(&s, Kind::Html, now), false));
        };
        let updates = s.reader.updates(&[i.id]).await?;
        let live: Vec<String> = s
            .reader
            .public_checks()
            .await?
            .into_iter()
            .map(|c| c.slug)
            .collect();
        let m = incidents::one(&s.site, now, &i, &updates, &live);
        Ok((rendered_html(StatusCode::OK, m, now), true))
    })
    .await
}

pub(crate) async fn api_incidents(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = match query(&uri, &["state", "page"]) {
        Ok(p) => p,
        Err(r) => return refuse(&s, Kind::Json, r),
    };
    let filter = match params
        .iter()
        .rev()
        .find(|p| p.0 == "state")
        .map(|p| p.1.as_str())
    {
        None | Some("all") => IncidentFilter::All,
        Some("open") => IncidentFilter::Open,
        Some("resolved") => IncidentFilter::Resolved,
        Some(_) => {
            return refuse(
                &s,
                Kind::Json,
                Refusal {
                    status: StatusCode::BAD_REQUEST,
                    why: "`state` must be one of open, resolved or all.".into(),
                },
            );
        }
    };
    let page = match page_param(&params) {
        Ok(p) => p,
        Err(r) => return refuse(&s, Kind::Json, r),
    };
    // Past the last page of all incidents (and so of any filter): `[]`, as
    // ever, without a slot.
    if incident_pages(&s, API_PER_PAGE)
        .await
        .is_some_and(|pages| page > pages)
    {
        let now = (s.clock)();
        let empty = rendered_json(StatusCode::OK, &serde_json::json!([]), now);
        let entry = std::sync::Arc::new(crate::cache::Entry::new(empty, 0));
        let mut response = respond(
            &s,
            Served::Fresh(entry),
            Outcome::Miss,
            Kind::Json,
            &headers,
        );
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        s.metrics
            .request("api_incidents", response.status().as_u16());
        return response;
    }
    let key = format!("api:incidents:{filter:?}:{page}");
    serve(&s, "api_incidents", &key, Kind::Json, &headers, || async {
        let now = (s.clock)();
        let rows = s
            .reader
            .incidents(filter, None, None, API_PER_PAGE, (page - 1) * API_PER_PAGE)
            .await?;
        let with = load::with_updates(&s.reader, rows).await?;
        let v: Vec<serde_json::Value> = with.iter().map(|(i, u)| api::incident(i, u)).collect();
        Ok((
            rendered_json(StatusCode::OK, &serde_json::Value::Array(v), now),
            true,
        ))
    })
    .await
}

/// Incidents per page of `/api/v1/incidents`.
pub const API_PER_PAGE: i64 = 100;

pub(crate) async fn style(headers: HeaderMap) -> Response {
    let etag = format!("\"{:x}\"", STYLE.len() as u64 ^ 0x5354_594c);
    let etag = format!(
        "{}-{}\"",
        etag.trim_end_matches('"'),
        env!("CARGO_PKG_VERSION")
    );
    let mut b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "public, max-age=3600");
    if not_modified(&headers, &etag) {
        b = b.status(StatusCode::NOT_MODIFIED);
        return b.body(axum::body::Body::empty()).unwrap_or_default();
    }
    b.header(header::CONTENT_TYPE, "text/css; charset=utf-8")
        .body(axum::body::Body::from(STYLE))
        .unwrap_or_default()
}

pub(crate) fn not_found(s: &AppState, route: &'static str, kind: Kind) -> Response {
    let now = (s.clock)();
    let r = not_found_rendered(s, kind, now);
    s.metrics.request(route, 404);
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, r.content_type)
        .header(
            header::CACHE_CONTROL,
            format!("public, max-age={}", s.cache.ttl().as_secs()),
        )
        .body(axum::body::Body::from(r.body))
        .unwrap_or_default()
}

pub(crate) async fn fallback(State(s): State<AppState>, uri: Uri) -> Response {
    let path = uri.path();
    let kind = if path.starts_with("/api/") {
        Kind::Json
    } else if path.starts_with("/badge/") {
        Kind::Svg
    } else {
        Kind::Html
    };
    not_found(&s, "not_found", kind)
}

//! What other sites embed or poll: the Statuspage-shaped summary, badges
//! and the Atom feed. Cached like the pages; badges may be hot-linked and
//! framed (see `routes::security_headers`), and the JSON may be read
//! cross-origin.

use crate::read::IncidentFilter;
use crate::routes::{
    Ids, Kind, check_id, known, not_found, query, refuse, rendered_json, rendered_svg, serve,
};
use crate::{AppState, badge, feed, load, summary};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;

/// `GET /api/v2/summary.json`.
pub async fn summary(State(s): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(r) = query(&uri, &[]) {
        return refuse(&s, Kind::Json, r);
    }
    serve(
        &s,
        "api_summary",
        "api:summary",
        Kind::Json,
        &headers,
        || async {
            let now = (s.clock)();
            let b = load::board(&s.reader, now).await?;
            Ok((
                rendered_json(StatusCode::OK, &summary::summary(&s.site, &b), now),
                true,
            ))
        },
    )
    .await
}

/// A badge of one check: the whole summary is not needed, only its status
/// and uptime.
async fn badge_of(
    s: &AppState,
    route: &'static str,
    id: Result<Path<String>, PathRejection>,
    uri: &Uri,
    headers: &HeaderMap,
    window: Option<&'static str>,
) -> Response {
    if let Err(r) = query(uri, &[]) {
        return refuse(s, Kind::Svg, r);
    }
    let Some(id) = check_id(id) else {
        return not_found(s, route, Kind::Svg);
    };
    if known(s, Ids::Checks, &id).await == Some(false) {
        return not_found(s, route, Kind::Svg);
    }
    let key = format!("badge:{id}:{}", window.unwrap_or("status"));
    serve(s, route, &key, Kind::Svg, headers, || async {
        let now = (s.clock)();
        let Some(c) = load::check_summary(&s.reader, &id, now).await? else {
            return Ok((crate::routes::not_found_rendered(s, Kind::Svg, now), false));
        };
        let b = match window {
            None => badge::status(&c.row.name, c.row.status),
            Some(w) => {
                let u = &c.uptime;
                let r = match w {
                    "24h" => u.h24,
                    "7d" => u.d7,
                    "30d" => u.d30,
                    _ => u.d90,
                };
                badge::uptime(&c.row.name, w, r)
            }
        };
        Ok((rendered_svg(StatusCode::OK, &b, now), true))
    })
    .await
}

/// `GET /badge/{id}/status.svg`.
pub async fn status_badge(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    badge_of(&s, "badge", id, &uri, &headers, None).await
}

/// `GET /badge/{id}/uptime/{24h|7d|30d|90d}.svg`.
pub async fn uptime_badge(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((id, file))) = path else {
        return not_found(&s, "badge", Kind::Svg);
    };
    let window = match file.as_str() {
        "24h.svg" => "24h",
        "7d.svg" => "7d",
        "30d.svg" => "30d",
        "90d.svg" => "90d",
        _ => return not_found(&s, "badge", Kind::Svg),
    };
    badge_of(&s, "badge", Ok(Path(id)), &uri, &headers, Some(window)).await
}

/// `GET /feed.atom`.
pub async fn feed(State(s): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(r) = query(&uri, &[]) {
        return refuse(&s, Kind::Feed, r);
    }
    serve(&s, "feed", "feed", Kind::Feed, &headers, || async {
        let now = (s.clock)();
        let rows = s
            .reader
            .incidents(IncidentFilter::All, None, None, feed::ENTRIES, 0)
            .await?;
        let with = load::with_updates(&s.reader, rows).await?;
        // Maintenance of public checks, named as the page names them.
        let public = s.reader.public_checks().await?;
        let windows: Vec<_> = s
            .reader
            .windows(now - feed::WINDOWS_FOR)
            .await?
            .into_iter()
            .filter_map(|mut w| {
                w.checks.retain(|c| public.iter().any(|p| &p.slug == c));
                let names = w
                    .checks
                    .iter()
                    .filter_map(|c| public.iter().find(|p| &p.slug == c).map(|p| p.name.clone()))
                    .collect::<Vec<_>>();
                (!names.is_empty()).then_some((w, names))
            })
            .collect();
        let r = crate::cache::Rendered {
            status: StatusCode::OK,
            content_type: "application/atom+xml; charset=utf-8",
            body: Bytes::from(feed::atom(&s.site, now, &with, &windows)),
            notice_at: None,
            at: now,
        };
        Ok((r, true))
    })
    .await
}

//! `/incidents` (the history, paginated) and `/incidents/{id}` (one
//! incident's timeline).

use super::{Site, incident_card, layout, state_text, time};
use crate::read::{IncidentRow, UpdateRow};
use ingest::incident::duration_text;
use ingest::state::Millis;
use maud::{Markup, html};

/// Incidents per page of the history.
pub const PER_PAGE: i64 = 20;

/// One page of the history.
pub fn list(
    site: &Site,
    now: Millis,
    incidents: &[(IncidentRow, Vec<UpdateRow>)],
    page: i64,
    pages: i64,
) -> Markup {
    let body = html! {
        h1 { "Incident history" }
        @if incidents.is_empty() {
            p.empty { "No incidents." }
        }
        @for (i, updates) in incidents {
            (incident_card(i, updates, false))
        }
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href={"/incidents?page=" (page - 1)} { "← Newer" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href={"/incidents?page=" (page + 1)} { "Older →" } }
            }
        }
    };
    layout(site, "Incident history", now, None, body)
}

/// One incident with all its updates, newest first.
/// One incident's page; `live` are the check ids that still have a page (a
/// retired check's incidents stay public, without a link to it).
pub fn one(
    site: &Site,
    now: Millis,
    i: &IncidentRow,
    updates: &[UpdateRow],
    live: &[String],
) -> Markup {
    let lasted = i.open_ms.map(duration_text);
    let body = html! {
        p.crumbs { a href="/incidents" { "← Incident history" } }
        h1 { (i.title) }
        p.meta {
            span class={"state " (i.state)} { (state_text(&i.state)) }
            " · " (if i.impact == "major" { "Major impact" } else { "Minor impact" })
            " · started " (time(i.started_at))
            @if let Some(l) = &lasted { " · lasted " (l) }
        }
        @if !i.checks.is_empty() {
            p.meta {
                "Affects: "
                @for (n, c) in i.checks.iter().enumerate() {
                    @if n > 0 { ", " }
                    @if live.contains(c) { a href={"/checks/" (c)} { (c) } }
                    @else { (c) " (retired)" }
                }
            }
        }
        ol.timeline {
            @for u in updates.iter().rev() {
                li {
                    p.update-head { strong { (state_text(&u.state)) } " · " (time(u.at)) " · " (u.author) }
                    p { (u.message) }
                }
            }
        }
    };
    layout(site, &i.title, now, None, body)
}

/// The 404 page.
pub fn not_found(site: &Site, now: Millis) -> Markup {
    let body = html! {
        h1 { "Not found" }
        p { "There is no public page here. " a href="/" { "Back to the status page" } }
    };
    layout(site, "Not found", now, None, body)
}

/// The page for a request we cannot answer (a bad query string).
pub fn bad_request(site: &Site, now: Millis, why: &str) -> Markup {
    let body = html! {
        h1 { "Bad request" }
        p { (why) }
        p { a href="/" { "Back to the status page" } }
    };
    layout(site, "Bad request", now, None, body)
}

/// The page when the database is down and nothing was rendered before.
pub fn unavailable(site: &Site, now: Millis) -> Markup {
    let body = html! {
        h1 { "Status temporarily unavailable" }
        p { "The status data cannot be read right now. Please try again in a minute." }
    };
    layout(site, "Unavailable", now, None, body)
}

//! `/`: the banner, open incidents, maintenance, then each group's checks
//! with their 90-day uptime bars, then the past week's incidents day by day.
//! A page of more than [`Site::collapse_over`] checks shows each group
//! folded instead (names and statuses, bars on the group's own page).

use super::{
    Site, banner, coverage, incident_card, layout, percent, pill, state_text, status_text, time,
    uptime_bar,
};
use crate::model::{Board, CheckSummary, Group, groups};
use ingest::state::Millis;
use ingest::status::Status;
use maud::{Markup, html};

/// The front page.
pub fn page(site: &Site, board: &Board) -> Markup {
    let body = html! {
        (banner(board.overall, board.partial))
        @if !board.open.is_empty() {
            section.incidents aria-labelledby="open-h" {
                h2 #open-h { "Open incidents" }
                @for (i, updates) in &board.open {
                    (incident_card(i, updates, false))
                }
            }
        }
        @if !board.windows.is_empty() {
            section.maintenance aria-labelledby="maint-h" {
                h2 #maint-h { "Maintenance" }
                @for w in &board.windows {
                    article.window {
                        h3 {
                            (w.name)
                            @if w.starts_at <= board.now { " " span.pill.maintenance { "In progress" } }
                            @else { " " span.pill.scheduled { "Scheduled" } }
                        }
                        p.meta { (time(w.starts_at)) " – " (time(w.ends_at)) }
                        @if let Some(d) = &w.description { p { (d) } }
                        p.meta { "Affects: " (w.checks.join(", ")) }
                    }
                }
            }
        }
        @if board.checks.is_empty() {
            p.empty { "No checks are public yet." }
        }
        @if board.checks.len() > site.collapse_over {
            @for g in groups(&board.checks) { (collapsed(&g)) }
        } @else {
            @for g in groups(&board.checks) {
                section.group aria-label=(if g.name.is_empty() { "Checks" } else { g.name }) {
                    @if !g.name.is_empty() { h2 { (g.name) } }
                    (group_description(&g))
                    ul.checks {
                        @for c in &g.checks { (check_item(c, board.now)) }
                    }
                }
            }
        }
        (past_incidents(board))
    };
    layout(site, "", board.now, Some(board.freshness), body)
}

/// A check as the front page and its group's page list it: name, status,
/// the 90-day bar and the uptime over it.
pub fn check_item(c: &CheckSummary, now: Millis) -> Markup {
    html! {
        li.check {
            div.check-head {
                a.name href={"/checks/" (c.row.slug)} { (c.row.name) }
                @if let Some(s) = c.slo.filter(|s| s.exhausted()) {
                    a.budget href={"/checks/" (c.row.slug) "#slo-h"}
                        title={ "Error budget spent (objective " (s.slo) ")" } { "budget" }
                }
                (pill(c.row.status))
            }
            (uptime_bar(&c.row.name, &c.days))
            p.uptime {
                (percent(c.uptime.d90)) " uptime "
                (coverage("90 days", c.uptime.since, 90 * 86_400_000, now))
            }
        }
    }
}

/// A group's description, from its first check's row.
pub fn group_description(g: &Group<'_>) -> Markup {
    html! {
        @if let Some(d) = g.checks.first().and_then(|c| c.row.group_description.as_deref()) {
            p.group-description { (d) }
        }
    }
}

/// "12 checks · 2 down · 1 no data": a group's size and what in it is not
/// operational.
pub fn group_counts(g: &Group<'_>) -> Markup {
    html! {
        (g.checks.len()) @if g.checks.len() == 1 { " check" } @else { " checks" }
        @for (s, n) in g.not_operational() { " · " (n) " " (status_text(s).to_lowercase()) }
    }
}

/// A group on a page of many checks: a `<details>` whose summary gives the
/// group's worst status and what is not operational, open by itself when a
/// check is down, degraded or without data, so trouble is never folded
/// away. Inside, each check's name and status (no bars: those are on the
/// group's own page, linked).
fn collapsed(g: &Group<'_>) -> Markup {
    let open = g
        .not_operational()
        .iter()
        .any(|(s, _)| *s != Status::Maintenance);
    let label = if g.name.is_empty() { "Checks" } else { g.name };
    html! {
        details.group.collapsed open[open] {
            summary {
                h2 { (label) }
                (pill(g.worst()))
                span.group-count { (group_counts(g)) }
            }
            (group_description(g))
            ul.check-rows {
                @for c in &g.checks {
                    li { a href={"/checks/" (c.row.slug)} { (c.row.name) } " " (pill(c.row.status)) }
                }
            }
            p.group-link { a href={"/groups/" (g.id)} { "All of " (label) ", with 90-day uptime" } }
        }
    }
}

/// The past week, day by day (UTC), as Statuspage shows it: each day's
/// incidents, or "No incidents reported".
fn past_incidents(board: &Board) -> Markup {
    html! {
        section.history aria-labelledby="history-h" {
            h2 #history-h { "Past incidents" }
            @for (day, incidents) in &board.history {
                div.day {
                    h3 { (day_label(*day)) }
                    @if incidents.is_empty() {
                        p.quiet { "No incidents reported." }
                    } @else {
                        ul.day-incidents {
                            @for i in incidents {
                                li class={ "past " (i.impact) } {
                                    a href={ "/incidents/" (i.id) } { (i.title) }
                                    " " span.meta { (state_text(&i.state)) " · " (time(i.started_at)) }
                                }
                            }
                        }
                    }
                }
            }
            p { a href="/incidents" { "Incident history" } }
        }
    }
}

/// A day's heading: "2 Dec 2026 (UTC)".
fn day_label(day: ingest::state::Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(day)
        .unwrap_or_default()
        .format("%-d %b %Y (UTC)")
        .to_string()
}

//! `/`: the banner, open incidents, maintenance, then each group's checks
//! with their 90-day uptime bars, then the past week's incidents day by day.

use super::{
    Site, banner, coverage, incident_card, layout, percent, pill, state_text, time, uptime_bar,
};
use crate::model::{Board, CheckSummary};
use maud::{Markup, html};

/// The checks by group, groups in order of their first check.
pub fn groups(checks: &[CheckSummary]) -> Vec<(&str, Vec<&CheckSummary>)> {
    let mut out: Vec<(&str, Vec<&CheckSummary>)> = Vec::new();
    for c in checks {
        match out.iter_mut().find(|g| g.0 == c.row.group) {
            Some(g) => g.1.push(c),
            None => out.push((c.row.group.as_str(), vec![c])),
        }
    }
    out
}

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
        @for (group, checks) in groups(&board.checks) {
            section.group aria-label=(if group.is_empty() { "Checks" } else { group }) {
                @if !group.is_empty() { h2 { (group) } }
                @if let Some(d) = checks.first().and_then(|c| c.row.group_description.as_deref()) {
                    p.group-description { (d) }
                }
                ul.checks {
                    @for c in checks {
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
                                (coverage("90 days", c.uptime.since, 90 * 86_400_000, board.now))
                            }
                        }
                    }
                }
            }
        }
        (past_incidents(board))
    };
    layout(site, "", board.now, Some(board.freshness), body)
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

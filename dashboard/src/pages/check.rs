//! `/checks/{id}`: a check's uptime over four windows, its latency graphs
//! (24 hours and 7 days) and phases, its locations, its certificate and its
//! incidents.

use super::{Site, burn, coverage, layout, ms, percent, pill, span, state_text, time, uptime_bar};
use crate::model::{CheckDetail, Point};
use crate::view::{self, CHART_HEIGHT, CHART_WIDTH};
use chrono::{DateTime, Utc};
use ingest::state::{Millis, PairState};
use maud::{Markup, html};

const DAY_MS: Millis = 86_400_000;

fn hour_label(at: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .unwrap_or_default()
        .format("%H:%M")
        .to_string()
}

fn day_label(at: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .unwrap_or_default()
        .format("%-d %b")
        .to_string()
}

/// A latency graph with its axes and legend.
/// The phases stacked over 24 hours, a bar per 15 minutes; the table below
/// it is its accessible form (the graph is `aria-hidden`).
fn phase_chart(caption: &str, points: &[(Millis, Option<[f64; 5]>)]) -> Markup {
    if points.iter().all(|p| p.1.is_none()) {
        return html! {};
    }
    let c = view::stacked_chart(points, 16, hour_label);
    html! {
        figure.chart.stacked {
            figcaption { (caption) }
            svg viewBox={"-72 -16 " (CHART_WIDTH + 100.0) " " (CHART_HEIGHT + 44.0)} aria-hidden="true" {
                @for (y, label) in &c.y_ticks {
                    line.grid x1="0" x2=(CHART_WIDTH) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                    text.tick x="-8" y=(format!("{:.1}", y + 4.0)) text-anchor="end" { (label) }
                }
                @for (x, label) in &c.x_ticks {
                    text.tick x=(format!("{x:.1}")) y=(format!("{:.1}", CHART_HEIGHT + 20.0)) text-anchor="middle" { (label) }
                }
                @for (name, d) in &c.areas {
                    @if !d.is_empty() { path class={ "phase-" (name) } d=(d) {} }
                }
            }
            ul.legend {
                @for name in view::PHASES { li { span class={ "swatch phase-" (name) } {} (name) } }
            }
        }
    }
}

fn chart(
    caption: &str,
    points: &[Point],
    label_every: usize,
    label: fn(Millis) -> String,
) -> Markup {
    let c = view::latency_chart(points, label_every, label);
    let has_data = points.iter().any(|p| p.latency.p50.is_some());
    html! {
        figure.chart {
            figcaption { (caption) }
            @if has_data {
                svg viewBox={"-72 -16 " (CHART_WIDTH + 100.0) " " (CHART_HEIGHT + 44.0)}
                    role="img" aria-label={(caption) ": p50 and p95 response time, up to " (view::format_ms(c.y_max))} {
                    @for (y, text) in &c.y_ticks {
                        line.grid x1="0" x2=(CHART_WIDTH) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                        text.tick x="-6" y=(format!("{:.1}", y + 4.0)) text-anchor="end" { (text) }
                    }
                    @for (x, text) in &c.x_ticks {
                        text.tick x=(format!("{x:.1}")) y=(format!("{:.1}", CHART_HEIGHT + 22.0)) text-anchor="middle" { (text) }
                    }
                    path.p95 d=(c.p95) {}
                    path.p50 d=(c.p50) {}
                }
                p.legend { span.key.p50 { "p50" } " " span.key.p95 { "p95" } }
            } @else {
                p.empty { "No response times recorded in this period." }
            }
        }
    }
}

/// The phases of each location (mean of each phase, stacked), where
/// several locations probe the check, and their means over the day as a
/// table, the graphs' accessible form.
fn by_location(locations: &[crate::model::LocationPhaseSeries]) -> Markup {
    html! {
        div.by-location {
            @for l in locations {
                (phase_chart(&format!("{}, last 24 hours (mean of each phase, stacked)", l.name), &l.series))
            }
            table.phases {
                caption { "Mean phases by location over the last 24 hours" }
                thead {
                    tr {
                        th scope="col" { "Location" }
                        @for name in view::PHASES { th scope="col" { (name) } }
                    }
                }
                tbody {
                    @for l in locations {
                        tr {
                            th scope="row" { (l.name) }
                            @for v in l.mean { td { (ms(Some(v))) } }
                        }
                    }
                }
            }
        }
    }
}

/// The SLO panel: the SLI over the window, the error budget left (time
/// and share, with a meter), and the burn rates over 1 and 6 hours.
fn objective(s: &ingest::uptime::SloStanding) -> Markup {
    let target = config::units::format_percent_ppm(s.slo.target_ppm);
    let left = s.remaining_ratio();
    html! {
        section.slo aria-labelledby="slo-h" {
            h2 #slo-h { "Objective" }
            p.meta {
                (target) " uptime over a rolling " (s.slo.window_days) " days. "
                "Maintenance and time without data count for neither side."
            }
            dl.windows {
                div {
                    dt { "Uptime (SLI)" }
                    dd class=(if s.sli.is_some_and(|v| v < s.slo.target()) { "missed" } else { "" }) { (percent(s.sli)) }
                    dd.coverage { "objective " (target) }
                }
                div {
                    dt { "Error budget left" }
                    @match left {
                        None => { dd { "–" } dd.coverage { "nothing observed yet" } }
                        Some(_) if s.exhausted() => {
                            dd.missed { "None" }
                            dd.coverage { (span(-s.remaining_ms())) " over a budget of " (span(s.budget_ms)) }
                        }
                        Some(r) => {
                            dd { (format!("{:.0}%", (r * 100.0).floor())) }
                            dd.coverage { (span(s.remaining_ms())) " of " (span(s.budget_ms)) }
                        }
                    }
                }
                div {
                    dt { "Burn rate, 1 hour" }
                    dd { (burn(s.burn_1h)) }
                    dd.coverage { "1× spends the budget by the window's end" }
                }
                div {
                    dt { "Burn rate, 6 hours" }
                    dd { (burn(s.burn_6h)) }
                }
            }
            @if let Some(r) = left {
                meter.budget min="0" max="1" low="0.25" optimum="1" value=(format!("{:.4}", r.clamp(0.0, 1.0)))
                    aria-label="Error budget left" {
                    (format!("{:.0}%", (r.max(0.0) * 100.0).floor()))
                }
            }
        }
    }
}

fn location_state(state: PairState, reporting: bool) -> (&'static str, &'static str) {
    match (reporting, state) {
        (false, _) => ("unknown", "Not reporting"),
        (true, PairState::Passing) => ("up", "Passing"),
        (true, PairState::Degraded) => ("degraded", "Degraded"),
        (true, PairState::Failing) => ("down", "Failing"),
    }
}

/// The page.
pub fn page(site: &Site, now: Millis, d: &CheckDetail) -> Markup {
    let c = &d.summary;
    let row = &c.row;
    let body = html! {
        p.crumbs { a href="/" { "← All checks" } }
        div.check-title {
            h1 { (row.name) }
            (pill(row.status))
        }
        @if let Some(desc) = &row.description { p.description { (desc) } }
        p.meta {
            @if !row.group.is_empty() { (row.group) " · " }
            (row.kind.to_uppercase())
            @if let Some(since) = row.status_since { " · " (pill_since(since)) }
        }
        section aria-labelledby="uptime-h" {
            h2 #uptime-h { "Uptime" }
            dl.windows {
                @for (label, days, ratio) in [
                    ("24 hours", 1, c.uptime.h24),
                    ("7 days", 7, c.uptime.d7),
                    ("30 days", 30, c.uptime.d30),
                    ("90 days", 90, c.uptime.d90),
                ] {
                    div {
                        dt { (label) }
                        dd { (percent(ratio)) }
                        dd.coverage { (coverage(label, c.uptime.since, days * 86_400_000, now)) }
                    }
                }
            }
            (uptime_bar(&row.name, &c.days))
        }
        @if let Some(s) = &c.slo { (objective(s)) }
        section aria-labelledby="latency-h" {
            h2 #latency-h { "Response time" }
            (chart("Last hour", &d.hour, 10, hour_label))
            (chart("Last 24 hours", &d.day, 16, hour_label))
            (chart("Last 7 days", &d.week, 24, day_label))
            @if !d.phases.is_empty() {
                (phase_chart("Where the time goes, last 24 hours (p50 of each phase, stacked)", &d.phase_series))
                table.phases {
                    caption { "Phases over the last 24 hours" }
                    thead { tr { th scope="col" { "Phase" } th scope="col" { "p50" } th scope="col" { "p95" } } }
                    tbody {
                        @for (name, l) in &d.phases {
                            tr { th scope="row" { (name) } td { (ms(l.p50)) } td { (ms(l.p95)) } }
                        }
                    }
                }
            }
            @if !d.location_phases.is_empty() { (by_location(&d.location_phases)) }
        }
        section aria-labelledby="loc-h" {
            h2 #loc-h { "Locations" }
            p.meta {
                (c.locations.reporting) " of " (c.locations.assigned.max(c.locations.reporting))
                " reporting, " (c.locations.failing) " failing"
            }
            @if d.locations.is_empty() {
                p.empty { "No location has probed this check yet." }
            } @else {
                ul.locations {
                    @for l in &d.locations {
                        @let (class, text) = location_state(l.state, l.reporting);
                        li {
                            span.loc-name { (l.name) @if !l.zone.is_empty() && l.zone != l.name { " (" (l.zone) ")" } }
                            span class={"pill " (class)} { (text) }
                            span.meta { "last result " (time(l.at)) }
                        }
                    }
                }
            }
        }
        @if let Some(expiry) = row.cert_not_after {
            section aria-labelledby="cert-h" {
                h2 #cert-h { "Certificate" }
                @let left = expiry - now;
                p class=(if left < 14 * DAY_MS { "cert warn" } else { "cert" }) {
                    @if left <= 0 { "Expired " (time(expiry)) }
                    @else { "Expires " (time(expiry)) " (in " ((left / DAY_MS)) " days)" }
                }
            }
        }
        section aria-labelledby="inc-h" {
            h2 #inc-h { "Incidents" }
            @if d.incidents.is_empty() {
                p.empty { "No incidents." }
            } @else {
                ul.incident-list {
                    @for i in &d.incidents {
                        li {
                            a href={"/incidents/" (i.id)} { (i.title) }
                            " · " span class={"state " (i.state)} { (state_text(&i.state)) }
                            " · " (time(i.started_at))
                        }
                    }
                }
            }
        }
    };
    let data = crate::model::Freshness::of(std::slice::from_ref(row));
    layout(site, &row.name, now, Some(data), body)
}

fn pill_since(since: Millis) -> Markup {
    html! { "since " (time(since)) }
}

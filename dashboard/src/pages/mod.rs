//! The public HTML pages, server-rendered with maud (which escapes every
//! interpolated value). The pages work with JavaScript off. One small
//! inline script, [`LOCAL_TIME`], allowed by its hash in the CSP and no
//! other, rewrites each `<time datetime>` (rendered in UTC, and labelled
//! so) into the reader's zone. Each page is a pure function of the data
//! read for it.

pub mod check;
pub mod group;
pub mod home;
pub mod incidents;
pub mod subscribe;

use crate::model::{Freshness, Latency, Overall};
use crate::read::{IncidentRow, UpdateRow};
use crate::view::{self, BAR_HEIGHT};
use chrono::{DateTime, Utc};
use ingest::state::Millis;
use ingest::status::Status;
use ingest::uptime::{Day, percent_floor};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The one script: every `<time datetime>` shown in the reader's zone (the
/// UTC text kept as its tooltip). No handler, no third-party code.
pub const LOCAL_TIME: &str = "for(const t of document.querySelectorAll('time[datetime]')){const d=new Date(t.getAttribute('datetime'));if(!isNaN(d)){t.title=t.textContent;t.textContent=d.toLocaleString(undefined,{day:'numeric',month:'short',year:'numeric',hour:'2-digit',minute:'2-digit',timeZoneName:'short'});}}";

/// [`LOCAL_TIME`]'s CSP source: `'sha256-…'`.
pub fn local_time_hash() -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(LOCAL_TIME.as_bytes()))
    )
}

/// The HTML comment where a "stale" notice goes when a page is served from
/// a failed refresh.
pub const NOTICE_MARK: &str = "<!--stale-notice-->";

/// The page's branding, from the dashboard's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The page title.
    pub title: String,
    /// A logo, shown beside the title (an `https:`/`http:` URL, or a path).
    pub logo_url: Option<String>,
    /// Links in the header: (label, URL).
    pub links: Vec<(String, String)>,
    /// Where the page is published, without a trailing slash: the base of
    /// the feed's links and ids and of the summary's page URL.
    pub public_url: String,
    /// Whether email subscriptions are on: every page then links to them.
    pub subscribe: bool,
    /// A front page with more public checks than this folds each group
    /// (`--collapse-groups-over`).
    pub collapse_over: usize,
}

/// [`Site::collapse_over`]'s default: a page of 250 checks or fewer shows
/// every bar.
pub const COLLAPSE_OVER: usize = 250;

impl Default for Site {
    fn default() -> Self {
        Site {
            title: String::new(),
            logo_url: None,
            links: Vec::new(),
            public_url: String::new(),
            subscribe: false,
            collapse_over: COLLAPSE_OVER,
        }
    }
}

/// Whether `url` may be put in an `href` or `src`: http(s), or a path on
/// this site. Anything else (`javascript:`, `data:`) is refused at start.
pub fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || (lower.starts_with('/') && !lower.starts_with("//"))
}

/// The frame of every page. `data` is how current the status it shows is
/// (`None` for pages of facts only, such as incidents): its footer says when
/// the data was last decided, and data older than three intervals gets a
/// visible notice at the top.
pub fn layout(
    site: &Site,
    title: &str,
    now: Millis,
    data: Option<Freshness>,
    body: Markup,
) -> Markup {
    frame(site, title, Some((now, data)), body)
}

/// The frame with no time anywhere: for pages whose bytes must not depend
/// on when they are asked for (the subscribe form's answers).
pub fn timeless(site: &Site, title: &str, body: Markup) -> Markup {
    frame(site, title, None, body)
}

fn frame(
    site: &Site,
    title: &str,
    when: Option<(Millis, Option<Freshness>)>,
    body: Markup,
) -> Markup {
    let (now, data) = match when {
        Some((now, data)) => (now, data),
        None => (0, None),
    };
    let full = if title.is_empty() {
        site.title.clone()
    } else {
        format!("{title} · {}", site.title)
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (full) }
                link rel="stylesheet" href="/assets/style.css";
                link rel="alternate" type="application/atom+xml" href="/feed.atom" title="Incidents";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" {
                        @if let Some(logo) = &site.logo_url {
                            img.logo src=(logo) alt="" width="32" height="32";
                        }
                        span { (site.title) }
                    }
                    @if !site.links.is_empty() || site.subscribe {
                        nav aria-label="Links" {
                            @for (label, url) in &site.links {
                                a href=(url) rel="noopener" { (label) }
                            }
                            @if site.subscribe {
                                a.subscribe href="/subscribe" { "Subscribe to updates" }
                            }
                        }
                    }
                }
                (PreEscaped(NOTICE_MARK))
                @if let Some(f) = data.filter(|f| f.stale(now)) {
                    (data_as_of(f.as_of.unwrap_or(now), now))
                }
                main #main { (body) }
                footer.site {
                    p {
                        @match (when.is_some(), data.and_then(|f| f.as_of)) {
                            (true, Some(t)) => { "Last updated " (time(t)) ". " }
                            (true, None) => { "Rendered " (time(now)) ". " }
                            (false, _) => {}
                        }
                        a href="/incidents" { "Incident history" } " · "
                        a href="/feed.atom" { "Atom feed" } " · "
                        a href="/api/v1/status" { "JSON API" }
                    }
                    p.powered { "Powered by statuspage" }
                }
                script { (PreEscaped(LOCAL_TIME)) }
            }
        }
    }
}

/// The notice on a page whose data is older than three intervals: the
/// probes or ingest have stopped, and the page says how old what it shows is.
fn data_as_of(as_of: Millis, now: Millis) -> Markup {
    let t = DateTime::<Utc>::from_timestamp_millis(as_of).unwrap_or_default();
    let minutes = (now - as_of).max(0) / 60_000;
    html! {
        div #data-as-of .notice.stale-data role="status" {
            strong { "Data as of " (t.format("%H:%M UTC").to_string()) " (" (minutes) " min ago)." }
            " No newer results have been decided since; the state shown may no longer hold."
        }
    }
}

/// The notice put at [`NOTICE_MARK`] when a page is served stale.
pub fn stale_notice(rendered_at: Millis) -> String {
    html! {
        div.notice.stale role="status" {
            strong { "This page could not be refreshed." }
            " It shows the state as of " (time(rendered_at)) "."
        }
    }
    .into_string()
}

/// What an uptime figure over the last `window_ms` was computed over: "over
/// 90 days", or "since 2 Dec 2026, 00:55 UTC" when monitoring began within
/// the window (a `<time>`, shown in the reader's zone).
pub fn coverage(label: &str, since: Option<Millis>, window_ms: Millis, now: Millis) -> Markup {
    match since {
        Some(s) if s > now - window_ms => html! { "since " (time(s)) },
        None => html! { "no data yet" },
        Some(_) => html! { "over " (label) },
    }
}

/// An instant as a `<time>` element: "26 Nov 2026, 13:05 UTC".
pub fn time(ms: Millis) -> Markup {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    html! {
        time datetime=(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()) {
            (t.format("%-d %b %Y, %H:%M UTC").to_string())
        }
    }
}

/// A check status's label.
pub fn status_text(s: Status) -> &'static str {
    match s {
        Status::Up => "Operational",
        Status::Degraded => "Degraded",
        Status::Down => "Down",
        Status::Maintenance => "Maintenance",
        Status::Unknown => "No data",
    }
}

/// A status pill.
pub fn pill(s: Status) -> Markup {
    html! { span class={"pill " (s.as_str())} { (status_text(s)) } }
}

/// The banner; `partial` when some checks have no data.
pub fn banner(o: Overall, partial: bool) -> Markup {
    html! {
        section class={"banner " (o.as_str())} aria-live="polite" {
            h1 { (o.text()) }
            @if partial { p.partial-data { "Partial data: some checks have no recent results." } }
        }
    }
}

/// An uptime ratio as floored percent, or a dash.
pub fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| percent_floor(r, 2))
}

/// A span of time in its two largest units: "43m 12s", "2h 5m", "1d 3h";
/// under 10 seconds with a tenth: "1.1s". Never negative (callers say "over" themselves).
pub fn span(ms: f64) -> String {
    if ms.abs() < 10_000.0 {
        return format!("{:.1}s", (ms.abs() / 100.0).floor() / 10.0);
    }
    let total = (ms.abs() / 1000.0).floor() as i64;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let parts: Vec<String> = units
        .iter()
        .scan(total, |left, &(unit, size)| {
            let n = *left / size;
            *left %= size;
            Some((n, unit))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// A burn rate: "0.4×", "14×"; a dash when nothing was observed.
pub fn burn(rate: Option<f64>) -> String {
    match rate {
        None => "–".into(),
        Some(r) if r < 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.0}×"),
    }
}

/// A latency in ms, or a dash.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), view::format_ms)
}

/// "p50 120 ms · p95 340 ms".
pub fn latency_text(l: Latency) -> String {
    format!("p50 {} · p95 {}", ms(l.p50), ms(l.p95))
}

/// The uptime bar: one SVG whose view box is cropped from the left on a
/// narrow screen (`xMaxYMid slice` at a fixed height), so a phone shows the
/// most recent weeks with bars wide enough to see and point at. Bar size and
/// shape are in the stylesheet, so each of the 90 bars costs only its
/// position, colour and title.
pub fn uptime_bar(name: &str, days: &[Day]) -> Markup {
    let width = view::bar_view_width(days.len());
    let bars = view::uptime_bars(days);
    html! {
        svg.bar viewBox={"0 0 " (width) " " (BAR_HEIGHT)} preserveAspectRatio="xMaxYMid slice"
            role="img" aria-label={(name) ": uptime of the last " (days.len()) " days"} {
            @for b in &bars {
                rect class=(b.class) x=(b.x) { title { (b.title) } }
            }
        }
        div.bar-legend aria-hidden="true" {
            span.wide { (days.len()) " days ago" }
            span.narrow { "Earlier" }
            span { "Today" }
        }
    }
}

/// An incident's state label.
pub fn state_text(state: &str) -> &'static str {
    match state {
        "investigating" => "Investigating",
        "identified" => "Identified",
        "monitoring" => "Monitoring",
        "resolved" => "Resolved",
        _ => "Unknown",
    }
}

/// An incident as a card: title, state, and its newest update (or all).
pub fn incident_card(i: &IncidentRow, updates: &[UpdateRow], all: bool) -> Markup {
    let shown: Vec<&UpdateRow> = if all {
        updates.iter().rev().collect()
    } else {
        updates.iter().rev().take(1).collect()
    };
    html! {
        article class={"incident " (i.impact) " " (i.state)} {
            h3 { a href={"/incidents/" (i.id)} { (i.title) } }
            p.meta {
                span class={"state " (i.state)} { (state_text(&i.state)) }
                " · started " (time(i.started_at))
                @if let Some(r) = i.resolved_at {
                    " · resolved " (time(r))
                }
            }
            @for u in shown {
                div.update {
                    p.update-head { strong { (state_text(&u.state)) } " · " (time(u.at)) }
                    p { (u.message) }
                }
            }
        }
    }
}

//! What the pages and the API show, assembled from the stored rows by pure
//! functions. Uptime, days and locations come from ingest's own functions
//! (`ingest::uptime`, `ingest::status::decide`): there is no second copy of
//! the semantics here.

use crate::read::{AgentRow, CheckRow, IncidentRow, UpdateRow, WindowRow};
use config::defaults::Quorum;
use ingest::rollup::Rollup;
use ingest::state::Millis;
use ingest::status::{Detail, Sample, Status};
use ingest::uptime::{self, Day, IncidentSpan, Uptimes};
use std::collections::{BTreeMap, HashMap};

/// One day in ms.
pub const DAY_MS: Millis = 86_400_000;
/// How many days the uptime bar shows.
pub const BAR_DAYS: u32 = 90;

/// The banner at the top of the page: the whole page's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overall {
    /// Everything up.
    Operational,
    /// Something degraded (or a minor operator incident).
    Degraded,
    /// Some checks down (or a major operator incident).
    PartialOutage,
    /// More than half the checks down.
    MajorOutage,
    /// Something under maintenance and nothing worse.
    Maintenance,
    /// The page cannot vouch for the state: more than half of the checks
    /// have no data, or the newest decided instant is older than three of
    /// the longest intervals (the probes or ingest have stopped). Never
    /// "operational" over missing data.
    Unavailable,
}

impl Overall {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Operational => "operational",
            Overall::Degraded => "degraded",
            Overall::PartialOutage => "partial_outage",
            Overall::MajorOutage => "major_outage",
            Overall::Maintenance => "maintenance",
            Overall::Unavailable => "unavailable",
        }
    }

    /// The banner's words.
    pub fn text(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Degraded => "Degraded performance",
            Overall::PartialOutage => "Partial outage",
            Overall::MajorOutage => "Major outage",
            Overall::Maintenance => "Under maintenance",
            Overall::Unavailable => "Status unavailable",
        }
    }
}

/// How current the data behind a page is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freshness {
    /// The newest instant ingest has decided for any of the checks: what
    /// "Last updated" shows. `None` before anything was decided.
    pub as_of: Option<Millis>,
    /// How old `as_of` may be before the page cannot vouch for the state:
    /// three of the longest interval among the checks.
    pub stale_after: Millis,
}

impl Freshness {
    /// Of these checks.
    pub fn of(checks: &[CheckRow]) -> Freshness {
        Freshness {
            as_of: checks.iter().filter_map(|c| c.decided_through).max(),
            stale_after: ingest::status::REPORTING_INTERVALS
                * checks.iter().map(|c| c.interval_ms).max().unwrap_or(0),
        }
    }

    /// Whether the newest decided instant is too old at `now`.
    pub fn stale(&self, now: Millis) -> bool {
        self.as_of.is_some_and(|t| now - t > self.stale_after)
    }
}

/// The page's status from its checks and open incidents.
///
/// Missing data comes first: more than half of the checks `unknown`, or
/// data older than three intervals (`stale`), is "status unavailable". Then
/// more than half of the checks down is a major outage, any down a partial
/// one, any degraded is degraded performance, any in maintenance (and nothing
/// worse) is maintenance. An open operator incident (not opened by ingest,
/// and not yet `monitoring`) raises it to at least partial outage (impact
/// major) or degraded (minor): the operator knows of trouble the probes miss.
pub fn overall(statuses: &[Status], open: &[IncidentRow], stale: bool) -> Overall {
    let count = |s: Status| statuses.iter().filter(|x| **x == s).count();
    if stale || count(Status::Unknown) * 2 > statuses.len() {
        return Overall::Unavailable;
    }
    let down = count(Status::Down);
    let mut o = if down > 0 && down * 2 > statuses.len() {
        Overall::MajorOutage
    } else if down > 0 {
        Overall::PartialOutage
    } else if count(Status::Degraded) > 0 {
        Overall::Degraded
    } else if count(Status::Maintenance) > 0 {
        Overall::Maintenance
    } else {
        Overall::Operational
    };
    for i in open
        .iter()
        .filter(|i| !i.auto && i.state != "monitoring" && i.state != "resolved")
    {
        let floor = if i.impact == "major" {
            Overall::PartialOutage
        } else {
            Overall::Degraded
        };
        if rank(floor) > rank(o) {
            o = floor;
        }
    }
    o
}

fn rank(o: Overall) -> u8 {
    match o {
        Overall::Operational => 0,
        Overall::Maintenance => 1,
        Overall::Degraded => 2,
        Overall::PartialOutage => 3,
        Overall::MajorOutage => 4,
        Overall::Unavailable => 5,
    }
}

/// A latency summary in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// The median.
    pub p50: Option<f64>,
    /// The 95th percentile.
    pub p95: Option<f64>,
}

impl Latency {
    /// The total duration's quantiles of a merged rollup (measure `m`).
    pub fn of(r: &Rollup, m: usize) -> Latency {
        let ms = |q| {
            r.measures
                .get(m)
                .and_then(|x| x.quantile_us(q))
                .map(|us| (us / 100.0).round() / 10.0)
        };
        Latency {
            p50: ms(0.5),
            p95: ms(0.95),
        }
    }
}

/// A check as the status page and `/api/v1/status` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckSummary {
    /// The stored row.
    pub row: CheckRow,
    /// Its locations now.
    pub locations: Detail,
    /// Uptime over 24h, 7d, 30d and 90d.
    pub uptime: Uptimes,
    /// The 90 UTC days of the bar, oldest first.
    pub days: Vec<Day>,
    /// Latency over the last 24 hours.
    pub latency: Latency,
    /// Its objective's standing now, if it has one.
    pub slo: Option<uptime::SloStanding>,
}

/// A group of public checks as the page lists it: its id (the `/groups/{id}`
/// path and the API's `group`), its name ("" for checks outside any group),
/// and its checks in page order.
#[derive(Debug)]
pub struct Group<'a> {
    /// The id: see [`group_ids`].
    pub id: String,
    /// The name the page shows.
    pub name: &'a str,
    /// Its checks, in page order.
    pub checks: Vec<&'a CheckSummary>,
}

impl Group<'_> {
    /// Its worst check status (down over degraded over maintenance over up
    /// over no data); `Unknown` for a group whose checks all have no data.
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.row.status)
            .max_by_key(|s| uptime::severity(*s))
            .unwrap_or(Status::Unknown)
    }

    /// How many of its checks are down, degraded, in maintenance and
    /// without data, in that order; statuses no check is in left out.
    pub fn not_operational(&self) -> Vec<(Status, usize)> {
        [
            Status::Down,
            Status::Degraded,
            Status::Maintenance,
            Status::Unknown,
        ]
        .into_iter()
        .map(|s| (s, self.checks.iter().filter(|c| c.row.status == s).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// The checks by group, groups in order of their first check.
pub fn groups(checks: &[CheckSummary]) -> Vec<Group<'_>> {
    let ids = group_ids(checks.iter().map(|c| c.row.group.as_str()));
    let mut out: Vec<Group<'_>> = ids
        .into_iter()
        .map(|(name, id)| Group {
            id,
            name,
            checks: Vec::new(),
        })
        .collect();
    let index: std::collections::HashMap<&str, usize> =
        out.iter().enumerate().map(|(i, g)| (g.name, i)).collect();
    for c in checks {
        if let Some(&i) = index.get(c.row.group.as_str()) {
            out[i].checks.push(c);
        }
    }
    out
}

/// Each distinct group name of `names` (in order of first appearance) with
/// its id: the name's slug (`Core services` → `core-services`), or
/// `group-<n>` (its place, from 1) for a name with no ASCII letter or digit
/// ("" included); a second group whose id is taken gets `-2`, a third `-3`.
/// Ids follow the YAML's order, so they hold as long as the groups do.
pub fn group_ids<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut taken = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        if !seen.insert(name) {
            continue;
        }
        let base =
            config::catalog::slug(name).unwrap_or_else(|| format!("group-{}", out.len() + 1));
        let mut id = base.clone();
        let mut n = 1;
        while !taken.insert(id.clone()) {
            n += 1;
            id = format!("{base}-{n}");
        }
        out.push((name, id));
    }
    out
}

/// Everything the front page and `/api/v1/status` need.
#[derive(Clone, Debug, PartialEq)]
pub struct Board {
    /// When it was assembled.
    pub now: Millis,
    /// The banner.
    pub overall: Overall,
    /// Some checks have no data, but not more than half: the banner says
    /// "Partial data" beside its state.
    pub partial: bool,
    /// How current the data is.
    pub freshness: Freshness,
    /// The public checks, in page order.
    pub checks: Vec<CheckSummary>,
    /// Open incidents, newest first, with their updates (oldest first).
    pub open: Vec<(IncidentRow, Vec<UpdateRow>)>,
    /// Active and upcoming maintenance, soonest first (public checks only).
    pub windows: Vec<WindowRow>,
    /// The past [`HISTORY_DAYS`] UTC days, today first: each day's start
    /// and the public incidents that started on it, newest first.
    pub history: Vec<(Millis, Vec<IncidentRow>)>,
}

/// How many days of incidents the front page lists under the checks.
pub const HISTORY_DAYS: i64 = 7;

/// The past [`HISTORY_DAYS`] UTC days up to `now`, today first, each with
/// the incidents of `incidents` that started on it (newest first).
pub fn history(incidents: &[IncidentRow], now: Millis) -> Vec<(Millis, Vec<IncidentRow>)> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    (0..HISTORY_DAYS)
        .map(|back| {
            let day = today - back * DAY_MS;
            let mut those: Vec<IncidentRow> = incidents
                .iter()
                .filter(|i| i.started_at >= day && i.started_at < day + DAY_MS)
                .cloned()
                .collect();
            those.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            (day, those)
        })
        .collect()
}

/// The rows behind a [`Board`].
#[derive(Clone, Debug, Default)]
pub struct Rows {
    /// The public checks.
    pub checks: Vec<CheckRow>,
    /// Their status changes over the bar's span (and the one before).
    pub changes: Vec<(i64, Millis, Status)>,
    /// Incidents that overlap the bar's span.
    pub incidents: Vec<IncidentRow>,
    /// The open incidents.
    pub open: Vec<IncidentRow>,
    /// The open incidents' updates.
    pub updates: Vec<UpdateRow>,
    /// Maintenance that has not ended.
    pub windows: Vec<WindowRow>,
    /// Hour rollups of the last 24 hours.
    pub hours: Vec<(i64, Millis, Rollup)>,
    /// Every agent ingest has heard from.
    pub agents: Vec<AgentRow>,
}

/// The span of the bar: from the start of the oldest UTC day shown.
pub fn bar_from(now: Millis) -> Millis {
    now.div_euclid(DAY_MS) * DAY_MS - i64::from(BAR_DAYS - 1) * DAY_MS
}

/// Each location's state now, as ingest decides it: the agents ingest has
/// heard from, assigned by the same rendezvous function (the quorum plays
/// no part in the counts).
pub fn locations(c: &CheckRow, agents: &[AgentRow], now: Millis) -> Detail {
    let by: BTreeMap<i64, &Sample> = c.latest.iter().map(|s| (s.pair, s)).collect();
    let members: Vec<ingest::status::Member> = agents.iter().map(AgentRow::member).collect();
    let electorate = ingest::status::Electorate {
        check: &c.slug,
        locations: c.locations,
        members: &members,
        interval_ms: c.interval_ms,
    };
    let assigned = electorate.assigned(now, &by);
    ingest::status::decide(&by, now, Quorum::Majority, &[], &assigned).1
}

/// Assembles the board.
pub fn board(rows: Rows, now: Millis) -> Board {
    let public: std::collections::HashSet<&str> =
        rows.checks.iter().map(|c| c.slug.as_str()).collect();
    // Each check's rows, indexed once: a page of n checks reads n times
    // fewer rows per check than a scan of all of them for each (at 1,000
    // checks the scans took four fifths of the assembly).
    let mut changes: HashMap<i64, Vec<(Millis, Status)>> = HashMap::new();
    for &(id, at, status) in &rows.changes {
        changes.entry(id).or_default().push((at, status));
    }
    let mut spans: HashMap<&str, Vec<IncidentSpan>> = HashMap::new();
    for i in &rows.incidents {
        for slug in &i.checks {
            let mine = spans.entry(slug.as_str()).or_default();
            if mine.last().is_none_or(|s| s.id != i.id) {
                mine.push(span(i));
            }
        }
    }
    let mut hours: HashMap<i64, Vec<&Rollup>> = HashMap::new();
    for (id, at, r) in &rows.hours {
        if *at >= now - DAY_MS {
            hours.entry(*id).or_default().push(r);
        }
    }
    let checks: Vec<CheckSummary> = rows
        .checks
        .iter()
        .map(|c| {
            assemble(
                c,
                changes.remove(&c.id).unwrap_or_default(),
                spans.remove(c.slug.as_str()).unwrap_or_default(),
                hours.remove(&c.id).unwrap_or_default().into_iter(),
                &rows.agents,
                now,
            )
        })
        .collect();
    let statuses: Vec<Status> = checks.iter().map(|c| c.row.status).collect();
    let freshness = Freshness::of(&rows.checks);
    let overall = overall(&statuses, &rows.open, freshness.stale(now));
    let partial = overall != Overall::Unavailable && statuses.contains(&Status::Unknown);
    let open = rows
        .open
        .into_iter()
        .map(|i| {
            let ups = rows
                .updates
                .iter()
                .filter(|u| u.incident == i.id)
                .cloned()
                .collect();
            (i, ups)
        })
        .collect();
    let windows = rows
        .windows
        .into_iter()
        .filter_map(|mut w| {
            w.checks.retain(|c| public.contains(&c.as_str()));
            (!w.checks.is_empty()).then_some(w)
        })
        .collect();
    let history = history(&rows.incidents, now);
    Board {
        now,
        overall,
        partial,
        freshness,
        checks,
        open,
        windows,
        history,
    }
}

/// One check's summary.
pub fn summary(
    c: &CheckRow,
    changes: &[(i64, Millis, Status)],
    incidents: &[IncidentRow],
    hours: &[(i64, Millis, Rollup)],
    agents: &[AgentRow],
    now: Millis,
) -> CheckSummary {
    let mine: Vec<(Millis, Status)> = changes
        .iter()
        .filter(|x| x.0 == c.id)
        .map(|x| (x.1, x.2))
        .collect();
    let spans: Vec<IncidentSpan> = incidents
        .iter()
        .filter(|i| i.checks.contains(&c.slug))
        .map(span)
        .collect();
    let day = hours
        .iter()
        .filter(|h| h.0 == c.id && h.1 >= now - DAY_MS)
        .map(|h| &h.2);
    assemble(c, mine, spans, day, agents, now)
}

/// An incident's span, for the bars.
fn span(i: &IncidentRow) -> IncidentSpan {
    IncidentSpan {
        id: i.id,
        started_at: i.started_at,
        resolved_at: i.resolved_at,
    }
}

/// A check's summary from its own rows: its status changes (oldest first),
/// its incidents' spans, and its hourly rollups of the last day.
fn assemble<'r>(
    c: &CheckRow,
    mine: Vec<(Millis, Status)>,
    spans: Vec<IncidentSpan>,
    hours: impl Iterator<Item = &'r Rollup>,
    agents: &[AgentRow],
    now: Millis,
) -> CheckSummary {
    let mut day = Rollup::default();
    for r in hours {
        day.merge(r);
    }
    // The newest status change is the truth; the check row's copy of it is
    // only a convenience for SQL.
    let mut row = c.clone();
    if let Some(&(at, status)) = mine.last() {
        row.status = status;
        row.status_since = Some(at);
    }
    let observed = uptime::until_decided(&mine, c.decided_through);
    CheckSummary {
        locations: locations(c, agents, now),
        uptime: uptime::windows(&observed, c.created_at, now),
        days: uptime::days(&observed, c.created_at, &spans, now, BAR_DAYS),
        latency: Latency::of(&day, 0),
        slo: c.slo.map(|s| uptime::slo(&observed, c.created_at, s, now)),
        row,
    }
}

/// A point of a latency series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The start of its bucket.
    pub at: Millis,
    /// Its quantiles, in ms.
    pub latency: Latency,
}

/// The rollups of a 7-day hourly series: each folded hour, and the minutes
/// of every hour the leader has not folded yet (the current one, at least),
/// so the series runs up to now.
pub fn hours_and_unfolded_minutes<'r>(
    hours: &'r [(i64, Millis, Rollup)],
    minutes: &'r [(i64, Millis, Rollup)],
) -> Vec<(Millis, &'r Rollup)> {
    let folded: std::collections::BTreeSet<Millis> = hours.iter().map(|h| h.1).collect();
    hours
        .iter()
        .map(|h| (h.1, &h.2))
        .chain(
            minutes
                .iter()
                .filter(|m| !folded.contains(&m.1.div_euclid(3_600_000).saturating_mul(3_600_000)))
                .map(|m| (m.1, &m.2)),
        )
        .collect()
}

/// The rollups merged into `step` ms buckets over `[from, to)`: each
/// bucket's start and rollup (empty where there was no data).
fn buckets(
    rollups: &[(Millis, &Rollup)],
    from: Millis,
    to: Millis,
    step: Millis,
) -> impl Iterator<Item = (Millis, Rollup)> {
    let start = from.div_euclid(step) * step;
    let n = usize::try_from((to - start + step - 1) / step).unwrap_or(0);
    let mut merged = vec![Rollup::default(); n];
    for (at, r) in rollups {
        if *at >= start
            && *at < to
            && let Some(slot) = usize::try_from((at - start) / step)
                .ok()
                .and_then(|i| merged.get_mut(i))
        {
            slot.merge(r);
        }
    }
    merged
        .into_iter()
        .enumerate()
        .map(move |(i, r)| (start + i as i64 * step, r))
}

/// Merges bucketed rollups into points `step` ms apart over `[from, to)`:
/// one point per step, empty where there was no data.
pub fn series(rollups: &[(Millis, &Rollup)], from: Millis, to: Millis, step: Millis) -> Vec<Point> {
    buckets(rollups, from, to, step)
        .map(|(at, r)| Point {
            at,
            latency: Latency::of(&r, 0),
        })
        .collect()
}

/// The p50 and p95 of each phase (dns, connect, tls, ttfb, transfer) over
/// the rollups; phases never seen are left out.
pub fn phases(rollups: &[(Millis, &Rollup)]) -> Vec<(&'static str, Latency)> {
    let mut all = Rollup::default();
    for (_, r) in rollups {
        all.merge(r);
    }
    ingest::rollup::METRICS
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(m, _)| all.measures.get(*m).is_some_and(|x| x.count > 0))
        .map(|(m, name)| (*name, Latency::of(&all, m)))
        .collect()
}

/// The phases' p50 in each `step` bucket of `[from, to)`, in ms, in the
/// order of [`ingest::rollup::METRICS`] after `total` (DNS, connect, TLS,
/// time to first byte, transfer): 0 for a phase with no sample. `None` for
/// a bucket without any result.
pub fn phase_series(
    rollups: &[(Millis, &Rollup)],
    from: Millis,
    to: Millis,
    step: Millis,
) -> Vec<(Millis, Option<[f64; 5]>)> {
    buckets(rollups, from, to, step)
        .map(|(at, r)| {
            if r.count == 0 {
                return (at, None);
            }
            let mut p = [0.0; 5];
            for (k, v) in p.iter_mut().enumerate() {
                *v = Latency::of(&r, k + 1).p50.unwrap_or(0.0);
            }
            (at, Some(p))
        })
        .collect()
}

/// What the page calls an agent: its `--location-label`, else its zone;
/// never its id, a node name that carries internal addresses.
pub fn location_name(agent: Option<&crate::read::AgentRow>) -> String {
    match agent {
        Some(a) if !a.label.is_empty() => a.label.clone(),
        Some(a) if !a.zone.is_empty() => a.zone.clone(),
        _ => "unnamed location".to_string(),
    }
}

/// One location's phases over a day, as its page draws them.
#[derive(Clone, Debug, PartialEq)]
pub struct LocationPhaseSeries {
    /// What the page calls the location.
    pub name: String,
    /// Its mean phases (ms) in each bucket; `None` without results.
    pub series: Vec<(Millis, Option<[f64; 5]>)>,
    /// Its mean phases (ms) over the whole span, each result weighing the same.
    pub mean: [f64; 5],
}

/// The phases per location, where more than one location has results:
/// each location's mean phases (ms) in each `step` bucket of `[from, to)`,
/// by name.
pub fn location_phase_series(
    rows: &[crate::read::LocationPhases],
    agents: &[crate::read::AgentRow],
    from: Millis,
    to: Millis,
    step: Millis,
) -> Vec<LocationPhaseSeries> {
    let mut ids: Vec<i64> = rows.iter().map(|r| r.agent).collect();
    ids.dedup();
    if ids.len() < 2 {
        return Vec::new();
    }
    let first = from.div_euclid(step) * step;
    let ms = |r: &crate::read::LocationPhases| {
        [r.dns, r.connect, r.tls, r.ttfb, r.transfer].map(|us| us.unwrap_or(0.0) / 1000.0)
    };
    let mut out: Vec<LocationPhaseSeries> = ids
        .iter()
        .map(|id| {
            let mine: Vec<&crate::read::LocationPhases> =
                rows.iter().filter(|r| r.agent == *id).collect();
            let series = (first..to)
                .step_by(step as usize)
                .map(|at| (at, mine.iter().find(|r| r.bucket == at).map(|r| ms(r))))
                .collect();
            // Weighted by results: sum first, divide once (no rounding per bucket).
            let n: i64 = mine.iter().map(|r| r.n).sum();
            let mut mean = [0.0; 5];
            for r in &mine {
                for (m, v) in mean.iter_mut().zip(ms(r)) {
                    *m += v * r.n as f64;
                }
            }
            mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
            LocationPhaseSeries {
                name: location_name(agents.iter().find(|a| a.id == *id)),
                series,
                mean,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One location of a check, as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// What the page calls it: its `--location-label`, else its zone.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its state after its newest result.
    pub state: ingest::state::PairState,
    /// Whether it still reports (its newest result is within 3 intervals).
    pub reporting: bool,
    /// Its newest result's `scheduled_at`.
    pub at: Millis,
}

/// Each location that has probed the check, by name.
pub fn location_list(
    latest: &[Sample],
    agents: &[crate::read::AgentRow],
    now: Millis,
) -> Vec<Location> {
    let mut out: Vec<Location> = latest
        .iter()
        .map(|s| {
            let agent = agents.iter().find(|a| a.id == s.pair);
            Location {
                name: location_name(agent),
                zone: agent.map(|a| a.zone.clone()).unwrap_or_default(),
                state: s.state,
                reporting: now - s.at < ingest::status::REPORTING_INTERVALS * s.interval_ms.max(1),
                at: s.at,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Everything a check's page and `/api/v1/checks/{id}` show.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckDetail {
    /// What the front page shows of it.
    pub summary: CheckSummary,
    /// Its locations.
    pub locations: Vec<Location>,
    /// Latency over the last hour, in minute points (the current minute,
    /// partial, included).
    pub hour: Vec<Point>,
    /// Latency over the last 24 hours, in 15-minute points.
    pub day: Vec<Point>,
    /// Latency over the last 7 days, in hourly points.
    pub week: Vec<Point>,
    /// Each phase's latency over the last 24 hours.
    pub phases: Vec<(&'static str, Latency)>,
    /// The phases' p50 over the last 24 hours, in 15-minute buckets.
    pub phase_series: Vec<(Millis, Option<[f64; 5]>)>,
    /// Where several locations probe it: each one's mean phases over the
    /// last 24 hours, in 15-minute buckets, by location name.
    pub location_phases: Vec<LocationPhaseSeries>,
    /// Its incidents, newest first.
    pub incidents: Vec<IncidentRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(auto: bool, impact: &str, state: &str) -> IncidentRow {
        IncidentRow {
            id: 1,
            title: "t".into(),
            impact: impact.into(),
            state: state.into(),
            auto,
            started_at: 0,
            resolved_at: None,
            open_ms: None,
            checks: vec![],
        }
    }

    #[test]
    fn group_ids_are_slugs_in_page_order_made_unique() {
        let names = [
            "Core services",
            "",
            "Core services",
            "Core-Services",
            "日本",
            "group-2",
            "x",
        ];
        let ids: Vec<(&str, String)> = group_ids(names);
        assert_eq!(
            ids,
            [
                ("Core services", "core-services".to_string()),
                ("", "group-2".to_string()),
                ("Core-Services", "core-services-2".to_string()),
                ("日本", "group-4".to_string()),
                ("group-2", "group-2-2".to_string()),
                ("x", "x".to_string()),
            ]
        );
    }

    #[test]
    fn a_folded_group_opens_for_trouble_but_not_for_maintenance() {
        let now = 20_000 * DAY_MS;
        let row = |id: i64, group: &str, status: Status| CheckRow {
            id,
            slug: format!("c{id}"),
            name: format!("Check {id}"),
            group: group.into(),
            group_description: None,
            slo: None,
            description: None,
            kind: "tcp".into(),
            position: id,
            created_at: now - DAY_MS,
            status,
            status_since: Some(now - DAY_MS),
            interval_ms: 60_000,
            latest: vec![],
            cert_not_after: None,
            locations: None,
            decided_through: Some(now),
        };
        let checks = vec![
            row(1, "Calm", Status::Up),
            row(2, "Calm", Status::Maintenance),
            row(3, "Silent", Status::Up),
            row(4, "Silent", Status::Unknown),
            row(5, "Plain", Status::Up),
        ];
        let changes = checks
            .iter()
            .map(|c| (c.id, now - DAY_MS, c.status))
            .collect();
        let board = board(
            Rows {
                checks,
                changes,
                ..Default::default()
            },
            now,
        );
        let groups = groups(&board.checks);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].worst(), Status::Maintenance);
        assert_eq!(groups[0].not_operational(), [(Status::Maintenance, 1)]);
        assert_eq!(groups[1].worst(), Status::Up, "no data ranks below up");
        assert_eq!(groups[1].not_operational(), [(Status::Unknown, 1)]);
        let site = crate::pages::Site {
            collapse_over: 4,
            ..Default::default()
        };
        let home = crate::pages::home::page(&site, &board).into_string();
        assert!(
            home.contains("<details class=\"group collapsed\"><summary><h2>Calm</h2><span class=\"pill maintenance\">Maintenance</span><span class=\"group-count\">2 checks · 1 maintenance</span>"),
            "{home}"
        );
        assert!(
            home.contains("<details class=\"group collapsed\" open><summary><h2>Silent</h2><span class=\"pill up\">Operational</span><span class=\"group-count\">2 checks · 1 no data</span>"),
            "a check without data opens its group: {home}"
        );
        assert!(home.contains("<details class=\"group collapsed\"><summary><h2>Plain</h2><span class=\"pill up\">Operational</span><span class=\"group-count\">1 check</span>"));
        assert!(!home.contains("<rect "));
    }

    #[test]
    fn a_check_monitored_for_five_minutes_says_so_everywhere() {
        let now = 20_000 * DAY_MS + 12 * 3_600_000;
        let start = now - 5 * 60_000;
        let row = CheckRow {
            id: 1,
            slug: "api".into(),
            name: "API".into(),
            group: String::new(),
            group_description: None,
            slo: None,
            description: None,
            kind: "http".into(),
            position: 0,
            created_at: start - 1_000,
            status: Status::Up,
            status_since: Some(start),
            interval_ms: 60_000,
            latest: vec![],
            cert_not_after: None,
            locations: None,
            decided_through: Some(now),
        };
        let rows = Rows {
            checks: vec![row],
            changes: vec![(1, start, Status::Up)],
            ..Default::default()
        };
        let board = board(rows, now);
        let c = &board.checks[0];
        assert_eq!(c.uptime.d90, Some(1.0));
        assert_eq!(c.uptime.since, Some(start));
        assert_eq!(c.uptime.observed_ms.h24, 300_000);
        assert_eq!(c.uptime.observed_ms.d90, 300_000);
        // The 89 days before monitoring began are "not monitored yet";
        // today, when it began, is not.
        assert_eq!(c.days.len(), 90);
        assert!(c.days[..89].iter().all(|d| d.before_monitoring));
        assert!(!c.days[89].before_monitoring);
        assert_eq!(crate::view::day_class(&c.days[0]), "before");
        let api = crate::api::check(c);
        for window in ["24h", "7d", "30d", "90d"] {
            assert_eq!(api["observed_seconds"][window], 300, "{window}");
        }
        assert_eq!(api["monitored_since"], crate::api::instant(start));
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(start)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let home = crate::pages::home::page(&crate::pages::Site::default(), &board).into_string();
        assert!(
            home.contains(&format!("100.00% uptime since <time datetime=\"{at}\">")),
            "{home}"
        );
        assert!(!home.contains("uptime over 90 days"));
    }

    #[test]
    fn the_hourly_series_takes_the_minutes_of_hours_not_folded_yet() {
        let h = 3_600_000;
        let now = 1_000 * h + 10 * 60_000;
        let r = |ms: u64| {
            let mut r = Rollup::default();
            r.add(true, [Some(ms * 1000), None, None, None, None, None]);
            r
        };
        // The hour before is folded (and its minutes are not counted twice);
        // the current one is not, so its minutes stand for it.
        let hours = vec![(1, 999 * h, r(10))];
        let minutes = vec![
            (1, 999 * h + 30 * 60_000, r(10)),
            (1, 1_000 * h + 5 * 60_000, r(40)),
        ];
        let merged = hours_and_unfolded_minutes(&hours, &minutes);
        assert_eq!(merged.len(), 2);
        let points = series(&merged, now - 2 * h, now, h);
        let drawn: Vec<(Millis, u32)> = points
            .iter()
            .filter_map(|p| Some((p.at, p.latency.p50? as u32)))
            .collect();
        assert_eq!(drawn.len(), 2, "{points:?}");
        assert_eq!(drawn[1].0, 1_000 * h, "the current, partial hour is drawn");
        assert!(drawn[1].1 >= 35, "{drawn:?}");
    }

    #[test]
    fn overall_is_the_worst_of_the_checks() {
        use Status::*;
        assert_eq!(overall(&[], &[], false), Overall::Operational);
        assert_eq!(
            overall(&[Up, Unknown], &[], false),
            Overall::Operational,
            "half unknown is partial data, shown beside the state"
        );
        assert_eq!(
            overall(&[Up, Maintenance], &[], false),
            Overall::Maintenance
        );
        assert_eq!(
            overall(&[Degraded, Maintenance], &[], false),
            Overall::Degraded
        );
        assert_eq!(overall(&[Up, Up, Down], &[], false), Overall::PartialOutage);
        assert_eq!(overall(&[Up, Down], &[], false), Overall::PartialOutage);
        assert_eq!(overall(&[Up, Down, Down], &[], false), Overall::MajorOutage);
    }

    #[test]
    fn an_operator_incident_raises_the_banner_but_an_automatic_one_does_not() {
        let up = [Status::Up];
        let major = incident(false, "major", "investigating");
        let minor = incident(false, "minor", "identified");
        assert_eq!(
            overall(&up, std::slice::from_ref(&major), false),
            Overall::PartialOutage
        );
        assert_eq!(overall(&up, &[minor], false), Overall::Degraded);
        assert_eq!(
            overall(&up, &[incident(false, "major", "monitoring")], false),
            Overall::Operational
        );
        assert_eq!(
            overall(&up, &[incident(true, "major", "monitoring")], false),
            Overall::Operational
        );
        assert_eq!(
            overall(&[Status::Down, Status::Down], &[major], false),
            Overall::MajorOutage
        );
    }

    #[test]
    fn missing_data_is_never_operational() {
        use Status::*;
        assert_eq!(overall(&[Unknown], &[], false), Overall::Unavailable);
        assert_eq!(
            overall(&[Up, Unknown, Unknown], &[], false),
            Overall::Unavailable
        );
        assert_eq!(
            overall(&[Down, Unknown, Unknown], &[], false),
            Overall::Unavailable
        );
        assert_eq!(
            overall(&[Up, Up], &[], true),
            Overall::Unavailable,
            "stale data"
        );
        let f = Freshness {
            as_of: Some(1_000),
            stale_after: 180_000,
        };
        assert!(!f.stale(181_000) && f.stale(181_001));
        assert!(
            !Freshness::default().stale(1_000_000),
            "nothing decided yet: the unknowns say it"
        );
    }

    #[test]
    fn series_has_one_point_per_step_and_merges_buckets_inside_it() {
        let mut a = Rollup::default();
        a.add(true, [Some(10_000), None, None, None, None, None]);
        let mut b = Rollup::default();
        b.add(true, [Some(30_000), None, None, None, None, None]);
        let points = series(
            &[(0, &a), (60_000, &b), (900_000, &b)],
            0,
            1_800_000,
            900_000,
        );
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].at, 0);
        assert_eq!(points[1].at, 900_000);
        // Both results of the first step are in its point.
        assert!(points[0].latency.p95.unwrap() > points[0].latency.p50.unwrap() - 1e-9);
        assert!(points[1].latency.p50.is_some());
        let empty = series(&[], 0, 1_800_000, 900_000);
        assert!(empty.iter().all(|p| p.latency.p50.is_none()));
    }

    #[test]
    fn phases_leave_out_what_never_happened() {
        let mut a = Rollup::default();
        a.add(
            true,
            [
                Some(10_000),
                Some(1_000),
                Some(2_000),
                None,
                Some(5_000),
                Some(100),
            ],
        );
        let names: Vec<&str> = phases(&[(0, &a)]).iter().map(|p| p.0).collect();
        assert_eq!(names, ["dns", "connect", "ttfb", "transfer"]);
    }
}

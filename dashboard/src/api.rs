//! The v1 JSON API (DESIGN §4.4): the same data as the pages, as JSON.
//! Text is data here, never markup: serde escapes it for JSON, and the
//! answers are served as `application/json` with `nosniff`.

use crate::model::{Board, CheckDetail, CheckSummary, Group, Latency, Point, groups};
use crate::read::{IncidentRow, UpdateRow};
use chrono::{DateTime, SecondsFormat, Utc};
use ingest::state::Millis;
use serde_json::{Value, json};

/// An instant as RFC 3339 UTC.
pub fn instant(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn latency(l: Latency) -> Value {
    json!({"p50": l.p50, "p95": l.p95})
}

/// A check as `/api/v1/status` lists it.
pub fn check(c: &CheckSummary) -> Value {
    json!({
        "id": c.row.slug,
        "name": c.row.name,
        "group": c.row.group,
        "status": c.row.status.as_str(),
        "since": c.row.status_since.map(instant),
        "locations": {
            "assigned": c.locations.assigned,
            "reporting": c.locations.reporting,
            "failing": c.locations.failing,
        },
        "uptime": {
            "24h": c.uptime.h24,
            "7d": c.uptime.d7,
            "30d": c.uptime.d30,
            "90d": c.uptime.d90,
        },
        "observed_seconds": {
            "24h": c.uptime.observed_ms.h24 / 1000,
            "7d": c.uptime.observed_ms.d7 / 1000,
            "30d": c.uptime.observed_ms.d30 / 1000,
            "90d": c.uptime.observed_ms.d90 / 1000,
        },
        "monitored_since": c.uptime.since.map(instant),
        "latency_ms": latency(c.latency),
        "slo": c.slo.map(|s| slo(&s)),
    })
}

/// An objective's standing: the SLI over its window, the error budget in
/// seconds (remaining goes negative once overspent), and the burn rates.
fn slo(s: &ingest::uptime::SloStanding) -> Value {
    json!({
        "target": s.slo.target(),
        "window": s.slo.window(),
        "sli": s.sli,
        "error_budget": {
            "total_seconds": s.budget_ms.round() / 1000.0,
            "spent_seconds": s.spent_ms as f64 / 1000.0,
            "remaining_seconds": s.remaining_ms().round() / 1000.0,
            "remaining_ratio": s.remaining_ratio(),
        },
        "burn_rate": {"1h": s.burn_1h, "6h": s.burn_6h},
    })
}

/// An incident with its updates (oldest first).
pub fn incident(i: &IncidentRow, updates: &[UpdateRow]) -> Value {
    json!({
        "id": i.id,
        "checks": i.checks,
        "title": i.title,
        "impact": i.impact,
        "state": i.state,
        "auto": i.auto,
        "started_at": instant(i.started_at),
        "resolved_at": i.resolved_at.map(instant),
        "updates": updates.iter().filter(|u| u.incident == i.id).map(|u| json!({
            "at": instant(u.at),
            "state": u.state,
            "message": u.message,
            "author": u.author,
        })).collect::<Vec<_>>(),
    })
}

/// `/api/v1/status`: every public check.
pub fn status(board: &Board) -> Value {
    let groups = groups(&board.checks);
    let all: Vec<(&str, &CheckSummary)> = groups
        .iter()
        .flat_map(|g| g.checks.iter().map(|c| (g.id.as_str(), *c)))
        .collect();
    status_of(board, &all)
}

/// Which part of `/api/v1/status` is asked for: a group's checks (by
/// id), and a page of them.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// A group's id, or every group.
    pub group: Option<&'a str>,
    /// The page, from 1.
    pub page: usize,
    /// Checks per page.
    pub limit: usize,
}

/// `/api/v1/status?group=&page=&limit=`: the same object, with only the
/// part's checks, and what part of how many it is (`pagination`; `group`
/// too when one is asked for). The status and open incidents stay the
/// whole page's. `None` for a group that does not exist or a page past the
/// last (a page of no checks is a 404, never an empty list that reads as
/// "nothing to show").
pub fn status_part(board: &Board, part: Part<'_>) -> Option<Value> {
    let groups = groups(&board.checks);
    let chosen: Vec<&Group<'_>> = match part.group {
        Some(id) => vec![groups.iter().find(|g| g.id == id)?],
        None => groups.iter().collect(),
    };
    let all: Vec<(&str, &CheckSummary)> = chosen
        .iter()
        .flat_map(|g| g.checks.iter().map(|c| (g.id.as_str(), *c)))
        .collect();
    let total = all.len();
    let pages = total.div_ceil(part.limit).max(1);
    if part.page > pages {
        return None;
    }
    let shown: Vec<(&str, &CheckSummary)> = all
        .into_iter()
        .skip((part.page - 1) * part.limit)
        .take(part.limit)
        .collect();
    let mut v = status_of(board, &shown);
    if let Value::Object(map) = &mut v {
        if let (Some(_), [g]) = (part.group, chosen.as_slice()) {
            map.insert(
                "group".into(),
                json!({"id": g.id, "name": g.name, "status": g.worst().as_str()}),
            );
        }
        map.insert(
            "pagination".into(),
            json!({"page": part.page, "limit": part.limit, "total": total, "pages": pages}),
        );
    }
    Some(v)
}

fn status_of(board: &Board, checks: &[(&str, &CheckSummary)]) -> Value {
    json!({
        "status": board.overall.as_str(),
        "partial_data": board.partial,
        "data_as_of": board.freshness.as_of.map(instant),
        "checks": checks.iter().map(|(group, c)| {
            let mut v = check(c);
            if let Value::Object(map) = &mut v {
                map.insert("group_id".into(), Value::from(*group));
            }
            v
        }).collect::<Vec<_>>(),
        "open_incidents": board.open.iter().map(|(i, u)| incident(i, u)).collect::<Vec<_>>(),
    })
}

fn series(points: &[Point]) -> Vec<Value> {
    points
        .iter()
        .map(|p| json!({"at": instant(p.at), "p50": p.latency.p50, "p95": p.latency.p95}))
        .collect()
}

/// `/api/v1/checks/{id}`: the status entry, plus the 90 days, the latency
/// series (the last hour in minute points, only those with data; 24 hours
/// in 15-minute points; 7 days hourly, each up to now), the phases, the
/// locations and the certificate expiry.
pub fn check_detail(d: &CheckDetail) -> Value {
    let mut v = check(&d.summary);
    if let Value::Object(map) = &mut v {
        map.insert(
            "days".into(),
            d.summary
                .days
                .iter()
                .map(|day| {
                    json!({
                        "date": day.date.to_string(),
                        "uptime": day.uptime,
                        "status": day.worst.map(|s| s.as_str()),
                        "incidents": day.incidents,
                    })
                })
                .collect(),
        );
        // The last hour leaves out minutes without data.
        let hour: Vec<Point> = d
            .hour
            .iter()
            .filter(|p| p.latency.p50.is_some())
            .copied()
            .collect();
        map.insert(
            "latency".into(),
            json!({"1h": series(&hour), "24h": series(&d.day), "7d": series(&d.week)}),
        );
        map.insert(
            "phases_ms".into(),
            d.phases
                .iter()
                .map(|(name, l)| ((*name).to_string(), latency(*l)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        map.insert(
            "location_states".into(),
            d.locations
                .iter()
                .map(|l| {
                    json!({
                        "name": l.name,
                        "zone": l.zone,
                        "state": match l.state {
                            ingest::state::PairState::Passing => "passing",
                            ingest::state::PairState::Degraded => "degraded",
                            ingest::state::PairState::Failing => "failing",
                        },
                        "reporting": l.reporting,
                        "last_result_at": instant(l.at),
                    })
                })
                .collect(),
        );
        map.insert(
            "certificate_expires_at".into(),
            d.summary.row.cert_not_after.map(instant).into(),
        );
    }
    v
}

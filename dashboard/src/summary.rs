//! `GET /api/v2/summary.json`, shaped like Atlassian Statuspage's public
//! summary, so aggregators and widgets made for it read this page too.
//!
//! Checks are components and groups are component groups (ids
//! `group-<hash>`); open incidents and active or upcoming maintenance are
//! listed with their updates. Our statuses map onto Statuspage's:
//! up → operational, degraded → degraded_performance, down → major_outage,
//! maintenance → under_maintenance, and unknown → operational with the
//! description "No data" (Statuspage has no "unknown"; a silent probe fleet
//! is not the target's outage).

use crate::api::instant;
use crate::model::{Board, Overall, groups};
use crate::pages::Site;
use ingest::status::Status;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The page id (Statuspage has one per page).
const PAGE_ID: &str = "statuspage";

fn component_status(s: Status) -> &'static str {
    match s {
        Status::Up | Status::Unknown => "operational",
        Status::Degraded => "degraded_performance",
        Status::Down => "major_outage",
        Status::Maintenance => "under_maintenance",
    }
}

/// Statuspage's page indicator and its words.
pub fn indicator(o: Overall) -> (&'static str, &'static str) {
    match o {
        Overall::Operational => ("none", "All Systems Operational"),
        Overall::Degraded => ("minor", "Minor Service Outage"),
        Overall::PartialOutage => ("major", "Partial System Outage"),
        Overall::MajorOutage => ("critical", "Major System Outage"),
        Overall::Maintenance => ("maintenance", "Service Under Maintenance"),
        // Statuspage has no word for it; `none` with our own description.
        Overall::Unavailable => ("none", "Status unavailable"),
    }
}

/// A stable id for a group, from its name.
pub fn group_id(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("group-{hex}")
}

/// The worst status of a group's checks, as a component status.
fn group_status(statuses: &[Status]) -> &'static str {
    let worst = statuses
        .iter()
        .copied()
        .max_by_key(|s| ingest::uptime::severity(*s))
        .unwrap_or(Status::Up);
    component_status(worst)
}

/// The summary.
pub fn summary(site: &Site, board: &Board) -> Value {
    let updated = instant(board.now);
    let mut components = Vec::new();
    let mut position = 0;
    for g in groups(&board.checks) {
        let (group, checks) = (g.name, g.checks);
        let gid = (!group.is_empty()).then(|| group_id(group));
        for c in &checks {
            position += 1;
            let description = match c.row.status {
                Status::Unknown => Some("No data".to_string()),
                _ => c.row.description.clone(),
            };
            components.push(json!({
                "id": c.row.slug,
                "name": c.row.name,
                "status": component_status(c.row.status),
                "created_at": instant(c.row.created_at),
                "updated_at": instant(c.row.status_since.unwrap_or(c.row.created_at)),
                "position": position,
                "description": description,
                "showcase": true,
                "start_date": null,
                "group_id": gid,
                "page_id": PAGE_ID,
                "group": false,
                "only_show_if_degraded": false,
            }));
        }
        if let Some(gid) = gid {
            position += 1;
            let statuses: Vec<Status> = checks.iter().map(|c| c.row.status).collect();
            let created = checks
                .iter()
                .map(|c| c.row.created_at)
                .min()
                .unwrap_or(board.now);
            components.push(json!({
                "id": gid,
                "name": group,
                "status": group_status(&statuses),
                "created_at": instant(created),
                "updated_at": updated,
                "position": position,
                "description": null,
                "showcase": false,
                "start_date": null,
                "group_id": null,
                "page_id": PAGE_ID,
                "group": true,
                "only_show_if_degraded": false,
                "components": checks.iter().map(|c| c.row.slug.clone()).collect::<Vec<_>>(),
            }));
        }
    }
    let component_ref = |slug: &String| {
        components
            .iter()
            .find(|c| c["id"] == slug.as_str())
            .cloned()
    };
    let incidents: Vec<Value> = board
        .open
        .iter()
        .map(|(i, updates)| {
            let id = i.id.to_string();
            let last = updates.last().map_or(i.started_at, |u| u.at);
            let monitoring = updates
                .iter()
                .rev()
                .find(|u| u.state == "monitoring")
                .map(|u| instant(u.at));
            json!({
                "id": id,
                "name": i.title,
                "status": i.state,
                "created_at": instant(i.started_at),
                "updated_at": instant(last),
                "monitoring_at": monitoring,
                "resolved_at": i.resolved_at.map(instant),
                "impact": i.impact,
                "shortlink": format!("{}/incidents/{}", site.public_url, i.id),
                "started_at": instant(i.started_at),
                "page_id": PAGE_ID,
                "incident_updates": updates.iter().enumerate().rev().map(|(n, u)| json!({
                    "id": format!("{}-{}", i.id, n + 1),
                    "status": u.state,
                    "body": u.message,
                    "incident_id": id,
                    "created_at": instant(u.at),
                    "updated_at": instant(u.at),
                    "display_at": instant(u.at),
                    "affected_components": null,
                    "deliver_notifications": true,
                    "custom_tweet": null,
                    "tweet_id": null,
                })).collect::<Vec<_>>(),
                "components": i.checks.iter().filter_map(component_ref).collect::<Vec<_>>(),
            })
        })
        .collect();
    let maintenances: Vec<Value> = board
        .windows
        .iter()
        .map(|w| {
            let status = if w.starts_at <= board.now {
                "in_progress"
            } else {
                "scheduled"
            };
            let id = format!("maintenance-{}", w.id);
            json!({
                "id": id,
                "name": w.name,
                "status": status,
                "created_at": instant(w.starts_at.min(board.now)),
                "updated_at": instant(w.starts_at.min(board.now)),
                "monitoring_at": null,
                "resolved_at": null,
                "impact": "maintenance",
                "shortlink": format!("{}/", site.public_url),
                "started_at": instant(w.starts_at),
                "page_id": PAGE_ID,
                "incident_updates": [{
                    "id": format!("{id}-1"),
                    "status": status,
                    "body": w.description.clone().unwrap_or_else(|| w.name.clone()),
                    "incident_id": id,
                    "created_at": instant(w.starts_at.min(board.now)),
                    "updated_at": instant(w.starts_at.min(board.now)),
                    "display_at": instant(w.starts_at.min(board.now)),
                    "affected_components": null,
                    "deliver_notifications": true,
                    "custom_tweet": null,
                    "tweet_id": null,
                }],
                "components": w.checks.iter().filter_map(component_ref).collect::<Vec<_>>(),
                "scheduled_for": instant(w.starts_at),
                "scheduled_until": instant(w.ends_at),
            })
        })
        .collect();
    let (indicator, description) = indicator(board.overall);
    json!({
        "page": {
            "id": PAGE_ID,
            "name": site.title,
            "url": site.public_url,
            "time_zone": "Etc/UTC",
            "updated_at": updated,
        },
        "status": {"indicator": indicator, "description": description},
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": maintenances,
    })
}

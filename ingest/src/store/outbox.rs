//! The notification outbox, written once for both databases.
//!
//! - An **event** is written in the transaction of the change that causes
//!   it ([`incident_event`]), with an id derived from that change; the
//!   maintenance events come due with time, and are written once each by
//!   whichever replica sees them first ([`maintenance_events`]).
//! - [`Store::expand_events`] turns each event into one **delivery** per
//!   matching channel (unique on event and channel), outside the check locks.
//! - [`Store::lease_deliveries`] leases due deliveries (sets `locked_until`
//!   and commits); the sender sends with no transaction open, then
//!   [`Store::finish_delivery`] marks the outcome, only if its lease (the
//!   attempt number) is still the row's.
//! - Within one subject (an incident) and channel, a delivery is leased
//!   only once every earlier one is delivered or has finally failed.

use super::sql::{Arg, Conn, Dialect};
use super::{Store, StoreError};
use crate::state::Millis;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

/// The delivery target that stands for every subscriber of an event.
pub const AUDIENCE: &str = "@subscribers";

/// An instant as the API shows it: RFC 3339, UTC, seconds.
pub fn instant(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What happened to an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentEvent {
    /// `incident.opened`
    Opened,
    /// `incident.updated`
    Updated,
    /// `incident.resolved`
    Resolved,
    /// `incident.reopened`
    Reopened,
}

impl IncidentEvent {
    /// The event type.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentEvent::Opened => "incident.opened",
            IncidentEvent::Updated => "incident.updated",
            IncidentEvent::Resolved => "incident.resolved",
            IncidentEvent::Reopened => "incident.reopened",
        }
    }
}

#[derive(sqlx::FromRow)]
struct IncidentFacts {
    title: String,
    impact: String,
    state: String,
    auto: bool,
    started_at: i64,
    resolved_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct UpdateFacts {
    at: i64,
    state: String,
    message: String,
    author: String,
}

/// Writes the event of incident `incident`'s update `update` in the
/// transaction that wrote them: its id is `incident-{incident}-{update}`,
/// so a transaction run again makes no second event.
pub async fn incident_event(
    conn: &mut Conn<'_>,
    incident: i64,
    update: i64,
    kind: IncidentEvent,
) -> Result<(), StoreError> {
    let d = conn.dialect();
    let facts: Vec<IncidentFacts> = conn
        .rows(
            &format!(
                "SELECT title, impact, state, auto, {} AS started_at, {} AS resolved_at
                 FROM incidents WHERE id = {}",
                d.ms("started_at"),
                d.ms("resolved_at"),
                d.p(1)
            ),
            &[Arg::Int(incident)],
        )
        .await?;
    let checks: Vec<(String, String)> = conn
        .rows(
            &format!(
                "SELECT c.slug, c.name FROM incident_checks ic JOIN checks c ON c.id = ic.check_id
                 WHERE ic.incident_id = {} ORDER BY c.slug",
                d.p(1)
            ),
            &[Arg::Int(incident)],
        )
        .await?;
    let updates: Vec<UpdateFacts> = conn
        .rows(
            &format!(
                "SELECT {} AS at, state, message, author FROM incident_updates WHERE id = {}",
                d.ms("at"),
                d.p(1)
            ),
            &[Arg::Int(update)],
        )
        .await?;
    let (Some(i), Some(u)) = (facts.first(), updates.first()) else {
        return Err(StoreError::Corrupt(format!(
            "incident {incident} or its update {update} is gone"
        )));
    };
    let data = json!({
        "incident": {
            "id": incident,
            "title": i.title,
            "impact": i.impact,
            "state": i.state,
            "auto": i.auto,
            "started_at": instant(i.started_at),
            "resolved_at": i.resolved_at.map(instant),
            "checks": checks.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        },
        "update": {
            "at": instant(u.at),
            "state": u.state,
            "message": u.message,
            "author": u.author,
        },
    });
    let event = Event {
        id: format!("incident-{incident}-{update}"),
        kind: kind.as_str(),
        at: u.at,
        subject: format!("incident-{incident}"),
        seq: update,
        data: data.to_string(),
    };
    insert_event(conn, &event, true).await?;
    Ok(())
}

/// One row of `events`, to insert.
pub(super) struct Event<'a> {
    pub id: String,
    pub kind: &'a str,
    pub at: Millis,
    pub subject: String,
    pub seq: i64,
    pub data: String,
}

/// Inserts `event`; with `once`, a row of the same id already there is left
/// as it is (which needs `SELECT` on `events`), and 0 is returned.
pub(super) async fn insert_event(
    conn: &mut Conn<'_>,
    event: &Event<'_>,
    once: bool,
) -> Result<u64, StoreError> {
    let d = conn.dialect();
    let conflict = if once {
        "ON CONFLICT (id) DO NOTHING"
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO events (id, type, at, subject, seq, data) VALUES ({}, {}, {}, {}, {}, {}) {conflict}",
        d.p(1),
        d.p(2),
        d.at(3),
        d.p(4),
        d.p(5),
        d.p(6)
    );
    let args = [
        Arg::Text(event.id.clone()),
        Arg::Text(event.kind.into()),
        Arg::Int(event.at),
        Arg::Text(event.subject.clone()),
        Arg::Int(event.seq),
        Arg::Text(event.data.clone()),
    ];
    Ok(conn.exec(&sql, &args).await?)
}

#[derive(sqlx::FromRow)]
struct WindowFacts {
    id: i64,
    source: String,
    name: String,
    description: Option<String>,
    checks: String,
    starts_at: i64,
    ends_at: i64,
}

/// The maintenance events due at `now`, written once each (their ids are
/// `maintenance-{window}-{kind}`): `scheduled` for every window not yet
/// ended, `starting` within `lead` of its start, `started` while it runs,
/// `completed` once it has ended (within the hour). Idempotent, so any
/// replica may run it at any time; returns how many were new.
pub async fn maintenance_events(
    conn: &mut Conn<'_>,
    now: Millis,
    lead: Millis,
) -> Result<u64, StoreError> {
    let d = conn.dialect();
    let windows: Vec<WindowFacts> = conn
        .rows(
            &format!(
                "SELECT {} AS id, source, name, description, {} AS checks, {} AS starts_at,
                        {} AS ends_at
                 FROM maintenance_windows WHERE ends_at > {} ORDER BY id",
                d.int("id"),
                d.json_list("checks"),
                d.ms("starts_at"),
                d.ms("ends_at"),
                d.at(1)
            ),
            &[Arg::Int(now - 3_600_000)],
        )
        .await?;
    let mut made = 0;
    for w in windows {
        let slugs: Vec<String> = serde_json::from_str(&w.checks).unwrap_or_default();
        let mut kinds = vec![("scheduled", 1, now.min(w.starts_at))];
        if now >= w.starts_at - lead && now < w.starts_at {
            kinds.push(("starting", 2, w.starts_at - lead));
        }
        if now >= w.starts_at && now < w.ends_at {
            kinds.push(("started", 3, w.starts_at));
        }
        if now >= w.ends_at {
            kinds.push(("completed", 4, w.ends_at));
        }
        let names: Vec<(String, String)> = conn
            .rows(
                &format!(
                    "SELECT slug, name FROM checks WHERE slug IN ({}) ORDER BY slug",
                    d.list(1)
                ),
                &[Arg::list(&slugs)],
            )
            .await?;
        let checks: Vec<serde_json::Value> = slugs
            .iter()
            .map(|slug| {
                let name = names
                    .iter()
                    .find(|n| &n.0 == slug)
                    .map_or(slug.as_str(), |n| n.1.as_str());
                json!({"id": slug, "name": name})
            })
            .collect();
        let data = json!({
            "window": {
                "id": w.id,
                "source": w.source,
                "name": w.name,
                "description": w.description,
                "checks": checks,
                "starts_at": instant(w.starts_at),
                "ends_at": instant(w.ends_at),
            },
        })
        .to_string();
        for (kind, seq, at) in kinds {
            let kind_name = format!("maintenance.{kind}");
            let event = Event {
                id: format!("maintenance-{}-{kind}", w.id),
                kind: &kind_name,
                at,
                subject: format!("maintenance-{}", w.id),
                seq,
                data: data.clone(),
            };
            made += insert_event(conn, &event, true).await?;
        }
    }
    Ok(made)
}

/// Changes older than this when decided (a recompute of old history) send
/// no `check.status_changed`: they are news to nobody.
const CHECK_EVENT_HORIZON: Millis = 3_600_000;

/// Writes a `check.status_changed` event for each recent change of
/// `check`, in the transaction that decided it: `check-{id}-{at}-{status}`,
/// so a change decided again (a recompute) makes no second event.
pub(crate) async fn check_events(
    conn: &mut Conn<'_>,
    check: &super::CheckRow,
    changes: &[crate::status::Change],
) -> Result<(), StoreError> {
    let d = conn.dialect();
    let horizon = chrono::Utc::now().timestamp_millis() - CHECK_EVENT_HORIZON;
    for c in changes.iter().filter(|c| c.at >= horizon) {
        let data = json!({
            "check": {"id": check.slug, "name": check.name},
            "status": c.status.as_str(),
            "at": instant(c.at),
            "locations": {
                "assigned": c.detail.assigned,
                "reporting": c.detail.reporting,
                "failing": c.detail.failing,
            },
        });
        conn.exec(
            &format!(
                "INSERT INTO events (id, type, at, subject, seq, data)
                 VALUES ({}, 'check.status_changed', {}, {}, {}, {}) ON CONFLICT (id) DO NOTHING",
                d.p(1),
                d.at(2),
                d.p(3),
                d.p(2),
                d.p(4)
            ),
            &[
                Arg::Text(format!("check-{}-{}-{}", check.id, c.at, c.status.as_str())),
                Arg::Int(c.at),
                Arg::Text(format!("check-{}", check.id)),
                Arg::Text(data.to_string()),
            ],
        )
        .await?;
    }
    Ok(())
}

/// An event not yet expanded into deliveries.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    /// Its id.
    pub id: String,
    /// Its type (`incident.opened`).
    pub kind: String,
    /// When it happened, in ms.
    pub at: i64,
    /// What orders its deliveries (`incident-12`).
    pub subject: String,
    /// Its order within the subject.
    pub seq: i64,
    /// Its data, JSON.
    pub data: String,
    /// Only this channel, else every matching one.
    #[sqlx(rename = "only_channel")]
    pub channel: Option<String>,
}

/// The two delivery queues: operator channels, and subscriber mail (sent
/// at its own rate, so a fan-out never delays an operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// `deliveries`: one row per event and channel.
    Operators,
    /// `subscriber_deliveries`: one row per event and subscription.
    Subscribers,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Queue::Operators => "deliveries",
            Queue::Subscribers => "subscriber_deliveries",
        }
    }

    /// Whom a row is for: rows for one recipient and subject go in order.
    fn recipient(self) -> &'static str {
        match self {
            Queue::Operators => "channel",
            Queue::Subscribers => "subscription_id",
        }
    }

    fn order(self) -> &'static str {
        match self {
            Queue::Operators => "d.due_at, d.id",
            // Confirmations first: a fan-out never delays one.
            Queue::Subscribers => "d.priority, d.due_at, d.id",
        }
    }

    fn leased_columns(self, d: Dialect) -> String {
        match self {
            Queue::Operators => format!("d.channel, {} AS subscription_id", d.int("NULL")),
            Queue::Subscribers => format!(
                "'{}' AS channel, {} AS subscription_id",
                AUDIENCE,
                d.int("d.subscription_id")
            ),
        }
    }
}

/// A delivery leased to this worker.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Leased {
    /// The delivery's id.
    #[sqlx(rename = "delivery_id")]
    pub id: i64,
    /// The channel's name ([`AUDIENCE`] for subscriber mail).
    pub channel: String,
    /// The subscription, for subscriber mail.
    pub subscription_id: Option<i64>,
    /// This attempt (1-based): the lease's token.
    pub attempt: i64,
    /// The event.
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// What came of one attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The receiver took it.
    Delivered,
    /// Try again at this instant (ms).
    Retry {
        /// When.
        at: Millis,
        /// Why this attempt failed (no secret in it).
        error: String,
    },
    /// Never again.
    Failed {
        /// Why (no secret in it).
        error: String,
    },
}

/// A delivery as the admin API lists it.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// The channel's name.
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it is due next (pending), ms.
    pub due_at: i64,
    /// When it was delivered or finally failed, ms.
    pub done_at: Option<i64>,
}

/// The pending deliveries, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Rows pending.
    pub pending: i64,
    /// How long the oldest pending row has waited, in ms (0 for none).
    pub oldest_ms: i64,
}

fn event_columns(d: Dialect, e: &str) -> String {
    format!(
        "{e}.id, {e}.type AS kind, {} AS at, {e}.subject, {} AS seq, {e}.data,
         {e}.channel AS only_channel",
        d.ms(&format!("{e}.at")),
        d.int(&format!("{e}.seq"))
    )
}

impl Store {
    /// Expands up to `limit` events into deliveries, one per channel that
    /// `route` names for each; returns how many events were expanded.
    pub async fn expand_events(
        &self,
        route: &(dyn Fn(&EventRow) -> Vec<String> + Sync),
        now: Millis,
        limit: i64,
    ) -> Result<usize, StoreError> {
        self.within(
            "expanding events",
            transaction!(self, tx => {
                let d = tx.dialect();
                let events: Vec<EventRow> = tx
                    .rows(
                        &format!(
                            "SELECT {} FROM events e WHERE NOT e.expanded ORDER BY e.seq LIMIT {}{}",
                            event_columns(d, "e"),
                            d.p(1),
                            d.skip_locked()
                        ),
                        &[Arg::Int(limit)],
                    )
                    .await?;
                // Every (event, channel) pair in one statement.
                let pairs: Vec<(String, String)> = events
                    .iter()
                    .flat_map(|e| route(e).into_iter().map(|c| (e.id.clone(), c)))
                    .collect();
                if !pairs.is_empty() {
                    tx.exec(
                        &format!(
                            "INSERT INTO deliveries (event_id, channel, subject, seq, due_at)
                             SELECT p.event_id, p.channel, e.subject, e.seq, {}
                             FROM ({}) p JOIN events e ON e.id = p.event_id
                             WHERE true ON CONFLICT (event_id, channel) DO NOTHING",
                            d.at(2),
                            d.text_pairs(1, "event_id", "channel")
                        ),
                        &[Arg::text_pairs(&pairs), Arg::Int(now)],
                    )
                    .await?;
                }
                let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
                tx.exec(
                    &format!(
                        "UPDATE events SET expanded = true WHERE id IN ({})",
                        d.list(1)
                    ),
                    &[Arg::list(&ids)],
                )
                .await?;
                events.len()
            }),
        )
        .await
    }

    /// Writes the maintenance events due at `now` (see [`maintenance_events`]).
    pub async fn write_maintenance_events(
        &self,
        now: Millis,
        lead: Millis,
    ) -> Result<u64, StoreError> {
        self.within(
            "writing maintenance events",
            transaction!(self, tx => maintenance_events(&mut tx.conn(), now, lead).await?),
        )
        .await
    }

    /// Leases up to `limit` due deliveries for `lease` ms: each is the
    /// oldest pending one of its subject and channel, and not leased by a
    /// live worker. Its attempt count goes up by one, which is the lease's
    /// token for [`Store::finish_delivery`].
    pub async fn lease_deliveries(
        &self,
        queue: Queue,
        now: Millis,
        lease: Millis,
        limit: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let (table, whom) = (queue.table(), queue.recipient());
        self.within(
            "leasing deliveries",
            transaction!(self, tx => {
                let d = tx.dialect();
                let due: Vec<(i64,)> = tx
                    .rows(
                        &format!(
                            "SELECT {} FROM {table} d
                             WHERE d.state = 'pending' AND d.due_at <= {}
                               AND (d.locked_until IS NULL OR d.locked_until <= {})
                               AND NOT EXISTS (SELECT 1 FROM {table} o
                                   WHERE o.{whom} = d.{whom} AND o.subject = d.subject
                                     AND o.state = 'pending' AND o.seq < d.seq)
                             ORDER BY {} LIMIT {}{}",
                            d.int("d.id"),
                            d.at(1),
                            d.at(1),
                            queue.order(),
                            d.p(2),
                            d.skip_locked()
                        ),
                        &[Arg::Int(now), Arg::Int(limit)],
                    )
                    .await?;
                if due.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<i64> = due.iter().map(|r| r.0).collect();
                tx.exec(
                    &format!(
                        "UPDATE {table} SET locked_until = {}, attempts = attempts + 1
                         WHERE id IN ({})",
                        d.at(1),
                        d.int_list(2)
                    ),
                    &[Arg::Int(now + lease), Arg::ints(&ids)],
                )
                .await?;
                let leased: Vec<Leased> = tx
                    .rows(
                        &format!(
                            "SELECT {} AS delivery_id, {}, {} AS attempt, {}
                             FROM {table} d JOIN events e ON e.id = d.event_id
                             WHERE d.id IN ({}) ORDER BY e.seq, d.{whom}",
                            d.int("d.id"),
                            queue.leased_columns(d),
                            d.int("d.attempts"),
                            event_columns(d, "e"),
                            d.int_list(1)
                        ),
                        &[Arg::ints(&ids)],
                    )
                    .await?;
                leased
            }),
        )
        .await
    }

    /// Marks attempt `attempt` of delivery `id`; false when its lease was
    /// lost (another worker took the row over), and nothing was changed.
    pub async fn finish_delivery(
        &self,
        queue: Queue,
        id: i64,
        attempt: i64,
        outcome: &Outcome,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let kept = self
            .finish_deliveries(queue, &[(id, attempt, outcome.clone())], now)
            .await?;
        Ok(kept.first().copied().unwrap_or(false))
    }

    /// Marks several attempts `(delivery, attempt, outcome)` in one commit;
    /// for each, false when its lease was lost and it was left as it was.
    pub async fn finish_deliveries(
        &self,
        queue: Queue,
        marks: &[(i64, i64, Outcome)],
        now: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        let table = queue.table();
        self.within(
            "marking deliveries",
            transaction!(self, tx => {
                let d = tx.dialect();
                // The delivered ones (the usual case) in one statement.
                let delivered: Vec<[i64; 2]> = marks
                    .iter()
                    .filter(|m| matches!(m.2, Outcome::Delivered))
                    .map(|m| [m.0, m.1])
                    .collect();
                let mut done: Vec<i64> = Vec::new();
                if !delivered.is_empty() {
                    let rows: Vec<(i64,)> = tx
                        .rows(
                            &format!(
                                "UPDATE {table} SET state = 'delivered', done_at = {},
                                     locked_until = NULL, last_error = NULL
                                 WHERE state = 'pending' AND id IN
                                     (SELECT t.id FROM ({}) t
                                      WHERE t.id = {table}.id AND t.attempt = {table}.attempts)
                                 RETURNING {}",
                                d.at(2),
                                d.tuples(1, &["id", "attempt"]),
                                d.int("id")
                            ),
                            &[Arg::tuples(delivered), Arg::Int(now)],
                        )
                        .await?;
                    done.extend(rows.into_iter().map(|r| r.0));
                }
                let mut kept = Vec::with_capacity(marks.len());
                for (id, attempt, outcome) in marks {
                    let (set, args) = match outcome {
                        Outcome::Delivered => {
                            kept.push(done.contains(id));
                            continue;
                        }
                        Outcome::Retry { at, error } => (
                            format!("due_at = {}, locked_until = NULL, last_error = {}", d.at(3), d.p(4)),
                            vec![Arg::Int(*at), Arg::Text(error.clone())],
                        ),
                        Outcome::Failed { error } => (
                            format!(
                                "state = 'failed', done_at = {}, locked_until = NULL, last_error = {}",
                                d.at(3),
                                d.p(4)
                            ),
                            vec![Arg::Int(now), Arg::Text(error.clone())],
                        ),
                    };
                    let mut all = vec![Arg::Int(*id), Arg::Int(*attempt)];
                    all.extend(args);
                    let changed = tx
                        .exec(
                            &format!(
                                "UPDATE {table} SET {set}
                                 WHERE id = {} AND attempts = {} AND state = 'pending'",
                                d.p(1),
                                d.p(2)
                            ),
                            &all,
                        )
                        .await?;
                    kept.push(changed == 1);
                }
                kept
            }),
        )
        .await
    }

    /// How many deliveries are pending, and how long the oldest has waited.
    pub async fn outbox_backlog(&self, now: Millis) -> Result<Backlog, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        let rows: Vec<(i64, Option<i64>)> = self
            .within("reading the outbox", async {
                Ok(pool
                    .rows(
                        &format!(
                            "SELECT count(*), min({}) FROM deliveries d
                             JOIN events e ON e.id = d.event_id WHERE d.state = 'pending'",
                            d.ms("e.at")
                        ),
                        &[],
                    )
                    .await?)
            })
            .await?;
        let (pending, oldest) = rows.first().copied().unwrap_or((0, None));
        Ok(Backlog {
            pending,
            oldest_ms: oldest.map_or(0, |at| (now - at).max(0)),
        })
    }

    /// The newest deliveries, newest first, for the admin API.
    pub async fn deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        self.within("listing deliveries", async {
            Ok(pool
                .rows(
                    &format!(
                        "SELECT {} AS id, d.event_id, e.type, d.channel, d.state,
                                {} AS attempts, d.last_error, {} AS due_at, {} AS done_at
                         FROM deliveries d JOIN events e ON e.id = d.event_id
                         ORDER BY d.id DESC LIMIT {}",
                        d.int("d.id"),
                        d.int("d.attempts"),
                        d.ms("d.due_at"),
                        d.ms("d.done_at"),
                        d.p(1)
                    ),
                    &[Arg::Int(limit)],
                )
                .await?)
        })
        .await
    }

    /// Deletes deliveries done before `cutoff`, and events before it that
    /// have no delivery left.
    pub async fn prune_outbox(&self, cutoff: Millis) -> Result<u64, StoreError> {
        self.delete_before(
            "pruning the outbox",
            &[
                (
                    "DELETE FROM deliveries WHERE state <> 'pending' AND done_at < {cutoff}",
                    cutoff,
                ),
                (
                    "DELETE FROM events WHERE expanded AND at < {cutoff}
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)
                     AND NOT EXISTS (SELECT 1 FROM subscriber_deliveries s
                                     WHERE s.event_id = events.id)",
                    cutoff,
                ),
            ],
        )
        .await
    }
}

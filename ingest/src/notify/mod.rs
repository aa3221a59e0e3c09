//! Notifications: the workers that expand outbox events into deliveries
//! and send them (see [`crate::store::outbox`] for the tables).
//!
//! Any replica may deliver: a worker leases due rows, sends with no
//! transaction open, and marks the outcome only while its lease is still
//! the row's. A worker that dies mid-send leaves its lease to expire; the
//! row is then taken over, and the receiver may see that id twice, with
//! the same body. Workers wake on an in-process signal (any change this
//! process commits) and poll every second for the rest.

pub mod format;
pub mod mail;
pub mod send;
pub mod subscribers;
pub mod token;

use crate::consume::Clock;
use crate::store::Store;
use crate::store::outbox::{EventRow, Leased, Outcome, Queue};
use crate::store::subscriptions::AUDIENCE;
use config::Catalog;
use config::notify::{EventFamily, Facts};
use futures_util::StreamExt;
use metrics::{counter, gauge};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// The Standard Webhooks retry schedule: the wait before each attempt.
pub const SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How the workers run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The public page, for the links events carry.
    pub public_url: Option<url::Url>,
    /// The page's title, in subscriber mail.
    pub title: Option<String>,
    /// The wait before each attempt (the first is usually zero); past the
    /// last, a delivery has finally failed.
    pub schedule: Vec<Duration>,
    /// How long a lease lasts: longer than a request's deadline.
    pub lease: Duration,
    /// Each request's deadline.
    pub request_deadline: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Delivered and failed rows are deleted this long after.
    pub keep: Duration,
    /// How long before a maintenance window `maintenance.starting` is sent.
    pub maintenance_lead: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: None,
            title: None,
            schedule: SCHEDULE.to_vec(),
            lease: Duration::from_secs(60),
            request_deadline: Duration::from_secs(10),
            concurrency: 8,
            keep: Duration::from_secs(30 * 86_400),
            maintenance_lead: Duration::from_secs(3600),
        }
    }
}

/// Metric names (a contract: the README and the alert rules use them).
pub const DELIVERIES: &str = "statuspage_notifications_deliveries_total";
/// Attempts by channel and result.
pub const ATTEMPTS: &str = "statuspage_notifications_attempts_total";
/// Rows pending.
pub const PENDING: &str = "statuspage_notifications_pending";
/// The age of the oldest pending row.
pub const OLDEST: &str = "statuspage_notifications_oldest_pending_seconds";

/// The channels that hear `event`, by name: a test event its one channel;
/// else the routes' choice, over the facts the catalog knows of its checks.
pub fn route(catalog: &Catalog, event: &EventRow) -> Vec<String> {
    let mut names = operator_route(catalog, event);
    if catalog.subscriptions.is_none() && event.kind.starts_with("subscription.") {
        // The dashboard takes subscriptions and this ingest's config has
        // none: the mail cannot be sent. Say so rather than drop it quietly.
        tracing::error!(event = "subscriber_mail_dropped", id = %event.id, error = "this ingest's config has no `subscriptions` section");
    }
    // The subscriber audience: one target, expanded per address later.
    if catalog.subscriptions.is_some() && event.channel.is_none() && subscribers::heard(&event.kind)
    {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        if event.kind.starts_with("subscription.")
            || !subscribers::public_checks(catalog, &data).is_empty()
        {
            names.push(AUDIENCE.to_string());
        }
    }
    names
}

fn operator_route(catalog: &Catalog, event: &EventRow) -> Vec<String> {
    let n = &catalog.notifications;
    if let Some(only) = &event.channel {
        return n
            .channel(only)
            .map(|c| vec![c.name.clone()])
            .unwrap_or_default();
    }
    let Some(family) = EventFamily::of(&event.kind) else {
        return Vec::new();
    };
    if event.kind.starts_with("subscription.") {
        return Vec::new();
    }
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    let mut slugs: Vec<&str> = data
        .get("incident")
        .or_else(|| data.get("window"))
        .and_then(|i| i.get("checks"))
        .and_then(|c| c.as_array())
        .map(|cs| cs.iter().filter_map(|c| c.get("id")?.as_str()).collect())
        .unwrap_or_default();
    slugs.extend(
        data.get("check")
            .and_then(|c| c.get("id"))
            .and_then(|v| v.as_str()),
    );
    let checks: Vec<&config::Check> = slugs.iter().filter_map(|s| catalog.check(s)).collect();
    // A check the catalog does not know is treated as private.
    let public =
        !slugs.is_empty() && checks.len() == slugs.len() && checks.iter().all(|c| c.public);
    let mut groups: Vec<String> = checks.iter().map(|c| c.group.to_string()).collect();
    groups.dedup();
    let major = data
        .get("incident")
        .and_then(|i| i.get("impact"))
        .and_then(|v| v.as_str())
        != Some("minor");
    n.channels_for(Facts {
        family,
        public,
        groups: &groups,
        major,
    })
    .into_iter()
    .filter(|c| format::heard_by(&c.kind, &event.kind))
    .map(|c| c.name.clone())
    .collect()
}

/// Expands and delivers until `shutdown`. `catalog` is the current config
/// (its channels and routes, and its checks for routing).
pub async fn run(
    store: Store,
    settings: Settings,
    catalog: watch::Receiver<Option<Arc<Catalog>>>,
    clock: Clock,
    shutdown: CancellationToken,
) {
    let tls = match send::tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(event = "notifications_disabled", error = %e);
            return;
        }
    };
    // Subscriber mail: a worker of its own, woken by each fan-out.
    let wake = Arc::new(Notify::new());
    tokio::spawn(subscribers::run(
        store.clone(),
        settings.clone(),
        catalog.clone(),
        clock.clone(),
        wake.clone(),
        shutdown.clone(),
    ));
    let mut changes = store.subscribe();
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned: Option<tokio::time::Instant> = None;
    let mut counted: Vec<String> = Vec::new();
    let mut turns: u64 = 0;
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = changes.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(current) = catalog.borrow().clone() else {
            continue;
        };
        // Every channel's counters exist from the start, at zero, so that
        // `increase()` sees its first failure (an alert rule relies on it).
        for c in &current.notifications.channels {
            if !counted.contains(&c.name) {
                counted.push(c.name.clone());
                for outcome in ["delivered", "failed"] {
                    counter!(DELIVERIES, "channel" => c.name.clone(), "outcome" => outcome)
                        .increment(0);
                }
                for result in ["ok", "error"] {
                    counter!(ATTEMPTS, "channel" => c.name.clone(), "result" => result)
                        .increment(0);
                }
            }
        }
        let now = clock();
        // Maintenance comes due with time: looked at every few seconds.
        if turns.is_multiple_of(5)
            && let Err(e) = store
                .write_maintenance_events(now, settings.maintenance_lead.as_millis() as i64)
                .await
        {
            tracing::warn!(event = "maintenance_events_failed", error = %e);
        }
        turns = turns.wrapping_add(1);
        let routing = |e: &EventRow| route(&current, e);
        // Expand a batch, send what is due, and again while batches come full.
        loop {
            let expanded = match store.expand_events(&routing, clock(), EXPAND_BATCH).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(event = "events_expand_failed", error = %e);
                    0
                }
            };
            send_due(&store, &settings, &current, &tls, &clock, &wake).await;
            if shutdown.is_cancelled() {
                return;
            }
            if expanded < EXPAND_BATCH as usize {
                break;
            }
        }
        match store.outbox_backlog(clock()).await {
            Ok(b) => {
                gauge!(PENDING).set(b.pending as f64);
                gauge!(OLDEST).set(b.oldest_ms as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(event = "outbox_read_failed", error = %e),
        }
        if pruned.is_none_or(|p| p.elapsed() > Duration::from_secs(3600)) {
            pruned = Some(tokio::time::Instant::now());
            let cutoff = clock() - settings.keep.as_millis() as i64;
            if let Err(e) = store.prune_outbox(cutoff).await {
                tracing::warn!(event = "outbox_prune_failed", error = %e);
            }
        }
    }
}

/// Events expanded in one transaction.
const EXPAND_BATCH: i64 = 200;

/// Sends while deliveries are due: each round leases a batch, sends it
/// `concurrency` requests at a time, and marks the outcomes together.
async fn send_due(
    store: &Store,
    settings: &Settings,
    catalog: &Catalog,
    tls: &Arc<rustls::ClientConfig>,
    clock: &Clock,
    wake: &Notify,
) {
    loop {
        let leased = match store
            .lease_deliveries(
                Queue::Operators,
                clock(),
                settings.lease.as_millis() as i64,
                64,
            )
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(event = "deliveries_lease_failed", error = %e);
                return;
            }
        };
        if leased.is_empty() {
            return;
        }
        let done: Vec<(Leased, Outcome)> = futures_util::stream::iter(leased)
            .map(|l| deliver(store, settings, catalog, tls, clock, l))
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        // The batch's outcomes are marked in one commit: a worker that dies
        // before it sends those rows again once their lease expires.
        let marks: Vec<(i64, i64, Outcome)> = done
            .iter()
            .map(|(l, o)| (l.id, l.attempt, o.clone()))
            .collect();
        if done.iter().any(|(l, _)| l.channel == AUDIENCE) {
            wake.notify_one();
        }
        match store
            .finish_deliveries(Queue::Operators, &marks, clock())
            .await
        {
            Ok(kept) => {
                for ((l, _), kept) in done.iter().zip(kept) {
                    if !kept {
                        tracing::warn!(event = "notification_lease_lost", channel = %l.channel, id = %l.event.id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(event = "notification_mark_failed", deliveries = done.len(), error = %e)
            }
        }
    }
}

/// One attempt of one leased delivery, and what came of it.
async fn deliver(
    store: &Store,
    settings: &Settings,
    catalog: &Catalog,
    tls: &Arc<rustls::ClientConfig>,
    clock: &Clock,
    leased: Leased,
) -> (Leased, Outcome) {
    let channel = leased.channel.clone();
    if channel == AUDIENCE {
        // The subscriber audience: expanded into one mail per address.
        let data: serde_json::Value = serde_json::from_str(&leased.event.data).unwrap_or_default();
        let checks = subscribers::public_checks(catalog, &data);
        let outcome = match store.fan_out(&leased.event, &checks, clock()).await {
            Ok(n) => {
                tracing::info!(event = "subscriber_mail_queued", id = %leased.event.id, mails = n);
                Outcome::Delivered
            }
            Err(e) => judge(settings, &leased, Err(e.to_string()), clock()),
        };
        return (leased, outcome);
    }
    let outcome = match catalog.notifications.channel(&channel) {
        // The channel left the config: nothing can be sent to it.
        None => Outcome::Failed {
            error: "the channel is no longer in the config".into(),
        },
        Some(c) => match &c.kind {
            config::notify::ChannelKind::Email { to } => {
                let data = format::data(&leased.event, settings.public_url.as_ref());
                match &catalog.notifications.smtp {
                    None => Outcome::Failed {
                        error: "no `smtp` section in the config".into(),
                    },
                    Some(smtp) => {
                        let composed = mail::compose(&leased.event, &data, &smtp.from);
                        match mail::send(smtp, to, composed, settings.request_deadline).await {
                            Ok(()) => Outcome::Delivered,
                            Err(e) if e.permanent => Outcome::Failed { error: e.message },
                            Err(e) => judge(settings, &leased, Err(e.message), clock()),
                        }
                    }
                }
            }
            kind => {
                let request = format::request(
                    kind,
                    &leased.event,
                    settings.public_url.as_ref(),
                    clock() / 1000,
                );
                match kind.url() {
                    Some(url) => {
                        let answer = send::post(
                            url,
                            &request.headers,
                            request.body,
                            settings.request_deadline,
                            tls,
                        )
                        .await;
                        judge(settings, &leased, answer, clock())
                    }
                    None => Outcome::Failed {
                        error: "the channel has no URL".into(),
                    },
                }
            }
        },
    };
    let result = match &outcome {
        Outcome::Delivered => "ok",
        _ => "error",
    };
    counter!(ATTEMPTS, "channel" => channel.clone(), "result" => result).increment(1);
    match &outcome {
        Outcome::Delivered => {
            counter!(DELIVERIES, "channel" => channel.clone(), "outcome" => "delivered")
                .increment(1);
            tracing::info!(event = "notification_delivered", channel = %channel, id = %leased.event.id, kind = %leased.event.kind, attempt = leased.attempt);
        }
        Outcome::Retry { error, .. } => {
            tracing::warn!(event = "notification_retry", channel = %channel, id = %leased.event.id, attempt = leased.attempt, error = %error);
        }
        Outcome::Failed { error } => {
            counter!(DELIVERIES, "channel" => channel.clone(), "outcome" => "failed").increment(1);
            tracing::error!(event = "notification_failed", channel = %channel, id = %leased.event.id, attempt = leased.attempt, error = %error);
        }
    }
    (leased, outcome)
}

/// What an answer means: 2xx delivered; 4xx other than 408 and 429 failed
/// at once; anything else tried again after the schedule's next wait (or
/// the receiver's `Retry-After`, if longer), until the schedule ends.
pub fn judge(
    settings: &Settings,
    leased: &Leased,
    answer: Result<send::Answer, String>,
    now: i64,
) -> Outcome {
    let (error, retry_after) = match answer {
        Ok(a) if (200..300).contains(&a.status) => return Outcome::Delivered,
        Ok(a) if (400..500).contains(&a.status) && a.status != 408 && a.status != 429 => {
            return Outcome::Failed {
                error: format!("the receiver answered {}", a.status),
            };
        }
        Ok(a) => (format!("the receiver answered {}", a.status), a.retry_after),
        Err(e) => (e, None),
    };
    let Some(wait) = settings.schedule.get(leased.attempt.max(0) as usize) else {
        return Outcome::Failed {
            error: format!("{error} (attempt {}, the last)", leased.attempt),
        };
    };
    // Up to 20% longer, so that many rows failing together spread out.
    let spread = (leased.id as u64 ^ now as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1000;
    let wait = wait.mul_f64(1.0 + spread as f64 / 5000.0);
    let wait = wait.max(retry_after.unwrap_or_default());
    Outcome::Retry {
        at: now + wait.as_millis() as i64,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use send::Answer;

    fn leased(attempt: i64) -> Leased {
        Leased {
            id: 7,
            channel: "ops".into(),
            subscription_id: None,
            attempt,
            event: EventRow {
                id: "incident-1-2".into(),
                kind: "incident.opened".into(),
                at: 0,
                subject: "incident-1".into(),
                seq: 2,
                data: "{}".into(),
                channel: None,
            },
        }
    }

    fn answer(status: u16, retry_after: Option<u64>) -> Result<Answer, String> {
        Ok(Answer {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    #[test]
    fn answers_are_judged_by_the_standard_webhooks_rules() {
        let s = Settings::default();
        let now = 1_000_000;
        assert!(matches!(
            judge(&s, &leased(1), answer(204, None), now),
            Outcome::Delivered
        ));
        for gone in [400, 401, 404, 410, 422] {
            assert!(
                matches!(
                    judge(&s, &leased(1), answer(gone, None), now),
                    Outcome::Failed { .. }
                ),
                "{gone} fails at once"
            );
        }
        // After the first attempt the schedule waits 5 s, up to 20% more.
        for again in [408, 429, 500, 503] {
            match judge(&s, &leased(1), answer(again, None), now) {
                Outcome::Retry { at, .. } => assert!(
                    (now + 5_000..=now + 6_000).contains(&at),
                    "{again}: {}",
                    at - now
                ),
                other => panic!("{again}: {other:?}"),
            }
        }
        // A longer Retry-After wins; a shorter one does not shorten the wait.
        match judge(&s, &leased(1), answer(429, Some(60)), now) {
            Outcome::Retry { at, .. } => assert_eq!(at, now + 60_000),
            other => panic!("{other:?}"),
        }
        match judge(&s, &leased(2), answer(429, Some(1)), now) {
            Outcome::Retry { at, .. } => assert!(at >= now + 300_000),
            other => panic!("{other:?}"),
        }
        // A network error is retried too; past the last wait, it has failed.
        assert!(matches!(
            judge(
                &s,
                &leased(3),
                Err("connect: ConnectionRefused".into()),
                now
            ),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            judge(&s, &leased(8), answer(500, None), now),
            Outcome::Failed { .. }
        ));
    }
}

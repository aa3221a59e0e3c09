//! Mail to public subscribers: its own queue (`subscriber_deliveries`),
//! its own worker and its own rate (`subscriptions.mail_rate`), so an
//! incident mailed to ten thousand addresses never delays an operator
//! channel. Confirmations go before notices.
//!
//! Each mail carries signed links only (see [`super::token`]): the
//! preferences page in its footer, and `List-Unsubscribe` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058). No link
//! is ever logged.

use super::mail::{self, Composed, Extra};
use super::token::{self, Purpose};
use super::{Settings, format, judge};
use crate::consume::Clock;
use crate::store::Store;
use crate::store::outbox::{Leased, Outcome, Queue};
use crate::store::subscriptions::SubscriptionRow;
use config::Catalog;
use config::notify::Subscriptions;
use futures_util::StreamExt;
use lettre::message::header::HeaderName;
use maud::html;
use metrics::{counter, gauge};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Subscriber mails by kind (`confirm`, `manage`, `notice`) and outcome.
pub const MAILS: &str = "statuspage_subscriber_mails_total";
/// Subscriptions by state (`pending`, `confirmed`, `suppressed`).
pub const SUBSCRIBERS: &str = "statuspage_subscribers";

/// Unconfirmed subscriptions are deleted this long after they were made.
pub const UNCONFIRMED_FOR: Duration = Duration::from_secs(48 * 3600);

/// The links of one mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    /// The preferences page.
    pub preferences: String,
    /// The one-click unsubscribe URL.
    pub unsubscribe: String,
}

/// `{public_url}/subscribe/{purpose}/{token}`.
pub fn link(
    public_url: &str,
    keys: &Subscriptions,
    purpose: Purpose,
    row: &SubscriptionRow,
    now_s: i64,
) -> String {
    let key = keys.keys.first().map_or(&[][..], Vec::as_slice);
    format!(
        "{}/subscribe/{}/{}",
        public_url.trim_end_matches('/'),
        purpose.as_str(),
        token::sign(key, purpose, row.id, &row.nonce, now_s)
    )
}

/// The mail asking to confirm a subscription (`manage`: the one sent to an
/// address already confirmed, with its preferences instead).
pub fn confirmation(title: &str, confirm: Option<&str>, links: &Links) -> Composed {
    let (subject, lead, action, url) = match confirm {
        Some(url) => (
            format!("Confirm your subscription to {title}"),
            "Someone, probably you, asked to be told by email of incidents and maintenance on this status page.",
            "Confirm the subscription",
            url,
        ),
        None => (
            format!("Your subscription to {title}"),
            "Someone, probably you, asked to subscribe this address, which is already subscribed.",
            "Change what you receive",
            links.preferences.as_str(),
        ),
    };
    let ignore = if confirm.is_some() {
        "If it was not you, ignore this mail: nothing is sent unless the subscription is confirmed, and it is forgotten in 48 hours."
    } else {
        "If it was not you, ignore this mail: nothing has changed."
    };
    let text = format!(
        "{title}\n\n{lead}\n\n{action}:\n{url}\n\n{ignore}\n\nUnsubscribe: {}\n",
        links.unsubscribe
    );
    let html = html! {
        html { body {
            h1 { (title) }
            p { (lead) }
            p { a href=(url) { (action) } }
            p { (ignore) }
            p { small { a href=(links.unsubscribe) { "Unsubscribe" } } }
        } }
    }
    .into_string();
    Composed {
        subject: mail::one_line(&subject),
        message_id: String::new(),
        thread: None,
        text,
        html,
    }
}

/// `notice` (an event's mail, as operators get it) with the page's title in
/// the subject and a footer of links.
pub fn with_footer(title: &str, mut notice: Composed, links: &Links) -> Composed {
    notice.subject = mail::one_line(&format!("{title}: {}", notice.subject));
    notice.text.push_str(&format!(
        "\n--\nYou subscribed to {title}.\nChange what you receive: {}\nUnsubscribe: {}\n",
        links.preferences, links.unsubscribe
    ));
    let footer = html! {
        hr;
        p { small {
            "You subscribed to " (title) ". "
            a href=(links.preferences) { "Change what you receive" } " · "
            a href=(links.unsubscribe) { "Unsubscribe" }
        } }
    }
    .into_string();
    match notice.html.rfind("</body>") {
        Some(at) => notice.html.insert_str(at, &footer),
        None => notice.html.push_str(&footer),
    }
    notice
}

/// RFC 8058: the one-click unsubscribe headers.
pub fn unsubscribe_headers(links: &Links) -> Extra {
    vec![
        (
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{}>", links.unsubscribe),
        ),
        (
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".into(),
        ),
    ]
}

/// The (check id, group) of each check an event is about, as the catalog
/// knows them; empty unless every one is public.
pub fn public_checks(catalog: &Catalog, data: &Value) -> Vec<(String, String)> {
    let ids: Vec<&str> = data
        .get("incident")
        .or_else(|| data.get("window"))
        .and_then(|o| o.get("checks"))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("id")?.as_str()).collect())
        .unwrap_or_default();
    let checks: Vec<&config::Check> = ids.iter().filter_map(|id| catalog.check(id)).collect();
    if checks.len() != ids.len() || checks.iter().any(|c| !c.public) {
        return Vec::new();
    }
    checks
        .iter()
        .map(|c| (c.id.as_str().to_string(), c.group.to_string()))
        .collect()
}

/// Whether subscribers hear of events of this type.
pub fn heard(kind: &str) -> bool {
    matches!(
        kind,
        "incident.opened"
            | "incident.updated"
            | "incident.resolved"
            | "incident.reopened"
            | "maintenance.scheduled"
            | "maintenance.starting"
            | "maintenance.completed"
    ) || kind.starts_with("subscription.")
}

/// Sends subscriber mail until `shutdown`: woken by `wake` (a fan-out just
/// written), and every second.
pub async fn run(
    store: Store,
    settings: Settings,
    catalog: watch::Receiver<Option<Arc<Catalog>>>,
    clock: Clock,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned: Option<tokio::time::Instant> = None;
    for kind in ["confirm", "manage", "notice"] {
        for outcome in ["delivered", "failed", "dropped"] {
            counter!(MAILS, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(current) = catalog.borrow().clone() else {
            continue;
        };
        let Some(subs) = current.subscriptions.clone() else {
            continue;
        };
        if pruned.is_none_or(|p| p.elapsed() > Duration::from_secs(600)) {
            pruned = Some(tokio::time::Instant::now());
            let now = clock();
            match store
                .prune_subscriptions(
                    now - UNCONFIRMED_FOR.as_millis() as i64,
                    now - settings.keep.as_millis() as i64,
                )
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(event = "unconfirmed_subscriptions_deleted", count = n)
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(event = "subscriptions_prune_failed", error = %e),
            }
        }
        match store.subscription_counts().await {
            Ok(c) => {
                gauge!(SUBSCRIBERS, "state" => "pending").set(c.pending as f64);
                gauge!(SUBSCRIBERS, "state" => "confirmed").set(c.confirmed as f64);
                gauge!(SUBSCRIBERS, "state" => "suppressed").set(c.suppressed as f64);
            }
            Err(e) => tracing::warn!(event = "subscriptions_count_failed", error = %e),
        }
        send_due(&store, &settings, &current, &subs, &clock, &shutdown).await;
    }
}

/// Sends while subscriber mail is due, at most `mail_rate` a second.
async fn send_due(
    store: &Store,
    settings: &Settings,
    catalog: &Catalog,
    subs: &Subscriptions,
    clock: &Clock,
    shutdown: &CancellationToken,
) {
    let Some(smtp) = catalog.notifications.smtp.clone() else {
        return;
    };
    let Some(public_url) = settings
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
    else {
        tracing::error!(
            event = "subscriber_mail_failed",
            error = "no --public-url: the links in subscriber mail cannot be built"
        );
        return;
    };
    let rate = subs.mail_rate.max(1);
    let mut pace = tokio::time::interval(Duration::from_secs(1) / rate);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut transport = None;
    while !shutdown.is_cancelled() {
        let batch = i64::from(rate.clamp(1, 200));
        let leased = match store
            .lease_deliveries(
                Queue::Subscribers,
                clock(),
                settings.lease.as_millis() as i64,
                batch,
            )
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(event = "subscriber_mail_lease_failed", error = %e);
                return;
            }
        };
        if leased.is_empty() {
            return;
        }
        let ids: Vec<i64> = leased.iter().filter_map(|l| l.subscription_id).collect();
        let rows = match store.subscriptions(&ids).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(event = "subscriber_mail_lease_failed", error = %e);
                return;
            }
        };
        if transport.is_none() {
            match mail::transport(&smtp, settings.request_deadline).await {
                Ok(t) => transport = Some(t),
                Err(e) => {
                    let now = clock();
                    let marks: Vec<(i64, i64, Outcome)> = leased
                        .iter()
                        .map(|l| {
                            (
                                l.id,
                                l.attempt,
                                judge(settings, l, Err(e.message.clone()), now),
                            )
                        })
                        .collect();
                    let _ = store
                        .finish_deliveries(Queue::Subscribers, &marks, now)
                        .await;
                    return;
                }
            }
        }
        let Some(transport) = transport.as_ref() else {
            return;
        };
        let job = Job {
            settings,
            subs,
            from: &smtp.from,
            public_url: &public_url,
            transport,
            clock,
        };
        let mut paced = Vec::with_capacity(leased.len());
        for l in leased {
            let row = rows
                .iter()
                .find(|r| Some(r.id) == l.subscription_id)
                .cloned();
            paced.push((l, row));
        }
        // Started at most `rate` a second, at most 8 at once.
        let mut done: Vec<(i64, i64, Outcome)> = Vec::with_capacity(paced.len());
        let mut in_flight = futures_util::stream::FuturesUnordered::new();
        let mut queue = paced.into_iter();
        let mut next = queue.next();
        while next.is_some() || !in_flight.is_empty() {
            tokio::select! {
                _ = pace.tick(), if next.is_some() && in_flight.len() < 8 => {
                    if let Some((l, row)) = next.take() {
                        in_flight.push(job.send(l, row));
                        next = queue.next();
                    }
                }
                Some(d) = in_flight.next(), if !in_flight.is_empty() => done.push(d),
            }
        }
        if let Err(e) = store
            .finish_deliveries(Queue::Subscribers, &done, clock())
            .await
        {
            tracing::warn!(event = "subscriber_mail_mark_failed", mails = done.len(), error = %e);
        }
    }
}

struct Job<'a> {
    settings: &'a Settings,
    subs: &'a Subscriptions,
    from: &'a str,
    public_url: &'a str,
    transport: &'a lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    clock: &'a Clock,
}

impl Job<'_> {
    /// One attempt of one mail, marked as `(delivery, attempt, outcome)`.
    async fn send(&self, leased: Leased, row: Option<SubscriptionRow>) -> (i64, i64, Outcome) {
        let kind = match leased.event.kind.as_str() {
            "subscription.confirm" => "confirm",
            "subscription.manage" => "manage",
            _ => "notice",
        };
        let outcome = self.attempt(kind, &leased, row).await;
        let outcome_label = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { error } if error.starts_with("dropped") => "dropped",
            Outcome::Failed { .. } => "failed",
        };
        if outcome_label != "retry" {
            counter!(MAILS, "kind" => kind, "outcome" => outcome_label).increment(1);
        }
        if let Outcome::Failed { error } | Outcome::Retry { error, .. } = &outcome {
            tracing::warn!(event = "subscriber_mail_not_sent", kind, id = %leased.event.id, subscription = leased.subscription_id, attempt = leased.attempt, error = %error);
        }
        (leased.id, leased.attempt, outcome)
    }

    async fn attempt(&self, kind: &str, leased: &Leased, row: Option<SubscriptionRow>) -> Outcome {
        let Some(row) = row else {
            return Outcome::Failed {
                error: "dropped: the subscription is gone".into(),
            };
        };
        let wanted = match kind {
            "confirm" => "pending",
            _ => "confirmed",
        };
        if row.state != wanted {
            return Outcome::Failed {
                error: format!("dropped: the subscription is {}", row.state),
            };
        }
        let now_s = (self.clock)() / 1000;
        let links = Links {
            preferences: link(
                self.public_url,
                self.subs,
                Purpose::Preferences,
                &row,
                now_s,
            ),
            unsubscribe: link(
                self.public_url,
                self.subs,
                Purpose::Unsubscribe,
                &row,
                now_s,
            ),
        };
        let title = self.settings.title.as_deref().unwrap_or("Service status");
        let mut composed = match kind {
            "confirm" => {
                let url = link(self.public_url, self.subs, Purpose::Confirm, &row, now_s);
                confirmation(title, Some(&url), &links)
            }
            "manage" => confirmation(title, None, &links),
            _ => {
                let data = format::data(&leased.event, self.settings.public_url.as_ref());
                with_footer(
                    title,
                    mail::compose(&leased.event, &data, self.from),
                    &links,
                )
            }
        };
        if composed.message_id.is_empty() {
            composed.message_id = format!(
                "<{}-{}@{}>",
                leased.event.id,
                row.id,
                mail::domain(self.from)
            );
        } else {
            // One subscriber's copy of an incident's thread.
            composed.message_id = composed.message_id.replace('@', &format!(".{}@", row.id));
            composed.thread = composed
                .thread
                .map(|t| t.replace('@', &format!(".{}@", row.id)));
        }
        let message = match mail::message(
            self.from,
            std::slice::from_ref(&row.email),
            composed,
            unsubscribe_headers(&links),
        ) {
            Ok(m) => m,
            Err(e) => return Outcome::Failed { error: e.message },
        };
        match mail::deliver(self.transport, message, self.settings.request_deadline).await {
            Ok(()) => Outcome::Delivered,
            Err(e) if e.permanent => Outcome::Failed { error: e.message },
            Err(e) => judge(self.settings, leased, Err(e.message), (self.clock)()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            preferences: "https://status.example.com/subscribe/preferences/1.2.abc".into(),
            unsubscribe: "https://status.example.com/subscribe/unsubscribe/1.2.def".into(),
        }
    }

    #[test]
    fn a_notice_carries_the_title_the_footer_and_the_one_click_headers() {
        let notice = Composed {
            subject: "[Investigating] API down (API)".into(),
            message_id: "<incident-1@acme.example>".into(),
            thread: None,
            text: "Investigating: API down\n".into(),
            html: "<html><body><h1>API down</h1></body></html>".into(),
        };
        let m = with_footer("Acme <status>", notice, &links());
        assert_eq!(m.subject, "Acme <status>: [Investigating] API down (API)");
        assert!(
            m.text
                .contains("Unsubscribe: https://status.example.com/subscribe/unsubscribe/1.2.def")
        );
        assert!(m.html.contains("Acme &lt;status&gt;"), "{}", m.html);
        assert!(m.html.ends_with("</body></html>"));
        let headers = unsubscribe_headers(&links());
        assert_eq!(
            headers[0].1,
            "<https://status.example.com/subscribe/unsubscribe/1.2.def>"
        );
        assert_eq!(headers[1].1, "List-Unsubscribe=One-Click");
    }

    #[test]
    fn subscribers_hear_incidents_and_maintenance_but_not_check_changes() {
        for kind in [
            "incident.opened",
            "incident.resolved",
            "maintenance.scheduled",
            "maintenance.completed",
            "subscription.confirm",
        ] {
            assert!(heard(kind), "{kind}");
        }
        for kind in ["check.status_changed", "maintenance.started", "test"] {
            assert!(!heard(kind), "{kind}");
        }
    }
}

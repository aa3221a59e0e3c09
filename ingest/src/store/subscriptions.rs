//! Public email subscriptions, written once for both databases.
//!
//! - The dashboard's subscription role calls [`subscribe`], [`confirm`],
//!   [`set_choices`] and [`unsubscribe`]; each writes at most one outbox
//!   event (`subscription.confirm` or `subscription.manage`, for the mail
//!   worker), in the same transaction.
//! - An event's subscriber audience is one delivery to [`AUDIENCE`];
//!   delivering it ([`Store::fan_out`]) writes one `subscriber_deliveries`
//!   row per confirmed subscriber who follows what it is about, outside the
//!   incident's transaction.
//! - Mail workers lease those rows like the operator queue
//!   ([`super::outbox::Queue::Subscribers`]): confirmations first.

use super::outbox::EventRow;
use super::outbox::{Event, insert_event};
use super::sql::{Arg, Conn, Tx};
use super::{Store, StoreError, retrying};
use crate::state::Millis;
use serde_json::json;

pub use super::outbox::AUDIENCE;

/// One subscription as its links and mails need it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Its id (in links).
    pub id: i64,
    /// The address, lowercased.
    pub email: String,
    /// `pending`, `confirmed` or `suppressed`.
    pub state: String,
    /// What its links are signed over.
    pub nonce: String,
    /// The check ids it follows (JSON list).
    pub check_ids: String,
    /// The groups it follows (JSON list); both empty: everything public.
    pub group_names: String,
}

impl SubscriptionRow {
    /// The checks and groups it follows.
    pub fn choices(&self) -> (Vec<String>, Vec<String>) {
        (
            serde_json::from_str(&self.check_ids).unwrap_or_default(),
            serde_json::from_str(&self.group_names).unwrap_or_default(),
        )
    }
}

/// What became of a subscribe request. The page answers the same for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A mail was queued: a confirmation, or (already confirmed) a link to
    /// the preferences.
    Mailed,
    /// Nothing was sent: the address has had its mails for the day, or it
    /// is suppressed.
    Silent,
    /// The cap of subscriptions is reached: no new address is taken.
    Full,
}

/// Limits of [`subscribe`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most subscriptions kept (suppressed ones not counted).
    pub max_subscriptions: u64,
    /// Confirmation mails per address per UTC day.
    pub mails_per_day: u32,
}

fn id_column(conn: &Conn<'_>) -> String {
    conn.dialect().int("id")
}

/// The subscription with this id.
pub async fn by_id(conn: &mut Conn<'_>, id: i64) -> Result<Option<SubscriptionRow>, StoreError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT {} AS id, email, state, nonce, check_ids, group_names FROM subscriptions WHERE id = {}",
        id_column(conn),
        d.p(1)
    );
    Ok(conn.rows(&sql, &[Arg::Int(id)]).await?.into_iter().next())
}

/// The subscription of this address (lowercased).
pub async fn by_email(
    conn: &mut Conn<'_>,
    email: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT {} AS id, email, state, nonce, check_ids, group_names FROM subscriptions WHERE email = {}{}",
        id_column(conn),
        d.p(1),
        d.for_update()
    );
    Ok(conn
        .rows(&sql, &[Arg::Text(email.to_lowercase())])
        .await?
        .into_iter()
        .next())
}

fn list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// Writes the event that has the mail worker send subscription `id` a
/// mail of `kind` (`subscription.confirm` or `subscription.manage`): its
/// id names the subscription, its nonce and the day's count.
async fn mail_event(
    conn: &mut Conn<'_>,
    kind: &str,
    row: &SubscriptionRow,
    day: i64,
    count: i64,
    now: Millis,
) -> Result<(), StoreError> {
    let nonce: String = row.nonce.chars().take(8).collect();
    let event = Event {
        id: format!("subscription-{}-{nonce}-{day}-{count}", row.id),
        kind,
        at: now,
        subject: format!("subscription-{}", row.id),
        seq: day * 1000 + count,
        data: json!({ "subscription": row.id }).to_string(),
    };
    // Not `once`: that would need `SELECT` on `events`, which the
    // subscription role does not have; the id is new anyway (the address's
    // row is locked, and its count just went up).
    insert_event(conn, &event, false).await?;
    Ok(())
}

/// Subscribes `email` to `checks` and `groups` (both empty: everything
/// public), in `tx`:
/// - a new address becomes a pending subscription with a fresh `nonce`,
///   and gets a confirmation;
/// - a pending one takes the new choices and gets another confirmation;
/// - a confirmed one keeps its choices and gets a link to its preferences
///   (so nobody can change another's choices);
/// - a suppressed one gets nothing.
///
/// Past `limits.max_subscriptions` (suppressed ones not counted), nothing
/// is taken, from any address.
///
/// Past `limits.mails_per_day` confirmation mails on one UTC day, nothing
/// more is sent to that address that day.
pub async fn subscribe(
    tx: &mut Tx,
    email: &str,
    checks: &[String],
    groups: &[String],
    nonce: &str,
    limits: Limits,
    now: Millis,
) -> Result<Subscribed, StoreError> {
    let email = email.to_lowercase();
    let day = now.div_euclid(86_400_000);
    let d = tx.dialect();
    // The cap first, for every address alike: the answer tells nothing of
    // whether this one is known.
    let counted: Vec<(i64,)> = tx
        .rows(
            "SELECT count(*) FROM subscriptions WHERE state <> 'suppressed'",
            &[],
        )
        .await?;
    if counted.first().map_or(0, |c| c.0) as u64 >= limits.max_subscriptions {
        return Ok(Subscribed::Full);
    }
    let existing = by_email(&mut tx.conn(), &email).await?;
    let row = match existing {
        Some(row) => row,
        None => {
            let made: Vec<SubscriptionRow> = tx
                .rows(
                    &format!(
                        "INSERT INTO subscriptions
                             (email, state, nonce, check_ids, group_names, created_at, mail_day, mails)
                         VALUES ({}, 'pending', {}, {}, {}, {}, {}, 1)
                         ON CONFLICT (email) DO NOTHING
                         RETURNING {} AS id, email, state, nonce, check_ids, group_names",
                        d.p(1),
                        d.p(2),
                        d.p(3),
                        d.p(4),
                        d.at(5),
                        d.p(6),
                        d.int("id")
                    ),
                    &[
                        Arg::Text(email.clone()),
                        Arg::Text(nonce.into()),
                        Arg::Text(list(checks)),
                        Arg::Text(list(groups)),
                        Arg::Int(now),
                        Arg::Int(day),
                    ],
                )
                .await?;
            match made.into_iter().next() {
                Some(row) => {
                    mail_event(&mut tx.conn(), "subscription.confirm", &row, day, 1, now).await?;
                    return Ok(Subscribed::Mailed);
                }
                // Another request made it meanwhile: the transaction runs again.
                None => return Err(StoreError::Raced("the subscription".into())),
            }
        }
    };
    if row.state == "suppressed" {
        return Ok(Subscribed::Silent);
    }
    // Count this mail against the address's day, if any is left.
    let counted: Vec<(i64,)> = tx
        .rows(
            &format!(
                "UPDATE subscriptions
                 SET mails = CASE WHEN mail_day = {day} THEN mails + 1 ELSE 1 END, mail_day = {day}
                 WHERE id = {} AND (mail_day <> {day} OR mails < {})
                 RETURNING {}",
                d.p(1),
                d.p(2),
                d.int("mails"),
                day = d.p(3)
            ),
            &[
                Arg::Int(row.id),
                Arg::Int(i64::from(limits.mails_per_day)),
                Arg::Int(day),
            ],
        )
        .await?;
    let Some((count,)) = counted.first().copied() else {
        return Ok(Subscribed::Silent);
    };
    let kind = if row.state == "pending" {
        tx.exec(
            &format!(
                "UPDATE subscriptions SET check_ids = {}, group_names = {} WHERE id = {}",
                d.p(1),
                d.p(2),
                d.p(3)
            ),
            &[
                Arg::Text(list(checks)),
                Arg::Text(list(groups)),
                Arg::Int(row.id),
            ],
        )
        .await?;
        "subscription.confirm"
    } else {
        "subscription.manage"
    };
    mail_event(&mut tx.conn(), kind, &row, day, count, now).await?;
    Ok(Subscribed::Mailed)
}

/// Confirms subscription `id` if `nonce` is still its own; true when it is
/// confirmed now (or already was).
pub async fn confirm(
    conn: &mut Conn<'_>,
    id: i64,
    nonce: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let d = conn.dialect();
    let changed = conn
        .exec(
            &format!(
                "UPDATE subscriptions SET state = 'confirmed', confirmed_at = {}
                 WHERE id = {} AND nonce = {} AND state = 'pending'",
                d.at(1),
                d.p(2),
                d.p(3)
            ),
            &[Arg::Int(now), Arg::Int(id), Arg::Text(nonce.into())],
        )
        .await?;
    if changed == 1 {
        return Ok(true);
    }
    Ok(by_id(conn, id)
        .await?
        .is_some_and(|r| r.nonce == nonce && r.state == "confirmed"))
}

/// Sets what subscription `id` follows, if `nonce` is still its own.
pub async fn set_choices(
    conn: &mut Conn<'_>,
    id: i64,
    nonce: &str,
    checks: &[String],
    groups: &[String],
) -> Result<bool, StoreError> {
    let d = conn.dialect();
    let changed = conn
        .exec(
            &format!(
                "UPDATE subscriptions SET check_ids = {}, group_names = {}
                 WHERE id = {} AND nonce = {} AND state <> 'suppressed'",
                d.p(1),
                d.p(2),
                d.p(3),
                d.p(4)
            ),
            &[
                Arg::Text(list(checks)),
                Arg::Text(list(groups)),
                Arg::Int(id),
                Arg::Text(nonce.into()),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// Deletes subscription `id` if `nonce` is still its own, and with it every
/// mail still to be sent to it (by cascade); true if it was there.
pub async fn unsubscribe(conn: &mut Conn<'_>, id: i64, nonce: &str) -> Result<bool, StoreError> {
    let d = conn.dialect();
    let gone = conn
        .exec(
            &format!(
                "DELETE FROM subscriptions WHERE id = {} AND nonce = {} AND state <> 'suppressed'",
                d.p(1),
                d.p(2)
            ),
            &[Arg::Int(id), Arg::Text(nonce.into())],
        )
        .await?;
    Ok(gone == 1)
}

/// Suppresses `email` (bounced or complained), for the admin API: it gets
/// nothing more, and the form cannot subscribe it again. Its unsent mail
/// is dropped by the worker.
pub async fn suppress(
    conn: &mut Conn<'_>,
    email: &str,
    reason: &str,
    nonce: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let d = conn.dialect();
    conn.exec(
        &format!(
            "INSERT INTO subscriptions (email, state, nonce, created_at, reason)
             VALUES ({}, 'suppressed', {}, {}, {})
             ON CONFLICT (email) DO UPDATE SET state = 'suppressed', reason = {}",
            d.p(1),
            d.p(2),
            d.at(3),
            d.p(4),
            d.p(4)
        ),
        &[
            Arg::Text(email.to_lowercase()),
            Arg::Text(nonce.into()),
            Arg::Int(now),
            Arg::Text(reason.into()),
        ],
    )
    .await?;
    Ok(())
}

/// Deletes `email`'s subscription, suppressed or not, for the admin API.
pub async fn delete(conn: &mut Conn<'_>, email: &str) -> Result<bool, StoreError> {
    let d = conn.dialect();
    let gone = conn
        .exec(
            &format!("DELETE FROM subscriptions WHERE email = {}", d.p(1)),
            &[Arg::Text(email.to_lowercase())],
        )
        .await?;
    Ok(gone == 1)
}

/// Whether subscription `row` hears of an event about `checks` (check id,
/// group): it follows everything, one of those checks, or one's group.
pub fn follows(row: &SubscriptionRow, checks: &[(String, String)]) -> bool {
    let (ids, groups) = row.choices();
    (ids.is_empty() && groups.is_empty())
        || checks
            .iter()
            .any(|(id, group)| ids.contains(id) || groups.contains(group))
}

/// Subscriptions by state, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting for confirmation.
    pub pending: i64,
    /// Confirmed.
    pub confirmed: i64,
    /// Suppressed by an operator.
    pub suppressed: i64,
}

impl Store {
    /// Writes the subscriber mails of `event` (delivered to [`AUDIENCE`]):
    /// a `subscription.*` event's one mail (a confirmation goes first in
    /// the queue); otherwise one per confirmed subscription that follows
    /// one of `checks` (check id, group). Returns how many were written.
    pub async fn fan_out(
        &self,
        event: &EventRow,
        checks: &[(String, String)],
        now: Millis,
    ) -> Result<u64, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        let (ids, priority): (Vec<i64>, i64) = if event.kind.starts_with("subscription.") {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
            let id = data
                .get("subscription")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            (vec![id], 0)
        } else {
            let rows: Vec<SubscriptionRow> = self
                .within("reading subscriptions", async {
                    Ok(pool
                        .rows(
                            &format!(
                                "SELECT {} AS id, email, state, nonce, check_ids, group_names
                                 FROM subscriptions WHERE state = 'confirmed'",
                                d.int("id")
                            ),
                            &[],
                        )
                        .await?)
                })
                .await?;
            (
                rows.iter()
                    .filter(|r| follows(r, checks))
                    .map(|r| r.id)
                    .collect(),
                1,
            )
        };
        let mut written = 0;
        // In slices, so no statement grows without bound.
        for slice in ids.chunks(5_000) {
            let ids = slice.to_vec();
            let event = event.clone();
            written += self
                .within(
                    "writing subscriber mail",
                    retrying(self.retry_count(), || {
                        let (ids, event) = (ids.clone(), event.clone());
                        let pool = pool.clone();
                        async move {
                            Ok(pool
                                .exec(
                                    &format!(
                                        "INSERT INTO subscriber_deliveries
                                             (event_id, subscription_id, subject, seq, priority, due_at)
                                         SELECT {}, s.id, {}, {}, {}, {} FROM subscriptions s
                                         WHERE s.id IN ({}) AND s.state <> 'suppressed'
                                         ON CONFLICT (event_id, subscription_id) DO NOTHING",
                                        d.p(1),
                                        d.p(2),
                                        d.p(3),
                                        d.p(4),
                                        d.at(5),
                                        d.int_list(6)
                                    ),
                                    &[
                                        Arg::Text(event.id.clone()),
                                        Arg::Text(event.subject.clone()),
                                        Arg::Int(event.seq),
                                        Arg::Int(priority),
                                        Arg::Int(now),
                                        Arg::ints(&ids),
                                    ],
                                )
                                .await?)
                        }
                    }),
                )
                .await?;
        }
        Ok(written)
    }

    /// The subscriptions with these ids.
    pub async fn subscriptions(&self, ids: &[i64]) -> Result<Vec<SubscriptionRow>, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        self.within("reading subscriptions", async {
            Ok(pool
                .rows(
                    &format!(
                        "SELECT {} AS id, email, state, nonce, check_ids, group_names
                         FROM subscriptions WHERE id IN ({})",
                        d.int("id"),
                        d.int_list(1)
                    ),
                    &[Arg::ints(ids)],
                )
                .await?)
        })
        .await
    }

    /// Subscriptions by state.
    pub async fn subscription_counts(&self) -> Result<Counts, StoreError> {
        let pool = self.sql();
        let rows: Vec<(String, i64)> = self
            .within("counting subscriptions", async {
                Ok(pool
                    .rows(
                        "SELECT state, count(*) FROM subscriptions GROUP BY state",
                        &[],
                    )
                    .await?)
            })
            .await?;
        let mut c = Counts::default();
        for (state, n) in rows {
            match state.as_str() {
                "pending" => c.pending = n,
                "confirmed" => c.confirmed = n,
                _ => c.suppressed += n,
            }
        }
        Ok(c)
    }

    /// Deletes subscriptions still unconfirmed since before `cutoff`, and
    /// subscriber mail done before `done_cutoff`.
    pub async fn prune_subscriptions(
        &self,
        cutoff: Millis,
        done_cutoff: Millis,
    ) -> Result<u64, StoreError> {
        self.delete_before(
            "pruning subscriptions",
            &[
                (
                    "DELETE FROM subscriptions WHERE state = 'pending' AND created_at < {cutoff}",
                    cutoff,
                ),
                (
                    "DELETE FROM subscriber_deliveries WHERE state <> 'pending' AND done_at < {cutoff}",
                    done_cutoff,
                ),
            ],
        )
        .await
    }
}

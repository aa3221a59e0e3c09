//! The SQS consumer: N workers, long polling, ten messages a receive, one
//! transaction per message, deletes in batches only after COMMIT, and the
//! visibility of slow messages extended while they are worked on.
//!
//! While the database is not ready, workers stop receiving, so valid
//! messages never burn their receive count into the dead-letter queue.

use super::{Handled, Handler};
use crate::metrics::IngestMetrics;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use config::wire::ENCODING_ATTRIBUTE;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The queue.
    pub queue_url: String,
    /// Workers receiving at once.
    pub workers: usize,
    /// Long-polling wait, in seconds (at most 20).
    pub wait_seconds: i32,
    /// The visibility timeout to assume when the queue does not say.
    pub visibility_timeout: Duration,
    /// How long a receive's messages are kept invisible at most: past it,
    /// they are left to redelivery (and counted), whatever holds them.
    pub visibility_cap: Duration,
}

/// Runs the workers until `shutdown`; each finishes the message in hand.
pub async fn run(
    sqs: Client,
    settings: Settings,
    handler: Handler,
    metrics: Arc<IngestMetrics>,
    clock: super::Clock,
    shutdown: CancellationToken,
) {
    let visibility = queue_visibility(&sqs, &settings.queue_url)
        .await
        .unwrap_or(settings.visibility_timeout);
    tracing::info!(
        event = "consumer_started",
        workers = settings.workers,
        visibility_seconds = visibility.as_secs()
    );
    let tracker = TaskTracker::new();
    let gate = Arc::new(LagGate {
        since: tokio::time::Instant::now(),
        visibility,
        open: std::sync::atomic::AtomicBool::new(false),
        holding: std::sync::atomic::AtomicI64::new(0),
    });
    for worker in 0..settings.workers.max(1) {
        let w = Worker {
            gate: gate.clone(),
            sqs: sqs.clone(),
            settings: settings.clone(),
            handler: handler.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            visibility,
            worker,
        };
        tracker.spawn(w.run(shutdown.clone()));
    }
    tracker.close();
    tracker.wait().await;
}

async fn queue_visibility(sqs: &Client, queue: &str) -> Option<Duration> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .ok()?;
    let secs: u64 = attrs
        .attributes()?
        .get(&QueueAttributeName::VisibilityTimeout)?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.max(1)))
}

/// When the lag may be trusted. From the start it is unknown: the queue
/// may hold a backlog this process has not seen, some of it invisible for
/// now (held by a receive that failed, or by another replica), so fresh
/// messages received first say nothing of it. It becomes known once the
/// queue shows nothing beyond what this process holds, or once a
/// visibility timeout has passed since the start (every message held then
/// has come back by now).
#[derive(Debug)]
struct LagGate {
    since: tokio::time::Instant,
    visibility: Duration,
    open: std::sync::atomic::AtomicBool,
    /// Messages this process holds right now, across its workers.
    holding: std::sync::atomic::AtomicI64,
}

impl LagGate {
    /// Whether the lag may be set, asking the queue while not yet known.
    async fn open(&self, sqs: &Client, queue: &str) -> bool {
        if self.open.load(Ordering::Relaxed) {
            return true;
        }
        let caught_up = match backlog(sqs, queue).await {
            Some((waiting, in_flight)) => {
                waiting == 0 && in_flight <= self.holding.load(Ordering::Relaxed)
            }
            None => false,
        };
        if caught_up || self.since.elapsed() >= self.visibility {
            self.open.store(true, Ordering::Relaxed);
            tracing::info!(event = "lag_known", caught_up);
            return true;
        }
        false
    }
}

struct Worker {
    gate: Arc<LagGate>,
    sqs: Client,
    settings: Settings,
    handler: Handler,
    metrics: Arc<IngestMetrics>,
    clock: super::Clock,
    visibility: Duration,
    worker: usize,
}

impl Worker {
    async fn run(self, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            if !self.metrics.db_ready.load(Ordering::Relaxed) {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            let received = tokio::select! {
                r = self.receive() => r,
                // Messages received but not handled come back after their visibility timeout.
                _ = shutdown.cancelled() => return,
            };
            let messages = match received {
                Ok(m) => {
                    pause = Duration::from_millis(200);
                    m
                }
                Err(e) => {
                    tracing::warn!(event = "receive_failed", worker = self.worker, error = %e);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if messages.is_empty() {
                // Caught up only if the queue says so: an empty receive
                // also happens while other workers (or a receive that
                // failed) hold the backlog invisible.
                if let Some((0, in_flight)) = backlog(&self.sqs, &self.settings.queue_url).await
                    && in_flight <= self.gate.holding.load(Ordering::Relaxed)
                {
                    self.gate.open.store(true, Ordering::Relaxed);
                    self.metrics.set_lag(0);
                }
                continue;
            }
            let held = messages.len() as i64;
            self.gate.holding.fetch_add(held, Ordering::Relaxed);
            self.handle(messages).await;
            self.gate.holding.fetch_sub(held, Ordering::Relaxed);
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, aws_sdk_sqs::Error> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.settings.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.settings.wait_seconds.clamp(0, 20))
            .message_attribute_names(ENCODING_ATTRIBUTE)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Handles one receive's messages, stored together in one transaction
    /// (see [`Handler::bodies`]), then deletes the committed ones in one
    /// batch call.
    async fn handle(&self, messages: Vec<Message>) {
        let pending: Arc<std::sync::Mutex<Vec<String>>> = Arc::new(std::sync::Mutex::new(
            messages
                .iter()
                .filter_map(|m| m.receipt_handle.clone())
                .collect(),
        ));
        let keeper = CancellationToken::new();
        let extend = tokio::spawn(keep_invisible(
            Invisible {
                sqs: self.sqs.clone(),
                queue: self.settings.queue_url.clone(),
                visibility: self.visibility,
                cap: self.settings.visibility_cap,
                metrics: self.metrics.clone(),
            },
            pending.clone(),
            keeper.clone(),
        ));
        let bodies: Vec<(&str, &str, Option<&str>)> = messages
            .iter()
            .map(|m| {
                let encoding = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(ENCODING_ATTRIBUTE))
                    .and_then(|v| v.string_value());
                (
                    m.message_id.as_deref().unwrap_or(""),
                    m.body.as_deref().unwrap_or(""),
                    encoding,
                )
            })
            .collect();
        let outcomes = self.handler.bodies(&bodies).await;
        if let Ok(mut p) = pending.lock() {
            p.clear();
        }
        // Lag: now minus the oldest SentTimestamp handled (SQS delivers a
        // backlog in no order, so the newest says nothing of what is left).
        if let Some(sent) = messages
            .iter()
            .filter_map(|m| {
                m.attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|v| v.parse::<i64>().ok())
            })
            .min()
            && self.gate.open(&self.sqs, &self.settings.queue_url).await
        {
            self.metrics.set_lag((self.clock)() - sent);
        }
        // Only committed messages are deleted. Undecodable, unusable or refused
        // ones are left for the redrive policy to move to the DLQ after
        // maxReceiveCount; the database being unavailable leaves them all.
        let done: Vec<String> = messages
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Handled::Stored))
            .filter_map(|(m, _)| m.receipt_handle.clone())
            .collect();
        keeper.cancel();
        let _ = extend.await;
        self.delete(done).await;
    }

    async fn delete(&self, receipts: Vec<String>) {
        if receipts.is_empty() {
            return;
        }
        let entries: Vec<_> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.settings.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed.is_empty() => {}
            // A message not deleted comes back and is a duplicate: harmless.
            Ok(out) => tracing::warn!(event = "delete_failed", count = out.failed.len()),
            Err(e) => tracing::warn!(event = "delete_failed", error = %aws_sdk_sqs::Error::from(e)),
        }
    }
}

/// Where and how long [`keep_invisible`] keeps messages invisible.
struct Invisible {
    sqs: Client,
    queue: String,
    visibility: Duration,
    cap: Duration,
    metrics: Arc<IngestMetrics>,
}

/// While messages of a receive are still pending, pushes their visibility
/// timeout out again each half timeout, so a slow transaction never lets a
/// message be handled twice at once; but never past the cap, after which
/// they are abandoned to redelivery (the write has a deadline, so this is
/// the last line, not the usual path).
async fn keep_invisible(
    to: Invisible,
    pending: Arc<std::sync::Mutex<Vec<String>>>,
    done: CancellationToken,
) {
    let until = tokio::time::Instant::now() + to.cap;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(to.visibility / 2) => {}
            _ = done.cancelled() => return,
        }
        let receipts = pending.lock().map(|p| p.clone()).unwrap_or_default();
        if receipts.is_empty() {
            return;
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            to.metrics.abandoned(receipts.len());
            tracing::warn!(
                event = "visibility_abandoned",
                count = receipts.len(),
                cap_seconds = to.cap.as_secs()
            );
            return;
        }
        let seconds = to.visibility.min(left).as_secs().max(1) as i32;
        let entries: Vec<_> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(r)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        let sent = to
            .sqs
            .change_message_visibility_batch()
            .queue_url(&to.queue)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(_) => tracing::info!(event = "visibility_extended", count = receipts.len()),
            Err(e) => {
                tracing::warn!(event = "visibility_extend_failed", error = %aws_sdk_sqs::Error::from(e))
            }
        }
    }
}

/// Messages in the queue: waiting (visible or delayed), and in flight
/// (received by someone, not yet deleted).
async fn backlog(sqs: &Client, queue: &str) -> Option<(i64, i64)> {
    let kinds = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ];
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .set_attribute_names(Some(kinds.to_vec()))
        .send()
        .await
        .ok()?;
    let attrs = attrs.attributes()?;
    let n = |kind: &QueueAttributeName| attrs.get(kind)?.parse::<i64>().ok();
    Some((n(&kinds[0])? + n(&kinds[1])?, n(&kinds[2])?))
}

/// The dead-letter queue's depth, for the metric.
pub async fn queue_depth(sqs: &Client, queue: &str) -> Option<i64> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .ok()?;
    attrs
        .attributes()?
        .get(&QueueAttributeName::ApproximateNumberOfMessages)?
        .parse()
        .ok()
}

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
    for worker in 0..settings.workers.max(1) {
        let w = Worker {
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

struct Worker {
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
                self.metrics.lag_ms.store(0, Ordering::Relaxed);
                continue;
            }
            self.handle(messages).await;
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
            self.sqs.clone(),
            self.settings.queue_url.clone(),
            self.visibility,
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
        // Lag: now minus the newest SentTimestamp handled.
        if let Some(sent) = messages
            .iter()
            .filter_map(|m| {
                m.attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|v| v.parse::<i64>().ok())
            })
            .max()
        {
            self.metrics
                .lag_ms
                .store(((self.clock)() - sent).max(0), Ordering::Relaxed);
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

/// While messages of a receive are still pending, pushes their visibility
/// timeout out again each half timeout, so a slow transaction never lets a
/// message be handled twice at once.
async fn keep_invisible(
    sqs: Client,
    queue: String,
    visibility: Duration,
    pending: Arc<std::sync::Mutex<Vec<String>>>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(visibility / 2) => {}
            _ = done.cancelled() => return,
        }
        let receipts = pending.lock().map(|p| p.clone()).unwrap_or_default();
        if receipts.is_empty() {
            return;
        }
        let entries: Vec<_> = receipts
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(r)
                    .visibility_timeout(visibility.as_secs() as i32)
                    .build()
                    .ok()
            })
            .collect();
        let sent = sqs
            .change_message_visibility_batch()
            .queue_url(&queue)
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

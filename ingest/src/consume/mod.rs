//! Consumers: SQS in distributed mode, a channel in standalone mode. Both go
//! through one [`Handler`]: decode, screen each result, store in one
//! transaction, count.

pub mod channel;
pub mod sqs;

use crate::metrics::{IngestMetrics, MessageOutcome};
use crate::screen::{self, Unusable};
use crate::store::{Store, StoreError};
use config::wire::{self, ResultBatch, WireError};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Ingest's clock, in ms since the epoch; passed in so tests can set it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What handling one message came to.
#[derive(Debug)]
pub enum Handled {
    /// Committed: delete the message.
    Stored,
    /// Not a batch: leave it for the DLQ.
    Undecodable(WireError),
    /// A batch this version cannot read: leave it for the DLQ.
    Unusable(Unusable),
    /// The database failed: leave it to come back.
    Failed(StoreError),
}

/// Decodes, screens and stores messages.
#[derive(Clone)]
pub struct Handler {
    store: Store,
    metrics: Arc<IngestMetrics>,
    clock: Clock,
    max_message_bytes: usize,
    raw_retention_ms: i64,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler over a store; results older than `raw_retention` are refused.
    pub fn new(
        store: Store,
        metrics: Arc<IngestMetrics>,
        clock: Clock,
        max_message_bytes: usize,
        raw_retention: std::time::Duration,
    ) -> Self {
        Self {
            store,
            metrics,
            clock,
            max_message_bytes,
            raw_retention_ms: raw_retention.as_millis() as i64,
        }
    }

    /// Handles one SQS message body. Its payload is never logged.
    pub async fn body(&self, message_id: &str, body: &str, encoding: Option<&str>) -> Handled {
        // A plain body is capped as sent; a compressed one as it expands.
        match wire::decode_message(body, encoding, self.max_message_bytes) {
            Ok(batch) => self.batch(message_id, batch).await,
            Err(e) => {
                self.metrics.message(MessageOutcome::Undecodable);
                tracing::warn!(event = "message_undecodable", message_id, bytes = body.len(), error = %e);
                Handled::Undecodable(e)
            }
        }
    }

    /// Handles one decoded batch.
    pub async fn batch(&self, message_id: &str, batch: ResultBatch) -> Handled {
        let now = (self.clock)();
        let (agent, sent_at) = (batch.agent.clone(), batch.sent_at);
        let screened = match screen::screen(batch, now, self.raw_retention_ms) {
            Ok(s) => s,
            Err(e) => {
                self.metrics.message(MessageOutcome::UnsupportedVersion);
                tracing::warn!(event = "message_unusable", message_id, error = %e);
                return Handled::Unusable(e);
            }
        };
        let started = tokio::time::Instant::now();
        let outcome = self
            .store
            .store_batch(&agent, sent_at, &screened.accepted, now)
            .await;
        self.metrics.db_latency(started.elapsed().as_secs_f64());
        match outcome {
            Ok(stored) => {
                self.metrics.db_ready.store(true, Ordering::Relaxed);
                self.metrics
                    .stored(stored.inserted, stored.duplicate, stored.too_old);
                for (why, id) in &screened.rejected {
                    self.metrics.rejected(*why);
                    tracing::info!(event = "result_rejected", message_id, reason = %why, result = %id);
                }
                self.metrics.message(MessageOutcome::Stored);
                tracing::debug!(
                    event = "message_stored",
                    message_id,
                    inserted = stored.inserted,
                    duplicate = stored.duplicate,
                    rejected = screened.rejected.len(),
                    changed = ?stored.changed
                );
                Handled::Stored
            }
            Err(e) => {
                if e.is_unavailable() {
                    self.metrics.db_ready.store(false, Ordering::Relaxed);
                }
                self.metrics.message(MessageOutcome::DatabaseError);
                tracing::warn!(event = "message_failed", message_id, error = %e);
                Handled::Failed(e)
            }
        }
    }
}

//! Consumers: SQS in distributed mode, a channel in standalone mode. Both go
//! through one [`Handler`]: decode, screen each result, store in one
//! transaction, count.

pub mod channel;
pub mod sqs;

use crate::metrics::{IngestMetrics, MessageOutcome};
use crate::screen::{self, Unusable};
use crate::store::{Message, Store, StoreError, Stored};
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
    Failed(Arc<StoreError>),
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

    /// Handles the messages of one receive: `(id, body, encoding)`. The ones
    /// that decode are stored in one transaction (one commit, and the work per
    /// check done once for all). Should that transaction be refused for a
    /// reason that is not transient ([`StoreError::is_transient`]), each
    /// message is stored alone, so one bad message never holds back the
    /// others.
    pub async fn bodies(&self, messages: &[(&str, &str, Option<&str>)]) -> Vec<Handled> {
        let now = (self.clock)();
        let mut handled: Vec<Option<Handled>> = Vec::with_capacity(messages.len());
        let mut usable: Vec<(usize, screen::Screened)> = Vec::new();
        for (i, (id, body, encoding)) in messages.iter().enumerate() {
            match wire::decode_message(body, *encoding, self.max_message_bytes) {
                Ok(batch) => match screen::screen(batch, now, self.raw_retention_ms) {
                    Ok(screened) => {
                        usable.push((i, screened));
                        handled.push(None);
                    }
                    Err(e) => {
                        self.metrics.message(MessageOutcome::UnsupportedVersion);
                        tracing::warn!(event = "message_unusable", message_id = id, error = %e);
                        handled.push(Some(Handled::Unusable(e)));
                    }
                },
                Err(e) => {
                    self.metrics.message(MessageOutcome::Undecodable);
                    tracing::warn!(event = "message_undecodable", message_id = id, bytes = body.len(), error = %e);
                    handled.push(Some(Handled::Undecodable(e)));
                }
            }
        }
        if usable.len() > 1 {
            let together: Vec<Message> = usable
                .iter()
                .map(|(_, screened)| Message {
                    agent: &screened.agent,
                    sent_at: screened.sent_at,
                    results: &screened.accepted,
                })
                .collect();
            let started = tokio::time::Instant::now();
            let outcome = self.store.store_messages(&together, now).await;
            self.metrics.db_latency(started.elapsed().as_secs_f64());
            self.metrics.db_retries(self.store.retries());
            match outcome {
                Ok(stored) => {
                    self.counted(&stored);
                    for (i, screened) in &usable {
                        self.stored_one(messages[*i].0, screened);
                        handled[*i] = Some(Handled::Stored);
                    }
                    tracing::debug!(event = "receive_stored", messages = usable.len(), inserted = stored.inserted, duplicate = stored.duplicate, changed = ?stored.changed);
                    usable.clear();
                }
                Err(e) if e.is_transient() => {
                    if e.is_unavailable() {
                        self.metrics.db_ready.store(false, Ordering::Relaxed);
                    }
                    let e = Arc::new(e);
                    for (i, _) in &usable {
                        self.metrics.message(MessageOutcome::DatabaseError);
                        handled[*i] = Some(Handled::Failed(e.clone()));
                    }
                    tracing::warn!(event = "message_failed", messages = usable.len(), error = %e);
                    usable.clear();
                }
                Err(e) => {
                    tracing::warn!(event = "receive_retried_one_by_one", messages = usable.len(), error = %e);
                }
            }
        }
        let mut out = Vec::with_capacity(handled.len());
        let mut rest = usable.into_iter();
        for h in handled {
            match h {
                Some(h) => out.push(h),
                // In order: the messages left are the usable ones not yet stored.
                None => match rest.next() {
                    Some((i, screened)) => {
                        out.push(self.store_screened(messages[i].0, screened, now).await)
                    }
                    // Cannot happen; if it did, the message must come back, not be deleted.
                    None => out.push(Handled::Failed(Arc::new(StoreError::Corrupt(
                        "a message of the receive was not handled".into(),
                    )))),
                },
            }
        }
        out
    }

    /// Counts a committed write: the database answers, and its results.
    fn counted(&self, stored: &Stored) {
        self.metrics.db_ready.store(true, Ordering::Relaxed);
        self.metrics.db_answered();
        self.metrics
            .stored(stored.inserted, stored.duplicate, stored.too_old);
    }

    /// Counts and logs a stored message's rejected results.
    fn stored_one(&self, message_id: &str, screened: &screen::Screened) {
        for (why, id) in &screened.rejected {
            self.metrics.rejected(*why);
            tracing::info!(event = "result_rejected", message_id, reason = %why, result = %id);
        }
        self.metrics.message(MessageOutcome::Stored);
    }

    /// Handles one decoded batch.
    pub async fn batch(&self, message_id: &str, batch: ResultBatch) -> Handled {
        let now = (self.clock)();
        let screened = match screen::screen(batch, now, self.raw_retention_ms) {
            Ok(s) => s,
            Err(e) => {
                self.metrics.message(MessageOutcome::UnsupportedVersion);
                tracing::warn!(event = "message_unusable", message_id, error = %e);
                return Handled::Unusable(e);
            }
        };
        self.store_screened(message_id, screened, now).await
    }

    /// Stores one screened message in a transaction of its own. Refused for
    /// a reason that is not transient, its results are
    /// stored one by one: a result the database still refuses is counted and
    /// dropped alone, and the message is done, so it never blocks the consumer.
    async fn store_screened(
        &self,
        message_id: &str,
        mut screened: screen::Screened,
        now: i64,
    ) -> Handled {
        let e = match self.store_results(&screened, &screened.accepted, now).await {
            Ok(()) => {
                self.stored_one(message_id, &screened);
                return Handled::Stored;
            }
            Err(e) if e.is_transient() => return self.failed(message_id, e),
            Err(e) => e,
        };
        tracing::warn!(event = "message_refused", message_id, results = screened.accepted.len(), error = %e, "storing its results one by one");
        let mut refused = Vec::new();
        for (i, r) in screened.accepted.iter().enumerate() {
            match self
                .store_results(&screened, std::slice::from_ref(r), now)
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_transient() => return self.failed(message_id, e),
                Err(e) => {
                    tracing::error!(event = "result_refused", message_id, check = %r.check, result = %r.id, error = %e);
                    refused.push(i);
                }
            }
        }
        for i in refused.into_iter().rev() {
            let r = screened.accepted.remove(i);
            screened.rejected.push((screen::Rejection::Refused, r.id));
        }
        self.stored_one(message_id, &screened);
        Handled::Stored
    }

    /// Stores `results` of a screened message in one transaction, counting them.
    async fn store_results(
        &self,
        screened: &screen::Screened,
        results: &[config::wire::ProbeResult],
        now: i64,
    ) -> Result<(), StoreError> {
        let started = tokio::time::Instant::now();
        let outcome = self
            .store
            .store_batch(&screened.agent, screened.sent_at, results, now)
            .await;
        self.metrics.db_latency(started.elapsed().as_secs_f64());
        let stored = outcome?;
        self.counted(&stored);
        tracing::debug!(
            event = "message_stored",
            inserted = stored.inserted,
            duplicate = stored.duplicate,
            changed = ?stored.changed
        );
        Ok(())
    }

    /// A message the database could not take now: it comes back later.
    fn failed(&self, message_id: &str, e: StoreError) -> Handled {
        if e.is_unavailable() {
            self.metrics.db_ready.store(false, Ordering::Relaxed);
        }
        self.metrics.message(MessageOutcome::DatabaseError);
        tracing::warn!(event = "message_failed", message_id, error = %e);
        Handled::Failed(Arc::new(e))
    }
}

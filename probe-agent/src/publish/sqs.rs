//! The SQS publisher: SendMessageBatch with up to 10 entries and at most the
//! message limit per call; a failed entry is retried on its own; throttling,
//! 5xx and network errors back off exponentially with jitter. A call that
//! fails every attempt ends the publish: the queue is unreachable, and the
//! rest goes back to the buffer (or the spool) at once instead of waiting
//! out the same failure call after call.

use super::{Outgoing, Publisher};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use config::fleet::mix;
use config::wire::ENCODING_ATTRIBUTE;
use std::time::Duration;

/// The most entries SQS takes in one SendMessageBatch.
pub const MAX_ENTRIES: usize = 10;

/// Retry policy for one publish.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Attempts per call before the messages go back to the buffer.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
            attempts: 4,
        }
    }
}

impl Backoff {
    /// The pause before attempt `n` (1-based): exponential, with full jitter.
    pub fn pause(&self, n: u32, seed: u64) -> Duration {
        let cap = self.first.saturating_mul(1 << n.min(16)).min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let r = mix(seed ^ u64::from(nanos) ^ u64::from(n));
        cap.mul_f64((r % 1000) as f64 / 1000.0)
    }
}

/// Sends to one SQS queue.
#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: Client,
    queue_url: String,
    max_bytes: usize,
    backoff: Backoff,
}

impl SqsPublisher {
    /// A publisher to `queue_url`; each call carries at most `max_bytes`.
    pub fn new(client: Client, queue_url: String, max_bytes: usize, backoff: Backoff) -> Self {
        Self {
            client,
            queue_url,
            max_bytes,
            backoff,
        }
    }

    fn entry(id: usize, m: &Outgoing) -> Option<SendMessageBatchRequestEntry> {
        let mut e = SendMessageBatchRequestEntry::builder()
            .id(format!("m{id}"))
            .message_body(&m.encoded.body);
        if let Some(enc) = m.encoded.encoding {
            e = e.message_attributes(
                ENCODING_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(enc)
                    .build()
                    .ok()?,
            );
        }
        e.build().ok()
    }

    /// One SendMessageBatch call with retries; returns what was not
    /// delivered, and whether the queue answered at all.
    async fn call(&self, group: Vec<Outgoing>) -> (Vec<Outgoing>, bool) {
        let mut pending = group;
        for attempt in 1..=self.backoff.attempts {
            let entries: Vec<_> = pending
                .iter()
                .enumerate()
                .filter_map(|(i, m)| Self::entry(i, m))
                .collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let failed: Vec<usize> = out
                        .failed
                        .iter()
                        .filter_map(|f| f.id.trim_start_matches('m').parse().ok())
                        .collect();
                    if failed.is_empty() {
                        return (Vec::new(), true);
                    }
                    // Each failed entry is retried on its own.
                    pending = pending
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| failed.contains(i))
                        .map(|(_, m)| m)
                        .collect();
                    let mut still = Vec::new();
                    for m in pending {
                        still.extend(self.single(m).await);
                    }
                    return (still, true);
                }
                Err(_) if attempt < self.backoff.attempts => {
                    tokio::time::sleep(self.backoff.pause(attempt, pending.len() as u64)).await;
                }
                Err(_) => break,
            }
        }
        (pending, false)
    }

    async fn single(&self, m: Outgoing) -> Option<Outgoing> {
        for attempt in 1..=self.backoff.attempts {
            let mut req = self
                .client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&m.encoded.body);
            if let Some(enc) = m.encoded.encoding
                && let Ok(v) = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(enc)
                    .build()
            {
                req = req.message_attributes(ENCODING_ATTRIBUTE, v);
            }
            if req.send().await.is_ok() {
                return None;
            }
            if attempt < self.backoff.attempts {
                tokio::time::sleep(self.backoff.pause(attempt, 7)).await;
            }
        }
        Some(m)
    }
}

impl Publisher for SqsPublisher {
    async fn publish(&self, messages: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut failed = Vec::new();
        let mut groups: Vec<Vec<Outgoing>> = Vec::new();
        let mut size = 0;
        for m in messages {
            match groups.last_mut() {
                Some(g) if g.len() < MAX_ENTRIES && size + m.size() <= self.max_bytes => {
                    size += m.size();
                    g.push(m);
                }
                _ => {
                    size = m.size();
                    groups.push(vec![m]);
                }
            }
        }
        let mut groups = groups.into_iter();
        for group in groups.by_ref() {
            let (undelivered, answered) = self.call(group).await;
            failed.extend(undelivered);
            if !answered {
                break;
            }
        }
        failed.extend(groups.flatten());
        failed
    }
}

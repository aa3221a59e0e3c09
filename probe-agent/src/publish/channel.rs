//! The in-process publisher of standalone mode: batches go straight to ingest.

use super::{Outgoing, Publisher};
use crate::buffer::{RawResult, decode};
use config::wire::ResultBatch;
use std::time::Duration;
use tokio::sync::mpsc;

/// Hands each batch to an in-process receiver.
#[derive(Clone, Debug)]
pub struct ChannelPublisher {
    tx: mpsc::Sender<ResultBatch>,
}

impl ChannelPublisher {
    /// A publisher feeding `tx`.
    pub fn new(tx: mpsc::Sender<ResultBatch>) -> Self {
        Self { tx }
    }
}

/// How long one hand-over may wait for ingest to take a batch. Past it the
/// batch stays buffered, so a stuck consumer never wedges the agent (or its
/// shutdown).
const SEND_DEADLINE: Duration = Duration::from_secs(5);

/// The batch with its results decoded (the buffer made each JSON from a
/// result, so each decodes).
fn decoded(batch: &ResultBatch<RawResult>) -> ResultBatch {
    ResultBatch {
        v: batch.v,
        agent: batch.agent.clone(),
        sent_at: batch.sent_at,
        results: batch.results.iter().filter_map(|r| decode(r)).collect(),
    }
}

impl Publisher for ChannelPublisher {
    async fn publish(&self, messages: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut failed = Vec::new();
        for m in messages {
            let sent = failed.is_empty()
                && matches!(
                    tokio::time::timeout(SEND_DEADLINE, self.tx.send(decoded(&m.batch))).await,
                    Ok(Ok(()))
                );
            if !sent {
                failed.push(m);
            }
        }
        failed
    }
}

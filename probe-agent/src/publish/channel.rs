//! The in-process publisher of standalone mode: batches go straight to ingest.

use super::{Outgoing, Publisher};
use config::wire::ResultBatch;
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

impl Publisher for ChannelPublisher {
    async fn publish(&self, messages: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut failed = Vec::new();
        for m in messages {
            if self.tx.send(m.batch.clone()).await.is_err() {
                failed.push(m);
            }
        }
        failed
    }
}

//! The in-process consumer of standalone mode: batches from the agent's
//! channel publisher, through the same [`Handler`] as SQS.

use super::{Handled, Handler};
use config::wire::ResultBatch;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Handles batches until the channel closes or `shutdown`. A batch the
/// database could not take because it is unavailable is retried (with
/// backoff) before the next one, so nothing is lost while the database is
/// away; anything else the handler settles itself (it stores each result it
/// can and drops one the database refuses), so no batch blocks the channel.
pub async fn run(
    handler: Handler,
    mut rx: mpsc::Receiver<ResultBatch>,
    shutdown: CancellationToken,
) {
    let mut n = 0_u64;
    loop {
        let batch = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => return },
            _ = shutdown.cancelled() => return,
        };
        n += 1;
        let id = format!("channel-{n}");
        let mut pause = Duration::from_millis(100);
        while let Handled::Failed(_) = handler.batch(&id, batch.clone()).await {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

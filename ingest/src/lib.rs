//! Ingest: consumes result batches (SQS, or a channel in standalone mode),
//! stores them, and decides each check's status, uptime and incidents.
//!
//! The truth of the page is decided by pure modules: [`state`] (locations),
//! [`status`] (quorum and precedence), [`incident`], [`uptime`] and
//! [`timeline`] (one check's step); everything else moves data in and out.

pub mod consume;
pub mod incident;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod rollup;
pub mod screen;
pub mod state;
pub mod status;
pub mod store;
pub mod timeline;
pub mod uptime;

use consume::{Clock, Handler};
use metrics::IngestMetrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where results come from.
#[derive(Debug)]
pub enum Source {
    /// An SQS queue.
    Sqs(aws_sdk_sqs::Client, consume::sqs::Settings),
    /// The in-process agent of standalone mode.
    Channel(mpsc::Receiver<config::wire::ResultBatch>),
}

/// Everything `run` needs.
#[derive(Debug)]
pub struct Settings {
    /// Where results come from.
    pub source: Source,
    /// The largest body accepted, decompressed.
    pub max_message_bytes: usize,
    /// How long raw results are kept (older ones are refused, and dropped).
    pub raw_retention: Duration,
    /// The leader's settings.
    pub leader: leader::Settings,
    /// The catalog loaded at start, if any.
    pub catalog: Option<config::Catalog>,
    /// What its files gave (see [`config::Kept`]), so that the leader's
    /// first reload parses only the files changed since; empty, it parses
    /// them all.
    pub kept: config::Kept,
    /// The notification workers' settings; `None` runs none.
    pub notify: Option<notify::Settings>,
}

/// Runs ingest until `shutdown`: waits for the database and migrates it
/// (under sqlx's advisory lock), then consumes and leads. Shutdown finishes
/// the messages in hand and never changes incident state.
pub async fn run(
    settings: Settings,
    store: Store,
    metrics: Arc<IngestMetrics>,
    clock: Clock,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut pause = Duration::from_millis(200);
    loop {
        match store.migrate().await {
            Ok(()) => break,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(event = "database_unavailable", error = %e, retry_in_ms = pause.as_millis() as u64);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
    // Partitions ahead are the leader's job too; this first pass only saves
    // the first writes a wait, so a failure here is not fatal.
    let keep = settings.raw_retention.as_millis() as i64;
    if let Err(e) = store
        .within("partitions", store.ensure_partitions_back(clock(), keep))
        .await
    {
        tracing::warn!(event = "partitions_failed", error = %e);
    }
    metrics.db_ready.store(true, Ordering::Relaxed);
    tracing::info!(event = "ingest_started");

    let readiness = tokio::spawn(watch_database(
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let mut leading_settings = settings.leader;
    leading_settings.raw_retention = settings.raw_retention;
    let (published, current) = tokio::sync::watch::channel(settings.catalog.clone().map(Arc::new));
    let notifying = settings.notify.map(|n| {
        tokio::spawn(notify::run(
            store.clone(),
            n,
            current,
            clock.clone(),
            shutdown.clone(),
        ))
    });
    let leading = tokio::spawn(leader::run(
        store.clone(),
        leading_settings,
        (settings.catalog, settings.kept),
        metrics.clone(),
        clock.clone(),
        published,
        shutdown.clone(),
    ));
    let handler = Handler::new(
        store,
        metrics.clone(),
        clock.clone(),
        settings.max_message_bytes,
        settings.raw_retention,
    );
    match settings.source {
        Source::Sqs(sqs, s) => {
            consume::sqs::run(sqs, s, handler, metrics, clock, shutdown.clone()).await
        }
        Source::Channel(rx) => {
            // In process, nothing queues unseen: the lag is known, and none.
            metrics.set_lag(0);
            consume::channel::run(handler, rx, shutdown.clone()).await
        }
    }
    shutdown.cancel();
    let _ = leading.await;
    if let Some(n) = notifying {
        let _ = n.await;
    }
    let _ = readiness.await;
    tracing::info!(event = "ingest_stopped");
    Ok(())
}

/// Marks the database ready or not: every second while it is down, every
/// five while it is up. Workers receive only while it is ready.
async fn watch_database(store: Store, metrics: Arc<IngestMetrics>, shutdown: CancellationToken) {
    loop {
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(3), store.ping()).await,
            Ok(Ok(()))
        );
        if metrics.db_ready.swap(ok, Ordering::Relaxed) != ok {
            tracing::info!(
                event = if ok {
                    "database_ready"
                } else {
                    "database_not_ready"
                }
            );
        }
        let wait = if ok {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

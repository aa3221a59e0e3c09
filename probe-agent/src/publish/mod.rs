//! Publishing results: batches that close by size and by time, messages that
//! stay under the SQS limit (split, or gzip+base64 and marked), heartbeats
//! when nothing is due, and a bounded buffer in front of it all.
//!
//! A [`Publisher`] sends messages: [`sqs::SqsPublisher`] in the distributed
//! shape, [`channel::ChannelPublisher`] in standalone.

pub mod channel;
pub mod sqs;

use crate::buffer::{Buffer, Limits, RawResult};
use crate::spool::Spool;
use crate::telemetry::{BATCHES, BYTES, DROPPED, PUBLISH_ERRORS, SPOOL_CORRUPT, SPOOLED};
use chrono::Utc;
use config::wire::{self, AgentInfo, Encoded, ProbeResult, ResultBatch, Timestamp};
use metrics::{Counter, counter};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One message ready to send, with the results it carries (to requeue on failure).
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The encoded body and its encoding attribute.
    pub encoded: Encoded,
    /// The batch, its results as their JSON: what a failed send puts back,
    /// and what publishers that need no encoding hand over.
    pub batch: ResultBatch<RawResult>,
}

impl Outgoing {
    /// The bytes SQS counts for this message: body plus attribute.
    pub fn size(&self) -> usize {
        sqs_size(&self.encoded)
    }
}

/// The bytes SQS counts for an encoded message: body plus attribute.
fn sqs_size(encoded: &Encoded) -> usize {
    encoded.body.len()
        + encoded.encoding.map_or(0, |e| {
            wire::ENCODING_ATTRIBUTE.len() + e.len() + "String".len()
        })
}

/// Sends messages somewhere. Returns the messages that could not be sent.
pub trait Publisher: Send + Sync {
    /// Sends `messages`; what comes back was not delivered and will be retried later.
    fn publish(&self, messages: Vec<Outgoing>) -> impl Future<Output = Vec<Outgoing>> + Send;
}

/// Encodes `results` into messages of at most `max_bytes` each: plain JSON
/// when it fits, else gzip+base64 (when the JSON is within what ingest
/// decompresses, [`wire::decompressed_cap`]), else split in two and tried
/// again.
pub fn messages(agent: &AgentInfo, results: Vec<RawResult>, max_bytes: usize) -> Vec<Outgoing> {
    let batch = ResultBatch {
        v: wire::VERSION,
        agent: agent.clone(),
        sent_at: Timestamp::new(Utc::now()),
        results,
    };
    let mut out = Vec::new();
    split_into(batch, max_bytes, &mut out);
    out
}

// The batch moves into its message or into its two halves: a large batch
// is never copied on the way down.
fn split_into(batch: ResultBatch<RawResult>, max_bytes: usize, out: &mut Vec<Outgoing>) {
    let plain = wire::encode(&batch, false).ok();
    let json_len = plain.as_ref().map_or(usize::MAX, |p| p.body.len());
    if let Some(encoded) = plain.filter(|p| sqs_size(p) <= max_bytes) {
        out.push(Outgoing { encoded, batch });
        return;
    }
    // Compressed only while ingest will decompress it whole: a batch past
    // the cap would be refused (and dead-lettered) however small it packs.
    if json_len <= wire::decompressed_cap(max_bytes)
        && let Ok(encoded) = wire::encode(&batch, true)
        && sqs_size(&encoded) <= max_bytes
    {
        out.push(Outgoing { encoded, batch });
        return;
    }
    if batch.results.len() <= 1 {
        // One result larger than a message even compressed: it cannot be sent.
        return;
    }
    let mut first = batch;
    let second = ResultBatch {
        v: first.v,
        agent: first.agent.clone(),
        sent_at: first.sent_at,
        results: first.results.split_off(first.results.len() / 2),
    };
    split_into(first, max_bytes, out);
    split_into(second, max_bytes, out);
}

/// How the publishing loop behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Who we are, in every batch.
    pub agent: AgentInfo,
    /// The most bytes in one message and in one send.
    pub max_message_bytes: usize,
    /// A batch closes at least this often.
    pub flush_every: Duration,
    /// An empty batch goes out when nothing was sent for this long.
    pub heartbeat_every: Duration,
    /// The buffer's limits.
    pub limits: Limits,
    /// How long shutdown may spend flushing.
    pub drain_deadline: Duration,
    /// Where undeliverable results go while SQS is unreachable (`--spool-dir`).
    pub spool: Option<Spool>,
}

/// What the publishing loop counts: handles registered, when made, with the
/// current recorder.
#[derive(Debug)]
pub struct PublishStats {
    /// Results dropped because the buffer (or the spool) was full.
    dropped: Counter,
    /// Messages sent.
    pub batches: Counter,
    /// Bytes sent.
    pub bytes: Counter,
    /// Sends that failed (the results were kept).
    pub errors: Counter,
    /// Results held right now (a gauge, published at scrape time).
    pub depth: AtomicU64,
    /// Results written to the disk spool.
    pub spooled: Counter,
    /// Spool lines that could not be read back (skipped).
    pub spool_corrupt: Counter,
    /// When the loop last turned or a send last ran (liveness).
    pub beat: crate::beat::Beat,
    /// Lifetime totals for the agent's stop log (a counter cannot be read back).
    taken: AtomicU64,
    lost: AtomicU64,
}

impl Default for PublishStats {
    fn default() -> Self {
        Self {
            dropped: counter!(DROPPED),
            batches: counter!(BATCHES),
            bytes: counter!(BYTES),
            errors: counter!(PUBLISH_ERRORS),
            depth: AtomicU64::new(0),
            spooled: counter!(SPOOLED),
            spool_corrupt: counter!(SPOOL_CORRUPT),
            beat: crate::beat::Beat::default(),
            taken: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }
}

impl PublishStats {
    /// Results taken from the probes, and results dropped, so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.taken.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
        )
    }

    fn take(&self, buffer: &mut Buffer, r: ProbeResult) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.drop_results(buffer.push(r));
    }

    fn drop_results(&self, n: u64) {
        self.dropped.increment(n);
        self.lost.fetch_add(n, Ordering::Relaxed);
    }
}

/// How much of the buffer one publish takes, in messages' worth of JSON: a
/// few SendMessageBatch calls at most (gzip shrinks results several-fold).
/// A publish holds its results' JSON twice (to keep them if it is cut
/// short) besides its messages, so this bounds memory beyond the buffer's
/// own bound while SQS fails.
const CHUNK_MESSAGES: usize = 10;

/// One publish under way: the future, and a copy of the results it carries,
/// so that a publish cut short at shutdown loses nothing that a spool can keep.
struct Flight<'a> {
    results: Vec<RawResult>,
    sending: std::pin::Pin<Box<dyn Future<Output = Sent> + Send + 'a>>,
}

/// What one publish hands back.
struct Sent {
    failed: Vec<Outgoing>,
    count: u64,
    bytes: usize,
}

/// Moves results from `results` through the buffer to `publisher` until
/// `shutdown`, then flushes what is left within the drain deadline.
///
/// The results keep flowing into the buffer while a publish is under way:
/// a queue that hangs fills the buffer (bounded, oldest dropped and
/// counted), never the channel, so the probes never wait on SQS.
pub async fn run<P: Publisher>(
    settings: Settings,
    publisher: Arc<P>,
    mut results: mpsc::Receiver<ProbeResult>,
    stats: Arc<PublishStats>,
    shutdown: CancellationToken,
) -> Buffer {
    let mut buffer = Buffer::new(settings.limits);
    let mut flush = tokio::time::interval(settings.flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent = Instant::now();
    let mut flight: Option<Flight<'_>> = None;
    loop {
        stats.beat.touch();
        stats.beat.set_busy(flight.is_some());
        tokio::select! {
            got = results.recv() => match got {
                Some(r) => {
                    stats.take(&mut buffer, r);
                    if flight.is_none() && buffer.bytes() >= settings.max_message_bytes {
                        flight = Some(take_off(&settings, &*publisher, &mut buffer, &stats));
                    }
                }
                None => break,
            },
            _ = flush.tick(), if flight.is_none() => {
                if !buffer.is_empty() || last_sent.elapsed() >= settings.heartbeat_every {
                    flight = Some(take_off(&settings, &*publisher, &mut buffer, &stats));
                }
            }
            sent = landing(&mut flight) => {
                flight = None;
                // A round goes on while it delivers and the buffer holds more.
                if land(&settings, &mut buffer, &stats, sent) {
                    last_sent = Instant::now();
                    if !buffer.is_empty() {
                        flight = Some(take_off(&settings, &*publisher, &mut buffer, &stats));
                    }
                }
            }
            _ = shutdown.cancelled() => break,
        }
        set_depth(&stats, &buffer);
    }
    stats.beat.set_busy(false);
    // Drain: what the probes still hand over, the publish under way, then
    // everything buffered.
    while let Ok(r) = results.try_recv() {
        stats.take(&mut buffer, r);
    }
    let deadline = Instant::now() + settings.drain_deadline;
    loop {
        let next = match flight.take() {
            Some(f) => f,
            None if !buffer.is_empty() && Instant::now() < deadline => {
                take_off(&settings, &*publisher, &mut buffer, &stats)
            }
            None => break,
        };
        match tokio::time::timeout_at(deadline, next.sending).await {
            Ok(sent) => {
                if !land(&settings, &mut buffer, &stats, sent) {
                    tokio::time::sleep_until(
                        (Instant::now() + Duration::from_millis(200)).min(deadline),
                    )
                    .await;
                }
            }
            Err(_) => {
                // Cut short: its results are kept like any undelivered ones.
                keep(&settings, &mut buffer, &stats, next.results);
                break;
            }
        }
    }
    // Still undelivered at the deadline: onto the spool, if there is one.
    if settings.spool.is_some() && !buffer.is_empty() {
        let rest = buffer.take(usize::MAX);
        keep(&settings, &mut buffer, &stats, rest);
    }
    set_depth(&stats, &buffer);
    buffer
}

fn set_depth(stats: &PublishStats, buffer: &Buffer) {
    stats.depth.store(buffer.len() as u64, Ordering::Relaxed);
}

/// Starts publishing the oldest chunk of the buffer (a heartbeat when it is
/// empty); once the buffer is emptied and all of it delivered, spooled
/// results follow.
fn take_off<'a, P: Publisher>(
    settings: &'a Settings,
    publisher: &'a P,
    buffer: &mut Buffer,
    stats: &'a PublishStats,
) -> Flight<'a> {
    let dropped = buffer.dropped();
    let taken = buffer.take(settings.max_message_bytes * CHUNK_MESSAGES);
    stats.drop_results(buffer.dropped() - dropped);
    let last = buffer.is_empty();
    let outgoing = messages(&settings.agent, taken.clone(), settings.max_message_bytes);
    let sending = Box::pin(async move {
        let count = outgoing.len() as u64;
        let bytes = outgoing.iter().map(Outgoing::size).sum();
        let failed = publisher.publish(outgoing).await;
        if failed.is_empty() && last {
            send_spooled(settings, publisher, stats).await;
        }
        Sent {
            failed,
            count,
            bytes,
        }
    });
    Flight {
        results: taken,
        sending,
    }
}

/// The publish under way, if there is one; never ready otherwise.
async fn landing(flight: &mut Option<Flight<'_>>) -> Sent {
    match flight {
        Some(f) => (&mut f.sending).await,
        None => std::future::pending().await,
    }
}

/// Counts what a publish delivered and keeps what it did not; true when
/// all of it was delivered.
fn land(settings: &Settings, buffer: &mut Buffer, stats: &PublishStats, sent: Sent) -> bool {
    let failed_count = sent.failed.len() as u64;
    let failed_bytes: usize = sent.failed.iter().map(Outgoing::size).sum();
    stats.batches.increment(sent.count - failed_count);
    stats.bytes.increment((sent.bytes - failed_bytes) as u64);
    if sent.failed.is_empty() {
        return true;
    }
    stats.errors.increment(failed_count);
    let results: Vec<RawResult> = sent
        .failed
        .into_iter()
        .flat_map(|o| o.batch.results)
        .collect();
    keep(settings, buffer, stats, results);
    false
}

/// Keeps undelivered results: on disk when there is a spool, else back in the buffer.
fn keep(settings: &Settings, buffer: &mut Buffer, stats: &PublishStats, results: Vec<RawResult>) {
    if let Some(spool) = &settings.spool {
        match spool.spill(&results) {
            Ok(dropped) => {
                stats.spooled.increment(results.len() as u64);
                stats.drop_results(dropped);
                return;
            }
            Err(e) => {
                tracing::error!(event = "spool_write_failed", error = %e, "keeping the results in memory")
            }
        }
    }
    stats.drop_results(buffer.requeue(results));
}

/// Sends spooled results, oldest file first, while SQS takes them; a file is
/// removed only once all of it was delivered.
async fn send_spooled<P: Publisher>(settings: &Settings, publisher: &P, stats: &PublishStats) {
    let Some(spool) = &settings.spool else { return };
    for _ in 0..8 {
        let spooled = match spool.oldest() {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(event = "spool_read_failed", error = %e);
                return;
            }
        };
        let outgoing = messages(
            &settings.agent,
            spooled.results.clone(),
            settings.max_message_bytes,
        );
        let count = outgoing.len() as u64;
        if !publisher.publish(outgoing).await.is_empty() {
            stats.errors.increment(1);
            return;
        }
        stats.batches.increment(count);
        stats.spool_corrupt.increment(spooled.corrupt);
        if spooled.corrupt > 0 {
            tracing::warn!(event = "spool_corrupt_lines", file = %spooled.path.display(), lines = spooled.corrupt);
        }
        if let Err(e) = spool.remove(&spooled) {
            tracing::error!(event = "spool_remove_failed", error = %e);
            return;
        }
    }
}

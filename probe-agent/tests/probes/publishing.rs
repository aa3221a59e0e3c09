//! Publishing through a real SQS-protocol server (moto, started by
//! scripts/test), behind a loopback proxy the test can cut to simulate an
//! outage without losing moto's in-memory queue.

use crate::eventually;
use crate::meter::Meter;
use config::wire::{self, AgentInfo, Phases, ProbeResult, ResultBatch, Timestamp};
use probe_agent::buffer::{Limits, RawResult, encode};
use probe_agent::publish::sqs::{Backoff, SqsPublisher};
use probe_agent::publish::{
    PublishStats, Publisher, Settings, channel::ChannelPublisher, messages, run,
};
use probe_agent::telemetry::{BATCHES, DROPPED, PUBLISH_ERRORS, SPOOL_CORRUPT, SPOOLED};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at an SQS-protocol server; scripts/test starts moto")
}

/// A TCP proxy to moto that can be cut (connections dropped) and restored.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let upstream: SocketAddr = endpoint().trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (c, j) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                j.lock().await.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Proxy { addr, cut, conns }
    }

    async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.conns.lock().await.abort_all();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .load()
        .await;
    aws_sdk_sqs::Client::new(&conf)
}

async fn fresh_queue(sqs: &aws_sdk_sqs::Client, tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    sqs.create_queue()
        .queue_name(format!("{tag}-{nanos}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Every batch in the queue, decoded, deleting as it goes.
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<ResultBatch> {
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
        }
        for m in msgs {
            let enc = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get(wire::ENCODING_ATTRIBUTE))
                .and_then(|v| v.string_value().map(str::to_string));
            out.push(
                wire::decode(
                    m.body().unwrap_or_default(),
                    enc.as_deref(),
                    wire::DEFAULT_MAX_MESSAGE_BYTES,
                )
                .expect("a valid batch"),
            );
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

fn result(n: i64, message: &str) -> ProbeResult {
    let t = Timestamp::from_unix_ms(1_780_000_000_000 + n * 1000).unwrap();
    let mut r = ProbeResult::new("c", "h", "agent-a", t, 30_000_000, 1);
    r.duration_us = 1234;
    r.phases = Phases {
        connect_us: Some(100),
        ..Phases::default()
    };
    r.set_message(message);
    r
}

fn settings(max: usize, limits: Limits) -> Settings {
    Settings {
        agent: AgentInfo {
            id: "agent-a".into(),
            zone: "z1".into(),
            region: "r".into(),
            label: String::new(),
        },
        max_message_bytes: max,
        flush_every: Duration::from_millis(200),
        heartbeat_every: Duration::from_millis(600),
        limits,
        drain_deadline: Duration::from_secs(10),
        spool: None,
    }
}

fn ids(batches: &[ResultBatch]) -> BTreeSet<String> {
    batches
        .iter()
        .flat_map(|b| b.results.iter().map(|r| r.id.clone()))
        .collect()
}

#[test]
fn messages_stay_under_the_limit_by_splitting_or_compressing() {
    let agent = AgentInfo {
        id: "a".into(),
        zone: String::new(),
        region: String::new(),
        label: String::new(),
    };
    // Varied text, so compression alone cannot make 200 results fit one message.
    let noise = |n: i64| {
        (0..25)
            .map(|i| format!("{:016x}", probe_agent::fleet::mix((n * 100 + i) as u64)))
            .collect::<String>()
    };
    let results: Vec<_> = (0..200).map(|n| result(n, &noise(n))).collect();
    let out = messages(&agent, raw(&results), 8 * 1024);
    assert!(out.len() > 1);
    assert!(out.iter().all(|m| m.size() <= 8 * 1024));
    assert!(
        out.iter()
            .any(|m| m.encoded.encoding == Some(wire::GZIP_BASE64)),
        "repetitive results compress"
    );
    assert_eq!(
        out.iter().map(|m| m.batch.results.len()).sum::<usize>(),
        200,
        "nothing lost in the split"
    );
    // The bodies, written from the held JSON, read back as ingest reads
    // them: every result, whole and in order.
    let back: Vec<ProbeResult> = out
        .iter()
        .flat_map(|m| {
            wire::decode_message(&m.encoded.body, m.encoded.encoding, 8 * 1024)
                .unwrap()
                .results
        })
        .collect();
    assert_eq!(back, results);
}

/// Results as the buffer holds them.
fn raw(results: &[ProbeResult]) -> Vec<RawResult> {
    results.iter().map(|r| encode(r).unwrap()).collect()
}

#[test]
fn a_compressed_message_never_decompresses_past_what_ingest_reads() {
    let agent = AgentInfo {
        id: "a".into(),
        zone: String::new(),
        region: String::new(),
        label: String::new(),
    };
    // Highly repetitive results: 2,000 of them would pack into one small
    // gzip body, but their JSON is far past what ingest decompresses.
    let results: Vec<_> = (0..2_000).map(|n| result(n, &"same".repeat(100))).collect();
    let max = 16 * 1024;
    let out = messages(&agent, raw(&results), max);
    assert!(out.len() > 1, "split by the decompressed size");
    for m in &out {
        assert!(m.size() <= max);
        // What ingest does with it.
        let back = wire::decode_message(&m.encoded.body, m.encoded.encoding, max);
        assert!(back.is_ok(), "{:?}", back.err());
    }
    assert_eq!(
        out.iter().map(|m| m.batch.results.len()).sum::<usize>(),
        2_000
    );
}

#[tokio::test]
async fn results_and_heartbeats_arrive_in_the_queue_with_their_ids() {
    let sqs = client(&endpoint()).await;
    let queue = fresh_queue(&sqs, "publish").await;
    let publisher = Arc::new(SqsPublisher::new(
        sqs.clone(),
        queue.clone(),
        16 * 1024,
        Backoff::default(),
    ));
    let (tx, rx) = mpsc::channel(64);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(PublishStats::default));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        settings(16 * 1024, Limits::default()),
        publisher,
        rx,
        stats.clone(),
        shutdown.clone(),
    ));
    let sent: Vec<_> = (0..25).map(|n| result(n, "ok")).collect();
    for r in &sent {
        tx.send(r.clone()).await.unwrap();
    }
    // The results go out at once (they fill a message); a heartbeat follows a flush later.
    eventually(10, "the results and a heartbeat are sent", || {
        meter.value(BATCHES) >= 2 && stats.depth.load(Ordering::Relaxed) == 0
    })
    .await;
    shutdown.cancel();
    let left = task.await.unwrap();
    assert!(left.is_empty());
    let batches = drain(&sqs, &queue).await;
    assert_eq!(ids(&batches), sent.iter().map(|r| r.id.clone()).collect());
    assert!(
        batches.iter().any(|b| b.results.is_empty()),
        "an idle agent sends heartbeats"
    );
    assert!(batches.iter().all(|b| b.agent.id == "agent-a" && b.v == 1));
    let got = batches
        .iter()
        .flat_map(|b| &b.results)
        .find(|r| r.id == sent[0].id)
        .unwrap();
    assert_eq!(got.phases.connect_us, Some(100));
}

#[tokio::test]
async fn an_outage_loses_nothing_within_the_bound_and_exactly_the_overflow_past_it() {
    let proxy = Proxy::start().await;
    let direct = client(&endpoint()).await;
    let queue = fresh_queue(&direct, "outage").await;
    let via_proxy = client(&format!("http://{}", proxy.addr)).await;
    let backoff = Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(100),
        attempts: 2,
    };
    let publisher = Arc::new(SqsPublisher::new(
        via_proxy,
        queue.clone(),
        16 * 1024,
        backoff,
    ));
    let (tx, rx) = mpsc::channel(256);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(PublishStats::default));
    let shutdown = CancellationToken::new();
    let limits = Limits {
        results: 30,
        bytes: 1 << 20,
    };
    let task = tokio::spawn(run(
        settings(16 * 1024, limits),
        publisher,
        rx,
        stats.clone(),
        shutdown.clone(),
    ));

    proxy.cut().await;
    let sent: Vec<_> = (0..35).map(|n| result(n, "during the outage")).collect();
    for r in &sent {
        tx.send(r.clone()).await.unwrap();
    }
    eventually(15, "sends fail and the overflow is dropped", || {
        meter.value(PUBLISH_ERRORS) > 0 && meter.value(DROPPED) >= 5
    })
    .await;
    assert_eq!(
        meter.value(DROPPED),
        5,
        "exactly the overflow past 30 results is dropped"
    );
    proxy.restore();
    eventually(15, "the buffer empties once SQS is back", || {
        stats.depth.load(Ordering::Relaxed) == 0
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();

    let batches = drain(&direct, &queue).await;
    let expected: BTreeSet<String> = sent[5..].iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids(&batches),
        expected,
        "the newest 30 arrive once SQS is back; the oldest 5 were dropped"
    );
}

/// An SQS endpoint that hangs: it takes every connection, counts it, and
/// never answers, as a black-holed network path does.
async fn hung_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}"), accepted)
}

fn hung_backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(20),
        attempts: 2,
    }
}

#[tokio::test]
async fn a_queue_that_never_answers_ends_a_publish_after_its_first_failed_call() {
    let (endpoint, accepted) = hung_endpoint().await;
    let publisher = SqsPublisher::new(
        client(&endpoint).await,
        format!("{endpoint}/000000000000/hung"),
        16 * 1024,
        hung_backoff(),
    );
    let agent = settings(16 * 1024, Limits::default()).agent;
    // Thirty messages: three SendMessageBatch calls' worth.
    let outgoing: Vec<_> = (0..30)
        .flat_map(|n| messages(&agent, raw(&[result(n, "hung")]), 16 * 1024))
        .collect();
    assert_eq!(outgoing.len(), 30);
    let undelivered = publisher.publish(outgoing).await;
    assert_eq!(
        undelivered.len(),
        30,
        "every message comes back undelivered"
    );
    let calls = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&calls),
        "only the first call's two attempts reached the queue, not every call's: {calls} connections"
    );
}

#[tokio::test]
async fn the_probes_never_wait_on_a_hung_queue_and_nothing_is_lost() {
    let (endpoint, accepted) = hung_endpoint().await;
    let publisher = Arc::new(SqsPublisher::new(
        client(&endpoint).await,
        format!("{endpoint}/000000000000/hung"),
        16 * 1024,
        hung_backoff(),
    ));
    // A small channel: with the publisher stuck in a send, it would be full
    // after four results and every probe would wait on SQS.
    let (tx, rx) = mpsc::channel(4);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(PublishStats::default));
    let shutdown = CancellationToken::new();
    let mut s = settings(16 * 1024, Limits::default());
    s.flush_every = Duration::from_millis(100);
    s.drain_deadline = Duration::from_millis(500);
    let task = tokio::spawn(run(s, publisher, rx, stats.clone(), shutdown.clone()));
    eventually(5, "a send under way against the hung queue", || {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    let sent: Vec<_> = (0..60).map(|n| result(n, "during the hang")).collect();
    // Paced like probes: a result every 20 ms, over a few hung attempts.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for r in &sent {
        pace.tick().await;
        // Each attempt hangs for two seconds: a publisher that stopped
        // taking results during it would hold this send that long.
        tokio::time::timeout(Duration::from_secs(1), tx.send(r.clone()))
            .await
            .expect("the publisher took the result while its send hung")
            .unwrap();
    }
    eventually(10, "a failed send counted", || {
        meter.value(PUBLISH_ERRORS) > 0
    })
    .await;
    shutdown.cancel();
    let left = task.await.unwrap();
    assert_eq!(meter.value(DROPPED), 0, "nothing dropped within the bound");
    assert_eq!(
        left.len(),
        sent.len(),
        "every result is still held when the agent stops"
    );
}

#[tokio::test]
async fn shutdown_flushes_buffered_results_before_returning() {
    let sqs = client(&endpoint()).await;
    let queue = fresh_queue(&sqs, "flush").await;
    let publisher = Arc::new(SqsPublisher::new(
        sqs.clone(),
        queue.clone(),
        16 * 1024,
        Backoff::default(),
    ));
    let (tx, rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let mut s = settings(16 * 1024, Limits::default());
    s.flush_every = Duration::from_secs(3600);
    s.heartbeat_every = Duration::from_secs(3600);
    let task = tokio::spawn(run(
        s,
        publisher,
        rx,
        Arc::new(PublishStats::default()),
        shutdown.clone(),
    ));
    let sent: Vec<_> = (0..7).map(|n| result(n, "buffered")).collect();
    for r in &sent {
        tx.send(r.clone()).await.unwrap();
    }
    // The publisher has taken them all (the interval's first, immediate tick
    // may have sent some; the rest wait for a flush an hour away).
    eventually(5, "the publisher takes every result", || {
        tx.capacity() == tx.max_capacity()
    })
    .await;
    shutdown.cancel();
    assert!(task.await.unwrap().is_empty());
    let batches = drain(&sqs, &queue).await;
    assert_eq!(ids(&batches), sent.iter().map(|r| r.id.clone()).collect());
}

#[tokio::test]
async fn the_channel_publisher_hands_batches_over_in_process() {
    let (batches_tx, mut batches_rx) = mpsc::channel(16);
    let (tx, rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        settings(256 * 1024, Limits::default()),
        Arc::new(ChannelPublisher::new(batches_tx)),
        rx,
        Arc::new(PublishStats::default()),
        shutdown.clone(),
    ));
    tx.send(result(1, "x")).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(2), batches_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.results.len(), 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn spooled_results_survive_a_killed_agent_and_are_delivered_after_restart() {
    let proxy = Proxy::start().await;
    let direct = client(&endpoint()).await;
    let queue = fresh_queue(&direct, "spool").await;
    let root = std::env::temp_dir().join(format!("statuspage-spool-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let backoff = Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(50),
        attempts: 2,
    };
    let with_spool = |limits| {
        let mut s = settings(16 * 1024, limits);
        s.spool = Some(probe_agent::spool::Spool::open(&root, "agent-a", 1 << 20).unwrap());
        s
    };

    // First life: SQS is unreachable; results go to the spool; then the agent is killed (no drain).
    proxy.cut().await;
    let publisher = Arc::new(SqsPublisher::new(
        client(&format!("http://{}", proxy.addr)).await,
        queue.clone(),
        16 * 1024,
        backoff,
    ));
    let (tx, rx) = mpsc::channel(256);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(PublishStats::default));
    let first = tokio::spawn(run(
        with_spool(Limits::default()),
        publisher.clone(),
        rx,
        stats.clone(),
        CancellationToken::new(),
    ));
    let sent: Vec<_> = (0..12).map(|n| result(n, "spooled")).collect();
    for r in &sent {
        tx.send(r.clone()).await.unwrap();
    }
    eventually(10, "all results are on disk", || meter.value(SPOOLED) >= 12).await;
    assert_eq!(meter.value(SPOOLED), 12, "all results are on disk, once");
    first.abort();
    let _ = first.await;
    drop(tx);

    // Corrupt one more spool file, as a crash or a bad disk might.
    let spool_dir = root.join("agent-a");
    std::fs::write(
        spool_dir.join("00000000000000000099.jsonl"),
        "{\"id\": broken\n",
    )
    .unwrap();

    // Second life: SQS is back.
    proxy.restore();
    let (tx, rx) = mpsc::channel(16);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(PublishStats::default));
    let shutdown = CancellationToken::new();
    let second = tokio::spawn(run(
        with_spool(Limits::default()),
        publisher,
        rx,
        stats.clone(),
        shutdown.clone(),
    ));
    eventually(15, "the spool is sent and emptied", || {
        meter.value(SPOOL_CORRUPT) >= 1
            && std::fs::read_dir(&spool_dir)
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    })
    .await;
    shutdown.cancel();
    second.await.unwrap();
    drop(tx);
    assert_eq!(
        meter.value(SPOOL_CORRUPT),
        1,
        "the corrupt line is skipped and counted"
    );
    let batches = drain(&direct, &queue).await;
    assert_eq!(
        ids(&batches),
        sent.iter().map(|r| r.id.clone()).collect(),
        "every spooled result is delivered after the restart"
    );
    assert_eq!(
        std::fs::read_dir(&spool_dir).unwrap().count(),
        0,
        "delivered files are removed"
    );
    std::fs::remove_dir_all(root).unwrap();
}

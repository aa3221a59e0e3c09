//! Builders and helpers shared by the ingest tests.

use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, ResultBatch, Timestamp};
use ingest::store::PgStore;
use sqlx::PgPool;
use std::path::PathBuf;

pub const MINUTE: i64 = 60_000;

/// Real now, in ms.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A minute boundary an hour ago: the first slot of a test's history.
pub fn start() -> i64 {
    (now() - 60 * MINUTE) / MINUTE * MINUTE
}

/// A result of `check` from `agent` for the slot `at`.
pub fn result(check: &str, agent: &str, at: i64, up: bool) -> ProbeResult {
    let mut r = ProbeResult::new(
        check,
        "hash",
        agent,
        Timestamp::from_unix_ms(at).expect("a valid instant"),
        60_000_000,
        3,
    );
    if !up {
        r.outcome = Outcome::Down;
        r.reason = Reason::ConnectRefused;
        r.set_message("connection refused");
    }
    r.duration_us = 1234;
    r
}

/// A batch from `agent` (zone `z-<agent>`).
pub fn batch(agent: &str, results: Vec<ProbeResult>) -> ResultBatch {
    ResultBatch {
        v: 1,
        agent: AgentInfo {
            id: agent.into(),
            zone: format!("z-{agent}"),
            region: "test-1".into(),
        },
        sent_at: Timestamp::from_unix_ms(now()).expect("now"),
        results,
    }
}

/// A migrated store over the test's database, with partitions made.
pub async fn store(pool: PgPool) -> PgStore {
    let store = PgStore::from_pool(pool);
    store.migrate().await.expect("migrations apply");
    store.ensure_partitions(now()).await.expect("partitions");
    store
}

/// Stores a batch as the consumer would.
pub async fn put(store: &PgStore, b: &ResultBatch) -> ingest::store::Stored {
    let screened =
        ingest::screen::screen(b.clone(), now(), ingest::screen::MAX_AGE_MS).expect("a v1 batch");
    assert!(screened.rejected.is_empty(), "{:?}", screened.rejected);
    store
        .store_batch(&b.agent, b.sent_at, &screened.accepted, now())
        .await
        .expect("stored")
}

/// `(at - start, status)` of a check's status changes.
pub async fn changes(pool: &PgPool, check: &str, start: i64) -> Vec<(i64, String)> {
    let rows: Vec<(chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
        "SELECT s.at, s.status FROM status_changes s JOIN checks c ON c.id = s.check_id
         WHERE c.slug = $1 ORDER BY s.at",
    )
    .bind(check)
    .fetch_all(pool)
    .await
    .expect("status changes");
    rows.into_iter()
        .map(|(at, s)| (at.timestamp_millis() - start, s))
        .collect()
}

/// `(state, [update messages])` of each incident of a check, oldest first.
pub async fn incidents(pool: &PgPool, check: &str) -> Vec<(String, Vec<String>)> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT i.id, i.state FROM incidents i JOIN checks c ON c.id = i.check_id
         WHERE c.slug = $1 ORDER BY i.id",
    )
    .bind(check)
    .fetch_all(pool)
    .await
    .expect("incidents");
    let mut out = Vec::new();
    for (id, state) in rows {
        let updates: Vec<String> = sqlx::query_scalar(
            "SELECT message FROM incident_updates WHERE incident_id = $1 ORDER BY at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("updates");
        out.push((state, updates));
    }
    out
}

/// A row count.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// A catalog from YAML text.
pub fn catalog(yaml: &str) -> config::Catalog {
    config::load_str(&[(PathBuf::from("test.yaml"), yaml.to_string())], &|_| None)
        .unwrap_or_else(|e| panic!("valid YAML: {e:?}"))
}

/// A client for the SQS-protocol server `scripts/test` started (loopback only).
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at an SQS-protocol server; scripts/test starts moto");
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "tests use loopback only: {endpoint}"
    );
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&conf)
}

/// A fresh, shallow queue with `visibility` seconds and a dead-letter queue
/// after `max_receives`; returns (queue, dlq).
pub async fn fresh_queue(
    sqs: &aws_sdk_sqs::Client,
    tag: &str,
    visibility: u32,
    max_receives: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{tag}-dlq-{nanos}"))
        .send()
        .await
        .expect("create the DLQ")
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{tag}-{nanos}"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!("{{\"deadLetterTargetArn\":\"{arn}\",\"maxReceiveCount\":\"{max_receives}\"}}"),
        )
        .send()
        .await
        .expect("create the queue")
        .queue_url
        .unwrap();
    (queue, dlq)
}

/// Sends one raw body, with the encoding attribute when given.
pub async fn send_raw(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str, encoding: Option<&str>) {
    let mut m = sqs.send_message().queue_url(queue).message_body(body);
    if let Some(e) = encoding {
        m = m.message_attributes(
            config::wire::ENCODING_ATTRIBUTE,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(e)
                .build()
                .unwrap(),
        );
    }
    m.send().await.expect("send");
}

/// Sends a batch the way agents do (gzip+base64).
pub async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, b: &ResultBatch) {
    let encoded = config::wire::encode(b, true).unwrap();
    send_raw(sqs, queue, &encoded.body, encoded.encoding).await;
}

/// How many messages a queue holds (visible and in flight).
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> i64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let a = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// A running in-process ingest ("replica").
pub struct Replica {
    pub metrics: std::sync::Arc<ingest::metrics::IngestMetrics>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), ingest::store::StoreError>>,
}

impl Replica {
    /// Starts ingest on `queue` over `store`, reading `config` (if any).
    pub fn start(
        store: PgStore,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
        dlq: Option<&str>,
        config: Vec<PathBuf>,
        max_message_bytes: usize,
    ) -> Replica {
        let metrics = std::sync::Arc::new(ingest::metrics::IngestMetrics::new());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let settings = ingest::Settings {
            source: ingest::Source::Sqs(
                sqs.clone(),
                ingest::consume::sqs::Settings {
                    queue_url: queue.into(),
                    workers: 2,
                    wait_seconds: 1,
                    visibility_timeout: std::time::Duration::from_secs(30),
                },
            ),
            max_message_bytes,
            raw_retention: std::time::Duration::from_secs(7 * 86_400),
            leader: ingest::leader::Settings {
                config: config.clone(),
                env: std::sync::Arc::new(|_: &str| None),
                tick_every: std::time::Duration::from_millis(500),
                retire_after: std::time::Duration::from_secs(600),
                dead_letter_queue: dlq.map(|d| (sqs.clone(), d.to_string())),
                raw_retention: std::time::Duration::ZERO,
            },
            catalog: if config.is_empty() {
                None
            } else {
                Some(config::load(&config, &|_| None).expect("valid config"))
            },
        };
        let clock: ingest::consume::Clock = std::sync::Arc::new(now);
        let task = tokio::spawn(ingest::run(
            settings,
            store,
            metrics.clone(),
            clock,
            shutdown.clone(),
        ));
        Replica {
            metrics,
            shutdown,
            task,
        }
    }

    /// Stops it and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("no panic").expect("clean stop");
    }
}

/// Polls `what` every 100 ms until it holds, or panics after `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {secs}s");
}

//! Builders and helpers shared by the ingest tests.

use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, ResultBatch, Timestamp};
use ingest::store::{PgStore, Store};
use sqlx::{PgPool, SqlitePool};
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
            label: String::new(),
        },
        sent_at: Timestamp::from_unix_ms(now()).expect("now"),
        results,
    }
}

/// A migrated PostgreSQL store over the test's database, with partitions made.
pub async fn store(pool: PgPool) -> Store {
    let store = Store::Pg(PgStore::from_pool(pool, Default::default()));
    store.migrate().await.expect("migrations apply");
    store
        .ensure_partitions_back(now(), ingest::screen::MAX_AGE_MS)
        .await
        .expect("partitions");
    store
}

/// Another store on the same database over a pool of its own, as a second
/// ingest process has: its own connections, its own write turn, its own
/// lease holder.
pub async fn another_store(pool: &PgPool) -> Store {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("a second pool");
    Store::Pg(PgStore::from_pool(own, Default::default()))
}

/// Stores a batch as the consumer would.
pub async fn put(store: &Store, b: &ResultBatch) -> ingest::store::Stored {
    let screened =
        ingest::screen::screen(b.clone(), now(), ingest::screen::MAX_AGE_MS).expect("a v1 batch");
    assert!(screened.rejected.is_empty(), "{:?}", screened.rejected);
    store
        .store_batch(&b.agent, b.sent_at, &screened.accepted, now())
        .await
        .expect("stored")
}

/// A test database of either kind, with a migrated store over it. The store
/// conformance tests run each body against both.
pub struct Db {
    pub store: Store,
    view: View,
    _dir: Option<TempDir>,
}

impl std::ops::Deref for Db {
    type Target = View;
    fn deref(&self) -> &View {
        &self.view
    }
}

/// Queries on a test database of either kind.
pub enum View {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Turns a timestamp column into ms for either database.
fn ms_of(db: &View, column: &str) -> String {
    match db {
        View::Pg(_) => format!("(extract(epoch FROM {column}) * 1000)::int8"),
        View::Sqlite(_) => column.to_string(),
    }
}

impl Db {
    /// On the test's fresh PostgreSQL database.
    pub async fn pg(pool: PgPool) -> Db {
        Db {
            store: store(pool.clone()).await,
            view: View::Pg(pool),
            _dir: None,
        }
    }

    /// On a fresh SQLite file.
    pub async fn sqlite() -> Db {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "statuspage-sqlite-{}-{n}-{}",
            std::process::id(),
            now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let store = Store::connect_lazy(&url, 4, Default::default()).unwrap();
        store.migrate().await.expect("migrations apply");
        let Store::Sqlite(s) = &store else {
            unreachable!("a sqlite URL")
        };
        let pool = s.pool().clone();
        Db {
            store,
            view: View::Sqlite(pool),
            _dir: Some(TempDir(dir)),
        }
    }
}

impl View {
    /// A row count (portable SQL).
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            View::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect(sql),
            View::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect(sql),
        }
    }

    /// Runs a statement (portable SQL).
    pub async fn exec(&self, sql: &str) {
        match self {
            View::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            View::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .expect(sql);
    }

    /// Rows of `(i64, text)` from a query whose first column is an instant,
    /// written `{at}` in `sql`, which becomes ms.
    pub async fn rows(&self, sql: &str, at: &str) -> Vec<(i64, String)> {
        let sql = sql.replace("{at}", &ms_of(self, at));
        match self {
            View::Pg(p) => sqlx::query_as(&sql).fetch_all(p).await.expect(&sql),
            View::Sqlite(p) => sqlx::query_as(&sql).fetch_all(p).await.expect(&sql),
        }
    }

    /// Small integers from a query.
    pub async fn codes(&self, sql: &str) -> Vec<Option<i64>> {
        match self {
            View::Pg(p) => {
                let v: Vec<Option<i16>> = sqlx::query_scalar(sql).fetch_all(p).await.expect(sql);
                v.into_iter().map(|x| x.map(i64::from)).collect()
            }
            View::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.expect(sql),
        }
    }

    /// `(at - start, status)` of a check's status changes.
    pub async fn changes(&self, check: &str, start: i64) -> Vec<(i64, String)> {
        let sql = format!(
            "SELECT {{at}}, s.status FROM status_changes s JOIN checks c ON c.id = s.check_id
             WHERE c.slug = '{check}' ORDER BY s.at"
        );
        self.rows(&sql, "s.at")
            .await
            .into_iter()
            .map(|(at, s)| (at - start, s))
            .collect()
    }

    /// `(state, [update messages])` of each incident of a check, oldest first.
    pub async fn incidents(&self, check: &str) -> Vec<(String, Vec<String>)> {
        let ids = self
            .rows(
                &format!(
                    "SELECT i.id, i.state FROM incidents i JOIN checks c ON c.id = i.check_id
                     WHERE c.slug = '{check}' ORDER BY i.id"
                ),
                "",
            )
            .await;
        let mut out = Vec::new();
        for (id, state) in ids {
            let updates: Vec<(i64, String)> = self
                .rows(
                    &format!("SELECT id, message FROM incident_updates WHERE incident_id = {id} ORDER BY at, id"),
                    "",
                )
                .await;
            out.push((state, updates.into_iter().map(|u| u.1).collect()));
        }
        out
    }

    /// The `(at ms, status)` changes as the uptime functions take them.
    pub async fn all_changes(&self) -> Vec<(i64, ingest::status::Status)> {
        self.rows("SELECT {at}, status FROM status_changes ORDER BY at", "at")
            .await
            .into_iter()
            .map(|(at, s)| (at, ingest::status::Status::parse(&s).unwrap()))
            .collect()
    }

    /// An API maintenance window for `check` over `[start, end)` (ms).
    pub async fn add_window(&self, check: &str, start: i64, end: i64) {
        match self {
            View::Pg(p) => sqlx::query(
                "INSERT INTO maintenance_windows (source, name, checks, starts_at, ends_at, created_by)
                 VALUES ('api', 'upgrade', ARRAY[$1], to_timestamp($2 / 1000.0), to_timestamp($3 / 1000.0), 'test')",
            )
            .bind(check)
            .bind(start as f64)
            .bind(end as f64)
            .execute(p)
            .await
            .map(|_| ()),
            View::Sqlite(p) => sqlx::query(
                "INSERT INTO maintenance_windows (source, name, checks, starts_at, ends_at, created_by, created_at)
                 VALUES ('api', 'upgrade', json_array(?1), ?2, ?3, 'test', ?2)",
            )
            .bind(check)
            .bind(start)
            .bind(end)
            .execute(p)
            .await
            .map(|_| ()),
        }
        .unwrap();
    }

    /// A rollup row for every check at `bucket` (ms).
    pub async fn add_rollup(&self, level: i16, bucket: i64) {
        match self {
            View::Pg(p) => sqlx::query(
                "INSERT INTO rollups (level, check_id, bucket, count, up, measures, folded)
                 SELECT $1, id, to_timestamp($2 / 1000.0), 1, 1, ''::bytea, true FROM checks",
            )
            .bind(level)
            .bind(bucket as f64)
            .execute(p)
            .await
            .map(|_| ()),
            View::Sqlite(p) => sqlx::query(
                "INSERT INTO rollups (level, check_id, bucket, count, up, measures, folded)
                 SELECT ?1, id, ?2, 1, 1, x'', 1 FROM checks",
            )
            .bind(level)
            .bind(bucket)
            .execute(p)
            .await
            .map(|_| ()),
        }
        .unwrap();
    }

    /// `(level, count, up, measures)` of every rollup row.
    pub async fn rollups(&self) -> Vec<(i64, i64, i64, Vec<u8>)> {
        let sql = "SELECT level, count, up, measures FROM rollups ORDER BY level";
        match self {
            View::Pg(p) => {
                let v: Vec<(i16, i32, i32, Vec<u8>)> =
                    sqlx::query_as(sql).fetch_all(p).await.unwrap();
                v.into_iter()
                    .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d))
                    .collect()
            }
            View::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }
}

/// Runs each named test body (`async fn name(db: Db)`) against PostgreSQL and
/// SQLite: one body per behaviour, run twice, never copied.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[sqlx::test(migrations = false)]
                async fn postgres(pool: sqlx::PgPool) {
                    super::$name($crate::support::Db::pg(pool).await).await
                }

                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::support::Db::sqlite().await).await
                }
            }
        )*
    };
}

/// A row count on PostgreSQL.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    View::Pg(pool.clone()).count(sql).await
}

/// `(at - start, status)` of a check's status changes on PostgreSQL.
pub async fn changes(pool: &PgPool, check: &str, start: i64) -> Vec<(i64, String)> {
    View::Pg(pool.clone()).changes(check, start).await
}

/// The incidents of a check on PostgreSQL.
pub async fn incidents(pool: &PgPool, check: &str) -> Vec<(String, Vec<String>)> {
    View::Pg(pool.clone()).incidents(check).await
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

/// Ingest's metrics recorded into a recorder of their own (never the
/// process's: tests run side by side), read back through the exposition.
pub struct Meter {
    recorder: metrics_exporter_prometheus::PrometheusRecorder,
    metrics: std::sync::Arc<ingest::metrics::IngestMetrics>,
}

impl Meter {
    pub fn new() -> Meter {
        let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
        for (name, buckets) in ingest::metrics::HISTOGRAMS {
            builder = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full((*name).into()),
                    buckets,
                )
                .expect("buckets");
        }
        let recorder = builder.build_recorder();
        let metrics = metrics::with_local_recorder(&recorder, || {
            ingest::metrics::describe();
            std::sync::Arc::new(ingest::metrics::IngestMetrics::new())
        });
        Meter { recorder, metrics }
    }

    /// The instruments, to hand to ingest.
    pub fn handle(&self) -> std::sync::Arc<ingest::metrics::IngestMetrics> {
        self.metrics.clone()
    }

    /// The exposition, as a scrape sees it.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.recorder, || self.metrics.publish());
        self.recorder.handle().render()
    }

    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        config::exposition::value(&self.render(), name, labels).unwrap_or(0.0) as u64
    }

    /// Whether the last load of `--config` succeeded, as the gauge says.
    pub fn config_ok(&self) -> Option<f64> {
        config::exposition::value(
            &self.render(),
            "statuspage_ingest_config_last_reload_successful",
            &[],
        )
    }

    /// How many messages were left to redelivery past the visibility cap.
    pub fn abandoned(&self) -> u64 {
        self.count("statuspage_sqs_visibility_abandoned_total", &[])
    }

    /// How many messages had this outcome.
    pub fn messages(&self, outcome: ingest::metrics::MessageOutcome) -> u64 {
        self.count(
            "statuspage_sqs_messages_total",
            &[("outcome", outcome.as_str())],
        )
    }

    /// How many results were refused for `why`.
    pub fn rejected_count(&self, why: ingest::screen::Rejection) -> u64 {
        self.count(
            "statuspage_ingest_rejected_total",
            &[("reason", why.as_str())],
        )
    }

    /// Results inserted, duplicate and rejected so far.
    pub fn results(&self) -> (u64, u64, u64) {
        let n = |r| self.count("statuspage_ingest_results_total", &[("result", r)]);
        (n("inserted"), n("duplicate"), n("rejected"))
    }
}

impl std::ops::Deref for Meter {
    type Target = ingest::metrics::IngestMetrics;
    fn deref(&self) -> &Self::Target {
        &self.metrics
    }
}

/// A running in-process ingest ("replica").
pub struct Replica {
    pub metrics: Meter,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), ingest::store::StoreError>>,
}

impl Replica {
    /// Starts ingest on `queue` over `store`, reading `config` (if any).
    pub fn start(
        store: Store,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
        dlq: Option<&str>,
        config: Vec<PathBuf>,
        max_message_bytes: usize,
    ) -> Replica {
        let cap = std::time::Duration::from_secs(120);
        Replica::capped(store, sqs, queue, dlq, config, max_message_bytes, cap)
    }

    /// [`Replica::start`], keeping a receive invisible at most `cap`.
    pub fn capped(
        store: Store,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
        dlq: Option<&str>,
        config: Vec<PathBuf>,
        max_message_bytes: usize,
        cap: std::time::Duration,
    ) -> Replica {
        let metrics = Meter::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        // As `statuspage ingest` starts: the files it loaded are kept, so
        // the leader's reloads parse only what changed.
        let mut kept = config::Kept::default();
        let catalog = (!config.is_empty()).then(|| {
            config::load_reusing(&config, &|_| None, config::Sections::All, &mut kept)
                .expect("valid config")
        });
        let settings = ingest::Settings {
            source: ingest::Source::Sqs(
                sqs.clone(),
                ingest::consume::sqs::Settings {
                    queue_url: queue.into(),
                    workers: 2,
                    wait_seconds: 1,
                    visibility_timeout: std::time::Duration::from_secs(30),
                    visibility_cap: cap,
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
                lease: ingest::store::LEASE,
                prune_after: std::time::Duration::from_secs(7 * 86_400),
            },
            catalog,
            kept,
            notify: None,
        };
        let clock: ingest::consume::Clock = std::sync::Arc::new(now);
        let task = tokio::spawn(ingest::run(
            settings,
            store,
            metrics.handle(),
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

/// The consumer's handler over `store`, with its metrics.
pub fn handler(store: &Store) -> (ingest::consume::Handler, Meter) {
    let metrics = Meter::new();
    let clock: ingest::consume::Clock = std::sync::Arc::new(now);
    let handler = ingest::consume::Handler::new(
        store.clone(),
        metrics.handle(),
        clock,
        256 * 1024,
        std::time::Duration::from_secs(7 * 86_400),
    );
    (handler, metrics)
}

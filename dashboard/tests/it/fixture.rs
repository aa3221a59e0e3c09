//! A status page's worth of real data, written through ingest itself (the
//! catalog sync and `store_batch`), on PostgreSQL or SQLite; plus the few
//! things only an operator or a long history makes (an operator incident,
//! an outage ten days ago), written as SQL the way those would land.

use config::wire::{AgentInfo, Outcome, ProbeResult, Reason, ResultBatch, Timestamp};
use dashboard::read::Reader;
use dashboard::{AppState, pages::Site};
use ingest::store::{PgStore, Store};
use std::path::PathBuf;
use std::time::Duration;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// Hostile text, put in names, groups and incidents.
pub const SCRIPT: &str = "<script>alert('x')</script>";
pub const IMG: &str = "\"><img src=x onerror=alert(1)>";
pub const JS_URL: &str = "javascript:alert(document.cookie)";

/// The admin tokens of the fixture's operators.
pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-9876543210";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn yaml() -> String {
    let day = chrono::DateTime::<chrono::Utc>::from_timestamp_millis((now() / DAY + 2) * DAY)
        .unwrap()
        .format("%Y-%m-%dT02:00:00Z");
    format!(
        r#"
defaults:
  interval: 60s
  timeout: 5s
  locations: 3
  failure_threshold: 2
  success_threshold: 2
groups:
  - name: Core
    description: "What customers touch <first>"
    slo: {{ target: 99.99%, window: 30d }}
    checks:
      - name: Public API
        id: api
        slo: {{ target: 90%, window: 7d }}
        http:
          url: https://api.example.test/health
      - name: Website
        id: web
        http:
          url: https://www.example.test/
  - name: 'Edge {IMG}'
    checks:
      - name: Database port
        id: db
        tcp:
          host: db.example.test
          port: 5432
      - name: Hidden backend
        id: secret
        public: false
        tcp:
          host: secret.example.test
          port: 9000
      - name: "{SCRIPT}"
        id: xss
        description: "{JS_URL}"
        tcp:
          host: xss.example.test
          port: 1
maintenance:
  - name: "Database upgrade {SCRIPT}"
    description: Planned upgrade.
    checks: [db, secret]
    start: {day}
    duration: 2h
"#
    )
}

/// A result of `check` from `agent` at `at`.
fn result(check: &str, agent: &str, at: i64, up: bool) -> ProbeResult {
    let mut r = ProbeResult::new(
        check,
        "hash",
        agent,
        Timestamp::from_unix_ms(at).unwrap(),
        60_000_000,
        3,
    );
    r.duration_us = 40_000 + (at / MINUTE % 7) as u64 * 10_000;
    r.phases.dns_us = Some(2_000);
    r.phases.connect_us = Some(5_000);
    if check == "api" {
        r.phases.tls_us = Some(12_000);
        r.phases.ttfb_us = Some(20_000);
        r.phases.transfer_us = Some(1_000);
        r.facts.cert_not_after = Some(Timestamp::from_unix_ms(now() + 30 * DAY).unwrap());
    }
    if !up {
        r.outcome = Outcome::Down;
        r.reason = Reason::ConnectRefused;
        r.set_message("connection refused");
    }
    r
}

/// What the fixture holds.
#[derive(Debug)]
pub struct Seeded {
    /// The slot of the fixture's newest results.
    pub newest: i64,
    /// `api`'s resolved incident of twelve days ago.
    pub old_incident: i64,
    /// The operator incident's id (no checks, hostile text).
    pub operator_incident: i64,
    /// The private check's automatic incident.
    pub secret_incident: i64,
    /// The open automatic incident of `web`.
    pub web_incident: i64,
}

/// A test database with the fixture in it.
pub struct Db {
    pub store: Store,
    pub reader: Reader,
    pub seeded: Seeded,
    _dir: Option<TempDir>,
}

pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Db {
    pub async fn pg(pool: sqlx::PgPool) -> Db {
        let store = Store::Pg(PgStore::from_pool(pool.clone(), Default::default()));
        store.migrate().await.unwrap();
        store
            .ensure_partitions_back(now(), ingest::screen::MAX_AGE_MS)
            .await
            .unwrap();
        let seeded = seed(&store).await;
        Db {
            store,
            reader: Reader::Pg(pool),
            seeded,
            _dir: None,
        }
    }

    pub async fn sqlite() -> Db {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "statuspage-dash-{}-{n}-{}",
            std::process::id(),
            now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("test.db").display());
        let store = Store::connect_lazy(&url, 4, Default::default()).unwrap();
        store.migrate().await.unwrap();
        let seeded = seed(&store).await;
        let reader = Reader::connect_lazy(
            &format!("sqlite://{}", dir.join("test.db").display()),
            4,
            Default::default(),
        )
        .unwrap();
        Db {
            store,
            reader,
            seeded,
            _dir: Some(TempDir(dir)),
        }
    }

    /// The app with the admin API on, for the tokens of alice and bob.
    pub fn admin_state(&self, ttl: Duration) -> AppState {
        let writer = match &self.store {
            Store::Pg(s) => dashboard::admin::write::Writer::Pg(s.pool().clone()),
            Store::Sqlite(s) => dashboard::admin::write::Writer::Sqlite(s.pool().clone()),
        };
        let tokens =
            dashboard::admin::auth::Tokens::parse(&format!("alice {ALICE}\nbob {BOB}\n")).unwrap();
        let mut state = self.state(ttl);
        state.admin = Some(std::sync::Arc::new(dashboard::admin::Admin {
            tokens,
            writer,
        }));
        state
    }

    /// The app over this database, with `ttl`.
    pub fn state(&self, ttl: Duration) -> AppState {
        AppState::new(
            self.reader.clone(),
            Site {
                title: "Example status".into(),
                logo_url: None,
                links: vec![("Home".into(), "https://example.test/".into())],
                public_url: "https://status.example.test".into(),
                subscribe: false,
                collapse_over: dashboard::pages::COLLAPSE_OVER,
            },
            ttl,
            dashboard::system_clock(),
        )
    }

    /// [`Db::state`], with its metrics recorded into a recorder of their own
    /// (never the process's: tests run side by side).
    pub fn metered_state(&self, ttl: Duration) -> (AppState, Meter) {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let mut state = self.state(ttl);
        state.metrics = std::sync::Arc::new(metrics::with_local_recorder(
            &recorder,
            dashboard::metrics::DashboardMetrics::default,
        ));
        (state, Meter(recorder))
    }

    /// Runs SQL written for both databases.
    pub async fn exec(&self, sql: &str) {
        exec(&self.store, sql).await
    }

    /// An instant literal for SQL.
    pub fn at(&self, ms: i64) -> String {
        at(&self.store, ms)
    }
}

pub async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Pg(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
        Store::Sqlite(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub async fn int(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Pg(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
        Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A text as an SQL string literal's inside.
fn quote(text: &str) -> String {
    text.replace('\'', "''")
}

pub fn at(store: &Store, ms: i64) -> String {
    match store {
        Store::Pg(_) => format!("to_timestamp({ms} / 1000.0)"),
        Store::Sqlite(_) => ms.to_string(),
    }
}

fn batch(agent: &str, results: Vec<ProbeResult>) -> ResultBatch {
    ResultBatch {
        v: 1,
        agent: AgentInfo {
            id: agent.into(),
            zone: format!("zone-{agent}"),
            region: "test-1".into(),
            label: String::new(),
        },
        sent_at: Timestamp::from_unix_ms(now()).unwrap(),
        results,
    }
}

/// Forty-five days of history before the last hour, as a long-running
/// install has it: every check up since then, and `api` down for 40
/// minutes at noon UTC twelve days ago, with its resolved incident
/// (returned). Noon, so that the outage never straddles midnight and its
/// day's bar is the same whatever the time the suite runs.
async fn history(store: &Store) -> i64 {
    let since = now() - 45 * DAY;
    let down = (now() - 12 * DAY) / DAY * DAY + DAY / 2;
    let up = down + 40 * MINUTE;
    let no_reasons = match store {
        Store::Pg(_) => "ARRAY[]::text[]",
        Store::Sqlite(_) => "'[]'",
    };
    exec(
        store,
        &format!(
            "UPDATE checks SET created_at = {0}, status = 'up', status_since = {0}",
            at(store, since)
        ),
    )
    .await;
    let change = |slug: &str, when: i64, status: &str, failing: i64| {
        format!(
            "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
             SELECT id, {}, '{status}', 3, 3, {failing}, {no_reasons} FROM checks WHERE slug = '{slug}'",
            at(store, when)
        )
    };
    for slug in ["api", "web", "db", "secret", "xss"] {
        exec(store, &change(slug, since, "up", 0)).await;
    }
    exec(store, &change("api", down, "down", 3)).await;
    exec(store, &change("api", up, "up", 0)).await;
    exec(
        store,
        &format!(
            "INSERT INTO incidents (title, impact, state, auto, check_id, started_at, resolved_at,
                                    resolved_automatically, updated_at)
             SELECT 'Public API is down', 'major', 'resolved', true, id, {}, {}, true, {}
             FROM checks WHERE slug = 'api'",
            at(store, down),
            at(store, up),
            at(store, up)
        ),
    )
    .await;
    let id = int(store, "SELECT CAST(MAX(id) AS BIGINT) FROM incidents").await;
    exec(
        store,
        &format!(
            "INSERT INTO incident_checks (incident_id, check_id) SELECT {id}, id FROM checks WHERE slug = 'api'"
        ),
    )
    .await;
    for (when, state, message) in [
        (
            down,
            "investigating",
            "Detected: 3 of 3 locations failing (http_status)",
        ),
        (up, "resolved", "Recovered after 40m"),
    ] {
        exec(
            store,
            &format!(
                "INSERT INTO incident_updates (incident_id, at, state, message, author)
                 VALUES ({id}, {}, '{state}', '{message}', 'statuspage')",
                at(store, when)
            ),
        )
        .await;
    }
    id
}

/// The last hour through ingest: `api` up everywhere, `web` down everywhere
/// for the last 10 minutes (an open incident), `db` failing in one place
/// (degraded), `secret` down (a private incident), `xss` up.
async fn seed(store: &Store) -> Seeded {
    clear_of_midnight().await;
    let catalog = config::load_str(&[(PathBuf::from("test.yaml"), yaml())], &|_| None).unwrap();
    store
        .sync_catalog(&catalog, now(), Duration::from_secs(600))
        .await
        .unwrap();
    let old_incident = history(store).await;
    // The newest slot is one to two minutes old: the page vouches for data
    // up to three intervals (3 min) old, so a slow run still sees it fresh,
    // and `recover_web`'s two newer slots are at most a minute ahead.
    let start = (now() - 59 * MINUTE) / MINUTE * MINUTE;
    // The three agents' hour arrives as one receive: ingest hears the whole
    // fleet at once, as it does when agents send every few seconds.
    let mut batches = Vec::new();
    for agent in ["a1", "a2", "a3"] {
        let mut results = Vec::new();
        for m in 0..59 {
            let at = start + m * MINUTE;
            let recent = m >= 49;
            results.push(result("api", agent, at, true));
            results.push(result("web", agent, at, !recent));
            results.push(result("db", agent, at, agent != "a3" || !recent));
            results.push(result("secret", agent, at, !recent));
            results.push(result("xss", agent, at, true));
        }
        batches.push(batch(agent, results));
    }
    let screened: Vec<_> = batches
        .iter()
        .map(|b| ingest::screen::screen(b.clone(), now(), ingest::screen::MAX_AGE_MS).unwrap())
        .collect();
    let messages: Vec<ingest::store::Message> = screened
        .iter()
        .map(|s| ingest::store::Message {
            agent: &s.agent,
            sent_at: s.sent_at,
            results: &s.accepted,
        })
        .collect();
    store.store_messages(&messages, now()).await.unwrap();
    // What ingest's leader does once a minute: minutes into hours and days.
    store.fold_rollups().await.unwrap();
    // An operator's incident about no check in particular, with hostile text.
    let started = now() - 20 * MINUTE;
    exec(
        store,
        &format!(
            "INSERT INTO incidents (title, impact, state, auto, started_at, updated_at)
         VALUES ('{}', 'major', 'investigating', false, {}, {})",
            quote(&format!("Payments {SCRIPT} {IMG}")),
            at(store, started),
            at(store, started)
        ),
    )
    .await;
    let operator = int(
        store,
        "SELECT CAST(MAX(id) AS BIGINT) FROM incidents WHERE NOT auto",
    )
    .await;
    exec(
        store,
        &format!(
            "INSERT INTO incident_updates (incident_id, at, state, message, author)
         VALUES ({operator}, {}, 'investigating', '{}', '{}')",
            at(store, started),
            quote(&format!("See {JS_URL} and {SCRIPT}")),
            quote(&format!("alice {IMG}"))
        ),
    )
    .await;
    let auto_of = |slug: &str| {
        format!(
            "SELECT CAST(MAX(i.id) AS BIGINT) FROM incidents i JOIN checks c ON c.id = i.check_id
             WHERE c.slug = '{slug}'"
        )
    };
    Seeded {
        newest: start + 58 * MINUTE,
        old_incident,
        operator_incident: operator,
        secret_incident: int(store, &auto_of("secret")).await,
        web_incident: int(store, &auto_of("web")).await,
    }
}

/// Waits, when the suite runs in the two minutes before midnight UTC or
/// the three after, until three minutes past. The newest slot is one to
/// two minutes old, so a day begun less than that ago holds no result yet,
/// and its bar says "no data": truthful, but not the page the tests check
/// (today's bar showing `web`'s outage). At most five minutes, once a day.
async fn clear_of_midnight() {
    let near = || !(3 * MINUTE..DAY - 2 * MINUTE).contains(&now().rem_euclid(DAY));
    while near() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Two up results of `web` from every agent, in the two slots after the
/// fixture's `newest`.
pub async fn recover_web(store: &Store, newest: i64) {
    for agent in ["a1", "a2", "a3"] {
        let results: Vec<ProbeResult> = [1, 2]
            .iter()
            .map(|m| {
                let mut r = ProbeResult::new(
                    "web",
                    "hash",
                    agent,
                    Timestamp::from_unix_ms(newest + m * MINUTE).unwrap(),
                    60_000_000,
                    3,
                );
                r.duration_us = 30_000;
                r
            })
            .collect();
        let b = ResultBatch {
            v: 1,
            agent: AgentInfo {
                id: agent.into(),
                zone: format!("zone-{agent}"),
                region: "test-1".into(),
                label: String::new(),
            },
            sent_at: Timestamp::from_unix_ms(now()).unwrap(),
            results,
        };
        let s = ingest::screen::screen(b.clone(), now(), ingest::screen::MAX_AGE_MS).unwrap();
        store
            .store_batch(&b.agent, b.sent_at, &s.accepted, now())
            .await
            .unwrap();
    }
}

/// The fixture on both databases, for each test body.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[sqlx::test(migrations = false)]
                async fn postgres(pool: sqlx::PgPool) {
                    super::$name($crate::fixture::Db::pg(pool).await).await
                }

                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::fixture::Db::sqlite().await).await
                }
            }
        )*
    };
}

/// A dashboard's metrics, read back through the exposition.
pub struct Meter(metrics_exporter_prometheus::PrometheusRecorder);

impl Meter {
    /// The exposition, as a scrape sees it.
    pub fn text(&self) -> String {
        self.0.handle().render()
    }

    /// The sample `name` with these labels (0 when absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        config::exposition::value(&self.text(), name, labels).unwrap_or(0.0) as u64
    }
}

//! The subscriber fan-out benchmark (`scripts/bench-subscribe`): one
//! incident to SUBSCRIBERS confirmed subscribers through a local SMTP server
//! (`aiosmtpd`, in `tests/support/webhook_receiver.py`, which also takes
//! the operator webhook), through the outbox, the fan-out and the subscriber
//! mail worker; beside a bare `lettre` send loop (one pooled transport,
//! one mail after another) to the same server in the same run.
//!
//! ```text
//! subscribe_bench [SUBSCRIBERS]   # default 10000; DATABASE_URL, else a SQLite file;
//!                                 # STATUSPAGE_TEST_WEBHOOK_PYTHON: a Python with aiosmtpd
//! ```
//!
//! Prints mails/s for the bare loop (one at a time, and 8 at once as the
//! worker sends) and for the fan-out, their ratios, the time from the
//! incident's commit to the last mail, and how long an operator webhook
//! event (an incident on a private check, which no subscriber hears)
//! committed during the fan-out waits for its receiver.

use futures_util::StreamExt;
use ingest::store::sql::{Arg, Pool};
use lettre::AsyncTransport;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The receiver's log: how many mails, and when (if) `id` reached the webhook.
fn read_log(log: &Path, id: &str) -> (usize, bool) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mails = text.matches("\"path\": \"/smtp\"").count();
    let hook = text
        .lines()
        .any(|l| l.contains("\"path\": \"/webhook\"") && l.contains(id));
    (mails, hook)
}

async fn until(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<Instant> {
    let end = Instant::now() + deadline;
    loop {
        if done() {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < end, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn port_in(file: &Path) -> Option<u16> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// An incident on `check` (`web` is public; `internal` private, heard by
/// the operator channel only).
async fn incident(pool: &Pool, id: &str, n: i64, check: &str) -> anyhow::Result<()> {
    let d = pool.dialect();
    let data = format!(
        r#"{{"incident": {{"id": {n}, "title": "Checkout is failing", "impact": "major", "state": "investigating", "checks": [{{"id": "{check}", "name": "{check}"}}]}}, "update": {{"message": "We are looking into it.", "state": "investigating"}}}}"#
    );
    pool.exec(
        &format!(
            "INSERT INTO events (id, type, at, subject, seq, data) VALUES ({}, 'incident.opened', {}, {}, {}, {})",
            d.p(1),
            d.at(2),
            d.p(3),
            d.p(4),
            d.p(5)
        ),
        &[
            Arg::Text(id.into()),
            Arg::Int(chrono::Utc::now().timestamp_millis()),
            Arg::Text(format!("incident-{n}")),
            Arg::Int(n),
            Arg::Text(data),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let n: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("statuspage-subscribe-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let python = std::env::var("STATUSPAGE_TEST_WEBHOOK_PYTHON").map_err(|_| {
        anyhow::anyhow!(
            "STATUSPAGE_TEST_WEBHOOK_PYTHON: a Python with aiosmtpd and standardwebhooks"
        )
    })?;
    let (port_file, smtp_file, log) = (
        dir.join("r.port"),
        dir.join("smtp.port"),
        dir.join("r.jsonl"),
    );
    let _receiver = Reaped(
        Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py"))
            .args([&port_file, &log])
            .arg(SECRET)
            .arg("")
            .arg(&smtp_file)
            .stdout(Stdio::null())
            .spawn()?,
    );
    until("the receiver", Duration::from_secs(20), || {
        port_in(&port_file).is_some() && port_in(&smtp_file).is_some()
    })
    .await?;
    let (hport, sport) = (
        port_in(&port_file).unwrap_or_default(),
        port_in(&smtp_file).unwrap_or_default(),
    );

    // The bare loops: one pooled transport, one mail after another; and
    // the same with 8 in flight, as the worker sends.
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sport)
            .build();
    let mail = |i: i64| -> anyhow::Result<lettre::Message> {
        Ok(lettre::Message::builder()
            .from("Acme status <status@acme.example>".parse()?)
            .to(format!("bare{i}@example.com").parse()?)
            .subject("Acme status: [Investigating] Checkout is failing (Web)")
            .multipart(lettre::message::MultiPart::alternative_plain_html(
                "Investigating: Checkout is failing\nAffected: Web\n\nWe are looking into it.\n".to_string(),
                "<html><body><h1>Investigating: Checkout is failing</h1><p>We are looking into it.</p></body></html>".to_string(),
            ))?)
    };
    let one_n = n.min(500);
    let started = Instant::now();
    for i in 0..one_n {
        transport.send(mail(i)?).await?;
    }
    let one = started.elapsed();
    let eight_n = n.min(2_000);
    let messages: Vec<lettre::Message> = (0..eight_n).map(mail).collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let sent: Vec<Result<_, _>> = futures_util::stream::iter(messages)
        .map(|m| transport.send(m))
        .buffer_unordered(8)
        .collect()
        .await;
    let eight = started.elapsed();
    anyhow::ensure!(sent.iter().all(Result::is_ok), "a bare send failed");
    until("the bare mails logged", Duration::from_secs(120), || {
        read_log(&log, "-").0 >= (one_n + eight_n) as usize
    })
    .await?;
    let _ = std::fs::remove_file(&log);

    // The store and N confirmed subscribers.
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join("bench.db").display()));
    let store = ingest::store::Store::connect_lazy(&url, 8, Default::default())?;
    store.migrate().await?;
    let pool = match &store {
        ingest::store::Store::Pg(s) => Pool::Pg(s.pool().clone()),
        ingest::store::Store::Sqlite(s) => Pool::Sqlite(s.pool().clone()),
    };
    let d = pool.dialect();
    let run = std::process::id();
    pool.exec(
        &format!(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {})
             INSERT INTO subscriptions (email, state, nonce, created_at)
             SELECT 'r{run}-' || i || '@example.com', 'confirmed', 'nonce' || i, {} FROM g",
            d.p(1),
            d.at(2)
        ),
        &[Arg::Int(n), Arg::Int(chrono::Utc::now().timestamp_millis())],
    )
    .await?;

    let key = dir.join("key");
    std::fs::write(&key, [42u8; 32])?;
    let yaml = format!(
        "groups:\n  - name: G\n    checks:\n      - {{ name: Web, id: web, http: {{ url: 'http://127.0.0.1:1/' }} }}\n      - {{ name: Internal, id: internal, public: false, http: {{ url: 'http://127.0.0.1:1/i' }} }}\n\
         notifications:\n  channels:\n    - name: ops\n      webhook: {{ url: 'http://127.0.0.1:{hport}/webhook', secret: {SECRET} }}\n\
         smtp:\n  url: 'smtp://127.0.0.1:{sport}?tls=none'\n  from: 'Acme status <status@acme.example>'\n\
         subscriptions:\n  enabled: true\n  signing_key_file: '{}'\n  mail_rate: 100000\n  max_subscribers: 1000000\n",
        key.display()
    );
    let catalog = config::load_str(&[("bench.yaml".into(), yaml)], &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_tx, rx) = tokio::sync::watch::channel(Some(Arc::new(catalog)));
    let clock: ingest::consume::Clock = Arc::new(|| chrono::Utc::now().timestamp_millis());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let settings = ingest::notify::Settings {
        public_url: url::Url::parse("https://status.acme.example").ok(),
        title: Some("Acme status".into()),
        ..Default::default()
    };
    let worker = tokio::spawn(ingest::notify::run(
        store.clone(),
        settings,
        rx,
        clock,
        shutdown.clone(),
    ));

    // One incident to every subscriber; during its fan-out, a second
    // incident whose operator webhook is timed.
    let committed = Instant::now();
    incident(&pool, &format!("bench-{run}-1"), 1, "web").await?;
    store.wake_notifications();
    until("a tenth of the mail", Duration::from_secs(600), || {
        read_log(&log, "-").0 >= (n as usize / 10).max(1)
    })
    .await?;
    let second = format!("bench-{run}-2");
    let during = Instant::now();
    incident(&pool, &second, 2, "internal").await?;
    store.wake_notifications();
    let heard = until("the operator webhook", Duration::from_secs(120), || {
        read_log(&log, &second).1
    })
    .await?;
    let waited = heard - during;
    let (mails_then, _) = read_log(&log, "-");
    let last = until("every subscriber's mail", Duration::from_secs(1200), || {
        read_log(&log, "-").0 >= n as usize
    })
    .await?;
    let total = last - committed;
    shutdown.cancel();
    let _ = worker.await;

    let database = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let one_rate = one_n as f64 / one.as_secs_f64();
    let eight_rate = eight_n as f64 / eight.as_secs_f64();
    let ours = n as f64 / total.as_secs_f64();
    println!("subscribers                  {n} ({database}), one incident");
    println!(
        "bare lettre loop, 1 at once  {one_rate:.0} mails/s ({one_n} mails, one pooled transport)"
    );
    println!(
        "bare lettre loop, 8 at once  {eight_rate:.0} mails/s ({eight_n} mails, as the worker sends)"
    );
    println!(
        "fan-out to the SMTP server   {ours:.0} mails/s (the incident's commit to its last mail)"
    );
    println!(
        "ratio                        {:.2} (to 1 at once), {:.2} (to 8 at once)",
        ours / one_rate,
        ours / eight_rate
    );
    println!("until the last mail          {:.1} s", total.as_secs_f64());
    println!(
        "operator webhook during it   {:.0} ms from commit to receipt ({mails_then} mails sent by then)",
        waited.as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

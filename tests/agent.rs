//! `statuspage agent` as it runs in production, against the real moto server
//! (started by scripts/test) and a local HTTP target: results arrive with
//! their ids and phases, a bad reload keeps the old checks, SIGTERM flushes.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, fresh_queue, metric, signal};

fn http_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

/// Every batch in the queue, decoded (either encoding), deleting as it goes.
async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<config::wire::ResultBatch> {
    let mut out = Vec::new();
    loop {
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
            return out;
        }
        for msg in msgs {
            let enc = msg
                .message_attributes
                .as_ref()
                .and_then(|a| a.get(config::wire::ENCODING_ATTRIBUTE))
                .and_then(|v| v.string_value().map(str::to_string));
            out.push(
                config::wire::decode(
                    msg.body().unwrap_or_default(),
                    enc.as_deref(),
                    config::wire::DEFAULT_MAX_MESSAGE_BYTES,
                )
                .unwrap(),
            );
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(msg.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_publishes_results_survives_a_bad_reload_and_flushes_on_sigterm() {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at an SQS-protocol server; scripts/test starts moto");
    let (sqs, queue) = fresh_queue("agent").await;

    let target = http_target();
    let dir = std::env::temp_dir().join(format!("statuspage-agent-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(&config, format!("groups:\n  - name: Local\n    checks:\n      - name: Web\n        interval: 1s\n        timeout: 500ms\n        http: {{ url: 'http://127.0.0.1:{target}/' }}\n")).unwrap();
    let metrics_port = free_port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--queue-url",
            &queue,
            "--agent-id",
            "node-a",
            "--zone",
            "z1",
        ])
        .args([
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--drain-seconds",
            "10",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let m = poll(20, "the check probed twice", || {
        let m = support::http_body(metrics_port, "/metrics")?;
        (metric(&m, "statuspage_agent_runs_total", &[]) >= 2.0
            && metric(&m, "probe_success", &[("check", "local-web")]) == 1.0)
            .then_some(m)
    })
    .await;
    assert!(
        m.contains(
            "probe_success{check=\"local-web\",group=\"Local\",kind=\"http\",location=\"z1\"} 1"
        ),
        "{m}"
    );
    assert_eq!(
        metric(&m, "statuspage_agent_config_last_reload_successful", &[]),
        1.0
    );
    let runs_before = metric(&m, "statuspage_agent_runs_total", &[]);
    assert!(runs_before >= 2.0, "{m}");

    // A broken config, then SIGHUP: the old check keeps running, the metric says so.
    std::fs::write(
        &config,
        "groups:\n  - name: Local\n    checks:\n      - name: Web\n        intervall: 1s\n",
    )
    .unwrap();
    signal(&agent, "HUP");
    let m = poll(20, "the failed reload said, and probing on", || {
        let m = support::http_body(metrics_port, "/metrics")?;
        (metric(&m, "statuspage_agent_config_last_reload_successful", &[]) == 0.0
            && metric(&m, "statuspage_agent_runs_total", &[]) >= runs_before + 2.0)
            .then_some(m)
    })
    .await;
    assert_eq!(
        metric(&m, "statuspage_agent_config_last_reload_successful", &[]),
        0.0,
        "{m}"
    );
    assert!(
        metric(&m, "statuspage_agent_runs_total", &[]) >= runs_before + 2.0,
        "probing went on: {m}"
    );

    signal(&agent, "TERM");
    let started = Instant::now();
    let status = agent.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut log = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every log line is JSON:\n{log}"
    );
    assert!(
        log.contains("\"event\":\"config_reload_failed\"") && log.contains("intervall"),
        "{log}"
    );

    let batches = drain_queue(&sqs, &queue).await;
    let mut ids = BTreeSet::new();
    let mut results = 0;
    for batch in batches {
        assert_eq!(batch.agent.id, "node-a");
        for r in batch.results {
            assert!(r.id.starts_with("local-web/node-a/"));
            assert!(r.phases.connect_us.is_some() && r.phases.ttfb_us.is_some());
            assert_eq!(r.interval_us, 1_000_000);
            assert_eq!(r.assigned, 1);
            ids.insert(r.id);
            results += 1;
        }
    }
    let final_runs = metric(&m, "statuspage_agent_runs_total", &[]);
    assert_eq!(ids.len(), results, "no result was sent twice");
    assert!(
        results as f64 >= final_runs,
        "every run up to the last scrape was delivered ({results} < {final_runs})"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_agent_refuses_an_invalid_config_at_start_with_positions() {
    let dir = std::env::temp_dir().join(format!("statuspage-agent-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.yaml");
    std::fs::write(
        &config,
        "groups:\n  - name: Web\n    checks:\n      - name: H\n        http: { url: 'ftp://x/' }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--queue-url",
            "http://127.0.0.1:9/q",
            "--agent-id",
            "a",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:5:22: groups[0].checks[0].http.url: expected an http:// or https:// URL, found `ftp://x/`"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A loopback proxy to moto that can be cut (connections dropped) and restored.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start() -> Proxy {
        use std::sync::atomic::Ordering;
        let upstream = std::env::var("AWS_ENDPOINT_URL")
            .unwrap()
            .trim_start_matches("http://")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = cut.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let c2 = c.clone();
                let pipe =
                    move |mut from: std::net::TcpStream,
                          mut to: std::net::TcpStream,
                          cut: std::sync::Arc<std::sync::atomic::AtomicBool>| {
                        let mut buf = [0u8; 16 * 1024];
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        loop {
                            if cut.load(Ordering::SeqCst) {
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    };
                let (a, b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                let c3 = c2.clone();
                std::thread::spawn(move || pipe(inbound, outbound, c2));
                std::thread::spawn(move || pipe(b, a, c3));
            }
        });
        Proxy { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls `f` every 100 ms (on the runtime: in-process servers keep serving)
/// until it gives a value, or panics after `secs`.
async fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spooled_ids(dir: &std::path::Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for line in std::fs::read_to_string(entry.path())
            .unwrap_or_default()
            .lines()
        {
            if let Ok(r) = serde_json::from_str::<serde_json::Value>(line) {
                ids.insert(r["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_delivers_its_spool_after_a_restart() {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at an SQS-protocol server; scripts/test starts moto");
    let (sqs, queue) = fresh_queue("spool").await;
    let proxy = Proxy::start();
    proxy.set_cut(true);

    let target = http_target();
    let dir = std::env::temp_dir().join(format!("statuspage-spool-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(&config, format!("groups:\n  - name: Local\n    checks:\n      - name: Web\n        interval: 1s\n        timeout: 500ms\n        http: {{ url: 'http://127.0.0.1:{target}/' }}\n")).unwrap();
    let spool = dir.join("spool");
    let agent = |metrics_port: u16| {
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args([
                "agent",
                "--config",
                config.to_str().unwrap(),
                "--queue-url",
                &queue,
                "--agent-id",
                "node-s",
            ])
            .args([
                "--spool-dir",
                spool.to_str().unwrap(),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", proxy.port),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    let mut first = agent(free_port());
    poll(30, "results spooled during the outage", || {
        (spooled_ids(&spool.join("node-s")).len() >= 3).then_some(())
    })
    .await;
    signal(&first, "KILL");
    first.wait().unwrap();
    let spooled = spooled_ids(&spool.join("node-s"));
    assert!(
        spooled.len() >= 3,
        "results went to the spool during the outage: {spooled:?}"
    );

    proxy.set_cut(false);
    let mut second = agent(free_port());
    poll(30, "the spool delivered", || {
        spooled_ids(&spool.join("node-s")).is_empty().then_some(())
    })
    .await;
    signal(&second, "TERM");
    assert!(second.wait().unwrap().success());

    let delivered: BTreeSet<String> = drain_queue(&sqs, &queue)
        .await
        .into_iter()
        .flat_map(|b| b.results)
        .map(|r| r.id)
        .collect();
    let missing: Vec<_> = spooled.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "spooled results lost across the kill: {missing:?}"
    );
    assert!(
        spooled_ids(&spool.join("node-s")).is_empty(),
        "the spool is empty once delivered"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

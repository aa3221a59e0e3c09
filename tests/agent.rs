//! `statuspage agent` as it runs in production, against the real moto server
//! (started by scripts/test) and a local HTTP target: results arrive with
//! their ids and phases, a bad reload keeps the old checks, SIGTERM flushes.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{drain_queue, free_port, fresh_queue, metric, signal};

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
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = support::proxy::Proxy::to(moto.trim_start_matches("http://"));
    proxy.refuse();

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

    proxy.heal();
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

//! `statuspage standalone` end to end, as a user runs it: a local HTTP target
//! this test switches off and on, the process killed and restarted.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{free_port, http_json, http_target, signal, status_of, until};

const INTERVAL_S: u64 = 1;
const FAILURE_THRESHOLD: u64 = 2;
const SUCCESS_THRESHOLD: u64 = 2;

fn start(config: &std::path::Path, db: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["standalone", "--config"])
        .arg(config)
        .arg("--database-url")
        .arg(db)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("STATUSPAGE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn on_sqlite_an_outage_opens_and_resolves_an_incident_and_survives_a_kill() {
    let dir = std::env::temp_dir().join(format!("statuspage-standalone-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The default kind of database, created on first start.
    outage_and_kill(
        "sqlite",
        &format!("sqlite://{}", dir.join("statuspage.db").display()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_an_outage_opens_and_resolves_an_incident_and_survives_a_kill() {
    let (url, _) = support::fresh_database("standalone").await;
    tokio::task::spawn_blocking(move || outage_and_kill("postgres", &url))
        .await
        .unwrap();
}

fn outage_and_kill(tag: &str, db: &str) {
    let down = Arc::new(AtomicBool::new(false));
    let target_port = {
        let down = down.clone();
        http_target(move |_| down.load(Ordering::SeqCst))
    };
    let dir = std::env::temp_dir().join(format!(
        "statuspage-standalone-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  interval: {INTERVAL_S}s\n  timeout: 500ms\n  failure_threshold: {FAILURE_THRESHOLD}\n  success_threshold: {SUCCESS_THRESHOLD}\ngroups:\n  - name: Local\n    checks:\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{target_port}/\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = start(&config, db, port);

    let (_, first_up) = until(Duration::from_secs(15), "web up", || {
        status_of(port, "web").filter(|c| c["status"] == "up")
    });

    // Up for a while first, and steadily so.
    support::watch(Duration::from_secs(3), || {
        match status_of(port, "web").map(|c| c["status"].clone()) {
            Some(s) if s == "up" => Ok(()),
            other => Err(format!(
                "web left up before the target went down: {other:?}"
            )),
        }
    });
    // Off: an incident within failure_threshold × interval + 5 s.
    let off = Instant::now();
    down.store(true, Ordering::SeqCst);
    let open_within = Duration::from_secs(FAILURE_THRESHOLD * INTERVAL_S + 5);
    let (incident, _) = until(open_within, "an open incident", || {
        let v = http_json(port, "/api/v1/incidents?state=open")?;
        v.as_array()?
            .iter()
            .find(|i| i["checks"][0] == "web")
            .cloned()
    });
    let id = incident["id"].as_i64().unwrap();
    assert_eq!(incident["auto"], true);

    // Down for a while, with its one incident open throughout.
    support::watch(Duration::from_secs(4), || {
        let open = http_json(port, "/api/v1/incidents?state=open")
            .and_then(|v| v.as_array().map(|a| a.len()));
        match open {
            Some(1) => Ok(()),
            other => Err(format!("open incidents while down: {other:?}")),
        }
    });
    // On: resolved within success_threshold × interval + 5 s.
    let on = Instant::now();
    down.store(false, Ordering::SeqCst);
    let resolve_within = Duration::from_secs(SUCCESS_THRESHOLD * INTERVAL_S + 5);
    let (resolved, _) = until(resolve_within, "the incident resolved", || {
        let v = http_json(port, "/api/v1/incidents?state=resolved")?;
        v.as_array()?.iter().find(|i| i["id"] == id).cloned()
    });
    let outage = on - off;

    // Uptime reflects the downtime, within one interval of the truth.
    let (status, now) = until(Duration::from_secs(10), "web up again", || {
        status_of(port, "web").filter(|c| c["status"] == "up")
    });
    let uptime = status["uptime"]["24h"].as_f64().unwrap();
    let slack = INTERVAL_S as f64 + 0.5;
    let observed = (now - first_up).as_secs_f64();
    let down_s = outage.as_secs_f64();
    let low = 1.0 - (down_s + slack) / (observed - slack);
    let high = 1.0 - (down_s - slack) / (observed + slack + INTERVAL_S as f64);
    assert!(
        (low..=high).contains(&uptime),
        "uptime {uptime} not in [{low}, {high}] (down {down_s:.1} s of {observed:.1} s)"
    );

    // SIGKILL, then start again: nothing already shown is lost.
    let before = http_json(port, "/api/v1/checks/web").unwrap();
    signal(&child, "KILL");
    let _ = child.wait();
    let mut child = start(&config, db, port);
    let (after, _) = until(Duration::from_secs(15), "the page back", || {
        let v = http_json(port, "/api/v1/incidents?state=all")?;
        v.as_array()?.iter().find(|i| i["id"] == id).cloned()
    });
    assert_eq!(after["resolved_at"], resolved["resolved_at"]);
    assert_eq!(
        after["updates"], resolved["updates"],
        "the incident's history is whole"
    );
    let again = http_json(port, "/api/v1/checks/web").unwrap();
    let (was, is) = (
        before["uptime"]["24h"].as_f64().unwrap(),
        again["uptime"]["24h"].as_f64().unwrap(),
    );
    // The outage is still counted (the ratio moves only by the seconds of
    // up time since, and the seconds the process was away are unknown).
    assert!(
        (is - was).abs() < 0.1,
        "uptime {was} before the kill, {is} after"
    );
    assert!(is < 1.0);
    assert_eq!(again["days"][89]["incidents"], serde_json::json!([id]));
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_or_database_url_stops_it_with_the_problem_and_creates_nothing() {
    let dir =
        std::env::temp_dir().join(format!("statuspage-standalone-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        "groups:\n  - name: G\n    checks:\n      - name: Web\n        intervall: 5s\n        http:\n          url: http://127.0.0.1:1/\n",
    )
    .unwrap();
    let db = dir.join("statuspage.db");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .arg("standalone")
            .args(args)
            .env_remove("STATUSPAGE_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = run(&[
        "--config",
        config.to_str().unwrap(),
        "--database-url",
        &format!("sqlite://{}", db.display()),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("checks.yaml:5:9:")
            && stderr.contains("unknown key `intervall`, did you mean `interval`?"),
        "{stderr}"
    );
    assert!(
        !db.exists(),
        "no database made for a config that does not load"
    );

    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "groups:\n  - name: G\n    checks:\n      - name: Web\n        http:\n          url: http://127.0.0.1:1/\n",
    )
    .unwrap();
    let out = run(&[
        "--config",
        good.to_str().unwrap(),
        "--database-url",
        "mysql://app:hunter2@db/x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the URL is never echoed: {stderr}"
    );
    let out = run(&["--config", good.to_str().unwrap(), "--listen", "everywhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen \"everywhere\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP target that answers every connection with `reply` and closes.
fn tcp_target(reply: &'static [u8]) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            use std::io::Write;
            let _ = s.write_all(reply);
        }
    });
    port
}

/// An HTTP target answering 503 with a body of NUL bytes and invalid UTF-8.
fn poisoned_http_target() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = b"down\0\0\xff\xfe\x01 for \0 now";
                let _ = write!(
                    s,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            });
        }
    });
    port
}

/// Hostile bytes are data: a TCP target replying NUL bytes and invalid
/// UTF-8, and an HTTP target answering 503 with such a body, are `down`
/// with incidents, their healthy neighbour is `up`, and SIGTERM still stops
/// the process promptly. Before, PostgreSQL's jsonb refused the NUL, every
/// result of the batch was lost with it (all three checks stayed `unknown`)
/// and standalone retried forever, ignoring SIGTERM.
fn hostile_bytes_are_data(db: &str) {
    let tcp = tcp_target(b"gre\0et\xff\n");
    let bad_http = poisoned_http_target();
    let good = http_target(|_| false);
    let dir = std::env::temp_dir().join(format!(
        "statuspage-hostile-{}-{}",
        std::process::id(),
        db.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  failure_threshold: 2\ngroups:\n  - name: Hostile\n    checks:\n      - name: Greeter\n        id: greeter\n        tcp:\n          host: 127.0.0.1\n          port: {tcp}\n          expect:\n            reply_matches: \"^nomatch\"\n      - name: Api\n        id: api\n        http:\n          url: http://127.0.0.1:{bad_http}/\n          expect:\n            body_contains: ok\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{good}/\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = start(&config, db, port);
    let (_, _) = until(
        Duration::from_secs(20),
        "greeter and api down, web up",
        || {
            let states: Vec<_> = ["greeter", "api", "web"]
                .iter()
                .map(|id| {
                    status_of(port, id).map(|c| c["status"].as_str().unwrap_or("").to_string())
                })
                .collect::<Option<_>>()?;
            (states == ["down", "down", "up"]).then_some(())
        },
    );
    let (open, _) = until(Duration::from_secs(10), "two open incidents", || {
        let v = http_json(port, "/api/v1/incidents?state=open")?;
        let checks: Vec<String> = v
            .as_array()?
            .iter()
            .map(|i| i["checks"][0].as_str().unwrap_or("").to_string())
            .collect();
        (checks.len() == 2).then_some(checks)
    });
    assert!(
        open.contains(&"greeter".to_string()) && open.contains(&"api".to_string()),
        "{open:?}"
    );
    let page = support::http_body(port, "/checks/greeter").unwrap_or_default();
    assert!(!page.contains('\0'), "no NUL reaches the page");
    signal(&child, "TERM");
    let (status, _) = until(Duration::from_secs(20), "a stop after SIGTERM", || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_hostile_target_bytes_are_data_and_cost_no_neighbour_its_results() {
    let (url, _) = support::fresh_database("hostile").await;
    tokio::task::spawn_blocking(move || hostile_bytes_are_data(&url))
        .await
        .unwrap();
}

#[test]
fn on_sqlite_hostile_target_bytes_are_data_and_cost_no_neighbour_its_results() {
    let dir = std::env::temp_dir().join(format!("statuspage-hostile-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    hostile_bytes_are_data(&format!("sqlite://{}", dir.join("statuspage.db").display()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The public port answers `/healthz` only; `/metrics` and `/readyz` exist
/// only on `--metrics-listen`, so metrics never go behind a CDN and two
/// standalones never collide on a fixed metrics port.
#[test]
fn metrics_are_served_only_on_metrics_listen() {
    let dir = std::env::temp_dir().join(format!("statuspage-ops-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let target = http_target(|_| false);
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!("defaults:\n  interval: 1s\n  timeout: 500ms\ngroups:\n  - name: G\n    checks:\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{target}/\n"),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("statuspage.db").display());
    let (port, ops) = (free_port(), free_port());
    let mut with_ops = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["standalone", "--config"])
        .arg(&config)
        .args(["--database-url", &db])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{ops}")])
        .env_remove("STATUSPAGE_DATABASE_URL")
        .env_remove("STATUSPAGE_METRICS_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until(Duration::from_secs(20), "probe and check metrics", || {
        let m = support::http_body(ops, "/metrics")?;
        (m.contains("probe_success{") && m.contains("statuspage_check_up{")).then_some(())
    });
    assert!(support::http_raw(ops, "/metrics").starts_with("HTTP/1.1 200"));
    assert!(support::http_raw(ops, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(support::http_raw(ops, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(support::http_raw(port, "/healthz").starts_with("HTTP/1.1 200"));
    for path in ["/metrics", "/readyz"] {
        assert!(
            support::http_raw(port, path).starts_with("HTTP/1.1 404"),
            "{path} is not on the public port"
        );
    }
    signal(&with_ops, "TERM");
    assert!(with_ops.wait().unwrap().success());

    // Without the flag: no metrics anywhere, the page and /healthz as before.
    let port = free_port();
    let mut plain = start(&config, &db, port);
    until(Duration::from_secs(15), "the page", || {
        support::http_body(port, "/healthz").filter(|b| b == "ok\n")
    });
    assert!(support::http_raw(port, "/metrics").starts_with("HTTP/1.1 404"));
    signal(&plain, "TERM");
    assert!(plain.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A new user's first minutes: within two minutes of starting, every
/// check's last-hour series has points and its page draws a line (two
/// minute points joined), and its uptime says since when it is watched.
#[test]
fn within_two_minutes_every_check_draws_a_line() {
    let dir = std::env::temp_dir().join(format!("statuspage-first-minutes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let web = http_target(|_| false);
    let tcp = tcp_target(b"");
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            "defaults: {{ interval: 1s, timeout: 500ms }}\ngroups:\n  - name: Local\n    checks:\n      - {{ name: Web, id: web, http: {{ url: \"http://127.0.0.1:{web}/\" }} }}\n      - {{ name: Port, id: port, tcp: {{ host: 127.0.0.1, port: {tcp} }} }}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = support::Reaped(start(
        &config,
        &format!("sqlite://{}", dir.join("s.db").display()),
        port,
    ));
    let started = Instant::now();
    for id in ["web", "port"] {
        until(Duration::from_secs(150), "two minute points", || {
            let v = http_json(port, &format!("/api/v1/checks/{id}"))?;
            (v["latency"]["1h"].as_array()?.len() >= 2).then_some(())
        });
        let page = support::http_body(port, &format!("/checks/{id}")).unwrap();
        let hour = page
            .split("<figcaption>Last hour</figcaption>")
            .nth(1)
            .unwrap_or("");
        let hour = &hour[..hour.find("</figure>").unwrap_or(hour.len())];
        assert!(
            hour.contains("<path class=\"p50\" d=\"M") && hour.contains(" L"),
            "{id}: {hour}"
        );
        assert!(
            page.contains("since <time datetime="),
            "{id}: the uptime says since when"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(150));
    signal(&child.0, "TERM");
    let _ = child.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

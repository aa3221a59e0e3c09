//! Notifications end to end, as a user runs them: `statuspage standalone`
//! with webhook, Slack, PagerDuty and email channels pointed at a local
//! receiver (Python: every Standard Webhooks signature verified with the
//! `standardwebhooks` package from PyPI, mail received by `aiosmtpd` and
//! parsed with the `email` package), and a local HTTP target this test
//! switches off and on.

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::receiver::{SECRET, on, received, receiver};
use support::{Reaped, free_port, http_target, metric, metrics, until};

fn body(r: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or_default()
}

/// An incident opens and resolves: every channel hears it, in order; the
/// webhook's first two attempts fail (500, then 429 with `Retry-After: 1`)
/// and the third is taken, each with the same id and body and a signature
/// `standardwebhooks` verifies (and refuses once the body is changed).
#[test]
fn an_incident_reaches_every_channel_signed_retried_and_in_order() {
    let dir = std::env::temp_dir().join(format!("statuspage-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_receiver, rport, sport, log) = receiver(&dir, "500,429:1");
    let down = Arc::new(AtomicBool::new(false));
    let target = {
        let down = down.clone();
        http_target(move |_| down.load(Ordering::SeqCst))
    };
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            r#"defaults:
  interval: 1s
  timeout: 500ms
  failure_threshold: 2
  success_threshold: 2
groups:
  - name: Local
    checks:
      - {{ name: "Web <b>&", id: web, http: {{ url: "http://127.0.0.1:{target}/" }} }}
maintenance:
  - {{ name: Upgrade, checks: [web], start: "{upgrade}", duration: 30m }}
notifications:
  channels:
    - name: ops
      webhook: {{ url: "http://127.0.0.1:{rport}/webhook", secret: "${{WEBHOOK_SECRET}}" }}
    - name: chat
      slack: {{ url: "http://127.0.0.1:{rport}/slack" }}
    - name: pager
      pagerduty: {{ routing_key: "${{PD_KEY}}", url: "http://127.0.0.1:{rport}/pd" }}
    - name: mail
      email: {{ to: [oncall@acme.example] }}
  routes:
    - {{ channels: [ops, pager, mail], events: [incident] }}
    - {{ channels: [chat], events: [incident, maintenance, check] }}
smtp:
  url: "smtp://127.0.0.1:{sport}?tls=none"
  from: "Acme status <status@acme.example>"
"#,
            upgrade = (chrono::Utc::now() + chrono::Duration::minutes(20)).to_rfc3339()
        ),
    )
    .unwrap();
    let port = free_port();
    let mport = free_port();
    let _standalone = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["standalone", "--config"])
            .arg(&config)
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.join("s.db").display()))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{mport}")])
            .args(["--public-url", "https://status.example.com"])
            .args(["--notify-retry-schedule", "0s,200ms,200ms,200ms"])
            .env("WEBHOOK_SECRET", SECRET)
            .env("PD_KEY", "R0UT1NGKEY")
            .env_remove("STATUSPAGE_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until(Duration::from_secs(20), "web up", || {
        support::status_of(port, "web").filter(|c| c["status"] == "up")
    });
    down.store(true, Ordering::SeqCst);
    let (opened, _) = until(
        Duration::from_secs(30),
        "the webhook takes incident.opened",
        || {
            let r = on(&received(&log), "/webhook");
            (r.len() >= 3).then_some(r)
        },
    );
    // Three attempts of one event: 500, 429, then taken.
    let answers: Vec<i64> = opened[..3]
        .iter()
        .map(|r| r["answered"].as_i64().unwrap())
        .collect();
    assert_eq!(answers, [500, 429, 200]);
    let id = opened[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("incident-"), "{id}");
    for r in &opened[..3] {
        assert_eq!(
            r["id"], opened[0]["id"],
            "the same webhook-id on every attempt"
        );
        assert_eq!(
            r["body"], opened[0]["body"],
            "the same body on every attempt"
        );
        assert_eq!(r["verified"], true, "standardwebhooks verifies: {r}");
        assert_eq!(
            r["tampered_rejected"], true,
            "a changed body fails verification"
        );
        assert_eq!(r["content_type"], "application/json");
    }
    let gap = opened[2]["at"].as_f64().unwrap() - opened[1]["at"].as_f64().unwrap();
    assert!(
        gap >= 1.0,
        "Retry-After: 1 was honoured, not the 200 ms schedule: {gap:.3} s"
    );
    let event = body(&opened[0]);
    assert_eq!(event["type"], "incident.opened");
    assert_eq!(event["data"]["incident"]["checks"][0]["id"], "web");
    assert_eq!(event["data"]["incident"]["checks"][0]["name"], "Web <b>&");
    let incident = event["data"]["incident"]["id"].as_i64().unwrap();
    assert_eq!(
        event["data"]["url"],
        format!("https://status.example.com/incidents/{incident}")
    );

    down.store(false, Ordering::SeqCst);
    let (all, _) = until(
        Duration::from_secs(30),
        "every channel hears the resolve",
        || {
            let r = received(&log);
            let resolved = |path: &str| {
                on(&r, path)
                    .iter()
                    .any(|x| body(x).to_string().contains("resolve"))
            };
            let mails = on(&r, "/smtp").len();
            (resolved("/webhook") && resolved("/slack") && resolved("/pd") && mails >= 2)
                .then_some(r)
        },
    );
    // The webhook: opened before resolved, each taken once.
    let kinds: Vec<String> = on(&all, "/webhook")
        .iter()
        .filter(|r| r["answered"] == 200)
        .map(|r| body(r)["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds,
        ["incident.opened", "incident.resolved"],
        "in order, once each"
    );
    // Slack: a text naming the check, escaped for mrkdwn, and blocks.
    // Slack is routed every kind of event: the incident's two, the
    // maintenance window's scheduled and starting (20 minutes ahead, within
    // the hour's lead), and the check's changes.
    let slack = on(&all, "/slack");
    let texts: Vec<String> = slack
        .iter()
        .map(|r| body(r)["text"].as_str().unwrap_or("").to_string())
        .collect();
    let incident_texts: Vec<&String> = texts.iter().filter(|t| t.starts_with("Incident")).collect();
    assert_eq!(incident_texts.len(), 2, "{texts:?}");
    for expected in [
        "Maintenance scheduled: Upgrade",
        "Maintenance starting soon: Upgrade",
        "Web &lt;b&gt;&amp; is down",
    ] {
        assert!(
            texts.iter().any(|t| t.starts_with(expected)),
            "{expected}: {texts:?}"
        );
    }
    let slack_count = texts.len() as f64;
    let slack: Vec<serde_json::Value> = slack
        .into_iter()
        .filter(|r| {
            body(r)["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Incident")
        })
        .collect();
    let first = body(&slack[0]);
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("Web &lt;b&gt;&amp;"),
        "{first}"
    );
    assert!(first["blocks"].as_array().is_some_and(|b| b.len() >= 2));
    // PagerDuty: trigger then resolve, one dedup key, the routing key sent.
    let pd: Vec<serde_json::Value> = on(&all, "/pd").iter().map(body).collect();
    let actions: Vec<&str> = pd
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);
    assert_eq!(pd[0]["dedup_key"], pd[1]["dedup_key"]);
    assert_eq!(pd[0]["routing_key"], "R0UT1NGKEY");
    assert_eq!(pd[0]["payload"]["severity"], "critical");

    // Email: multipart text and HTML, escaped, one thread, no forged header.
    let mails = on(&all, "/smtp");
    assert_eq!(mails.len(), 2, "{mails:?}");
    let (first, second) = (&mails[0], &mails[1]);
    assert_eq!(first["to"][0], "oncall@acme.example");
    assert_eq!(
        first["subject"],
        "[Investigating] Web <b>& is down (Web <b>&)"
    );
    assert_eq!(second["subject"], "[Resolved] Web <b>& is down (Web <b>&)");
    for m in [first, second] {
        let parts: Vec<&str> = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(parts, ["multipart/alternative", "text/plain", "text/html"]);
        let html = m["html"].as_str().unwrap();
        assert!(
            html.contains("Web &lt;b&gt;&amp;") && !html.contains("Web <b>&"),
            "{html}"
        );
        assert!(m["text"].as_str().unwrap().contains("Web <b>&"));
        assert!(m["bcc"].is_null());
    }
    assert_eq!(
        first["message_id"],
        format!("<incident-{incident}@acme.example>")
    );
    assert!(first["in_reply_to"].is_null());
    assert_eq!(second["in_reply_to"], first["message_id"], "one thread");
    assert_eq!(second["references"], first["message_id"]);

    let text = metrics(mport);
    let delivered = |channel: &str| {
        metric(
            &text,
            "statuspage_notifications_deliveries_total",
            &[("channel", channel), ("outcome", "delivered")],
        )
    };
    assert_eq!(
        (delivered("ops"), delivered("pager"), delivered("mail")),
        (2.0, 2.0, 2.0),
        "{text}"
    );
    assert!(delivered("chat") >= slack_count, "{text}");
    assert_eq!(
        metric(
            &text,
            "statuspage_notifications_attempts_total",
            &[("channel", "ops"), ("result", "error")]
        ),
        2.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the plain receiver saw of a request: its path, `webhook-id` and type.
type Seen = Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A plain receiver on a port of its own (returned), in this process:
/// records each request's path, `webhook-id` and body's `type`, and takes
/// everything.
fn plain_receiver() -> (u16, Seen) {
    plain_receiver_from(Arc::new(AtomicBool::new(true)))
}

/// [`plain_receiver`], closing every connection unread until `up` is set:
/// a receiver that is down, on a port already its own (one chosen free and
/// bound later can be taken meanwhile by another process's connection).
fn plain_receiver_from(up: Arc<AtomicBool>) -> (u16, Seen) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            if !up.load(Ordering::SeqCst) {
                continue;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let text = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break String::from_utf8_lossy(&buf).to_string();
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break text;
                    }
                }
            };
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("webhook-id: "))
                .unwrap_or("")
                .to_string();
            let kind = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("")
                .to_string();
            record.lock().unwrap().push((path, id, kind));
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

/// SIGKILL straight after an incident commits, with its receiver not yet
/// up (closing every connection): the event was committed with the
/// incident, so the next process delivers it (once its dead predecessor's
/// lease, if any, has expired).
#[test]
fn an_event_committed_before_a_sigkill_is_delivered_by_the_next_process() {
    let dir = std::env::temp_dir().join(format!("statuspage-notify-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let (rport, seen) = plain_receiver_from(up.clone());
    let target = http_target(|_| true);
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  failure_threshold: 2\ngroups:\n  - name: Local\n    checks:\n      - {{ name: Web, id: web, http: {{ url: 'http://127.0.0.1:{target}/' }} }}\nnotifications:\n  channels:\n    - name: ops\n      webhook: {{ url: 'http://127.0.0.1:{rport}/hook', secret: '{SECRET}' }}\n"
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("s.db").display());
    let start = |port: u16| {
        Reaped(
            Command::new(env!("CARGO_BIN_EXE_statuspage"))
                .args(["standalone", "--config"])
                .arg(&config)
                .args(["--database-url", &db])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args([
                    "--notify-retry-schedule",
                    "0s,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
                ])
                .args(["--notify-request-deadline", "1s"])
                .env_remove("STATUSPAGE_DATABASE_URL")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let port = free_port();
    let mut first = start(port);
    until(Duration::from_secs(30), "an open incident", || {
        let v = support::http_json(port, "/api/v1/incidents?state=open")?;
        (!v.as_array()?.is_empty()).then_some(())
    });
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    up.store(true, Ordering::SeqCst);
    let port = free_port();
    let _second = start(port);
    let (got, _) = until(
        Duration::from_secs(30),
        "the event delivered by the next process",
        || {
            let s = seen.lock().unwrap().clone();
            s.iter()
                .any(|(_, _, kind)| kind == "incident.opened")
                .then_some(s)
        },
    );
    let opened: Vec<&(String, String, String)> = got
        .iter()
        .filter(|(_, _, k)| k == "incident.opened")
        .collect();
    assert_eq!(opened.len(), 1, "{got:?}");
    assert!(opened[0].1.starts_with("incident-"), "{got:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A POST with a bearer token to the loopback `port`; the status code.
fn post(port: u16, path: &str, token: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Two ingest processes on one PostgreSQL deliver every event of 200
/// operator incidents (made through the dashboard's admin API, another
/// process) to each of two channels of one receiver: each id exactly once
/// per channel, none lost.
#[tokio::test(flavor = "multi_thread")]
async fn two_ingest_processes_deliver_each_of_200_incidents_once_per_channel() {
    let (db, _) = support::fresh_database("notify_two").await;
    let (_sqs, queue) = support::fresh_queue("notify-two").await;
    let dir = std::env::temp_dir().join(format!("statuspage-notify-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (rport, seen) = plain_receiver();
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            "groups:\n  - name: G\n    checks:\n      - {{ name: Web, id: web, http: {{ url: 'http://127.0.0.1:1/' }} }}\nnotifications:\n  channels:\n    - name: a\n      webhook: {{ url: 'http://127.0.0.1:{rport}/a', secret: '{SECRET}' }}\n    - name: b\n      webhook: {{ url: 'http://127.0.0.1:{rport}/b', secret: '{SECRET}' }}\n"
        ),
    )
    .unwrap();
    let ingest = |port: u16| {
        Reaped(
            Command::new(env!("CARGO_BIN_EXE_statuspage"))
                .args(["ingest", "--queue-url", &queue, "--wait-seconds", "1"])
                .arg("--config")
                .arg(&config)
                .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
                .args(["--tick-seconds", "1", "--leader-lease", "4s"])
                .args(["--notify-request-deadline", "2s"])
                .env("STATUSPAGE_DATABASE_URL", &db)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (one, two) = (free_port(), free_port());
    let _ingest = (ingest(one), ingest(two));
    for port in [one, two] {
        until(Duration::from_secs(30), "ingest ready", || {
            (support::http_status(port, "/readyz") == Some(200)).then_some(())
        });
    }
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "alice alice-token-0123456789\n").unwrap();
    let page = free_port();
    let _dashboard = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["dashboard", "--listen", &format!("127.0.0.1:{page}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .env("STATUSPAGE_DATABASE_URL", &db)
            .env("STATUSPAGE_ADMIN_TOKEN_FILE", &tokens)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until(Duration::from_secs(20), "the dashboard listening", || {
        support::http_status(page, "/").filter(|s| *s == 200)
    });
    for n in 0..200 {
        let body = format!(r#"{{"title": "Incident {n}", "message": "Looking."}}"#);
        assert_eq!(
            post(page, "/admin/v1/incidents", "alice-token-0123456789", &body),
            Some(201)
        );
    }
    let (got, _) = until(Duration::from_secs(60), "400 deliveries", || {
        let s = seen.lock().unwrap().clone();
        (s.len() >= 400).then_some(s)
    });
    // Watched a while longer: nothing comes twice.
    support::watch(Duration::from_secs(3), || {
        let n = seen.lock().unwrap().len();
        if n == 400 {
            Ok(())
        } else {
            Err(format!("{n} deliveries, not 400"))
        }
    });
    let distinct: std::collections::BTreeSet<(String, String)> = got
        .iter()
        .map(|(path, id, _)| (path.clone(), id.clone()))
        .collect();
    assert_eq!(distinct.len(), 400, "each id once per channel");
    for channel in ["/a", "/b"] {
        assert_eq!(got.iter().filter(|(p, _, _)| p == channel).count(), 200);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every kind of event through standalone, the way an operator meets
/// them: an incident opens, resolves and reopens by itself, an operator
/// posts an update, and a maintenance window is scheduled, comes near,
/// starts and completes; each reaches the webhook, in order per subject.
#[tokio::test(flavor = "multi_thread")]
async fn standalone_delivers_every_kind_of_event() {
    let dir = std::env::temp_dir().join(format!("statuspage-notify-all-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (rport, seen) = plain_receiver();
    let down = Arc::new(AtomicBool::new(false));
    let web = {
        let down = down.clone();
        http_target(move |_| down.load(Ordering::SeqCst))
    };
    let api = http_target(|_| false);
    let window = chrono::Utc::now() + chrono::Duration::seconds(8);
    let config = dir.join("checks.yaml");
    std::fs::write(
        &config,
        format!(
            r#"defaults:
  interval: 1s
  timeout: 500ms
  failure_threshold: 2
  success_threshold: 2
  reopen_window: 10m
groups:
  - name: Local
    checks:
      - {{ name: Web, id: web, http: {{ url: "http://127.0.0.1:{web}/" }} }}
      - {{ name: API, id: api, http: {{ url: "http://127.0.0.1:{api}/" }} }}
maintenance:
  - {{ name: Upgrade, checks: [api], start: "{start}", duration: 10s }}
notifications:
  channels:
    - name: ops
      webhook: {{ url: "http://127.0.0.1:{rport}/hook", secret: "{SECRET}" }}
"#,
            start = window.to_rfc3339()
        ),
    )
    .unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "alice alice-token-0123456789\n").unwrap();
    let port = free_port();
    let _standalone = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["standalone", "--config"])
            .arg(&config)
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.join("s.db").display()))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-token-file", tokens.to_str().unwrap()])
            .env_remove("STATUSPAGE_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let kinds = || -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(_, _, kind)| kind.clone())
            .collect()
    };
    let heard = |kind: &str| kinds().iter().any(|k| k == kind);
    until(Duration::from_secs(20), "web up", || {
        support::status_of(port, "web").filter(|c| c["status"] == "up")
    });
    // Opens, resolves and reopens by itself.
    for (off, kind) in [
        (true, "incident.opened"),
        (false, "incident.resolved"),
        (true, "incident.reopened"),
    ] {
        down.store(off, Ordering::SeqCst);
        until(Duration::from_secs(30), kind, || heard(kind).then_some(()));
    }
    // An operator posts an update.
    let open = support::http_json(port, "/api/v1/incidents?state=open").unwrap();
    let id = open[0]["id"].as_i64().unwrap();
    assert_eq!(
        post(
            port,
            &format!("/admin/v1/incidents/{id}/updates"),
            "alice-token-0123456789",
            r#"{"state": "identified", "message": "A bad deploy; rolling back."}"#
        ),
        Some(201)
    );
    until(Duration::from_secs(30), "incident.updated", || {
        heard("incident.updated").then_some(())
    });
    // The window, ten seconds long, has come and gone meanwhile or soon.
    until(Duration::from_secs(40), "maintenance.completed", || {
        heard("maintenance.completed").then_some(())
    });
    let got = kinds();
    for kind in [
        "maintenance.scheduled",
        "maintenance.starting",
        "maintenance.started",
        "maintenance.completed",
    ] {
        assert!(got.iter().any(|k| k == kind), "{kind}: {got:?}");
    }
    // In order within each subject, and each event once.
    let position = |kind: &str| got.iter().position(|k| k == kind).unwrap();
    assert!(position("incident.opened") < position("incident.resolved"));
    assert!(position("incident.resolved") < position("incident.reopened"));
    assert!(position("incident.reopened") < position("incident.updated"));
    assert!(position("maintenance.scheduled") < position("maintenance.started"));
    assert!(position("maintenance.started") < position("maintenance.completed"));
    let ids: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, id, _)| id.clone())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "each event once: {ids:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

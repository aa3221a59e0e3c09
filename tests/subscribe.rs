//! Public subscribers end to end, as a reader uses them: `statuspage
//! standalone` with `subscriptions` on, mail received by `aiosmtpd` and
//! parsed with Python's `email` package, and a local HTTP target this test
//! switches off and on. The form, the confirmation mail and its link (a GET
//! shows a button, the POST confirms), an incident mailed to exactly the
//! confirmed subscribers of the affected check, maintenance, and RFC 8058's
//! one-click unsubscribe stopping the next mail.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::receiver::{on, received, receiver};
use support::{Reaped, free_port, http_target, metric, metrics, until};

/// Sends a form POST; the status and body of the answer.
fn form(port: u16, path: &str, body: &str, origin: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let origin = origin.map_or(String::new(), |o| format!("origin: {o}\r\n"));
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\n{origin}content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |b| b.1)
        .to_string();
    (status, body)
}

fn mails_to(log: &std::path::Path, to: &str) -> Vec<serde_json::Value> {
    on(&received(log), "/smtp")
        .into_iter()
        .filter(|m| m["to"][0] == to)
        .collect()
}

/// The path of the first link in `text` under `/subscribe/{purpose}/`.
fn link(text: &str, purpose: &str) -> String {
    let at = text
        .find(&format!("/subscribe/{purpose}/"))
        .unwrap_or_else(|| panic!("no {purpose} link in {text}"));
    text[at..]
        .split(|c: char| c.is_whitespace() || c == '>' || c == '"')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn subscribers_confirm_hear_only_their_checks_and_leave_in_one_click() {
    let dir = std::env::temp_dir().join(format!("statuspage-subscribe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_receiver, _, smtp, log) = receiver(&dir, "");
    let down = Arc::new(AtomicBool::new(false));
    let api = {
        let down = down.clone();
        http_target(move |_| down.load(Ordering::SeqCst))
    };
    let web = http_target(|_| false);
    let key = dir.join("subscriptions.key");
    std::fs::write(&key, b"0123456789abcdef0123456789abcdef-a-test-key").unwrap();
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
  - name: Core
    checks:
      - {{ name: API, id: api, http: {{ url: "http://127.0.0.1:{api}/" }} }}
      - {{ name: Web, id: web, http: {{ url: "http://127.0.0.1:{web}/" }} }}
smtp:
  url: "smtp://127.0.0.1:{smtp}?tls=none"
  from: "Acme status <status@acme.example>"
subscriptions:
  enabled: true
  signing_key_file: "{}"
"#,
            key.display()
        ),
    )
    .unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "alice alice-token-0123456789\n").unwrap();
    let (port, ops) = (free_port(), free_port());
    let origin = format!("http://127.0.0.1:{port}");
    let _standalone = Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["standalone", "--config"])
            .arg(&config)
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.join("s.db").display()))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{ops}")])
            .args(["--title", "Acme status"])
            .args(["--admin-token-file", tokens.to_str().unwrap()])
            .env_remove("STATUSPAGE_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until(Duration::from_secs(20), "api up", || {
        support::status_of(port, "api").filter(|c| c["status"] == "up")
    });
    let home = support::http_body(port, "/").unwrap();
    assert!(home.contains(r#"<a class="subscribe" href="/subscribe">Subscribe to updates</a>"#));
    let page = support::http_body(port, "/subscribe").unwrap();
    assert!(page.contains(r#"name="check" value="api""#), "{page}");

    // Four readers subscribe: a to the API, b to the website, c and d to
    // everything. Each confirmation reaches the SMTP server within 3 s.
    for (who, choice) in [
        ("a", "&check=api"),
        ("b", "&check=web"),
        ("c", ""),
        ("d", "&group=Core"),
    ] {
        let sent = Instant::now();
        let (status, body) = form(
            port,
            "/subscribe",
            &format!("email={who}%40example.com{choice}"),
            Some(&origin),
        );
        assert_eq!(status, 200, "{body}");
        let to = format!("{who}@example.com");
        until(Duration::from_secs(3), "the confirmation mail", || {
            mails_to(&log, &to).first().cloned()
        });
        assert!(sent.elapsed() < Duration::from_secs(3));
    }
    // c never confirms; the others follow their mail's link: a GET shows a
    // button and confirms nothing, the button's POST confirms.
    for who in ["a", "b", "d"] {
        let mail = mails_to(&log, &format!("{who}@example.com")).remove(0);
        assert_eq!(mail["subject"], "Confirm your subscription to Acme status");
        assert!(
            mail["list_unsubscribe"]
                .as_str()
                .unwrap()
                .starts_with(&format!("<{origin}/subscribe/unsubscribe/"))
        );
        assert_eq!(mail["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
        let confirm = link(mail["text"].as_str().unwrap(), "confirm");
        let shown = support::http_raw(port, &confirm);
        assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
        assert!(
            shown.contains("cache-control: no-store")
                && shown.contains("referrer-policy: no-referrer")
        );
        assert!(
            shown.contains(&format!(
                r#"<form method="post" action="{confirm}"><button type="submit">Confirm</button>"#
            )),
            "{shown}"
        );
        let (status, body) = form(port, &confirm, "", Some(&origin));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("You are subscribed"));
    }
    // The answer for new, pending and confirmed addresses: the same bytes.
    let answers: Vec<String> = ["e", "c", "d"]
        .iter()
        .map(|who| {
            let (status, body) = form(
                port,
                "/subscribe",
                &format!("email={who}%40example.com"),
                Some(&origin),
            );
            assert_eq!(status, 200);
            body.replace(&format!("{who}@example.com"), "ADDRESS")
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);

    // The API goes down: a and d (and nobody else) are told, with the
    // page's title, the check's name, and the one-click headers.
    down.store(true, Ordering::SeqCst);
    let opened = |to: &str| {
        mails_to(&log, to).into_iter().find(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("[Investigating]")
        })
    };
    let for_a = until(Duration::from_secs(30), "a's incident mail", || {
        opened("a@example.com")
    })
    .0;
    until(Duration::from_secs(10), "d's incident mail", || {
        opened("d@example.com")
    });
    until(Duration::from_secs(10), "two notices sent", || {
        let m = metrics(ops);
        (metric(
            &m,
            "statuspage_subscriber_mails_total",
            &[("kind", "notice"), ("outcome", "delivered")],
        ) == 2.0)
            .then_some(())
    });
    assert!(opened("b@example.com").is_none() && opened("c@example.com").is_none());
    let subject = for_a["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Acme status: [Investigating]") && subject.contains("(API)"),
        "{subject}"
    );
    let text = for_a["text"].as_str().unwrap();
    assert!(text.contains("Affected: API"), "{text}");
    assert!(
        for_a["html"]
            .as_str()
            .unwrap()
            .contains("/subscribe/preferences/")
    );
    let unsubscribe = for_a["list_unsubscribe"]
        .as_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    assert!(text.contains(&unsubscribe));

    // a unsubscribes as a mail provider does: a POST with no Origin.
    let path = unsubscribe.trim_start_matches(&origin).to_string();
    let (status, body) = form(port, &path, "List-Unsubscribe=One-Click", None);
    assert_eq!(status, 200, "{body}");
    // The API recovers: d hears of it, a no more.
    down.store(false, Ordering::SeqCst);
    let resolved = |to: &str| {
        mails_to(&log, to)
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains("[Resolved]"))
    };
    until(Duration::from_secs(30), "d's resolved mail", || {
        resolved("d@example.com")
    });
    until(Duration::from_secs(10), "three notices sent", || {
        let m = metrics(ops);
        (metric(
            &m,
            "statuspage_subscriber_mails_total",
            &[("kind", "notice"), ("outcome", "delivered")],
        ) == 3.0)
            .then_some(())
    });
    assert!(resolved("a@example.com").is_none());

    // Maintenance on the website: b and d hear it is scheduled.
    let start = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::Duration::hours(4)).to_rfc3339();
    let window = format!(
        r#"{{"name": "Web upgrade", "checks": ["web"], "starts_at": "{start}", "ends_at": "{end}"}}"#
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /admin/v1/maintenance HTTP/1.1\r\nhost: x\r\nauthorization: Bearer alice-token-0123456789\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{window}",
        window.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let scheduled = |to: &str| {
        mails_to(&log, to).into_iter().find(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("[Maintenance scheduled] Web upgrade")
        })
    };
    until(Duration::from_secs(20), "b's maintenance mail", || {
        scheduled("b@example.com")
    });
    until(Duration::from_secs(10), "d's maintenance mail", || {
        scheduled("d@example.com")
    });
    // The feed carries it too.
    let feed = support::http_body(port, "/feed.atom").unwrap();
    assert!(
        feed.contains("Maintenance scheduled: Web upgrade"),
        "{feed}"
    );

    // No mail ever had a header broken by input, and none went to c.
    for m in on(&received(&log), "/smtp") {
        assert!(m["bcc"].is_null(), "{m}");
        assert!(
            m["to"][0] != "c@example.com"
                || m["subject"].as_str().unwrap_or("").starts_with("Confirm"),
            "{m}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

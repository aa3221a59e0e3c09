//! `statuspage demo` as a newcomer runs it: live statuses within 10 s, a page
//! that renders cleanly in Chromium (its screenshot is the README's), and an
//! incident that opens and resolves by itself, which the demo says in its log.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{chromium, free_port, http_body, screenshots_dir, signal};

#[test]
fn the_demo_is_live_in_seconds_and_an_incident_comes_and_goes_by_itself() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("statuspage-demo-test-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "demo",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();

    // Within 10 s: every check has a live status.
    loop {
        let statuses: Option<Vec<String>> = http_body(port, "/api/v1/status")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["checks"].as_array().map(|c| {
                    c.iter()
                        .map(|c| c["status"].as_str().unwrap_or("").to_string())
                        .collect()
                })
            });
        if let Some(s) = &statuses
            && s.len() == 5
            && s.iter().all(|s| s == "up" || s == "degraded")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not live within 10 s: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let api: serde_json::Value =
        serde_json::from_str(&http_body(port, "/api/v1/checks/api").unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(api["certificate_expires_at"].as_str().unwrap())
            .unwrap();
    let days = (expires.timestamp() - chrono::Utc::now().timestamp()) / 86_400;
    assert!(
        (9..=10).contains(&days),
        "the demo certificate expires in {days} days"
    );

    // The page in a browser: clean, and its screenshot for the README.
    let url = format!("http://127.0.0.1:{port}/");
    let (dom, console) = chromium(&["--dump-dom".into(), url.clone()]);
    assert!(console.is_empty(), "{console:?}");
    assert!(
        dom.contains("All systems operational") && dom.contains("Checkout"),
        "{dom:.300}"
    );
    for width in [1280, 375] {
        let file = screenshots_dir().join(format!("demo-{width}.png"));
        let (_, console) = chromium(&[
            format!("--window-size={width},1400"),
            format!("--screenshot={}", file.display()),
            url.clone(),
        ]);
        assert!(console.is_empty(), "{console:?}");
        assert!(std::fs::metadata(&file).unwrap().len() > 10_000);
    }

    // Checkout goes down a minute in, for a minute: the demo logs the
    // incident opening and resolving (failure and success thresholds of 2
    // at a 5 s interval, so within about 2.5 minutes).
    let deadline = started + Duration::from_secs(200);
    let (mut opened, mut resolved) = (false, false);
    while !(opened && resolved) {
        assert!(
            Instant::now() < deadline,
            "opened {opened}, resolved {resolved}"
        );
        std::thread::sleep(Duration::from_secs(1));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        opened = text
            .lines()
            .any(|l| l.contains("demo_incident_opened") && l.contains("Checkout is down"));
        resolved = text
            .lines()
            .any(|l| l.contains("demo_incident_resolved") && l.contains("Checkout is down"));
    }
    let incidents: serde_json::Value =
        serde_json::from_str(&http_body(port, "/api/v1/incidents?state=resolved").unwrap())
            .unwrap();
    let checkout = &incidents[0];
    assert_eq!(checkout["checks"], serde_json::json!(["checkout"]));
    assert_eq!(checkout["auto"], true);
    assert!(
        checkout["updates"][0]["message"]
            .as_str()
            .unwrap()
            .contains("(http_status)"),
        "{checkout}"
    );

    signal(&child, "INT");
    let status = child.wait().unwrap();
    assert!(status.success(), "Ctrl-C is a clean stop: {status:?}");
    let _ = std::fs::remove_file(&log);
}

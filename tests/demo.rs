//! `statuspage demo` as a newcomer runs it: live statuses within 10 s, a page
//! that renders cleanly in Chromium (its screenshot is the README's), and an
//! incident that opens and resolves by itself, which the demo says in its log.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{chromium, free_port, http_body, screenshots_dir, signal, until};

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
            && s.len() == 6
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

/// Every metric family standalone exported before the move to the `metrics`
/// crates, with its type: the exporter prints a family only once it has
/// series, so the guard is a workload with one check of each kind (HTTP,
/// HTTPS, TCP, TLS, DNS) and one page request, which the demo is.
/// (`statuspage_dead_letter_queue_messages` is ingest's alone, with a DLQ.)
const FAMILIES: &[(&str, &str)] = &[
    ("probe_success", "gauge"),
    ("probe_duration_seconds", "gauge"),
    ("probe_http_duration_seconds", "gauge"),
    ("probe_http_status_code", "gauge"),
    ("probe_ssl_earliest_cert_expiry", "gauge"),
    ("probe_dns_lookup_time_seconds", "gauge"),
    ("statuspage_agent_buffer_results", "gauge"),
    ("statuspage_agent_results_dropped_total", "counter"),
    ("statuspage_agent_batches_sent_total", "counter"),
    ("statuspage_agent_bytes_sent_total", "counter"),
    ("statuspage_agent_spooled_results_total", "counter"),
    ("statuspage_agent_spool_corrupt_total", "counter"),
    ("statuspage_agent_publish_errors_total", "counter"),
    ("statuspage_agent_skipped_runs_total", "counter"),
    ("statuspage_agent_runs_total", "counter"),
    ("statuspage_agent_assigned_checks", "gauge"),
    ("statuspage_agent_config_last_reload_successful", "gauge"),
    ("statuspage_agent_schedule_lag_seconds", "histogram"),
    ("statuspage_ingest_results_total", "counter"),
    ("statuspage_ingest_rejected_total", "counter"),
    ("statuspage_ingest_late_results_total", "counter"),
    ("statuspage_sqs_messages_total", "counter"),
    ("statuspage_sqs_visibility_abandoned_total", "counter"),
    ("statuspage_ingest_lag_seconds", "gauge"),
    ("statuspage_ingest_db_up", "gauge"),
    ("statuspage_ingest_db_transaction_seconds", "histogram"),
    ("statuspage_ingest_leader_step_seconds", "histogram"),
    ("statuspage_ingest_leader_deferred_checks", "gauge"),
    ("statuspage_ingest_db_retries_total", "counter"),
    ("statuspage_ingest_pruned_total", "counter"),
    ("statuspage_ingest_config_last_reload_successful", "gauge"),
    ("statuspage_ingest_leader", "gauge"),
    ("statuspage_check_up", "gauge"),
    ("statuspage_check_slo_objective", "gauge"),
    ("statuspage_check_slo_window_seconds", "gauge"),
    ("statuspage_check_status", "gauge"),
    ("statuspage_agent_last_seen_timestamp_seconds", "gauge"),
    ("statuspage_incidents_open", "gauge"),
    ("statuspage_dashboard_requests_total", "counter"),
    ("statuspage_dashboard_cache_total", "counter"),
    ("statuspage_dashboard_render_seconds", "summary"),
    ("statuspage_dashboard_cache_invalidations_total", "counter"),
    ("statuspage_dashboard_cache_entries", "gauge"),
    ("statuspage_notifications_deliveries_total", "counter"),
    ("statuspage_notifications_attempts_total", "counter"),
    ("statuspage_notifications_pending", "gauge"),
    ("statuspage_notifications_oldest_pending_seconds", "gauge"),
    ("statuspage_subscriber_mails_total", "counter"),
];

#[test]
fn the_demo_workload_shows_every_metric_family_with_its_help() {
    let (port, ops) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{ops}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until(Duration::from_secs(30), "the page", || http_body(port, "/"));
    // Labels as before: per check, per phase, per status.
    let phase = |phase| vec![("check", "status-api"), ("kind", "http"), ("phase", phase)];
    let series: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("probe_http_duration_seconds", phase("connect")),
        ("probe_http_duration_seconds", phase("tls")),
        ("probe_http_duration_seconds", phase("processing")),
        ("probe_http_duration_seconds", phase("transfer")),
        (
            "probe_ssl_earliest_cert_expiry",
            vec![("check", "api"), ("kind", "tls")],
        ),
        ("probe_dns_lookup_time_seconds", vec![("check", "dns")]),
        (
            "statuspage_check_status",
            vec![("check", "database"), ("status", "up")],
        ),
    ];
    let (text, _) = until(Duration::from_secs(60), "every family and series", || {
        let text = http_body(ops, "/metrics")?;
        let got = config::exposition::families(&text);
        let families = FAMILIES
            .iter()
            .all(|(name, kind)| got.iter().any(|(n, k)| n == name && k == kind));
        let samples = series
            .iter()
            .all(|(name, labels)| config::exposition::value(&text, name, labels).is_some());
        // The stable TCP check is up once two results have passed
        // through ingest; until then its status is honestly "unknown".
        let up = config::exposition::value(
            &text,
            "statuspage_check_status",
            &[("check", "database"), ("status", "up")],
        ) == Some(1.0);
        (families && samples && up).then_some(text)
    });
    for (name, _) in config::exposition::families(&text) {
        assert!(
            FAMILIES.iter().any(|(n, _)| *n == name),
            "{name} is new: add it to the README's tables and to FAMILIES"
        );
        assert!(
            text.lines().any(|l| l.starts_with('#')
                && l.split_whitespace().nth(1) == Some("HELP")
                && l.split_whitespace().nth(2) == Some(name.as_str())),
            "{name} has no help text"
        );
    }
    signal(&child, "INT");
    assert!(child.wait().unwrap().success());
}

/// A bad `--metrics-listen` stops the demo with the flag named, and its
/// temp dir (database and CA) is removed on the way out.
#[test]
fn a_bad_metrics_address_is_a_clear_error_and_leaves_nothing_behind() {
    let child = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["demo", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-listen", "nonsense"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("statuspage-demo-{}", child.id()));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("listening on --metrics-listen nonsense: invalid socket address"),
        "{said}"
    );
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

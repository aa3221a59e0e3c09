//! The pages in a real browser: headless Chromium (Debian's) loads the front
//! page, a check page and an incident page from a running dashboard over the
//! fixture, and the rendered DOM must hold the banner, the bars, the graph
//! and the timeline, and the subscribe form, with not one console message (a
//! CSP violation is one).
//! Screenshots at 1280 and 375 px wide go under the target directory.

use crate::fixture::Db;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A dashboard over `state` on a free port, once it listens: its base URL,
/// what stops it, and its task.
async fn serve(
    state: dashboard::AppState,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), dashboard::DashboardError>>,
) {
    let port = free_port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(dashboard::run(
        dashboard::Settings {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            extra: None,
        },
        state,
        dashboard::Changes::None,
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (format!("http://127.0.0.1:{port}"), stop, server)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The DOM after rendering, and the console messages.
async fn dom(url: String) -> (String, Vec<String>) {
    tokio::task::spawn_blocking(move || crate::headless::chromium(&["--dump-dom".into(), url]))
        .await
        .unwrap()
}

async fn screenshot(url: String, width: u32, file: PathBuf) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let (_, console) = crate::headless::chromium(&[
            format!("--window-size={width},2400"),
            format!("--screenshot={}", file.display()),
            url,
        ]);
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{}: {size} bytes", file.display());
        console
    })
    .await
    .unwrap()
}

fn assert_quiet(page: &str, console: &[String]) {
    assert!(
        console.is_empty(),
        "{page}: console messages:\n{}",
        console.join("\n")
    );
}

#[tokio::test]
async fn the_pages_render_in_chromium_with_no_console_message() {
    let db = Db::sqlite().await;
    // With subscriptions on: every page links to them.
    let mut state = crate::subscribe::state(&db, 100, 1000, crate::subscribe::pinned());
    state.clock = dashboard::system_clock();
    let (base, stop, server) = serve(state).await;
    let incident = format!("/incidents/{}", db.seeded.web_incident);
    let pages = [
        (
            "home",
            "/".to_string(),
            vec![
                "<section class=\"banner partial_outage\"",
                "<svg class=\"bar\"",
                "<rect class=\"up\"",
                // The local-time script ran: the UTC text moved to a tooltip.
                "Z\" title=\"",
                " UTC\">",
                "<a class=\"budget\" href=\"/checks/web#slo-h\"",
            ],
        ),
        (
            "check",
            "/checks/api".to_string(),
            vec![
                "<figure class=\"chart\">",
                "<path class=\"p50\" d=\"M",
                "<path class=\"p95\" d=\"M",
                "<table class=\"phases\">",
                "<figure class=\"chart stacked\">",
                "<path class=\"phase-dns\" d=\"M",
                "<path class=\"phase-transfer\" d=\"M",
                "<h2 id=\"slo-h\">Objective</h2>",
                "<meter class=\"budget\"",
                "Mean phases by location over the last 24 hours",
            ],
        ),
        (
            "incident",
            incident,
            vec![
                "<ol class=\"timeline\">",
                "Detected: 3 of 3 locations failing",
            ],
        ),
        (
            "subscribe",
            "/subscribe".to_string(),
            vec![
                "<form class=\"subscribe\" method=\"post\" action=\"/subscribe\">",
                "<input id=\"email\" type=\"email\" name=\"email\" required",
                "<fieldset class=\"choices\">",
            ],
        ),
    ];
    let dir = crate::headless::screenshots_dir();
    for (name, path, markers) in &pages {
        let (dom, console) = dom(format!("{base}{path}")).await;
        assert_quiet(name, &console);
        for m in markers {
            assert!(dom.contains(m), "{name}: {m} missing from the rendered DOM");
        }
        for width in [1280, 375] {
            let file = dir.join(format!("{name}-{width}.png"));
            let console = screenshot(format!("{base}{path}"), width, file).await;
            assert_quiet(name, &console);
        }
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// Without JavaScript every page still works: the graphs are server-drawn
/// SVG, and every time stays in UTC, labelled so (the script that rewrites
/// times into the reader's zone did not run). The same page with
/// JavaScript shows the script ran, so the switch is real.
#[tokio::test]
async fn without_javascript_the_pages_work_and_times_stay_in_labelled_utc() {
    let db = Db::sqlite().await;
    let (base, stop, server) = serve(db.state(Duration::from_secs(10))).await;
    let times = |dom: &str| -> Vec<String> {
        dom.split("<time ")
            .skip(1)
            .map(|t| t[..t.find("</time>").unwrap()].to_string())
            .collect()
    };
    for path in ["/", "/checks/api", "/incidents"] {
        let url = format!("{base}{path}");
        let (page, console) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || crate::headless::chromium_without_javascript(&["--dump-dom".into(), url])
        })
        .await
        .unwrap();
        assert_quiet(path, &console);
        let found = times(&page);
        assert!(!found.is_empty(), "{path}: no <time> in {page}");
        for t in &found {
            assert!(t.ends_with(" UTC") && !t.contains("title="), "{path}: {t}");
        }
        if path == "/checks/api" {
            assert!(
                page.contains("<path class=\"p50\" d=\"M"),
                "the graphs need no script"
            );
            assert!(page.contains("<h2 id=\"slo-h\">Objective</h2>"));
        }
        let (with_js, _) = dom(url).await;
        assert!(
            times(&with_js).iter().all(|t| t.contains("title=")),
            "{path}: with JavaScript the script rewrites every time"
        );
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// The detector is real: a page that breaks our CSP is caught.
#[tokio::test]
async fn a_csp_violation_is_caught_as_a_console_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            (
                [
                    ("content-type", "text/html"),
                    (
                        "content-security-policy",
                        "default-src 'none'; style-src 'self'",
                    ),
                ],
                "<!doctype html><title>x</title><p style=\"color:red\">x</p><script>1</script>",
            )
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (_, console) = dom(format!("http://127.0.0.1:{port}/")).await;
    server.abort();
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:?}"
    );
}

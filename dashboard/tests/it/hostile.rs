//! Hostile input: markup and `javascript:` URLs in names, groups and
//! incidents render inert everywhere; bad query strings get a clear error.

use crate::fixture::{Db, IMG, JS_URL, SCRIPT};
use crate::get;
use http::StatusCode;
use std::time::Duration;

crate::both!(
    hostile_text_renders_inert_on_every_page_and_in_the_api,
    huge_or_malformed_query_strings_are_refused_clearly,
    a_flood_of_made_up_ids_costs_one_query_per_ttl,
);

async fn hostile_text_renders_inert_on_every_page_and_in_the_api(db: Db) {
    let state = db.state(Duration::from_secs(10));
    let op = format!("/incidents/{}", db.seeded.operator_incident);
    for path in ["/", "/checks/xss", "/incidents", op.as_str()] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        // The one script of every page is ours, whole; no other.
        let ours = format!("<script>{}</script>", dashboard::pages::LOCAL_TIME);
        assert_eq!(got.body.matches(&ours).count(), 1, "{path}");
        let b = &got.body.replace(&ours, "");
        assert!(!b.contains("<script"), "{path}: a live script tag");
        assert!(!b.contains("<img src=x"), "{path}: a live img tag");
        assert!(
            !b.contains("onerror=alert(1)>"),
            "{path}: an unescaped attribute"
        );
        assert!(
            !b.to_ascii_lowercase().contains("href=\"javascript:"),
            "{path}"
        );
        assert!(
            !b.to_ascii_lowercase().contains("src=\"javascript:"),
            "{path}"
        );
        // The text is there, escaped, not dropped.
        assert!(
            b.contains("&lt;script&gt;"),
            "{path}: the text is shown escaped"
        );
    }
    let check = get(&state, "/checks/xss").await.body;
    assert!(
        check.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "the group, escaped"
    );
    assert!(check.contains(JS_URL), "the description is shown as text");
    let incident = get(&state, &op).await.body;
    assert!(
        incident.contains("alice &quot;&gt;&lt;img"),
        "the author, escaped"
    );

    // The API keeps the text as data: exactly what was stored.
    let status = get(&state, "/api/v1/status").await;
    assert_eq!(status.header("content-type"), "application/json");
    assert_eq!(status.header("x-content-type-options"), "nosniff");
    let v = status.json();
    let xss = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "xss")
        .unwrap();
    assert_eq!(xss["name"], SCRIPT);
    assert_eq!(xss["group"], format!("Edge {IMG}"));
    let op = v["open_incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == db.seeded.operator_incident)
        .unwrap();
    assert_eq!(op["title"], format!("Payments {SCRIPT} {IMG}"));
    assert_eq!(
        op["updates"][0]["message"],
        format!("See {JS_URL} and {SCRIPT}")
    );
    assert_eq!(op["checks"], serde_json::json!([]));
}

async fn huge_or_malformed_query_strings_are_refused_clearly(db: Db) {
    let state = db.state(Duration::from_secs(10));
    for (path, why) in [
        (
            "/incidents?page=abc",
            "`page` must be a whole number from 1 to 100000.",
        ),
        (
            "/incidents?page=0",
            "`page` must be a whole number from 1 to 100000.",
        ),
        (
            "/incidents?page=-3",
            "`page` must be a whole number from 1 to 100000.",
        ),
        (
            "/incidents?page=99999999999999999999999",
            "`page` must be a whole number from 1 to 100000.",
        ),
        (
            "/incidents?page=%FF%FE",
            "`page` must be a whole number from 1 to 100000.",
        ),
    ] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(got.body.contains("Bad request"), "{path}");
        assert!(got.body.contains(why), "{path}: {}", got.body);
        assert_eq!(got.header("cache-control"), "no-store");
    }
    let bad = get(&state, "/api/v1/incidents?page=1.5").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json()["error"],
        "`page` must be a whole number from 1 to 100000."
    );

    let huge = format!("/?q={}", "x".repeat(5000));
    let got = get(&state, &huge).await;
    assert_eq!(got.status, StatusCode::URI_TOO_LONG);
    assert!(got.body.contains("longer than 1024 bytes"));
    let huge_api = format!("/api/v1/status?q={}", "x".repeat(5000));
    let got = get(&state, &huge_api).await;
    assert_eq!(got.status, StatusCode::URI_TOO_LONG);
    assert_eq!(
        got.json()["error"],
        "The query string is longer than 1024 bytes."
    );

    // Unknown and undecodable parameters are ignored (tracking tags,
    // cache busters): the page is the same cached page.
    let plain = get(&state, "/").await;
    for path in [
        "/?utm_source=mail",
        "/?%zz%ff=%00",
        "/?a&&&=&b=",
        "/api/v1/status?x=1",
    ] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        if path.starts_with("/?") {
            assert_eq!(got.header("etag"), plain.header("etag"), "{path}");
        }
    }
}

async fn a_flood_of_made_up_ids_costs_one_query_per_ttl(db: Db) {
    let (state, meter) = db.metered_state(Duration::from_secs(10));
    for n in 0..20 {
        let got = get(&state, &format!("/checks/made-up-{n}")).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
        let got = get(&state, &format!("/incidents/{}", 1_000_000 + n)).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
    }
    // One read of each id list; everything else from memory.
    let cache = |outcome| meter.value("statuspage_dashboard_cache_total", &[("outcome", outcome)]);
    assert_eq!(cache("miss"), 2, "{}", meter.text());
    assert_eq!(cache("hit"), 38, "{}", meter.text());
    // A real id still gets its page.
    assert_eq!(get(&state, "/checks/api").await.status, StatusCode::OK);
    let incident = format!("/incidents/{}", db.seeded.web_incident);
    assert_eq!(get(&state, &incident).await.status, StatusCode::OK);
}

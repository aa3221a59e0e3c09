//! What other sites embed or poll: the Statuspage-shaped summary against
//! the published shape, badges, and the Atom feed through a real RELAX NG
//! validator; hostile text inert in all three.

use crate::fixture::{Db, IMG, SCRIPT};
use crate::{Got, get};
use http::StatusCode;
use std::time::Duration;

crate::both!(
    the_summary_has_statuspages_published_shape,
    badges_show_status_and_floored_uptime_and_may_be_embedded,
    the_feed_is_valid_atom_with_stable_ids,
    hostile_text_stays_inert_in_the_feed_badges_and_summary,
);

const TTL: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("tests/fixtures")
        .join(name)
}

async fn the_summary_has_statuspages_published_shape(db: Db) {
    let state = db.state(TTL);
    let got = get(&state, "/api/v2/summary.json").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("access-control-allow-origin"), "*");
    let v = got.json();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("statuspage-summary.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{v:#}");

    assert_eq!(v["page"]["url"], "https://status.example.test");
    assert_eq!(v["status"]["indicator"], "major");
    assert_eq!(v["status"]["description"], "Partial System Outage");
    let components = v["components"].as_array().unwrap();
    let by = |id: &str| components.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(by("api")["status"], "operational");
    assert_eq!(by("web")["status"], "major_outage");
    assert_eq!(by("db")["status"], "degraded_performance");
    let core = components
        .iter()
        .find(|c| c["name"] == "Core" && c["group"] == true)
        .unwrap();
    assert_eq!(core["components"], serde_json::json!(["api", "web"]));
    assert_eq!(core["status"], "major_outage", "a group is its worst check");
    assert_eq!(by("api")["group_id"], core["id"]);
    assert!(
        components.iter().all(|c| c["id"] != "secret"),
        "private checks stay out"
    );
    let incidents = v["incidents"].as_array().unwrap();
    let web_id = db.seeded.web_incident.to_string();
    assert_eq!(incidents.len(), 2, "the open ones");
    let web = incidents
        .iter()
        .find(|i| i["id"].as_str() == Some(web_id.as_str()))
        .unwrap();
    assert_eq!(web["components"][0]["id"], "web");
    assert_eq!(
        web["shortlink"],
        format!(
            "https://status.example.test/incidents/{}",
            db.seeded.web_incident
        )
    );
    let maint = &v["scheduled_maintenances"][0];
    assert_eq!(maint["status"], "scheduled");
    assert_eq!(
        maint["components"].as_array().unwrap().len(),
        1,
        "db only, not secret"
    );
}

fn svg_ok(got: &Got) {
    assert_eq!(got.header("content-type"), "image/svg+xml");
    assert!(
        got.body
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{}",
        got.body
    );
    // Embeddable: no frame-ancestors, no X-Frame-Options, readable cross-origin.
    assert!(
        !got.header("content-security-policy")
            .contains("frame-ancestors"),
        "{:?}",
        got.headers
    );
    assert_eq!(got.header("x-frame-options"), "");
    assert_eq!(got.header("cross-origin-resource-policy"), "cross-origin");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
}

async fn badges_show_status_and_floored_uptime_and_may_be_embedded(db: Db) {
    let state = db.state(TTL);
    let web = get(&state, "/badge/web/status.svg").await;
    assert_eq!(web.status, StatusCode::OK);
    svg_ok(&web);
    assert!(web.body.contains("<title>Website: down</title>"));
    assert!(web.body.contains("aria-label=\"Website: down\""));
    assert!(web.body.contains(">down</text>"));
    let api = get(&state, "/badge/api/uptime/90d.svg").await;
    assert_eq!(api.status, StatusCode::OK);
    svg_ok(&api);
    assert!(api.body.contains(">uptime 90d</text>"));
    assert!(api.body.contains(">99.93%</text>"), "{}", api.body);
    assert!(
        api.body
            .contains("<title>Public API: 99.93% uptime over 90d</title>")
    );
    for w in ["24h", "7d", "30d"] {
        let got = get(&state, &format!("/badge/api/uptime/{w}.svg")).await;
        assert_eq!(got.status, StatusCode::OK, "{w}");
    }
    assert!(
        get(&state, "/badge/api/uptime/24h.svg")
            .await
            .body
            .contains(">100.00%</text>")
    );
    for path in [
        "/badge/secret/status.svg",
        "/badge/nope/status.svg",
        "/badge/api/uptime/1y.svg",
        "/badge/api/other.svg",
    ] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        svg_ok(&got);
        assert!(got.body.contains(">not found</text>"), "{path}");
    }
    let etag = web.header("etag").to_string();
    let again = crate::get_with(&state, "/badge/web/status.svg", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

/// Runs the RELAX NG validator `scripts/test` installed on a feed.
pub fn validate_atom(feed: &str) -> String {
    let python = std::env::var("STATUSPAGE_TEST_XML_PYTHON")
        .expect("STATUSPAGE_TEST_XML_PYTHON: scripts/test installs the XML validator");
    let file = std::env::temp_dir().join(format!(
        "statuspage-feed-{}-{}.atom",
        std::process::id(),
        crate::fixture::now()
    ));
    std::fs::write(&file, feed).unwrap();
    let out = std::process::Command::new(python)
        .arg(fixture("validate_atom.py"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn the_feed_is_valid_atom_with_stable_ids(db: Db) {
    let state = db.admin_state(Duration::from_secs(3600));
    let got = get(&state, "/feed.atom").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.header("content-type"),
        "application/atom+xml; charset=utf-8"
    );
    assert_eq!(validate_atom(&got.body).trim(), "valid", "{}", got.body);
    let id = format!(
        "<id>https://status.example.test/incidents/{}</id>",
        db.seeded.web_incident
    );
    assert!(got.body.contains(&id));
    assert_eq!(
        got.body.matches("<entry>").count(),
        4,
        "every public incident (the old one, web's, the operator's), the private one left out, and the scheduled maintenance"
    );
    assert!(got.body.contains("#maintenance-"), "{}", got.body);
    assert!(got.body.contains("Affects: Database port"), "{}", got.body);
    assert!(
        !got.body.contains("Hidden backend"),
        "a private check is never named"
    );
    // An update changes the entry's content and `updated`, never its id.
    let auth = format!("Bearer {}", crate::fixture::ALICE);
    let posted = crate::send(
        &state,
        "POST",
        &format!("/admin/v1/incidents/{}/updates", db.seeded.web_incident),
        &[("authorization", auth.as_str())],
        r#"{"state": "identified", "message": "A bad deploy; rolling back."}"#.to_string(),
    )
    .await;
    assert_eq!(posted.status, StatusCode::CREATED);
    let after = get(&state, "/feed.atom").await.body;
    assert_eq!(validate_atom(&after).trim(), "valid");
    assert!(after.contains(&id));
    assert!(after.contains("A bad deploy; rolling back."));
    assert_eq!(after.matches("<entry>").count(), 4);
    // The validator is real: a broken feed is refused.
    let broken = after.replacen("<updated>", "<updated>yesterday", 1);
    assert_ne!(validate_atom(&broken).trim(), "valid");
}

async fn hostile_text_stays_inert_in_the_feed_badges_and_summary(db: Db) {
    let state = db.state(TTL);
    let feed = get(&state, "/feed.atom").await.body;
    assert_eq!(
        validate_atom(&feed).trim(),
        "valid",
        "hostile text keeps the XML valid"
    );
    assert!(
        !feed.contains("<script") && !feed.contains("<img"),
        "{feed}"
    );
    // Escaped twice in content (HTML inside XML), once in titles.
    assert!(feed.contains("Payments &lt;script&gt;alert"), "{feed}");
    assert!(feed.contains("&amp;lt;script&amp;gt;"), "{feed}");

    let badge = get(&state, "/badge/xss/status.svg").await;
    assert_eq!(badge.status, StatusCode::OK);
    assert!(!badge.body.contains("<script"), "{}", badge.body);
    assert!(
        badge
            .body
            .contains("<title>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;: up</title>")
            || badge
                .body
                .contains("<title>&lt;script&gt;alert('x')&lt;/script&gt;: up</title>"),
        "{}",
        badge.body
    );

    let summary = get(&state, "/api/v2/summary.json").await;
    assert_eq!(summary.header("content-type"), "application/json");
    let v = summary.json();
    let xss = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "xss")
        .unwrap();
    assert_eq!(xss["name"], SCRIPT, "JSON carries the text as data");
    assert!(
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == format!("Edge {IMG}"))
    );
}

//! Every public route on the fixture, in both databases.

use crate::fixture::{Db, HOUR};
use crate::{get, get_with};
use http::StatusCode;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

crate::both!(
    front_page_shows_banner_incidents_maintenance_and_groups,
    check_page_shows_uptime_graphs_locations_certificate_and_incidents,
    private_and_unknown_ids_are_404_everywhere,
    api_status_has_the_documented_shape,
    api_check_has_ninety_days_and_latency_series,
    api_incidents_filter_by_state,
    incident_pages_show_the_history_and_the_timeline,
    conditional_requests_get_304_and_cache_headers_allow_a_cdn,
    pages_are_gzipped_for_clients_that_take_it,
    security_headers_are_on_every_response,
    a_retired_checks_incidents_stay_in_the_public_history,
    a_reopened_incident_lasted_only_its_open_periods,
    the_front_page_lists_the_past_week_day_by_day_and_group_descriptions,
    an_slo_shows_its_budget_on_the_check_page_the_api_and_the_front_page,
    the_phases_are_drawn_per_location_where_several_probe_a_check,
);

async fn front_page_shows_banner_incidents_maintenance_and_groups(db: Db) {
    let state = db.state(TTL);
    let page = get(&state, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let b = &page.body;
    // One check down of four public ones, and an operator incident.
    assert!(b.contains("Partial outage"), "{b}");
    assert!(b.contains("Open incidents"));
    assert!(b.contains("Website is down"));
    assert!(b.contains("Maintenance"));
    assert!(b.contains("Database upgrade"));
    assert!(b.contains("Scheduled"));
    for name in ["Public API", "Website", "Database port", "Core"] {
        assert!(b.contains(name), "{name} missing");
    }
    // The 90-day bar of each public check, each day titled.
    assert_eq!(b.matches("<rect ").count(), 4 * 90, "{b}");
    // Monitoring began 45 days ago: the figure says since when, and the
    // days before it are marked as not monitored, not as gaps.
    assert!(!b.contains("uptime over 90 days"));
    assert!(b.contains("uptime since <time datetime="));
    assert!(b.contains("<rect class=\"before\""));
    assert!(b.contains(": not monitored yet</title>"));
    // api's 40-minute outage twelve days ago: that day's bar, and 90 days
    // of which 45 were observed, floored.
    assert!(b.contains(": 97.22% uptime, 1 incident</title>"), "{b}");
    assert!(b.contains("<rect class=\"partial\""));
    assert!(b.contains("99.93% uptime since <time"));
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(
        b.contains(&format!("<title>{today}: ")),
        "today's bar is titled"
    );
    assert!(
        !b.contains(": no data</title>"),
        "days before monitoring are not gaps within it"
    );
    // The order of the page: banner, incidents, maintenance, checks.
    let pos = |s: &str| b.find(s).unwrap_or_else(|| panic!("{s} missing"));
    assert!(pos("class=\"banner") < pos("Open incidents"));
    assert!(pos("Open incidents") < pos("id=\"maint-h\""));
    assert!(pos("id=\"maint-h\"") < pos("Public API"));
    // Down, degraded and operational pills.
    assert!(b.contains("class=\"pill down\""));
    assert!(b.contains("class=\"pill degraded\""));
    assert!(b.contains("class=\"pill up\""));
}

async fn check_page_shows_uptime_graphs_locations_certificate_and_incidents(db: Db) {
    let state = db.state(TTL);
    let page = get(&state, "/checks/api").await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    for text in ["24 hours", "7 days", "30 days", "90 days", "100.00%"] {
        assert!(b.contains(text), "{text} missing");
    }
    assert!(b.contains("Last 24 hours") && b.contains("Last 7 days"));
    assert!(b.contains("<path class=\"p50\" d=\"M"), "a p50 line");
    assert!(b.contains("<path class=\"p95\" d=\"M"), "a p95 line");
    for phase in ["dns", "connect", "tls", "ttfb", "transfer"] {
        assert!(
            b.contains(&format!("<th scope=\"row\">{phase}</th>")),
            "{phase}"
        );
    }
    // Locations by zone (or `--location-label`), never by agent id: node
    // names carry internal addresses.
    for zone in ["zone-a1", "zone-a2", "zone-a3"] {
        assert!(
            b.contains(&format!("<span class=\"loc-name\">{zone}</span>")),
            "{zone}"
        );
    }
    assert!(
        !b.contains(">a1<") && !b.contains("a1 ("),
        "no agent id shown"
    );
    assert!(b.contains("3 of 3 reporting, 0 failing"));
    assert!(
        b.contains("Certificate") && b.contains("(in 29 days)") || b.contains("(in 30 days)"),
        "{b}"
    );
    assert!(b.contains("Public API is down"), "its old incident");
    assert!(b.contains(&format!("/incidents/{}", db.seeded.old_incident)));

    let web = get(&state, "/checks/web").await.body;
    assert!(web.contains("Website is down"));
    assert!(web.contains(&format!("/incidents/{}", db.seeded.web_incident)));
    assert!(
        !web.contains("Certificate"),
        "a check without TLS facts has none"
    );
    let db_page = get(&state, "/checks/db").await.body;
    assert!(db_page.contains("3 of 3 reporting, 1 failing"));
    assert!(db_page.contains("class=\"pill down\">Failing"));
}

async fn private_and_unknown_ids_are_404_everywhere(db: Db) {
    let state = db.state(TTL);
    for path in [
        "/checks/secret",
        "/checks/nope",
        "/checks/%FF%FE",
        "/incidents/abc",
        "/incidents/-1",
        "/incidents/99999999",
        "/no/such/page",
    ] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert!(got.body.contains("Not found"), "{path}: a 404 page");
        assert_eq!(got.header("content-type"), "text/html; charset=utf-8");
    }
    let long = format!("/checks/{}", "a".repeat(5000));
    assert_eq!(get(&state, &long).await.status, StatusCode::NOT_FOUND);
    let secret = format!("/incidents/{}", db.seeded.secret_incident);
    assert_eq!(get(&state, &secret).await.status, StatusCode::NOT_FOUND);
    for path in [
        "/api/v1/checks/secret",
        "/api/v1/checks/nope",
        "/api/v1/nothing",
    ] {
        let got = get(&state, path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(got.json()["error"], "not found");
    }
    // Nowhere public.
    for path in [
        "/",
        "/incidents",
        "/api/v1/status",
        "/api/v1/incidents?state=all",
    ] {
        let body = get(&state, path).await.body;
        assert!(!body.contains("Hidden backend"), "{path}");
        assert!(!body.contains("\"secret\""), "{path}");
        assert!(!body.contains("Hidden backend is down"), "{path}");
    }
    let all = get(&state, "/api/v1/incidents?state=all").await.json();
    let ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&db.seeded.secret_incident));
    assert!(ids.contains(&db.seeded.web_incident));
    // The maintenance window covers db and secret: only db is named.
    let home = get(&state, "/").await.body;
    assert!(home.contains("Affects: db<"), "{home}");
}

async fn api_status_has_the_documented_shape(db: Db) {
    let state = db.state(TTL);
    let got = get(&state, "/api/v1/status").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), "application/json");
    let v = got.json();
    assert_eq!(v["status"], "partial_outage");
    let checks = v["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["api", "web", "db", "xss"]);
    for c in checks {
        let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "group",
                "group_id",
                "id",
                "latency_ms",
                "locations",
                "monitored_since",
                "name",
                "observed_seconds",
                "since",
                "slo",
                "status",
                "uptime"
            ]
        );
        for (w, days) in [("24h", 1), ("7d", 7), ("30d", 30), ("90d", 90)] {
            let u = c["uptime"][w].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&u), "{w}: {u}");
            // Never more than the window, and (45 days of history) less
            // than 90 days.
            let observed = c["observed_seconds"][w].as_i64().unwrap();
            assert!(observed > 0 && observed <= days * 86_400, "{w}: {observed}");
        }
        assert!(c["observed_seconds"]["90d"].as_i64().unwrap() < 50 * 86_400);
        assert!(c["monitored_since"].is_string());
        assert!(c["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!(
            c["latency_ms"]["p95"].as_f64().unwrap() >= c["latency_ms"]["p50"].as_f64().unwrap()
        );
        assert!(c["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{c}");
    }
    let by = |id: &str| checks.iter().find(|c| c["id"] == id).unwrap();
    assert_eq!(by("api")["status"], "up");
    assert_eq!(by("api")["uptime"]["24h"], 1.0);
    assert_eq!(by("api")["group"], "Core");
    assert_eq!(by("web")["status"], "down");
    assert!(by("web")["uptime"]["24h"].as_f64().unwrap() < 1.0);
    assert_eq!(by("db")["status"], "degraded");
    assert_eq!(
        by("db")["locations"],
        serde_json::json!({"assigned": 3, "reporting": 3, "failing": 1})
    );
    let open = v["open_incidents"].as_array().unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    let web = open
        .iter()
        .find(|i| i["id"] == db.seeded.web_incident)
        .unwrap();
    assert_eq!(web["checks"], serde_json::json!(["web"]));
    assert_eq!(web["impact"], "major");
    assert_eq!(web["state"], "investigating");
    assert_eq!(web["auto"], true);
    assert!(web["resolved_at"].is_null());
    let update = &web["updates"][0];
    assert_eq!(update["author"], "statuspage");
    assert_eq!(update["state"], "investigating");
    assert!(
        update["message"]
            .as_str()
            .unwrap()
            .starts_with("Detected: 3 of 3 locations failing")
    );
}

async fn api_check_has_ninety_days_and_latency_series(db: Db) {
    let state = db.state(TTL);
    let v = get(&state, "/api/v1/checks/web").await.json();
    assert_eq!(v["id"], "web");
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    let today = chrono::Utc::now().date_naive().to_string();
    let last = &days[89];
    assert_eq!(last["date"], today.as_str());
    assert_eq!(last["status"], "down", "the worst of today");
    assert!(last["uptime"].as_f64().unwrap() < 1.0);
    assert_eq!(
        last["incidents"],
        serde_json::json!([db.seeded.web_incident])
    );
    assert!(
        days[0]["uptime"].is_null() && days[0]["status"].is_null(),
        "no data then"
    );
    let day = v["latency"]["24h"].as_array().unwrap();
    assert!((96..=97).contains(&day.len()), "{}", day.len());
    assert!(day.iter().any(|p| p["p50"].is_number()));
    let week = v["latency"]["7d"].as_array().unwrap();
    assert!(week.len() >= 168);
    // The 7-day line runs up to now: its points from the hour of the
    // newest result on are that hour, which has data, and at most the hour
    // begun since (empty for the first minute or two of an hour).
    let newest_hour = chrono::DateTime::from_timestamp_millis(db.seeded.newest / HOUR * HOUR)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let tail: Vec<_> = week
        .iter()
        .filter(|p| p["at"].as_str().unwrap() >= newest_hour.as_str())
        .collect();
    assert!((1..=2).contains(&tail.len()), "{tail:?}");
    assert_eq!(tail[0]["at"], newest_hour.as_str());
    assert!(tail[0]["p50"].is_number(), "{tail:?}");
    // The last hour: minute points, only those with data, in order.
    let hour = v["latency"]["1h"].as_array().unwrap();
    assert!(!hour.is_empty() && hour.len() <= 61, "{}", hour.len());
    assert!(
        hour.iter()
            .all(|p| p["p50"].is_number() && p["p95"].is_number())
    );
    let ats: Vec<&str> = hour.iter().map(|p| p["at"].as_str().unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(v["location_states"].as_array().unwrap().len(), 3);
    assert!(v["phases_ms"]["dns"]["p50"].is_number());
    assert!(v["certificate_expires_at"].is_null());
    let api = get(&state, "/api/v1/checks/api").await.json();
    assert!(
        api["certificate_expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

async fn api_incidents_filter_by_state(db: Db) {
    let state = db.state(TTL);
    let ids = |v: serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let open = ids(get(&state, "/api/v1/incidents?state=open").await.json());
    assert_eq!(open.len(), 2);
    assert!(open.contains(&db.seeded.operator_incident) && open.contains(&db.seeded.web_incident));
    assert_eq!(
        ids(get(&state, "/api/v1/incidents?state=resolved").await.json()),
        [db.seeded.old_incident]
    );
    assert_eq!(ids(get(&state, "/api/v1/incidents").await.json()).len(), 3);
    db.exec(&format!(
        "UPDATE incidents SET state = 'resolved', resolved_at = {} WHERE id = {}",
        db.at(crate::fixture::now()),
        db.seeded.operator_incident
    ))
    .await;
    state.cache.invalidate();
    let resolved = get(&state, "/api/v1/incidents?state=resolved").await.json();
    assert_eq!(
        ids(resolved.clone()),
        [db.seeded.operator_incident, db.seeded.old_incident],
        "newest first"
    );
    assert!(resolved[0]["resolved_at"].as_str().unwrap().ends_with('Z'));
    let bad = get(&state, "/api/v1/incidents?state=closed").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json()["error"],
        "`state` must be one of open, resolved or all."
    );
}

async fn incident_pages_show_the_history_and_the_timeline(db: Db) {
    let state = db.state(TTL);
    let list = get(&state, "/incidents").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Incident history"));
    assert!(list.body.contains("Website is down"));
    assert!(list.body.contains("Payments"));
    let one = get(&state, &format!("/incidents/{}", db.seeded.web_incident)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(
        // All three fail at the same slot.
        one.body
            .contains("Detected: 3 of 3 locations failing (connect_refused)"),
        "{}",
        one.body
    );
    assert!(one.body.contains("Major impact"));
    assert!(one.body.contains("href=\"/checks/web\""));
    // Pages past the last are 404; the first page has no pager with one page.
    assert_eq!(
        get(&state, "/incidents?page=2").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!list.body.contains("Page 1 of"));
}

async fn conditional_requests_get_304_and_cache_headers_allow_a_cdn(db: Db) {
    let state = db.state(TTL);
    for path in ["/", "/api/v1/status", "/checks/api", "/incidents"] {
        let first = get(&state, path).await;
        let etag = first.header("etag").to_string();
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");
        assert_eq!(
            first.header("cache-control"),
            "public, max-age=10, stale-while-revalidate=10, stale-if-error=86400"
        );
        let again = get_with(&state, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        let weak = format!("\"other\", W/{etag}");
        let weak = get_with(&state, path, &[("if-none-match", &weak)]).await;
        assert_eq!(weak.status, StatusCode::NOT_MODIFIED, "{path}");
        let other = get_with(&state, path, &[("if-none-match", "\"other\"")]).await;
        assert_eq!(other.status, StatusCode::OK);
        assert_eq!(other.header("x-cache"), "hit");
    }
    let css = get(&state, "/assets/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    let etag = css.header("etag").to_string();
    let again = get_with(&state, "/assets/style.css", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

async fn security_headers_are_on_every_response(db: Db) {
    let state = db.state(TTL);
    for path in [
        "/",
        "/api/v1/status",
        "/checks/nope",
        "/assets/style.css",
        "/incidents?page=x",
        "/nowhere",
    ] {
        let got = get(&state, path).await;
        let csp = got.header("content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("style-src 'self'"));
        assert!(
            !csp.contains("unsafe-inline")
                && csp.contains(&format!(
                    "script-src {};",
                    dashboard::pages::local_time_hash()
                )),
            "no script but the local-time one, by its hash: {csp}"
        );
        assert_eq!(got.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(got.header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(got.header("x-frame-options"), "DENY", "{path}");
    }
}

async fn pages_are_gzipped_for_clients_that_take_it(db: Db) {
    use std::io::Read;
    let state = db.state(TTL);
    let plain = get(&state, "/").await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.header("vary"), "accept-encoding");
    for accept in ["gzip", "br, gzip;q=0.8, deflate", "*"] {
        let zipped = crate::send(&state, "GET", "/", &[("accept-encoding", accept)], "").await;
        assert_eq!(zipped.header("content-encoding"), "gzip", "{accept}");
        assert_eq!(zipped.header("vary"), "accept-encoding");
        assert_ne!(
            zipped.header("etag"),
            plain.header("etag"),
            "another representation"
        );
        let etag = zipped.header("etag").to_string();
        let again = get_with(
            &state,
            "/",
            &[("accept-encoding", accept), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    // The raw bytes, decompressed, are the plain page.
    let res = crate::send_raw(&state, "/", &[("accept-encoding", "gzip")]).await;
    let mut back = String::new();
    flate2::read::GzDecoder::new(&res[..])
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, plain.body);
    assert!(
        res.len() * 3 < plain.body.len(),
        "{} of {}",
        res.len(),
        plain.body.len()
    );
    for refused in ["gzip;q=0", "identity", "br"] {
        let got = get_with(&state, "/", &[("accept-encoding", refused)]).await;
        assert_eq!(got.header("content-encoding"), "", "{refused}");
    }
}

/// Removing a check from the YAML (ingest retires it) keeps its past
/// incidents in the public history, the API and the feed.
async fn a_retired_checks_incidents_stay_in_the_public_history(db: Db) {
    db.exec(&format!(
        "UPDATE checks SET retired_at = {} WHERE slug = 'api'",
        db.at(crate::fixture::now())
    ))
    .await;
    let state = db.state(TTL);
    let all = get(&state, "/api/v1/incidents?state=all").await;
    let v: serde_json::Value = serde_json::from_str(&all.body).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == db.seeded.old_incident),
        "{}",
        all.body
    );
    let history = get(&state, "/incidents").await;
    assert!(
        history
            .body
            .contains(&format!("/incidents/{}", db.seeded.old_incident))
    );
    let one = get(&state, &format!("/incidents/{}", db.seeded.old_incident)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.contains("api (retired)"), "{}", one.body);
    assert!(
        !one.body.contains("href=\"/checks/api\""),
        "no link to a page that is gone"
    );
    let feed = get(&state, "/feed.atom").await;
    assert!(
        feed.body
            .contains(&format!("/incidents/{}", db.seeded.old_incident)),
        "{}",
        feed.body
    );
    // The check itself is gone from the page.
    assert_eq!(
        get(&state, "/checks/api").await.status,
        StatusCode::NOT_FOUND
    );
}

/// The fixture's old incident was down for 40 minutes. Made into a reopened
/// one (open 10 minutes before, reopened 5 minutes before it was resolved),
/// its page says it lasted 15 minutes, not the span since it first started.
async fn a_reopened_incident_lasted_only_its_open_periods(db: Db) {
    let path = format!("/incidents/{}", db.seeded.old_incident);
    let before = get(&db.state(TTL), &path).await.body;
    assert!(before.contains("lasted 40m"), "{before}");
    let resolved_ms = match db.store {
        ingest::store::Store::Pg(_) => "CAST(extract(epoch FROM resolved_at) * 1000 AS BIGINT)",
        ingest::store::Store::Sqlite(_) => "resolved_at",
    };
    let resolved = crate::fixture::int(
        &db.store,
        &format!(
            "SELECT {resolved_ms} FROM incidents WHERE id = {}",
            db.seeded.old_incident
        ),
    )
    .await;
    db.exec(&format!(
        "UPDATE incidents SET earlier_open_ms = 600000, reopened_at = {} WHERE id = {}",
        db.at(resolved - 5 * crate::fixture::MINUTE),
        db.seeded.old_incident
    ))
    .await;
    let after = get(&db.state(TTL), &path).await.body;
    assert!(after.contains("lasted 15m"), "{after}");
}

async fn the_front_page_lists_the_past_week_day_by_day_and_group_descriptions(db: Db) {
    let state = db.state(TTL);
    let b = get(&state, "/").await.body;
    let history = &b[b
        .find("<section class=\"history\"")
        .expect("a history section")..];
    let history = &history[..history.find("</section>").unwrap_or(history.len())];
    assert_eq!(
        history.matches("<div class=\"day\">").count(),
        7,
        "{history}"
    );
    // Today first, labelled as UTC days.
    let today = chrono::Utc::now().format("%-d %b %Y (UTC)").to_string();
    let first = history
        .split("<h3>")
        .nth(1)
        .and_then(|h| h.split("</h3>").next());
    assert_eq!(first, Some(today.as_str()));
    // This week's public incidents are linked on their day; the one of ten
    // days ago and the private one are not.
    for id in [db.seeded.web_incident, db.seeded.operator_incident] {
        assert!(
            history.contains(&format!("href=\"/incidents/{id}\"")),
            "{id}: {history}"
        );
    }
    assert!(!history.contains(&format!("href=\"/incidents/{}\"", db.seeded.old_incident)));
    assert!(!history.contains("Hidden backend"));
    // Quiet days say so.
    let quiet = history.matches("No incidents reported.").count();
    let busy = history.matches("<ul class=\"day-incidents\">").count();
    assert_eq!(quiet + busy, 7);
    assert!(quiet >= 1, "{history}");
    assert!(history.contains("<a href=\"/incidents\">Incident history</a>"));
    // The group's description, escaped, under its name.
    assert!(
        b.contains(
            "<h2>Core</h2><p class=\"group-description\">What customers touch &lt;first&gt;</p>"
        ),
        "{b}"
    );
    // Maintenance stays at the top, above the checks and the history.
    assert!(b.find("Database upgrade").unwrap() < b.find("<h2>Core</h2>").unwrap());
    assert!(b.find("<h2>Core</h2>").unwrap() < b.find("Past incidents").unwrap());

    // Without a single incident, every day is quiet.
    let none = dashboard::model::history(&[], chrono::Utc::now().timestamp_millis());
    assert_eq!(none.len(), 7);
    assert!(none.iter().all(|(_, i)| i.is_empty()));
    assert!(
        none.windows(2).all(|w| w[0].0 - w[1].0 == 86_400_000),
        "consecutive days, today first"
    );
}

async fn an_slo_shows_its_budget_on_the_check_page_the_api_and_the_front_page(db: Db) {
    let state = db.state(TTL);
    let api = |id: &'static str| {
        let state = state.clone();
        async move {
            serde_json::from_str::<serde_json::Value>(
                &get(&state, &format!("/api/v1/checks/{id}")).await.body,
            )
            .unwrap()
        }
    };
    // `web` (99.99% over 30 days from its group) was down 8 minutes: its budget is spent.
    let web = api("web").await;
    let slo = &web["slo"];
    assert_eq!(slo["target"], 0.9999, "{slo}");
    assert_eq!(slo["window"], "30d");
    assert_eq!(
        slo["sli"], web["uptime"]["30d"],
        "the SLI is the same exact uptime"
    );
    let budget = &slo["error_budget"];
    let (total, spent, remaining) = (
        budget["total_seconds"].as_f64().unwrap(),
        budget["spent_seconds"].as_f64().unwrap(),
        budget["remaining_seconds"].as_f64().unwrap(),
    );
    let observed = web["observed_seconds"]["30d"].as_f64().unwrap();
    assert!(
        (total - 0.0001 * observed).abs() < 1.0,
        "{budget} over {observed} s"
    );
    assert!(spent > total, "{budget}");
    assert!((remaining - (total - spent)).abs() < 0.01, "{budget}");
    assert!(
        budget["remaining_ratio"].as_f64().unwrap() < 0.0,
        "{budget}"
    );
    for w in ["1h", "6h"] {
        assert!(
            slo["burn_rate"][w].as_f64().is_some_and(|b| b > 1.0),
            "{slo}"
        );
    }
    // `api` sets its own, looser objective and is within it; `db` has none.
    let api_slo = api("api").await["slo"].clone();
    assert_eq!(
        (api_slo["target"].as_f64(), api_slo["window"].as_str()),
        (Some(0.9), Some("7d"))
    );
    assert!(
        api_slo["error_budget"]["remaining_ratio"].as_f64().unwrap() > 0.0,
        "{api_slo}"
    );
    assert!(api("db").await["slo"].is_null());

    // The front page marks only the check over its budget.
    let home = get(&state, "/").await.body;
    assert_eq!(home.matches("class=\"budget\"").count(), 1, "{home}");
    let mark = &home[home.find("class=\"budget\"").unwrap()..];
    assert!(
        mark.starts_with("class=\"budget\" href=\"/checks/web#slo-h\""),
        "{mark}"
    );
    assert!(
        mark.contains("title=\"Error budget spent (objective 99.99% over 30 days)\""),
        "{mark}"
    );

    // The check page's panel.
    let page = get(&state, "/checks/web").await.body;
    assert!(page.contains("<h2 id=\"slo-h\">Objective</h2>"), "{page}");
    assert!(
        page.contains("99.99% uptime over a rolling 30 days."),
        "{page}"
    );
    assert!(page.contains("<dd class=\"missed\">None</dd>"), "{page}");
    assert!(page.contains("<meter class=\"budget\""), "{page}");
    let api_page = get(&state, "/checks/api").await.body;
    assert!(
        api_page.contains("90% uptime over a rolling 7 days."),
        "{api_page}"
    );
    assert!(!get(&state, "/checks/db").await.body.contains("slo-h"));
}

async fn the_phases_are_drawn_per_location_where_several_probe_a_check(db: Db) {
    let state = db.state(TTL);
    let page = get(&state, "/checks/api").await.body;
    // One stacked graph per location, named by zone (never the agent's id),
    // each with a drawn area.
    for zone in ["zone-a1", "zone-a2", "zone-a3"] {
        let caption =
            format!("<figcaption>{zone}, last 24 hours (mean of each phase, stacked)</figcaption>");
        let at = page
            .find(&caption)
            .unwrap_or_else(|| panic!("{caption}: {page}"));
        let figure = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(
            figure.contains("<path class=\"phase-ttfb\" d=\"M"),
            "{figure}"
        );
    }
    assert!(
        !page.contains(">a1, last 24 hours"),
        "an agent id is not a location name"
    );
    // Their accessible form: a table of each location's means over the day.
    let table = &page[page
        .find("Mean phases by location over the last 24 hours")
        .expect("the table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<th scope=\"row\">").count(), 3, "{table}");
    // The fixture's api results all take 2, 5, 12, 20 and 1 ms.
    assert!(
        table.contains("<th scope=\"row\">zone-a1</th><td>2 ms</td><td>5 ms</td><td>12 ms</td><td>20 ms</td><td>1 ms</td>"),
        "{table}"
    );
    // A check whose results carry no TLS phase shows 0 for it; a check one
    // location probes has no per-location graphs.
    let web = get(&state, "/checks/web").await.body;
    assert!(web.contains("Mean phases by location"), "{web}");
    assert!(
        web.contains("<td>2 ms</td><td>5 ms</td><td>0 ms</td><td>0 ms</td><td>0 ms</td>"),
        "{web}"
    );
    let rows = vec![dashboard::read::LocationPhases {
        agent: 1,
        bucket: 0,
        n: 3,
        dns: Some(1000.0),
        connect: None,
        tls: None,
        ttfb: None,
        transfer: None,
    }];
    assert!(dashboard::model::location_phase_series(&rows, &[], 0, 900_000, 900_000).is_empty());
}

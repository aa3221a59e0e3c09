//! The admin API on both databases: incidents and maintenance as an
//! operator writes them, and every kind of bad request refused with nothing
//! written.

use crate::fixture::{ALICE, BOB, DAY, Db, now};
use crate::{Got, get, send};
use http::StatusCode;
use std::time::Duration;

crate::both!(
    an_operator_opens_updates_and_resolves_an_incident,
    an_edited_automatic_incident_is_never_auto_resolved,
    maintenance_windows_from_the_api_and_from_the_config,
    bad_admin_requests_are_refused_clearly_and_write_nothing,
    an_operator_lists_and_resends_deliveries_and_queues_a_test_event,
);

const TTL: Duration = Duration::from_secs(3600);

async fn as_alice(state: &dashboard::AppState, method: &str, path: &str, body: &str) -> Got {
    let auth = format!("Bearer {ALICE}");
    send(
        state,
        method,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

fn time(ms: i64) -> String {
    dashboard::api::instant(ms)
}

async fn an_operator_opens_updates_and_resolves_an_incident(db: Db) {
    let state = db.admin_state(TTL);
    // Cached before: the write must show at once anyway.
    assert_eq!(
        get(&state, "/api/v1/status").await.json()["open_incidents"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let made = as_alice(
        &state,
        "POST",
        "/admin/v1/incidents",
        r#"{"title": "Slow checkout", "impact": "major", "message": "We are looking into it.", "checks": ["api", "api", "db"]}"#,
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let v = made.json();
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["title"], "Slow checkout");
    assert_eq!(v["impact"], "major");
    assert_eq!(v["state"], "investigating");
    assert_eq!(v["auto"], false);
    assert_eq!(v["checks"], serde_json::json!(["api", "db"]));
    assert_eq!(v["updates"][0]["author"], "alice");
    assert_eq!(v["updates"][0]["message"], "We are looking into it.");
    let open = get(&state, "/api/v1/status").await.json();
    assert!(
        open["open_incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );

    let bob = format!("Bearer {BOB}");
    let up = send(
        &state,
        "POST",
        &format!("/admin/v1/incidents/{id}/updates"),
        &[("authorization", bob.as_str())],
        r#"{"state": "identified", "message": "A slow database query."}"#.to_string(),
    )
    .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    let v = up.json();
    assert_eq!(v["state"], "identified");
    assert_eq!(
        v["updates"][1]["author"], "bob",
        "the token's name is the author"
    );

    let done = as_alice(
        &state,
        "POST",
        &format!("/admin/v1/incidents/{id}/resolve"),
        "",
    )
    .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    let v = done.json();
    assert_eq!(v["state"], "resolved");
    assert!(v["resolved_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        v["updates"][2]["message"],
        "This incident has been resolved."
    );
    let page = get(&state, &format!("/incidents/{id}")).await.body;
    assert!(page.contains("A slow database query.") && page.contains("bob"));
    // A resolved incident does not change state again.
    let again = as_alice(
        &state,
        "POST",
        &format!("/admin/v1/incidents/{id}/updates"),
        r#"{"state": "investigating", "message": "Back again?"}"#,
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        again.json()["error"],
        format!("incident {id} is resolved and cannot change state; open a new incident instead")
    );
    // But its text can be corrected.
    let fixed = as_alice(
        &state,
        "PATCH",
        &format!("/admin/v1/incidents/{id}"),
        r#"{"title": "Slow checkout (EU)"}"#,
    )
    .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    assert_eq!(fixed.json()["title"], "Slow checkout (EU)");
}

async fn an_edited_automatic_incident_is_never_auto_resolved(db: Db) {
    let state = db.admin_state(TTL);
    let id = db.seeded.web_incident;
    let edited = as_alice(
        &state,
        "PATCH",
        &format!("/admin/v1/incidents/{id}"),
        r#"{"title": "Website outage in all regions", "impact": "major"}"#,
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.json()["auto"], true);
    crate::fixture::recover_web(&db.store, db.seeded.newest).await;
    state.cache.invalidate();
    let v = get(&state, "/api/v1/incidents?state=open").await.json();
    let web = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .expect("still open");
    assert_eq!(
        web["state"], "monitoring",
        "ingest hands it to the operator"
    );
    let last = web["updates"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with("Check recovered after"),
        "{last}"
    );
}

async fn maintenance_windows_from_the_api_and_from_the_config(db: Db) {
    let state = db.admin_state(TTL);
    let (start, end) = (now() + 3_600_000, now() + 3 * 3_600_000);
    let body = format!(
        r#"{{"name": "Network work", "description": "Switch upgrade.", "checks": ["web"], "starts_at": "{}", "ends_at": "{}"}}"#,
        time(start),
        time(end)
    );
    let made = as_alice(&state, "POST", "/admin/v1/maintenance", &body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let w = made.json();
    assert_eq!(w["source"], "api");
    assert_eq!(w["created_by"], "alice");
    assert_eq!(w["checks"], serde_json::json!(["web"]));
    let id = w["id"].as_i64().unwrap();
    let again = as_alice(&state, "POST", "/admin/v1/maintenance", &body).await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let list = as_alice(&state, "GET", "/admin/v1/maintenance", "")
        .await
        .json();
    let sources: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["api", "config"], "soonest first: {list}");
    let config_id = list[1]["id"].as_i64().unwrap();
    assert!(get(&state, "/").await.body.contains("Network work"));

    let refused = as_alice(
        &state,
        "DELETE",
        &format!("/admin/v1/maintenance/{config_id}"),
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        refused.json()["error"],
        format!("maintenance window {config_id} comes from the config; change it in the YAML")
    );
    let gone = as_alice(&state, "DELETE", &format!("/admin/v1/maintenance/{id}"), "").await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert!(!get(&state, "/").await.body.contains("Network work"));
    let missing = as_alice(&state, "DELETE", &format!("/admin/v1/maintenance/{id}"), "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A window starting now (a little skew is taken as now), ended early.
    let body = format!(
        r#"{{"name": "Hotfix", "checks": ["db"], "starts_at": "{}", "ends_at": "{}"}}"#,
        time(now() - 5_000),
        time(now() + DAY)
    );
    let running = as_alice(&state, "POST", "/admin/v1/maintenance", &body).await;
    assert_eq!(running.status, StatusCode::CREATED, "{}", running.body);
    let id = running.json()["id"].as_i64().unwrap();
    assert!(get(&state, "/").await.body.contains("In progress"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ended = as_alice(&state, "DELETE", &format!("/admin/v1/maintenance/{id}"), "").await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let ends =
        chrono::DateTime::parse_from_rfc3339(ended.json()["ends_at"].as_str().unwrap()).unwrap();
    assert!(ends.timestamp_millis() <= now() + 1000, "ended now");
}

async fn bad_admin_requests_are_refused_clearly_and_write_nothing(db: Db) {
    let state = db.admin_state(TTL);
    let count = async || {
        (
            crate::fixture::int(&db.store, "SELECT CAST(COUNT(*) AS BIGINT) FROM incidents").await,
            crate::fixture::int(
                &db.store,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM incident_updates",
            )
            .await,
            crate::fixture::int(
                &db.store,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM maintenance_windows",
            )
            .await,
        )
    };
    let before = count().await;
    let create = r#"{"title": "t", "message": "m"}"#;

    // Authentication: nothing, the wrong scheme, a wrong token, tokens of
    // the wrong length.
    let long = format!("Bearer {}", "x".repeat(10_000));
    let near = format!("Bearer {}", &ALICE[..ALICE.len() - 1]);
    for auth in [
        None,
        Some("Basic YWxpY2U6cHc="),
        Some("Bearer wrong-token-0123456789"),
        Some("Bearer x"),
        Some(long.as_str()),
        Some(near.as_str()),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let got = send(
            &state,
            "POST",
            "/admin/v1/incidents",
            &headers,
            create.to_string(),
        )
        .await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            got.json()["error"],
            "a valid `Authorization: Bearer <token>` header is required"
        );
        assert!(got.header("www-authenticate").starts_with("Bearer"));
    }
    // Without tokens configured there is no admin API.
    let public_only = db.state(TTL);
    let auth = format!("Bearer {ALICE}");
    let got = send(
        &public_only,
        "GET",
        "/admin/v1/maintenance",
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);

    let web = format!("/admin/v1/incidents/{}", db.seeded.web_incident);
    let old_update = format!("/admin/v1/incidents/{}/updates", db.seeded.old_incident);
    let old_resolve = format!("/admin/v1/incidents/{}/resolve", db.seeded.old_incident);
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        (
            "POST",
            "/admin/v1/incidents",
            "x".repeat(70 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 65536 bytes",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            "{\"title\": ".into(),
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            "title=t&message=m".into(),
            StatusCode::BAD_REQUEST,
            "the body is not valid JSON: expected ident at line 1 column 2",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t", "message": "m", "severity": "high"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `severity`",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `message`",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": 5, "message": "m"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type: integer `5`, expected a string",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "  ", "message": "m"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`title`: must be 1 to 200 characters",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            format!(r#"{{"title": "{}", "message": "m"}}"#, "t".repeat(201)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`title`: must be 1 to 200 characters",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t", "message": "m", "impact": "critical"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`impact`: must be minor or major",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t", "message": "m", "state": "fixed"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`state`: must be investigating, identified, monitoring or resolved",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t", "message": "m", "state": "resolved"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`state`: a new incident cannot start resolved",
        ),
        (
            "POST",
            "/admin/v1/incidents",
            r#"{"title": "t", "message": "m", "checks": ["nope"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`checks`: unknown check id \"nope\"",
        ),
        (
            "PATCH",
            "/admin/v1/incidents/999999",
            r#"{"title": "t"}"#.into(),
            StatusCode::NOT_FOUND,
            "no incident 999999",
        ),
        (
            "PATCH",
            "/admin/v1/incidents/abc",
            r#"{"title": "t"}"#.into(),
            StatusCode::NOT_FOUND,
            "no incident \"abc\"",
        ),
        (
            "PATCH",
            &web,
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing to change",
        ),
        (
            "POST",
            &old_update,
            r#"{"state": "monitoring", "message": "m"}"#.into(),
            StatusCode::CONFLICT,
            "is resolved and cannot change state",
        ),
        (
            "POST",
            &old_resolve,
            "".into(),
            StatusCode::CONFLICT,
            "is resolved and cannot change state",
        ),
        (
            "POST",
            "/admin/v1/maintenance",
            format!(
                r#"{{"name": "n", "checks": ["db"], "starts_at": "{}", "ends_at": "{}"}}"#,
                time(now() - 3_600_000),
                time(now() + 3_600_000)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`starts_at`: must not be in the past",
        ),
        (
            "POST",
            "/admin/v1/maintenance",
            format!(
                r#"{{"name": "n", "checks": ["db"], "starts_at": "{}", "ends_at": "{}"}}"#,
                time(now() + 7_200_000),
                time(now() + 3_600_000)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`ends_at`: must be after `starts_at`",
        ),
        (
            "POST",
            "/admin/v1/maintenance",
            r#"{"name": "n", "checks": ["db"], "starts_at": "tomorrow", "ends_at": "later"}"#
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`starts_at`: expected an RFC 3339 time",
        ),
        (
            "POST",
            "/admin/v1/maintenance",
            format!(
                r#"{{"name": "n", "checks": [], "starts_at": "{}", "ends_at": "{}"}}"#,
                time(now() + 3_600_000),
                time(now() + 7_200_000)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`checks`: name at least one check",
        ),
        (
            "POST",
            "/admin/v1/maintenance",
            format!(
                r#"{{"name": "n", "checks": ["db"], "starts_at": "{}", "ends_at": "{}"}}"#,
                time(now() + 3_600_000),
                time(now() + 40 * DAY)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`ends_at`: a window lasts at most 31 days",
        ),
        (
            "DELETE",
            "/admin/v1/maintenance/0",
            "".into(),
            StatusCode::NOT_FOUND,
            "no maintenance window \"0\"",
        ),
    ];
    for (method, path, body, status, error) in cases {
        let got = as_alice(&state, method, path, &body).await;
        assert_eq!(
            got.status, status,
            "{method} {path} {body:.80}: {}",
            got.body
        );
        assert_eq!(got.header("content-type"), "application/json");
        let message = got.json()["error"].as_str().unwrap().to_string();
        assert!(
            message.contains(error),
            "{method} {path}: {message:?} lacks {error:?}"
        );
    }
    assert_eq!(count().await, before, "nothing was written");
}

/// An operator's incident writes its notification event in the same
/// transaction; deliveries are listed with their errors, a failed one is
/// sent again, and a test event is queued for one channel.
async fn an_operator_lists_and_resends_deliveries_and_queues_a_test_event(db: Db) {
    use crate::fixture::int;
    let state = db.admin_state(TTL);
    let made = as_alice(
        &state,
        "POST",
        "/admin/v1/incidents",
        r#"{"title": "Slow <checkout>", "message": "Looking.", "checks": ["api"]}"#,
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.json()["id"].as_i64().unwrap();
    let events = int(
        &db.store,
        &format!("SELECT count(*) FROM events WHERE type = 'incident.opened' AND subject = 'incident-{id}'"),
    )
    .await;
    assert_eq!(events, 1, "the event is written with the incident");
    let resolved = as_alice(
        &state,
        "POST",
        &format!("/admin/v1/incidents/{id}/resolve"),
        "",
    )
    .await;
    assert_eq!(resolved.status, StatusCode::CREATED, "{}", resolved.body);
    assert_eq!(
        int(&db.store, &format!("SELECT count(*) FROM events WHERE type = 'incident.resolved' AND subject = 'incident-{id}'")).await,
        1
    );
    // A delivery of the opened event that finally failed, as ingest marks it.
    db.exec(&format!(
        "INSERT INTO deliveries (event_id, channel, subject, seq, state, attempts, due_at, last_error, done_at)
         SELECT id, 'ops', subject, seq, 'failed', 8, {at}, 'the receiver answered 500 (attempt 8, the last)', {at}
         FROM events WHERE type = 'incident.opened' AND subject = 'incident-{id}'",
        at = db.at(now())
    ))
    .await;
    let listed = as_alice(&state, "GET", "/admin/v1/deliveries", "").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let rows = listed.json();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["channel"], "ops");
    assert_eq!(row["state"], "failed");
    assert_eq!(row["type"], "incident.opened");
    assert_eq!(row["attempts"], 8);
    assert!(row["last_error"].as_str().unwrap().contains("500"));
    let delivery = row["id"].as_i64().unwrap();
    let again = as_alice(
        &state,
        "POST",
        &format!("/admin/v1/deliveries/{delivery}/resend"),
        "",
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.json()["state"], "pending");
    assert_eq!(again.json()["attempts"], 0);
    let twice = as_alice(
        &state,
        "POST",
        &format!("/admin/v1/deliveries/{delivery}/resend"),
        "",
    )
    .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    let unknown = as_alice(&state, "POST", "/admin/v1/deliveries/999999/resend", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let queued = as_alice(&state, "POST", "/admin/v1/channels/ops/test", "").await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    assert_eq!(
        int(
            &db.store,
            "SELECT count(*) FROM events WHERE type = 'test' AND channel = 'ops'"
        )
        .await,
        1
    );
    let bad = as_alice(&state, "POST", "/admin/v1/channels/no%20such/test", "").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let limited = as_alice(&state, "GET", "/admin/v1/deliveries?limit=0", "").await;
    assert_eq!(
        limited.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        limited.body
    );
    let one = as_alice(&state, "GET", "/admin/v1/deliveries?limit=1", "").await;
    assert_eq!(one.json().as_array().unwrap().len(), 1);
    let anonymous = send(&state, "GET", "/admin/v1/deliveries", &[], String::new()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

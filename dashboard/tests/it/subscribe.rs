//! Public subscriptions on both databases: the form and its one answer,
//! the signed links (good, expired, tampered, for another purpose), the
//! one-click unsubscribe, the limits, and every bad request refused with
//! nothing written.

use crate::fixture::{Db, int, now};
use crate::{Got, get, send};
use dashboard::AppState;
use dashboard::admin::write::Writer;
use dashboard::subscribe::Subscriptions;
use http::StatusCode;
use ingest::notify::token::{self, Purpose};
use ingest::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

crate::both!(
    the_form_answers_alike_for_every_address_and_queues_one_confirmation,
    the_links_confirm_change_and_unsubscribe_and_refuse_what_is_not_theirs,
    bad_subscribe_requests_are_refused_clearly_and_write_nothing,
    the_limits_hold_per_ip_loudly_per_address_silently_and_in_total,
    an_operator_suppresses_and_deletes_subscribers,
    unconfirmed_subscriptions_are_forgotten_after_48_hours,
);

const KEY: &[u8] = b"subscription-signing-key-of-32-bytes!";
const ORIGIN: &str = "https://status.example.test";

/// The app with subscriptions on (`per_minute` POSTs per IP), its clock
/// pinned to what `clock` holds.
pub fn state(db: &Db, per_minute: u32, max: u64, clock: Arc<AtomicI64>) -> AppState {
    let writer = match &db.store {
        Store::Pg(s) => Writer::Pg(s.pool().clone()),
        Store::Sqlite(s) => Writer::Sqlite(s.pool().clone()),
    };
    let mut state = db.admin_state(Duration::from_secs(60));
    state.clock = Arc::new(move || clock.load(Ordering::SeqCst));
    let mut site = (*state.site).clone();
    site.subscribe = true;
    state.site = Arc::new(site);
    state.subscriptions = Some(Arc::new(Subscriptions::new(
        config::notify::Subscriptions {
            keys: vec![KEY.to_vec()],
            max_subscribers: max,
            requests_per_minute: per_minute,
            confirmations_per_day: 5,
            mail_rate: 20,
        },
        writer,
        Some(http::HeaderName::from_static("x-client-ip")),
        None,
    )));
    state
}

pub fn pinned() -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(now()))
}

async fn post(state: &AppState, path: &str, body: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    send(state, "POST", path, &all, body.to_string()).await
}

async fn subscribe(state: &AppState, body: &str, ip: &str) -> Got {
    post(
        state,
        "/subscribe",
        body,
        &[("origin", ORIGIN), ("x-client-ip", ip)],
    )
    .await
}

async fn count(db: &Db, sql: &str) -> i64 {
    int(&db.store, sql).await
}

/// (id, nonce, state) of the address's subscription.
async fn row(db: &Db, email: &str) -> Option<(i64, String, String)> {
    let sql = "SELECT id, nonce, state FROM subscriptions WHERE email = $1";
    match &db.store {
        Store::Pg(s) => {
            sqlx::query_as(sql)
                .bind(email)
                .fetch_optional(s.pool())
                .await
        }
        Store::Sqlite(s) => {
            sqlx::query_as(&sql.replace("$1", "?1"))
                .bind(email)
                .fetch_optional(s.pool())
                .await
        }
    }
    .unwrap()
}

fn link(purpose: Purpose, id: i64, nonce: &str, now_ms: i64) -> String {
    format!(
        "/subscribe/{}/{}",
        purpose.as_str(),
        token::sign(KEY, purpose, id, nonce, now_ms / 1000)
    )
}

async fn the_form_answers_alike_for_every_address_and_queues_one_confirmation(db: Db) {
    let s = state(&db, 100, 1000, pinned());
    let form = get(&s, "/subscribe").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body
            .contains(r#"<form class="subscribe" method="post" action="/subscribe">"#)
    );
    assert!(form.body.contains(r#"name="check" value="api""#));
    assert!(form.body.contains(r#"name="group" value="Core""#));
    assert!(
        !form.body.contains("value=\"secret\""),
        "a private check is never offered"
    );
    assert!(
        get(&s, "/").await.body.contains(r#"href="/subscribe""#),
        "every page links to it"
    );

    // New, pending, confirmed and suppressed: the same status and bytes.
    let new = subscribe(&s, "email=new%40example.com&check=api", "192.0.2.1").await;
    let pending = subscribe(&s, "email=new%40example.com", "192.0.2.1").await;
    let (id, nonce, _) = row(&db, "new@example.com").await.unwrap();
    assert_eq!(
        post(
            &s,
            &link(Purpose::Confirm, id, &nonce, now()),
            "",
            &[("origin", ORIGIN)]
        )
        .await
        .status,
        StatusCode::OK
    );
    let confirmed = subscribe(&s, "email=NEW%40example.com&group=Core", "192.0.2.1").await;
    db.exec(&format!(
        "INSERT INTO subscriptions (email, state, nonce, created_at) VALUES ('gone@example.com', 'suppressed', 'x', {})",
        db.at(0)
    ))
    .await;
    let suppressed = subscribe(&s, "email=gone%40example.com", "192.0.2.1").await;
    for got in [&new, &pending, &confirmed, &suppressed] {
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        assert_eq!(got.header("cache-control"), "no-store");
    }
    assert_eq!(new.body, pending.body);
    assert_eq!(new.body, confirmed.body);
    assert_eq!(new.body.replace("new@", "gone@"), suppressed.body);
    assert!(new.body.contains("Check your inbox") && new.body.contains("new@example.com"));
    // Two confirmations and one "already subscribed" mail; none for the
    // suppressed address. A confirmed address keeps its choices.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE type = 'subscription.confirm'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE type = 'subscription.manage'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM subscriptions WHERE email = 'new@example.com' AND check_ids = '[\"api\"]' AND group_names = '[]'").await,
        0,
        "the second (pending) request set everything"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM subscriptions WHERE email = 'new@example.com' AND check_ids = '[]' AND group_names = '[]' AND state = 'confirmed'").await,
        1
    );
}

async fn the_links_confirm_change_and_unsubscribe_and_refuse_what_is_not_theirs(db: Db) {
    let clock = pinned();
    let s = state(&db, 100, 1000, clock.clone());
    subscribe(&s, "email=a%40example.com&check=web", "192.0.2.2").await;
    let (id, nonce, _) = row(&db, "a@example.com").await.unwrap();
    let t = now();
    let confirm = link(Purpose::Confirm, id, &nonce, t);

    // A GET changes nothing: it shows a button that POSTs.
    let page = get(&s, &confirm).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!(r#"<form method="post" action="{confirm}">"#)),
        "{}",
        page.body
    );
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(row(&db, "a@example.com").await.unwrap().2, "pending");
    // Another site cannot confirm for someone.
    let forged = post(&s, &confirm, "", &[("origin", "https://evil.example")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(row(&db, "a@example.com").await.unwrap().2, "pending");

    // Tampered, for another purpose, or expired: refused, clearly.
    // One character of the signature changed.
    let last = confirm.chars().last().unwrap_or('A');
    let tampered = format!(
        "{}{}",
        &confirm[..confirm.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let other_id = confirm.replacen(&format!("/{id}."), &format!("/{}.", id + 1), 1);
    let cases = [
        (tampered, StatusCode::BAD_REQUEST, "This link is not valid"),
        (other_id, StatusCode::GONE, "no longer exists"),
        (
            format!("{confirm}x"),
            StatusCode::BAD_REQUEST,
            "This link is not valid",
        ),
        (
            "/subscribe/confirm/%0D%0Anope".into(),
            StatusCode::BAD_REQUEST,
            "This link is not valid",
        ),
        (
            link(Purpose::Confirm, id, "another-nonce", t),
            StatusCode::BAD_REQUEST,
            "This link is not valid",
        ),
        (
            confirm.replace("/confirm/", "/unsubscribe/"),
            StatusCode::BAD_REQUEST,
            "This link is for another action",
        ),
        (
            confirm.replace("/confirm/", "/preferences/"),
            StatusCode::BAD_REQUEST,
            "This link is for another action",
        ),
    ];
    for (path, status, says) in &cases {
        let got = get(&s, path).await;
        assert_eq!(got.status, *status, "{path}: {}", got.body);
        assert!(got.body.contains(says), "{path}: {}", got.body);
    }
    clock.store(t + 49 * 3_600_000, Ordering::SeqCst);
    let expired = post(&s, &confirm, "", &[("origin", ORIGIN)]).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(
        expired.body.contains("This link has expired"),
        "{}",
        expired.body
    );
    assert_eq!(row(&db, "a@example.com").await.unwrap().2, "pending");
    clock.store(t, Ordering::SeqCst);

    // The real link confirms (a second POST is harmless).
    for _ in 0..2 {
        let done = post(
            &s,
            &confirm,
            "",
            &[("referer", "https://status.example.test/subscribe/confirm/x")],
        )
        .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert!(done.body.contains("You are subscribed"));
    }
    assert_eq!(row(&db, "a@example.com").await.unwrap().2, "confirmed");

    // Preferences: shown ticked, and changed by a POST from the page.
    let prefs = link(Purpose::Preferences, id, &nonce, t);
    let page = get(&s, &prefs).await;
    assert!(
        page.body.contains(r#"value="web" checked"#),
        "{}",
        page.body
    );
    let saved = post(&s, &prefs, "check=api&group=Core", &[("origin", ORIGIN)]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(
        count(&db, "SELECT count(*) FROM subscriptions WHERE check_ids = '[\"api\"]' AND group_names = '[\"Core\"]'").await,
        1
    );

    // A mail waiting for it, then RFC 8058's one-click POST: no Origin, no
    // cookie. The address and its pending mail are gone.
    let event = ingest::store::outbox::EventRow {
        id: "incident-9-9".into(),
        kind: "incident.opened".into(),
        at: t,
        subject: "incident-9".into(),
        seq: 9,
        data: "{}".into(),
        channel: None,
    };
    db.exec(&format!(
        "INSERT INTO events (id, type, at, subject, seq, data) VALUES ('incident-9-9', 'incident.opened', {}, 'incident-9', 9, '{{}}')",
        db.at(t)
    ))
    .await;
    assert_eq!(
        db.store
            .fan_out(&event, &[("api".into(), "Core".into())], t)
            .await
            .unwrap(),
        1
    );
    let unsubscribe = link(Purpose::Unsubscribe, id, &nonce, t);
    let gone = send(
        &s,
        "POST",
        &unsubscribe,
        &[("content-type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click".to_string(),
    )
    .await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert!(gone.body.contains("Unsubscribed"));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM subscriptions WHERE email = 'a@example.com'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM subscriber_deliveries").await,
        0
    );
    // Again (a provider's retry): still done. Its other links are void.
    let again = post(&s, &unsubscribe, "List-Unsubscribe=One-Click", &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    let old = get(&s, &prefs).await;
    assert_eq!(old.status, StatusCode::GONE);
    assert!(old.body.contains("no longer exists"));
    // Subscribing again makes a new nonce (and, in PostgreSQL, a new id):
    // the old confirm link stays void.
    subscribe(&s, "email=a%40example.com", "192.0.2.2").await;
    let stale = post(&s, &confirm, "", &[("origin", ORIGIN)]).await;
    assert!(
        [StatusCode::BAD_REQUEST, StatusCode::GONE].contains(&stale.status),
        "{}",
        stale.body
    );
    assert_eq!(row(&db, "a@example.com").await.unwrap().2, "pending");
}

async fn bad_subscribe_requests_are_refused_clearly_and_write_nothing(db: Db) {
    let s = state(&db, 100, 1000, pinned());
    // (body, headers, status, what the page says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: [Case; 9] = [
        (
            "email=x%40example.com",
            &[],
            StatusCode::FORBIDDEN,
            "must be sent from the status page",
        ),
        (
            "email=x%40example.com",
            &[("origin", "https://evil.example")],
            StatusCode::FORBIDDEN,
            "must be sent from the status page",
        ),
        (
            "email=x%40example.com",
            &[("origin", "null")],
            StatusCode::FORBIDDEN,
            "must be sent from the status page",
        ),
        (
            "email=x%40example.com%0D%0ABcc%3A+all%40evil.example",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "Enter one email address",
        ),
        (
            "email=x%40example.com%0Abcc%3Ay%40evil.example",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "Enter one email address",
        ),
        (
            "email=x%40example.com,y%40example.com",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "Enter one email address",
        ),
        (
            "email=%00%40example.com",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "Enter one email address",
        ),
        (
            "email=x%40example.com&check=secret",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "not on this page",
        ),
        (
            "email=x%40example.com&group=No%0D%0Asuch",
            &[("origin", ORIGIN)],
            StatusCode::BAD_REQUEST,
            "not on this page",
        ),
    ];
    for (body, headers, status, says) in cases {
        let got = post(&s, "/subscribe", body, headers).await;
        assert_eq!(got.status, status, "{body}: {}", got.body);
        assert!(got.body.contains(says), "{body}: {}", got.body);
    }
    let long = format!("email={}%40example.com", "a".repeat(250));
    assert_eq!(
        post(&s, "/subscribe", &long, &[("origin", ORIGIN)])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let json = send(
        &s,
        "POST",
        "/subscribe",
        &[("origin", ORIGIN), ("content-type", "application/json")],
        r#"{"email":"x@example.com"}"#.to_string(),
    )
    .await;
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert!(json.body.contains("application/x-www-form-urlencoded"));
    let huge = format!("email=x%40example.com&pad={}", "a".repeat(32 * 1024));
    assert_eq!(
        post(&s, "/subscribe", &huge, &[("origin", ORIGIN)])
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        get(&s, "/subscribe/nothing/1.2.AAAA").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE type LIKE 'subscription.%'"
        )
        .await,
        0
    );
    // Without subscriptions, there is no form.
    let off = db.state(Duration::from_secs(60));
    assert_eq!(get(&off, "/subscribe").await.status, StatusCode::NOT_FOUND);
    assert!(!get(&off, "/").await.body.contains("/subscribe"));
}

async fn the_limits_hold_per_ip_loudly_per_address_silently_and_in_total(db: Db) {
    let s = state(&db, 10, 1000, pinned());
    // Ten POSTs a minute from one client, then 429 with Retry-After; the
    // trusted header names the client, so another client is not held up.
    for n in 0..10 {
        let got = subscribe(&s, &format!("email=p{n}%40example.com"), "198.51.100.7").await;
        assert_eq!(got.status, StatusCode::OK, "{n}");
    }
    let held = subscribe(&s, "email=late%40example.com", "198.51.100.7").await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = held.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(row(&db, "late@example.com").await, None);
    assert_eq!(
        subscribe(&s, "email=late%40example.com", "198.51.100.8")
            .await
            .status,
        StatusCode::OK
    );

    // Five confirmations a day per address; the sixth request is answered
    // alike and sends nothing.
    let s = state(&db, 100, 1000, pinned());
    let mut pages = Vec::new();
    for _ in 0..7 {
        pages.push(subscribe(&s, "email=same%40example.com", "198.51.100.9").await);
    }
    assert!(
        pages
            .iter()
            .all(|p| p.status == StatusCode::OK && p.body == pages[0].body)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM events e JOIN subscriptions s ON e.subject = 'subscription-' || s.id WHERE s.email = 'same@example.com'").await,
        5
    );

    // The cap: past it, everyone gets the same refusal, known or not.
    let total = count(&db, "SELECT count(*) FROM subscriptions").await as u64;
    let full = state(&db, 100, total, pinned());
    let known = subscribe(&full, "email=same%40example.com", "198.51.100.10").await;
    let unknown = subscribe(&full, "email=nobody%40example.com", "198.51.100.10").await;
    assert_eq!(known.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(known.body, unknown.body);
    assert_eq!(row(&db, "nobody@example.com").await, None);
}

async fn an_operator_suppresses_and_deletes_subscribers(db: Db) {
    let s = state(&db, 100, 1000, pinned());
    let auth = format!("Bearer {}", crate::fixture::ALICE);
    let admin = |method: &'static str, path: String, body: &'static str| {
        let (s, auth) = (s.clone(), auth.clone());
        async move {
            send(
                &s,
                method,
                &path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await
        }
    };
    subscribe(&s, "email=bounce%40example.com", "192.0.2.30").await;
    let (id, nonce, _) = row(&db, "bounce@example.com").await.unwrap();
    post(
        &s,
        &link(Purpose::Confirm, id, &nonce, now()),
        "",
        &[("origin", ORIGIN)],
    )
    .await;
    let shown = admin("GET", "/admin/v1/subscribers/Bounce@example.com".into(), "").await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.json()["state"], "confirmed");

    let done = admin(
        "POST",
        "/admin/v1/subscribers/suppress".into(),
        r#"{"email": "bounce@example.com", "reason": "hard bounce"}"#,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        row(&db, "bounce@example.com").await.unwrap().2,
        "suppressed"
    );
    // It hears nothing, and the form cannot bring it back.
    let event = ingest::store::outbox::EventRow {
        id: "incident-8-8".into(),
        kind: "incident.opened".into(),
        at: now(),
        subject: "incident-8".into(),
        seq: 8,
        data: "{}".into(),
        channel: None,
    };
    db.exec(&format!(
        "INSERT INTO events (id, type, at, subject, seq, data) VALUES ('incident-8-8', 'incident.opened', {}, 'incident-8', 8, '{{}}')",
        db.at(now())
    ))
    .await;
    assert_eq!(
        db.store
            .fan_out(&event, &[("api".into(), "Core".into())], now())
            .await
            .unwrap(),
        0
    );
    let before = count(
        &db,
        "SELECT count(*) FROM events WHERE type LIKE 'subscription.%'",
    )
    .await;
    assert_eq!(
        subscribe(&s, "email=bounce%40example.com", "192.0.2.30")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE type LIKE 'subscription.%'"
        )
        .await,
        before
    );
    assert_eq!(
        row(&db, "bounce@example.com").await.unwrap().2,
        "suppressed"
    );
    // An address never seen can be suppressed ahead of time.
    let ahead = admin(
        "POST",
        "/admin/v1/subscribers/suppress".into(),
        r#"{"email": "complainer@example.com"}"#,
    )
    .await;
    assert_eq!(ahead.status, StatusCode::OK);
    assert_eq!(ahead.json()["reason"], "suppressed by alice");

    // Refused clearly, nothing written.
    let bad = admin(
        "POST",
        "/admin/v1/subscribers/suppress".into(),
        r#"{"email": "a@b.example\r\nBcc: x@y"}"#,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("`email`"), "{}", bad.body);
    let unknown = admin(
        "POST",
        "/admin/v1/subscribers/suppress".into(),
        r#"{"email": "a@b.example", "extra": 1}"#,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = send(
        &s,
        "DELETE",
        "/admin/v1/subscribers/bounce@example.com",
        &[],
        String::new(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&db, "SELECT count(*) FROM subscriptions").await, 2);

    // Deleted outright: it may subscribe again.
    assert_eq!(
        admin(
            "DELETE",
            "/admin/v1/subscribers/bounce@example.com".into(),
            ""
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin(
            "DELETE",
            "/admin/v1/subscribers/bounce@example.com".into(),
            ""
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin("GET", "/admin/v1/subscribers/bounce@example.com".into(), "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    subscribe(&s, "email=bounce%40example.com", "192.0.2.30").await;
    assert_eq!(row(&db, "bounce@example.com").await.unwrap().2, "pending");
}

async fn unconfirmed_subscriptions_are_forgotten_after_48_hours(db: Db) {
    let clock = pinned();
    let s = state(&db, 100, 1000, clock.clone());
    let t = now();
    clock.store(t - 49 * 3_600_000, Ordering::SeqCst);
    subscribe(&s, "email=old%40example.com", "192.0.2.40").await;
    subscribe(&s, "email=kept%40example.com", "192.0.2.40").await;
    let (id, nonce, _) = row(&db, "kept@example.com").await.unwrap();
    post(
        &s,
        &link(Purpose::Confirm, id, &nonce, t - 49 * 3_600_000),
        "",
        &[("origin", ORIGIN)],
    )
    .await;
    clock.store(t - 47 * 3_600_000, Ordering::SeqCst);
    subscribe(&s, "email=young%40example.com", "192.0.2.40").await;
    // What the mail worker runs, with its cutoff.
    let cutoff = t - ingest::notify::subscribers::UNCONFIRMED_FOR.as_millis() as i64;
    assert_eq!(
        db.store.prune_subscriptions(cutoff, cutoff).await.unwrap(),
        1
    );
    assert_eq!(row(&db, "old@example.com").await, None);
    assert_eq!(row(&db, "kept@example.com").await.unwrap().2, "confirmed");
    assert_eq!(row(&db, "young@example.com").await.unwrap().2, "pending");
}

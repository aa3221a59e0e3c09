//! `statuspage dashboard` as it runs in production: over PostgreSQL through
//! the README's read-only role, the page on one port and the metrics on
//! another, and clear errors for bad flags.

mod support;

use sqlx::{Connection, PgConnection};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, signal};

fn statuspage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(args)
        .env_remove("STATUSPAGE_DATABASE_URL")
        .output()
        .unwrap()
}

/// A fresh, migrated database; returns (admin URL, database name).
async fn fresh_database(tag: &str) -> (String, String) {
    let (url, name) = support::fresh_database(tag).await;
    let out = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (url, name)
}

/// The README's role block after `marker`, for `role` on `database`.
fn readme_grants(marker: &str, placeholder: &str, role: &str, database: &str) -> Vec<String> {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let (_, after) = readme
        .split_once(marker)
        .expect("the README has the role block");
    let block = after
        .split_once("```sql\n")
        .and_then(|(_, b)| b.split_once("```"))
        .expect("an sql block")
        .0;
    block
        .replace(placeholder, role)
        .replace("DATABASE statuspage ", &format!("DATABASE {database} "))
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Makes each README role block `(marker, placeholder, role)` for `role`
/// on `database`, dropping a role of that name first.
async fn readme_roles(owner: &mut PgConnection, database: &str, blocks: &[(&str, &str, &str)]) {
    for (marker, placeholder, role) in blocks {
        sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
            .execute(&mut *owner)
            .await
            .unwrap();
        for statement in readme_grants(marker, placeholder, role, database) {
            sqlx::query(&statement)
                .execute(&mut *owner)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
}

/// `owner_url` logging in as `role` with `password`.
fn as_role(owner_url: &str, role: &str, password: &str) -> String {
    let (scheme_host, _) = owner_url.split_once('@').unwrap();
    owner_url.replacen(
        &format!("{scheme_host}@"),
        &format!("postgres://{role}:{password}@"),
        1,
    )
}

fn http_send(port: u16, method: &str, path: &str, token: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn the_dashboard_reads_through_the_readme_role_and_keeps_metrics_off_the_public_port() {
    let (admin_url, name) = fresh_database("dash_serve").await;
    let role = format!("dash_ro_{}", std::process::id());
    let admin_role = format!("dash_admin_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    readme_roles(
        &mut admin,
        &name,
        &[
            ("<!-- read-only-role", "statuspage_dashboard", &role),
            ("<!-- admin-role", "statuspage_admin", &admin_role),
        ],
    )
    .await;
    // The role reads, and can neither write nor read subscribers' addresses or notification state.
    let ro_url = as_role(&admin_url, &role, "change-me");
    let admin_url = as_role(&admin_url, &admin_role, "change-me-too");
    let mut ro = PgConnection::connect(&ro_url).await.unwrap();
    let denied = sqlx::query("INSERT INTO incidents (title, impact, state, auto, started_at) VALUES ('x', 'minor', 'investigating', false, now())")
        .execute(&mut ro)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        denied.contains("read-only transaction") || denied.contains("permission denied"),
        "{denied}"
    );
    for table in ["subscriptions", "deliveries", "events", "leader_lease"] {
        let denied = sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .execute(&mut ro)
            .await
            .unwrap_err()
            .to_string();
        assert!(denied.contains("permission denied"), "{table}: {denied}");
    }

    let dir = std::env::temp_dir().join(format!("statuspage-dash-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("tokens");
    std::fs::write(&token_file, "# operators\nalice alice-token-0123456789\n").unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args([
            "dashboard",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--title",
            "<b>Acme</b> status",
            "--link",
            "Acme=https://acme.example/",
        ])
        .env("STATUSPAGE_DATABASE_URL", &ro_url)
        .env("STATUSPAGE_ADMIN_DATABASE_URL", &admin_url)
        .env("STATUSPAGE_ADMIN_TOKEN_FILE", &token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let page = support::http_raw(port, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("All systems operational"));
    assert!(page.contains("No checks are public yet."));
    assert!(
        page.contains("&lt;b&gt;Acme&lt;/b&gt; status"),
        "the title is escaped"
    );
    assert!(page.contains("href=\"https://acme.example/\""));
    assert!(support::http_raw(port, "/api/v1/status").contains("\"status\":\"operational\""));
    // The admin API writes through its own role, and the page shows it at once.
    let created = http_send(
        port,
        "POST",
        "/admin/v1/incidents",
        "alice-token-0123456789",
        r#"{"title": "Payments delayed", "impact": "major", "message": "Investigating."}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let page = support::http_raw(port, "/");
    assert!(
        page.contains("Partial outage") && page.contains("Payments delayed"),
        "{page}"
    );
    let refused = http_send(
        port,
        "POST",
        "/admin/v1/incidents",
        "wrong-token-0123456789",
        "{}",
    );
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let window = r#"{"name": "n", "checks": ["x"], "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-01T01:00:00Z"}"#;
    let unknown = http_send(
        port,
        "POST",
        "/admin/v1/maintenance",
        "alice-token-0123456789",
        window,
    );
    assert!(
        unknown.starts_with("HTTP/1.1 422") && unknown.contains("unknown check id"),
        "{unknown}"
    );
    assert!(
        support::http_raw(port, "/metrics").starts_with("HTTP/1.1 404"),
        "metrics stay off the public port"
    );
    assert!(support::http_raw(port, "/readyz").starts_with("HTTP/1.1 404"));

    assert!(support::http_raw(metrics_port, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(support::http_raw(metrics_port, "/readyz").starts_with("HTTP/1.1 200"));
    let metrics = support::http_raw(metrics_port, "/metrics");
    let body = metrics.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(
        support::metric(
            body,
            "statuspage_dashboard_requests_total",
            &[("route", "home"), ("code", "200")]
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        support::metric(
            body,
            "statuspage_dashboard_cache_total",
            &[("outcome", "miss")]
        ),
        3.0,
        "{metrics}"
    );

    signal(&child, "TERM");
    let status = child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        status.success(),
        "SIGTERM is a clean stop: {status:?}\n{logs}"
    );
    assert!(
        !logs.contains("change-me"),
        "the password is never logged:\n{logs}"
    );
}

#[test]
fn bad_dashboard_flags_get_clear_errors() {
    let db = ["--database-url", "sqlite:///nonexistent/x.db"];
    let cases: [(&[&str], &str); 6] = [
        (&["dashboard"], "--database-url"),
        (
            &["--link", "Evil=javascript:alert(1)"],
            "--link \"Evil\": the URL must start with https://, http:// or /",
        ),
        (
            &["--link", "no-equals-sign"],
            "--link \"no-equals-sign\": expected LABEL=URL",
        ),
        (
            &["--logo-url", "http://insecure.example/logo.png"],
            "--logo-url: expected an https:// URL or a path on this site",
        ),
        (
            &["--listen", "everywhere"],
            "--listen \"everywhere\": expected an address such as 0.0.0.0:8080",
        ),
        (
            &["--cache-ttl", "soon"],
            "expected a duration such as `7d`, `36h` or `90m`, found \"soon\"",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["dashboard"];
        if extra != ["dashboard"] {
            args.extend_from_slice(&db);
            args.extend_from_slice(extra);
        }
        let out = statuspage(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = statuspage(&["dashboard", "--database-url", "mysql://app:hunter2@db/x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("expected a postgres:// or sqlite:// URL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the URL is never echoed: {stderr}"
    );
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A flood of distinct `?page=` values cannot grow the cache: a page past
/// the last is a 404 (HTML) or `[]` (JSON) decided from a cached count,
/// without a slot; the cache holds at most its capacity, memory stays flat,
/// and `/` is still served from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_distinct_pages_neither_grow_the_cache_nor_evict_the_home_page() {
    let (db, _) = fresh_database("cacheflood").await;
    let (port, ops) = (free_port(), free_port());
    let mut dashboard = support::Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["dashboard", "--database-url", &db])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{ops}")])
            .args(["--cache-ttl", "60s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::until(Duration::from_secs(30), "the page", || {
        support::http_body(port, "/")
    });
    let hits = || {
        support::metric(
            &support::http_body(ops, "/metrics").unwrap_or_default(),
            "statuspage_dashboard_cache_total",
            &[("outcome", "hit")],
        )
    };
    // Warm: every fixed key rendered once.
    for path in ["/", "/incidents", "/api/v1/incidents"] {
        assert!(support::http_body(port, path).is_some());
    }
    let rss_before = rss_kib(dashboard.id());
    let hits_before = hits();
    for n in 2..10_002 {
        let (path, expected) = if n % 2 == 0 {
            (format!("/incidents?page={n}"), 404)
        } else {
            (format!("/api/v1/incidents?page={n}"), 200)
        };
        assert_eq!(support::http_status(port, &path), Some(expected), "{path}");
    }
    assert_eq!(
        support::http_body(port, "/api/v1/incidents?page=9999").as_deref(),
        Some("[]"),
        "past the end, the API answers as it always has"
    );
    assert!(support::http_body(port, "/").is_some());
    assert!(
        hits() > hits_before,
        "/ came from the cache after the flood"
    );
    let text = support::http_body(ops, "/metrics").unwrap_or_default();
    let entries = support::metric(&text, "statuspage_dashboard_cache_entries", &[]);
    assert!(
        (0.0..=16.0).contains(&entries),
        "the flood made no cache slot: {entries} entries"
    );
    let grown = rss_kib(dashboard.id()).saturating_sub(rss_before);
    assert!(grown <= 20 * 1024, "RSS grew {grown} KiB");
    signal(&dashboard, "TERM");
    assert!(dashboard.wait().unwrap().success());
}

/// Subscriptions as production runs them: the dashboard reads only the
/// `subscriptions` section (a check's unset `${VAR}` does not stop it),
/// writes through the README's subscription role, and the README's
/// read-only role sees neither subscriptions nor the outbox.
#[tokio::test]
async fn subscriptions_write_through_the_readme_role_which_can_do_nothing_else() {
    let (owner_url, name) = fresh_database("dash_subs").await;
    let pid = std::process::id();
    let (ro, subs) = (format!("dash_ro_s_{pid}"), format!("dash_subs_{pid}"));
    let mut owner = PgConnection::connect(&owner_url).await.unwrap();
    readme_roles(
        &mut owner,
        &name,
        &[
            ("<!-- read-only-role", "statuspage_dashboard", &ro),
            ("<!-- subscriptions-role", "statuspage_subscriptions", &subs),
        ],
    )
    .await;
    let ro_url = as_role(&owner_url, &ro, "change-me");
    let subs_url = as_role(&owner_url, &subs, "change-me-three");
    let mut reader = PgConnection::connect(&ro_url).await.unwrap();
    for table in [
        "subscriptions",
        "subscriber_deliveries",
        "events",
        "deliveries",
    ] {
        let denied = sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .execute(&mut reader)
            .await
            .unwrap_err()
            .to_string();
        assert!(denied.contains("permission denied"), "{table}: {denied}");
    }
    let mut writer = PgConnection::connect(&subs_url).await.unwrap();
    for sql in [
        "SELECT count(*) FROM checks",
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM subscriber_deliveries",
        "UPDATE deliveries SET state = 'failed'",
        "DELETE FROM events",
    ] {
        let denied = sqlx::query(sql)
            .execute(&mut writer)
            .await
            .unwrap_err()
            .to_string();
        assert!(denied.contains("permission denied"), "{sql}: {denied}");
    }

    let dir = std::env::temp_dir().join(format!("statuspage-dash-subs-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let config = dir.join("all.yaml");
    std::fs::write(
        &config,
        format!(
            "groups:\n  - name: Core\n    checks:\n      - {{ name: API, id: api, http: {{ url: \"${{NOT_SET_ANYWHERE}}\" }} }}\nsubscriptions:\n  enabled: true\n  signing_key_file: {}\n",
            key.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut child = support::Reaped(
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(["dashboard", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--public-url", &public])
            .arg("--config")
            .arg(&config)
            .env("STATUSPAGE_DATABASE_URL", &ro_url)
            .env("STATUSPAGE_SUBSCRIPTIONS_DATABASE_URL", &subs_url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    support::until(Duration::from_secs(20), "the form", || {
        support::http_body(port, "/subscribe")
    });
    let body = "email=reader%40example.com";
    let answer = {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /subscribe HTTP/1.1\r\nhost: x\r\norigin: {public}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (id, nonce): (i64, String) =
        sqlx::query_as("SELECT id, nonce FROM subscriptions WHERE email = 'reader@example.com'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'subscription.confirm'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(queued, 1);
    // A mail waiting for it; the one-click unsubscribe (through the role)
    // deletes both, the mail by the foreign key's cascade.
    sqlx::query("INSERT INTO subscriber_deliveries (event_id, subscription_id, subject, seq, priority, due_at) SELECT id, $1, subject, seq, 1, now() FROM events")
        .bind(id)
        .execute(&mut owner)
        .await
        .unwrap();
    let token = ingest::notify::token::sign(
        &[7u8; 32],
        ingest::notify::token::Purpose::Unsubscribe,
        id,
        &nonce,
        chrono::Utc::now().timestamp(),
    );
    let path = format!("/subscribe/unsubscribe/{token}");
    let one_click = "List-Unsubscribe=One-Click";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{one_click}",
        one_click.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscriptions), (SELECT count(*) FROM subscriber_deliveries)",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
    signal(&child.0, "TERM");
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        !logs.contains("change-me-three") && !logs.contains(&token),
        "{logs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Redirects keep secrets at home: the check's headers, secret body and
//! secret URL go only to its own origin, a secret never rides an https to
//! http downgrade, and `server_name` applies to the check's own host only.
//! Methods follow browsers: 307 and 308 keep method and body, 301-303 GET.

use crate::targets::*;
use crate::*;

const TOKEN: &str = "s3cr3t-t0ken-value";

/// A server answering `/landing` with 200 and anything else with a redirect
/// of `status` to `to`.
async fn redirector(status: u16, to: String) -> Recorder {
    Recorder::start(move |path| {
        if path == "/landing" {
            answer(200, "", "arrived")
        } else {
            answer(status, &format!("location: {to}\r\n"), "")
        }
    })
    .await
}

async fn landing() -> Recorder {
    Recorder::start(|_| answer(200, "", "arrived")).await
}

#[tokio::test]
async fn secret_and_configured_headers_never_follow_a_redirect_to_another_origin() {
    let other = landing().await;
    let home = redirector(302, format!("http://{}/landing", other.addr)).await;
    let c = check_with_env(
        "2s",
        &format!(
            "http: {{ url: 'http://{}/start', headers: {{ Authorization: 'Bearer ${{TOKEN}}', X-Api-Key: '${{TOKEN}}', Cookie: 'session=plain', Accept: text/plain }}, expect: {{ body_contains: arrived }} }}",
            home.addr
        ),
        &[("TOKEN", TOKEN)],
    );
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let first = home.requests().join("\n");
    assert!(
        first.contains(&format!("authorization: Bearer {TOKEN}")),
        "{first}"
    );
    let second = other.requests();
    assert_eq!(second.len(), 1, "the redirect was followed");
    let second = second[0].to_ascii_lowercase();
    assert!(
        !second.contains(&TOKEN.to_ascii_lowercase()),
        "the token leaked: {second}"
    );
    for name in ["authorization:", "x-api-key:", "cookie:", "accept:"] {
        assert!(
            !second.contains(name),
            "{name} sent to another origin: {second}"
        );
    }
    assert!(second.contains("user-agent: statuspage-agent/"), "{second}");
}

#[tokio::test]
async fn headers_follow_a_redirect_within_the_origin() {
    let home = redirector(302, "/landing".into()).await;
    let c = check_with_env(
        "2s",
        &format!(
            "http: {{ url: 'http://{}/start', headers: {{ Authorization: 'Bearer ${{TOKEN}}' }} }}",
            home.addr
        ),
        &[("TOKEN", TOKEN)],
    );
    assert_outcome(&run(&prober(), &c).await, Outcome::Up, Reason::Ok);
    let seen = home.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].starts_with("GET /landing"), "{}", seen[1]);
    assert!(
        seen[1].contains(TOKEN),
        "same origin keeps the header: {}",
        seen[1]
    );
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_refused_while_the_check_carries_a_secret() {
    let pki = Pki::new("redirect-downgrade");
    let tls = tls_target(pki.server_config(Leaf::Valid, &[]), true).await;
    let plain = landing().await;
    let url = |extra: &str| {
        format!(
            "http: {{ url: 'https://localhost:{}/goto/302?http://{}/landing', tls: {{ ca_file: '{}' }}{extra} }}",
            tls.port(),
            plain.addr,
            pki.ca_file.display()
        )
    };
    let with_secret = check_with_env(
        "2s",
        &url(", headers: { Authorization: 'Bearer ${TOKEN}' }"),
        &[("TOKEN", TOKEN)],
    );
    let r = run(&prober(), &with_secret).await;
    assert_outcome(&r, Outcome::Down, Reason::HttpRedirectInsecure);
    assert!(r.message.contains("plain http"), "{}", r.message);
    assert!(plain.requests().is_empty(), "nothing was sent over http");
    // Without a secret, the downgrade is followed.
    let r = run(&prober(), &check("2s", &url(""))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert_eq!(plain.requests().len(), 1);
}

#[tokio::test]
async fn temporary_and_permanent_redirects_keep_the_method_and_body_and_the_others_become_get() {
    for (status, method, body) in [
        (307, "POST", "payload"),
        (308, "POST", "payload"),
        (301, "GET", ""),
        (302, "GET", ""),
        (303, "GET", ""),
    ] {
        let home = redirector(status, "/landing".into()).await;
        let c = check(
            "2s",
            &format!(
                "http: {{ url: 'http://{}/start', method: POST, body: payload }}",
                home.addr
            ),
        );
        assert_outcome(&run(&prober(), &c).await, Outcome::Up, Reason::Ok);
        let seen = home.requests();
        assert_eq!(seen.len(), 2, "{status}");
        assert!(
            seen[1].starts_with(&format!("{method} /landing")),
            "{status}: {}",
            seen[1]
        );
        assert!(
            seen[1].ends_with(&format!("\r\n\r\n{body}")),
            "{status}: {}",
            seen[1]
        );
    }
}

#[tokio::test]
async fn a_secret_body_or_query_is_never_sent_to_another_origin() {
    let other = landing().await;
    let home = redirector(307, format!("http://{}/landing", other.addr)).await;
    let c = check_with_env(
        "2s",
        &format!(
            "http: {{ url: 'http://{}/start', method: POST, body: 'token=${{TOKEN}}' }}",
            home.addr
        ),
        &[("TOKEN", TOKEN)],
    );
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Down, Reason::HttpRedirectInsecure);
    assert!(!r.message.contains(TOKEN), "{}", r.message);
    // A server echoing the secret query string to another origin.
    let echo = Recorder::start({
        let to = other.addr;
        move |path| {
            let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            answer(
                302,
                &format!("location: http://{to}/landing?{query}\r\n"),
                "",
            )
        }
    })
    .await;
    let c = check_with_env(
        "2s",
        &format!(
            "http: {{ url: 'http://{}/start?key=${{TOKEN}}' }}",
            echo.addr
        ),
        &[("TOKEN", TOKEN)],
    );
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Down, Reason::HttpRedirectInsecure);
    assert!(!r.message.contains(TOKEN), "{}", r.message);
    assert!(other.requests().is_empty(), "the other origin saw nothing");
}

#[tokio::test]
async fn server_name_applies_to_the_checks_own_host_only() {
    let pki = Pki::new("redirect-sni");
    let next = tls_target(pki.server_config(Leaf::Valid, &[]), true).await;
    let first = tls_target(pki.server_config(Leaf::WrongHost, &[]), true).await;
    // The first host is reached as other.example; the redirect's target is
    // verified under its own name (localhost), not under `server_name`.
    let c = check(
        "2s",
        &format!(
            "http: {{ url: 'https://127.0.0.1:{}/goto/302?https://localhost:{}/', tls: {{ ca_file: '{}', server_name: other.example }}, expect: {{ body_contains: Welcome }} }}",
            first.port(),
            next.port(),
            pki.ca_file.display()
        ),
    );
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert_eq!(r.facts.redirects, Some(1));
}

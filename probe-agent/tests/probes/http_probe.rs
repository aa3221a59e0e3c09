//! HTTP: phases, assertions passing and failing, redirects, caps and deadlines.

use crate::targets::*;
use crate::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_healthy_target_is_up_with_every_phase_and_our_user_agent() {
    let web = http_target().await;
    let r = run(&prober(), &check("2s", &format!("http: {{ url: 'http://localhost:{}/echo-headers', expect: {{ body_contains: 'user-agent=statuspage-agent/' }} }}", web.port()))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert!(
        r.phases.dns_us.is_some(),
        "localhost is resolved: {:?}",
        r.phases
    );
    assert!(
        r.phases.connect_us.is_some()
            && r.phases.ttfb_us.is_some()
            && r.phases.transfer_us.is_some()
    );
    assert_eq!(r.phases.tls_us, None, "no TLS on http://");
    assert_eq!(r.facts.http_status, Some(200));
    assert!(r.id.starts_with("t-c/test-agent/"));
    assert_eq!(r.assertions.len(), 2);

    let ip = run(
        &prober(),
        &check("2s", &format!("http: {{ url: 'http://{web}/' }}")),
    )
    .await;
    assert_eq!(ip.phases.dns_us, None, "an IP literal needs no DNS");
}

#[tokio::test]
async fn the_user_agent_names_the_agent_and_headers_and_method_are_sent() {
    let web = http_target().await;
    let c = check(
        "2s",
        &format!(
            "http: {{ url: 'http://{web}/echo-headers', method: POST, body: 'x', headers: {{ Authorization: 'Bearer abc' }}, expect: {{ body_contains: 'authorization=Bearer abc', body_matches: 'method=POST' }} }}"
        ),
    );
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let c = check(
        "2s",
        &format!(
            "http: {{ url: 'http://{web}/echo-headers', expect: {{ body_contains: 'user-agent=statuspage-agent/{} (test-agent)' }} }}",
            env!("CARGO_PKG_VERSION")
        ),
    );
    assert_outcome(&run(&prober(), &c).await, Outcome::Up, Reason::Ok);
}

#[tokio::test]
async fn every_http_assertion_kind_passes_and_fails() {
    let web = http_target().await;
    let p = prober();
    let pass = check(
        "2s",
        &format!(
            "http: {{ url: 'http://{web}/json', expect: {{ status: [200, 2xx], body_contains: ok, body_not_contains: error, body_matches: '\"n\":\\s*3', \
         headers: {{ Content-Type: '^application/json' }}, json: [{{ path: $.status, equals: ok }}, {{ path: $.checks.db, exists: true }}, {{ path: $.nope, exists: false }}], \
         response_time_under: 1s, degraded_over: 900ms }} }}"
        ),
    );
    let r = run(&p, &pass).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert!(r.assertions.iter().all(|a| a.passed), "{:#?}", r.assertions);
    assert_eq!(r.assertions.len(), 10);

    let fails = [
        ("status: [201]", "status in", Reason::HttpStatus),
        ("body_contains: missing", "body contains", Reason::Assertion),
        (
            "body_not_contains: ok",
            "body does not contain",
            Reason::Assertion,
        ),
        ("body_matches: '^nope'", "body matches", Reason::Assertion),
        (
            "headers: { Content-Type: '^text/' }",
            "header content-type",
            Reason::Assertion,
        ),
        (
            "headers: { X-Missing: '.' }",
            "header x-missing",
            Reason::Assertion,
        ),
        (
            "json: [{ path: $.status, equals: bad }]",
            "$.status ==",
            Reason::Assertion,
        ),
        (
            "json: [{ path: $.nope, exists: true }]",
            "$.nope exists",
            Reason::Assertion,
        ),
        (
            "json: [{ path: $.status, exists: false }]",
            "$.status does not exist",
            Reason::Assertion,
        ),
    ];
    for (expect, name, reason) in fails {
        let r = run(
            &p,
            &check(
                "2s",
                &format!("http: {{ url: 'http://{web}/json', expect: {{ {expect} }} }}"),
            ),
        )
        .await;
        assert_outcome(&r, Outcome::Down, reason);
        assert_assertion(&r, name, false);
    }
}

#[tokio::test]
async fn a_json_assertion_on_a_body_that_is_not_json_fails_clearly() {
    let web = http_target().await;
    let r = run(&prober(), &check("2s", &format!("http: {{ url: 'http://{web}/', expect: {{ json: [{{ path: $.a, exists: true }}] }} }}"))).await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert!(
        r.assertions[1].actual.starts_with("the body is not JSON"),
        "{:?}",
        r.assertions
    );
}

#[tokio::test]
async fn slowness_is_down_over_response_time_under_and_degraded_over_degraded_over() {
    let web = http_target().await;
    let p = prober();
    let r = run(
        &p,
        &check(
            "2s",
            &format!(
                "http: {{ url: 'http://{web}/slow', expect: {{ response_time_under: 100ms }} }}"
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert!(r.message.starts_with("took "), "{}", r.message);
    let r = run(&p, &check("2s", &format!("http: {{ url: 'http://{web}/slow', expect: {{ degraded_over: 100ms, response_time_under: 1s }} }}"))).await;
    assert_outcome(&r, Outcome::Degraded, Reason::Ok);
    assert_assertion(&r, "not degraded over", false);
    assert_assertion(&r, "response time under", true);
}

#[tokio::test]
async fn redirects_are_followed_counted_limited_and_loops_detected() {
    let web = http_target().await;
    let p = prober();
    let r = run(
        &p,
        &check(
            "2s",
            &format!(
                "http: {{ url: 'http://{web}/redirect/3', expect: {{ body_contains: arrived }} }}"
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert_eq!(r.facts.redirects, Some(3));
    let r = run(
        &p,
        &check(
            "2s",
            &format!("http: {{ url: 'http://{web}/redirect/3', max_redirects: 2 }}"),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::TooManyRedirects);
    let r = run(
        &p,
        &check("2s", &format!("http: {{ url: 'http://{web}/loop-a' }}")),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::TooManyRedirects);
    assert!(r.message.starts_with("redirect loop"), "{}", r.message);
    let r = run(&p, &check("2s", &format!("http: {{ url: 'http://{web}/redirect/1', max_redirects: 0, expect: {{ status: [302] }} }}"))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
}

#[tokio::test]
async fn a_50_mib_body_stops_at_the_cap() {
    let web = http_target().await;
    let started = Instant::now();
    let r = run(
        &prober(),
        &check(
            "5s",
            &format!("http: {{ url: 'http://{web}/big', max_body: 64KiB }}"),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::BodyTooLarge);
    assert_eq!(r.facts.http_status, Some(200));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_trickling_body_and_a_silent_server_end_at_the_deadline() {
    let web = http_target().await;
    let silent = silent_target().await;
    let p = prober();
    for url in [format!("http://{web}/trickle"), format!("http://{silent}/")] {
        let started = Instant::now();
        let r = run(&p, &check("1500ms", &format!("http: {{ url: '{url}' }}"))).await;
        assert_outcome(&r, Outcome::Down, Reason::Timeout);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
            "{took:?}"
        );
    }
}

#[tokio::test]
async fn bad_chunked_encoding_is_a_protocol_failure() {
    let target = bad_chunked_target().await;
    let r = run(
        &prober(),
        &check("2s", &format!("http: {{ url: 'http://{target}/' }}")),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::HttpProtocol);
}

#[tokio::test]
async fn https_negotiates_h2_verifies_with_the_ca_and_checks_the_certificate() {
    let pki = Pki::new("https");
    let ca = pki.ca_file.display();
    let valid = tls_target(pki.server_config(Leaf::Valid, &[b"h2", b"http/1.1"]), true).await;
    let soon = tls_target(
        pki.server_config(Leaf::ExpiresSoon, &[b"h2", b"http/1.1"]),
        true,
    )
    .await;
    let expired = tls_target(pki.server_config(Leaf::Expired, &[b"http/1.1"]), true).await;
    let p = prober();

    let r = run(&p, &check("2s", &format!("http: {{ url: 'https://localhost:{}/', tls: {{ ca_file: '{ca}' }}, expect: {{ certificate_valid_for: 14d }} }}", valid.port()))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert!(r.phases.tls_us.is_some());
    assert_eq!(r.facts.http_version.as_deref(), Some("HTTP/2.0"));
    assert_eq!(r.facts.tls_version.as_deref(), Some("1.3"));
    assert!(r.facts.chain_not_after.is_some());

    let r = run(&p, &check("2s", &format!("http: {{ url: 'https://localhost:{}/', http2: false, tls: {{ ca_file: '{ca}' }} }}", valid.port()))).await;
    assert_eq!(r.facts.http_version.as_deref(), Some("HTTP/1.1"));

    let r = run(&p, &check("2s", &format!("http: {{ url: 'https://localhost:{}/', tls: {{ ca_file: '{ca}' }}, expect: {{ certificate_valid_for: 14d }} }}", soon.port()))).await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert!(
        r.message
            .starts_with("certificate for localhost expires in "),
        "{}",
        r.message
    );
    assert!(r.message.ends_with("(needs 14d)"), "{}", r.message);

    let r = run(
        &p,
        &check(
            "2s",
            &format!("http: {{ url: 'https://localhost:{}/' }}", valid.port()),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::TlsUntrusted);

    let r = run(&p, &check("2s", &format!("http: {{ url: 'https://localhost:{}/', tls: {{ insecure_skip_verify: true }}, expect: {{ certificate_valid_for: 1d }} }}", expired.port()))).await;
    assert_outcome(&r, Outcome::Down, Reason::TlsExpired);
    assert!(
        r.facts.cert_not_after.is_some(),
        "the expiry is reported even when not verifying"
    );
    assert_eq!(r.facts.http_status, Some(200));
}

#[tokio::test]
async fn a_slow_probe_never_delays_another() {
    let web = http_target().await;
    let silent = silent_target().await;
    let p = prober();
    let slow = check("3s", &format!("http: {{ url: 'http://{silent}/' }}"));
    let fast = check("3s", &format!("http: {{ url: 'http://{web}/' }}"));
    let slow_task = tokio::spawn({
        let p = p.clone();
        async move { run(&p, &slow).await }
    });
    let started = Instant::now();
    for _ in 0..5 {
        assert_outcome(&run(&p, &fast).await, Outcome::Up, Reason::Ok);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_outcome(&slow_task.await.unwrap(), Outcome::Down, Reason::Timeout);
}

#[tokio::test]
async fn secrets_never_reach_the_result() {
    let web = http_target().await;
    let text = format!(
        "groups:\n  - name: T\n    checks:\n      - name: C\n        timeout: 2s\n        http: {{ url: 'http://{web}/echo-headers', headers: {{ Authorization: '${{TOKEN}}' }}, expect: {{ body_contains: 'nothing-like-this' }} }}\n"
    );
    let env = |k: &str| (k == "TOKEN").then(|| "sekrit-token-123".to_string());
    let c = config::load_str(&[(std::path::PathBuf::from("t.yaml"), text)], &env)
        .unwrap()
        .checks
        .remove(0);
    let r = run(&prober(), &c).await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("sekrit-token-123"), "{json}");
    assert!(
        json.contains("[redacted]"),
        "the echoed header shows up redacted: {json}"
    );
}

//! Every reason of the closed set is produced by a real target here.

use crate::targets::*;
use crate::*;
use std::collections::BTreeSet;
use tokio::net::TcpSocket;

#[tokio::test]
async fn every_documented_reason_is_produced_by_a_real_target() {
    let pki = Pki::new("reasons");
    let ca = pki.ca_file.display().to_string();
    let web = http_target().await;
    let dns = dns_target().await;
    let (hole, _keep) = black_hole().await;
    let silent = silent_target().await;
    let chunked = bad_chunked_target().await;
    let closed = closed_port().await;
    let expired = tls_target(pki.server_config(Leaf::Expired, &[]), false).await;
    let wrong = tls_target(pki.server_config(Leaf::WrongHost, &[]), false).await;
    let selfsigned = tls_target(pki.server_config(Leaf::SelfSigned, &[]), false).await;

    // A listener that never accepts, its queue already full: SYNs are dropped.
    let full = TcpSocket::new_v4().unwrap();
    full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let backlog = full.listen(1).unwrap();
    let full_addr = backlog.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = TcpSocket::new_v4().unwrap();
        if let Ok(Ok(c)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), s.connect(full_addr)).await
        {
            fillers.push(c);
        }
    }

    let p = prober();
    let with_dns = prober_with_dns(dns);
    let with_hole = prober_with_dns(hole);
    let cases: Vec<(&Prober, Check, Reason)> = vec![
        (
            &p,
            check("2s", &format!("http: {{ url: 'http://{web}/' }}")),
            Reason::Ok,
        ),
        (
            &with_dns,
            check(
                "2s",
                &format!(
                    "http: {{ url: 'http://nope.example.test:{}/' }}",
                    web.port()
                ),
            ),
            Reason::DnsNxdomain,
        ),
        (
            &with_hole,
            check(
                "2s",
                &format!("http: {{ url: 'http://www.example.test:{}/' }}", web.port()),
            ),
            Reason::DnsTimeout,
        ),
        (
            &p,
            check(
                "2s",
                &format!("dns: {{ name: fail.example.test, server: '{dns}' }}"),
            ),
            Reason::DnsServfail,
        ),
        (
            &p,
            check("2s", &format!("tcp: {{ host: 127.0.0.1, port: {closed} }}")),
            Reason::ConnectRefused,
        ),
        (
            &p,
            check(
                "1s",
                &format!("tcp: {{ host: 127.0.0.1, port: {} }}", full_addr.port()),
            ),
            Reason::ConnectTimeout,
        ),
        (
            &p,
            check(
                "2s",
                &format!("tls: {{ host: 127.0.0.1, port: {} }}", web.port()),
            ),
            Reason::TlsHandshake,
        ),
        (
            &p,
            check(
                "2s",
                &format!(
                    "tls: {{ host: localhost, port: {}, ca_file: '{ca}' }}",
                    expired.port()
                ),
            ),
            Reason::TlsExpired,
        ),
        (
            &p,
            check(
                "2s",
                &format!(
                    "tls: {{ host: localhost, port: {}, ca_file: '{ca}' }}",
                    selfsigned.port()
                ),
            ),
            Reason::TlsUntrusted,
        ),
        (
            &p,
            check(
                "2s",
                &format!(
                    "tls: {{ host: localhost, port: {}, ca_file: '{ca}' }}",
                    wrong.port()
                ),
            ),
            Reason::TlsHostname,
        ),
        (
            &p,
            check("2s", &format!("http: {{ url: 'http://{web}/status/503' }}")),
            Reason::HttpStatus,
        ),
        (
            &p,
            check(
                "2s",
                &format!(
                    "http: {{ url: 'http://{web}/', expect: {{ body_contains: absent-text }} }}"
                ),
            ),
            Reason::Assertion,
        ),
        (
            &p,
            check("1s", &format!("http: {{ url: 'http://{silent}/' }}")),
            Reason::Timeout,
        ),
        (
            &p,
            check("5s", &format!("http: {{ url: 'http://{web}/big' }}")),
            Reason::BodyTooLarge,
        ),
        (
            &p,
            check("2s", &format!("http: {{ url: 'http://{web}/forever/0' }}")),
            Reason::TooManyRedirects,
        ),
        (
            &p,
            check("2s", &format!("http: {{ url: 'http://{chunked}/' }}")),
            Reason::HttpProtocol,
        ),
        (
            &p,
            check_with_env(
                "2s",
                &format!(
                    "http: {{ url: 'http://{web}/goto/302?http://localhost:{}/?k=${{KEY}}' }}",
                    web.port()
                ),
                &[("KEY", "a-secret-key")],
            ),
            Reason::HttpRedirectInsecure,
        ),
    ];
    let mut seen = BTreeSet::new();
    for (prober, check, reason) in &cases {
        let r = run(prober, check).await;
        assert_eq!(
            &r.reason,
            reason,
            "{}",
            serde_json::to_string_pretty(&r).unwrap()
        );
        let outcome = if *reason == Reason::Ok {
            Outcome::Up
        } else {
            Outcome::Down
        };
        assert_eq!(r.outcome, outcome);
        assert!(!r.message.is_empty());
        seen.insert(reason.as_str().to_string());
    }
    let known: BTreeSet<String> = Reason::KNOWN.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, known, "every documented reason is produced above");
    drop(fillers);
}

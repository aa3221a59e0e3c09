//! DNS: record types, every answer assertion, UDP and TCP, and failures.

use crate::targets::*;
use crate::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn answers_are_read_for_each_record_type_over_udp_and_tcp() {
    let dns = dns_target().await;
    let p = prober();
    for protocol in ["udp", "tcp"] {
        let r = run(&p, &check("2s", &format!("dns: {{ name: www.example.test, server: '{dns}', protocol: {protocol}, expect: {{ answers_include: [192.0.2.10] }} }}"))).await;
        assert_outcome(&r, Outcome::Up, Reason::Ok);
        assert_eq!(
            r.facts.dns_answers.as_deref(),
            Some(&["192.0.2.10".to_string()][..])
        );
        assert_eq!(r.facts.dns_rcode.as_deref(), Some("NOERROR"));
        assert!(r.phases.dns_us.is_some());
    }
    let r = run(&p, &check("2s", &format!("dns: {{ name: example.test, type: MX, server: '{dns}', expect: {{ answers_equal: ['10 mail.example.test.'] }} }}"))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let r = run(&p, &check("2s", &format!("dns: {{ name: alias.example.test, type: CNAME, server: '{dns}', expect: {{ answers_equal: [www.example.test.] }} }}"))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let r = run(&p, &check("2s", &format!("dns: {{ name: example.test, type: TXT, server: '{dns}', expect: {{ answers_match: '^v=spf1' }} }}"))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
}

#[tokio::test]
async fn every_dns_assertion_kind_passes_and_fails() {
    let dns = dns_target().await;
    let p = prober();
    let base = format!("name: multi.example.test, server: '{dns}'");
    let pass = run(&p, &check("2s", &format!("dns: {{ {base}, expect: {{ rcode: NOERROR, answers_include: [192.0.2.1], answers_equal: [192.0.2.2, 192.0.2.1], answers_match: '^192\\.0\\.2\\.', min_answers: 2 }} }}"))).await;
    assert_outcome(&pass, Outcome::Up, Reason::Ok);
    assert_eq!(pass.assertions.len(), 5);
    for (expect, name) in [
        ("rcode: NXDOMAIN", "rcode"),
        ("answers_include: [192.0.2.9]", "answers include"),
        ("answers_equal: [192.0.2.1]", "answers are"),
        ("answers_match: '^10\\.'", "every answer matches"),
        ("min_answers: 3", "at least 3 answers"),
    ] {
        let r = run(
            &p,
            &check("2s", &format!("dns: {{ {base}, expect: {{ {expect} }} }}")),
        )
        .await;
        assert_outcome(&r, Outcome::Down, Reason::Assertion);
        assert_assertion(&r, name, false);
    }
}

#[tokio::test]
async fn nxdomain_servfail_and_silence_have_their_own_reasons() {
    let dns = dns_target().await;
    let (hole, _keep) = black_hole().await;
    let p = prober();
    let r = run(
        &p,
        &check(
            "2s",
            &format!("dns: {{ name: missing.example.test, server: '{dns}' }}"),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::DnsNxdomain);
    let r = run(
        &p,
        &check(
            "2s",
            &format!("dns: {{ name: fail.example.test, server: '{dns}' }}"),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::DnsServfail);
    let started = Instant::now();
    let r = run(
        &p,
        &check(
            "1s",
            &format!("dns: {{ name: www.example.test, server: '{hole}' }}"),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::DnsTimeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    let r = run(&p, &check("2s", &format!("dns: {{ name: missing.example.test, server: '{dns}', expect: {{ rcode: NXDOMAIN }} }}"))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
}

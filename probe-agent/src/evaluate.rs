//! Judging what a probe saw: a pure function from expectations and facts to
//! an outcome, a reason, a message and the list of assertions.

use crate::observation::{Observation, TlsFacts};
use chrono::{DateTime, Utc};
use config::catalog::{
    DnsProbe, HttpProbe, JsonCheck, Probe, Rcode, TcpProbe, Timing, TlsProbe, TlsVersion,
};
use config::units::format_duration;
use config::wire::{Assertion, Outcome, Reason};
use std::time::Duration;

/// The judgement of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// up, degraded or down.
    pub outcome: Outcome,
    /// Why; `ok` when up.
    pub reason: Reason,
    /// A human sentence: what failed, or a short summary.
    pub message: String,
    /// Every assertion that could be checked, in order.
    pub assertions: Vec<Assertion>,
}

/// Collects assertions; the first failure decides the reason.
#[derive(Default)]
struct Judge {
    assertions: Vec<Assertion>,
    failure: Option<(Reason, String)>,
    degraded: Option<String>,
}

impl Judge {
    fn check(
        &mut self,
        name: String,
        passed: bool,
        actual: &str,
        reason: Reason,
        message: impl FnOnce() -> String,
    ) {
        self.assertions.push(Assertion::new(name, passed, actual));
        if !passed && self.failure.is_none() {
            self.failure = Some((reason, message()));
        }
    }
}

/// Judges `seen` against the expectations of `probe`. `now` is when the
/// probe ran, for certificate lifetimes.
pub fn evaluate(probe: &Probe, seen: &Observation, now: DateTime<Utc>) -> Verdict {
    let mut judge = Judge::default();
    if let Some(f) = &seen.failure {
        judge.failure = Some((f.reason.clone(), f.message.clone()));
    }
    let timing = match probe {
        Probe::Http(p) => {
            http(&mut judge, p, seen, now);
            p.expect.timing
        }
        Probe::Tcp(p) => {
            tcp(&mut judge, p, seen);
            p.timing
        }
        Probe::Tls(p) => {
            tls(&mut judge, p, seen, now);
            p.timing
        }
        Probe::Dns(p) => {
            dns(&mut judge, p, seen);
            p.timing
        }
    };
    if seen.failure.is_none() {
        times(&mut judge, timing, seen.duration);
    }
    let Judge {
        assertions,
        failure,
        degraded,
    } = judge;
    let (outcome, reason, message) = match (failure, degraded) {
        (Some((reason, message)), _) => (Outcome::Down, reason, message),
        (None, Some(message)) => (Outcome::Degraded, Reason::Ok, message),
        (None, None) => (Outcome::Up, Reason::Ok, summary(seen)),
    };
    Verdict {
        outcome,
        reason,
        message,
        assertions,
    }
}

fn summary(seen: &Observation) -> String {
    let took = ms(seen.duration);
    if let Some(h) = &seen.http {
        format!("HTTP {} in {took}", h.status)
    } else if let Some(d) = &seen.dns {
        format!(
            "{} with {} answer{} in {took}",
            d.rcode,
            d.answers.len(),
            if d.answers.len() == 1 { "" } else { "s" }
        )
    } else if let Some(t) = &seen.tls {
        format!("TLS {} handshake in {took}", t.version)
    } else {
        format!("connected in {took}")
    }
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn times(judge: &mut Judge, timing: Timing, took: Duration) {
    if let Some(limit) = timing.response_time_under {
        judge.check(
            format!("response time under {}", format_duration(limit)),
            took < limit,
            &ms(took),
            Reason::Assertion,
            || format!("took {}, needs under {}", ms(took), format_duration(limit)),
        );
    }
    if let Some(limit) = timing.degraded_over {
        let slow = took > limit;
        judge.assertions.push(Assertion::new(
            format!("not degraded over {}", format_duration(limit)),
            !slow,
            &ms(took),
        ));
        if slow {
            judge.degraded = Some(format!(
                "slow: took {}, degraded over {}",
                ms(took),
                format_duration(limit)
            ));
        }
    }
}

fn http(judge: &mut Judge, p: &HttpProbe, seen: &Observation, now: DateTime<Utc>) {
    let e = &p.expect;
    let more = e.more();
    if let Some(h) = &seen.http {
        let wanted = e
            .status
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let ok = e.status.iter().any(|s| s.matches(h.status));
        judge.check(
            format!("status in [{wanted}]"),
            ok,
            &h.status.to_string(),
            Reason::HttpStatus,
            || format!("expected status {wanted}, got {}", h.status),
        );
        let body = String::from_utf8_lossy(&h.body);
        if let Some(text) = &e.body_contains {
            let ok = body.contains(&**text);
            judge.check(
                format!("body contains {text:?}"),
                ok,
                &excerpt(&body),
                Reason::Assertion,
                || {
                    format!(
                        "the body ({} bytes) does not contain {text:?}",
                        h.body.len()
                    )
                },
            );
        }
        if let Some(text) = &more.body_not_contains {
            let ok = !body.contains(text.as_str());
            judge.check(
                format!("body does not contain {text:?}"),
                ok,
                &excerpt(&body),
                Reason::Assertion,
                || format!("the body contains {text:?}"),
            );
        }
        if let Some(re) = &more.body_matches {
            let ok = re.is_match(&body);
            judge.check(
                format!("body matches /{}/", re.as_str()),
                ok,
                &excerpt(&body),
                Reason::Assertion,
                || format!("the body does not match /{}/", re.as_str()),
            );
        }
        if !more.json.is_empty() {
            let doc: Result<serde_json::Value, _> = serde_json::from_slice(&h.body);
            for a in &more.json {
                let (ok, actual) = match &doc {
                    Err(err) => (false, format!("the body is not JSON: {err}")),
                    Ok(doc) => {
                        let found = a.path.query(doc).all();
                        match &a.check {
                            JsonCheck::Exists(want) => (
                                found.is_empty() != *want,
                                format!("{} value(s)", found.len()),
                            ),
                            JsonCheck::Equals(want) => match found.first() {
                                Some(v) => (*v == want, v.to_string()),
                                None => (false, "nothing selected".into()),
                            },
                        }
                    }
                };
                let name = match &a.check {
                    JsonCheck::Exists(true) => format!("{} exists", a.path_text),
                    JsonCheck::Exists(false) => format!("{} does not exist", a.path_text),
                    JsonCheck::Equals(v) => format!("{} == {v}", a.path_text),
                };
                let message = format!("JSON assertion failed: {name} (got {actual})");
                judge.check(name, ok, &actual, Reason::Assertion, || message);
            }
        }
        for (name, re) in &more.headers {
            let values: Vec<&str> = h
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            let ok = values.iter().any(|v| re.is_match(v));
            let actual = if values.is_empty() {
                "absent".to_string()
            } else {
                values.join(", ")
            };
            judge.check(
                format!("header {name} matches /{}/", re.as_str()),
                ok,
                &actual,
                Reason::Assertion,
                || format!("header {name} is {actual}, expected /{}/", re.as_str()),
            );
        }
    }
    if let (Some(need), Some(t)) = (more.certificate_valid_for, &seen.tls) {
        certificate(judge, need, t, now);
    }
}

fn certificate(judge: &mut Judge, need: Duration, t: &TlsFacts, now: DateTime<Utc>) {
    let Some(not_after) = t.chain_not_after.or(t.leaf_not_after) else {
        return;
    };
    let left = not_after - now;
    let ok = left.to_std().is_ok_and(|l| l >= need);
    let actual = format!("expires {}", not_after.format("%Y-%m-%dT%H:%M:%SZ"));
    let reason = if left <= chrono::Duration::zero() {
        Reason::TlsExpired
    } else {
        Reason::Assertion
    };
    judge.check(
        format!("certificate valid for {}", format_duration(need)),
        ok,
        &actual,
        reason,
        || {
            if left <= chrono::Duration::zero() {
                format!("certificate for {} expired {} ago", t.host, days(-left))
            } else {
                format!(
                    "certificate for {} expires in {} (needs {})",
                    t.host,
                    days(left),
                    format_duration(need)
                )
            }
        },
    );
}

fn days(d: chrono::Duration) -> String {
    match d.num_days() {
        0 => format!("{} hours", d.num_hours()),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

fn excerpt(body: &str) -> String {
    body.chars().take(120).collect()
}

fn tcp(judge: &mut Judge, p: &TcpProbe, seen: &Observation) {
    if let (Some(re), true) = (&p.reply_matches, seen.failure.is_none()) {
        let reply = seen.tcp_reply.as_deref().unwrap_or("");
        judge.check(
            format!("reply matches /{}/", re.as_str()),
            re.is_match(reply),
            reply,
            Reason::Assertion,
            || {
                format!(
                    "the reply {:?} does not match /{}/",
                    excerpt(reply),
                    re.as_str()
                )
            },
        );
    }
}

fn tls(judge: &mut Judge, p: &TlsProbe, seen: &Observation, now: DateTime<Utc>) {
    let Some(t) = &seen.tls else { return };
    if let Some(need) = p.certificate_valid_for {
        certificate(judge, need, t, now);
    }
    if let (Some(min), false) = (p.min_version, t.version.is_empty()) {
        let have = match t.version.as_str() {
            "1.3" => Some(TlsVersion::Tls13),
            "1.2" => Some(TlsVersion::Tls12),
            _ => None,
        };
        let wanted = match min {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        };
        let ok = have.is_some_and(|h| h >= min);
        judge.check(
            format!("TLS version at least {wanted}"),
            ok,
            &t.version,
            Reason::Assertion,
            || format!("TLS {} negotiated, needs at least {wanted}", t.version),
        );
    }
}

/// The wire text of a response code.
pub fn rcode_text(r: Rcode) -> &'static str {
    match r {
        Rcode::NoError => "NOERROR",
        Rcode::FormErr => "FORMERR",
        Rcode::ServFail => "SERVFAIL",
        Rcode::NXDomain => "NXDOMAIN",
        Rcode::NotImp => "NOTIMP",
        Rcode::Refused => "REFUSED",
    }
}

fn dns(judge: &mut Judge, p: &DnsProbe, seen: &Observation) {
    let Some(d) = &seen.dns else { return };
    let want = rcode_text(p.rcode);
    let reason = match d.rcode.as_str() {
        "NXDOMAIN" => Reason::DnsNxdomain,
        "SERVFAIL" => Reason::DnsServfail,
        _ => Reason::Assertion,
    };
    judge.check(
        format!("rcode {want}"),
        d.rcode == want,
        &d.rcode,
        reason,
        || {
            format!(
                "{} answered {} for {}, expected {want}",
                p.server
                    .as_ref()
                    .map_or("the resolver".to_string(), |s| s.host.clone()),
                d.rcode,
                p.name
            )
        },
    );
    let answers = d.answers.join(", ");
    for value in &p.answers_include {
        let ok = d.answers.iter().any(|a| a.eq_ignore_ascii_case(value));
        judge.check(
            format!("answers include {value}"),
            ok,
            &answers,
            Reason::Assertion,
            || format!("{value} is not among the answers [{answers}]"),
        );
    }
    if let Some(set) = &p.answers_equal {
        let mut want: Vec<String> = set.iter().map(|s| s.to_ascii_lowercase()).collect();
        let mut have: Vec<String> = d.answers.iter().map(|s| s.to_ascii_lowercase()).collect();
        want.sort();
        have.sort();
        judge.check(
            format!("answers are [{}]", set.join(", ")),
            want == have,
            &answers,
            Reason::Assertion,
            || format!("the answers are [{answers}], expected [{}]", set.join(", ")),
        );
    }
    if let Some(re) = &p.answers_match {
        let ok = !d.answers.is_empty() && d.answers.iter().all(|a| re.is_match(a));
        judge.check(
            format!("every answer matches /{}/", re.as_str()),
            ok,
            &answers,
            Reason::Assertion,
            || format!("not every answer of [{answers}] matches /{}/", re.as_str()),
        );
    }
    if let Some(min) = p.min_answers {
        let n = d.answers.len() as u32;
        judge.check(
            format!("at least {min} answers"),
            n >= min,
            &n.to_string(),
            Reason::Assertion,
            || format!("{n} answers, expected at least {min}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{DnsFacts, Failure, HttpFacts, TlsFacts};
    use chrono::TimeZone;

    fn probe(yaml: &str) -> Probe {
        let text = format!(
            "groups:\n  - name: T\n    checks:\n      - name: C\n        timeout: 5s\n        {yaml}\n"
        );
        let env = |_: &str| None;
        config::load_str(&[("t.yaml".into(), text)], &env)
            .unwrap()
            .checks
            .remove(0)
            .probe
            .clone()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn http_seen(status: u16, body: &str, took_ms: u64) -> Observation {
        Observation {
            duration: Duration::from_millis(took_ms),
            http: Some(HttpFacts {
                status,
                version: "HTTP/1.1".into(),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: body.to_string().into(),
                redirects: 0,
            }),
            ..Observation::default()
        }
    }

    #[test]
    fn a_failure_decides_the_reason_and_no_timing_is_judged() {
        let p = probe("http: { url: 'http://x.example/', expect: { response_time_under: 1s } }");
        let seen = Observation {
            failure: Some(Failure::new(Reason::ConnectRefused, "refused")),
            duration: Duration::from_secs(3),
            ..Observation::default()
        };
        let v = evaluate(&p, &seen, now());
        assert_eq!(
            (v.outcome, v.reason, v.message.as_str()),
            (Outcome::Down, Reason::ConnectRefused, "refused")
        );
        assert!(v.assertions.is_empty());
    }

    #[test]
    fn the_first_failing_assertion_names_the_reason_and_all_are_listed() {
        let p = probe(
            "http: { url: 'http://x.example/', expect: { status: [200], body_contains: hello } }",
        );
        let v = evaluate(&p, &http_seen(500, "oops", 10), now());
        assert_eq!((v.outcome, v.reason), (Outcome::Down, Reason::HttpStatus));
        assert_eq!(v.message, "expected status 200, got 500");
        assert_eq!(
            v.assertions.iter().map(|a| a.passed).collect::<Vec<_>>(),
            [false, false]
        );
    }

    #[test]
    fn down_beats_degraded_and_degraded_beats_up() {
        let p = probe(
            "http: { url: 'http://x.example/', expect: { degraded_over: 100ms, response_time_under: 1s } }",
        );
        assert_eq!(
            evaluate(&p, &http_seen(200, "", 50), now()).outcome,
            Outcome::Up
        );
        let v = evaluate(&p, &http_seen(200, "", 500), now());
        assert_eq!((v.outcome, v.reason), (Outcome::Degraded, Reason::Ok));
        assert_eq!(v.message, "slow: took 500ms, degraded over 100ms");
        let v = evaluate(&p, &http_seen(200, "", 1500), now());
        assert_eq!((v.outcome, v.reason), (Outcome::Down, Reason::Assertion));
        assert_eq!(v.message, "took 1500ms, needs under 1s");
    }

    fn tls_seen(not_after: DateTime<Utc>) -> Observation {
        Observation {
            tls: Some(TlsFacts {
                host: "example.com".into(),
                version: "1.3".into(),
                chain_not_after: Some(not_after),
                leaf_not_after: Some(not_after),
                ..TlsFacts::default()
            }),
            ..Observation::default()
        }
    }

    #[test]
    fn certificate_lifetime_is_counted_from_the_probe_time() {
        let p = probe("tls: { host: example.com, expect: { certificate_valid_for: 14d } }");
        let v = evaluate(&p, &tls_seen(now() + chrono::Duration::days(30)), now());
        assert_eq!(v.outcome, Outcome::Up);
        let v = evaluate(
            &p,
            &tls_seen(now() + chrono::Duration::days(3) + chrono::Duration::hours(1)),
            now(),
        );
        assert_eq!((v.outcome, v.reason), (Outcome::Down, Reason::Assertion));
        assert_eq!(
            v.message,
            "certificate for example.com expires in 3 days (needs 14d)"
        );
        let v = evaluate(&p, &tls_seen(now() - chrono::Duration::days(2)), now());
        assert_eq!((v.outcome, v.reason), (Outcome::Down, Reason::TlsExpired));
        assert_eq!(v.message, "certificate for example.com expired 2 days ago");
    }

    #[test]
    fn an_unexpected_rcode_maps_to_its_dns_reason() {
        let p = probe("dns: { name: example.com, server: '10.0.0.2:53' }");
        let seen = |rcode: &str| Observation {
            dns: Some(DnsFacts {
                rcode: rcode.into(),
                answers: vec![],
            }),
            ..Observation::default()
        };
        assert_eq!(
            evaluate(&p, &seen("NXDOMAIN"), now()).reason,
            Reason::DnsNxdomain
        );
        assert_eq!(
            evaluate(&p, &seen("SERVFAIL"), now()).reason,
            Reason::DnsServfail
        );
        assert_eq!(
            evaluate(&p, &seen("REFUSED"), now()).reason,
            Reason::Assertion
        );
        assert_eq!(evaluate(&p, &seen("NOERROR"), now()).outcome, Outcome::Up);
    }
}

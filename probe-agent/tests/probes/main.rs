//! Probes against real local servers: every reason, every assertion kind
//! passing and failing, and targets that misbehave.

mod meter;
mod targets;

use config::Check;
use config::wire::{Outcome, ProbeResult, Reason, Timestamp};
use probe_agent::Prober;
use std::path::PathBuf;

/// A check from a YAML snippet (`http: {...}` etc.), with `timeout`.
#[track_caller]
pub fn check(timeout: &str, probe_yaml: &str) -> Check {
    let text = format!(
        "groups:\n  - name: T\n    checks:\n      - name: C\n        interval: 30s\n        timeout: {timeout}\n        {probe_yaml}\n"
    );
    let env = |_: &str| None;
    match config::load_str(&[(PathBuf::from("test.yaml"), text.clone())], &env) {
        Ok(mut c) => std::sync::Arc::unwrap_or_clone(c.checks.remove(0)),
        Err(e) => panic!("bad test check:\n{text}\n{e}"),
    }
}

/// A check as [`check`] builds it, with these environment variables for `${VAR}`.
#[track_caller]
pub fn check_with_env(timeout: &str, probe_yaml: &str, vars: &[(&str, &str)]) -> Check {
    let text = format!(
        "groups:\n  - name: T\n    checks:\n      - name: C\n        interval: 30s\n        timeout: {timeout}\n        {probe_yaml}\n"
    );
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match config::load_str(&[(PathBuf::from("test.yaml"), text.clone())], &env) {
        Ok(mut c) => std::sync::Arc::unwrap_or_clone(c.checks.remove(0)),
        Err(e) => panic!("bad test check:\n{text}\n{e}"),
    }
}

pub fn prober() -> Prober {
    Prober::new("test-agent").expect("system resolver config")
}

/// A prober whose resolver asks `dns` (the test DNS server) over UDP.
pub fn prober_with_dns(dns: std::net::SocketAddr) -> Prober {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(
        dns,
        hickory_proto::xfer::Protocol::Udp,
    ));
    let mut opts = ResolverOpts::default();
    opts.timeout = std::time::Duration::from_millis(500);
    opts.attempts = 1;
    Prober::with_resolver("test-agent", config, opts)
}

pub async fn run(prober: &Prober, check: &Check) -> ProbeResult {
    prober
        .run(
            check,
            Timestamp::new(chrono::Utc::now()),
            check.schedule.period(),
            1,
        )
        .await
}

#[track_caller]
pub fn assert_outcome(r: &ProbeResult, outcome: Outcome, reason: Reason) {
    assert_eq!(
        (&r.outcome, &r.reason),
        (&outcome, &reason),
        "{}",
        serde_json::to_string_pretty(r).unwrap()
    );
}

/// The assertion named `prefix...` passed or failed as expected.
#[track_caller]
pub fn assert_assertion(r: &ProbeResult, prefix: &str, passed: bool) {
    let a = r
        .assertions
        .iter()
        .find(|a| a.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no assertion {prefix:?} in {:#?}", r.assertions));
    assert_eq!(a.passed, passed, "{a:?}");
}

mod discovery;
mod dns_probe;
mod http_probe;
mod publishing;
mod reasons;
mod redirects;
mod scheduling;
mod tcp_probe;
mod tls_probe;

/// Polls `what` every 50 ms until it holds, or panics after `secs`.
pub async fn eventually(secs: u64, what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !holds() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

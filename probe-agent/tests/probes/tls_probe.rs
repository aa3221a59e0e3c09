//! TLS: facts, certificate lifetime and version assertions.

use crate::targets::*;
use crate::*;

#[tokio::test]
async fn a_valid_chain_reports_version_cipher_and_expiry() {
    let pki = Pki::new("tls-valid");
    let target = tls_target(pki.server_config(Leaf::Valid, &[]), false).await;
    let r = run(&prober(), &check("2s", &format!("tls: {{ host: 127.0.0.1, port: {}, server_name: localhost, ca_file: '{}', expect: {{ certificate_valid_for: 30d, min_version: '1.2' }} }}", target.port(), pki.ca_file.display()))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert_eq!(r.facts.tls_version.as_deref(), Some("1.3"));
    assert!(
        r.facts
            .tls_cipher
            .as_deref()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{:?}",
        r.facts
    );
    assert_eq!(r.facts.cert_subject.as_deref(), Some("CN=Valid leaf"));
    assert_eq!(
        r.facts.cert_issuer.as_deref(),
        Some("CN=statuspage test CA")
    );
    assert!(r.phases.connect_us.is_some() && r.phases.tls_us.is_some());
    assert_assertion(&r, "certificate valid for", true);
    assert_assertion(&r, "TLS version at least 1.2", true);
}

#[tokio::test]
async fn a_certificate_expiring_in_five_days_fails_a_fourteen_day_check() {
    let pki = Pki::new("tls-soon");
    let target = tls_target(pki.server_config(Leaf::ExpiresSoon, &[]), false).await;
    let r = run(&prober(), &check("2s", &format!("tls: {{ host: localhost, port: {}, ca_file: '{}', expect: {{ certificate_valid_for: 14d }} }}", target.port(), pki.ca_file.display()))).await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert_assertion(&r, "certificate valid for 14d", false);
    assert!(r.message.contains("expires in"), "{}", r.message);
}

#[tokio::test]
async fn a_failed_handshake_still_reports_the_chain_and_is_not_a_connect_failure() {
    let pki = Pki::new("tls-expired");
    let target = tls_target(pki.server_config(Leaf::Expired, &[]), false).await;
    let r = run(
        &prober(),
        &check(
            "2s",
            &format!(
                "tls: {{ host: localhost, port: {}, ca_file: '{}' }}",
                target.port(),
                pki.ca_file.display()
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::TlsExpired);
    assert!(r.phases.connect_us.is_some());
    assert!(
        r.facts
            .cert_not_after
            .unwrap()
            .to_string()
            .starts_with("2020-01-01"),
        "{:?}",
        r.facts
    );
}

#[tokio::test]
async fn min_version_fails_when_the_server_stops_at_tls_1_2() {
    let pki = Pki::new("tls12");
    let mut config = pki.server_config(Leaf::Valid, &[]);
    let only12 = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(config.cert_resolver.clone());
    config = only12;
    let target = tls_target(config, false).await;
    let r = run(&prober(), &check("2s", &format!("tls: {{ host: localhost, port: {}, ca_file: '{}', expect: {{ min_version: '1.3' }} }}", target.port(), pki.ca_file.display()))).await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert_eq!(r.facts.tls_version.as_deref(), Some("1.2"));
    assert_assertion(&r, "TLS version at least 1.3", false);
}

#[tokio::test]
async fn a_client_certificate_is_presented_for_mutual_tls() {
    let pki = Pki::new("mtls");
    let (cert, key) = pki.client_cert_files();
    let target = tls_target(pki.server_config_requiring_client_cert(), true).await;
    let ca = pki.ca_file.display();
    let with = check(
        "2s",
        &format!(
            "http: {{ url: 'https://localhost:{}/', tls: {{ ca_file: '{ca}', client_cert_file: '{}', client_key_file: '{}' }} }}",
            target.port(),
            cert.display(),
            key.display()
        ),
    );
    assert_outcome(&run(&prober(), &with).await, Outcome::Up, Reason::Ok);
    let without = check(
        "2s",
        &format!(
            "http: {{ url: 'https://localhost:{}/', tls: {{ ca_file: '{ca}' }} }}",
            target.port()
        ),
    );
    let r = run(&prober(), &without).await;
    assert_eq!(r.outcome, Outcome::Down, "{r:?}");
}

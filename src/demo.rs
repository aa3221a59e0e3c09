//! `statuspage demo`: standalone over built-in targets on loopback, probed
//! for real (nothing is fabricated), so a new user sees a live page, and an
//! incident open and resolve by itself, within minutes.
//!
//! - `Checkout` (HTTP) answers 503 for 60 s every 5 minutes, starting a
//!   minute after the demo starts;
//! - `Search` (HTTP) is slow (1.2 s, degraded over 800 ms) one minute in
//!   three;
//! - `API` (TLS) is always fine, behind a certificate that expires in
//!   10 days;
//! - `Status API` (HTTPS) is the same server answering HTTP;
//! - `Database` (TCP) accepts connections;
//! - `DNS` answers `status.demo.` with 127.0.0.1.

use crate::standalone::{self, Options};
use anyhow::Context;
use dashboard::pages::Site;
use dashboard::read::{IncidentFilter, Reader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The flapping service's cycle, and where in it it is down.
const CYCLE: Duration = Duration::from_secs(300);
const DOWN_FROM: Duration = Duration::from_secs(60);
const DOWN_FOR: Duration = Duration::from_secs(60);

/// Whether the flapping service is down `elapsed` after the start.
pub(crate) fn checkout_down(elapsed: Duration) -> bool {
    let phase = Duration::from_millis((elapsed.as_millis() % CYCLE.as_millis()) as u64);
    phase >= DOWN_FROM && phase < DOWN_FROM + DOWN_FOR
}

/// Whether the slow endpoint is slow `elapsed` after the start.
pub(crate) fn search_slow(elapsed: Duration) -> bool {
    (elapsed.as_secs() / 60) % 3 == 1
}

/// The demo's webhook signing secret (loopback only; a real one comes
/// from `${WEBHOOK_SECRET}`).
const DEMO_SECRET: &str = "whsec_ZGVtby1vbmx5LXNpZ25pbmcta2V5LTAxMjM0NQ==";

/// The demo's webhook receiver: checks the Standard Webhooks signature and
/// logs each event as it arrives.
async fn hook(headers: http::HeaderMap, body: axum::body::Bytes) -> http::StatusCode {
    use base64::Engine;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(DEMO_SECRET.trim_start_matches("whsec_"))
        .unwrap_or_default();
    let expected = ::ingest::notify::format::sign(&key, &id, timestamp.parse().unwrap_or(0), &body);
    let verified = header("webhook-signature")
        .split(' ')
        .any(|s| s == expected);
    let kind = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    tracing::info!(event = "demo_notification_delivered", id = %id, kind = %kind, verified);
    if verified {
        http::StatusCode::NO_CONTENT
    } else {
        http::StatusCode::UNAUTHORIZED
    }
}

/// The HTTP targets: `/checkout`, `/search`, `/health`, and `/hooks`, the
/// demo's notification receiver.
async fn http_target(started: Instant, stop: CancellationToken) -> anyhow::Result<SocketAddr> {
    use axum::routing::get;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/checkout",
            get(move || async move {
                if checkout_down(started.elapsed()) {
                    (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "checkout is down (demo)\n",
                    )
                } else {
                    (http::StatusCode::OK, "checkout ok\n")
                }
            }),
        )
        .route(
            "/search",
            get(move || async move {
                if search_slow(started.elapsed()) {
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                }
                "search ok\n"
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route("/hooks", axum::routing::post(hook));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(addr)
}

/// A TLS endpoint whose certificate (from a CA written to `dir`) expires in
/// 10 days, answering HTTP/1.1 inside; returns its address and the CA file.
async fn tls_target(dir: &Path, stop: CancellationToken) -> anyhow::Result<(SocketAddr, PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "statuspage demo CA");
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let ca_file = dir.join("demo-ca.pem");
    std::fs::write(&ca_file, issuer.pem())?;
    let mut leaf = CertificateParams::new(vec!["api.demo".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    leaf.distinguished_name.push(DnType::CommonName, "api.demo");
    // Ten days from now, to the day (the page shows it amber: under 14).
    let expiry = chrono::Utc::now() + chrono::Duration::days(10);
    {
        use chrono::Datelike;
        leaf.not_after =
            rcgen::date_time_ymd(expiry.year(), expiry.month() as u8, expiry.day() as u8);
    }
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the demo key: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "api ok\n" }));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A TLS check shakes hands and leaves; an HTTPS check gets an answer.
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                }
            });
        }
    });
    Ok((addr, ca_file))
}

/// A TCP port that accepts connections.
async fn tcp_target(stop: CancellationToken) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                a = listener.accept() => { drop(a); }
                _ = stop.cancelled() => return,
            }
        }
    });
    Ok(addr)
}

/// A small authoritative DNS server (UDP): `status.demo.` A 127.0.0.1,
/// everything else NXDOMAIN.
async fn dns_target(stop: CancellationToken) -> anyhow::Result<SocketAddr> {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record, RecordType};
    let udp = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = udp.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let got = tokio::select! {
                g = udp.recv_from(&mut buf) => g,
                _ = stop.cancelled() => return,
            };
            let Ok((n, from)) = got else { continue };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::new();
            resp.set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_authoritative(true);
            match query.queries().first() {
                Some(q) => {
                    resp.add_query(q.clone());
                    let name = q.name().to_ascii().to_ascii_lowercase();
                    if name == "status.demo." && q.query_type() == RecordType::A {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A::new(127, 0, 0, 1)),
                        ));
                    } else if name != "status.demo." {
                        resp.set_response_code(ResponseCode::NXDomain);
                    }
                }
                None => {
                    resp.set_response_code(ResponseCode::FormErr);
                }
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = udp.send_to(&bytes, from).await;
            }
        }
    });
    Ok(addr)
}

/// The demo's checks, pointing at the targets.
fn demo_yaml(
    http: SocketAddr,
    tls: SocketAddr,
    ca: &Path,
    tcp: SocketAddr,
    dns: SocketAddr,
) -> String {
    format!(
        r#"# The demo's checks: every target is a real server on loopback.
defaults:
  interval: 5s
  timeout: 3s
  locations: 1
  failure_threshold: 2
  success_threshold: 2
  reopen_window: 1m
  slo: {{ target: 99.9%, window: 30d }}
groups:
  - name: Shop
    slo: {{ target: 99%, window: 7d }}
    checks:
      - name: Checkout
        id: checkout
        description: Goes down for a minute every five minutes.
        http:
          url: http://{http}/checkout
      - name: Search
        id: search
        description: Slow one minute in three.
        http:
          url: http://{http}/search
          expect:
            degraded_over: 800ms
  - name: Platform
    checks:
      - name: API
        id: api
        description: HTTPS behind a certificate that expires in 10 days.
        tls:
          host: 127.0.0.1
          port: {tls_port}
          server_name: api.demo
          ca_file: {ca}
          expect:
            certificate_valid_for: 7d
      - name: Status API
        id: status-api
        description: HTTPS on the same server, every phase timed.
        http:
          url: https://127.0.0.1:{tls_port}/
          tls:
            ca_file: {ca}
      - name: Database
        id: database
        tcp:
          host: 127.0.0.1
          port: {tcp_port}
      - name: DNS
        id: dns
        dns:
          name: status.demo
          type: A
          server: {dns}
          expect:
            answers_include: [127.0.0.1]
notifications:
  channels:
    - name: demo-webhook
      webhook:
        url: http://{http}/hooks
        secret: "{DEMO_SECRET}"
"#,
        tls_port = tls.port(),
        ca = ca.display(),
        tcp_port = tcp.port(),
    )
}

/// Logs each incident as it opens and resolves, so the newcomer sees it
/// happen in the terminal too.
async fn narrate(db: PathBuf, url: String, stop: CancellationToken) {
    let db_url = format!("sqlite://{}", db.display());
    let Ok(reader) = Reader::connect_lazy(&db_url, 1, Default::default()) else {
        return;
    };
    let mut seen: Vec<(i64, String)> = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.cancelled() => return,
        }
        let Ok(incidents) = reader
            .incidents(IncidentFilter::All, None, None, 20, 0)
            .await
        else {
            continue;
        };
        for i in incidents {
            let state = if i.resolved_at.is_some() {
                "resolved"
            } else {
                "open"
            };
            if seen.iter().any(|s| s.0 == i.id && s.1 == state) {
                continue;
            }
            seen.retain(|s| s.0 != i.id);
            seen.push((i.id, state.to_string()));
            if state == "open" {
                tracing::info!(event = "demo_incident_opened", incident = i.id, title = %i.title, page = %format!("{url}incidents/{}", i.id));
            } else {
                tracing::info!(event = "demo_incident_resolved", incident = i.id, title = %i.title, page = %format!("{url}incidents/{}", i.id));
            }
        }
    }
}

/// `statuspage demo`.
pub(crate) fn main(args: crate::DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    args.ops.start_logging()?;
    let listen = crate::dashboard::address("--listen", &args.listen)?;
    let dir = std::env::temp_dir().join(format!("statuspage-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = crate::ingest::runtime()?.block_on(async {
        let stop_targets = CancellationToken::new();
        let started = Instant::now();
        let http = http_target(started, stop_targets.clone()).await?;
        let (tls, ca) = tls_target(&dir, stop_targets.clone()).await?;
        let tcp = tcp_target(stop_targets.clone()).await?;
        let dns = dns_target(stop_targets.clone()).await?;
        let config = dir.join("demo.yaml");
        std::fs::write(&config, demo_yaml(http, tls, &ca, tcp, dns))?;
        let db = dir.join("demo.db");
        let url = format!("http://{listen}/");
        let shutdown = CancellationToken::new();
        let reload = standalone::signals(shutdown.clone());
        tokio::spawn(narrate(db.clone(), url.clone(), shutdown.clone()));
        tracing::info!(
            event = "demo_started",
            url = %url,
            config = %config.display(),
            "open {url} : Checkout goes down a minute from now, and every 5 minutes"
        );
        println!("statuspage demo: open {url} (Ctrl-C stops it)");
        let outcome = standalone::run(
            Options {
                config: vec![config],
                database_url: format!("sqlite://{}", db.display()).into(),
                database_max_connections: 8,
                database_limits: Default::default(),
                listen,
                site: Site {
                    title: "Demo status".into(),
                    logo_url: None,
                    links: Vec::new(),
                    public_url: url.trim_end_matches('/').to_string(),
                    subscribe: false,
                    collapse_over: ::dashboard::pages::COLLAPSE_OVER,
                },
                tokens: None,
                cache_ttl: Duration::from_secs(5),
                tick: Duration::from_secs(2),
                metrics_listen: args.ops.metrics_listen.clone(),
                notify: ingest::notify::Settings {
                    public_url: url::Url::parse(&url).ok(),
                    ..Default::default()
                },
                trusted_proxy_header: None,
            },
            reload,
            shutdown,
        )
        .await;
        stop_targets.cancel();
        outcome
    });
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_is_down_for_a_minute_every_five_starting_after_one() {
        let at = |s: u64| checkout_down(Duration::from_secs(s));
        assert!(!at(0) && !at(59));
        assert!(at(60) && at(119));
        assert!(!at(120) && !at(359));
        assert!(at(360) && at(419));
        assert!(!at(420));
    }

    #[test]
    fn search_is_slow_one_minute_in_three() {
        let at = |s: u64| search_slow(Duration::from_secs(s));
        assert!(!at(0) && at(60) && at(119) && !at(120) && !at(180) && at(240));
    }
}

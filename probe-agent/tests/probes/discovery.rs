//! Kubernetes peer discovery against a local HTTPS server that answers the
//! EndpointSlice list the way the API server does (the cluster itself cannot
//! run here), and the agent re-sharding when the peers change.

use crate::targets::{Leaf, Pki};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use probe_agent::agent::{self, metrics::AgentMetrics};
use probe_agent::discovery::K8sDiscovery;
use probe_agent::fleet::{Fleet, Peer};
use probe_agent::publish::PublishStats;
use probe_agent::publish::channel::ChannelPublisher;
use probe_agent::scheduler::SchedulerStats;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "service-account-token";

fn slices(nodes: &[(&str, &str)]) -> String {
    let endpoints: Vec<String> = nodes.iter().map(|(n, z)| format!(r#"{{"addresses":["10.0.0.1"],"conditions":{{"ready":true}},"nodeName":"{n}","zone":"{z}"}}"#)).collect();
    format!(
        r#"{{"kind":"EndpointSliceList","items":[{{"endpoints":[{}]}}]}}"#,
        endpoints.join(",")
    )
}

/// An HTTPS server answering EndpointSlice lists for service `agents` in namespace `monitoring`.
async fn api_server(pki: &Pki, body: Arc<Mutex<String>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config(Leaf::Valid, &[b"http/1.1"])));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            let authorized = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                == Some(&format!("Bearer {TOKEN}"));
                            let right = req.uri().path()
                                == "/apis/discovery.k8s.io/v1/namespaces/monitoring/endpointslices"
                                && req.uri().query()
                                    == Some("labelSelector=kubernetes.io%2Fservice-name%3Dagents");
                            let (status, text) = match (authorized, right) {
                                (false, _) => (401, r#"{"kind":"Status","code":401}"#.to_string()),
                                (true, false) => (404, "{}".to_string()),
                                (true, true) => (200, body.lock().unwrap().clone()),
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Agent settings for these tests: no SQS (channel publisher), fast timers.
fn agent_settings(
    config: std::path::PathBuf,
    me: Peer,
    discovery: Option<K8sDiscovery>,
) -> agent::Settings {
    agent::Settings {
        config: vec![config],
        me,
        region: String::new(),
        location_label: String::new(),
        peers: vec![],
        discovery,
        rediscover_every: Duration::from_millis(200),
        concurrency: 8,
        max_message_bytes: 256 * 1024,
        limits: Default::default(),
        watch_every: Duration::from_millis(100),
        drain_deadline: Duration::from_secs(2),
        spool: None,
        check_series_max: probe_agent::agent::metrics::CHECK_SERIES_MAX,
    }
}

/// Starts the agent; returns its metrics, its stop switch and its task.
fn start_agent(
    settings: agent::Settings,
) -> (
    Arc<AgentMetrics>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), agent::AgentError>>,
) {
    let metrics = Arc::new(AgentMetrics::new(
        Arc::new(SchedulerStats::default()),
        Arc::new(PublishStats::default()),
    ));
    let (batches, mut sink) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move { while sink.recv().await.is_some() {} });
    // No SIGHUP in these tests: a closed reload channel just never fires.
    let (_, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let env: agent::Env = Arc::new(|_: &str| None);
    let task = tokio::spawn(agent::run(
        settings,
        env,
        Arc::new(ChannelPublisher::new(batches)),
        metrics.clone(),
        reload_rx,
        shutdown.clone(),
    ));
    (metrics, shutdown, task)
}

/// A checks file of `n` hourly TCP checks (`k-c0`...) with `locations: 1`.
fn one_location_checks(pki: &Pki, n: usize) -> std::path::PathBuf {
    let dir = pki.dir.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let checks: String = (0..n).map(|i| format!("      - name: C{i}\n        interval: 1h\n        locations: 1\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n")).collect();
    let file = dir.join("checks.yaml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: K\n    checks:\n{checks}"),
    )
    .unwrap();
    file
}

fn discovery(pki: &Pki, addr: std::net::SocketAddr, token: &str) -> K8sDiscovery {
    let token_file = pki.dir.join(format!("token-{token}"));
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    K8sDiscovery {
        api: format!("https://localhost:{}", addr.port()),
        token_file,
        ca_file: pki.ca_file.clone(),
        namespace: "monitoring".into(),
        service: "agents".into(),
    }
}

#[tokio::test]
async fn endpoint_slices_are_read_with_the_service_account_token() {
    let pki = Pki::new("k8s-read");
    let body = Arc::new(Mutex::new(slices(&[("node-a", "z1"), ("node-b", "z2")])));
    let addr = api_server(&pki, body).await;
    let peers = discovery(&pki, addr, TOKEN).peers().await.unwrap();
    assert_eq!(
        peers,
        vec![Peer::new("node-a", "z1"), Peer::new("node-b", "z2")]
    );
    let err = discovery(&pki, addr, "wrong").peers().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading EndpointSlices failed: the API server answered 401 Unauthorized"
    );
}

#[tokio::test]
async fn the_agent_reshards_when_peers_join() {
    let pki = Pki::new("k8s-agent");
    let body = Arc::new(Mutex::new(slices(&[("node-a", "z1")])));
    let addr = api_server(&pki, body.clone()).await;
    let checks_file = one_location_checks(&pki, 40);
    let (metrics, shutdown, task) = start_agent(agent_settings(
        checks_file.clone(),
        Peer::new("node-a", "z1"),
        Some(discovery(&pki, addr, TOKEN)),
    ));
    crate::eventually(10, "alone, the agent probes everything", || {
        metrics.assigned.load(Ordering::Relaxed) == 40
    })
    .await;

    let nodes = [
        ("node-a", "z1"),
        ("node-b", "z2"),
        ("node-c", "z3"),
        ("node-d", "z1"),
    ];
    *body.lock().unwrap() = slices(&nodes);
    let fleet = Fleet::new(
        Peer::new("node-a", "z1"),
        nodes.iter().map(|(n, z)| Peer::new(*n, *z)),
    )
    .0;
    let expected = (0..40)
        .filter(|i| {
            fleet.probes(
                "node-a",
                &format!("k-c{i}"),
                config::defaults::Locations::Count(1),
            )
        })
        .count();
    assert!(expected < 40);
    crate::eventually(10, "the agent keeps only its share", || {
        metrics.assigned.load(Ordering::Relaxed) == expected as u64
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// An agent whose discovery cannot answer at start stays not ready and
/// probes nothing (it never takes itself for the whole fleet), and starts
/// with the real peers once the API server answers.
#[tokio::test]
async fn discovery_that_fails_at_start_keeps_the_agent_not_ready_instead_of_alone() {
    let pki = Pki::new("k8s-wait");
    let body = Arc::new(Mutex::new(slices(&[("node-a", "z1"), ("node-b", "z2")])));
    let addr = api_server(&pki, body).await;
    let checks_file = one_location_checks(&pki, 20);
    // A wrong token: the API server refuses until the right one is mounted.
    let d = discovery(&pki, addr, "not-yet");
    let token_file = d.token_file.clone();
    let (metrics, shutdown, task) = start_agent(agent_settings(
        checks_file.clone(),
        Peer::new("node-a", "z1"),
        Some(d),
    ));
    // Through several retries, it is neither ready nor probing anything.
    let watch_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < watch_until {
        assert!(
            !metrics.ready.load(Ordering::Relaxed),
            "not ready while discovery fails"
        );
        assert_eq!(
            metrics.assigned.load(Ordering::Relaxed),
            0,
            "probes nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !metrics.ready.load(Ordering::Relaxed) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ready once discovery answers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fleet = Fleet::new(Peer::new("node-a", "z1"), [Peer::new("node-b", "z2")]).0;
    let expected = (0..20)
        .filter(|i| {
            fleet.probes(
                "node-a",
                &format!("k-c{i}"),
                config::defaults::Locations::Count(1),
            )
        })
        .count();
    assert!(expected < 20, "a fleet of two shares the checks");
    assert_eq!(metrics.assigned.load(Ordering::Relaxed), expected as u64);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_configmap_style_symlink_swap_reloads_the_checks() {
    // A ConfigMap volume: checks.yaml -> ..data/checks.yaml, ..data -> ..v1; an update swaps ..data.
    let root = std::env::temp_dir().join(format!("statuspage-configmap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let write = |version: &str, n: usize| {
        let dir = root.join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let checks: String = (0..n).map(|i| format!("      - name: C{i}\n        interval: 1h\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n")).collect();
        std::fs::write(
            dir.join("checks.yaml"),
            format!("groups:\n  - name: M\n    checks:\n{checks}"),
        )
        .unwrap();
    };
    write("..v1", 3);
    write("..v2", 5);
    std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/checks.yaml", root.join("checks.yaml")).unwrap();

    let (metrics, shutdown, task) =
        start_agent(agent_settings(root.clone(), Peer::new("node-a", ""), None));
    crate::eventually(10, "the first checks run", || {
        metrics.assigned.load(Ordering::Relaxed) == 3
    })
    .await;

    // The kubelet's atomic update: a new ..data link renamed over the old one.
    std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    crate::eventually(10, "the swap was noticed and the new checks run", || {
        metrics.assigned.load(Ordering::Relaxed) == 5
    })
    .await;
    assert!(metrics.config_ok.load(Ordering::Relaxed));
    shutdown.cancel();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(root).unwrap();
}

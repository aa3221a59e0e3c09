//! `statuspage agent`: wires flags, logging, signals, SQS and the metrics port
//! to `probe_agent::agent::run`.

use crate::AgentArgs;
use anyhow::Context;
use probe_agent::agent::{self, Settings, metrics::AgentMetrics};
use probe_agent::buffer::Limits;
use probe_agent::discovery::K8sDiscovery;
use probe_agent::fleet::Peer;
use probe_agent::publish::PublishStats;
use probe_agent::publish::sqs::{Backoff, SqsPublisher};
use probe_agent::scheduler::SchedulerStats;
use probe_agent::spool::Spool;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    args.ops.start_logging()?;
    if args.agent_id.is_empty() || args.agent_id.contains('/') {
        anyhow::bail!(
            "--agent-id must be non-empty and may not contain `/`, found {:?}",
            args.agent_id
        );
    }
    let spool = match &args.spool_dir {
        Some(dir) => Some(
            Spool::open(dir, &args.agent_id, args.spool_max_bytes)
                .with_context(|| format!("opening --spool-dir {}", dir.display()))?,
        ),
        None => None,
    };
    let peers = Peer::parse_list(&args.peers).map_err(|e| anyhow::anyhow!("--peers: {e}"))?;
    let env_read = |name: &str| std::env::var(name).ok();
    let discovery = match &args.peers_k8s_service {
        Some(service) => {
            Some(K8sDiscovery::in_cluster(service, &env_read).context("--peers-k8s-service")?)
        }
        None => None,
    };
    let mut settings = Settings {
        config: args.config.paths.clone(),
        me: Peer::new(args.agent_id.clone(), args.zone.clone()),
        region: args.region.clone(),
        location_label: args.location_label.clone(),
        peers,
        discovery,
        rediscover_every: Duration::from_secs(30),
        concurrency: args.max_concurrency,
        check_series_max: args.check_series_max,
        max_message_bytes: args.queue.max_message_bytes,
        limits: Limits {
            results: args.buffer_max_results,
            bytes: args.buffer_max_bytes,
        },
        watch_every: Duration::from_secs(5),
        drain_deadline: Duration::from_secs(args.drain_seconds),
        spool,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // One attempt per SDK call: the publisher retries with its own backoff, and
        // an outage must reach the buffer or the spool quickly.
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .timeout_config(aws_config::timeout::TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).operation_timeout(Duration::from_secs(15)).build())
            .load()
            .await;
        if settings.me.zone.is_empty() && let Some(discovery) = &settings.discovery {
            settings.me.zone = zone_from_slices(discovery, &settings.me.id).await;
        }
        let publisher = Arc::new(SqsPublisher::new(aws_sdk_sqs::Client::new(&aws), args.queue.queue_url.clone(), args.queue.max_message_bytes, Backoff::default()));
        let exporter = crate::ops::exporter()?;
        let metrics = Arc::new(AgentMetrics::new(Arc::new(SchedulerStats::default()), Arc::new(PublishStats::default())));
        let shutdown = CancellationToken::new();
        let listener = crate::ops::bind(args.ops.metrics_listen()?).await?;
        // Ready means the config is loaded (and, with discovery, the peers are
        // known); never SQS, so the headless Service keeps listing agents
        // through a queue outage.
        let (publish, flag, live) = (metrics.clone(), metrics.clone(), metrics.clone());
        let bound = args.liveness_bound;
        let ops = crate::ops::router(
            exporter.clone(),
            Arc::new(move || publish.publish()),
            crate::ops::ready_when(move || flag.ready.load(std::sync::atomic::Ordering::Relaxed), "ready", "not ready: config or peers not loaded"),
            Arc::new(move || live.liveness(bound)),
        );
        let server = crate::ops::spawn(listener, ops, exporter, shutdown.clone());
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!(event = "signal", signal = "SIGTERM"); stop.cancel(); return; }
                    _ = int.recv() => { tracing::info!(event = "signal", signal = "SIGINT"); stop.cancel(); return; }
                    _ = hup.recv() => { let _ = reload_tx.try_send(()); }
                }
            }
        });
        // `${VAR}` in checks reads the process environment, here at the edge.
        let env: agent::Env = Arc::new(|name: &str| std::env::var(name).ok());
        let outcome = agent::run(settings, env, publisher, metrics, reload_rx, shutdown.clone()).await;
        shutdown.cancel();
        let _ = server.await;
        match outcome {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(agent::AgentError::Config(problems)) => {
                for p in problems.iter() {
                    eprintln!("{p}");
                }
                Ok(ExitCode::from(2))
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// The zone Kubernetes gives this agent's own endpoint (a pod cannot read its
/// node's zone label through the downward API). The Service publishes
/// not-ready addresses, so the endpoint appears as soon as the pod has an IP;
/// it is retried for up to 20 s, then the agent goes on without a zone (its
/// location is then its id) rather than not probing at all.
async fn zone_from_slices(discovery: &K8sDiscovery, id: &str) -> String {
    for attempt in 1..=10 {
        match discovery.peers().await {
            Ok(peers) => {
                if let Some(zone) = probe_agent::discovery::own_zone(&peers, id) {
                    tracing::info!(event = "zone_discovered", zone = %zone, "--zone taken from this agent's EndpointSlice entry");
                    return zone;
                }
            }
            Err(e) => tracing::warn!(event = "zone_discovery_failed", attempt, error = %e),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tracing::warn!(
        event = "zone_unknown",
        "no zone for this agent in the EndpointSlices; set --zone"
    );
    String::new()
}

//! The ops port of every role (`--metrics-listen`, never behind the CDN):
//! `/metrics`, `/healthz` and `/readyz`, one axum router for the agent,
//! ingest, the dashboard and standalone. Each role gives what publishes its
//! gauges and its own readiness; axum does the serving (no accept loop of
//! ours) and `metrics-exporter-prometheus` the rendering.
//!
//! The process has one recorder, installed here before any role makes its
//! instruments. Counters and histograms are recorded where things happen;
//! gauges describe the present and are set by the role's publish just before
//! each scrape, so a gauge nobody publishes any more (a retired check, a
//! pruned agent, a replica that lost the lead) is gone from the next scrape:
//! the exporter drops gauges left untouched since the scrape before.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Sets a role's gauges from its present state (with the process's recorder).
pub(crate) type Publish = Arc<dyn Fn() + Send + Sync>;

/// The process's exporter, once installed.
static EXPORTER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's one recorder (the first call; later calls return
/// the same handle): every role's histogram buckets, and every family's
/// help text. Call it before any role makes its instruments.
pub(crate) fn exporter() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = EXPORTER.get() {
        return Ok(handle.clone());
    }
    let mut builder = PrometheusBuilder::new()
        // Gauges not set since the last scrape are dropped (see the module doc).
        .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_millis(1)));
    for (name, buckets) in probe_agent::telemetry::HISTOGRAMS
        .iter()
        .chain(ingest::metrics::HISTOGRAMS)
    {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).into()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    probe_agent::telemetry::describe();
    ingest::metrics::describe();
    dashboard::metrics::describe();
    Ok(EXPORTER.get_or_init(|| handle).clone())
}

/// A role's readiness: `Ok(why)` ready, `Err(why)` not, each a line of text.
pub(crate) type Ready = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<&'static str, &'static str>> + Send>>
        + Send
        + Sync,
>;

/// Readiness from a flag the role keeps up to date.
pub(crate) fn ready_when(
    flag: impl Fn() -> bool + Send + Sync + 'static,
    ready: &'static str,
    not_ready: &'static str,
) -> Ready {
    let flag = Arc::new(flag);
    Arc::new(move || {
        let ok = flag();
        Box::pin(async move { if ok { Ok(ready) } else { Err(not_ready) } })
    })
}

/// A role's liveness: `Err(why)` when the process should be restarted.
pub(crate) type Live = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Liveness of a role that has no way to wedge: it answers, so it lives.
pub(crate) fn always_live() -> Live {
    Arc::new(|| Ok(()))
}

/// `/metrics`, `/healthz` (the role's liveness) and `/readyz`.
pub(crate) fn router(
    handle: PrometheusHandle,
    publish: Publish,
    ready: Ready,
    live: Live,
) -> Router {
    // One scrape at a time: publishing and rendering are one step, so a
    // concurrent scrape never sees another's gauges as untouched.
    let scraping = Arc::new(Mutex::new(()));
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = {
                    let _one = scraping.lock().unwrap_or_else(|p| p.into_inner());
                    publish();
                    handle.render()
                };
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let outcome = live();
                async move {
                    match outcome {
                        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let check = ready();
                async move {
                    match check.await {
                        Ok(why) => (StatusCode::OK, format!("{why}\n")),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
}

/// Binds `--metrics-listen` (`addr`), logging where.
pub(crate) async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on --metrics-listen {addr}"))?;
    tracing::info!(event = "metrics_listening", address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    Ok(listener)
}

/// Serves `router` on `listener` until `shutdown`, and keeps the exporter's
/// histograms drained between scrapes.
pub(crate) fn spawn(
    listener: TcpListener,
    router: Router,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let upkeep_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = every.tick() => handle.run_upkeep(),
                _ = upkeep_stop.cancelled() => return,
            }
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(event = "metrics_server_failed", error = %e);
        }
    })
}

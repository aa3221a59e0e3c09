//! The ops port of every role (`--metrics-listen`, never behind the CDN):
//! `/metrics`, `/healthz` and `/readyz`, one axum router for the agent,
//! ingest, the dashboard and standalone. Each role gives its metrics text and
//! its own readiness; axum does the serving (no accept loop of ours).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A role's metrics, rendered as Prometheus text.
pub(crate) type Render = Arc<dyn Fn() -> String + Send + Sync>;

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

/// `/metrics`, `/healthz` (the process answers) and `/readyz`.
pub(crate) fn router(render: Render, ready: Ready) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
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

/// Serves `router` on `listener` until `shutdown`.
pub(crate) fn spawn(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(event = "metrics_server_failed", error = %e);
        }
    })
}

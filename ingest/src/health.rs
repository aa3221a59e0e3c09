//! `/metrics`, `/healthz` and `/readyz` on `--metrics-listen`. Ready means
//! the database answers (and is migrated); the SQS queue never affects it.

use crate::metrics::IngestMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<IngestMetrics>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            _ = shutdown.cancelled() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(req.uri().path(), &metrics)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(path: &str, metrics: &IngestMetrics) -> Response<Full<Bytes>> {
    let ready = metrics.db_ready.load(Ordering::Relaxed);
    let (status, body, kind) = match path {
        "/metrics" => (
            StatusCode::OK,
            metrics.render(),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => (StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" if ready => (StatusCode::OK, "ready\n".into(), "text/plain"),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database not ready\n".into(),
            "text/plain",
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    };
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

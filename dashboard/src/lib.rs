//! The dashboard: the public status page, the v1 JSON API, and the cache
//! that lets them survive a spike (DESIGN §4.4, §7, §8).
//!
//! [`app`] builds the public router over an [`AppState`]; [`run`] serves it
//! and the metrics port, and follows status and incident changes to empty
//! the cache at once.

pub mod admin;
pub mod api;
mod app;
pub mod badge;
pub mod cache;
mod embed;
pub mod feed;
pub mod load;
pub mod metrics;
pub mod model;
pub mod pages;
pub mod read;
mod routes;
pub mod subscribe;
pub mod summary;
pub mod view;

use cache::Cache;
use ingest::state::Millis;
use metrics::DashboardMetrics;
use pages::Site;
use read::Reader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use app::app;
pub use routes::readiness;

/// The wall clock, in ms since the epoch (injected so tests can pin it).
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// The real wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The read-only store.
    pub reader: Reader,
    /// The page's branding.
    pub site: Arc<Site>,
    /// The cache of rendered answers.
    pub cache: Arc<Cache>,
    /// The metrics.
    pub metrics: Arc<DashboardMetrics>,
    /// The wall clock.
    pub clock: Clock,
    /// The admin API, when tokens are configured.
    pub admin: Option<Arc<admin::Admin>>,
    /// Public email subscriptions, when the config enables them.
    pub subscriptions: Option<Arc<subscribe::Subscriptions>>,
    /// How long an admin request may wait on the database
    /// (`--database-deadline`; see [`AppState::with_deadline`]).
    pub deadline: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("reader", &self.reader)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// This state with the database deadline (`--database-deadline`): of
    /// each admin request, and of each public read when shorter than the
    /// cache's render deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> AppState {
        self.deadline = deadline;
        self.cache = Arc::new(Cache::new(self.cache.ttl()).with_deadline(deadline));
        self
    }

    /// A state with a fresh cache of `ttl`.
    pub fn new(reader: Reader, site: Site, ttl: Duration, clock: Clock) -> AppState {
        AppState {
            reader,
            site: Arc::new(site),
            cache: Arc::new(Cache::new(ttl)),
            metrics: Arc::new(DashboardMetrics::default()),
            clock,
            admin: None,
            subscriptions: None,
            deadline: ingest::store::sql::Limits::default().deadline,
        }
    }
}

/// Where status and incident changes come from, to empty the cache.
#[derive(Debug)]
pub enum Changes {
    /// PostgreSQL `LISTEN statuspage_changes` (distributed mode).
    Listen(sqlx::PgPool),
    /// The in-process signal of standalone mode.
    Signal(broadcast::Receiver<Vec<String>>),
    /// Nothing: the TTL alone bounds staleness.
    None,
}

/// Everything `run` needs besides the state.
#[derive(Debug)]
pub struct Settings {
    /// The public port.
    pub listen: SocketAddr,
    /// More routes on the public port (standalone puts `/healthz` there).
    /// The ops port is the binary's (`/metrics`, `/healthz`, `/readyz`).
    pub extra: Option<axum::Router>,
}

/// Errors that stop the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Serves the public app until `shutdown`, emptying
/// the cache on every change `changes` reports.
pub async fn run(
    settings: Settings,
    state: AppState,
    changes: Changes,
    shutdown: CancellationToken,
) -> Result<(), DashboardError> {
    let public = bind(settings.listen).await?;
    tracing::info!(event = "listening", addr = %public.local_addr().map_err(DashboardError::Serve)?, "public page");
    let follower = tokio::spawn(follow(
        changes,
        state.cache.clone(),
        state.metrics.clone(),
        shutdown.clone(),
    ));
    let router = match settings.extra {
        Some(extra) => app(state).merge(extra),
        None => app(state),
    };
    let served = axum::serve(
        public,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await
    .map_err(DashboardError::Serve);
    shutdown.cancel();
    let _ = follower.await;
    served
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, DashboardError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DashboardError::Bind { addr, source })
}

/// Empties the cache on every change until `shutdown`. A lost `LISTEN`
/// connection is reopened with backoff, and the cache emptied once it is
/// back (a change may have been missed meanwhile).
pub async fn follow(
    changes: Changes,
    cache: Arc<Cache>,
    metrics: Arc<DashboardMetrics>,
    shutdown: CancellationToken,
) {
    let bump = || {
        cache.invalidate();
        metrics.invalidated();
    };
    match changes {
        Changes::None => shutdown.cancelled().await,
        Changes::Signal(mut rx) => loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => bump(),
                    Err(broadcast::error::RecvError::Closed) => return shutdown.cancelled().await,
                },
                _ = shutdown.cancelled() => return,
            }
        },
        Changes::Listen(pool) => {
            let mut pause = Duration::from_millis(200);
            loop {
                let listened = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen("statuspage_changes").await?;
                    Ok::<_, sqlx::Error>(l)
                };
                let mut listener = tokio::select! {
                    l = listened => match l {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(event = "listen_failed", error = %e, retry_in_ms = pause.as_millis() as u64);
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = shutdown.cancelled() => return,
                            }
                            pause = (pause * 2).min(Duration::from_secs(10));
                            continue;
                        }
                    },
                    _ = shutdown.cancelled() => return,
                };
                pause = Duration::from_millis(200);
                bump();
                loop {
                    tokio::select! {
                        got = listener.try_recv() => match got {
                            Ok(Some(_)) => bump(),
                            // The connection was lost: sqlx reconnects on the
                            // next call, and a change may have been missed.
                            Ok(None) => bump(),
                            Err(e) => {
                                tracing::warn!(event = "listen_failed", error = %e);
                                break;
                            }
                        },
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

//! `statuspage standalone`: the agent (one location, `local`), ingest over
//! an in-process channel, and the dashboard, in one process on one port,
//! on SQLite by default. `statuspage demo` runs the same thing (see
//! `demo.rs`).
//!
//! Shutdown goes in order: the agent stops probing and flushes into the
//! channel, ingest stores what it was handed (closing the channel ends it),
//! then the dashboard stops. Incident state never changes on the way down.

use anyhow::Context;
use dashboard::admin::Admin;
use dashboard::admin::auth::Tokens;
use dashboard::admin::write::Writer;
use dashboard::pages::Site;
use dashboard::read::Reader;
use dashboard::{AppState, Changes};
use ingest::metrics::IngestMetrics;
use ingest::store::Store;
use probe_agent::agent::{self, metrics::AgentMetrics};
use probe_agent::buffer::Limits;
use probe_agent::fleet::Peer;
use probe_agent::publish::PublishStats;
use probe_agent::publish::channel::ChannelPublisher;
use probe_agent::scheduler::SchedulerStats;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long ingest may take, after the agent stopped, to store what it was
/// handed.
const DRAIN: Duration = Duration::from_secs(10);

/// Everything one process needs.
#[derive(Debug)]
pub(crate) struct Options {
    /// The YAML (files or directories).
    pub config: Vec<PathBuf>,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: ingest::store::DatabaseUrl,
    /// The most database connections.
    pub database_max_connections: u32,
    /// The database deadlines.
    pub database_limits: ingest::store::sql::Limits,
    /// The one HTTP port.
    pub listen: SocketAddr,
    /// The page's branding.
    pub site: Site,
    /// Admin tokens, if any.
    pub tokens: Option<Tokens>,
    /// The page cache's TTL.
    pub cache_ttl: Duration,
    /// How often ingest decides silence and maintenance.
    pub tick: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; none without it.
    pub metrics_listen: Option<String>,
    /// The notification workers.
    pub notify: ingest::notify::Settings,
    /// Where the client IP comes from behind a proxy.
    pub trusted_proxy_header: Option<axum::http::HeaderName>,
}

/// The ops router (`--metrics-listen`): the three roles' metrics in one
/// exposition, and ready while the database answers.
fn ops_router(
    exporter: metrics_exporter_prometheus::PrometheusHandle,
    agent: Arc<AgentMetrics>,
    ingest: Arc<IngestMetrics>,
    cache: Arc<dashboard::cache::Cache>,
    store: Store,
) -> axum::Router {
    crate::ops::router(
        exporter,
        Arc::new(move || {
            agent.publish();
            ingest.publish();
            dashboard::metrics::publish(&cache);
        }),
        Arc::new(move || {
            let store = store.clone();
            Box::pin(async move {
                match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
                    Ok(Ok(())) => Ok("ready"),
                    _ => Err("database unreachable"),
                }
            })
        }),
        // One process on a local file: nothing to wedge that a restart mends.
        crate::ops::always_live(),
    )
}

/// Runs everything until `shutdown`; `reload` makes the agent reread the
/// YAML at once (ingest rereads it when it changes).
pub(crate) async fn run(
    o: Options,
    reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The config first: a bad one stops us before the database is touched.
    let env: agent::Env = Arc::new(|name: &str| std::env::var(name).ok());
    let mut kept = config::Kept::default();
    let sections = config::Sections::All;
    let catalog =
        config::load_reusing(&o.config, &*env, sections, &mut kept).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("the config has problems:\n{}", lines.join("\n"))
        })?;
    let catalog_subscriptions = catalog.subscriptions.clone();
    let store = Store::connect_lazy(
        o.database_url.expose(),
        o.database_max_connections,
        o.database_limits,
    )
    .context("--database-url")?;
    store
        .migrate()
        .await
        .context("creating or migrating the database")?;

    // The agent feeds ingest through a channel.
    let (tx, rx) = mpsc::channel(64);
    // The recorder only when metrics are served: without one, recording costs nothing.
    let exporter = match &o.metrics_listen {
        Some(_) => Some(crate::ops::exporter()?),
        None => None,
    };
    let agent_metrics = Arc::new(AgentMetrics::new(
        Arc::new(SchedulerStats::default()),
        Arc::new(PublishStats::default()),
    ));
    let agent_stop = CancellationToken::new();
    let agent_task = tokio::spawn(agent::run(
        agent::Settings {
            config: o.config.clone(),
            me: Peer::new("local", "local"),
            region: String::new(),
            location_label: String::new(),
            peers: Vec::new(),
            discovery: None,
            rediscover_every: Duration::from_secs(30),
            concurrency: 64,
            max_message_bytes: config::wire::DEFAULT_MAX_MESSAGE_BYTES,
            limits: Limits::default(),
            watch_every: Duration::from_secs(2),
            drain_deadline: Duration::from_secs(5),
            spool: None,
            check_series_max: probe_agent::agent::metrics::CHECK_SERIES_MAX,
        },
        env.clone(),
        Arc::new(ChannelPublisher::new(tx)),
        agent_metrics.clone(),
        reload,
        agent_stop.clone(),
    ));

    let ingest_metrics = Arc::new(IngestMetrics::new());
    let ingest_stop = CancellationToken::new();
    let clock: ingest::consume::Clock = Arc::new(|| chrono::Utc::now().timestamp_millis());
    let mut ingest_task = tokio::spawn(ingest::run(
        ingest::Settings {
            source: ingest::Source::Channel(rx),
            max_message_bytes: config::wire::DEFAULT_MAX_MESSAGE_BYTES,
            raw_retention: Duration::from_secs(7 * 86_400),
            leader: ingest::leader::Settings {
                config: o.config.clone(),
                env: env.clone(),
                tick_every: o.tick,
                retire_after: Duration::from_secs(600),
                dead_letter_queue: None,
                raw_retention: Duration::ZERO,
                lease: ingest::store::LEASE,
                prune_after: std::time::Duration::from_secs(7 * 86_400),
            },
            catalog: Some(catalog),
            kept,
            notify: Some(o.notify.clone()),
        },
        store.clone(),
        ingest_metrics.clone(),
        clock,
        ingest_stop.clone(),
    ));

    let subscriptions = catalog_subscriptions.map(|config| {
        let writer = match &store {
            Store::Pg(s) => Writer::Pg(s.pool().clone()),
            Store::Sqlite(s) => Writer::Sqlite(s.pool().clone()),
        };
        let woken = store.clone();
        Arc::new(dashboard::subscribe::Subscriptions::new(
            config,
            writer,
            o.trusted_proxy_header.clone(),
            Some(Arc::new(move || woken.wake_notifications())),
        ))
    });
    let (reader, writer) = match &store {
        Store::Pg(s) => (Reader::Pg(s.pool().clone()), Writer::Pg(s.pool().clone())),
        Store::Sqlite(s) => (
            Reader::Sqlite(s.pool().clone()),
            Writer::Sqlite(s.pool().clone()),
        ),
    };
    let mut site = o.site;
    site.subscribe = subscriptions.is_some();
    let mut state = AppState::new(reader, site, o.cache_ttl, dashboard::system_clock())
        .with_deadline(o.database_limits.deadline);
    state.admin = o.tokens.map(|tokens| Arc::new(Admin { tokens, writer }));
    state.subscriptions = subscriptions;
    // Stopped when `run` returns, however it returns.
    let ops_stop = CancellationToken::new();
    let _ops_guard = ops_stop.clone().drop_guard();
    if let (Some(addr), Some(exporter)) = (&o.metrics_listen, exporter) {
        let router = ops_router(
            exporter.clone(),
            agent_metrics,
            ingest_metrics,
            state.cache.clone(),
            store.clone(),
        );
        crate::ops::spawn(
            crate::ops::bind(addr).await?,
            router,
            exporter,
            ops_stop.clone(),
        );
    }
    // The public port answers `/healthz` only: metrics never go behind a CDN.
    let health = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    let dash_stop = CancellationToken::new();
    let mut dash_task = tokio::spawn(dashboard::run(
        dashboard::Settings {
            listen: o.listen,
            extra: Some(health),
        },
        state,
        Changes::Signal(store.subscribe()),
        dash_stop.clone(),
    ));

    let early = tokio::select! {
        _ = shutdown.cancelled() => None,
        d = &mut dash_task => Some(d.context("the dashboard task")?.context("the dashboard")),
        i = &mut ingest_task => Some(i.context("the ingest task")?.context("ingest").and_then(|()| Err(anyhow::anyhow!("ingest stopped")))),
    };
    tracing::info!(event = "stopping");
    agent_stop.cancel();
    let agent_outcome = agent_task.await.context("the agent task")?;
    // The agent's channel is closed now: ingest ends when it has stored
    // everything, or is stopped after the drain time.
    if early.is_none() {
        match tokio::time::timeout(DRAIN, &mut ingest_task).await {
            Ok(done) => {
                done.context("the ingest task")?.context("ingest")?;
            }
            Err(_) => {
                tracing::warn!(event = "ingest_drain_timeout", seconds = DRAIN.as_secs());
                ingest_stop.cancel();
                let _ = ingest_task.await;
            }
        }
        dash_stop.cancel();
        dash_task
            .await
            .context("the dashboard task")?
            .context("the dashboard")?;
    } else {
        ingest_stop.cancel();
        dash_stop.cancel();
    }
    match agent_outcome {
        Err(agent::AgentError::Config(problems)) => {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::bail!("the config has problems:\n{}", lines.join("\n"))
        }
        Err(e) => return Err(e).context("the agent"),
        Ok(()) => {}
    }
    if let Some(outcome) = early {
        outcome?;
    }
    tracing::info!(event = "stopped");
    Ok(())
}

/// `statuspage standalone`.
pub(crate) fn main(args: crate::StandaloneArgs) -> anyhow::Result<std::process::ExitCode> {
    args.ops.start_logging()?;
    let listen = crate::dashboard::address("--listen", &args.listen)?;
    let public_url = crate::dashboard::public_url(
        args.public_url
            .as_deref()
            .unwrap_or(&format!("http://{listen}")),
    )?;
    let tokens = crate::dashboard::admin_tokens(args.admin_token_file.as_deref())?;
    let notify = args.notify.settings(Some(&public_url), &args.title)?;
    let options = Options {
        config: args.config.paths.clone(),
        database_url: args.database.url()?.clone(),
        database_max_connections: args.database.database_max_connections,
        database_limits: args.database.limits(),
        listen,
        site: Site {
            title: args.title.clone(),
            logo_url: None,
            links: Vec::new(),
            public_url,
            subscribe: false,
            collapse_over: args.collapse_groups_over,
        },
        tokens,
        cache_ttl: args.cache_ttl,
        tick: Duration::from_secs(2),
        metrics_listen: args.ops.metrics_listen.clone(),
        notify,
        trusted_proxy_header: args.proxy.header()?,
    };
    crate::ingest::runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        let reload = signals(shutdown.clone());
        tracing::info!(event = "standalone_started", url = %format!("http://{listen}/"));
        run(options, reload, shutdown).await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// SIGTERM and SIGINT stop; SIGHUP makes the agent reread the YAML.
pub(crate) fn signals(shutdown: CancellationToken) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!(event = "signal", signal = "SIGTERM"); shutdown.cancel(); return; }
                _ = int.recv() => { tracing::info!(event = "signal", signal = "SIGINT"); shutdown.cancel(); return; }
                _ = hup.recv() => { let _ = tx.try_send(()); }
            }
        }
    });
    rx
}

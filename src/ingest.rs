//! `statuspage ingest` and `statuspage migrate`: flags, logging, signals, SQS
//! and the metrics port, wired to `ingest::run`.

use crate::{IngestArgs, MigrateArgs};
use anyhow::Context;
use ingest::consume::Clock;
use ingest::metrics::IngestMetrics;
use ingest::store::Store;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    args.ops.start_logging()?;
    let tick = Duration::from_secs(args.tick_seconds.max(1));
    if args.leader_lease <= 2 * tick {
        eprintln!(
            "error: --leader-lease ({:?}) must be more than twice --tick-seconds ({tick:?}): the leader renews it every tick",
            args.leader_lease
        );
        return Ok(ExitCode::from(2));
    }
    let notify = args
        .notify
        .settings(args.public_url.as_deref(), &args.title)?;
    let mut kept = config::Kept::default();
    let catalog = if args.config.paths.is_empty() {
        None
    } else {
        match crate::load_catalog_keeping(&args.config.paths, config::Sections::All, &mut kept) {
            Some(c) => Some(c),
            None => return Ok(ExitCode::from(2)),
        }
    };
    if catalog.as_ref().is_some_and(|c| c.subscriptions.is_some()) && args.public_url.is_none() {
        eprintln!(
            "error: `subscriptions` needs --public-url (STATUSPAGE_PUBLIC_URL): the links in subscriber mail are built from it"
        );
        return Ok(ExitCode::from(2));
    }
    runtime()?.block_on(async move {
        let store = Store::connect_lazy(
            args.database.url()?.expose(),
            args.database.database_max_connections,
            args.database.limits(),
        )
        .context("--database-url")?;
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let exporter = crate::ops::exporter()?;
        let metrics = Arc::new(IngestMetrics::new());
        let shutdown = CancellationToken::new();
        let listener = crate::ops::bind(args.ops.metrics_listen()?).await?;
        // Ready means the database answers (and is migrated); the SQS queue
        // never affects it.
        let (publish, flag, live) = (metrics.clone(), metrics.clone(), metrics.clone());
        let bound = args.liveness_bound;
        let ops = crate::ops::router(
            exporter.clone(),
            Arc::new(move || publish.publish()),
            crate::ops::ready_when(
                move || flag.db_ready.load(std::sync::atomic::Ordering::Relaxed),
                "ready",
                "database not ready",
            ),
            // Live while the database answers the consumer or the leader:
            // a replica wedged on a hung database is restarted (it keeps no
            // state), however long the outage.
            Arc::new(move || {
                let silent = live.db_silent_for();
                if silent > bound {
                    Err(format!(
                        "no database round trip has succeeded for {}s",
                        silent.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }),
        );
        let server = crate::ops::spawn(listener, ops, exporter, shutdown.clone());
        stop_on_signal(shutdown.clone());
        let clock: Clock = Arc::new(|| chrono::Utc::now().timestamp_millis());
        let settings = ingest::Settings {
            source: ingest::Source::Sqs(
                sqs.clone(),
                ingest::consume::sqs::Settings {
                    queue_url: args.queue.queue_url.clone(),
                    workers: args.workers,
                    wait_seconds: args.wait_seconds,
                    visibility_timeout: Duration::from_secs(args.visibility_timeout_seconds),
                    visibility_cap: args.visibility_cap,
                },
            ),
            max_message_bytes: args.queue.max_message_bytes,
            raw_retention: args.raw_retention,
            leader: ingest::leader::Settings {
                config: args.config.paths.clone(),
                // `${VAR}` in checks reads the process environment, here at the edge.
                env: Arc::new(|name: &str| std::env::var(name).ok()),
                tick_every: Duration::from_secs(args.tick_seconds.max(1)),
                retire_after: Duration::from_secs(args.retire_after_seconds),
                dead_letter_queue: args.dead_letter_queue_url.clone().map(|u| (sqs, u)),
                raw_retention: Duration::ZERO,
                lease: args.leader_lease,
                prune_after: args.prune_after,
            },
            catalog,
            kept,
            notify: Some(notify),
        };
        let outcome = ingest::run(settings, store, metrics, clock, shutdown.clone()).await;
        shutdown.cancel();
        let _ = server.await;
        outcome.context("ingest stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = Store::connect_lazy(args.database.url()?.expose(), 2, args.database.limits())
            .context("--database-url")?;
        if args.check {
            return match store.migrated().await {
                Ok(true) => {
                    println!("ok: the database is reachable and fully migrated");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(false) => {
                    println!(
                        "the database is reachable but not fully migrated: run `statuspage migrate`"
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    println!("the database is not reachable: {e}");
                    Ok(ExitCode::FAILURE)
                }
            };
        }
        store.migrate().await.context("applying the migrations")?;
        println!(
            "ok: {} migration{} applied",
            store.migrations(),
            crate::plural(store.migrations())
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// SIGTERM or SIGINT starts a graceful shutdown.
pub(crate) fn stop_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(event = "signal", signal = name);
        shutdown.cancel();
    });
}

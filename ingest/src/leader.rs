//! Leader-only periodic work, under a PostgreSQL advisory lock held on a
//! connection of its own: partitions, catalog sync (hot reload of the YAML),
//! the silence and maintenance tick, the DLQ depth and the per-check export.
//! Losing the connection loses the lock; another replica takes over.

use crate::consume::Clock;
use crate::metrics::{IngestMetrics, Snapshot};
use crate::store::{Store, StoreError};
use config::Catalog;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reads `${VAR}` values for the YAML.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How the leader works.
#[derive(Clone)]
pub struct Settings {
    /// The YAML, reloaded when it changes; empty for none.
    pub config: Vec<PathBuf>,
    /// Reads `${VAR}` for the YAML.
    pub env: Env,
    /// How often the tick runs.
    pub tick_every: Duration,
    /// A check absent from the YAML and silent this long is retired.
    pub retire_after: Duration,
    /// The dead-letter queue whose depth is exported.
    pub dead_letter_queue: Option<(aws_sdk_sqs::Client, String)>,
    /// How long raw results are kept (set by [`crate::run`] from its settings).
    pub raw_retention: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("tick_every", &self.tick_every)
            .field("retire_after", &self.retire_after)
            .finish_non_exhaustive()
    }
}

/// Competes for the lock and, while holding it, does the periodic work.
pub async fn run(
    store: Store,
    settings: Settings,
    catalog: Option<Catalog>,
    metrics: Arc<IngestMetrics>,
    clock: Clock,
    shutdown: CancellationToken,
) {
    let mut lock: Option<PgConnection> = None;
    let mut catalog = catalog;
    let mut fingerprint = config::fingerprint(&settings.config);
    let mut synced: Option<tokio::time::Instant> = None;
    let mut every = tokio::time::interval(settings.tick_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        if !settings.config.is_empty() {
            let now = config::fingerprint(&settings.config);
            if now != fingerprint {
                fingerprint = now;
                match config::load(&settings.config, &*settings.env) {
                    Ok(c) => {
                        tracing::info!(event = "config_reloaded", checks = c.checks.len());
                        catalog = Some(c);
                        synced = None;
                    }
                    Err(problems) => {
                        let problems: Vec<String> =
                            problems.iter().map(ToString::to_string).collect();
                        tracing::error!(event = "config_reload_failed", problems = ?problems, "keeping the last good config");
                    }
                }
            }
        }
        if !store.hold_lead(&mut lock).await {
            if metrics.leader.swap(false, Ordering::Relaxed) {
                tracing::warn!(event = "leadership_lost");
            }
            metrics.set_snapshot(None);
            continue;
        }
        if !metrics.leader.swap(true, Ordering::Relaxed) {
            tracing::info!(event = "leadership_acquired");
            synced = None;
        }
        match work(
            &store,
            &settings,
            catalog.as_ref(),
            &mut synced,
            &metrics,
            &clock,
        )
        .await
        {
            Ok(()) => {}
            Err(e) => tracing::warn!(event = "leader_work_failed", error = %e),
        }
    }
    if let Some(conn) = lock {
        // Closing the connection releases the lock; incidents are left as they are.
        let _ = conn.close().await;
    }
    metrics.leader.store(false, Ordering::Relaxed);
}

async fn work(
    store: &Store,
    settings: &Settings,
    catalog: Option<&Catalog>,
    synced: &mut Option<tokio::time::Instant>,
    metrics: &IngestMetrics,
    clock: &Clock,
) -> Result<(), StoreError> {
    let now = clock();
    // At once after taking the lead or a config change, then every minute:
    // partitions are made ahead, absent checks are retired by time, and
    // config windows roll forward.
    if synced.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        let keep = settings.raw_retention.as_millis() as i64;
        store.ensure_partitions_back(now, keep).await?;
        store.fold_rollups().await?;
        let dropped = store.retain(now, keep).await?;
        if !dropped.partitions.is_empty() || dropped.rollups > 0 {
            tracing::info!(event = "retention", partitions = ?dropped.partitions, rollups = dropped.rollups);
        }
        if let Some(catalog) = catalog {
            let retired = store
                .sync_catalog(catalog, now, settings.retire_after)
                .await?;
            if synced.is_none() || !retired.is_empty() {
                tracing::info!(event = "catalog_synced", checks = catalog.checks.len(), retired = ?retired);
            }
        }
        *synced = Some(tokio::time::Instant::now());
    }
    let lag = metrics.lag_ms.load(Ordering::Relaxed);
    let report = store.tick(clock(), Some(lag)).await?;
    if report.lagging > 0 {
        tracing::info!(
            event = "silence_deferred",
            checks = report.lagging,
            lag_ms = lag
        );
    }
    if let Some((sqs, url)) = &settings.dead_letter_queue
        && let Some(depth) = crate::consume::sqs::queue_depth(sqs, url).await
    {
        metrics.dead_letter.store(depth, Ordering::Relaxed);
    }
    let snapshot = Snapshot {
        checks: store.check_statuses().await?,
        agents: exported_agents(
            store.agents_seen().await?,
            settings.retire_after.as_millis() as i64,
        ),
        incidents_open: store.open_incidents().await?,
    };
    metrics.set_snapshot(Some(snapshot));
    Ok(())
}

/// The agents the export shows, with their last word in unix seconds: one
/// silent for `retire_after_ms` while another was heard since is pruned (a
/// node scaled away); the one heard last never is, so a fleet gone silent
/// stays in the export and `ProbeAgentsSilent` keeps firing.
fn exported_agents(
    agents: Vec<(String, String, crate::state::Millis)>,
    retire_after_ms: i64,
) -> Vec<(String, String, f64)> {
    let newest = agents.iter().map(|a| a.2).max().unwrap_or(0);
    agents
        .into_iter()
        .filter(|a| newest - a.2 <= retire_after_ms)
        .map(|(a, z, t)| (a, z, t as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::exported_agents;

    #[test]
    fn an_agent_silent_while_others_report_is_pruned_but_never_the_last_heard() {
        let agents = |seen: &[(&str, i64)]| -> Vec<(String, String, i64)> {
            seen.iter()
                .map(|(a, t)| (a.to_string(), "z".to_string(), *t))
                .collect()
        };
        let names =
            |v: Vec<(String, String, f64)>| -> Vec<String> { v.into_iter().map(|a| a.0).collect() };
        assert_eq!(
            names(exported_agents(
                agents(&[("gone", 1_000), ("here", 700_000)]),
                600_000
            )),
            ["here"]
        );
        assert_eq!(
            names(exported_agents(
                agents(&[("a", 1_000), ("b", 601_000)]),
                600_000
            )),
            ["a", "b"],
            "exactly retire_after apart: kept"
        );
        assert_eq!(
            names(exported_agents(agents(&[("only", 1_000)]), 600_000)),
            ["only"],
            "the fleet's last word stays, however old"
        );
        assert!(exported_agents(Vec::new(), 600_000).is_empty());
    }
}

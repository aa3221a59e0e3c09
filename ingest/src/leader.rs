//! Leader-only periodic work, under the leader's lease (`store/lease.rs`):
//! partitions, catalog sync (hot reload of the YAML), the silence and
//! maintenance tick, the DLQ depth and the per-check export. A leader that
//! cannot renew stops at once; another replica takes over when the lease
//! expires, or at its next tick when the leader shuts down.

use crate::consume::Clock;
use crate::metrics::{IngestMetrics, Snapshot};
use crate::store::{FOLD_BUDGET, Store, StoreError};
use config::Catalog;
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
    /// How long a lease lasts: another replica takes over this long after
    /// the leader's last renewal. Renewed every tick, so longer than it.
    pub lease: Duration,
    /// Agents unseen this long (and never less than the raw retention, so
    /// every stored result keeps its agent) are deleted with their pairs.
    pub prune_after: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("tick_every", &self.tick_every)
            .field("retire_after", &self.retire_after)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Competes for the lead and, while holding it, does the periodic work.
/// Every replica reloads the YAML, and publishes each good reload to
/// `published` (the notification workers read it).
/// Every step runs within the database deadline and only while the lease
/// is surely still ours; a failed renewal ends the lead at once.
pub async fn run(
    store: Store,
    settings: Settings,
    loaded: (Option<Catalog>, config::Kept),
    metrics: Arc<IngestMetrics>,
    clock: Clock,
    published: tokio::sync::watch::Sender<Option<Arc<Catalog>>>,
    shutdown: CancellationToken,
) {
    let holder = holder_id();
    let fenced = store.fenced(&holder);
    // The catalog loaded at start, and what its files gave: the next load
    // parses only those that changed.
    let (mut catalog, mut kept) = loaded;
    let mut fingerprint = config::fingerprint(&settings.config);
    if !settings.config.is_empty() {
        metrics.config_loaded(catalog.is_some());
    }
    let mut synced: Option<tokio::time::Instant> = None;
    // Until when this replica may act as leader.
    let mut lead_until: Option<tokio::time::Instant> = None;
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
                match reload(&settings, &mut kept).await {
                    Ok(c) => {
                        metrics.config_loaded(true);
                        tracing::info!(event = "config_reloaded", checks = c.checks.len());
                        published.send_replace(Some(Arc::new(c.clone())));
                        catalog = Some(c);
                        synced = None;
                    }
                    Err(problems) => {
                        metrics.config_loaded(false);
                        let problems: Vec<String> =
                            problems.iter().map(ToString::to_string).collect();
                        tracing::error!(event = "config_reload_failed", problems = ?problems, "keeping the last good config");
                    }
                }
            }
        }
        // The lease is ours until `asked + lease`, on any clock: the server
        // counts its span from a moment after we asked. A renewal that comes
        // after our lead would have lapsed is no use: it is abandoned then.
        let asked = tokio::time::Instant::now();
        let lead = Lead {
            until: asked + settings.lease.mul_f64(0.8),
            deadline: store.limits().deadline,
        };
        let current = lead_until.filter(|u| *u > asked);
        let wait = current.map_or(lead.deadline, |u| (u - asked).min(lead.deadline));
        let held = match tokio::time::timeout(wait, store.hold_lead(&holder, settings.lease)).await
        {
            Ok(Ok(held)) => {
                metrics.db_answered();
                held
            }
            Ok(Err(e)) => {
                tracing::warn!(event = "lease_failed", error = %e);
                false
            }
            Err(_) => {
                tracing::warn!(
                    event = "lease_failed",
                    error = "no answer before the lead lapsed"
                );
                false
            }
        };
        if !held {
            if lead_until.take().is_some() {
                tracing::warn!(event = "leadership_lost");
            }
            metrics.set_lead(None);
            metrics.set_snapshot(None);
            continue;
        }
        if lead_until.replace(lead.until).is_none() {
            tracing::info!(event = "leadership_acquired", holder = %holder);
            synced = None;
        }
        metrics.set_lead(Some(lead.until));
        let worked = work(
            &fenced,
            &settings,
            catalog.as_ref(),
            &mut synced,
            &metrics,
            &clock,
            lead,
        )
        .await;
        metrics.db_retries(store.retries());
        match worked {
            Ok(()) => metrics.db_answered(),
            Err(e) => tracing::warn!(event = "leader_work_failed", error = %e),
        }
    }
    metrics.set_lead(None);
    if lead_until.is_some() {
        // Hand the lead over at once; incidents are left as they are.
        if let Err(e) = store.release_lead(&holder).await {
            tracing::warn!(event = "lease_release_failed", error = %e);
        }
    }
}

/// Reloads the config on a blocking thread (100,000 checks take seconds to
/// parse, and the lease must not wait), parsing only the files that changed
/// since `kept` was filled.
async fn reload(
    settings: &Settings,
    kept: &mut config::Kept,
) -> Result<Catalog, config::Diagnostics> {
    let (paths, env, mut taken) = (
        settings.config.clone(),
        settings.env.clone(),
        std::mem::take(kept),
    );
    let loaded = tokio::task::spawn_blocking(move || {
        let catalog = config::load_reusing(&paths, &*env, config::Sections::All, &mut taken);
        (catalog, taken)
    })
    .await;
    match loaded {
        Ok((catalog, taken)) => {
            *kept = taken;
            catalog
        }
        // The loading thread panicked: say so as a problem of the config.
        Err(e) => Err(config::load_failed(&settings.config, e)),
    }
}

/// This process's name on the lease: host, process id and a random part,
/// so a restarted pod never mistakes its predecessor's lease for its own.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ingest".into());
    let nonce = std::collections::hash_map::RandomState::new();
    let random = std::hash::BuildHasher::hash_one(&nonce, std::process::id());
    format!("{host}/{}/{random:016x}", std::process::id())
}

/// How long the lead may still act, and the database deadline.
#[derive(Clone, Copy, Debug)]
struct Lead {
    until: tokio::time::Instant,
    deadline: Duration,
}

impl Lead {
    /// Runs one leader step: only while the lease is surely held, and never
    /// past its end or the database deadline.
    async fn step<T>(
        self,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let left = self
            .until
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(StoreError::NotLeader);
        }
        let started = tokio::time::Instant::now();
        let out = crate::store::sql::within(left.min(self.deadline), what, work).await;
        crate::metrics::leader_step(what.trim_start_matches("leader: "), started.elapsed());
        out
    }
}

/// One pass of the leader's steps. A step that fails (past its deadline,
/// say) is logged and the pass goes on: the fold or the catalog sync failing
/// never keeps the tick from deciding silence. Once the lead is lost, the
/// steps left are not run. The pass's outcome is its first failure.
struct Pass {
    lead: Lead,
    failed: Option<StoreError>,
}

impl Pass {
    /// Runs a step ([`Lead::step`]); `None` if it failed or was not run.
    async fn run<T>(
        &mut self,
        what: &'static str,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        if matches!(self.failed, Some(StoreError::NotLeader)) {
            return None;
        }
        match self.lead.step(what, work).await {
            Ok(out) => Some(out),
            Err(e) => {
                if !matches!(e, StoreError::NotLeader) {
                    tracing::warn!(event = "leader_step_failed", step = what, error = %e);
                }
                if self.failed.is_none() || matches!(e, StoreError::NotLeader) {
                    self.failed = Some(e);
                }
                None
            }
        }
    }
}

async fn work(
    store: &Store,
    settings: &Settings,
    catalog: Option<&Catalog>,
    synced: &mut Option<tokio::time::Instant>,
    metrics: &IngestMetrics,
    clock: &Clock,
    lead: Lead,
) -> Result<(), StoreError> {
    let now = clock();
    let mut pass = Pass { lead, failed: None };
    // At once after taking the lead or a config change, then every minute:
    // partitions are made ahead, absent checks are retired by time, and
    // config windows roll forward. Until all of these succeed they are
    // tried again at every pass.
    if synced.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        let keep = settings.raw_retention.as_millis() as i64;
        let mut done = pass
            .run(
                "leader: partitions",
                store.ensure_partitions_back(now, keep),
            )
            .await
            .is_some();
        if let Some(dropped) = pass.run("leader: retention", store.retain(now, keep)).await {
            if !dropped.partitions.is_empty() || dropped.rollups > 0 {
                tracing::info!(event = "retention", partitions = ?dropped.partitions, rollups = dropped.rollups);
            }
        } else {
            done = false;
        }
        let unseen = settings.prune_after.max(settings.raw_retention).as_millis() as i64;
        if let Some(pruned) = pass.run("leader: prune", store.prune(now - unseen)).await {
            if pruned.agents > 0 || pruned.pairs > 0 {
                metrics.pruned(pruned.agents, pruned.pairs);
                tracing::info!(
                    event = "pruned",
                    agents = pruned.agents,
                    pairs = pruned.pairs
                );
            }
        } else {
            done = false;
        }
        if let Some(catalog) = catalog {
            if let Some(retired) = pass
                .run(
                    "leader: catalog",
                    store.sync_catalog(catalog, now, settings.retire_after),
                )
                .await
            {
                if synced.is_none() || !retired.is_empty() {
                    tracing::info!(event = "catalog_synced", checks = catalog.checks.len(), retired = ?retired);
                }
            } else {
                done = false;
            }
        }
        if done {
            *synced = Some(tokio::time::Instant::now());
        }
    }
    // Every pass folds for a bounded time, the oldest changes first (each
    // a minute old at least), so the hours and days keep up without one long
    // transaction holding the checks.
    let mut deferred = Vec::new();
    if let Some(folded) = pass
        .run("leader: rollups", store.fold_within(now, FOLD_BUDGET))
        .await
    {
        deferred.push(("rollups", folded.deferred));
        if folded.deferred > 0 {
            tracing::info!(event = "fold_deferred", checks = folded.deferred);
        }
    }
    let lag = metrics.lag();
    if let Some(report) = pass.run("leader: tick", store.tick(clock(), lag)).await {
        deferred.push(("tick", report.deferred));
        if report.deferred > 0 {
            tracing::info!(event = "tick_deferred", checks = report.deferred);
        }
        if report.lagging > 0 {
            tracing::info!(
                event = "silence_deferred",
                checks = report.lagging,
                lag_ms = lag
            );
        }
    }
    if let Some((sqs, url)) = &settings.dead_letter_queue
        && let Some(depth) = crate::consume::sqs::queue_depth(sqs, url).await
    {
        metrics.dead_letter.store(depth, Ordering::Relaxed);
    }
    let snapshot = pass
        .run("leader: export", async {
            Ok(Snapshot {
                checks: store.check_statuses().await?,
                agents: exported_agents(
                    store.agents_seen().await?,
                    settings.retire_after.as_millis() as i64,
                ),
                incidents_open: store.open_incidents().await?,
                deferred,
            })
        })
        .await;
    if let Some(snapshot) = snapshot {
        metrics.set_snapshot(Some(snapshot));
    }
    match pass.failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
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

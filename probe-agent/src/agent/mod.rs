//! The long-running agent: load the checks, keep the ones the fleet assigns
//! to this agent scheduled, publish their results, reload on SIGHUP or a
//! config change (validate, then swap; a bad config keeps the last good
//! one), keep its metrics and readiness for the ops port, and drain on
//! shutdown.

pub mod metrics;

use crate::buffer::Limits;
use crate::discovery::K8sDiscovery;
use crate::probe::Prober;
use crate::publish::{self, Publisher};
use crate::scheduler::{Clock, Scheduler, Slot};
use config::Check;
use config::fleet::{Fleet, Peer};
use config::wire::AgentInfo;
use metrics::{AgentMetrics, CheckLabels};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything the agent is told.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Config files or directories.
    pub config: Vec<PathBuf>,
    /// This agent.
    pub me: Peer,
    /// Its region.
    pub region: String,
    /// What the public page calls its location; empty for its zone.
    pub location_label: String,
    /// The other agents (static `--peers`).
    pub peers: Vec<Peer>,
    /// Kubernetes peer discovery (`--peers-k8s-service`), read again every `rediscover_every`.
    pub discovery: Option<K8sDiscovery>,
    /// How often discovered peers are read again.
    pub rediscover_every: Duration,
    /// Probes at once.
    pub concurrency: usize,
    /// The most bytes per SQS message and per send.
    pub max_message_bytes: usize,
    /// The buffer's limits.
    pub limits: Limits,
    /// How often the config files are checked for changes.
    pub watch_every: Duration,
    /// How long shutdown may spend flushing.
    pub drain_deadline: Duration,
    /// The disk spool (`--spool-dir`), if any.
    pub spool: Option<crate::spool::Spool>,
    /// Above this many assigned checks, no `probe_*` series are exported.
    pub check_series_max: usize,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config has problems (each printed with its position).
    #[error("the config has problems:\n{0}")]
    Config(config::Diagnostics),
    /// The prober could not be set up.
    #[error(transparent)]
    Setup(#[from] crate::probe::SetupError),
}

/// Reads `${VAR}` from the process environment; the binary passes this in.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Runs the agent until `shutdown`, then finishes in-flight probes and flushes.
pub async fn run<P: Publisher + 'static>(
    settings: Settings,
    env: Env,
    publisher: Arc<P>,
    metrics: Arc<AgentMetrics>,
    mut reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    metrics.set_check_series_max(settings.check_series_max);
    let mut kept = config::Kept::default();
    let mut checks = load(&settings.config, &env, &mut kept)
        .await
        .map_err(AgentError::Config)?;
    let mut peers = settings.peers.clone();
    if let Some(d) = &settings.discovery {
        // Never a fleet of one by mistake: an agent that took every check
        // for itself would probe (and vote on) checks that are not its own.
        match first_discovery(d, settings.rediscover_every, &shutdown).await {
            Some(found) => peers = found,
            None => return Ok(()),
        }
    }
    let mut fleet = fleet_of(&settings.me, peers);
    let prober = Prober::new(&settings.me.id)?;
    let location = if settings.me.zone.is_empty() {
        settings.me.id.clone()
    } else {
        settings.me.zone.clone()
    };

    let (results_tx, results_rx) = mpsc::channel(4096);
    let publish_settings = publish::Settings {
        agent: AgentInfo {
            id: settings.me.id.clone(),
            zone: settings.me.zone.clone(),
            region: settings.region.clone(),
            label: settings.location_label.clone(),
        },
        max_message_bytes: settings.max_message_bytes,
        flush_every: Duration::from_secs(1),
        heartbeat_every: heartbeat_every(&checks),
        limits: settings.limits,
        drain_deadline: settings.drain_deadline,
        spool: settings.spool.clone(),
    };
    let publishing = tokio::spawn(publish::run(
        publish_settings,
        publisher,
        results_rx,
        metrics.publish.clone(),
        CancellationToken::new(),
    ));

    let probe = {
        let (prober, metrics, location) = (prober.clone(), metrics.clone(), location.clone());
        move |slot: Slot| {
            let (prober, metrics, location) = (prober.clone(), metrics.clone(), location.clone());
            async move {
                let result = prober
                    .run(&slot.check, slot.scheduled_at, slot.interval, slot.assigned)
                    .await;
                let labels = CheckLabels {
                    check: slot.check.id.to_string(),
                    group: slot.check.group.to_string(),
                    kind: slot.check.probe.kind().as_str().into(),
                    location,
                };
                metrics.record(labels, &result);
                result
            }
        }
    };
    let scheduler_stop = CancellationToken::new();
    let mut scheduler = Scheduler::new(
        &settings.me.id,
        Clock::system(),
        settings.concurrency,
        probe,
        results_tx,
        metrics.scheduler.clone(),
        scheduler_stop.clone(),
    );
    apply(&mut scheduler, &checks, &fleet, &settings.me.id, &metrics);
    metrics.config_ok.store(true, Ordering::Relaxed);
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(event = "agent_started", agent = %settings.me.id, zone = %settings.me.zone, peers = fleet.peers().len(), checks = checks.len(), assigned = scheduler.len());

    let mut fingerprint = config::fingerprint(&settings.config);
    let mut watch = tokio::time::interval(settings.watch_every);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rediscover = tokio::time::interval(settings.rediscover_every);
    rediscover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = rediscover.tick(), if settings.discovery.is_some() => {
                let found = match settings.discovery.as_ref() {
                    Some(d) => discover(d).await,
                    None => None,
                };
                if let Some(found) = found {
                    let next = fleet_of(&settings.me, found);
                    if next != fleet {
                        tracing::info!(event = "fleet_changed", peers = next.peers().len());
                        fleet = next;
                        apply(&mut scheduler, &checks, &fleet, &settings.me.id, &metrics);
                    }
                }
                continue;
            }
            Some(()) = reload.recv() => "signal",
            _ = watch.tick() => {
                let now = config::fingerprint(&settings.config);
                if now == fingerprint { continue; }
                fingerprint = now;
                "file_change"
            }
        };
        let started = std::time::Instant::now();
        match load(&settings.config, &env, &mut kept).await {
            Ok(loaded) => {
                // The old checks go before apply, so two catalogs are never
                // held with the new one's runs scheduled.
                checks = loaded;
                apply(&mut scheduler, &checks, &fleet, &settings.me.id, &metrics);
                metrics.config_ok.store(true, Ordering::Relaxed);
                tracing::info!(
                    event = "config_reloaded",
                    trigger = why,
                    checks = checks.len(),
                    assigned = scheduler.len(),
                    seconds = started.elapsed().as_secs_f64()
                );
            }
            Err(problems) => {
                metrics.config_ok.store(false, Ordering::Relaxed);
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(event = "config_reload_failed", trigger = why, problems = ?problems, "keeping the last good config");
            }
        }
    }
    tracing::info!(event = "agent_stopping", scheduled_checks = scheduler.len());
    scheduler.drain().await;
    // The scheduler held the last sender: the publisher now drains and returns.
    let left = publishing.await.map(|b| b.len()).unwrap_or(0);
    let (results, dropped) = metrics.publish.totals();
    tracing::info!(event = "agent_stopped", unsent = left, results, dropped);
    Ok(())
}

/// The fleet of `me` and `peers`, with duplicate ids logged loudly.
fn fleet_of(me: &Peer, peers: Vec<Peer>) -> Fleet {
    let (fleet, duplicates) = Fleet::new(me.clone(), peers);
    for d in &duplicates {
        tracing::error!(event = "duplicate_agent_id", id = %d.id, zones = ?d.zones, "two agents claim the same id: their checks will be probed twice or not at all");
    }
    fleet
}

/// Reads the peers until the API server answers, not ready meanwhile (the
/// readiness flag is set only once the agent runs); `None` when shut down
/// first.
async fn first_discovery(
    d: &K8sDiscovery,
    every: Duration,
    shutdown: &CancellationToken,
) -> Option<Vec<Peer>> {
    let mut pause = every.min(Duration::from_secs(1));
    loop {
        if let Some(peers) = discover(d).await {
            return Some(peers);
        }
        tracing::warn!(event = "peer_discovery_pending", retry_in = ?pause, "not ready until the peers are known");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return None,
        }
        pause = (pause * 2).min(every.max(Duration::from_secs(1)));
    }
}

/// Reads the peers; `None` (logged) when the API server cannot be read.
async fn discover(d: &K8sDiscovery) -> Option<Vec<Peer>> {
    match d.peers().await {
        Ok(peers) => Some(peers),
        Err(e) => {
            tracing::warn!(event = "peer_discovery_failed", error = %e, "keeping the last known peers");
            None
        }
    }
}

/// Loads the checks on a blocking thread (100,000 take seconds to parse,
/// and the timer loop must not wait): each is in an `Arc` the scheduler shares;
/// the catalog's other sections are not this role's. Files unchanged since
/// the last load are not parsed again: their checks come from `kept`.
async fn load(
    paths: &[PathBuf],
    env: &Env,
    kept: &mut config::Kept,
) -> Result<Vec<Arc<Check>>, config::Diagnostics> {
    let (owned, env, mut taken) = (paths.to_vec(), env.clone(), std::mem::take(kept));
    let loaded = tokio::task::spawn_blocking(move || {
        let catalog = config::load_reusing(&owned, &*env, config::Sections::Checks, &mut taken);
        (catalog, taken)
    })
    .await;
    match loaded {
        Ok((catalog, taken)) => {
            *kept = taken;
            Ok(catalog?.checks)
        }
        // The loading thread panicked: say so as a problem of the config.
        Err(e) => Err(config::load_failed(paths, e)),
    }
}

/// Heartbeats go out every (shortest) check interval, at least every minute.
fn heartbeat_every(checks: &[Arc<Check>]) -> Duration {
    checks
        .iter()
        .map(|c| c.schedule.period())
        .min()
        .unwrap_or(Duration::from_secs(60))
        .min(Duration::from_secs(60))
}

fn apply(
    scheduler: &mut Scheduler,
    checks: &[Arc<Check>],
    fleet: &Fleet,
    me: &str,
    metrics: &AgentMetrics,
) {
    let mine: Vec<_> = checks
        .iter()
        .filter(|c| fleet.probes(me, c.id.as_str(), c.locations))
        .map(|c| (c.clone(), fleet.assigned_count(c.locations)))
        .collect();
    let ids: HashSet<&str> = mine.iter().map(|(c, _)| c.id.as_str()).collect();
    let had = metrics.per_check();
    metrics.assigned.store(mine.len() as u64, Ordering::Relaxed);
    metrics.retain(|id| ids.contains(id));
    if had != metrics.per_check() {
        tracing::warn!(
            event = "check_series",
            exported = metrics.per_check(),
            assigned = mine.len(),
            "probe_* series are exported only while this agent holds at most --check-series-max checks"
        );
    }
    let longest = mine
        .iter()
        .map(|(c, _)| c.schedule.period().as_millis() as u64)
        .max()
        .unwrap_or(0);
    metrics
        .longest_interval_ms
        .store(longest, Ordering::Relaxed);
    scheduler.apply(mine);
}

//! When each check runs: slots on the wall clock, first runs spread over the
//! interval by a hash of (check id, agent id), one loop per check so runs
//! never overlap, a global bound on concurrent probes, and tokio time so tests
//! can pause and advance the clock.

use crate::telemetry::{RUNS, SCHEDULE_LAG, SKIPPED_RUNS};
use chrono::{DateTime, Utc};
use config::catalog::Schedule;
use config::fleet::score;
use config::wire::{ProbeResult, Timestamp};
use config::{Check, CheckId};
use metrics::{Counter, Histogram, counter, histogram};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Wall-clock time, tied to tokio's clock so a paused test clock moves it too.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: DateTime<Utc>,
    at: Instant,
}

impl Clock {
    /// Wall time now, advancing with tokio's clock from here on.
    pub fn system() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock that reads `wall` now and advances with tokio's clock.
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Self {
            wall,
            at: Instant::now(),
        }
    }

    /// The wall time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default()
    }

    /// The tokio instant at which the wall clock reads `t` (now, if `t` has passed).
    pub fn instant_of(&self, t: DateTime<Utc>) -> Instant {
        let ahead = (t - self.now()).to_std().unwrap_or_default();
        Instant::now() + ahead
    }
}

/// Where in its interval an agent runs a check: a stable hash of (check, agent),
/// so 10,000 checks spread over the interval instead of firing together.
pub fn phase(check: &str, agent: &str, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(score(check, agent) % ms)
}

/// The first slot strictly after `after`. Interval slots sit at
/// `k × interval + phase` on the Unix clock, so a restarted agent keeps them.
pub fn next_slot(
    schedule: &Schedule,
    phase: Duration,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Interval(every) => {
            let every = every.as_millis().max(1) as i64;
            let phase = phase.as_millis() as i64;
            let k = (after.timestamp_millis() - phase).div_euclid(every) + 1;
            DateTime::from_timestamp_millis(k * every + phase)
        }
        Schedule::Cron(c) => c.schedule.after(&after).next(),
    }
}

/// The gap from `slot` to the next one: `interval_us` of a result.
pub fn gap_after(schedule: &Schedule, phase: Duration, slot: DateTime<Utc>) -> Duration {
    next_slot(schedule, phase, slot)
        .and_then(|n| (n - slot).to_std().ok())
        .unwrap_or(schedule.period())
}

/// What the scheduler counts: handles registered, when made, with the
/// current recorder.
#[derive(Debug)]
pub struct SchedulerStats {
    /// Actual start minus slot.
    pub lag: Histogram,
    /// Slots skipped because the run before overran.
    pub skipped: Counter,
    /// Probes run.
    pub runs: Counter,
    /// When a probe last started (liveness).
    pub beat: crate::beat::Beat,
}

impl Default for SchedulerStats {
    fn default() -> Self {
        Self {
            lag: histogram!(SCHEDULE_LAG),
            skipped: counter!(SKIPPED_RUNS),
            runs: counter!(RUNS),
            beat: crate::beat::Beat::default(),
        }
    }
}

/// One slot to probe.
#[derive(Clone, Debug)]
pub struct Slot {
    /// The check.
    pub check: Arc<Check>,
    /// The slot time: feeds the result id.
    pub scheduled_at: Timestamp,
    /// The gap to the check's next slot: `interval_us` of the result.
    pub interval: Duration,
    /// How many agents probe this check.
    pub assigned: u32,
}

/// Runs a check's slots until `shutdown`; an in-flight probe always finishes
/// and its result is sent.
#[allow(clippy::too_many_arguments)]
pub async fn run_check<F, Fut>(
    check: Arc<Check>,
    agent: &str,
    assigned: u32,
    clock: Clock,
    permits: Arc<Semaphore>,
    probe: F,
    results: mpsc::Sender<ProbeResult>,
    stats: Arc<SchedulerStats>,
    shutdown: CancellationToken,
) where
    F: Fn(Slot) -> Fut,
    Fut: Future<Output = ProbeResult>,
{
    let phase = phase(check.id.as_str(), agent, check.schedule.period());
    let mut after = clock.now();
    loop {
        let Some(slot) = next_slot(&check.schedule, phase, after) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(clock.instant_of(slot)) => {}
            _ = shutdown.cancelled() => return,
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        stats.beat.touch();
        stats.lag.record(
            (clock.now() - slot)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64(),
        );
        // Boxed: the probe's future is large, and 10,000 idle loops must stay small.
        let result = Box::pin(probe(Slot {
            check: check.clone(),
            scheduled_at: Timestamp::new(slot),
            interval: gap_after(&check.schedule, phase, slot),
            assigned,
        }))
        .await;
        drop(permit);
        stats.runs.increment(1);
        if results.send(result).await.is_err() {
            return;
        }
        // Slots that passed while this run was busy are skipped, not run late.
        let now = clock.now();
        after = slot;
        while let Some(next) = next_slot(&check.schedule, phase, after) {
            if next > now {
                break;
            }
            stats.skipped.increment(1);
            after = next;
        }
    }
}

/// The running check loops, keyed by check id; reloading keeps the loops of
/// checks whose definition did not change.
pub struct Scheduler<F> {
    agent: String,
    clock: Clock,
    permits: Arc<Semaphore>,
    probe: F,
    results: mpsc::Sender<ProbeResult>,
    stats: Arc<SchedulerStats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    running: HashMap<CheckId, (String, u32, CancellationToken)>,
}

impl<F> std::fmt::Debug for Scheduler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("agent", &self.agent)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl<F, Fut> Scheduler<F>
where
    F: Fn(Slot) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ProbeResult> + Send + 'static,
{
    /// A scheduler with at most `concurrency` probes at once, counting into `stats`.
    pub fn new(
        agent: &str,
        clock: Clock,
        concurrency: usize,
        probe: F,
        results: mpsc::Sender<ProbeResult>,
        stats: Arc<SchedulerStats>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            agent: agent.to_string(),
            clock,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            probe,
            results,
            stats,
            shutdown,
            tracker: TaskTracker::new(),
            running: HashMap::new(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<SchedulerStats> {
        self.stats.clone()
    }

    /// How many checks are scheduled.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Runs exactly `checks` (each with its assigned count): unchanged ones keep
    /// their loop, changed ones restart, missing ones stop.
    pub fn apply(&mut self, checks: Vec<(Arc<Check>, u32)>) {
        let mut keep = HashMap::new();
        for (check, assigned) in checks {
            match self.running.remove(&check.id) {
                Some((hash, was, token)) if hash == check.config_hash && was == assigned => {
                    keep.insert(check.id.clone(), (hash, was, token));
                }
                old => {
                    if let Some((_, _, token)) = old {
                        token.cancel();
                    }
                    let token = self.shutdown.child_token();
                    let id = check.id.clone();
                    let hash = check.config_hash.clone();
                    let (agent, clock, permits, probe, results, stats, t) = (
                        self.agent.clone(),
                        self.clock,
                        self.permits.clone(),
                        self.probe.clone(),
                        self.results.clone(),
                        self.stats.clone(),
                        token.clone(),
                    );
                    self.tracker.spawn(async move {
                        run_check(
                            check, &agent, assigned, clock, permits, probe, results, stats, t,
                        )
                        .await
                    });
                    keep.insert(id, (hash, assigned, token));
                }
            }
        }
        for (_, (_, _, token)) in self.running.drain() {
            token.cancel();
        }
        self.running = keep;
    }

    /// Stops scheduling and waits for in-flight probes to finish.
    pub async fn drain(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

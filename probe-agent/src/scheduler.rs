//! When each check runs: slots on the wall clock, first runs spread over the
//! interval by a hash of (check id, agent id), one timer loop for every check
//! (a task only for each run under way), runs of one check that never
//! overlap, a global bound on concurrent probes, and tokio time so tests can
//! pause and advance the clock.

use crate::telemetry::{RUNS, SCHEDULE_LAG, SKIPPED_RUNS};
use chrono::{DateTime, Utc};
use config::Check;
use config::catalog::Schedule;
use config::fleet::score;
use config::wire::{ProbeResult, Timestamp};
use metrics::{Counter, Histogram, counter, histogram};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A scheduled check: what the timer loop keeps per check, and no more
/// (100,000 of them must stay small: no task, no token, no timer each).
struct Entry {
    check: Arc<Check>,
    assigned: u32,
    phase: Duration,
    /// Bumped when the entry is replaced or removed: timer items and a run
    /// waiting for its permit that carry an older one are stale.
    generation: u64,
    /// Set while a run is under way, so two runs of one check never overlap.
    busy: Arc<AtomicBool>,
}

/// A check in the timer's index, hashed and compared by its id: the index
/// needs no copy of the id.
struct ById(Arc<Check>);

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.as_str().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id.as_str()
    }
}

/// A slot on the timer: (slot in Unix ms, entry index, entry generation).
type Due = Reverse<(i64, usize, u64)>;

/// A plan for the timer loop: the checks to run, each with its assigned count.
type Plan = Vec<(Arc<Check>, u32)>;

/// How many checks of a plan are taken between two looks at the timer.
const REPLACE_CHUNK: usize = 2_000;

/// A plan being taken: what is left of it, and the index being built.
struct Replacing {
    rest: std::vec::IntoIter<(Arc<Check>, u32)>,
    next: HashMap<ById, usize>,
}

/// The timer loop's state: every scheduled check, and a min-heap of slots.
struct Timer<F> {
    agent: String,
    clock: Clock,
    permits: Arc<Semaphore>,
    probe: F,
    results: mpsc::Sender<ProbeResult>,
    stats: Arc<SchedulerStats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_id: HashMap<ById, usize>,
    heap: BinaryHeap<Due>,
    generations: u64,
    replacing: Option<Replacing>,
}

// `ById` hashes and compares only the check's id, which never changes; the
// regex caches inside a check are what the lint sees.
#[allow(clippy::mutable_key_type)]
impl<F, Fut> Timer<F>
where
    F: Fn(Slot) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ProbeResult> + Send + 'static,
{
    async fn run(mut self, mut plans: mpsc::UnboundedReceiver<Plan>) {
        loop {
            let next = self.heap.peek().map(|Reverse((ms, _, _))| *ms);
            let wake = next
                .and_then(DateTime::from_timestamp_millis)
                .map(|t| self.clock.instant_of(t));
            // Due slots come first; a new plan is taken in chunks between
            // them, so 100,000 checks never hold the timer up.
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return,
                _ = sleep_until_or_never(wake) => self.fire_due(),
                _ = std::future::ready(()), if self.replacing.is_some() => self.replace_some(),
                plan = plans.recv(), if self.replacing.is_none() => match plan {
                    Some(plan) => self.begin(plan),
                    None => return,
                },
            }
        }
    }

    /// Starts taking `plan`: unchanged checks will keep their slots, changed
    /// ones start over, missing ones stop (a run under way still finishes).
    fn begin(&mut self, plan: Plan) {
        self.heap
            .reserve(plan.len().saturating_sub(self.heap.len()));
        self.replacing = Some(Replacing {
            next: HashMap::with_capacity(plan.len()),
            rest: plan.into_iter(),
        });
    }

    /// Takes the next chunk of the plan under way; after the last, stops
    /// the checks the plan left out.
    fn replace_some(&mut self) {
        let Some(mut r) = self.replacing.take() else {
            return;
        };
        for (check, assigned) in r.rest.by_ref().take(REPLACE_CHUNK) {
            self.take(check, assigned, &mut r.next);
        }
        if r.rest.len() > 0 {
            self.replacing = Some(r);
            return;
        }
        for (_, i) in std::mem::take(&mut self.by_id) {
            self.remove(i);
        }
        self.by_id = r.next;
        // Stale timer items would otherwise pile up over many reloads.
        if self.heap.len() > 2 * self.by_id.len() + 1024 {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, i, g))| {
                entries[*i].as_ref().is_some_and(|e| e.generation == *g)
            });
        }
    }

    /// Keeps the slots of `check` when its definition is unchanged, or
    /// schedules it anew.
    fn take(&mut self, check: Arc<Check>, assigned: u32, next: &mut HashMap<ById, usize>) {
        let old = self.by_id.remove(check.id.as_str());
        let kept = old.filter(|&i| {
            self.entries[i]
                .as_ref()
                .is_some_and(|e| e.check.config_hash == check.config_hash && e.assigned == assigned)
        });
        if let Some(i) = kept {
            // The same definition: hold the new copy, so the old catalog
            // is freed rather than kept alive by its slots.
            if let Some(e) = self.entries[i].as_mut() {
                e.check = check.clone();
            }
            next.insert(ById(check), i);
            return;
        }
        if let Some(i) = old {
            self.remove(i);
        }
        let i = self.insert(check.clone(), assigned);
        next.insert(ById(check), i);
    }

    fn insert(&mut self, check: Arc<Check>, assigned: u32) -> usize {
        self.generations += 1;
        let phase = phase(check.id.as_str(), &self.agent, check.schedule.period());
        let first = next_slot(&check.schedule, phase, self.clock.now());
        let entry = Entry {
            check,
            assigned,
            phase,
            generation: self.generations,
            busy: Arc::new(AtomicBool::new(false)),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        if let Some(slot) = first {
            self.heap
                .push(Reverse((slot.timestamp_millis(), i, self.generations)));
        }
        i
    }

    fn remove(&mut self, i: usize) {
        if self.entries[i].take().is_some() {
            self.free.push(i);
        }
    }

    /// Starts every slot that is due; a check still busy with its last run
    /// skips the slot (counted), never runs late.
    fn fire_due(&mut self) {
        let now = self.clock.now();
        while let Some(Reverse((ms, i, generation))) = self.heap.peek().copied() {
            if DateTime::from_timestamp_millis(ms).is_none_or(|t| t > now) {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries[i]
                .as_ref()
                .filter(|e| e.generation == generation)
            else {
                continue;
            };
            let Some(slot) = DateTime::from_timestamp_millis(ms) else {
                continue;
            };
            if entry.busy.swap(true, Ordering::AcqRel) {
                self.stats.skipped.increment(1);
            } else {
                self.start(entry, slot);
            }
            // Slots already past (a stalled process) are skipped too.
            let mut after = slot;
            while let Some(next) = next_slot(&entry.check.schedule, entry.phase, after) {
                if next > now {
                    self.heap
                        .push(Reverse((next.timestamp_millis(), i, generation)));
                    break;
                }
                self.stats.skipped.increment(1);
                after = next;
            }
        }
    }

    /// One run in a task of its own: wait for a permit, probe, send the
    /// result. Only runs under way have a task.
    fn start(&self, entry: &Entry, slot: DateTime<Utc>) {
        let (probe, permits, results, stats, shutdown, clock) = (
            self.probe.clone(),
            self.permits.clone(),
            self.results.clone(),
            self.stats.clone(),
            self.shutdown.clone(),
            self.clock,
        );
        let busy = entry.busy.clone();
        let run = Slot {
            check: entry.check.clone(),
            scheduled_at: Timestamp::new(slot),
            interval: gap_after(&entry.check.schedule, entry.phase, slot),
            assigned: entry.assigned,
        };
        self.tracker.spawn(async move {
            let permit = tokio::select! {
                p = permits.acquire_owned() => p.ok(),
                _ = shutdown.cancelled() => None,
            };
            if let Some(permit) = permit {
                stats.beat.touch();
                stats.lag.record(
                    (clock.now() - slot)
                        .to_std()
                        .unwrap_or_default()
                        .as_secs_f64(),
                );
                // Boxed: the probe's future is large and lives only while it runs.
                let result = Box::pin(probe(run)).await;
                drop(permit);
                stats.runs.increment(1);
                let _ = results.send(result).await;
            }
            busy.store(false, Ordering::Release);
        });
    }
}

/// Sleeps until `at`, or forever when nothing is scheduled.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The scheduled checks: one timer loop for all of them, and a task only
/// for each run under way. Reloading keeps the slots of checks whose
/// definition did not change.
pub struct Scheduler {
    plans: mpsc::UnboundedSender<Plan>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    scheduled: usize,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("scheduled", &self.scheduled)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler with at most `concurrency` probes at once, counting into
    /// `stats`; its timer loop starts now, on the current runtime.
    pub fn new<F, Fut>(
        agent: &str,
        clock: Clock,
        concurrency: usize,
        probe: F,
        results: mpsc::Sender<ProbeResult>,
        stats: Arc<SchedulerStats>,
        shutdown: CancellationToken,
    ) -> Self
    where
        F: Fn(Slot) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ProbeResult> + Send + 'static,
    {
        let tracker = TaskTracker::new();
        let (plans, received) = mpsc::unbounded_channel();
        let timer = Timer {
            agent: agent.to_string(),
            clock,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            probe,
            results,
            stats,
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            entries: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            heap: BinaryHeap::new(),
            generations: 0,
            replacing: None,
        };
        tracker.spawn(timer.run(received));
        Self {
            plans,
            shutdown,
            tracker,
            scheduled: 0,
        }
    }

    /// How many checks are scheduled.
    pub fn len(&self) -> usize {
        self.scheduled
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.scheduled == 0
    }

    /// Runs exactly `checks` (each with its assigned count): unchanged ones keep
    /// their slots, changed ones start over, missing ones stop.
    pub fn apply(&mut self, checks: Vec<(Arc<Check>, u32)>) {
        self.scheduled = checks.len();
        // Fails only once the loop has stopped, after shutdown.
        let _ = self.plans.send(checks);
    }

    /// Stops scheduling and waits for in-flight probes to finish and send.
    pub async fn drain(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

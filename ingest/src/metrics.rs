//! Ingest's metrics (DESIGN §4.5), recorded through the `metrics` facade;
//! the process's exporter renders them. Every name is written down here and
//! in the README's metrics table.
//!
//! Counters and the histogram are handles registered when [`IngestMetrics`]
//! is made, with whatever recorder is current then (the process's, or a
//! test's local one). Gauges describe the present and are set by
//! [`IngestMetrics::publish`] just before each scrape, so a series that is no
//! longer published (a retired check, a pruned agent, a lost leadership)
//! leaves the exposition at the next scrape.
//!
//! Per-check and per-agent series come from the database and are published
//! only by the replica holding the leader lock, so replicas never disagree.

use crate::screen::Rejection;
use crate::status::Status;
use crate::store::CheckUp;
use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The outcome of one SQS (or channel) message: the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageOutcome {
    /// Committed (and then deleted).
    Stored,
    /// Not a batch (garbage, truncated, too large, a bomb): left for the DLQ.
    Undecodable,
    /// A batch version this ingest cannot read: left for the DLQ.
    UnsupportedVersion,
    /// The database failed; the message comes back after its visibility timeout.
    DatabaseError,
}

impl MessageOutcome {
    /// Every value, each a series from the start.
    pub const ALL: [MessageOutcome; 4] = [
        MessageOutcome::Stored,
        MessageOutcome::Undecodable,
        MessageOutcome::UnsupportedVersion,
        MessageOutcome::DatabaseError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Stored => "stored",
            MessageOutcome::Undecodable => "undecodable",
            MessageOutcome::UnsupportedVersion => "unsupported_version",
            MessageOutcome::DatabaseError => "database_error",
        }
    }
}

/// What the leader read from the database for export.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each configured check's status.
    pub checks: Vec<CheckUp>,
    /// Each agent: (id, zone, last seen in unix seconds).
    pub agents: Vec<(String, String, f64)>,
    /// Open incidents.
    pub incidents_open: i64,
    /// Checks the pass left to the next, its budget spent: `(step, checks)`
    /// for `tick` and `rollups`.
    pub deferred: Vec<(&'static str, usize)>,
}

const RESULTS: &str = "statuspage_ingest_results_total";
const REJECTED: &str = "statuspage_ingest_rejected_total";
const LATE: &str = "statuspage_ingest_late_results_total";
const MESSAGES: &str = "statuspage_sqs_messages_total";
const LAG: &str = "statuspage_ingest_lag_seconds";
const ABANDONED: &str = "statuspage_sqs_visibility_abandoned_total";
const DB_RETRIES: &str = "statuspage_ingest_db_retries_total";
const PRUNED: &str = "statuspage_ingest_pruned_total";
const CONFIG_OK: &str = "statuspage_ingest_config_last_reload_successful";

/// The lag before it is known.
const LAG_UNKNOWN: i64 = i64::MIN;
const DEAD_LETTER: &str = "statuspage_dead_letter_queue_messages";
const DB_UP: &str = "statuspage_ingest_db_up";
const DB_TRANSACTION: &str = "statuspage_ingest_db_transaction_seconds";
const LEADER: &str = "statuspage_ingest_leader";
const CHECK_UP: &str = "statuspage_check_up";
const CHECK_STATUS: &str = "statuspage_check_status";
const SLO_OBJECTIVE: &str = "statuspage_check_slo_objective";
const SLO_WINDOW: &str = "statuspage_check_slo_window_seconds";
const AGENT_SEEN: &str = "statuspage_agent_last_seen_timestamp_seconds";
const INCIDENTS_OPEN: &str = "statuspage_incidents_open";
const LEADER_STEP: &str = "statuspage_ingest_leader_step_seconds";
const LEADER_DEFERRED: &str = "statuspage_ingest_leader_deferred_checks";

/// Histograms and their bucket bounds (seconds), for the exporter.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (
        DB_TRANSACTION,
        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
    ),
    (
        LEADER_STEP,
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
];

/// Records how long one of the leader's steps took (`step` is its name:
/// `tick`, `catalog`, `rollups`, ...), failed ones included.
pub fn leader_step(step: &'static str, took: std::time::Duration) {
    histogram!(LEADER_STEP, "step" => step).record(took.as_secs_f64());
}

/// Gives every family its help text (once per process, after the recorder is installed).
pub fn describe() {
    use crate::notify::subscribers::{MAILS, SUBSCRIBERS};
    use crate::notify::{ATTEMPTS, DELIVERIES, OLDEST, PENDING};
    let counters: [(&'static str, &'static str); 10] = [
        (RESULTS, "Results by what happened to them."),
        (REJECTED, "Refused results by reason."),
        (
            LATE,
            "Results stored too late (after R newer ones of their pair) to move state.",
        ),
        (MESSAGES, "Messages by outcome."),
        (
            PRUNED,
            "Agents unseen for --prune-after, and their pairs, deleted by the leader.",
        ),
        (
            DB_RETRIES,
            "Transactions run again after a deadlock, a serialization failure or a lock wait past lock_timeout.",
        ),
        (
            ABANDONED,
            "Messages whose handling outlasted the visibility cap, left to redelivery.",
        ),
        (
            DELIVERIES,
            "Notification deliveries that ended, by channel and outcome (delivered, or failed for good).",
        ),
        (
            ATTEMPTS,
            "Notification delivery attempts, by channel and result.",
        ),
        (
            MAILS,
            "Subscriber mails that ended, by kind (confirm, manage, notice) and outcome (delivered, failed, dropped).",
        ),
    ];
    let gauges: [(&'static str, &'static str); 15] = [
        (
            LAG,
            "Now minus the oldest SQS SentTimestamp of the last receive handled; 0 once a receive is empty and the queue reports no backlog; absent until the first receive cycle.",
        ),
        (
            CONFIG_OK,
            "1 after the last (re)load of --config succeeded, 0 after it failed (the last good one is kept); absent without --config.",
        ),
        (DEAD_LETTER, "Messages in the dead-letter queue."),
        (DB_UP, "1 while the database answers."),
        (
            LEADER_DEFERRED,
            "Checks the leader's last pass left to the next, its budget spent, by `step`: tick (silence and maintenance not yet decided) and rollups (changes not yet folded into hours and days); above zero for long, the leader does not keep up. Leader only.",
        ),
        (
            LEADER,
            "1 on the replica that holds the leader's lease (and only until it could lapse).",
        ),
        (
            CHECK_UP,
            "The quorum verdict: 1 up or degraded, 0 down; absent in maintenance or unknown.",
        ),
        (
            CHECK_STATUS,
            "1 for the check's current status, 0 for the others.",
        ),
        (
            SLO_OBJECTIVE,
            "A check's service level objective as a ratio (0.999 for 99.9%); absent without one. The burn-rate rules of `statuspage rules` divide by it.",
        ),
        (
            SLO_WINDOW,
            "The rolling window of a check's objective, in seconds; the burn-rate rules derive their factors from it.",
        ),
        (AGENT_SEEN, "When each agent's newest message was sent."),
        (INCIDENTS_OPEN, "Incidents not resolved."),
        (PENDING, "Notification deliveries waiting to be sent."),
        (
            OLDEST,
            "How long the oldest pending notification has waited since its event.",
        ),
        (SUBSCRIBERS, "Public email subscriptions by state."),
    ];
    let histograms: [(&'static str, &'static str); 2] = [
        (
            DB_TRANSACTION,
            "Latency of one receive's (or one message's) write: its turn (a process writes one at a time) and its transaction.",
        ),
        (
            LEADER_STEP,
            "Duration of each of the leader's steps by `step`: tick (silence, maintenance and incidents) and rollups (folding minutes into hours and days), each within a 1 s budget, and export, every --tick-seconds; partitions, retention, prune and catalog once a minute.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
    for (name, help) in histograms {
        describe_histogram!(name, help);
    }
}

/// Ingest's instruments, and the state its gauges publish.
#[derive(Debug)]
pub struct IngestMetrics {
    inserted: Counter,
    duplicate: Counter,
    refused: Counter,
    late: Counter,
    rejected: Vec<(Rejection, Counter)>,
    messages: Vec<(MessageOutcome, Counter)>,
    db_transaction: Histogram,
    abandoned: Counter,
    db_retries: Counter,
    pruned: [Counter; 2],
    /// How far behind the queue ingest is, in ms (see [`IngestMetrics::lag`]);
    /// [`LAG_UNKNOWN`] until the first receive cycle.
    lag_ms: AtomicI64,
    /// When a database round trip of the consumer or the leader last
    /// succeeded (liveness).
    answered: Mutex<std::time::Instant>,
    /// The dead-letter queue's depth; -1 when not known.
    pub dead_letter: AtomicI64,
    /// The database answers.
    pub db_ready: AtomicBool,
    /// Whether the last load of `--config` succeeded; `None` without one.
    config_ok: Mutex<Option<bool>>,
    /// Until when this replica may act as leader (see `leader.rs`).
    lead: Mutex<Option<tokio::time::Instant>>,
    snapshot: Mutex<Option<Snapshot>>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestMetrics {
    /// Registers every counter (at zero) with the current recorder.
    pub fn new() -> Self {
        Self {
            inserted: counter!(RESULTS, "result" => "inserted"),
            duplicate: counter!(RESULTS, "result" => "duplicate"),
            refused: counter!(RESULTS, "result" => "rejected"),
            late: counter!(LATE),
            rejected: Rejection::ALL
                .iter()
                .map(|why| (*why, counter!(REJECTED, "reason" => why.as_str())))
                .collect(),
            messages: MessageOutcome::ALL
                .iter()
                .map(|o| (*o, counter!(MESSAGES, "outcome" => o.as_str())))
                .collect(),
            db_transaction: histogram!(DB_TRANSACTION),
            abandoned: counter!(ABANDONED),
            db_retries: counter!(DB_RETRIES),
            pruned: [
                counter!(PRUNED, "what" => "agents"),
                counter!(PRUNED, "what" => "pairs"),
            ],
            lag_ms: AtomicI64::new(LAG_UNKNOWN),
            // Counted from the start: a database never reached fails liveness too.
            answered: Mutex::new(std::time::Instant::now()),
            dead_letter: AtomicI64::new(-1),
            db_ready: AtomicBool::new(false),
            lead: Mutex::new(None),
            config_ok: Mutex::new(None),
            snapshot: Mutex::new(None),
        }
    }

    /// Counts what storing one message did.
    pub fn stored(&self, inserted: u64, duplicate: u64, too_old: u64) {
        self.inserted.increment(inserted);
        self.duplicate.increment(duplicate);
        self.late.increment(too_old);
    }

    /// Counts a refused result.
    pub fn rejected(&self, why: Rejection) {
        self.refused.increment(1);
        if let Some((_, c)) = self.rejected.iter().find(|(w, _)| *w == why) {
            c.increment(1);
        }
    }

    /// Counts a message's outcome.
    pub fn message(&self, outcome: MessageOutcome) {
        if let Some((_, c)) = self.messages.iter().find(|(o, _)| *o == outcome) {
            c.increment(1);
        }
    }

    /// Counts messages left to redelivery because their handling outlasted
    /// the visibility cap.
    pub fn abandoned(&self, messages: usize) {
        self.abandoned.increment(messages as u64);
    }

    /// Records whether the last load of `--config` succeeded.
    pub fn config_loaded(&self, ok: bool) {
        if let Ok(mut c) = self.config_ok.lock() {
            *c = Some(ok);
        }
    }

    /// Counts what a prune deleted.
    pub fn pruned(&self, agents: u64, pairs: u64) {
        self.pruned[0].increment(agents);
        self.pruned[1].increment(pairs);
    }

    /// Sets the store's count of transactions run again.
    pub fn db_retries(&self, total: u64) {
        self.db_retries.absolute(total);
    }

    /// How far behind the queue ingest is, in ms; `None` while not known
    /// (from the start until the first receive cycle), when silence must not
    /// be judged: the backlog may hold the results.
    pub fn lag(&self) -> Option<i64> {
        Some(self.lag_ms.load(Ordering::Relaxed)).filter(|l| *l != LAG_UNKNOWN)
    }

    /// Sets the lag (ms, at least 0).
    pub fn set_lag(&self, ms: i64) {
        self.lag_ms.store(ms.max(0), Ordering::Relaxed);
    }

    /// Until when this replica may act as leader; `None` when it does not lead.
    pub fn set_lead(&self, until: Option<tokio::time::Instant>) {
        if let Ok(mut lead) = self.lead.lock() {
            *lead = until;
        }
    }

    /// Whether this replica leads now: only until its lead lapses, even
    /// while its loop still waits on a renewal that will come too late.
    pub fn leading(&self) -> bool {
        self.lead
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    /// A database round trip of the consumer or the leader succeeded.
    pub fn db_answered(&self) {
        if let Ok(mut at) = self.answered.lock() {
            *at = std::time::Instant::now();
        }
    }

    /// How long since a database round trip of the consumer or the leader
    /// last succeeded (or since the start, before the first).
    pub fn db_silent_for(&self) -> std::time::Duration {
        self.answered
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    /// Records one database transaction's latency.
    pub fn db_latency(&self, seconds: f64) {
        self.db_transaction.record(seconds);
    }

    /// Replaces the leader's export (or clears it when leadership is lost).
    pub fn set_snapshot(&self, snapshot: Option<Snapshot>) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }

    /// Sets every gauge from the present state, with the current recorder;
    /// called just before each scrape.
    pub fn publish(&self) {
        if let Some(lag) = self.lag() {
            gauge!(LAG).set(lag as f64 / 1000.0);
        }
        let dlq = self.dead_letter.load(Ordering::Relaxed);
        if dlq >= 0 {
            gauge!(DEAD_LETTER).set(dlq as f64);
        }
        gauge!(DB_UP).set(f64::from(u8::from(self.db_ready.load(Ordering::Relaxed))));
        if let Some(ok) = self.config_ok.lock().ok().and_then(|c| *c) {
            gauge!(CONFIG_OK).set(f64::from(u8::from(ok)));
        }
        let leading = self.leading();
        gauge!(LEADER).set(f64::from(u8::from(leading)));
        // The leader-only series, only while leading: a lapsed lead's
        // snapshot is gone from the next scrape.
        let snapshot = leading
            .then(|| self.snapshot.lock().ok().and_then(|s| s.clone()))
            .flatten();
        if let Some(s) = snapshot {
            publish_snapshot(&s);
        }
    }
}

fn publish_snapshot(s: &Snapshot) {
    for c in &s.checks {
        let labels = [("check", c.slug.clone()), ("group", c.group.clone())];
        match c.status {
            Status::Up | Status::Degraded => gauge!(CHECK_UP, &labels).set(1.0),
            Status::Down => gauge!(CHECK_UP, &labels).set(0.0),
            Status::Maintenance | Status::Unknown => {}
        }
        for st in Status::ALL {
            gauge!(CHECK_STATUS, "check" => c.slug.clone(), "group" => c.group.clone(), "status" => st.as_str())
                .set(f64::from(u8::from(st == c.status)));
        }
        if let Some(slo) = c.slo {
            gauge!(SLO_OBJECTIVE, "check" => c.slug.clone()).set(slo.target());
            gauge!(SLO_WINDOW, "check" => c.slug.clone())
                .set(f64::from(slo.window_days) * 86_400.0);
        }
    }
    for (agent, zone, seen) in &s.agents {
        gauge!(AGENT_SEEN, "agent" => agent.clone(), "zone" => zone.clone()).set(*seen);
    }
    gauge!(INCIDENTS_OPEN).set(s.incidents_open as f64);
    for (step, checks) in &s.deferred {
        gauge!(LEADER_DEFERRED, "step" => *step).set(*checks as f64);
    }
}

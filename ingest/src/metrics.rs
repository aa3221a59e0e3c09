//! Ingest's `/metrics` (DESIGN §4.5). Every name is written down here and
//! in the README's metrics table.
//!
//! Per-check and per-agent series come from the database and are exported
//! only by the replica holding the leader lock, so replicas never disagree.

use crate::screen::Rejection;
use crate::status::Status;
use crate::store::CheckUp;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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
    /// Every value, for zeroed series.
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
}

/// Upper bounds of the database latency histogram, in seconds.
const DB_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Everything ingest's `/metrics` shows.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    inserted: AtomicU64,
    duplicate: AtomicU64,
    too_old: AtomicU64,
    rejected: Mutex<BTreeMap<Rejection, u64>>,
    messages: Mutex<BTreeMap<MessageOutcome, u64>>,
    db: Mutex<([u64; DB_BUCKETS.len()], u64, f64)>,
    /// Now minus the newest message's SQS `SentTimestamp`, in ms (0 when the queue is empty).
    pub lag_ms: AtomicI64,
    /// The dead-letter queue's depth; -1 when not known.
    pub dead_letter: AtomicI64,
    /// The database answers.
    pub db_ready: AtomicBool,
    /// This replica holds the leader lock.
    pub leader: AtomicBool,
    snapshot: Mutex<Option<Snapshot>>,
}

impl IngestMetrics {
    /// Zeroed metrics.
    pub fn new() -> Self {
        let m = Self::default();
        m.dead_letter.store(-1, Ordering::Relaxed);
        m
    }

    /// Counts what storing one message did.
    pub fn stored(&self, inserted: u64, duplicate: u64, too_old: u64) {
        self.inserted.fetch_add(inserted, Ordering::Relaxed);
        self.duplicate.fetch_add(duplicate, Ordering::Relaxed);
        self.too_old.fetch_add(too_old, Ordering::Relaxed);
    }

    /// Counts a refused result.
    pub fn rejected(&self, why: Rejection) {
        if let Ok(mut r) = self.rejected.lock() {
            *r.entry(why).or_default() += 1;
        }
    }

    /// Counts a message's outcome.
    pub fn message(&self, outcome: MessageOutcome) {
        if let Ok(mut m) = self.messages.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }

    /// How many results were refused for `why`.
    pub fn rejected_count(&self, why: Rejection) -> u64 {
        self.rejected
            .lock()
            .map(|r| r.get(&why).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// How many messages had this outcome.
    pub fn messages(&self, outcome: MessageOutcome) -> u64 {
        self.messages
            .lock()
            .map(|m| m.get(&outcome).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Results inserted, duplicate and rejected so far.
    pub fn results(&self) -> (u64, u64, u64) {
        let rejected = self.rejected.lock().map(|r| r.values().sum()).unwrap_or(0);
        (
            self.inserted.load(Ordering::Relaxed),
            self.duplicate.load(Ordering::Relaxed),
            rejected,
        )
    }

    /// Records one database transaction's latency.
    pub fn db_latency(&self, seconds: f64) {
        if let Ok(mut h) = self.db.lock() {
            for (i, bound) in DB_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.0[i] += 1;
                }
            }
            h.1 += 1;
            h.2 += seconds;
        }
    }

    /// Replaces the leader's export (or clears it when leadership is lost).
    pub fn set_snapshot(&self, snapshot: Option<Snapshot>) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "statuspage_ingest_results_total",
            "counter",
            "Results by what happened to them.",
        );
        let (inserted, duplicate, rejected) = self.results();
        for (label, v) in [
            ("inserted", inserted),
            ("duplicate", duplicate),
            ("rejected", rejected),
        ] {
            let _ = writeln!(
                out,
                "statuspage_ingest_results_total{{result=\"{label}\"}} {v}"
            );
        }
        head(
            &mut out,
            "statuspage_ingest_rejected_total",
            "counter",
            "Refused results by reason.",
        );
        let rej = self.rejected.lock().map(|r| r.clone()).unwrap_or_default();
        for why in Rejection::ALL {
            let v = rej.get(&why).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "statuspage_ingest_rejected_total{{reason=\"{why}\"}} {v}"
            );
        }
        head(
            &mut out,
            "statuspage_ingest_late_results_total",
            "counter",
            "Results stored too late (after R newer ones of their pair) to move state.",
        );
        let _ = writeln!(
            out,
            "statuspage_ingest_late_results_total {}",
            self.too_old.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "statuspage_sqs_messages_total",
            "counter",
            "Messages by outcome.",
        );
        for o in MessageOutcome::ALL {
            let _ = writeln!(
                out,
                "statuspage_sqs_messages_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                self.messages(o)
            );
        }
        head(
            &mut out,
            "statuspage_ingest_lag_seconds",
            "gauge",
            "Now minus the SQS SentTimestamp of the newest message handled (0 when the queue is empty).",
        );
        let _ = writeln!(
            out,
            "statuspage_ingest_lag_seconds {}",
            self.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let dlq = self.dead_letter.load(Ordering::Relaxed);
        if dlq >= 0 {
            head(
                &mut out,
                "statuspage_dead_letter_queue_messages",
                "gauge",
                "Messages in the dead-letter queue.",
            );
            let _ = writeln!(out, "statuspage_dead_letter_queue_messages {dlq}");
        }
        head(
            &mut out,
            "statuspage_ingest_db_up",
            "gauge",
            "1 while the database answers.",
        );
        let _ = writeln!(
            out,
            "statuspage_ingest_db_up {}",
            u8::from(self.db_ready.load(Ordering::Relaxed))
        );
        head(
            &mut out,
            "statuspage_ingest_db_transaction_seconds",
            "histogram",
            "Latency of one receive's (or one message's) write: its turn (a process writes one at a time) and its transaction.",
        );
        let (buckets, count, sum) = self.db.lock().map(|h| *h).unwrap_or_default();
        for (bound, n) in DB_BUCKETS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "statuspage_ingest_db_transaction_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "statuspage_ingest_db_transaction_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "statuspage_ingest_db_transaction_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "statuspage_ingest_db_transaction_seconds_count {count}"
        );
        head(
            &mut out,
            "statuspage_ingest_leader",
            "gauge",
            "1 on the replica that holds the leader lock.",
        );
        let _ = writeln!(
            out,
            "statuspage_ingest_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        if let Some(s) = self.snapshot.lock().ok().and_then(|s| s.clone()) {
            render_snapshot(&mut out, &s, &mut head);
        }
        out
    }
}

fn render_snapshot(
    out: &mut String,
    s: &Snapshot,
    head: &mut impl FnMut(&mut String, &str, &str, &str),
) {
    head(
        out,
        "statuspage_check_up",
        "gauge",
        "The quorum verdict: 1 up or degraded, 0 down; absent in maintenance or unknown.",
    );
    for c in &s.checks {
        let v = match c.status {
            Status::Up | Status::Degraded => "1",
            Status::Down => "0",
            Status::Maintenance | Status::Unknown => continue,
        };
        let _ = writeln!(
            out,
            "statuspage_check_up{{check=\"{}\",group=\"{}\"}} {v}",
            escape(&c.slug),
            escape(&c.group)
        );
    }
    head(
        out,
        "statuspage_check_status",
        "gauge",
        "1 for the check's current status, 0 for the others.",
    );
    for c in &s.checks {
        for st in Status::ALL {
            let _ = writeln!(
                out,
                "statuspage_check_status{{check=\"{}\",group=\"{}\",status=\"{st}\"}} {}",
                escape(&c.slug),
                escape(&c.group),
                u8::from(st == c.status)
            );
        }
    }
    head(
        out,
        "statuspage_agent_last_seen_timestamp_seconds",
        "gauge",
        "When each agent's newest message was sent.",
    );
    for (agent, zone, seen) in &s.agents {
        let _ = writeln!(
            out,
            "statuspage_agent_last_seen_timestamp_seconds{{agent=\"{}\",zone=\"{}\"}} {seen}",
            escape(agent),
            escape(zone)
        );
    }
    head(
        out,
        "statuspage_incidents_open",
        "gauge",
        "Incidents not resolved.",
    );
    let _ = writeln!(out, "statuspage_incidents_open {}", s.incidents_open);
}

/// A label value escaped for the text exposition.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! The agent's gauges: blackbox_exporter-compatible `probe_*` per check, and
//! `statuspage_agent_*` for the agent itself (DESIGN §4.5). Counters live
//! where they are counted (scheduler, publisher); gauges describe the present
//! and are set by [`AgentMetrics::publish`] just before each scrape, so a
//! check this agent no longer probes leaves the exposition at the next one.
//!
//! The `probe_*` series are about six per check: an agent holding more than
//! its limit of checks exports none of them (never a partial set, which
//! would hide some checks from the alerts), and says so in its log.

use crate::publish::PublishStats;
use crate::scheduler::SchedulerStats;
use crate::telemetry::{
    ASSIGNED, BUFFER, CONFIG_OK, PROBE_CERT_EXPIRY, PROBE_DNS_LOOKUP, PROBE_DURATION,
    PROBE_HTTP_DURATION, PROBE_HTTP_STATUS, PROBE_SUCCESS,
};
use config::wire::{Outcome, ProbeResult};
use metrics::{Label, gauge};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Labels of a check's series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckLabels {
    /// Check id.
    pub check: String,
    /// Group name.
    pub group: String,
    /// http, tcp, tls or dns.
    pub kind: String,
    /// This agent's location (zone, or id when there is no zone).
    pub location: String,
}

impl CheckLabels {
    fn labels(&self) -> Vec<Label> {
        vec![
            Label::new("check", self.check.clone()),
            Label::new("group", self.group.clone()),
            Label::new("kind", self.kind.clone()),
            Label::new("location", self.location.clone()),
        ]
    }
}

/// The figures of a check's latest result its gauges show: a few numbers,
/// not the whole result.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    down: bool,
    duration_us: u64,
    /// resolve, connect, tls, processing, transfer (HTTP only).
    http_phases: [Option<u64>; 5],
    http_status: Option<u16>,
    cert_expiry_ms: Option<i64>,
    dns_us: Option<u64>,
}

impl Figures {
    fn of(kind: &str, r: &ProbeResult) -> Self {
        let p = &r.phases;
        Self {
            down: r.outcome == Outcome::Down,
            duration_us: r.duration_us,
            http_phases: if kind == "http" {
                [p.dns_us, p.connect_us, p.tls_us, p.ttfb_us, p.transfer_us]
            } else {
                [None; 5]
            },
            http_status: r.facts.http_status,
            cert_expiry_ms: r
                .facts
                .chain_not_after
                .or(r.facts.cert_not_after)
                .map(|t| t.unix_ms()),
            dns_us: p.dns_us,
        }
    }
}

/// The HTTP phases as `probe_http_duration_seconds` labels them.
const HTTP_PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// The most checks an agent exports `probe_*` series for, by default.
pub const CHECK_SERIES_MAX: usize = 10_000;

/// The agent's state its gauges publish, and its counters.
#[derive(Debug)]
pub struct AgentMetrics {
    last: Mutex<BTreeMap<CheckLabels, Figures>>,
    /// Above this many assigned checks, no `probe_*` series are exported.
    check_series_max: AtomicUsize,
    /// The scheduler's counters.
    pub scheduler: Arc<SchedulerStats>,
    /// The publisher's counters.
    pub publish: Arc<PublishStats>,
    /// 1 after a successful (re)load, 0 after a failed one.
    pub config_ok: AtomicBool,
    /// Checks this agent probes.
    pub assigned: AtomicU64,
    /// Loaded: `/readyz` answers 200.
    pub ready: AtomicBool,
    /// The longest interval among the checks this agent probes, in ms.
    pub longest_interval_ms: AtomicU64,
}

impl AgentMetrics {
    /// Empty state around the scheduler's and publisher's counters.
    pub fn new(scheduler: Arc<SchedulerStats>, publish: Arc<PublishStats>) -> Self {
        Self {
            last: Mutex::new(BTreeMap::new()),
            check_series_max: AtomicUsize::new(CHECK_SERIES_MAX),
            scheduler,
            publish,
            config_ok: AtomicBool::new(false),
            assigned: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            longest_interval_ms: AtomicU64::new(0),
        }
    }

    /// Liveness: fails only when the publisher loop has stopped turning,
    /// or no probe has started for `bound` past the longest interval while
    /// checks are assigned. A failing SQS never fails it: sends that fail
    /// are attempts, and the buffer is in memory.
    pub fn liveness(&self, bound: std::time::Duration) -> Result<(), String> {
        let publisher = self.publish.beat.idle();
        if publisher > bound {
            return Err(format!(
                "the publisher loop has not turned for {}s",
                publisher.as_secs()
            ));
        }
        let longest = self.longest_interval_ms.load(Ordering::Relaxed);
        let scheduler = self.scheduler.beat.idle();
        if self.assigned.load(Ordering::Relaxed) > 0
            && scheduler > bound + std::time::Duration::from_millis(longest)
        {
            return Err(format!("no probe has started for {}s", scheduler.as_secs()));
        }
        Ok(())
    }

    /// Sets the most checks `probe_*` series are exported for.
    pub fn set_check_series_max(&self, max: usize) {
        self.check_series_max.store(max, Ordering::Relaxed);
    }

    /// True when this agent holds few enough checks to export their series.
    pub fn per_check(&self) -> bool {
        self.assigned.load(Ordering::Relaxed) as usize
            <= self.check_series_max.load(Ordering::Relaxed)
    }

    /// Records the latest result of a check (a no-op above the limit).
    pub fn record(&self, labels: CheckLabels, result: &ProbeResult) {
        if !self.per_check() {
            return;
        }
        let figures = Figures::of(&labels.kind, result);
        if let Ok(mut last) = self.last.lock() {
            last.insert(labels, figures);
        }
    }

    /// Forgets checks this agent no longer probes (all of them above the
    /// limit).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let per_check = self.per_check();
        if let Ok(mut last) = self.last.lock() {
            last.retain(|l, _| per_check && keep(&l.check));
        }
    }

    /// Sets every gauge from the present state, with the current recorder;
    /// called just before each scrape.
    pub fn publish(&self) {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        for (l, r) in &last {
            let labels = l.labels();
            gauge!(PROBE_SUCCESS, labels.clone()).set(if r.down { 0.0 } else { 1.0 });
            gauge!(PROBE_DURATION, labels.clone()).set(r.duration_us as f64 / 1e6);
            for (phase, us) in HTTP_PHASES.iter().zip(r.http_phases) {
                if let Some(us) = us {
                    let mut with_phase = labels.clone();
                    with_phase.push(Label::new("phase", *phase));
                    gauge!(PROBE_HTTP_DURATION, with_phase).set(us as f64 / 1e6);
                }
            }
            if let Some(code) = r.http_status {
                gauge!(PROBE_HTTP_STATUS, labels.clone()).set(f64::from(code));
            }
            if let Some(expiry) = r.cert_expiry_ms {
                gauge!(PROBE_CERT_EXPIRY, labels.clone()).set((expiry / 1000) as f64);
            }
            if let Some(us) = r.dns_us {
                gauge!(PROBE_DNS_LOOKUP, labels).set(us as f64 / 1e6);
            }
        }
        gauge!(BUFFER).set(self.publish.depth.load(Ordering::Relaxed) as f64);
        gauge!(ASSIGNED).set(self.assigned.load(Ordering::Relaxed) as f64);
        gauge!(CONFIG_OK).set(f64::from(u8::from(self.config_ok.load(Ordering::Relaxed))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn labels(check: &str) -> CheckLabels {
        CheckLabels {
            check: check.into(),
            group: "G".into(),
            kind: "http".into(),
            location: "z1".into(),
        }
    }

    fn result(check: &str) -> ProbeResult {
        let at = config::wire::Timestamp::new(chrono::Utc::now());
        let mut r = ProbeResult::new(check, "h", "a", at, 60_000_000, 1);
        r.facts.http_status = Some(200);
        r
    }

    /// The exposition after one scrape of `m`, on a recorder of its own.
    fn scrape(m: &AgentMetrics) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || m.publish());
        recorder.handle().render()
    }

    #[test]
    fn probe_series_are_exported_for_all_checks_or_none_past_the_limit() {
        let m = AgentMetrics::new(Default::default(), Default::default());
        m.set_check_series_max(2);
        m.assigned.store(2, Ordering::Relaxed);
        for c in ["a", "b"] {
            m.record(labels(c), &result(c));
        }
        let text = scrape(&m);
        assert_eq!(text.matches("probe_success{").count(), 2, "{text}");
        assert!(
            text.contains("probe_http_status_code{check=\"a\""),
            "{text}"
        );

        // A third check assigned: none is exported, not two of three.
        m.assigned.store(3, Ordering::Relaxed);
        m.retain(|_| true);
        m.record(labels("c"), &result("c"));
        let text = scrape(&m);
        assert!(!text.contains("probe_"), "{text}");
        assert!(
            text.contains("statuspage_agent_assigned_checks 3"),
            "{text}"
        );

        // Back within the limit: the series return with the next results.
        m.assigned.store(2, Ordering::Relaxed);
        m.record(labels("a"), &result("a"));
        assert_eq!(scrape(&m).matches("probe_success{").count(), 1);
    }
}

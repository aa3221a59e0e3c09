//! The agent's gauges: blackbox_exporter-compatible `probe_*` per check, and
//! `statuspage_agent_*` for the agent itself (DESIGN §4.5). Counters live
//! where they are counted (scheduler, publisher); gauges describe the present
//! and are set by [`AgentMetrics::publish`] just before each scrape, so a
//! check this agent no longer probes leaves the exposition at the next one.

use crate::publish::PublishStats;
use crate::scheduler::SchedulerStats;
use crate::telemetry::{
    ASSIGNED, BUFFER, CONFIG_OK, PROBE_CERT_EXPIRY, PROBE_DNS_LOOKUP, PROBE_DURATION,
    PROBE_HTTP_DURATION, PROBE_HTTP_STATUS, PROBE_SUCCESS,
};
use config::wire::{Outcome, ProbeResult};
use metrics::{Label, gauge};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The agent's state its gauges publish, and its counters.
#[derive(Debug)]
pub struct AgentMetrics {
    last: Mutex<BTreeMap<CheckLabels, ProbeResult>>,
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

    /// Records the latest result of a check.
    pub fn record(&self, labels: CheckLabels, result: &ProbeResult) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(labels, result.clone());
        }
    }

    /// Forgets checks this agent no longer probes.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut last) = self.last.lock() {
            last.retain(|l, _| keep(&l.check));
        }
    }

    /// Sets every gauge from the present state, with the current recorder;
    /// called just before each scrape.
    pub fn publish(&self) {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        for (l, r) in &last {
            let labels = l.labels();
            let success = if r.outcome == Outcome::Down { 0.0 } else { 1.0 };
            gauge!(PROBE_SUCCESS, labels.clone()).set(success);
            gauge!(PROBE_DURATION, labels.clone()).set(r.duration_us as f64 / 1e6);
            if l.kind == "http" {
                for (phase, us) in [
                    ("resolve", r.phases.dns_us),
                    ("connect", r.phases.connect_us),
                    ("tls", r.phases.tls_us),
                    ("processing", r.phases.ttfb_us),
                    ("transfer", r.phases.transfer_us),
                ] {
                    if let Some(us) = us {
                        let mut with_phase = labels.clone();
                        with_phase.push(Label::new("phase", phase));
                        gauge!(PROBE_HTTP_DURATION, with_phase).set(us as f64 / 1e6);
                    }
                }
            }
            if let Some(code) = r.facts.http_status {
                gauge!(PROBE_HTTP_STATUS, labels.clone()).set(f64::from(code));
            }
            if let Some(expiry) = r.facts.chain_not_after.or(r.facts.cert_not_after) {
                gauge!(PROBE_CERT_EXPIRY, labels.clone()).set((expiry.unix_ms() / 1000) as f64);
            }
            if let Some(us) = r.phases.dns_us {
                gauge!(PROBE_DNS_LOOKUP, labels).set(us as f64 / 1e6);
            }
        }
        gauge!(BUFFER).set(self.publish.depth.load(Ordering::Relaxed) as f64);
        gauge!(ASSIGNED).set(self.assigned.load(Ordering::Relaxed) as f64);
        gauge!(CONFIG_OK).set(f64::from(u8::from(self.config_ok.load(Ordering::Relaxed))));
    }
}

//! The agent's `/metrics`: blackbox_exporter-compatible `probe_*` gauges per
//! check, and `statuspage_agent_*` for the agent itself (DESIGN §4.5).

use crate::publish::PublishStats;
use crate::scheduler::SchedulerStats;
use config::wire::{Outcome, ProbeResult};
use std::collections::BTreeMap;
use std::fmt::Write;
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

/// Everything `/metrics` shows.
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
}

impl AgentMetrics {
    /// Empty metrics around the scheduler's and publisher's counters.
    pub fn new(scheduler: Arc<SchedulerStats>, publish: Arc<PublishStats>) -> Self {
        Self {
            last: Mutex::new(BTreeMap::new()),
            scheduler,
            publish,
            config_ok: AtomicBool::new(false),
            assigned: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        let series =
            |out: &mut String, name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, v) in rows {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            };
        let lbl = |l: &CheckLabels| {
            format!(
                "check=\"{}\",group=\"{}\",kind=\"{}\",location=\"{}\"",
                esc(&l.check),
                esc(&l.group),
                esc(&l.kind),
                esc(&l.location)
            )
        };
        series(
            &mut out,
            "probe_success",
            "Whether the last probe succeeded (degraded counts as success).",
            "gauge",
            last.iter()
                .map(|(l, r)| (lbl(l), if r.outcome == Outcome::Down { 0.0 } else { 1.0 }))
                .collect(),
        );
        series(
            &mut out,
            "probe_duration_seconds",
            "How long the last probe took.",
            "gauge",
            last.iter()
                .map(|(l, r)| (lbl(l), r.duration_us as f64 / 1e6))
                .collect(),
        );
        let mut phases = Vec::new();
        for (l, r) in last.iter().filter(|(l, _)| l.kind == "http") {
            for (phase, us) in [
                ("resolve", r.phases.dns_us),
                ("connect", r.phases.connect_us),
                ("tls", r.phases.tls_us),
                ("processing", r.phases.ttfb_us),
                ("transfer", r.phases.transfer_us),
            ] {
                if let Some(us) = us {
                    phases.push((format!("{},phase=\"{phase}\"", lbl(l)), us as f64 / 1e6));
                }
            }
        }
        series(
            &mut out,
            "probe_http_duration_seconds",
            "Duration of each phase of the last HTTP probe.",
            "gauge",
            phases,
        );
        series(
            &mut out,
            "probe_http_status_code",
            "Status code of the last HTTP probe.",
            "gauge",
            last.iter()
                .filter_map(|(l, r)| Some((lbl(l), f64::from(r.facts.http_status?))))
                .collect(),
        );
        series(
            &mut out,
            "probe_ssl_earliest_cert_expiry",
            "Earliest not-after of the certificate chain, Unix seconds.",
            "gauge",
            last.iter()
                .filter_map(|(l, r)| {
                    Some((
                        lbl(l),
                        (r.facts
                            .chain_not_after
                            .or(r.facts.cert_not_after)?
                            .unix_ms()
                            / 1000) as f64,
                    ))
                })
                .collect(),
        );
        series(
            &mut out,
            "probe_dns_lookup_time_seconds",
            "Duration of the DNS part of the last probe.",
            "gauge",
            last.iter()
                .filter_map(|(l, r)| Some((lbl(l), r.phases.dns_us? as f64 / 1e6)))
                .collect(),
        );

        let p = &self.publish;
        let agent = |out: &mut String, name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        agent(
            &mut out,
            "statuspage_agent_buffer_results",
            "Results waiting to be published.",
            "gauge",
            p.depth.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_results_dropped_total",
            "Results dropped because the buffer was full.",
            "counter",
            p.dropped.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_batches_sent_total",
            "Messages published.",
            "counter",
            p.batches.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_bytes_sent_total",
            "Bytes published.",
            "counter",
            p.bytes.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_spooled_results_total",
            "Results written to the disk spool.",
            "counter",
            p.spooled.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_spool_corrupt_total",
            "Spool lines that could not be read back (skipped).",
            "counter",
            p.spool_corrupt.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_publish_errors_total",
            "Messages that failed to publish (kept for retry).",
            "counter",
            p.errors.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_skipped_runs_total",
            "Slots skipped because the previous run overran.",
            "counter",
            self.scheduler.skipped.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_runs_total",
            "Probes run.",
            "counter",
            self.scheduler.runs.get() as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_assigned_checks",
            "Checks this agent probes.",
            "gauge",
            self.assigned.load(Ordering::Relaxed) as f64,
        );
        agent(
            &mut out,
            "statuspage_agent_config_last_reload_successful",
            "1 if the last config (re)load succeeded.",
            "gauge",
            if self.config_ok.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        );
        let lag = &self.scheduler.lag;
        let _ = writeln!(
            out,
            "# HELP statuspage_agent_schedule_lag_seconds Actual probe start minus its slot.\n# TYPE statuspage_agent_schedule_lag_seconds histogram"
        );
        for (le, n) in lag.cumulative() {
            let _ = writeln!(
                out,
                "statuspage_agent_schedule_lag_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "statuspage_agent_schedule_lag_seconds_bucket{{le=\"+Inf\"}} {}",
            lag.count()
        );
        let _ = writeln!(
            out,
            "statuspage_agent_schedule_lag_seconds_sum {}\nstatuspage_agent_schedule_lag_seconds_count {}",
            lag.sum_seconds(),
            lag.count()
        );
        out
    }
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

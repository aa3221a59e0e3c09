//! The agent's metric names, written once: blackbox_exporter-compatible
//! `probe_*` per check, and `statuspage_agent_*` for the agent itself
//! (DESIGN §4.5). Recording goes through the `metrics` facade; the process's
//! exporter renders.

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// Actual probe start minus its slot.
pub const SCHEDULE_LAG: &str = "statuspage_agent_schedule_lag_seconds";
/// Slots skipped because the previous run overran.
pub const SKIPPED_RUNS: &str = "statuspage_agent_skipped_runs_total";
/// Probes run.
pub const RUNS: &str = "statuspage_agent_runs_total";
/// Results waiting to be published.
pub const BUFFER: &str = "statuspage_agent_buffer_results";
/// Results dropped because the buffer was full.
pub const DROPPED: &str = "statuspage_agent_results_dropped_total";
/// Messages published.
pub const BATCHES: &str = "statuspage_agent_batches_sent_total";
/// Bytes published.
pub const BYTES: &str = "statuspage_agent_bytes_sent_total";
/// Results written to the disk spool.
pub const SPOOLED: &str = "statuspage_agent_spooled_results_total";
/// Spool lines that could not be read back.
pub const SPOOL_CORRUPT: &str = "statuspage_agent_spool_corrupt_total";
/// Messages that failed to publish.
pub const PUBLISH_ERRORS: &str = "statuspage_agent_publish_errors_total";
/// Checks this agent probes.
pub const ASSIGNED: &str = "statuspage_agent_assigned_checks";
/// 1 if the last config (re)load succeeded.
pub const CONFIG_OK: &str = "statuspage_agent_config_last_reload_successful";
/// Whether the last probe succeeded.
pub const PROBE_SUCCESS: &str = "probe_success";
/// How long the last probe took.
pub const PROBE_DURATION: &str = "probe_duration_seconds";
/// Each phase of the last HTTP probe.
pub const PROBE_HTTP_DURATION: &str = "probe_http_duration_seconds";
/// Status code of the last HTTP probe.
pub const PROBE_HTTP_STATUS: &str = "probe_http_status_code";
/// Earliest not-after of the certificate chain.
pub const PROBE_CERT_EXPIRY: &str = "probe_ssl_earliest_cert_expiry";
/// The DNS part of the last probe.
pub const PROBE_DNS_LOOKUP: &str = "probe_dns_lookup_time_seconds";

/// Histograms and their bucket bounds (seconds), for the exporter: schedule
/// lag is fine below 10 ms, where the goal is.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[(
    SCHEDULE_LAG,
    &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ],
)];

/// Gives every family its help text (once per process, after the recorder is installed).
pub fn describe() {
    describe_histogram!(SCHEDULE_LAG, "Actual probe start minus its slot.");
    describe_counter!(
        SKIPPED_RUNS,
        "Slots skipped because the previous run overran."
    );
    describe_counter!(RUNS, "Probes run.");
    describe_gauge!(BUFFER, "Results waiting to be published.");
    describe_counter!(DROPPED, "Results dropped because the buffer was full.");
    describe_counter!(BATCHES, "Messages published.");
    describe_counter!(BYTES, "Bytes published.");
    describe_counter!(SPOOLED, "Results written to the disk spool.");
    describe_counter!(
        SPOOL_CORRUPT,
        "Spool lines that could not be read back (skipped)."
    );
    describe_counter!(
        PUBLISH_ERRORS,
        "Messages that failed to publish (kept for retry)."
    );
    describe_gauge!(ASSIGNED, "Checks this agent probes.");
    describe_gauge!(CONFIG_OK, "1 if the last config (re)load succeeded.");
    describe_gauge!(
        PROBE_SUCCESS,
        "Whether the last probe succeeded (degraded counts as success)."
    );
    describe_gauge!(PROBE_DURATION, "How long the last probe took.");
    describe_gauge!(
        PROBE_HTTP_DURATION,
        "Duration of each phase of the last HTTP probe."
    );
    describe_gauge!(PROBE_HTTP_STATUS, "Status code of the last HTTP probe.");
    describe_gauge!(
        PROBE_CERT_EXPIRY,
        "Earliest not-after of the certificate chain, Unix seconds."
    );
    describe_gauge!(
        PROBE_DNS_LOOKUP,
        "Duration of the DNS part of the last probe."
    );
}

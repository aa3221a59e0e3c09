//! `statuspage rules`: the multiwindow, multi-burn-rate alerts on each
//! check's SLO (the Google SRE workbook, chapter 5), as a Prometheus rules
//! file or a PrometheusRule.
//!
//! The rules are generic: they read each check's objective and window from
//! the leader's `statuspage_check_slo_objective` and
//! `statuspage_check_slo_window_seconds`, and its sampled SLI from
//! `statuspage_check_up`, so no rule is generated per check. An alert's
//! burn-rate factor is the share of the window's budget it may spend in its
//! long window: `share × window / long window`, which for 30 days gives the
//! workbook's 14.4 (2% in 1 h), 6 (5% in 6 h) and 1 (10% in 3 days).

use crate::RulesArgs;
use std::fmt::Write as _;
use std::process::ExitCode;

/// The windows whose error ratios are recorded, in PromQL duration syntax and seconds.
const RANGES: [(&str, u32); 5] = [
    ("5m", 300),
    ("30m", 1_800),
    ("1h", 3_600),
    ("6h", 21_600),
    ("3d", 259_200),
];

/// One pair of windows: the alert fires when both burn the budget faster
/// than spending `share` of it in `long` would.
struct Burn {
    long: &'static str,
    short: &'static str,
    /// The share of the window's budget, in percent.
    share_percent: u32,
}

/// An alert: one or more window pairs, any of which fires it.
struct Alert {
    name: &'static str,
    severity: &'static str,
    burns: &'static [Burn],
    summary: &'static str,
    description: &'static str,
}

const ALERTS: [Alert; 2] = [
    Alert {
        name: "StatusCheckErrorBudgetBurn",
        severity: "critical",
        burns: &[
            Burn {
                long: "1h",
                short: "5m",
                share_percent: 2,
            },
            Burn {
                long: "6h",
                short: "30m",
                share_percent: 5,
            },
        ],
        summary: "{{ $labels.check }} burns its error budget fast",
        description: "{{ $labels.check }} is burning 2% of its error budget an hour, or 5% in six hours: all of it within days.",
    },
    Alert {
        name: "StatusCheckErrorBudgetBurnSlow",
        severity: "warning",
        burns: &[Burn {
            long: "3d",
            short: "6h",
            share_percent: 10,
        }],
        summary: "{{ $labels.check }} burns its error budget steadily",
        description: "{{ $labels.check }} has burned 10% of its error budget in three days and is still burning it.",
    },
];

const HEADER: &str = "\
# The SLO burn-rate rules of statuspage, printed by `statuspage rules` (the chart's
# files/slo-rules.yaml is this output; scripts/check-deploy compares them).
# The SLI here is sampled: statuspage_check_up is 1 (up or degraded) or 0 (down), and absent in
# maintenance and unknown, so those samples count for neither side, as on the page. The page's
# SLI is exact (from every status change); the two differ by what falls between scrapes.
";

fn seconds(range: &str) -> u32 {
    RANGES.iter().find(|r| r.0 == range).map_or(0, |r| r.1)
}

/// The burn threshold of `share_percent` of the budget in `long`: the
/// factor (from each check's window) times its allowed error ratio, capped
/// at 1 so that a check down for the whole long window always fires.
fn threshold(share_percent: u32, long: &str) -> String {
    format!(
        "clamp_max({} * statuspage_check:slo_window:seconds / {} * statuspage_check:slo_error_budget:ratio, 1)",
        f64::from(share_percent) / 100.0,
        seconds(long)
    )
}

fn ratio(range: &str) -> String {
    format!("statuspage_check:slo_errors:ratio_rate{range}")
}

/// The rules as a `groups:` list, indented by `indent` spaces.
fn groups(indent: usize) -> String {
    let mut out = String::new();
    let mut line = |depth: usize, text: &str| {
        let _ = writeln!(out, "{}{text}", " ".repeat(indent + depth));
    };
    line(0, "groups:");
    line(2, "- name: statuspage.slo.sli");
    line(4, "rules:");
    for (range, _) in RANGES {
        line(6, &format!("- record: {}", ratio(range)));
        line(
            8,
            &format!(
                "expr: 1 - sum by (check) (sum_over_time(statuspage_check_up[{range}])) / sum by (check) (count_over_time(statuspage_check_up[{range}]))"
            ),
        );
    }
    line(6, "- record: statuspage_check:slo_error_budget:ratio");
    line(
        8,
        "expr: 1 - max by (check) (statuspage_check_slo_objective)",
    );
    line(6, "- record: statuspage_check:slo_window:seconds");
    line(
        8,
        "expr: max by (check) (statuspage_check_slo_window_seconds)",
    );
    line(2, "- name: statuspage.slo.alerts");
    line(4, "rules:");
    for alert in &ALERTS {
        line(6, &format!("- alert: {}", alert.name));
        line(8, "expr: |");
        for (i, b) in alert.burns.iter().enumerate() {
            let at = threshold(b.share_percent, b.long);
            if i > 0 {
                line(10, "or on (check)");
            }
            line(10, "(");
            line(12, &ratio(b.long));
            line(14, &format!(">= on (check) {at}"));
            line(12, "and on (check)");
            line(12, &ratio(b.short));
            line(14, &format!(">= on (check) {at}"));
            line(10, ")");
        }
        line(8, "labels:");
        line(10, &format!("severity: {}", alert.severity));
        line(8, "annotations:");
        line(10, &format!("summary: \"{}\"", alert.summary));
        line(10, &format!("description: \"{}\"", alert.description));
    }
    out
}

/// The rules in `format` (a plain rules file, or a PrometheusRule), with
/// `preface` (comment lines) after the header.
pub(crate) fn text(format: crate::RulesFormat, preface: &str) -> String {
    match format {
        crate::RulesFormat::Prometheus => format!("{HEADER}{preface}{}", groups(0)),
        crate::RulesFormat::PrometheusRule => format!(
            "{HEADER}{preface}apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: statuspage-slo\n  labels:\n    app.kubernetes.io/name: statuspage\nspec:\n{}",
            groups(2)
        ),
    }
}

/// Prints the rules; with `--config`, first checks the YAML and lists the
/// objectives the rules will see.
pub(crate) fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let mut preface = String::new();
    if !args.config.paths.is_empty() {
        let Some(catalog) = crate::load_catalog(&args.config.paths, config::Sections::Checks)
        else {
            return Ok(ExitCode::from(1));
        };
        let with: Vec<&config::Check> = catalog
            .checks
            .iter()
            .filter(|c| c.slo.is_some())
            .map(|c| &**c)
            .collect();
        if with.is_empty() {
            eprintln!(
                "statuspage: warning: no check in --config has an slo; these rules will never fire"
            );
        }
        preface.push_str("# The objectives in --config:\n");
        for c in with {
            if let Some(slo) = c.slo {
                let _ = writeln!(preface, "#   {}: {slo}", c.id);
            }
        }
    }
    print!("{}", text(args.format, &preface));
    Ok(ExitCode::SUCCESS)
}

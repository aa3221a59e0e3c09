//! `statuspage check`: run checks once from this machine and show what each phase did.

use crate::{CheckArgs, load_catalog, plural};
use anyhow::Context;
use config::wire::{Outcome, ProbeResult, Timestamp};
use probe_agent::Prober;
use std::process::ExitCode;

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(catalog) = load_catalog(&args.config.paths, config::Sections::Checks) else {
        return Ok(ExitCode::from(2));
    };
    let mut selected = Vec::new();
    for id in &args.check {
        match catalog.check(id) {
            Some(c) => selected.push(std::sync::Arc::new(c.clone())),
            None => {
                let known: Vec<&str> = catalog.checks.iter().map(|c| c.id.as_str()).collect();
                let mut close: Vec<(usize, &str)> = known
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(k, id), *k))
                    .filter(|(d, k)| *d <= (id.len() / 3).max(1) || k.contains(id.as_str()))
                    .collect();
                close.sort();
                let close: Vec<&str> = close.into_iter().take(5).map(|(_, k)| k).collect();
                let hint = if close.is_empty() {
                    format!("the checks are: {}", known.join(", "))
                } else {
                    format!("did you mean: {}?", close.join(", "))
                };
                anyhow::bail!("no check with id `{id}`; {hint}");
            }
        }
    }
    if selected.is_empty() {
        selected = catalog.checks.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = runtime.block_on(async {
        let prober = Prober::new(&args.agent_id).context("setting up the prober")?;
        let now = Timestamp::new(chrono::Utc::now());
        let mut tasks = tokio::task::JoinSet::new();
        for (i, check) in selected.iter().cloned().enumerate() {
            let prober = prober.clone();
            tasks.spawn(
                async move { (i, prober.run(&check, now, check.schedule.period(), 1).await) },
            );
        }
        let mut results: Vec<(usize, ProbeResult)> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            results.push(done.context("a probe task failed")?);
        }
        results.sort_by_key(|(i, _)| *i);
        anyhow::Ok(results.into_iter().map(|(_, r)| r).collect::<Vec<_>>())
    })?;
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).context("encoding a result")?);
        }
    } else {
        print!("{}", table(&results));
    }
    let not_up = results.iter().filter(|r| r.outcome != Outcome::Up).count();
    if !args.json {
        println!(
            "\n{} of {} check{} up",
            results.len() - not_up,
            results.len(),
            plural(results.len())
        );
    }
    Ok(if not_up == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ms(us: Option<u64>) -> String {
    us.map(|u| format!("{:.1}ms", u as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The human table: one row per check, then its message and assertions.
fn table(results: &[ProbeResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:<8}  {:<18}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}\n",
        "CHECK", "OUTCOME", "REASON", "TOTAL", "DNS", "CONNECT", "TLS", "TTFB", "TRANSFER"
    );
    for r in results {
        let p = &r.phases;
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:<18}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}\n",
            r.check,
            r.outcome.as_str(),
            r.reason.as_str(),
            ms(Some(r.duration_us)),
            ms(p.dns_us),
            ms(p.connect_us),
            ms(p.tls_us),
            ms(p.ttfb_us),
            ms(p.transfer_us)
        ));
    }
    for r in results {
        out.push_str(&format!("\n{}: {}\n", r.check, r.message));
        for a in &r.assertions {
            let mark = if a.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("  {mark}  {}  (got {})\n", a.name, a.actual));
        }
    }
    out
}

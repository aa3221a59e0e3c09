//! The scheduler on a paused tokio clock: spread, alignment, overruns,
//! the concurrency bound, shutdown and reload.

use crate::meter::Meter;
use chrono::{TimeZone, Utc};
use config::Check;
use config::wire::ProbeResult;
use probe_agent::scheduler::{Clock, Scheduler, Slot, next_slot, phase};
use probe_agent::telemetry::{RUNS, SCHEDULE_LAG, SKIPPED_RUNS};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn checks(yaml_checks: &str) -> Vec<Arc<Check>> {
    let text = format!("groups:\n  - name: S\n    checks:\n{yaml_checks}");
    let env = |_: &str| None;
    config::load_str(&[("s.yaml".into(), text)], &env)
        .unwrap()
        .checks
}

fn one(interval: &str, name: &str) -> Arc<Check> {
    checks(&format!("      - name: {name}\n        interval: {interval}\n        timeout: 1s\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n")).remove(0)
}

/// What a probe returns here: the scheduler is under test, not the probe.
fn result_for(slot: &Slot) -> ProbeResult {
    ProbeResult::new(
        slot.check.id.as_str(),
        slot.check.config_hash,
        "agent-a",
        slot.scheduled_at,
        slot.interval.as_micros() as u64,
        slot.assigned,
    )
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

#[test]
fn ten_thousand_checks_spread_over_the_interval() {
    let interval = Duration::from_secs(30);
    let mut per_second = [0usize; 30];
    for i in 0..10_000 {
        let p = phase(&format!("check-{i}"), "agent-a", interval);
        assert!(p < interval);
        per_second[p.as_secs() as usize] += 1;
    }
    let mean = 10_000 / 30;
    assert!(
        per_second
            .iter()
            .all(|n| *n < mean * 13 / 10 && *n > mean * 7 / 10),
        "{per_second:?}"
    );
    assert_eq!(
        phase("check-1", "agent-a", interval),
        phase("check-1", "agent-a", interval)
    );
    assert_ne!(
        phase("check-1", "agent-a", interval),
        phase("check-1", "agent-b", interval),
        "agents of one check are staggered too"
    );
}

#[test]
fn interval_slots_sit_on_the_unix_clock_at_their_phase() {
    let c = one("30s", "A");
    let t = start();
    let p = Duration::from_millis(7_250);
    let s1 = next_slot(&c.schedule, p, t).unwrap();
    assert_eq!(s1, t + chrono::Duration::milliseconds(7_250));
    assert_eq!(
        next_slot(&c.schedule, p, s1).unwrap(),
        s1 + chrono::Duration::seconds(30)
    );
    assert_eq!(
        next_slot(&c.schedule, p, s1 - chrono::Duration::milliseconds(1)).unwrap(),
        s1
    );
}

#[test]
fn cron_slots_follow_the_expression() {
    let c = checks("      - name: C\n        schedule: \"*/5 * * * *\"\n        timeout: 1s\n        tcp: { host: 127.0.0.1, port: 9 }\n").remove(0);
    let t = Utc.with_ymd_and_hms(2026, 6, 1, 12, 3, 10).unwrap();
    assert_eq!(
        next_slot(&c.schedule, Duration::ZERO, t).unwrap(),
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 5, 0).unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn runs_never_overlap_and_an_overrun_skips_the_next_slots() {
    let check = one("10s", "Slow");
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(16);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(probe_agent::scheduler::SchedulerStats::default));
    let shutdown = CancellationToken::new();
    let active = Arc::new(AtomicUsize::new(0));
    let probe = {
        let active = active.clone();
        move |slot: Slot| {
            let active = active.clone();
            async move {
                assert_eq!(
                    active.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two runs of one check overlap"
                );
                tokio::time::sleep(Duration::from_secs(25)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                result_for(&slot)
            }
        }
    };
    let mut scheduler = Scheduler::new("agent-a", clock, 4, probe, tx, stats, shutdown);
    scheduler.apply(vec![(check.clone(), 1)]);
    let first = rx.recv().await.unwrap();
    let second = rx.recv().await.unwrap();
    let gap = second.scheduled_at.unix_ms() - first.scheduled_at.unix_ms();
    assert_eq!(gap, 30_000, "the two slots during the 25 s run are skipped");
    assert!(
        meter.value(SKIPPED_RUNS) >= 2,
        "skips counted: {}",
        meter.text()
    );
    scheduler.drain().await;
}

#[tokio::test(start_paused = true)]
async fn the_semaphore_bounds_probes_across_checks() {
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let probe = {
        let (now, peak) = (now.clone(), peak.clone());
        move |slot: Slot| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                result_for(&slot)
            }
        }
    };
    let mut scheduler =
        Scheduler::new("agent-a", clock, 2, probe, tx, Default::default(), shutdown);
    // A cron schedule has no phase: all six fire at the same second.
    let all: Vec<_> = checks(&(0..6).map(|i| format!("      - name: C{i}\n        schedule: \"*/10 * * * * *\"\n        timeout: 1s\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n")).collect::<String>())
        .into_iter()
        .map(|c| (c, 1))
        .collect();
    scheduler.apply(all);
    tokio::time::sleep(Duration::from_secs(40)).await;
    let mut got = 0;
    while rx.try_recv().is_ok() {
        got += 1;
    }
    assert!(got >= 6, "{got}");
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    scheduler.drain().await;
}

#[tokio::test(start_paused = true)]
async fn the_slot_time_is_the_result_id_and_lag_is_measured() {
    let check = one("30s", "Id");
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(4);
    let meter = Meter::new();
    let stats = Arc::new(meter.make(probe_agent::scheduler::SchedulerStats::default));
    let shutdown = CancellationToken::new();
    let mut scheduler = Scheduler::new(
        "agent-a",
        clock,
        1,
        |s: Slot| async move { result_for(&s) },
        tx,
        stats,
        shutdown,
    );
    scheduler.apply(vec![(check.clone(), 3)]);
    let r = rx.recv().await.unwrap();
    let expected = next_slot(
        &check.schedule,
        phase("s-id", "agent-a", Duration::from_secs(30)),
        start(),
    )
    .unwrap();
    assert_eq!(r.scheduled_at.datetime(), expected);
    assert_eq!(
        r.id,
        format!("s-id/agent-a/{}", expected.timestamp_millis())
    );
    assert_eq!(r.assigned, 3);
    assert_eq!(
        config::exposition::value(
            &meter.text(),
            "statuspage_agent_schedule_lag_seconds_count",
            &[]
        ),
        Some(1.0)
    );
    assert_eq!(
        meter.quantile_bound(SCHEDULE_LAG, 0.99),
        Some(0.0005),
        "on a paused clock the start is on time"
    );
    scheduler.drain().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_scheduling_but_lets_the_running_probe_finish() {
    let check = one("30s", "Busy");
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let started = Arc::new(tokio::sync::Notify::new());
    let probe = {
        let started = started.clone();
        move |slot: Slot| {
            let started = started.clone();
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(2)).await;
                result_for(&slot)
            }
        }
    };
    let mut scheduler =
        Scheduler::new("agent-a", clock, 4, probe, tx, Default::default(), shutdown);
    scheduler.apply(vec![(check, 1)]);
    started.notified().await;
    scheduler.drain().await;
    assert!(
        rx.recv().await.is_some(),
        "the in-flight result is delivered"
    );
    assert!(
        rx.recv().await.is_none(),
        "and nothing is scheduled after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_checks_on_their_schedule() {
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let meter = Meter::new();
    let mut scheduler = Scheduler::new(
        "agent-a",
        clock,
        4,
        |s: Slot| async move { result_for(&s) },
        tx,
        Arc::new(meter.make(probe_agent::scheduler::SchedulerStats::default)),
        shutdown,
    );
    let a = one("10s", "A");
    let b = one("10s", "B");
    scheduler.apply(vec![(a.clone(), 1), (b.clone(), 1)]);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let runs_before = meter.value(RUNS);
    // Reload: A unchanged, B changed (new interval), C new.
    let b2 = one("20s", "B");
    let c = one("10s", "C");
    scheduler.apply(vec![(a.clone(), 1), (b2, 1), (c, 1)]);
    assert_eq!(scheduler.len(), 3);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut a_slots = Vec::new();
    while let Ok(r) = rx.try_recv() {
        if r.check == a.id.as_str() {
            a_slots.push(r.scheduled_at.unix_ms());
        }
    }
    assert!(meter.value(RUNS) > runs_before);
    assert!(
        a_slots.windows(2).all(|w| w[1] - w[0] == 10_000),
        "A kept its 10 s rhythm across the reload: {a_slots:?}"
    );
    let first = phase("s-a", "agent-a", Duration::from_secs(10)).as_millis() as u64;
    let expected = (0..).take_while(|k| first + k * 10_000 <= 55_000).count();
    assert_eq!(
        a_slots.len(),
        expected,
        "no slot of A was lost or doubled by the reload: {a_slots:?}"
    );
    scheduler.apply(vec![]);
    assert!(scheduler.is_empty());
    scheduler.drain().await;
}

#[test]
fn a_cron_slot_reports_the_gap_to_its_own_next_slot() {
    use probe_agent::scheduler::gap_after;
    let c = checks("      - name: Uneven\n        schedule: \"0 0,10 * * * *\"\n        timeout: 1s\n        tcp: { host: 127.0.0.1, port: 9 }\n").remove(0);
    let at = |m| Utc.with_ymd_and_hms(2026, 6, 1, 12, m, 0).unwrap();
    assert_eq!(
        gap_after(&c.schedule, Duration::ZERO, at(0)),
        Duration::from_secs(600)
    );
    assert_eq!(
        gap_after(&c.schedule, Duration::ZERO, at(10)),
        Duration::from_secs(3000)
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_larger_than_a_chunk_runs_every_check_once_per_interval_and_a_smaller_one_stops_the_rest()
 {
    let clock = Clock::starting_at(start());
    let (tx, mut rx) = mpsc::channel(16_384);
    let mut scheduler = Scheduler::new(
        "agent-a",
        clock,
        64,
        |s: Slot| async move { result_for(&s) },
        tx,
        Default::default(),
        CancellationToken::new(),
    );
    let yaml: String = (0..5_000).map(|i| format!("      - name: C{i}\n        interval: 10s\n        timeout: 1s\n        tcp: {{ host: 127.0.0.1, port: 9 }}\n")).collect();
    let all = checks(&yaml);
    scheduler.apply(all.iter().map(|c| (c.clone(), 1)).collect());
    tokio::time::sleep(Duration::from_secs(11)).await;
    // Each check has exactly one slot in the first interval (start is on
    // the 10 s grid).
    let first = start().timestamp_millis()..=start().timestamp_millis() + 10_000;
    let mut seen = std::collections::HashMap::new();
    while let Ok(r) = rx.try_recv() {
        if first.contains(&r.scheduled_at.unix_ms()) && r.scheduled_at.unix_ms() > *first.start() {
            *seen.entry(r.check).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 5_000, "every check ran");
    assert!(seen.values().all(|n| *n == 1), "and once each");

    // Keep the first 1,000: the other 4,000 stop.
    scheduler.apply(all[..1_000].iter().map(|c| (c.clone(), 1)).collect());
    tokio::time::sleep(Duration::from_secs(1)).await;
    while rx.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut ran = std::collections::HashSet::new();
    while let Ok(r) = rx.try_recv() {
        ran.insert(r.check);
    }
    let kept: std::collections::HashSet<String> =
        all[..1_000].iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ran, kept);
    scheduler.drain().await;
}

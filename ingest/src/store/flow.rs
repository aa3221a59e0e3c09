//! One write (the messages of a receive) and the status recompute, written
//! once for both databases over [`Ops`].
//!
//! States are computed before the insert, from the pairs' buffers: a result
//! the buffer calls new cannot be in the table (the buffer holds the newest R
//! of its pair, and the check row lock, or SQLite's single writer, serializes
//! writers), so PostgreSQL copies those rows in without a conflict check
//! ([`NewRow::fresh`]). The insert's answer is checked against that; should
//! they ever disagree, the slow path admits only what was really inserted
//! (and on PostgreSQL the whole write runs again upserting).

use super::ops::{At, Decided, NewRow, Ops, PairKey, RowKey};
use super::{CheckRow, StoreError, Stored};
use crate::incident::{self, Action};
use crate::rollup::{self, Level, Rollups};
use crate::state::{Admission, Entry, Millis, Pair, PairState, Verdict};
use crate::status::{Sample, Status};
use crate::timeline::{self, Loaded};
use config::wire::{AgentInfo, Outcome, ProbeResult, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The interval a result claims, in ms, as stored.
pub(crate) fn interval_ms(r: &ProbeResult) -> i64 {
    ((r.interval_us / 1000) as i64).clamp(1, i64::from(i32::MAX))
}

/// One screened message: its agent, when it was sent, its accepted results.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The agent that sent it.
    pub agent: &'a AgentInfo,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// Its accepted results.
    pub results: &'a [ProbeResult],
}

/// A result and its (locked) check row.
#[derive(Clone, Copy)]
struct Res<'a> {
    check: &'a CheckRow,
    result: &'a ProbeResult,
}

impl Res<'_> {
    /// Its `(check, scheduled_at)`.
    fn key(&self) -> At {
        (self.check.id, self.result.scheduled_at.unix_ms())
    }
}

/// One agent's part of a write: its results (repeats across messages
/// dropped), what admitting them decided, and what was inserted.
struct AgentPart<'a> {
    id: i32,
    results: Vec<Res<'a>>,
    admitted: Admitted,
    inserted: BTreeSet<At>,
}

/// Stores several screened messages as one write; the caller commits. The
/// messages of one agent are folded together, and what is per check (the
/// check row locks, the rollups, the status recompute) is done once for all:
/// a receive of ten messages costs about what one does, not ten times it.
pub(crate) async fn write_messages<O: Ops>(
    ops: &mut O,
    messages: &[Message<'_>],
    now: Millis,
) -> Result<Stored, StoreError> {
    // Per agent, in the order first seen: the newest send time and the
    // results.
    let mut agents: Vec<(&AgentInfo, Timestamp, Vec<&ProbeResult>)> = Vec::new();
    for m in messages {
        let at = match agents.iter().position(|(a, _, _)| a.id == m.agent.id) {
            Some(i) => i,
            None => {
                agents.push((m.agent, m.sent_at, Vec::new()));
                agents.len() - 1
            }
        };
        let entry = &mut agents[at];
        if m.sent_at.unix_ms() > entry.1.unix_ms() {
            entry.1 = m.sent_at;
        }
        entry.2.extend(m.results);
    }
    // Agents in id order: two writers lock their rows in the same order.
    agents.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let seen: Vec<(&AgentInfo, Millis)> = agents
        .iter()
        .map(|(agent, sent_at, _)| (*agent, sent_at.unix_ms().min(now)))
        .collect();
    let ids = ops.upsert_agents(&seen).await?;
    let total: usize = agents.iter().map(|a| a.2.len()).sum();
    if total == 0 {
        // Heartbeats.
        return Ok(Stored::default());
    }
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for r in agents.iter().flat_map(|a| a.2.iter()) {
        let w = wanted.entry(r.check.as_str()).or_default();
        *w = (*w).max(interval_ms(r));
    }
    let wanted: Vec<(&str, i64)> = wanted.into_iter().collect();
    let checks = ops.lock_checks(&wanted).await?;
    let by_slug: HashMap<&str, &CheckRow> = checks.iter().map(|c| (c.slug.as_str(), c)).collect();
    let check_ids: Vec<i32> = checks.iter().map(|c| c.id).collect();

    // Each result with its check, without the repeats a redelivered message
    // brings.
    let mut repeats = 0_u64;
    let agents: Vec<(i32, &AgentInfo, Vec<Res>)> = agents
        .into_iter()
        .zip(ids)
        .map(|((agent, _, results), id)| {
            let mut seen = HashSet::with_capacity(results.len());
            let mut kept = Vec::with_capacity(results.len());
            for result in results {
                let Some(check) = by_slug.get(result.check.as_str()) else {
                    continue;
                };
                let r = Res { check, result };
                if seen.insert(r.key()) {
                    kept.push(r);
                } else {
                    repeats += 1;
                }
            }
            (id, agent, kept)
        })
        .collect();
    let parts = write_results(ops, agents, &check_ids).await?;

    let mut add = Rollups::new();
    let mut widest: BTreeMap<i32, i64> = BTreeMap::new();
    // Each part's own samples, per check, for the recompute's fast path.
    let mut fresh: BTreeMap<i32, Vec<Sample>> = BTreeMap::new();
    // Each check's newest certificate expiry in this write: (at, expiry).
    let mut certs: BTreeMap<i32, (Millis, Millis)> = BTreeMap::new();
    let mut from: BTreeMap<i32, Millis> = BTreeMap::new();
    let mut moved: BTreeSet<i32> = BTreeSet::new();
    let mut stored = Stored {
        duplicate: repeats,
        ..Stored::default()
    };
    for part in &parts {
        stored.inserted += part.inserted.len() as u64;
        stored.duplicate += (part.results.len() - part.inserted.len()) as u64;
        stored.too_old += part.admitted.too_old;
        moved.extend(part.admitted.late.keys().map(|k| k.0));
        for (&check, &f) in &part.admitted.from {
            let e = from.entry(check).or_insert(f);
            *e = (*e).min(f);
        }
        for res in &part.results {
            let (check, at) = res.key();
            let r = res.result;
            if !part.inserted.contains(&(check, at)) {
                continue;
            }
            let p = &r.phases;
            let durations = [
                Some(r.duration_us),
                p.dns_us,
                p.connect_us,
                p.tls_us,
                p.ttfb_us,
                p.transfer_us,
            ];
            rollup::add(&mut add, check, at, r.outcome == Outcome::Up, durations);
            let w = widest.entry(check).or_default();
            *w = (*w).max(interval_ms(r));
            if let Some(expiry) = cert_expiry(&r.facts)
                && certs.get(&check).is_none_or(|c| c.0 <= at)
            {
                certs.insert(check, (at, expiry));
            }
            if let Some(state) = part.admitted.states.get(&(check, at)) {
                fresh.entry(check).or_default().push(Sample {
                    pair: i64::from(part.id),
                    at,
                    state: *state,
                    interval_ms: interval_ms(r),
                    assigned: r.assigned,
                    reason: super::reason_text(super::reason_code(&r.reason)),
                });
            }
        }
    }
    let keys: Vec<_> = add.keys().copied().collect();
    let mut stored_rollups = BTreeSet::new();
    for (key, old) in ops.load_rollups(&keys).await? {
        if let Some(r) = add.get_mut(&key) {
            r.merge(&old);
            stored_rollups.insert(key);
        }
    }
    ops.save_rollups(&add, Some(&stored_rollups)).await?;

    let mut due = Vec::new();
    for check in &checks {
        let mut check = check.clone();
        if let Some(&w) = widest.get(&check.id)
            && w > check.interval_ms
        {
            check.interval_ms = w;
            ops.widen_interval(check.id, w).await?;
        }
        if let Some(&from) = from.get(&check.id) {
            // Late rows moved: their stored states changed, so read them back.
            let own = if moved.contains(&check.id) {
                None
            } else {
                fresh.remove(&check.id)
            };
            let cert_not_after = certs.get(&check.id).map(|c| c.1);
            due.push(Due {
                check,
                from,
                fresh: own,
                cert_not_after,
            });
        }
    }
    stored.changed = recompute(ops, &due, None).await?;
    Ok(stored)
}

/// Every agent's results admitted into its pairs, then inserted, late states
/// and pairs written: one statement each for all the agents.
async fn write_results<'a, O: Ops>(
    ops: &mut O,
    agents: Vec<(i32, &AgentInfo, Vec<Res<'a>>)>,
    check_ids: &[i32],
) -> Result<Vec<AgentPart<'a>>, StoreError> {
    let ids: Vec<i32> = agents.iter().map(|a| a.0).collect();
    let stored = ops.load_pairs(&ids, check_ids).await?;
    let of_agent = |id: i32| -> BTreeMap<i32, Pair> {
        stored
            .range((id, i32::MIN)..=(id, i32::MAX))
            .map(|((_, check), pair)| (*check, pair.clone()))
            .collect()
    };
    let mut work = Vec::with_capacity(agents.len());
    let mut rows: Vec<NewRow> = Vec::new();
    for (id, agent, results) in agents {
        let mut pairs = of_agent(id);
        let admitted = admit(&mut pairs, &results, |_| true);
        for r in &results {
            let key = r.key();
            rows.push(NewRow {
                agent: id,
                check: key.0,
                result: r.result,
                state: admitted.states.get(&key).map(|s| s.code()),
                fresh: admitted.placed.contains(&key),
            });
        }
        work.push((
            agent,
            pairs,
            AgentPart {
                id,
                results,
                admitted,
                inserted: BTreeSet::new(),
            },
        ));
    }
    let inserted = ops.insert_results(&rows).await?;
    let mut late: BTreeMap<RowKey, PairState> = BTreeMap::new();
    let mut all_pairs: BTreeMap<PairKey, Pair> = BTreeMap::new();
    let mut parts = Vec::with_capacity(work.len());
    for (agent, mut pairs, mut part) in work {
        let id = part.id;
        part.inserted = inserted
            .range((id, i32::MIN, Millis::MIN)..=(id, i32::MAX, Millis::MAX))
            .map(|k| (k.1, k.2))
            .collect();
        let mine = &part.inserted;
        if part.admitted.placed.iter().any(|k| !mine.contains(k)) {
            // The buffers and the table disagree: admit only what was
            // inserted, and write those rows' states afterwards.
            tracing::warn!(event = "pair_buffer_mismatch", agent = %agent.id);
            pairs = of_agent(id);
            let mut admitted = admit(&mut pairs, &part.results, |k| mine.contains(&k));
            let fresh: Vec<(At, PairState)> = admitted
                .states
                .iter()
                .filter(|(k, _)| mine.contains(k))
                .map(|(k, s)| (*k, *s))
                .collect();
            admitted.late.extend(fresh);
            part.admitted = admitted;
        }
        late.extend(part.admitted.late.iter().map(|(k, s)| ((id, k.0, k.1), *s)));
        all_pairs.extend(pairs.into_iter().map(|(check, p)| ((id, check), p)));
        parts.push(part);
    }
    ops.write_states(&late).await?;
    let stored_pairs: BTreeSet<PairKey> = stored.keys().copied().collect();
    ops.save_pairs(&all_pairs, &stored_pairs).await?;
    Ok(parts)
}

/// What admitting a batch into its pairs decided.
#[derive(Debug, Default)]
struct Admitted {
    /// `(check, at)` of each result placed in its buffer.
    placed: BTreeSet<At>,
    /// The state after each result whose state was (re)computed.
    states: BTreeMap<At, PairState>,
    /// Of those, the ones of rows already in the table whose state a late
    /// result changed (only those are rewritten).
    late: BTreeMap<At, PairState>,
    /// Per check, the earliest instant whose status may have moved.
    from: BTreeMap<i32, Millis>,
    too_old: u64,
}

fn admit(pairs: &mut BTreeMap<i32, Pair>, results: &[Res], keep: impl Fn(At) -> bool) -> Admitted {
    let mut out = Admitted::default();
    let batch: HashSet<At> = results.iter().map(Res::key).collect();
    for res in results {
        let (check, r) = (res.check, res.result);
        let key = res.key();
        if !keep(key) {
            continue;
        }
        let t = check.thresholds();
        let pair = pairs.entry(check.id).or_default();
        // The states stored rows have now, when a result lands before some
        // of them: only those that change are rewritten.
        let had: BTreeMap<Millis, PairState> = if pair.newest().is_some_and(|n| n > key.1) {
            pair.states(t).into_iter().collect()
        } else {
            BTreeMap::new()
        };
        match pair.admit(
            Entry {
                at: key.1,
                verdict: Verdict::from(&r.outcome),
            },
            t,
        ) {
            Admission::Placed { from } => {
                out.placed.insert(key);
                for (at, s) in pair.states(t).into_iter().filter(|(at, _)| *at >= from) {
                    out.states.insert((check.id, at), s);
                    if !batch.contains(&(check.id, at)) && had.get(&at) != Some(&s) {
                        out.late.insert((check.id, at), s);
                    }
                }
                let f = out.from.entry(check.id).or_insert(from);
                *f = (*f).min(from);
            }
            Admission::TooOld => out.too_old += 1,
            Admission::Duplicate => {}
        }
    }
    out
}

/// A check whose status must be recomputed from `from`.
#[derive(Debug)]
pub(crate) struct Due {
    pub check: CheckRow,
    pub from: Millis,
    /// The samples this message added (`None` when stored rows' states moved,
    /// or for a tick).
    pub fresh: Option<Vec<Sample>>,
    /// The newest certificate expiry this message saw for the check.
    pub cert_not_after: Option<Millis>,
}

/// Recomputes each check's status changes from its `from` (or its
/// `decided_through`, if earlier) through its newest sample, or through
/// `through` when a tick decides silence up to now. Rewrites the changes
/// that moved and applies the incident actions. Returns the checks whose
/// status changes or incidents changed.
///
/// In-order data takes a fast path: when no location's newest sample is
/// after `from` and there is a status before it, those newest samples and
/// the message's own are all [`crate::status::relevant`] would keep, so
/// nothing is read from the results table.
pub(crate) async fn recompute<O: Ops>(
    ops: &mut O,
    due: &[Due],
    through: Option<Millis>,
) -> Result<Vec<String>, StoreError> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    // Start no later than what was decided before, so instants between the
    // old horizon and the new results (a window's end, a silence) are decided.
    let spans: Vec<(&CheckRow, Millis, Millis)> = due
        .iter()
        .map(|d| {
            let from = d.check.decided_through.map_or(d.from, |t| d.from.min(t));
            (
                &d.check,
                from,
                from - timeline::lookback(d.check.interval_ms),
            )
        })
        .collect();
    let froms: Vec<At> = spans.iter().map(|(c, from, _)| (c.id, *from)).collect();
    let ids: Vec<i32> = spans.iter().map(|(c, _, _)| c.id).collect();
    let slugs: Vec<&str> = spans.iter().map(|(c, _, _)| c.slug.as_str()).collect();
    let before = ops.load_before(&froms).await?;
    let fast: Vec<bool> = spans
        .iter()
        .zip(due)
        .map(|((c, from, _), d)| {
            before.contains_key(&c.id)
                && (d.fresh.is_some() || through.is_some())
                && c.latest
                    .as_ref()
                    .is_some_and(|l| l.iter().all(|s| s.at <= *from))
        })
        .collect();
    let (mut slow_lows, mut slow_froms) = (Vec::new(), Vec::new());
    for ((c, from, low), f) in spans.iter().zip(&fast) {
        if !f {
            slow_lows.push((c.id, *low));
            slow_froms.push((c.id, *from));
        }
    }
    let mut loaded = if slow_lows.is_empty() {
        BTreeMap::new()
    } else {
        ops.load_samples(&slow_lows, &slow_froms).await?
    };
    let mut olds = ops.load_old(&froms).await?;
    let low = spans.iter().map(|s| s.2).min().unwrap_or(0);
    let windows = ops.load_windows(&slugs, low).await?;
    let latest = ops.load_latest(&ids).await?;
    let members = ops.load_fleet().await?;

    let mut plans = Vec::new();
    let mut certs: BTreeMap<i32, Option<Millis>> = BTreeMap::new();
    for ((&(check, from, low), d), fast) in spans.iter().zip(due).zip(&fast) {
        certs.insert(check.id, d.cert_not_after);
        let samples = if *fast {
            let mut s = check.latest.clone().unwrap_or_default();
            s.extend(d.fresh.iter().flatten().cloned());
            s
        } else {
            let all = loaded.remove(&check.id).unwrap_or_default();
            crate::status::relevant(all, from, low, before.get(&check.id).copied())
        };
        let summary = newest_per_location(check.latest.as_deref(), &samples);
        let newest = samples.iter().map(|x| x.at).max().unwrap_or(from);
        let decided = check.decided_through.unwrap_or(from);
        let until = through.unwrap_or(newest).max(newest).max(decided).max(from);
        let mine: Vec<(Millis, Millis)> = windows
            .iter()
            .filter(|(checks, _, _)| checks.contains(&check.slug))
            .map(|(_, a, b)| (*a, *b))
            .collect();
        let old = olds.remove(&check.id).unwrap_or_default();
        let plan = timeline::plan(
            Loaded {
                samples: &samples,
                before: before.get(&check.id).copied(),
                old: &old,
                windows: &mine,
                latest: latest.get(&check.id).cloned(),
                electorate: crate::status::Electorate {
                    check: &check.slug,
                    locations: check.locations,
                    members: &members,
                    interval_ms: check.interval_ms,
                },
            },
            from,
            until,
            &check.rules(),
        );
        plans.push((check, from, until, plan, summary));
    }

    let decided: Vec<Decided> = plans
        .iter()
        .map(|(c, _, until, _, summary)| Decided {
            check: c.id,
            through: *until,
            latest: super::encode_latest(summary),
            cert_not_after: certs.get(&c.id).copied().flatten(),
            quiet_until: quiet_until(summary, *until, c.interval_ms),
        })
        .collect();
    ops.set_decided(&decided).await?;
    let rewrites: Vec<(i32, Millis, &[crate::status::Change])> = plans
        .iter()
        .filter(|p| p.3.rewrite)
        .map(|(c, from, _, p, _)| (c.id, *from, p.changes.as_slice()))
        .collect();
    if !rewrites.is_empty() {
        ops.write_changes(&rewrites).await?;
        for (check, _, _, plan, _) in plans.iter().filter(|p| p.3.rewrite) {
            ops.check_events(check, &plan.changes).await?;
        }
    }
    let mut changed = Vec::new();
    let mut statuses = Vec::new();
    for (check, _, _, plan, _) in &plans {
        // An incident opened by this plan has id 0 in later actions of the
        // same plan until the database gives it its id.
        let mut opened = 0;
        for (action, _) in &plan.actions {
            opened = ops.apply_action(check, &with_id(action, opened)).await?;
            tracing::info!(event = "incident", check = %check.slug, incident = opened, action = ?action);
        }
        if plan.rewrite || !plan.actions.is_empty() {
            changed.push(check.slug.clone());
            statuses.push((check.id, plan.current.unwrap_or(Status::Unknown)));
        }
    }
    if !statuses.is_empty() {
        ops.set_statuses(&statuses, &changed).await?;
    }
    Ok(changed)
}

/// Each location's newest sample: the old summary, updated by `used` (a
/// sample at the same instant replaces the old one, whose state may have
/// moved).
/// The earliest not-after of a result's certificate chain, if it saw one.
fn cert_expiry(facts: &config::wire::Facts) -> Option<Millis> {
    [facts.cert_not_after, facts.chain_not_after]
        .into_iter()
        .flatten()
        .map(|t| t.unix_ms())
        .min()
}

/// How long past its reporting window a location's newest sample stays in
/// `checks.latest`. A location silent that long while another reports is no
/// longer assigned (a node scaled away): it reports at no instant a later
/// write or tick decides, and keeping it would grow the row with every node
/// that ever probed the check, past TOAST size on an autoscaled cluster.
pub(crate) const LATEST_KEPT_MS: Millis = 3_600_000;

/// The first instant after `until` at which the status decided through
/// `until` could change with no new result: when a location's newest sample
/// falls silent ([`crate::status::changes`] looks at exactly those instants,
/// besides samples, maintenance boundaries and agents leaving the fleet),
/// and one interval after `until` at the latest, so a check that hears
/// nothing is still decided once an interval (agents leaving the fleet).
/// Results that keep coming are decided by their writes; the tick looks at a
/// check only from this instant on, or when a maintenance window starts or
/// ends, rather than every quarter interval.
fn quiet_until(newest: &[Sample], until: Millis, interval_ms: i64) -> Millis {
    newest
        .iter()
        .map(|s| s.at + crate::status::REPORTING_INTERVALS * s.interval_ms.max(1))
        .filter(|&silent| silent > until)
        .fold(until + interval_ms.max(1), Millis::min)
}

fn newest_per_location(old: Option<&[Sample]>, used: &[Sample]) -> Vec<Sample> {
    let mut by: BTreeMap<i64, Sample> = BTreeMap::new();
    for s in old.into_iter().flatten().chain(used) {
        if by.get(&s.pair).is_none_or(|n| n.at <= s.at) {
            by.insert(s.pair, s.clone());
        }
    }
    let newest = by.values().map(|s| s.at).max().unwrap_or(0);
    by.into_values()
        .filter(|s| {
            let window = crate::status::REPORTING_INTERVALS * s.interval_ms.max(1);
            s.at + window + LATEST_KEPT_MS >= newest
        })
        .collect()
}

fn with_id(action: &Action, opened: i64) -> Action {
    let mut a = action.clone();
    if let Action::Reopen { id, .. }
    | Action::Resolve { id, .. }
    | Action::Monitor { id, .. }
    | Action::Revise { id, .. } = &mut a
        && *id == 0
    {
        *id = opened;
    }
    a
}

/// Folds the changed rows of `level` of these checks into their parents
/// (minutes into hours, hours into days), each parent recomputed whole from
/// its parts, so folding is exact and idempotent. Locks the checks first:
/// a write changes a check's minutes only under its lock, so every row
/// marked folded here is one that was read. A few statements whatever the
/// number of checks. Returns the parent rows written.
pub(crate) async fn fold<O: Ops>(
    ops: &mut O,
    level: Level,
    checks: &[i32],
) -> Result<usize, StoreError> {
    let Some(parent) = level.parent() else {
        return Ok(0);
    };
    ops.lock_ids(checks).await?;
    let dirty = ops.unfolded_of(level, checks).await?;
    if dirty.is_empty() {
        return Ok(0);
    }
    let parents: BTreeSet<At> = dirty.iter().map(|&(c, b)| (c, parent.bucket(b))).collect();
    let parents: Vec<At> = parents.into_iter().collect();
    let mut out = Rollups::new();
    for &(check, start) in &parents {
        out.insert((parent, check, start), rollup::Rollup::default());
    }
    for ((check, start), part) in ops.load_parts(level, &parents).await? {
        if let Some(whole) = out.get_mut(&(parent, check, start)) {
            whole.merge(&part);
        }
    }
    let folded: BTreeSet<i32> = dirty.iter().map(|d| d.0).collect();
    ops.mark_folded(level, &folded.into_iter().collect::<Vec<_>>())
        .await?;
    ops.save_rollups(&out, None).await?;
    Ok(out.len())
}

/// Resolves the check's open automatic incident because it was retired.
pub(crate) async fn retire<O: Ops>(
    ops: &mut O,
    check: &CheckRow,
    now: Millis,
) -> Result<(), StoreError> {
    let latest = ops.load_latest(&[check.id]).await?;
    if let Some(action) = incident::on_retired(latest.get(&check.id), now) {
        ops.apply_action(check, &action).await?;
    }
    Ok(())
}

//! An in-memory [`Ops`], for property tests of the real message flow and
//! recompute ([`super::flow`]) without a database: the same code the
//! PostgreSQL and SQLite stores run, over plain maps.

use super::ops::{At, Decided, NewRow, Ops, PairKey, RollupKey, RowKey, Shared};
use super::{CheckRow, StoreError, reason_code, reason_text};
use crate::incident::{Action, Latest};
use crate::rollup::{Level, Rollup, Rollups};
use crate::state::{Millis, Pair, PairState};
use crate::status::{Change, Member, Sample, Status};
use config::defaults::BUILT_IN;
use config::wire::AgentInfo;
use std::collections::{BTreeMap, BTreeSet};

/// A stored result, as the recompute reads it.
#[derive(Clone, Debug)]
struct Row {
    state: Option<PairState>,
    interval_ms: i64,
    assigned: u32,
    reason: i16,
}

/// Every table, in maps.
#[derive(Debug, Default)]
pub(crate) struct MemDb {
    agents: BTreeMap<String, i32>,
    pub checks: BTreeMap<i32, CheckRow>,
    results: BTreeMap<(i32, Millis, i32), Row>,
    pairs: BTreeMap<(i32, i32), Pair>,
    rollups: BTreeMap<RollupKey, (Rollup, bool)>,
    pub changes: BTreeMap<(i32, Millis), Change>,
    incidents: Vec<(i64, i32, Latest)>,
    windows: Vec<(Vec<String>, Millis, Millis)>,
}

impl MemDb {
    /// The `(at, status)` changes of a check, in order.
    pub fn statuses(&self, check: i32) -> Vec<(Millis, Status)> {
        self.changes
            .iter()
            .filter(|((c, _), _)| *c == check)
            .map(|((_, at), ch)| (*at, ch.status))
            .collect()
    }

    /// Every result's pair state, by `(check, at, agent)`.
    pub fn states(&self) -> BTreeMap<(i32, Millis, i32), Option<PairState>> {
        self.results.iter().map(|(k, r)| (*k, r.state)).collect()
    }
}

impl Shared for MemDb {
    async fn load_fleet(&mut self) -> Result<Vec<Member>, StoreError> {
        // Heard from at no instant: the electorate comes from the samples.
        Ok(self
            .agents
            .iter()
            .map(|(id, key)| Member {
                key: i64::from(*key),
                id: id.clone(),
                zone: String::new(),
                first_seen: Millis::MAX,
                last_seen: Millis::MIN / 2,
            })
            .collect())
    }

    async fn load_pairs(
        &mut self,
        agents: &[i32],
        checks: &[i32],
    ) -> Result<BTreeMap<PairKey, Pair>, StoreError> {
        let mut out = BTreeMap::new();
        for a in agents {
            for c in checks {
                if let Some(p) = self.pairs.get(&(*c, *a)) {
                    out.insert((*a, *c), p.clone());
                }
            }
        }
        Ok(out)
    }

    async fn load_rollups(
        &mut self,
        keys: &[RollupKey],
    ) -> Result<Vec<(RollupKey, Rollup)>, StoreError> {
        Ok(keys
            .iter()
            .filter_map(|k| Some((*k, self.rollups.get(k)?.0.clone())))
            .collect())
    }

    async fn unfolded_of(&mut self, level: Level, checks: &[i32]) -> Result<Vec<At>, StoreError> {
        let checks: BTreeSet<i32> = checks.iter().copied().collect();
        Ok(self
            .rollups
            .iter()
            .filter(|(k, v)| k.0 == level && !v.1 && checks.contains(&k.1))
            .map(|(k, _)| (k.1, k.2))
            .collect())
    }

    async fn load_parts(
        &mut self,
        level: Level,
        parents: &[At],
    ) -> Result<Vec<(At, Rollup)>, StoreError> {
        let Some(span) = level.parent().map(Level::span_ms) else {
            return Ok(Vec::new());
        };
        Ok(parents
            .iter()
            .flat_map(|&(check, start)| {
                self.rollups
                    .range((level, check, start)..(level, check, start + span))
                    .map(move |(_, v)| ((check, start), v.0.clone()))
            })
            .collect())
    }

    async fn mark_folded(&mut self, level: Level, checks: &[i32]) -> Result<(), StoreError> {
        let checks: BTreeSet<i32> = checks.iter().copied().collect();
        for (_, v) in self
            .rollups
            .iter_mut()
            .filter(|(k, _)| k.0 == level && checks.contains(&k.1))
        {
            v.1 = true;
        }
        Ok(())
    }

    async fn widen_interval(&mut self, check: i32, interval_ms: i64) -> Result<(), StoreError> {
        if let Some(c) = self.checks.get_mut(&check) {
            c.interval_ms = interval_ms;
        }
        Ok(())
    }

    async fn load_samples(
        &mut self,
        lows: &[At],
        _froms: &[At],
    ) -> Result<BTreeMap<i32, Vec<Sample>>, StoreError> {
        let mut out: BTreeMap<i32, Vec<Sample>> = BTreeMap::new();
        for (check, low) in lows {
            for ((_, at, agent), r) in self
                .results
                .range((*check, *low, i32::MIN)..(*check + 1, i64::MIN, i32::MIN))
            {
                if let Some(state) = r.state {
                    out.entry(*check).or_default().push(Sample {
                        pair: i64::from(*agent),
                        at: *at,
                        state,
                        interval_ms: r.interval_ms,
                        assigned: r.assigned,
                        reason: reason_text(r.reason),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn load_before(&mut self, froms: &[At]) -> Result<BTreeMap<i32, Status>, StoreError> {
        Ok(froms
            .iter()
            .filter_map(|(c, f)| {
                let (_, ch) = self.changes.range((*c, i64::MIN)..(*c, *f)).next_back()?;
                Some((*c, ch.status))
            })
            .collect())
    }

    async fn load_old(&mut self, froms: &[At]) -> Result<BTreeMap<i32, Vec<Change>>, StoreError> {
        Ok(froms
            .iter()
            .map(|(c, f)| {
                (
                    *c,
                    self.changes
                        .range((*c, *f)..(*c + 1, i64::MIN))
                        .map(|(_, v)| v.clone())
                        .collect(),
                )
            })
            .collect())
    }

    async fn load_windows(
        &mut self,
        slugs: &[&str],
        low: Millis,
    ) -> Result<Vec<(Vec<String>, Millis, Millis)>, StoreError> {
        Ok(self
            .windows
            .iter()
            .filter(|(c, _, e)| *e >= low && c.iter().any(|x| slugs.contains(&x.as_str())))
            .cloned()
            .collect())
    }

    async fn load_latest(&mut self, checks: &[i32]) -> Result<BTreeMap<i32, Latest>, StoreError> {
        Ok(checks
            .iter()
            .filter_map(|c| {
                let (_, _, l) = self.incidents.iter().rev().find(|i| i.1 == *c)?;
                Some((*c, l.clone()))
            })
            .collect())
    }

    async fn check_events(
        &mut self,
        _check: &CheckRow,
        _changes: &[Change],
    ) -> Result<(), StoreError> {
        // The outbox is the databases' (tests/it/outbox.rs); nothing to model here.
        Ok(())
    }

    async fn apply_action(&mut self, check: &CheckRow, action: &Action) -> Result<i64, StoreError> {
        let latest = self
            .incidents
            .iter()
            .rev()
            .find(|i| i.1 == check.id)
            .map(|i| i.2.clone());
        let id = match action {
            Action::Open { .. } => self.incidents.len() as i64 + 1,
            Action::Reopen { id, .. }
            | Action::Resolve { id, .. }
            | Action::Monitor { id, .. }
            | Action::Revise { id, .. } => *id,
        };
        let after = crate::incident::apply(latest.as_ref(), action, id);
        match self.incidents.iter_mut().find(|i| i.0 == id) {
            Some(i) => i.2 = after,
            None => self.incidents.push((id, check.id, after)),
        }
        Ok(id)
    }
}

impl Ops for MemDb {
    async fn upsert_agents(
        &mut self,
        agents: &[(&AgentInfo, Millis)],
    ) -> Result<Vec<i32>, StoreError> {
        let mut ids = Vec::with_capacity(agents.len());
        for (agent, _) in agents {
            let next = self.agents.len() as i32 + 1;
            ids.push(*self.agents.entry(agent.id.clone()).or_insert(next));
        }
        Ok(ids)
    }

    async fn lock_checks(&mut self, wanted: &[(&str, i64)]) -> Result<Vec<CheckRow>, StoreError> {
        let mut out = Vec::new();
        for (slug, interval) in wanted {
            let id = match self.checks.values().find(|c| c.slug == *slug) {
                Some(c) => c.id,
                None => {
                    let id = self.checks.len() as i32 + 1;
                    self.checks.insert(
                        id,
                        CheckRow {
                            id,
                            slug: slug.to_string(),
                            name: slug.to_string(),
                            interval_ms: *interval,
                            failure_threshold: BUILT_IN.failure_threshold as i32,
                            success_threshold: BUILT_IN.success_threshold as i32,
                            quorum: None,
                            reopen_window_ms: BUILT_IN.reopen_window.as_millis() as i64,
                            decided_through: None,
                            created_at: 0,
                            latest: None,
                            locations: None,
                        },
                    );
                    id
                }
            };
            out.push(self.checks[&id].clone());
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn insert_results(
        &mut self,
        rows: &[NewRow<'_>],
    ) -> Result<BTreeSet<RowKey>, StoreError> {
        let mut out = BTreeSet::new();
        for row in rows {
            let at = row.result.scheduled_at.unix_ms();
            let key = (row.check, at, row.agent);
            if self.results.contains_key(&key) {
                continue;
            }
            self.results.insert(
                key,
                Row {
                    state: row.state.and_then(PairState::from_code),
                    interval_ms: super::flow::interval_ms(row.result),
                    assigned: row.result.assigned,
                    reason: reason_code(&row.result.reason),
                },
            );
            out.insert((row.agent, row.check, at));
        }
        Ok(out)
    }

    async fn write_states(
        &mut self,
        states: &BTreeMap<RowKey, PairState>,
    ) -> Result<(), StoreError> {
        for ((agent, check, at), s) in states {
            if let Some(r) = self.results.get_mut(&(*check, *at, *agent)) {
                r.state = Some(*s);
            }
        }
        Ok(())
    }

    async fn save_pairs(
        &mut self,
        pairs: &BTreeMap<PairKey, Pair>,
        _stored: &BTreeSet<PairKey>,
    ) -> Result<(), StoreError> {
        for ((a, c), p) in pairs {
            self.pairs.insert((*c, *a), p.clone());
        }
        Ok(())
    }

    async fn save_rollups(
        &mut self,
        rollups: &Rollups,
        _stored: Option<&BTreeSet<RollupKey>>,
    ) -> Result<(), StoreError> {
        for (k, r) in rollups {
            self.rollups.insert(*k, (r.clone(), false));
        }
        Ok(())
    }

    async fn lock_ids(&mut self, _checks: &[i32]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn set_decided(&mut self, decided: &[Decided]) -> Result<(), StoreError> {
        for d in decided {
            if let Some(row) = self.checks.get_mut(&d.check) {
                row.decided_through = Some(d.through);
                row.latest = super::decode_latest(&d.latest);
            }
        }
        Ok(())
    }

    async fn write_changes(
        &mut self,
        rewrites: &[(i32, Millis, &[Change])],
    ) -> Result<(), StoreError> {
        for (c, from, changes) in rewrites {
            self.changes.retain(|(cc, at), _| !(cc == c && at >= from));
            for ch in *changes {
                self.changes.insert((*c, ch.at), ch.clone());
            }
        }
        Ok(())
    }

    async fn set_statuses(
        &mut self,
        _statuses: &[(i32, Status)],
        _slugs: &[String],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

impl MemDb {
    /// Incidents opened so far.
    pub fn opened(&self) -> usize {
        self.incidents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MIN_BUFFER;
    use crate::store::flow::{self, Due};
    use config::wire::{Outcome, ProbeResult, Reason, Timestamp};
    use proptest::prelude::*;

    const INTERVAL: i64 = 60_000;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    fn result(agent: &str, at: i64, down: bool) -> ProbeResult {
        let mut r = ProbeResult::new(
            "web",
            "h",
            agent,
            Timestamp::from_unix_ms(at).expect("ms"),
            60_000_000,
            3,
        );
        if down {
            r.outcome = Outcome::Down;
            r.reason = Reason::ConnectRefused;
        }
        r
    }

    /// Runs messages (agent, results) and ticks (`None` is a tick at `now`).
    /// A message `(agent, results)`, or `None` for a tick; and its `now`.
    type Step = (Option<(String, Vec<ProbeResult>)>, i64);

    fn agent_info(name: &str) -> AgentInfo {
        AgentInfo {
            id: name.to_string(),
            zone: String::new(),
            region: String::new(),
            label: String::new(),
        }
    }

    fn replay(steps: &[Step], end: i64) -> MemDb {
        run(async {
            let mut db = MemDb::default();
            for (step, now) in steps {
                match step {
                    Some((agent, rs)) => {
                        let info = agent_info(agent);
                        let message = flow::Message {
                            agent: &info,
                            sent_at: rs[0].scheduled_at,
                            results: rs,
                        };
                        flow::write_messages(&mut db, &[message], *now)
                            .await
                            .expect("stored");
                    }
                    None => tick(&mut db, *now).await,
                }
            }
            tick(&mut db, end).await;
            db
        })
    }

    /// Like [`replay`], but the messages between two ticks are stored in
    /// receives of `sizes[i]` messages at once (any agents), as ingest stores
    /// the messages of one SQS receive.
    fn replay_grouped(steps: &[Step], sizes: &[usize], end: i64) -> MemDb {
        run(async {
            let mut db = MemDb::default();
            let mut receive: Vec<(AgentInfo, Vec<ProbeResult>)> = Vec::new();
            let mut n = 0;
            async fn flush(db: &mut MemDb, receive: &mut Vec<(AgentInfo, Vec<ProbeResult>)>) {
                let messages: Vec<flow::Message> = receive
                    .iter()
                    .map(|(agent, rs)| flow::Message {
                        agent,
                        sent_at: rs[0].scheduled_at,
                        results: rs,
                    })
                    .collect();
                if !messages.is_empty() {
                    flow::write_messages(db, &messages, 0)
                        .await
                        .expect("stored");
                }
                receive.clear();
            }
            for (step, now) in steps {
                match step {
                    Some((agent, rs)) => {
                        let info = agent_info(agent);
                        receive.push((info, rs.clone()));
                        if receive.len() >= sizes[n % sizes.len()] {
                            flush(&mut db, &mut receive).await;
                            n += 1;
                        }
                    }
                    None => {
                        flush(&mut db, &mut receive).await;
                        tick(&mut db, *now).await;
                    }
                }
            }
            flush(&mut db, &mut receive).await;
            tick(&mut db, end).await;
            db
        })
    }

    async fn tick(db: &mut MemDb, now: i64) {
        let due: Vec<Due> = db
            .checks
            .values()
            .map(|c| {
                let first = db.results.keys().filter(|k| k.0 == c.id).map(|k| k.1).min();
                let from = c.decided_through.or(first).unwrap_or(now).min(now);
                Due {
                    check: c.clone(),
                    from,
                    fresh: None,
                    cert_not_after: None,
                }
            })
            .collect();
        flow::recompute(db, &due, Some(now))
            .await
            .expect("recomputed");
    }

    type Plan = (Vec<(usize, i64, bool)>, Vec<(usize, usize, bool)>);

    /// Per agent, slots with verdicts; an arrival order that delays each
    /// result by fewer than R slots of its own pair; some ticks.
    fn scenario() -> impl Strategy<Value = Plan> {
        (
            proptest::collection::vec(
                (0_usize..3, 0_i64..14, proptest::bool::weighted(0.4)),
                1..40,
            ),
            proptest::collection::vec(
                (
                    0_usize..MIN_BUFFER as usize,
                    1_usize..4,
                    proptest::bool::weighted(0.2),
                ),
                40,
            ),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The real flow (fast path, slow path, rollups, incidents) gives the
        /// same pair states and status changes in any arrival order, whether
        /// each message is stored alone or with others of its receive.
        #[test]
        fn the_message_flow_is_independent_of_arrival_order((raw, shuffle) in scenario(), grouped in proptest::bool::ANY) {
            let agents = ["a", "b", "c"];
            let mut seen = BTreeSet::new();
            let results: Vec<(usize, ProbeResult)> = raw
                .into_iter()
                .filter(|(a, k, _)| seen.insert((*a, *k)))
                .map(|(a, k, down)| (a, result(agents[a], k * INTERVAL + a as i64 * 10, down)))
                .collect();
            let end = 30 * INTERVAL;
            let in_order: Vec<_> = {
                let mut v = results.clone();
                v.sort_by_key(|(_, r)| r.scheduled_at);
                v.into_iter().map(|(a, r)| (Some((agents[a].to_string(), vec![r])), 0)).collect()
            };
            // Delay each result by fewer than R slots of its pair; group into
            // messages of 1-3 of one agent; tick now and then.
            let mut keyed: Vec<(usize, usize, ProbeResult)> = Vec::new();
            let mut rank = [0_usize; 3];
            let mut sorted = results.clone();
            sorted.sort_by_key(|(_, r)| r.scheduled_at);
            for (i, (a, r)) in sorted.into_iter().enumerate() {
                let d = shuffle[i % shuffle.len()].0;
                keyed.push((rank[a] + d, a, r));
                rank[a] += 1;
            }
            keyed.sort_by_key(|(k, a, r)| (*k, *a, r.scheduled_at));
            let mut steps = Vec::new();
            let mut i = 0;
            let mut n = 0;
            while i < keyed.len() {
                let (size, tick) = (shuffle[n % shuffle.len()].1, shuffle[n % shuffle.len()].2);
                let a = keyed[i].1;
                let mut msg = Vec::new();
                while i < keyed.len() && keyed[i].1 == a && msg.len() < size {
                    msg.push(keyed[i].2.clone());
                    i += 1;
                }
                steps.push((Some((agents[a].to_string(), msg)), 0));
                if tick {
                    let now = keyed[i.saturating_sub(1)].2.scheduled_at.unix_ms();
                    steps.push((None, now));
                }
                n += 1;
            }
            let sizes: Vec<usize> = shuffle.iter().map(|s| s.1).collect();
            let a = if grouped { replay_grouped(&steps, &sizes, end) } else { replay(&steps, end) };
            let b = replay(&in_order, end);
            // Agent ids depend on first arrival: compare by agent name.
            let names = |db: &MemDb| -> BTreeMap<i32, String> { db.agents.iter().map(|(n, i)| (*i, n.clone())).collect() };
            let (na, nb) = (names(&a), names(&b));
            let sa: BTreeMap<_, _> = a.states().into_iter().map(|((c, at, ag), s)| ((c, at, na[&ag].clone()), s)).collect();
            let sb: BTreeMap<_, _> = b.states().into_iter().map(|((c, at, ag), s)| ((c, at, nb[&ag].clone()), s)).collect();
            prop_assert_eq!(sa, sb);
            prop_assert_eq!(a.statuses(1), b.statuses(1));
            let roll = |db: &MemDb| -> Vec<(RollupKey, u32)> { db.rollups.iter().map(|(k, v)| (*k, v.0.count)).collect() };
            prop_assert_eq!(roll(&a), roll(&b), "each result counted once");
            // Incidents follow what each order showed when (a transient "up" a
            // late result revises away still resolved one), so only this holds
            // for any order: an outage in the final history has an incident.
            for db in [&a, &b] {
                if db.statuses(1).iter().any(|c| c.1 == Status::Down) {
                    prop_assert!(db.opened() >= 1, "{:?}", db.statuses(1));
                }
            }
        }
    }
}

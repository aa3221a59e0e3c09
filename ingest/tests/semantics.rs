//! Property tests of the pure core (DESIGN §5), each with at least 1,000
//! cases. `Model` is an in-memory store that runs the same steps the
//! PostgreSQL store runs in a transaction: dedupe by id, admit, restate the
//! samples, recompute the status changes, apply the incident actions.

use config::defaults::{Locations, Quorum};
use ingest::incident::{Action, Latest};
use ingest::state::{Millis, Pair, PairState, Thresholds, Verdict};
use ingest::status::{Change, Electorate, Member, Sample, Status};
use ingest::timeline::{self, Incoming, Loaded, Rules};
use ingest::uptime;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const INTERVAL: i64 = 60_000;

/// The agents that probe the check vote: a check ingest knows no fleet for.
fn probers() -> Electorate<'static> {
    Electorate {
        check: "web",
        locations: None,
        members: &[],
        interval_ms: INTERVAL,
    }
}

#[derive(Clone, Debug)]
struct Obs {
    pair: i64,
    at: Millis,
    verdict: Verdict,
    assigned: u32,
}

#[derive(Debug)]
struct Model {
    rules: Rules,
    windows: Vec<(Millis, Millis)>,
    seen: BTreeSet<(i64, Millis)>,
    raw: BTreeMap<(i64, Millis), Obs>,
    pairs: BTreeMap<i64, Pair>,
    samples: BTreeMap<(i64, Millis), Sample>,
    changes: Vec<Change>,
    latest: Option<Latest>,
    opened: usize,
    decided: Option<Millis>,
    /// The fleet: every agent that sends anything, heard from all along.
    members: Vec<Member>,
}

impl Model {
    fn new(rules: Rules, windows: Vec<(Millis, Millis)>) -> Self {
        Model {
            rules,
            windows,
            seen: BTreeSet::new(),
            raw: BTreeMap::new(),
            pairs: BTreeMap::new(),
            samples: BTreeMap::new(),
            changes: Vec::new(),
            latest: None,
            opened: 0,
            decided: None,
            members: Vec::new(),
        }
    }

    fn ingest(&mut self, batch: &[Obs]) {
        let fresh: Vec<&Obs> = batch
            .iter()
            .filter(|r| self.seen.insert((r.pair, r.at)))
            .collect();
        for r in &fresh {
            self.raw.insert((r.pair, r.at), (*r).clone());
        }
        let incoming: Vec<Incoming> = fresh
            .iter()
            .map(|r| Incoming {
                pair: r.pair,
                at: r.at,
                verdict: r.verdict,
            })
            .collect();
        let admitted = timeline::admit(&mut self.pairs, &incoming, self.rules.thresholds);
        for (pair, at, state) in admitted.restates {
            let r = &self.raw[&(pair, at)];
            self.samples.insert(
                (pair, at),
                Sample {
                    pair,
                    at,
                    state,
                    interval_ms: INTERVAL,
                    assigned: r.assigned,
                    reason: if r.verdict == Verdict::Down {
                        "connect_refused"
                    } else {
                        "ok"
                    },
                },
            );
        }
        if let Some(from) = admitted.from {
            let newest = self.samples.values().map(|s| s.at).max().unwrap_or(from);
            self.recompute(from, newest);
        }
    }

    fn tick(&mut self, now: Millis) {
        let first = self.samples.values().map(|s| s.at).min();
        let from = self.decided.or(first).unwrap_or(now);
        self.recompute(from, now);
    }

    /// As the store: start no later than what was decided, end no earlier.
    fn recompute(&mut self, from: Millis, through: Millis) {
        let from = self.decided.map_or(from, |d| from.min(d));
        let through = self.decided.map_or(through, |d| through.max(d));
        self.decided = Some(through);
        let low = from - timeline::lookback(INTERVAL);
        let samples: Vec<Sample> = self
            .samples
            .values()
            .filter(|s| s.at >= low)
            .cloned()
            .collect();
        let before = self
            .changes
            .iter()
            .rev()
            .find(|c| c.at < from)
            .map(|c| c.status);
        let old: Vec<Change> = self
            .changes
            .iter()
            .filter(|c| c.at >= from)
            .cloned()
            .collect();
        let plan = timeline::plan(
            Loaded {
                samples: &samples,
                before,
                old: &old,
                windows: &self.windows,
                latest: self.latest.clone(),
                electorate: Electorate {
                    check: "web",
                    locations: Some(Locations::All),
                    members: &self.members,
                    interval_ms: INTERVAL,
                },
            },
            from,
            through,
            &self.rules,
        );
        if plan.rewrite {
            self.changes.retain(|c| c.at < from);
            self.changes.extend(plan.changes);
        }
        for (action, mut after) in plan.actions {
            if let Action::Open { .. } = action {
                self.opened += 1;
                after.id = self.opened as i64;
            }
            self.latest = Some(after);
        }
    }

    fn statuses(&self) -> Vec<(Millis, Status)> {
        self.changes.iter().map(|c| (c.at, c.status)).collect()
    }

    fn pair_states(&self) -> BTreeMap<i64, PairState> {
        self.pairs
            .iter()
            .map(|(k, p)| (*k, p.current(self.rules.thresholds)))
            .collect()
    }
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        3 => Just(Verdict::Up),
        1 => Just(Verdict::Degraded),
        3 => Just(Verdict::Down),
    ]
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        1_u32..=3,
        1_u32..=3,
        prop_oneof![Just(Quorum::Majority), (1_u32..=4).prop_map(Quorum::Count)],
    )
        .prop_map(|(failure, success, quorum)| Rules {
            thresholds: Thresholds { failure, success },
            quorum,
            reopen_window_ms: 5 * INTERVAL,
        })
}

/// Each pair's results: a run of slots (some skipped), a random offset, and
/// an early stop for some pairs.
fn history(pairs: usize, slots: usize) -> impl Strategy<Value = Vec<Obs>> {
    proptest::collection::vec(
        (
            0_i64..5_000,
            1..=slots,
            proptest::collection::vec((verdict(), proptest::bool::weighted(0.85)), slots),
        ),
        1..=pairs,
    )
    .prop_map(move |per_pair| {
        let assigned = per_pair.len() as u32;
        let mut out = Vec::new();
        for (p, (offset, stop, slots)) in per_pair.into_iter().enumerate() {
            for (k, (verdict, present)) in slots.into_iter().enumerate().take(stop) {
                if present {
                    out.push(Obs {
                        pair: p as i64 + 1,
                        at: k as i64 * INTERVAL + offset,
                        verdict,
                        assigned,
                    });
                }
            }
        }
        out
    })
}

/// An arrival order in which no result arrives after R newer ones of its
/// pair: each result is delayed by fewer than R slots of its own pair.
/// Some results are sent twice; messages carry 1–4 results; ticks come in
/// between at increasing instants.
fn arrival(results: Vec<Obs>, r: usize) -> impl Strategy<Value = Vec<Step>> {
    let n = results.len();
    (
        proptest::collection::vec((0..r, 0..r, proptest::bool::weighted(0.2)), n),
        proptest::collection::vec(1_usize..=4, n + 1),
        proptest::collection::vec(proptest::option::weighted(0.3, 0_i64..20 * INTERVAL), n + 1),
    )
        .prop_map(move |(delays, sizes, ticks)| {
            // The index of each result within its pair, in time order.
            let mut rank: BTreeMap<i64, usize> = BTreeMap::new();
            let mut keyed: Vec<(usize, usize, Obs)> = Vec::new();
            for (i, res) in results.iter().enumerate() {
                let k = rank.entry(res.pair).or_insert(0);
                let (d, d2, dup) = delays[i];
                keyed.push((*k + d, i, res.clone()));
                if dup {
                    keyed.push((*k + d2, i + n, res.clone()));
                }
                *k += 1;
            }
            keyed.sort_by_key(|(key, tie, r)| (*key, r.pair, *tie));
            let mut steps = Vec::new();
            let mut queue: Vec<Obs> = keyed.into_iter().map(|x| x.2).collect();
            let mut now = 0;
            let mut i = 0;
            while !queue.is_empty() {
                let take = sizes[i % sizes.len()].min(queue.len());
                steps.push(Step::Batch(queue.drain(..take).collect()));
                if let Some(t) = ticks[i % ticks.len()] {
                    now = now.max(t);
                    steps.push(Step::Tick(now));
                }
                i += 1;
            }
            steps
        })
}

#[derive(Clone, Debug)]
enum Step {
    Batch(Vec<Obs>),
    Tick(Millis),
}

const END: Millis = 40 * INTERVAL;

/// At most one maintenance window, somewhere in the history.
fn windows() -> impl Strategy<Value = Vec<(Millis, Millis)>> {
    proptest::option::weighted(0.4, (0_i64..15 * INTERVAL, INTERVAL..6 * INTERVAL))
        .prop_map(|w| w.map(|(s, len)| (s, s + len)).into_iter().collect())
}

type Scenario = (Rules, Vec<(Millis, Millis)>, Vec<Obs>, Vec<Step>);

fn scenario() -> impl Strategy<Value = Scenario> {
    (rules(), windows(), history(4, 12)).prop_flat_map(|(rules, windows, results)| {
        let r = rules.thresholds.buffer_len();
        (
            Just(rules),
            Just(windows),
            Just(results.clone()),
            arrival(results, r),
        )
    })
}

fn run(rules: Rules, windows: &[(Millis, Millis)], steps: &[Step]) -> Model {
    let mut m = Model::new(rules, windows.to_vec());
    let pairs: BTreeSet<i64> = steps
        .iter()
        .flat_map(|s| match s {
            Step::Batch(b) => b.iter().map(|r| r.pair).collect(),
            Step::Tick(_) => Vec::new(),
        })
        .collect();
    m.members = pairs
        .into_iter()
        .map(|key| Member {
            key,
            id: format!("agent-{key}"),
            zone: String::new(),
            first_seen: Millis::MIN / 4,
            last_seen: Millis::MAX / 4,
        })
        .collect();
    for s in steps {
        match s {
            Step::Batch(b) => m.ingest(b),
            Step::Tick(t) => m.tick(*t),
        }
    }
    m.tick(END);
    m
}

fn in_order(rules: Rules, windows: &[(Millis, Millis)], results: &[Obs]) -> Model {
    let mut sorted = results.to_vec();
    sorted.sort_by_key(|r| (r.at, r.pair));
    let steps: Vec<Step> = sorted.into_iter().map(|r| Step::Batch(vec![r])).collect();
    run(rules, windows, &steps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_arrival_order_with_duplicates_gives_the_same_states_and_changes(
        (rules, windows, results, steps) in scenario()
    ) {
        let shuffled = run(rules, &windows, &steps);
        let reference = in_order(rules, &windows, &results);
        prop_assert_eq!(shuffled.pair_states(), reference.pair_states());
        prop_assert_eq!(&shuffled.samples, &reference.samples);
        prop_assert_eq!(&shuffled.changes, &reference.changes);
        // Each pair's states are those of a plain fold in time order.
        for (pair, _) in reference.pairs.iter() {
            let entries: Vec<_> = results
                .iter()
                .filter(|r| r.pair == *pair)
                .map(|r| ingest::state::Entry { at: r.at, verdict: r.verdict })
                .collect();
            let folded = ingest::state::fold_sorted(&entries, rules.thresholds);
            let stored: Vec<_> = reference
                .samples
                .values()
                .filter(|s| s.pair == *pair)
                .map(|s| (s.at, s.state))
                .collect();
            prop_assert_eq!(stored, folded);
        }
        // Changes are in time order and never repeat a status.
        for w in shuffled.changes.windows(2) {
            prop_assert!(w[0].at < w[1].at);
            prop_assert_ne!(w[0].status, w[1].status);
        }
    }

    #[test]
    fn fewer_failing_locations_than_the_quorum_never_open_an_incident(
        (rules, windows, results, steps) in scenario()
    ) {
        let pairs: BTreeSet<i64> = results.iter().map(|r| r.pair).collect();
        let assigned = pairs.len() as u32;
        let allowed = rules.quorum.required(assigned) as i64 - 1;
        // Only the first `quorum - 1` pairs may fail; the others always pass.
        let tame = |r: &Obs| Obs {
            verdict: if r.pair <= allowed { r.verdict } else { Verdict::Up },
            ..r.clone()
        };
        let steps: Vec<Step> = steps
            .iter()
            .map(|s| match s {
                Step::Batch(b) => Step::Batch(b.iter().map(tame).collect()),
                Step::Tick(t) => Step::Tick(*t),
            })
            .collect();
        let m = run(rules, &windows, &steps);
        prop_assert_eq!(m.opened, 0, "changes: {:?}", m.statuses());
        prop_assert!(m.changes.iter().all(|c| c.status != Status::Down));
    }

    #[test]
    fn agents_falling_silent_never_open_an_incident(
        (rules, windows, results, steps) in scenario()
    ) {
        let healthy = |r: &Obs| Obs { verdict: Verdict::Up, ..r.clone() };
        let steps: Vec<Step> = steps
            .iter()
            .map(|s| match s {
                Step::Batch(b) => Step::Batch(b.iter().map(healthy).collect()),
                Step::Tick(t) => Step::Tick(*t),
            })
            .collect();
        let m = run(rules, &windows, &steps);
        prop_assert_eq!(m.opened, 0);
        prop_assert!(m.changes.iter().all(|c| matches!(c.status, Status::Up | Status::Unknown | Status::Maintenance)));
        if !results.is_empty() {
            // Everyone is silent by END: the last word is unknown, never down.
            prop_assert_eq!(m.changes.last().map(|c| c.status), Some(Status::Unknown));
        }
    }

    #[test]
    fn only_each_pairs_newest_sample_before_a_span_matters(
        raw in proptest::collection::btree_map(
            (1_i64..=4, 0_i64..40),
            (prop_oneof![Just(PairState::Passing), Just(PairState::Degraded), Just(PairState::Failing)], 1_u32..=4),
            0..60,
        ),
        from in 0_i64..40 * INTERVAL,
        span in 0_i64..20 * INTERVAL,
        windows in windows(),
        quorum in prop_oneof![Just(Quorum::Majority), (1_u32..=4).prop_map(Quorum::Count)],
    ) {
        let low = from - timeline::lookback(INTERVAL);
        let every: Vec<Sample> = raw
            .into_iter()
            .map(|((pair, slot), (state, assigned))| Sample {
                pair,
                at: slot * INTERVAL + pair * 7,
                state,
                interval_ms: INTERVAL,
                assigned,
                reason: "connect_refused",
            })
            .collect();
        // The status before `from` is what the history says, as in the store.
        let before = ingest::status::changes(&every, i64::MIN / 4, from - 1, None, quorum, &windows, &probers())
            .last()
            .map(|c| c.status);
        // What a store loads: every sample at or after `low`.
        let loaded: Vec<Sample> = every.into_iter().filter(|s| s.at >= low).collect();
        let through = from + span;
        let all = ingest::status::changes(&loaded, from, through, before, quorum, &windows, &probers());
        let few = ingest::status::relevant(loaded.clone(), from, low, before);
        prop_assert!(few.len() <= loaded.len());
        let got = ingest::status::changes(&few, from, through, before, quorum, &windows, &probers());
        prop_assert_eq!(got, all);
    }

    #[test]
    fn uptime_is_a_ratio_or_null_and_equals_brute_force(
        steps in proptest::collection::vec(
            (1_i64..400, prop_oneof![
                Just(Status::Up), Just(Status::Degraded), Just(Status::Down),
                Just(Status::Maintenance), Just(Status::Unknown)]),
            0..12),
        created in 0_i64..1500,
        from in 0_i64..2000,
        len in 0_i64..2000,
    ) {
        let mut at = 0;
        let changes: Vec<(Millis, Status)> = steps
            .into_iter()
            .map(|(gap, s)| { at += gap; (at, s) })
            .collect();
        let to = from + len;
        let t = uptime::tally(&changes, created, from, to);
        // Brute force: the status of every millisecond.
        let (mut down, mut observed) = (0, 0);
        for ms in from..to {
            if ms < created { continue; }
            let Some(&(_, s)) = changes.iter().rev().find(|c| c.0 <= ms) else { continue };
            match s {
                Status::Down => { down += 1; observed += 1; }
                Status::Up | Status::Degraded => observed += 1,
                _ => {}
            }
        }
        prop_assert_eq!((t.down_ms, t.observed_ms), (down, observed));
        match t.ratio() {
            None => prop_assert_eq!(observed, 0),
            Some(r) => {
                prop_assert!((0.0..=1.0).contains(&r));
                prop_assert_eq!(r, 1.0 - down as f64 / observed as f64);
                if down > 0 {
                    prop_assert!(!uptime::percent_floor(r, 3).starts_with("100"));
                }
            }
        }
    }
}

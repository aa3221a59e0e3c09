//! One check's step, as the store runs it inside a transaction: admit the
//! newly inserted results into their pairs, then rewrite the status changes
//! from the earliest instant that may have moved, and say what that does to
//! the incident. Pure; the store only loads and writes what this decides.

use crate::incident::{self, Action, Latest};
use crate::state::{Admission, Entry, Millis, Pair, PairState, Thresholds, Verdict};
use crate::status::{self, Change, REPORTING_INTERVALS, Sample, Status, Window};
use config::defaults::Quorum;
use std::collections::BTreeMap;

/// What decides a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The location thresholds.
    pub thresholds: Thresholds,
    /// How many failing locations make it down.
    pub quorum: Quorum,
    /// How long a resolved automatic incident may reopen, in ms.
    pub reopen_window_ms: i64,
}

/// A newly inserted result, as state needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The location key.
    pub pair: i64,
    /// Its `scheduled_at`.
    pub at: Millis,
    /// Its outcome.
    pub verdict: Verdict,
}

/// What admitting a set of results did to their pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// The state after each result whose state was (re)computed: the new ones
    /// and the buffered ones after them.
    pub restates: Vec<(i64, Millis, PairState)>,
    /// The earliest instant whose status may have changed; `None` when no
    /// result moved any state.
    pub from: Option<Millis>,
    /// How many were too old to move state.
    pub too_old: usize,
}

/// Admits each result into its pair (pairs missing from `pairs` start new).
pub fn admit(pairs: &mut BTreeMap<i64, Pair>, incoming: &[Incoming], t: Thresholds) -> Admitted {
    let mut out = Admitted::default();
    let mut restated: BTreeMap<(i64, Millis), PairState> = BTreeMap::new();
    for r in incoming {
        let pair = pairs.entry(r.pair).or_default();
        let entry = Entry {
            at: r.at,
            verdict: r.verdict,
        };
        match pair.admit(entry, t) {
            Admission::Placed { from } => {
                // Recorded now: a later result of the batch may push this one
                // out of the buffer.
                for (at, s) in pair.states(t).into_iter().filter(|(at, _)| *at >= from) {
                    restated.insert((r.pair, at), s);
                }
                out.from = Some(out.from.map_or(from, |f| f.min(from)));
            }
            Admission::TooOld => out.too_old += 1,
            Admission::Duplicate => {}
        }
    }
    out.restates = restated
        .into_iter()
        .map(|((pair, at), s)| (pair, at, s))
        .collect();
    out
}

/// How far before `from` samples must be loaded: a pair reports for three
/// intervals after its newest result.
pub fn lookback(interval_ms: i64) -> Millis {
    REPORTING_INTERVALS * interval_ms.max(1)
}

/// What the store loaded for a recompute from `from`.
#[derive(Clone, Debug)]
pub struct Loaded<'a> {
    /// Every admitted sample at or after `from - lookback`.
    pub samples: &'a [Sample],
    /// The status in effect just before `from`.
    pub before: Option<Status>,
    /// The stored status changes at or after `from`, in order.
    pub old: &'a [Change],
    /// The maintenance windows of the check that touch the span.
    pub windows: &'a [Window],
    /// The check's newest automatic incident.
    pub latest: Option<Latest>,
    /// Who votes on the check.
    pub electorate: status::Electorate<'a>,
}

/// What to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The status changes at or after `from`; they replace the stored ones.
    pub changes: Vec<Change>,
    /// Whether they differ from the stored ones.
    pub rewrite: bool,
    /// The status in effect at `through`.
    pub current: Option<Status>,
    /// What happens to incidents, in order, each with the incident as it is
    /// after it (the id of an `Open` is filled in by the store).
    pub actions: Vec<(Action, Latest)>,
}

/// Whether every location still reporting at `through` has reported for
/// the instant `at` (its newest sample is at or after it): what was decided
/// at `at` will not move when the rest of that slot's results arrive.
fn settled(samples: &[Sample], at: Millis, through: Millis) -> bool {
    let mut newest: BTreeMap<i64, &Sample> = BTreeMap::new();
    for s in samples {
        if newest.get(&s.pair).is_none_or(|n| n.at < s.at) {
            newest.insert(s.pair, s);
        }
    }
    newest
        .values()
        .filter(|s| through - s.at < REPORTING_INTERVALS * s.interval_ms.max(1))
        .all(|s| s.at >= at)
}

/// Recomputes the status changes in `[from, through]` and what they do to the
/// check's incident.
pub fn plan(loaded: Loaded<'_>, from: Millis, through: Millis, rules: &Rules) -> Plan {
    let changes = status::changes(
        loaded.samples,
        from,
        through,
        loaded.before,
        rules.quorum,
        loaded.windows,
        &loaded.electorate,
    );
    let rewrite = changes != loaded.old;
    let current = changes.last().map(|c| c.status).or(loaded.before);

    // Incidents follow the timeline from the first change they have not seen:
    // a change inserted before ones already seen gives those a new meaning
    // (a late outage is opened, then resolved by the recovery after it). A
    // change revised away by a late result is not undone, but the last
    // status always lands.
    let mut latest = loaded.latest;
    let mut actions = Vec::new();
    let mut last_fed = loaded.old.last().map(|c| c.status).or(loaded.before);
    let first_new = changes.iter().position(|c| {
        !loaded
            .old
            .iter()
            .any(|o| (o.at, o.status) == (c.at, c.status))
    });
    for c in first_new.map_or(&changes[..0], |i| &changes[i..]) {
        last_fed = Some(c.status);
        if let Some(a) = incident::on_change(latest.as_ref(), c, rules.reopen_window_ms) {
            let after = incident::apply(latest.as_ref(), &a, 0);
            latest = Some(after.clone());
            actions.push((a, after));
        }
    }
    if let Some(status) = current
        && last_fed != current
    {
        let settle = changes.last().cloned().unwrap_or(Change {
            at: from,
            status,
            detail: Default::default(),
        });
        if let Some(a) = incident::on_change(latest.as_ref(), &settle, rules.reopen_window_ms) {
            let after = incident::apply(latest.as_ref(), &a, 0);
            latest = Some(after.clone());
            actions.push((a, after));
        }
    }
    // A partial recovery is a level, judged once the instant is settled.
    if let Some(last) = changes.last().or(loaded.old.last())
        && current == Some(Status::Degraded)
        && last.status == Status::Degraded
        && settled(loaded.samples, last.at, through)
        && let Some(a) = incident::on_partial_recovery(latest.as_ref(), last)
    {
        let after = incident::apply(latest.as_ref(), &a, 0);
        actions.push((a, after));
    }
    Plan {
        changes,
        rewrite,
        current,
        actions,
    }
}

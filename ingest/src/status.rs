//! Check status (DESIGN §5): quorum over the reporting locations, with its
//! precedence, and the status changes it makes over time.
//!
//! Pure. The status at an instant is a function of the samples (each admitted
//! result with its pair's state after it) and the maintenance windows, so a
//! timeline recomputed after a late result is the one an in-order arrival
//! would have given.

use crate::state::{Millis, PairState};
use config::defaults::Quorum;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A location reports while its newest result is within this many intervals.
pub const REPORTING_INTERVALS: i64 = 3;

/// A check's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every reporting location passes.
    Up,
    /// Some location fails or is degraded, short of the quorum.
    Degraded,
    /// At least a quorum of locations fail.
    Down,
    /// Inside a maintenance window.
    Maintenance,
    /// No location reports.
    Unknown,
}

impl Status {
    /// Every status, in order.
    pub const ALL: [Status; 5] = [
        Status::Up,
        Status::Degraded,
        Status::Down,
        Status::Maintenance,
        Status::Unknown,
    ];

    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Degraded => "degraded",
            Status::Down => "down",
            Status::Maintenance => "maintenance",
            Status::Unknown => "unknown",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One admitted result of a pair, with the pair's state after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The location (agent) key.
    pub pair: i64,
    /// Its `scheduled_at`.
    pub at: Millis,
    /// The pair's state after it.
    pub state: PairState,
    /// The check's interval when it ran, in ms.
    pub interval_ms: i64,
    /// How many locations the fleet assigned.
    pub assigned: u32,
    /// Its reason code (one of the documented set, or `other`).
    pub reason: &'static str,
}

/// A status change: `(check, at, status)`, with what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The `scheduled_at` of the deciding result (or the instant silence or
    /// a maintenance boundary decided it).
    pub at: Millis,
    /// The new status.
    pub status: Status,
    /// The locations at that instant.
    pub detail: Detail,
}

/// The locations behind a status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// How many locations the fleet assigned.
    pub assigned: u32,
    /// How many report.
    pub reporting: u32,
    /// How many of those fail.
    pub failing: u32,
    /// The reason codes of the failing ones, sorted, without repeats.
    pub reasons: Vec<String>,
}

/// `[start, end)` in ms.
pub type Window = (Millis, Millis);

/// The status at one instant, given each pair's newest sample at or before it.
pub fn decide(
    latest: &BTreeMap<i64, &Sample>,
    at: Millis,
    quorum: Quorum,
    windows: &[Window],
) -> (Status, Detail) {
    let reporting: Vec<&Sample> = latest
        .values()
        .filter(|s| at - s.at < REPORTING_INTERVALS * s.interval_ms.max(1))
        .copied()
        .collect();
    // `assigned` comes from the results: the newest reporting one knows the
    // fleet best (and only reporting ones are sure to be loaded).
    let assigned = reporting
        .iter()
        .max_by_key(|s| (s.at, s.pair))
        .map_or(0, |s| s.assigned);
    let failing: Vec<&Sample> = reporting
        .iter()
        .filter(|s| s.state == PairState::Failing)
        .copied()
        .collect();
    let mut reasons: Vec<String> = failing.iter().map(|s| s.reason.to_string()).collect();
    reasons.sort();
    reasons.dedup();
    let detail = Detail {
        assigned,
        reporting: reporting.len() as u32,
        failing: failing.len() as u32,
        reasons,
    };
    let troubled = reporting.iter().any(|s| s.state != PairState::Passing);
    let status = if windows.iter().any(|&(s, e)| s <= at && at < e) {
        Status::Maintenance
    } else if !failing.is_empty() && failing.len() as u32 >= quorum.required(assigned.max(1)) {
        Status::Down
    } else if troubled {
        Status::Degraded
    } else if reporting.is_empty() {
        Status::Unknown
    } else {
        Status::Up
    };
    (status, detail)
}

/// Of the samples loaded for a span starting at `from`, those that can
/// matter: every one at or after `from`, and each pair's newest before it (if
/// at or after `low`). An older sample of a pair is superseded by its newer
/// one at every instant from `from` on, so dropping it changes no status, as
/// long as there is a status before `from` to compare with (without one, the
/// first instant looked at decides the first status, so all are kept).
/// [`changes`] gives the same answer on either set (property-tested).
pub fn relevant(
    samples: Vec<Sample>,
    from: Millis,
    low: Millis,
    before: Option<Status>,
) -> Vec<Sample> {
    if before.is_none() {
        return samples;
    }
    let mut newest_before: BTreeMap<i64, Sample> = BTreeMap::new();
    let mut out = Vec::new();
    for s in samples {
        if s.at >= from {
            out.push(s);
        } else if s.at >= low && newest_before.get(&s.pair).is_none_or(|n| n.at < s.at) {
            newest_before.insert(s.pair, s);
        }
    }
    out.extend(newest_before.into_values());
    out
}

/// The status changes in `[from, through]`, given the status in effect just
/// before `from` (`None` for a check that has none yet).
///
/// `samples` must hold every sample at or after `from - 3 intervals`. The
/// instants looked at are each sample, each moment a pair falls silent, and
/// each maintenance boundary; nothing after `through` is decided.
pub fn changes(
    samples: &[Sample],
    from: Millis,
    through: Millis,
    before: Option<Status>,
    quorum: Quorum,
    windows: &[Window],
) -> Vec<Change> {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| (s.at, s.pair));
    let mut points: Vec<Millis> = Vec::new();
    for s in &sorted {
        points.push(s.at);
        points.push(s.at + REPORTING_INTERVALS * s.interval_ms.max(1));
    }
    for &(s, e) in windows {
        points.extend([s, e]);
    }
    points.retain(|&p| from <= p && p <= through);
    points.sort_unstable();
    points.dedup();

    let mut latest: BTreeMap<i64, &Sample> = BTreeMap::new();
    let mut next = 0;
    let mut current = before;
    let mut out = Vec::new();
    for at in points {
        while next < sorted.len() && sorted[next].at <= at {
            latest.insert(sorted[next].pair, sorted[next]);
            next += 1;
        }
        if latest.is_empty()
            && current.is_none()
            && !windows.iter().any(|&(s, e)| s <= at && at < e)
        {
            // Before the first result there is no status to speak of. (With
            // a status already, no sample in the lookback means nobody reports.)
            continue;
        }
        let (status, detail) = decide(&latest, at, quorum, windows);
        if current != Some(status) {
            current = Some(status);
            out.push(Change { at, status, detail });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use PairState::*;

    fn s(pair: i64, at: Millis, state: PairState) -> Sample {
        Sample {
            pair,
            at,
            state,
            interval_ms: 60_000,
            assigned: 3,
            reason: if state == Failing {
                "connect_refused"
            } else {
                "ok"
            },
        }
    }

    fn statuses(samples: &[Sample], through: Millis, windows: &[Window]) -> Vec<(Millis, Status)> {
        changes(samples, 0, through, None, Quorum::Majority, windows)
            .into_iter()
            .map(|c| (c.at, c.status))
            .collect()
    }

    #[test]
    fn a_quorum_of_failing_locations_is_down_and_fewer_is_degraded() {
        let samples = [
            s(1, 0, Passing),
            s(2, 0, Passing),
            s(3, 0, Passing),
            s(1, 60_000, Failing),
            s(2, 60_000, Failing),
            s(3, 60_000, Passing),
        ];
        let got = statuses(&samples[..4], 60_000, &[]);
        assert_eq!(got, [(0, Status::Up), (60_000, Status::Degraded)]);
        let got = changes(&samples, 0, 60_000, None, Quorum::Majority, &[]);
        assert_eq!(got.last().map(|c| c.status), Some(Status::Down));
        assert_eq!(
            got.last().map(|c| c.detail.clone()),
            Some(Detail {
                assigned: 3,
                reporting: 3,
                failing: 2,
                reasons: vec!["connect_refused".into()]
            })
        );
    }

    #[test]
    fn a_numeric_quorum_is_capped_at_assigned() {
        let mut one = s(1, 0, Failing);
        one.assigned = 1;
        let got = changes(&[one], 0, 0, None, Quorum::Count(3), &[]);
        assert_eq!(
            got[0].status,
            Status::Down,
            "one agent can still open incidents"
        );
    }

    #[test]
    fn too_few_reporting_to_reach_quorum_is_degraded_not_down() {
        // Two of three have fallen silent; the one left fails.
        let samples = [s(1, 0, Passing), s(2, 0, Passing), s(3, 200_000, Failing)];
        let got = statuses(&samples, 200_000, &[]);
        assert_eq!(got.last(), Some(&(200_000, Status::Degraded)));
    }

    #[test]
    fn silence_makes_unknown_three_intervals_after_the_newest_result() {
        let samples = [s(1, 0, Passing), s(1, 60_000, Passing)];
        let got = statuses(&samples, 1_000_000, &[]);
        assert_eq!(got, [(0, Status::Up), (240_000, Status::Unknown)]);
        assert_eq!(
            statuses(&samples, 239_999, &[]),
            [(0, Status::Up)],
            "nothing is decided after `through`"
        );
    }

    #[test]
    fn maintenance_takes_precedence_and_its_end_is_decided() {
        let samples = [s(1, 0, Failing), s(2, 0, Failing), s(1, 60_000, Failing)];
        let got = statuses(&samples, 100_000, &[(30_000, 90_000)]);
        assert_eq!(
            got,
            [
                (0, Status::Down),
                (30_000, Status::Maintenance),
                (90_000, Status::Down)
            ]
        );
    }
}

//! Check status (DESIGN §5): quorum over the reporting locations, with its
//! precedence, and the status changes it makes over time.
//!
//! Pure. The status at an instant is a function of the samples (each admitted
//! result with its pair's state after it) and the maintenance windows, so a
//! timeline recomputed after a late result is the one an in-order arrival
//! would have given.

use crate::state::{Millis, PairState};
use config::defaults::{Locations, Quorum};
use config::fleet::{Fleet, Peer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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
    /// How many locations its agent believed the fleet assigned: kept as
    /// reported, never trusted (see [`Electorate`]).
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

/// An agent ingest has heard from (its row in `agents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its key: the `pair` of its samples.
    pub key: i64,
    /// Its id, the rendezvous key.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// When ingest first heard from it.
    pub first_seen: Millis,
    /// When ingest last heard from it (a result or a heartbeat).
    pub last_seen: Millis,
}

/// Who votes on one check: decided by ingest from the agents it has heard
/// from, never from what one agent reports (an agent with a wrong view of
/// the fleet can neither lower nor raise the quorum).
#[derive(Clone, Copy, Debug)]
pub struct Electorate<'a> {
    /// The check's id, the rendezvous key.
    pub check: &'a str,
    /// How many locations the check asks for; `None` while ingest does not
    /// know the check (a placeholder): then the agents that probe it vote.
    pub locations: Option<Locations>,
    /// Every agent ingest knows.
    pub members: &'a [Member],
    /// The check's interval, in ms: a member is in the fleet while heard
    /// within [`REPORTING_INTERVALS`] of it.
    pub interval_ms: i64,
}

impl Electorate<'_> {
    /// The keys of the agents assigned to the check at `at`. The fleet is
    /// every agent heard within three intervals of `at` (between its first
    /// and its last word, give or take three intervals), plus every location that
    /// reports on this check; `locations: N` takes N of them by the agents'
    /// own rendezvous function, `all` takes them all, and an unknown check
    /// takes those that have probed it (`latest`).
    pub fn assigned(&self, at: Millis, latest: &BTreeMap<i64, &Sample>) -> BTreeSet<i64> {
        let span = REPORTING_INTERVALS * self.interval_ms.max(1);
        let fleet: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| {
                (m.first_seen - span < at && at - m.last_seen < span)
                    || latest.get(&m.key).is_some_and(|s| reports(s, at))
            })
            .collect();
        match self.locations {
            None => latest
                .values()
                .filter(|s| reports(s, at) || fleet.iter().any(|m| m.key == s.pair))
                .map(|s| s.pair)
                .collect(),
            Some(locations) => {
                let peers = Fleet::of(
                    fleet
                        .iter()
                        .map(|m| Peer::new(m.id.clone(), m.zone.clone())),
                );
                let keys: BTreeMap<&str, i64> =
                    fleet.iter().map(|m| (m.id.as_str(), m.key)).collect();
                peers
                    .assigned(self.check, locations)
                    .iter()
                    .filter_map(|p| keys.get(p.id.as_str()).copied())
                    .collect()
            }
        }
    }

    /// The instants in `[from, through]` at which a member leaves the fleet.
    fn departures(&self, from: Millis, through: Millis) -> impl Iterator<Item = Millis> + '_ {
        let span = REPORTING_INTERVALS * self.interval_ms.max(1);
        self.members
            .iter()
            .map(move |m| m.last_seen.saturating_add(span))
            .filter(move |t| from <= *t && *t <= through)
    }
}

/// Whether a location's newest sample still reports at `at`.
fn reports(s: &Sample, at: Millis) -> bool {
    at - s.at < REPORTING_INTERVALS * s.interval_ms.max(1)
}

/// The status at one instant, given each pair's newest sample at or before
/// it and the keys of the agents `assigned` to the check then: only they
/// vote, and the quorum is over how many they are.
pub fn decide(
    latest: &BTreeMap<i64, &Sample>,
    at: Millis,
    quorum: Quorum,
    windows: &[Window],
    assigned: &BTreeSet<i64>,
) -> (Status, Detail) {
    let reporting: Vec<&Sample> = latest
        .values()
        .filter(|s| assigned.contains(&s.pair) && reports(s, at))
        .copied()
        .collect();
    let assigned = assigned.len() as u32;
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
    electorate: &Electorate<'_>,
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
    points.extend(electorate.departures(from, through));
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
        let assigned = electorate.assigned(at, &latest);
        let (status, detail) = decide(&latest, at, quorum, windows, &assigned);
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

    /// Agents `1..=n`, heard from all along, in zones of their own.
    fn members(n: i64) -> Vec<Member> {
        (1..=n)
            .map(|k| Member {
                key: k,
                id: format!("agent-{k}"),
                zone: format!("zone-{k}"),
                first_seen: Millis::MIN / 4,
                last_seen: Millis::MAX / 4,
            })
            .collect()
    }

    fn electorate(members: &[Member], locations: Locations) -> Electorate<'_> {
        Electorate {
            check: "web",
            locations: Some(locations),
            members,
            interval_ms: 60_000,
        }
    }

    fn statuses(samples: &[Sample], through: Millis, windows: &[Window]) -> Vec<(Millis, Status)> {
        let m = members(3);
        changes(
            samples,
            0,
            through,
            None,
            Quorum::Majority,
            windows,
            &electorate(&m, Locations::Count(3)),
        )
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
        let m = members(3);
        let e = electorate(&m, Locations::Count(3));
        let got = changes(&samples, 0, 60_000, None, Quorum::Majority, &[], &e);
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
        let one = s(1, 0, Failing);
        let m = members(1);
        let got = changes(
            &[one],
            0,
            0,
            None,
            Quorum::Count(3),
            &[],
            &electorate(&m, Locations::Count(3)),
        );
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

    /// The status now of one sample per location, at instant 0.
    fn now_of(samples: &[Sample], e: &Electorate<'_>) -> (Status, Detail) {
        let latest: BTreeMap<i64, &Sample> = samples.iter().map(|s| (s.pair, s)).collect();
        decide(&latest, 0, Quorum::Majority, &[], &e.assigned(0, &latest))
    }

    #[test]
    fn a_confused_agent_can_neither_lower_nor_raise_the_quorum() {
        // Three agents share a check (`locations: 3`); a fourth believes it
        // is alone, so it probes every check and reports `assigned = 1`.
        let m = members(4);
        let e = electorate(&m, Locations::Count(3));
        let assigned = e.assigned(0, &BTreeMap::new());
        assert_eq!(assigned.len(), 3, "min(locations, fleet)");
        for confused in 1..=4 {
            let mut samples: Vec<Sample> = (1..=4).map(|k| s(k, 0, Passing)).collect();
            samples[confused as usize - 1] = Sample {
                assigned: 1,
                ..s(confused, 0, Failing)
            };
            let (status, detail) = now_of(&samples, &e);
            assert_ne!(
                status,
                Status::Down,
                "agent {confused} alone is not a quorum"
            );
            assert_eq!(detail.assigned, 3);
            assert_eq!(detail.reporting, 3, "only assigned agents vote");
        }
        // Nor does claiming a large fleet stop a real majority.
        let samples: Vec<Sample> = (1..=4)
            .map(|k| Sample {
                assigned: 100,
                ..s(k, 0, Failing)
            })
            .collect();
        assert_eq!(now_of(&samples, &e).0, Status::Down);
    }

    #[test]
    fn an_agent_no_longer_assigned_stops_voting_when_the_fleet_changes() {
        // Two of three agents are assigned; the third's failing vote does not
        // count. When ingest stops hearing from an assigned one, the
        // assignment moves and is decided at that instant.
        let mut m = members(3);
        let e = electorate(&m, Locations::Count(2));
        let outsider = (1..=3_i64)
            .find(|k| !e.assigned(0, &BTreeMap::new()).contains(k))
            .unwrap();
        let insider = (1..=3_i64).find(|k| *k != outsider).unwrap();
        for member in &mut m {
            if member.key == insider {
                member.last_seen = 0;
            }
        }
        let e = electorate(&m, Locations::Count(2));
        let other = 6 - insider - outsider;
        let samples = [
            s(insider, 0, Passing),
            s(outsider, 0, Failing),
            s(other, 0, Failing),
            s(outsider, 120_000, Failing),
            s(other, 120_000, Failing),
        ];
        let got = changes(&samples, 0, 200_000, None, Quorum::Majority, &[], &e);
        assert_eq!(got[0].status, Status::Degraded, "{got:?}");
        // The insider leaves the fleet 3 intervals after it was last heard.
        assert_eq!((got[1].at, got[1].status), (180_000, Status::Down));
        assert_eq!(got[1].detail.assigned, 2);
    }

    #[test]
    fn two_fleets_vote_in_one_quorum_over_the_union_of_their_agents() {
        // Fleet A: three in-cluster agents; fleet B: two external ones.
        let m = members(5);
        let e = electorate(&m, Locations::All);
        let with = |failing: &[i64]| -> Vec<Sample> {
            (1..=5)
                .map(|k| {
                    s(
                        k,
                        0,
                        if failing.contains(&k) {
                            Failing
                        } else {
                            Passing
                        },
                    )
                })
                .collect()
        };
        assert_eq!(
            now_of(&with(&[4, 5]), &e).0,
            Status::Degraded,
            "B's two of five"
        );
        let (status, detail) = now_of(&with(&[1, 2, 4]), &e);
        assert_eq!(status, Status::Down, "two of A and one of B: three of five");
        assert_eq!((detail.assigned, detail.failing), (5, 3));
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever each agent believes (`assigned`, and whether it probes
        /// the check at all), a minority of the failing assigned locations is
        /// never `down`, and a majority always is.
        #[test]
        fn only_a_majority_of_the_assigned_locations_makes_it_down(
            n in 1_i64..8,
            locations in prop_oneof![Just(Locations::All), (1_u32..6).prop_map(Locations::Count)],
            views in proptest::collection::vec((any::<bool>(), any::<bool>(), 1_u32..10), 8),
        ) {
            let m = members(n);
            let e = electorate(&m, locations);
            let assigned = e.assigned(0, &BTreeMap::new());
            prop_assert_eq!(assigned.len() as u32, match locations {
                Locations::All => n as u32,
                Locations::Count(c) => c.min(n as u32),
            });
            // Assigned agents all report; the others report only if confused.
            let samples: Vec<Sample> = (1..=n)
                .filter(|k| assigned.contains(k) || views[*k as usize].0)
                .map(|k| Sample {
                    assigned: views[k as usize].2,
                    ..s(k, 0, if views[k as usize].1 { Failing } else { Passing })
                })
                .collect();
            let failing = samples
                .iter()
                .filter(|x| assigned.contains(&x.pair) && x.state == Failing)
                .count() as u32;
            let (status, _) = now_of(&samples, &e);
            let majority = assigned.len() as u32 / 2 + 1;
            prop_assert_eq!(status == Status::Down, failing >= majority);
        }
    }
}

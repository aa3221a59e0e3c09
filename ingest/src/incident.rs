//! Automatic incidents (DESIGN §5): what a check's status changes do to its
//! incident. Pure; the store applies the [`Action`]s.

use crate::state::Millis;
use crate::status::{Change, Status};
use serde::{Deserialize, Serialize};

/// An incident's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Opened; nobody knows why yet.
    Investigating,
    /// The cause is known.
    Identified,
    /// A fix is out; watching.
    Monitoring,
    /// Over.
    Resolved,
}

impl State {
    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Investigating => "investigating",
            State::Identified => "identified",
            State::Monitoring => "monitoring",
            State::Resolved => "resolved",
        }
    }

    /// The inverse of [`State::as_str`].
    pub fn parse(text: &str) -> Option<State> {
        [
            State::Investigating,
            State::Identified,
            State::Monitoring,
            State::Resolved,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The newest automatic incident of a check, as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    /// Its id.
    pub id: i64,
    /// Its state.
    pub state: State,
    /// When it (last) opened.
    pub started_at: Millis,
    /// When it was resolved, if it is.
    pub resolved_at: Option<Millis>,
    /// Whether ingest resolved it (only those may reopen).
    pub resolved_automatically: bool,
    /// Whether an operator has posted an update.
    pub operator_updated: bool,
    /// Impact major (else minor).
    pub major: bool,
    /// When its current open period began: `started_at`, or when it was
    /// last reopened.
    pub opened_at: Millis,
    /// How long it was open in its earlier periods (before a reopen): its
    /// duration counts only the time it was open.
    pub earlier_open_ms: Millis,
}

impl Latest {
    /// How long it has been open by `at`, over all its open periods.
    pub fn open_ms(&self, at: Millis) -> Millis {
        self.earlier_open_ms + (at - self.opened_at).max(0)
    }
}

/// What to do to the check's incidents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a new automatic incident (impact major).
    Open {
        /// When.
        at: Millis,
        /// The first update.
        message: String,
    },
    /// Reopen the auto-resolved incident (impact major again).
    Reopen {
        /// Which.
        id: i64,
        /// When.
        at: Millis,
        /// The update.
        message: String,
        /// Its open time so far, now that a new open period begins.
        earlier_open_ms: Millis,
    },
    /// Post an update that moves an open incident's state or impact: the
    /// check failed again while `monitoring` (back to `identified`), a major
    /// outage recovered in some locations (`degraded`: impact minor), or a
    /// minor one fails everywhere again (impact major).
    Revise {
        /// Which.
        id: i64,
        /// When.
        at: Millis,
        /// Its state after.
        state: State,
        /// Impact major after (else minor).
        major: bool,
        /// The update.
        message: String,
    },
    /// Resolve it automatically.
    Resolve {
        /// Which.
        id: i64,
        /// When.
        at: Millis,
        /// The update.
        message: String,
    },
    /// The check recovered, but an operator owns the incident: set `monitoring`.
    Monitor {
        /// Which.
        id: i64,
        /// When.
        at: Millis,
        /// The update.
        message: String,
    },
}

/// What a status change does, given the check's newest automatic incident.
pub fn on_change(
    latest: Option<&Latest>,
    change: &Change,
    reopen_window_ms: i64,
) -> Option<Action> {
    let open = latest.filter(|l| l.state != State::Resolved);
    match change.status {
        Status::Down => {
            if let Some(l) = open {
                // Failing again while an operator watches a fix, or in more
                // places after a partial recovery: the incident says so.
                // Otherwise (down → unknown → down) nothing changes.
                let state = match l.state {
                    State::Monitoring => State::Identified,
                    s => s,
                };
                // An operator who graded it keeps their impact.
                let major = l.major || !l.operator_updated;
                return (state != l.state || major != l.major).then(|| Action::Revise {
                    id: l.id,
                    at: change.at,
                    state,
                    major,
                    message: format!("Failing again: {}", failing_text(change)),
                });
            }
            let message = detected(change);
            match latest {
                Some(l)
                    if l.resolved_automatically
                        && l.resolved_at
                            .is_some_and(|r| change.at - r <= reopen_window_ms) =>
                {
                    Some(Action::Reopen {
                        id: l.id,
                        at: change.at,
                        message: format!("Reopened: {}", failing_text(change)),
                        earlier_open_ms: l.earlier_open_ms
                            + l.resolved_at.map_or(0, |r| (r - l.opened_at).max(0)),
                    })
                }
                _ => Some(Action::Open {
                    at: change.at,
                    message,
                }),
            }
        }
        Status::Up => {
            let l = open?;
            if l.operator_updated {
                (l.state != State::Monitoring).then(|| Action::Monitor {
                    id: l.id,
                    at: change.at,
                    message: format!(
                        "Check recovered after {}; an operator will resolve this incident.",
                        duration_text(l.open_ms(change.at))
                    ),
                })
            } else {
                Some(Action::Resolve {
                    id: l.id,
                    at: change.at,
                    message: format!(
                        "Resolved automatically after {}.",
                        duration_text(l.open_ms(change.at))
                    ),
                })
            }
        }
        // A partial recovery is judged once settled: see [`on_partial_recovery`].
        Status::Degraded | Status::Maintenance | Status::Unknown => None,
    }
}

/// What a check that is `degraded` (as of `change`) does to its open major
/// incident: recovered in some locations, it is no longer a major outage
/// (impact minor, with an update), though only `up` resolves it. An
/// operator's incident is theirs to grade. The caller asks only once every
/// reporting location has reported for the change's instant, so results of
/// one slot arriving a second apart never post a passing "recovered in 2 of
/// 3" on the way to a full recovery.
pub fn on_partial_recovery(latest: Option<&Latest>, change: &Change) -> Option<Action> {
    let l = latest.filter(|l| l.state != State::Resolved && l.major && !l.operator_updated)?;
    let d = &change.detail;
    let of = d.assigned.max(d.reporting);
    Some(Action::Revise {
        id: l.id,
        at: change.at,
        state: l.state,
        major: false,
        message: format!(
            "Recovered in {} of {of} location{}; still failing in {}. Impact lowered to minor.",
            of.saturating_sub(d.failing),
            if of == 1 { "" } else { "s" },
            d.failing
        ),
    })
}

/// What retiring the check does to its open automatic incident.
pub fn on_retired(latest: Option<&Latest>, at: Millis) -> Option<Action> {
    let l = latest.filter(|l| l.state != State::Resolved)?;
    Some(Action::Resolve {
        id: l.id,
        at,
        message: "Resolved: the check was removed from the configuration.".into(),
    })
}

/// The applied form of an action: the incident as it is after it.
pub fn apply(latest: Option<&Latest>, action: &Action, new_id: i64) -> Latest {
    match action {
        Action::Open { at, .. } => Latest {
            id: new_id,
            state: State::Investigating,
            started_at: *at,
            resolved_at: None,
            resolved_automatically: false,
            operator_updated: false,
            major: true,
            opened_at: *at,
            earlier_open_ms: 0,
        },
        Action::Reopen {
            id,
            at,
            earlier_open_ms,
            ..
        } => Latest {
            id: *id,
            state: State::Investigating,
            resolved_at: None,
            resolved_automatically: false,
            major: true,
            opened_at: *at,
            earlier_open_ms: *earlier_open_ms,
            ..latest.cloned().unwrap_or_else(|| blank(*id))
        },
        Action::Revise {
            id, state, major, ..
        } => Latest {
            id: *id,
            state: *state,
            major: *major,
            ..latest.cloned().unwrap_or_else(|| blank(*id))
        },
        Action::Resolve { id, at, .. } => Latest {
            id: *id,
            state: State::Resolved,
            resolved_at: Some(*at),
            resolved_automatically: true,
            ..latest.cloned().unwrap_or_else(|| blank(*id))
        },
        Action::Monitor { id, .. } => Latest {
            id: *id,
            state: State::Monitoring,
            ..latest.cloned().unwrap_or_else(|| blank(*id))
        },
    }
}

fn blank(id: i64) -> Latest {
    Latest {
        id,
        state: State::Investigating,
        started_at: 0,
        resolved_at: None,
        resolved_automatically: false,
        operator_updated: false,
        major: true,
        opened_at: 0,
        earlier_open_ms: 0,
    }
}

/// "Detected: 3 of 3 locations failing (connect_refused)": from reason codes,
/// never from raw messages.
pub fn detected(change: &Change) -> String {
    format!("Detected: {}", failing_text(change))
}

/// "3 of 3 locations failing (connect_refused)".
fn failing_text(change: &Change) -> String {
    let d = &change.detail;
    let reasons = if d.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.reasons.join(", "))
    };
    format!(
        "{} of {} location{} failing{reasons}",
        d.failing,
        d.assigned.max(d.reporting),
        if d.assigned.max(d.reporting) == 1 {
            ""
        } else {
            "s"
        }
    )
}

/// An impact as stored: `major` or `minor`.
pub fn impact_text(major: bool) -> &'static str {
    if major { "major" } else { "minor" }
}

/// The title of an automatic incident.
pub fn title(check_name: &str) -> String {
    format!("{check_name} is down")
}

/// "4m 30s", "2h 5m", "3d 4h": a duration the way the page says it.
pub fn duration_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Detail;

    const WINDOW: i64 = 600_000;

    fn change(at: Millis, status: Status) -> Change {
        Change {
            at,
            status,
            detail: Detail {
                assigned: 3,
                reporting: 3,
                failing: 3,
                reasons: vec!["connect_refused".into()],
            },
        }
    }

    fn step(latest: Option<Latest>, c: Change) -> (Option<Latest>, Option<Action>) {
        let action = on_change(latest.as_ref(), &c, WINDOW);
        match &action {
            Some(a) => (Some(apply(latest.as_ref(), a, 7)), action),
            None => (latest, action),
        }
    }

    #[test]
    fn incident_opens_on_down_and_resolves_with_its_duration() {
        let (l, a) = step(None, change(0, Status::Down));
        assert_eq!(
            a,
            Some(Action::Open {
                at: 0,
                message: "Detected: 3 of 3 locations failing (connect_refused)".into()
            })
        );
        let (l, a) = step(l, change(270_000, Status::Up));
        assert_eq!(
            a,
            Some(Action::Resolve {
                id: 7,
                at: 270_000,
                message: "Resolved automatically after 4m 30s.".into()
            })
        );
        assert_eq!(l.map(|l| l.state), Some(State::Resolved));
    }

    #[test]
    fn down_unknown_down_while_open_changes_nothing() {
        let (l, _) = step(None, change(0, Status::Down));
        let (l, a) = step(l, change(60_000, Status::Unknown));
        assert_eq!(a, None);
        let (_, a) = step(l, change(120_000, Status::Down));
        assert_eq!(a, None);
    }

    #[test]
    fn incident_reopens_when_check_flaps_within_window() {
        let (l, _) = step(None, change(0, Status::Down));
        let (l, _) = step(l, change(60_000, Status::Up));
        let (l, a) = step(l, change(60_000 + WINDOW, Status::Down));
        assert!(matches!(a, Some(Action::Reopen { id: 7, .. })), "{a:?}");
        let (l, _) = step(l, change(60_000 + WINDOW + 1, Status::Up));
        let (_, a) = step(l, change(60_000 + 2 * WINDOW + 2, Status::Down));
        assert!(
            matches!(a, Some(Action::Open { .. })),
            "past the window: {a:?}"
        );
    }

    #[test]
    fn an_operator_resolved_incident_never_reopens() {
        let l = Latest {
            id: 3,
            state: State::Resolved,
            started_at: 0,
            resolved_at: Some(1000),
            resolved_automatically: false,
            operator_updated: true,
            major: true,
            opened_at: 0,
            earlier_open_ms: 0,
        };
        let a = on_change(Some(&l), &change(2000, Status::Down), WINDOW);
        assert!(matches!(a, Some(Action::Open { .. })), "{a:?}");
    }

    #[test]
    fn operator_updated_incident_goes_to_monitoring_instead_of_resolving() {
        let (l, _) = step(None, change(0, Status::Down));
        let l = l.map(|l| Latest {
            operator_updated: true,
            state: State::Identified,
            ..l
        });
        let (l, a) = step(l, change(90_000, Status::Up));
        assert!(matches!(a, Some(Action::Monitor { .. })), "{a:?}");
        let (_, a) = step(l, change(200_000, Status::Up));
        assert_eq!(a, None, "already monitoring");
    }

    #[test]
    fn retiring_resolves_the_open_incident() {
        let (l, _) = step(None, change(0, Status::Down));
        assert!(matches!(
            on_retired(l.as_ref(), 5),
            Some(Action::Resolve { .. })
        ));
        assert_eq!(on_retired(None, 5), None);
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(duration_text(270_000), "4m 30s");
        assert_eq!(duration_text(45_000), "45s");
        assert_eq!(duration_text(7_500_000), "2h 5m");
        assert_eq!(duration_text(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }

    fn degraded(at: Millis, failing: u32) -> Change {
        Change {
            detail: Detail {
                failing,
                ..change(at, Status::Degraded).detail
            },
            ..change(at, Status::Degraded)
        }
    }

    #[test]
    fn an_incident_in_monitoring_whose_check_fails_again_goes_back_to_identified() {
        let (l, _) = step(None, change(0, Status::Down));
        let l = l.map(|l| Latest {
            operator_updated: true,
            ..l
        });
        let (l, _) = step(l, change(60_000, Status::Up));
        assert_eq!(l.as_ref().map(|l| l.state), Some(State::Monitoring));
        let (l, a) = step(l, change(120_000, Status::Down));
        assert_eq!(
            a,
            Some(Action::Revise {
                id: 7,
                at: 120_000,
                state: State::Identified,
                major: true,
                message: "Failing again: 3 of 3 locations failing (connect_refused)".into()
            })
        );
        assert_eq!(l.map(|l| l.state), Some(State::Identified));
    }

    #[test]
    fn a_partial_recovery_lowers_the_impact_and_only_up_resolves() {
        let (l, _) = step(None, change(0, Status::Down));
        let (l, a) = step(l, degraded(60_000, 1));
        assert_eq!(a, None, "a degraded change alone does nothing");
        let a = on_partial_recovery(l.as_ref(), &degraded(60_000, 1));
        let l = a.as_ref().map(|a| apply(l.as_ref(), a, 7));
        assert_eq!(
            a,
            Some(Action::Revise {
                id: 7,
                at: 60_000,
                state: State::Investigating,
                major: false,
                message:
                    "Recovered in 2 of 3 locations; still failing in 1. Impact lowered to minor."
                        .into()
            })
        );
        assert_eq!(
            l.as_ref().map(|l| (l.major, l.state)),
            Some((false, State::Investigating))
        );
        // Settled again, it changes nothing; down everywhere again raises it.
        assert_eq!(on_partial_recovery(l.as_ref(), &degraded(90_000, 1)), None);
        let (l, a) = step(l, change(120_000, Status::Down));
        assert!(
            matches!(a, Some(Action::Revise { major: true, .. })),
            "{a:?}"
        );
        let (l, _) = step(l, degraded(150_000, 2));
        let (l, a) = step(l, change(180_000, Status::Up));
        assert!(matches!(a, Some(Action::Resolve { .. })), "{a:?}");
        assert_eq!(l.map(|l| l.state), Some(State::Resolved));
    }

    #[test]
    fn a_reopened_incidents_duration_counts_only_its_open_periods() {
        // Open 0-60s, resolved for 5 minutes, reopened 360-420s: 2 minutes open.
        let (l, _) = step(None, change(0, Status::Down));
        let (l, _) = step(l, change(60_000, Status::Up));
        let (l, a) = step(l, change(360_000, Status::Down));
        assert!(
            matches!(
                a,
                Some(Action::Reopen {
                    earlier_open_ms: 60_000,
                    ..
                })
            ),
            "{a:?}"
        );
        let (_, a) = step(l, change(420_000, Status::Up));
        assert_eq!(
            a,
            Some(Action::Resolve {
                id: 7,
                at: 420_000,
                message: "Resolved automatically after 2m.".into()
            })
        );
    }
}

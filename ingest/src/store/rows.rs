//! Conversions shared by both databases' row code: outcome and reason
//! codes, details of results that are not ok, and stored enums.

use super::StoreError;
use crate::incident::State;
use crate::rollup::Level;
use crate::status::Status;
use config::wire::{Outcome, Reason};

/// The stored form of a result's outcome.
pub(crate) fn outcome_code(o: &Outcome) -> i16 {
    match o {
        Outcome::Up => 0,
        Outcome::Degraded => 1,
        Outcome::Down => 2,
        Outcome::Other(_) => 3,
    }
}

/// Facts and assertions, kept only for results that are not ok.
pub(crate) fn detail(r: &config::wire::ProbeResult) -> Option<serde_json::Value> {
    (r.reason != Reason::Ok || r.outcome != Outcome::Up).then(|| {
        serde_json::json!({
            "outcome": r.outcome.as_str(),
            "reason": r.reason.as_str(),
            "message": r.message,
            "facts": r.facts,
            "assertions": r.assertions,
        })
    })
}

/// A stored status.
pub(crate) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}

/// A check's objective from its two columns; `None` unless both hold a
/// value that validation could have written.
pub fn slo(target_ppm: Option<i64>, window_days: Option<i64>) -> Option<config::catalog::Slo> {
    let target_ppm = u32::try_from(target_ppm?)
        .ok()
        .filter(|t| (1..1_000_000).contains(t))?;
    let window_days = u32::try_from(window_days?)
        .ok()
        .filter(|w| config::catalog::Slo::WINDOWS.contains(w))?;
    Some(config::catalog::Slo {
        target_ppm,
        window_days,
    })
}

/// A stored incident state.
pub(crate) fn parse_state(s: &str) -> Result<State, StoreError> {
    State::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown incident state {s:?}")))
}

/// A stored rollup level.
pub(crate) fn parse_level(code: i16) -> Result<Level, StoreError> {
    Level::ALL
        .into_iter()
        .find(|l| l.code() == code)
        .ok_or_else(|| StoreError::Corrupt(format!("rollup level {code}")))
}

//! Conversions shared by both databases' row code: outcome and reason
//! codes, details of results that are not ok, and stored enums.

use super::sql::Dialect;
use super::{CheckRow, StoreError};
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

/// A check row as both databases give it: every integer widened to 64 bits
/// and every instant in milliseconds (see [`check_columns`]).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredCheck {
    id: i64,
    slug: String,
    name: String,
    interval_ms: i64,
    failure_threshold: i64,
    success_threshold: i64,
    quorum: Option<i64>,
    reopen_window_ms: i64,
    decided_through: Option<i64>,
    created_at: i64,
    latest: Option<Vec<u8>>,
    locations: Option<i64>,
}

/// The columns of a [`StoredCheck`], as `d` selects them.
pub(crate) fn check_columns(d: Dialect) -> String {
    format!(
        "{} AS id, slug, name, interval_ms, {} AS failure_threshold, {} AS success_threshold,
         {} AS quorum, reopen_window_ms, {} AS decided_through, {} AS created_at, latest,
         {} AS locations",
        d.int("id"),
        d.int("failure_threshold"),
        d.int("success_threshold"),
        d.int("quorum"),
        d.ms("decided_through"),
        d.ms("created_at"),
        d.int("locations"),
    )
}

impl From<StoredCheck> for CheckRow {
    fn from(c: StoredCheck) -> CheckRow {
        let small = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        CheckRow {
            id: small(c.id),
            slug: c.slug,
            name: c.name,
            interval_ms: c.interval_ms,
            failure_threshold: small(c.failure_threshold),
            success_threshold: small(c.success_threshold),
            quorum: c.quorum.map(small),
            reopen_window_ms: c.reopen_window_ms,
            decided_through: c.decided_through,
            created_at: c.created_at,
            latest: c.latest.as_deref().and_then(super::decode_latest),
            locations: c.locations.map(|l| super::locations_of(small(l))),
        }
    }
}

//! The statements of one transaction, as each database runs them. The flow
//! that strings them together (`flow.rs`) is written once; PostgreSQL
//! answers each with one set-based statement, SQLite with a loop of small
//! ones (it is in-process, so a statement costs microseconds).

use super::{CheckRow, StoreError};
use crate::incident::{Action, Latest};
use crate::rollup::{Level, Rollup, Rollups};
use crate::state::{Millis, Pair, PairState};
use crate::status::{Change, Member, Sample, Status};
use config::wire::{AgentInfo, ProbeResult};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// A result row to insert: its agent and check, the result, its pair state
/// (`None` when it moves no state), and whether its pair's buffer placed it
/// (so it cannot be in the table yet; see `flow`).
#[derive(Debug)]
pub(crate) struct NewRow<'a> {
    pub agent: i32,
    pub check: i32,
    pub result: &'a ProbeResult,
    pub state: Option<i16>,
    pub fresh: bool,
}

/// `(level, check, bucket start)` of a rollup row.
pub(crate) type RollupKey = (Level, i32, Millis);

/// A stored rollup row, or a clear error naming its check.
pub(crate) fn stored_rollup(
    check: i32,
    count: i32,
    up: i32,
    bytes: &[u8],
) -> Result<Rollup, StoreError> {
    Rollup::decode(count.max(0) as u32, up.max(0) as u32, bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("rollup of check {check}")))
}

/// `(check, instant)`: where a check's span starts or its lookback ends.
pub(crate) type At = (i32, Millis);

/// `(agent, check)`: one pair.
pub(crate) type PairKey = (i32, i32);

/// `(agent, check, scheduled_at)`: one result row.
pub(crate) type RowKey = (i32, i32, Millis);

/// What a write decided about one check.
#[derive(Clone, Debug)]
pub(crate) struct Decided {
    /// The check.
    pub check: i32,
    /// Its status is decided up to here.
    pub through: Millis,
    /// Each location's newest sample (`encode_latest`).
    pub latest: Vec<u8>,
    /// The newest certificate expiry seen, if the message had one.
    pub cert_not_after: Option<Millis>,
    /// Until when its status cannot change without a new result (see
    /// `flow::quiet_until`): the tick passes it over until then.
    pub quiet_until: Millis,
}

/// The steps both databases answer with the same SQL (`reads.rs`): what a
/// write reads, folding's small updates, and incident actions.
pub(crate) trait Shared: Send {
    /// Every agent ingest has heard from, with when: the fleet it decides
    /// votes with.
    fn load_fleet(&mut self) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;

    /// The stored pairs of these agents with these checks.
    fn load_pairs(
        &mut self,
        agents: &[i32],
        checks: &[i32],
    ) -> impl Future<Output = Result<BTreeMap<PairKey, Pair>, StoreError>> + Send;

    /// The stored rollups of these buckets.
    fn load_rollups(
        &mut self,
        keys: &[(Level, i32, Millis)],
    ) -> impl Future<Output = Result<Vec<(RollupKey, Rollup)>, StoreError>> + Send;

    /// `(check, bucket)` of the rows of `level` of these checks changed since
    /// they were folded.
    fn unfolded_of(
        &mut self,
        level: Level,
        checks: &[i32],
    ) -> impl Future<Output = Result<Vec<At>, StoreError>> + Send;

    /// Every row of `level` inside these parent buckets (`(check, start)` of
    /// the level above), each with the parent it belongs to.
    fn load_parts(
        &mut self,
        level: Level,
        parents: &[At],
    ) -> impl Future<Output = Result<Vec<(At, Rollup)>, StoreError>> + Send;

    /// Marks every row of `level` of these checks folded.
    fn mark_folded(
        &mut self,
        level: Level,
        checks: &[i32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Raises a check's interval (a result said it is longer).
    fn widen_interval(
        &mut self,
        check: i32,
        interval_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Each check's admitted samples at or after its `low`; a store may leave
    /// out, of those before the check's `from`, all but each pair's newest
    /// ([`crate::status::relevant`]).
    fn load_samples(
        &mut self,
        lows: &[At],
        froms: &[At],
    ) -> impl Future<Output = Result<BTreeMap<i32, Vec<Sample>>, StoreError>> + Send;

    /// Each check's status just before its `from`.
    fn load_before(
        &mut self,
        froms: &[At],
    ) -> impl Future<Output = Result<BTreeMap<i32, Status>, StoreError>> + Send;

    /// Each check's stored status changes at or after its `from`, in order.
    fn load_old(
        &mut self,
        froms: &[At],
    ) -> impl Future<Output = Result<BTreeMap<i32, Vec<Change>>, StoreError>> + Send;

    /// Maintenance windows naming any of `slugs` and ending at or after `low`:
    /// `(checks, start, end)`.
    fn load_windows(
        &mut self,
        slugs: &[&str],
        low: Millis,
    ) -> impl Future<Output = Result<Vec<(Vec<String>, Millis, Millis)>, StoreError>> + Send;

    /// Each check's newest automatic incident.
    fn load_latest(
        &mut self,
        checks: &[i32],
    ) -> impl Future<Output = Result<BTreeMap<i32, Latest>, StoreError>> + Send;

    /// Applies one incident action; returns the incident's id.
    fn apply_action(
        &mut self,
        check: &CheckRow,
        action: &Action,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Writes a `check.status_changed` event for each of `changes` (once
    /// each, by id), in the transaction that decided them.
    fn check_events(
        &mut self,
        check: &CheckRow,
        changes: &[Change],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One database's side of a transaction: its reads, and its writes.
pub(crate) trait Ops: Shared {
    /// The agents' rows (last seen raised to each one's `seen`); their ids,
    /// in the order given. Callers give distinct agents in id order.
    fn upsert_agents(
        &mut self,
        agents: &[(&AgentInfo, Millis)],
    ) -> impl Future<Output = Result<Vec<i32>, StoreError>> + Send;

    /// Placeholder rows for checks not known yet (`(slug, interval ms)`), then
    /// every named check locked, in id order.
    fn lock_checks(
        &mut self,
        wanted: &[(&str, i64)],
    ) -> impl Future<Output = Result<Vec<CheckRow>, StoreError>> + Send;

    /// Inserts the rows that are not there yet; returns the keys of those
    /// inserted.
    fn insert_results(
        &mut self,
        rows: &[NewRow<'_>],
    ) -> impl Future<Output = Result<BTreeSet<RowKey>, StoreError>> + Send;

    /// New states of stored rows (nothing to do when empty).
    fn write_states(
        &mut self,
        states: &BTreeMap<RowKey, PairState>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes these pairs back. `stored` are the keys [`Ops::load_pairs`]
    /// found under the check locks: the others are new.
    fn save_pairs(
        &mut self,
        pairs: &BTreeMap<PairKey, Pair>,
        stored: &BTreeSet<PairKey>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes these rollups (already merged with the stored ones). `stored`,
    /// when known, are the keys [`Ops::load_rollups`] found under the check
    /// locks: the others are new.
    fn save_rollups(
        &mut self,
        rollups: &Rollups,
        stored: Option<&BTreeSet<RollupKey>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Locks these checks' rows, in id order (writers take them first).
    fn lock_ids(&mut self, checks: &[i32]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records up to where each check's status is decided, each location's
    /// newest sample, and the newest certificate expiry (when there is one).
    fn set_decided(
        &mut self,
        decided: &[Decided],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces each check's changes at or after its `from` with these.
    fn write_changes(
        &mut self,
        rewrites: &[(i32, Millis, &[Change])],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets the current status of checks that changed, and announces them.
    fn set_statuses(
        &mut self,
        statuses: &[(i32, Status)],
        slugs: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

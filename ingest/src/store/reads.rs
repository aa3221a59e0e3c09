//! The steps of a write that both databases answer with the same SQL
//! ([`super::sql`]): what the flow reads (the fleet, pairs, rollups, samples,
//! status changes, windows, incidents), the small updates of folding, and
//! incident actions (`incidents.rs`).
//! [`super::pg_ops`] and [`super::sqlite_ops`] hand these their connection;
//! they keep to themselves only the bulk writes, where PostgreSQL's binary
//! `COPY` and arrays and SQLite's statement loops really differ.

use super::ops::{At, PairKey, RollupKey, Shared, stored_rollup};
use super::rows::{parse_level, parse_state, parse_status};
use super::sql::{Arg, Conn};
use super::{CheckRow, StoreError, reason_text};
use crate::incident::{Action, Latest};
use crate::rollup::{Level, Rollup};
use crate::state::{Millis, Pair, PairState};
use crate::status::{Change, Detail, Member, Sample, Status};
use std::collections::{BTreeMap, BTreeSet};

/// Every agent heard from, with when.
pub(crate) async fn load_fleet(mut c: Conn<'_>) -> Result<Vec<Member>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Agent {
        id: i64,
        name: String,
        zone: String,
        first_seen: i64,
        last_seen: i64,
    }
    let d = c.dialect();
    let rows: Vec<Agent> = c
        .rows(
            &format!(
                "SELECT {} AS id, name, zone, {} AS first_seen, {} AS last_seen FROM agents",
                d.int("id"),
                d.ms("first_seen"),
                d.ms("last_seen")
            ),
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|a| Member {
            key: a.id,
            id: a.name,
            zone: a.zone,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
        })
        .collect())
}

/// The stored pairs of these agents with these checks.
pub(crate) async fn load_pairs(
    mut c: Conn<'_>,
    agents: &[i32],
    checks: &[i32],
) -> Result<BTreeMap<PairKey, Pair>, StoreError> {
    let d = c.dialect();
    let rows: Vec<(i64, i64, Vec<u8>)> = c
        .rows(
            &format!(
                "SELECT {}, {}, pair FROM pairs
                 WHERE agent_id IN ({}) AND check_id IN ({})",
                d.int("agent_id"),
                d.int("check_id"),
                d.int_list(1),
                d.int_list(2)
            ),
            &[Arg::ints(agents), Arg::ints(checks)],
        )
        .await?;
    rows.into_iter()
        .map(|(a, c, bytes)| {
            let pair = Pair::decode(&bytes)
                .ok_or_else(|| StoreError::Corrupt(format!("pair of check {c}")))?;
            Ok(((a as i32, c as i32), pair))
        })
        .collect()
}

/// The stored rollups of these buckets.
pub(crate) async fn load_rollups(
    mut c: Conn<'_>,
    keys: &[RollupKey],
) -> Result<Vec<(RollupKey, Rollup)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        level: i64,
        check_id: i64,
        bucket: i64,
        count: i64,
        up: i64,
        measures: Vec<u8>,
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let d = c.dialect();
    let wanted: BTreeSet<RollupKey> = keys.iter().copied().collect();
    let rows: Vec<Row> = c
        .rows(
            &format!(
                "SELECT {} AS level, {} AS check_id, {} AS bucket, {} AS count, {} AS up, measures
                 FROM rollups r JOIN ({}) AS k
                   ON r.level = k.l AND r.check_id = k.c AND r.bucket = {}",
                d.int("r.level"),
                d.int("r.check_id"),
                d.ms("r.bucket"),
                d.int("r.count"),
                d.int("r.up"),
                d.tuples(1, &["l", "c", "b"]),
                d.instant("k.b")
            ),
            &[Arg::tuples(
                keys.iter()
                    .map(|k| [i64::from(k.0.code()), i64::from(k.1), k.2]),
            )],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let key = (parse_level(r.level as i16)?, r.check_id as i32, r.bucket);
        if wanted.contains(&key) {
            let rollup = stored_rollup(key.1, r.count as i32, r.up as i32, &r.measures)?;
            out.push((key, rollup));
        }
    }
    Ok(out)
}

/// Each check with rows of `level` changed since they were folded, with the
/// oldest of those rows' buckets.
pub(crate) async fn unfolded(mut c: Conn<'_>, level: Level) -> Result<Vec<At>, StoreError> {
    let d = c.dialect();
    let rows: Vec<(i64, i64)> = c
        .rows(
            &format!(
                "SELECT {}, {} FROM rollups WHERE level = {} AND NOT folded GROUP BY check_id",
                d.int("check_id"),
                d.ms("MIN(bucket)"),
                d.p(1)
            ),
            &[Arg::Int(i64::from(level.code()))],
        )
        .await?;
    Ok(rows.into_iter().map(|(c, b)| (c as i32, b)).collect())
}

/// `(check, bucket)` of the rows of `level` of these checks changed since
/// they were folded.
pub(crate) async fn unfolded_of(
    mut c: Conn<'_>,
    level: Level,
    checks: &[i32],
) -> Result<Vec<At>, StoreError> {
    let d = c.dialect();
    let rows: Vec<(i64, i64)> = c
        .rows(
            &format!(
                "SELECT {}, {} FROM rollups
                 WHERE level = {} AND NOT folded AND check_id IN ({})",
                d.int("check_id"),
                d.ms("bucket"),
                d.p(1),
                d.int_list(2)
            ),
            &[Arg::Int(i64::from(level.code())), Arg::ints(checks)],
        )
        .await?;
    Ok(rows.into_iter().map(|(c, b)| (c as i32, b)).collect())
}

/// Every row of `level` inside these parent buckets, with its parent.
pub(crate) async fn load_parts(
    mut c: Conn<'_>,
    level: Level,
    parents: &[At],
) -> Result<Vec<(At, Rollup)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        check_id: i64,
        parent: i64,
        count: i64,
        up: i64,
        measures: Vec<u8>,
    }
    let Some(span) = level.parent().map(Level::span_ms) else {
        return Ok(Vec::new());
    };
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let d = c.dialect();
    let rows: Vec<Row> = c
        .rows(
            &format!(
                "SELECT {} AS check_id, k.s AS parent, {} AS count, {} AS up, measures
                 FROM rollups r JOIN ({}) AS k
                   ON r.level = {} AND r.check_id = k.c
                  AND r.bucket >= {} AND r.bucket < {}",
                d.int("r.check_id"),
                d.int("r.count"),
                d.int("r.up"),
                d.tuples(1, &["c", "s", "e"]),
                d.p(2),
                d.instant("k.s"),
                d.instant("k.e")
            ),
            &[
                Arg::tuples(parents.iter().map(|&(c, s)| [i64::from(c), s, s + span])),
                Arg::Int(i64::from(level.code())),
            ],
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            let rollup =
                stored_rollup(r.check_id as i32, r.count as i32, r.up as i32, &r.measures)?;
            Ok(((r.check_id as i32, r.parent), rollup))
        })
        .collect()
}

/// Marks every row of `level` of these checks folded.
pub(crate) async fn mark_folded(
    mut c: Conn<'_>,
    level: Level,
    checks: &[i32],
) -> Result<(), StoreError> {
    let d = c.dialect();
    c.exec(
        &format!(
            "UPDATE rollups SET folded = true
             WHERE level = {} AND NOT folded AND check_id IN ({})",
            d.p(1),
            d.int_list(2)
        ),
        &[Arg::Int(i64::from(level.code())), Arg::ints(checks)],
    )
    .await?;
    Ok(())
}

/// Raises a check's interval (a result said it is longer).
pub(crate) async fn widen_interval(
    mut c: Conn<'_>,
    check: i32,
    interval_ms: i64,
) -> Result<(), StoreError> {
    let d = c.dialect();
    c.exec(
        &format!(
            "UPDATE checks SET interval_ms = {} WHERE id = {}",
            d.p(2),
            d.p(1)
        ),
        &[Arg::Int(check.into()), Arg::Int(interval_ms)],
    )
    .await?;
    Ok(())
}

/// Each check's admitted samples at or after its `low`.
pub(crate) async fn load_samples(
    mut c: Conn<'_>,
    lows: &[At],
) -> Result<BTreeMap<i32, Vec<Sample>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        check_id: i64,
        agent_id: i64,
        at: i64,
        state: i64,
        interval_ms: i64,
        assigned: i64,
        reason: i64,
    }
    let d = c.dialect();
    let columns = format!(
        "{} AS check_id, {} AS agent_id, {} AS at, {} AS state, {} AS interval_ms,
         {} AS assigned, {} AS reason",
        d.int("check_id"),
        d.int("agent_id"),
        d.ms("scheduled_at"),
        d.int("state"),
        d.int("interval_ms"),
        d.int("assigned"),
        d.int("reason")
    );
    let low_of: BTreeMap<i32, Millis> = lows.iter().copied().collect();
    let earliest = lows.iter().map(|l| l.1).min().unwrap_or(0);
    let latest = lows.iter().map(|l| l.1).max().unwrap_or(0);
    // Usually the lows are close together: one index scan from the earliest,
    // then each check's own in Rust. Far apart (a late spool), a range scan
    // per check instead.
    let spans: Vec<(Vec<i32>, Millis)> = if latest - earliest <= 600_000 {
        vec![(low_of.keys().copied().collect(), earliest)]
    } else {
        low_of.iter().map(|(c, l)| (vec![*c], *l)).collect()
    };
    let sql = format!(
        "SELECT {columns} FROM results
         WHERE check_id IN ({}) AND scheduled_at >= {} AND state IS NOT NULL",
        d.int_list(1),
        d.at(2)
    );
    let mut out: BTreeMap<i32, Vec<Sample>> = BTreeMap::new();
    for (checks, low) in spans {
        let rows: Vec<Row> = c.rows(&sql, &[Arg::ints(&checks), Arg::Int(low)]).await?;
        for r in rows {
            let check = r.check_id as i32;
            if low_of.get(&check).is_some_and(|low| r.at >= *low) {
                out.entry(check).or_default().push(Sample {
                    pair: r.agent_id,
                    at: r.at,
                    state: PairState::from_code(r.state as i16).unwrap_or(PairState::Passing),
                    interval_ms: r.interval_ms,
                    assigned: r.assigned.max(0) as u32,
                    reason: reason_text(r.reason as i16),
                });
            }
        }
    }
    Ok(out)
}

/// Each check's status just before its `from`.
pub(crate) async fn load_before(
    mut c: Conn<'_>,
    froms: &[At],
) -> Result<BTreeMap<i32, Status>, StoreError> {
    let d = c.dialect();
    let rows: Vec<(i64, Option<String>)> = c
        .rows(
            &format!(
                "SELECT q.c, (SELECT status FROM status_changes
                              WHERE check_id = q.c AND at < {} ORDER BY at DESC LIMIT 1)
                 FROM ({}) AS q",
                d.instant("q.f"),
                d.tuples(1, &["c", "f"])
            ),
            &[Arg::tuples(froms.iter().map(|(c, f)| [i64::from(*c), *f]))],
        )
        .await?;
    rows.into_iter()
        .filter_map(|(c, s)| Some((c as i32, s?)))
        .map(|(c, s)| Ok((c, parse_status(&s)?)))
        .collect()
}

/// Each check's stored status changes at or after its `from`, in order.
pub(crate) async fn load_old(
    mut c: Conn<'_>,
    froms: &[At],
) -> Result<BTreeMap<i32, Vec<Change>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        check_id: i64,
        at: i64,
        status: String,
        assigned: i64,
        reporting: i64,
        failing: i64,
        reasons: String,
    }
    let d = c.dialect();
    let rows: Vec<Row> = c
        .rows(
            &format!(
                "SELECT {} AS check_id, {} AS at, s.status, {} AS assigned, {} AS reporting,
                        {} AS failing, {} AS reasons
                 FROM ({}) AS q JOIN status_changes s ON s.check_id = q.c AND s.at >= {}
                 ORDER BY s.check_id, s.at",
                d.int("s.check_id"),
                d.ms("s.at"),
                d.int("s.assigned"),
                d.int("s.reporting"),
                d.int("s.failing"),
                d.json_list("s.reasons"),
                d.tuples(1, &["c", "f"]),
                d.instant("q.f")
            ),
            &[Arg::tuples(froms.iter().map(|(c, f)| [i64::from(*c), *f]))],
        )
        .await?;
    let mut out: BTreeMap<i32, Vec<Change>> = BTreeMap::new();
    for r in rows {
        let reasons: Vec<String> = serde_json::from_str(&r.reasons)
            .map_err(|e| StoreError::Corrupt(format!("reasons of check {}: {e}", r.check_id)))?;
        out.entry(r.check_id as i32).or_default().push(Change {
            at: r.at,
            status: parse_status(&r.status)?,
            detail: Detail {
                assigned: r.assigned.max(0) as u32,
                reporting: r.reporting.max(0) as u32,
                failing: r.failing.max(0) as u32,
                reasons,
            },
        });
    }
    Ok(out)
}

/// Maintenance windows naming any of `slugs` and ending at or after `low`:
/// `(checks, start, end)`.
pub(crate) async fn load_windows(
    mut c: Conn<'_>,
    slugs: &[&str],
    low: Millis,
) -> Result<Vec<(Vec<String>, Millis, Millis)>, StoreError> {
    let d = c.dialect();
    let rows: Vec<(String, i64, i64)> = c
        .rows(
            &format!(
                "SELECT {}, {}, {} FROM maintenance_windows WHERE ends_at >= {}",
                d.json_list("checks"),
                d.ms("starts_at"),
                d.ms("ends_at"),
                d.at(1)
            ),
            &[Arg::Int(low)],
        )
        .await?;
    let mut out = Vec::new();
    for (checks, start, end) in rows {
        let checks: Vec<String> = serde_json::from_str(&checks)
            .map_err(|e| StoreError::Corrupt(format!("a maintenance window's checks: {e}")))?;
        if checks.iter().any(|c| slugs.contains(&c.as_str())) {
            out.push((checks, start, end));
        }
    }
    Ok(out)
}

/// Each check's newest automatic incident.
pub(crate) async fn load_latest(
    mut c: Conn<'_>,
    checks: &[i32],
) -> Result<BTreeMap<i32, Latest>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        check_id: i64,
        id: i64,
        state: String,
        started_at: i64,
        resolved_at: Option<i64>,
        resolved_automatically: bool,
        operator_updated: bool,
        impact: String,
        reopened_at: Option<i64>,
        earlier_open_ms: i64,
    }
    let d = c.dialect();
    let rows: Vec<Row> = c
        .rows(
            &format!(
                "SELECT {} AS check_id, i.id, i.state, {} AS started_at, {} AS resolved_at,
                        i.resolved_automatically, i.operator_updated, i.impact,
                        {} AS reopened_at, i.earlier_open_ms
                 FROM incidents i
                 WHERE i.id IN (SELECT (SELECT max(id) FROM incidents
                                        WHERE auto AND check_id = q.c)
                                FROM ({}) AS q)",
                d.int("i.check_id"),
                d.ms("i.started_at"),
                d.ms("i.resolved_at"),
                d.ms("i.reopened_at"),
                d.tuples(1, &["c"])
            ),
            &[Arg::tuples(checks.iter().map(|c| [i64::from(*c)]))],
        )
        .await?;
    rows.into_iter()
        .map(|i| {
            Ok((
                i.check_id as i32,
                Latest {
                    id: i.id,
                    state: parse_state(&i.state)?,
                    started_at: i.started_at,
                    resolved_at: i.resolved_at,
                    resolved_automatically: i.resolved_automatically,
                    operator_updated: i.operator_updated,
                    major: i.impact == "major",
                    opened_at: i.reopened_at.unwrap_or(i.started_at),
                    earlier_open_ms: i.earlier_open_ms,
                },
            ))
        })
        .collect()
}

/// A transaction that answers [`Shared`] through its connection.
pub(crate) trait Connected: Send {
    /// The transaction's connection.
    fn conn(&mut self) -> Conn<'_>;
}

impl<T: Connected> Shared for T {
    async fn load_fleet(&mut self) -> Result<Vec<Member>, StoreError> {
        load_fleet(self.conn()).await
    }

    async fn load_pairs(
        &mut self,
        agents: &[i32],
        checks: &[i32],
    ) -> Result<BTreeMap<PairKey, Pair>, StoreError> {
        load_pairs(self.conn(), agents, checks).await
    }

    async fn load_rollups(
        &mut self,
        keys: &[RollupKey],
    ) -> Result<Vec<(RollupKey, Rollup)>, StoreError> {
        load_rollups(self.conn(), keys).await
    }

    async fn widen_interval(&mut self, check: i32, interval_ms: i64) -> Result<(), StoreError> {
        widen_interval(self.conn(), check, interval_ms).await
    }

    async fn unfolded_of(&mut self, level: Level, checks: &[i32]) -> Result<Vec<At>, StoreError> {
        unfolded_of(self.conn(), level, checks).await
    }

    async fn load_parts(
        &mut self,
        level: Level,
        parents: &[At],
    ) -> Result<Vec<(At, Rollup)>, StoreError> {
        load_parts(self.conn(), level, parents).await
    }

    async fn mark_folded(&mut self, level: Level, checks: &[i32]) -> Result<(), StoreError> {
        mark_folded(self.conn(), level, checks).await
    }

    async fn load_samples(
        &mut self,
        lows: &[At],
        _froms: &[At],
    ) -> Result<BTreeMap<i32, Vec<Sample>>, StoreError> {
        load_samples(self.conn(), lows).await
    }

    async fn load_before(&mut self, froms: &[At]) -> Result<BTreeMap<i32, Status>, StoreError> {
        load_before(self.conn(), froms).await
    }

    async fn load_old(&mut self, froms: &[At]) -> Result<BTreeMap<i32, Vec<Change>>, StoreError> {
        load_old(self.conn(), froms).await
    }

    async fn load_windows(
        &mut self,
        slugs: &[&str],
        low: Millis,
    ) -> Result<Vec<(Vec<String>, Millis, Millis)>, StoreError> {
        load_windows(self.conn(), slugs, low).await
    }

    async fn load_latest(&mut self, checks: &[i32]) -> Result<BTreeMap<i32, Latest>, StoreError> {
        load_latest(self.conn(), checks).await
    }

    async fn apply_action(&mut self, check: &CheckRow, action: &Action) -> Result<i64, StoreError> {
        super::incidents::apply(self.conn(), check, action).await
    }

    async fn check_events(
        &mut self,
        check: &CheckRow,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        super::outbox::check_events(&mut self.conn(), check, changes).await
    }
}

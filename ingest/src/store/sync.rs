//! The leader's work on the store, written once for both databases
//! ([`super::sql`]): catalog sync (checks, retirement, config maintenance
//! windows), the silence and maintenance tick, rollup folding, and what the
//! metrics export reads. Partitions (PostgreSQL's alone) are made here too.

use super::flow::{self, Due};
use super::pg_ops::{PgOps, Writes};
use super::rows::{StoredCheck, check_columns};
use super::sql::{Arg, Tx};
use super::sqlite_ops::SqliteOps;
use super::{CheckRow, PgStore, Store, StoreError, ts};
use crate::rollup::Level;
use crate::state::Millis;
use crate::status::Status;
use chrono::Duration as ChronoDuration;
use config::Catalog;
use config::defaults::Quorum;
use std::time::Duration;

const DAY_MS: Millis = 86_400_000;
/// Raw-result partitions are kept made this many days ahead.
pub const PARTITIONS_AHEAD: i64 = 3;
/// Config maintenance windows are materialized this far ahead.
pub const MAINTENANCE_HORIZON_MS: Millis = 7 * DAY_MS;

/// Checks decided in one of the tick's transactions.
const TICK_CHUNK: usize = 100;

/// How long one tick may spend deciding checks before it leaves the rest to
/// the next (see [`Store::tick_within`]).
pub const TICK_BUDGET: Duration = Duration::from_secs(1);

/// Checks folded in one of the fold's transactions.
const FOLD_CHUNK: usize = 250;

/// How long one pass of folding may spend before it leaves the rest to the
/// next (see [`Store::fold_within`]).
pub const FOLD_BUDGET: Duration = Duration::from_secs(1);

/// How old a check's oldest unfolded change must be before the leader folds
/// it (see [`Store::fold_within`]).
pub const FOLD_SETTLE_MS: Millis = 60_000;

/// A check's verdict for `statuspage_check_up`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckUp {
    /// The check id.
    pub slug: String,
    /// Its group.
    pub group: String,
    /// Its status.
    pub status: Status,
    /// Its service level objective, if it has one.
    pub slo: Option<config::catalog::Slo>,
}

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Checks looked at.
    pub checks: usize,
    /// Checks skipped because ingest lags more than their interval.
    pub lagging: usize,
    /// Checks due but left to the next tick: the tick had spent its budget.
    pub deferred: usize,
    /// Checks whose status or incident changed.
    pub changed: Vec<String>,
}

/// What a pass of folding did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Hour and day rows written.
    pub written: usize,
    /// Checks with changed rows left to the next pass: the pass had spent
    /// its budget (a check is counted once for each level it waits at).
    pub deferred: usize,
}

/// The checks with these ids that are not retired, locked (PostgreSQL), in id order.
async fn lock_checks(tx: &mut Tx, ids: &[i32]) -> Result<Vec<CheckRow>, StoreError> {
    let d = tx.dialect();
    let sql = format!(
        "SELECT {} FROM checks WHERE id IN ({}) AND retired_at IS NULL ORDER BY id{}",
        check_columns(d),
        d.int_list(1),
        d.for_update()
    );
    let rows: Vec<StoredCheck> = tx.rows(&sql, &[Arg::ints(ids)]).await?;
    Ok(rows.into_iter().map(CheckRow::from).collect())
}

/// What a prune removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Agents unseen since the cutoff.
    pub agents: u64,
    /// Their pairs (one per check they probed).
    pub pairs: u64,
}

impl Store {
    /// Deletes the agents unseen since `cutoff` and their pairs: on an
    /// autoscaled cluster every node that ever ran an agent would otherwise
    /// stay forever. (`checks.latest` forgets them on its own; see
    /// `flow::LATEST_KEPT_MS`.)
    pub async fn prune(&self, cutoff: Millis) -> Result<Pruned, StoreError> {
        transaction!(self, tx => {
            let d = tx.dialect();
            let pairs = tx
                .exec(
                    &format!(
                        "DELETE FROM pairs WHERE agent_id IN
                         (SELECT id FROM agents WHERE last_seen < {})",
                        d.at(1)
                    ),
                    &[Arg::Int(cutoff)],
                )
                .await?;
            let agents = tx
                .exec(
                    &format!(
                        "DELETE FROM agents WHERE last_seen < {}
                         AND NOT EXISTS (SELECT 1 FROM pairs p WHERE p.agent_id = agents.id)",
                        d.at(1)
                    ),
                    &[Arg::Int(cutoff)],
                )
                .await?;
            Pruned { agents, pairs }
        })
        .await
    }
}

/// Checks a sync transaction holds at most.
const SYNC_CHUNK: usize = 1_000;

/// What a catalog sync must do, read without locks.
struct CatalogChanges<'c> {
    /// Rows to update, by id in id order: with the catalog's check (and its
    /// position), or `None` for one the catalog no longer has.
    changing: Vec<(i64, Option<(usize, &'c config::Check)>)>,
    /// Catalog checks with no row yet.
    new: Vec<(usize, &'c config::Check)>,
}

/// A check row as catalog sync compares it.
#[derive(sqlx::FromRow)]
struct SyncedCheck {
    id: i64,
    slug: String,
    config_hash: String,
    name: String,
    group_name: String,
    group_description: Option<String>,
    slo_target_ppm: Option<i64>,
    slo_window_days: Option<i64>,
    position: i64,
    public: i64,
    locations: Option<i64>,
    /// Not a placeholder, not absent, not retired.
    settled: i64,
    /// Neither absent nor retired.
    present: i64,
}

impl Store {
    /// The rows the catalog changes, read without locks (the upsert's own
    /// `WHERE` still decides, under the lock, whether a row differs).
    async fn catalog_changes<'c>(
        &self,
        catalog: &'c Catalog,
    ) -> Result<CatalogChanges<'c>, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        let rows: Vec<SyncedCheck> = pool
            .rows(
                &format!(
                    "SELECT {} AS id, slug, config_hash, name, group_name, group_description,
                         {} AS slo_target_ppm, {} AS slo_window_days, {} AS position,
                         {} AS public, {} AS locations, {} AS settled, {} AS present
                     FROM checks",
                    d.int("id"),
                    d.int("slo_target_ppm"),
                    d.int("slo_window_days"),
                    d.int("position"),
                    d.int("CASE WHEN public THEN 1 ELSE 0 END"),
                    d.int("locations"),
                    d.int("CASE WHEN placeholder OR absent_since IS NOT NULL OR retired_at IS NOT NULL THEN 0 ELSE 1 END"),
                    d.int("CASE WHEN absent_since IS NULL AND retired_at IS NULL THEN 1 ELSE 0 END"),
                ),
                &[],
            )
            .await?;
        let by_slug: std::collections::HashMap<&str, &SyncedCheck> =
            rows.iter().map(|r| (r.slug.as_str(), r)).collect();
        let mut changes = CatalogChanges {
            changing: Vec::new(),
            new: Vec::new(),
        };
        for (position, c) in catalog.checks.iter().enumerate() {
            match by_slug.get(c.id.as_str()) {
                None => changes.new.push((position, c)),
                Some(r) => {
                    let same = r.settled == 1
                        && r.config_hash == c.config_hash.to_string()
                        && r.name == c.name
                        && *r.group_name == *c.group
                        && r.group_description.as_deref() == group_description(catalog, c)
                        && (r.slo_target_ppm, r.slo_window_days) == slo_columns(c)
                        && r.position == position as i64
                        && r.public == i64::from(c.public)
                        && r.locations == Some(i64::from(super::locations_code(c.locations)));
                    if !same {
                        changes.changing.push((r.id, Some((position, c))));
                    }
                }
            }
        }
        let wanted: std::collections::HashSet<&str> =
            catalog.checks.iter().map(|c| c.id.as_str()).collect();
        changes.changing.extend(
            rows.iter()
                .filter(|r| r.present == 1 && !wanted.contains(r.slug.as_str()))
                .map(|r| (r.id, None)),
        );
        changes.changing.sort_by_key(|c| c.0);
        Ok(changes)
    }
}

/// Runs `$body` with `$ops`, the flow's view of transaction `$tx`.
macro_rules! with_ops {
    ($tx:expr, |$ops:ident| $body:expr) => {
        match $tx {
            Tx::Pg(t) => {
                let $ops = &mut PgOps(t, Writes::Upsert);
                $body
            }
            Tx::Sqlite(t) => {
                let $ops = &mut SqliteOps(t);
                $body
            }
        }
    };
}

impl Store {
    /// Brings the checks table in step with the catalog: upserts every check
    /// (turning placeholders into real checks), marks missing ones absent,
    /// and retires those absent and silent for `retire_after`. Config
    /// maintenance windows are materialized too; API windows are never touched.
    ///
    /// Only rows that change are locked, in id order (the order writers lock
    /// checks in, so the two never deadlock), at most [`SYNC_CHUNK`] to a
    /// transaction: a sync of 100,000 checks never holds them all at once.
    pub async fn sync_catalog(
        &self,
        catalog: &Catalog,
        now: Millis,
        retire_after: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let work = self.catalog_changes(catalog).await?;
        for chunk in work.changing.chunks(SYNC_CHUNK) {
            transaction!(self, tx => {
                let d = tx.dialect();
                let ids: Vec<i64> = chunk.iter().map(|c| c.0).collect();
                tx.exec(
                    &format!(
                        "SELECT id FROM checks WHERE id IN ({}) ORDER BY id{}",
                        d.int_list(1),
                        d.for_update()
                    ),
                    &[Arg::ints(&ids)],
                )
                .await?;
                let wanted: Vec<(usize, &config::Check)> =
                    chunk.iter().filter_map(|c| c.1).collect();
                upsert_checks(tx, catalog, &wanted, now).await?;
                let absent: Vec<i64> = chunk
                    .iter()
                    .filter(|c| c.1.is_none())
                    .map(|c| c.0)
                    .collect();
                tx.exec(
                    &format!(
                        "UPDATE checks SET absent_since = {}
                         WHERE id IN ({}) AND retired_at IS NULL AND absent_since IS NULL",
                        d.at(2),
                        d.int_list(1)
                    ),
                    &[Arg::ints(&absent), Arg::Int(now)],
                )
                .await?;
            })
            .await?;
        }
        // Checks new to the database lock nothing but their own new rows.
        for chunk in work.new.chunks(SYNC_CHUNK) {
            transaction!(self, tx => {
                upsert_checks(tx, catalog, chunk, now).await?;
            })
            .await?;
        }
        let retired = transaction!(self, tx => {
            let d = tx.dialect();
            let gone: Vec<(i64,)> = tx
                .rows(
                    &format!(
                        "SELECT {} FROM checks
                         WHERE retired_at IS NULL AND absent_since <= {cutoff}
                           AND NOT EXISTS (SELECT 1 FROM results r
                                           WHERE r.check_id = checks.id AND r.scheduled_at > {cutoff})
                         ORDER BY id",
                        d.int("id"),
                        cutoff = d.at(1)
                    ),
                    &[Arg::Int(now - retire_after.as_millis() as i64)],
                )
                .await?;
            let ids: Vec<i32> = gone.iter().map(|g| g.0 as i32).collect();
            let gone = lock_checks(tx, &ids).await?;
            for check in &gone {
                with_ops!(tx, |ops| flow::retire(ops, check, now).await)?;
                tx.exec(
                    &format!("UPDATE checks SET retired_at = {} WHERE id = {}", d.at(2), d.p(1)),
                    &[Arg::Int(check.id.into()), Arg::Int(now)],
                )
                .await?;
                tracing::info!(event = "check_retired", check = %check.slug);
            }
            sync_maintenance(tx, catalog, now).await?;
            gone.into_iter().map(|c| c.slug).collect::<Vec<_>>()
        })
        .await?;
        Ok(retired)
    }

    /// Decides silence and maintenance up to `now` for every active check,
    /// each hundred in a short transaction of its own, within
    /// [`TICK_BUDGET`]. While ingest lags more than a check's interval
    /// (`lag_ms`), or its lag is not known (`None`), that check is left
    /// alone: our own backlog is never the target's outage.
    pub async fn tick(
        &self,
        now: Millis,
        lag_ms: Option<Millis>,
    ) -> Result<TickReport, StoreError> {
        self.tick_within(now, lag_ms, TICK_BUDGET).await
    }

    /// [`Store::tick`], spending at most `budget` (and at least one hundred
    /// checks): the most overdue checks go first (never decided, then the
    /// oldest `decided_through`), and those left are counted as deferred and
    /// are the first of the next tick. Each hundred locks its check rows, so
    /// a tick over 100,000 due checks would otherwise hold up every write
    /// for as long as it ran.
    pub async fn tick_within(
        &self,
        now: Millis,
        lag_ms: Option<Millis>,
        budget: Duration,
    ) -> Result<TickReport, StoreError> {
        let pool = &self.sql();
        let d = pool.dialect();
        // A check is due once its status could change with no new result
        // (`quiet_until`: a location falling silent, or an interval with
        // nothing heard), or at once when a maintenance window starts or
        // ends. Checks whose results keep coming are decided by their writes.
        let due: Vec<(i64,)> = pool
            .rows(
                &format!(
                    "SELECT {} FROM checks c WHERE retired_at IS NULL AND (
                         decided_through IS NULL OR quiet_until IS NULL
                         OR quiet_until <= {now}
                         OR EXISTS (SELECT 1 FROM maintenance_windows m
                                    WHERE {}
                                      AND ((m.starts_at > c.decided_through AND m.starts_at <= {now})
                                        OR (m.ends_at > c.decided_through AND m.ends_at <= {now}))))
                     ORDER BY decided_through IS NOT NULL, decided_through, id",
                    d.int("id"),
                    d.contains("m.checks", "c.slug"),
                    now = d.at(1),
                ),
                &[Arg::Int(now)],
            )
            .await?;
        let ids: Vec<i32> = due.iter().map(|r| r.0 as i32).collect();
        let mut report = TickReport::default();
        let started = tokio::time::Instant::now();
        for (n, chunk) in ids.chunks(TICK_CHUNK).enumerate() {
            if n > 0 && started.elapsed() >= budget {
                report.deferred = ids.len() - n * TICK_CHUNK;
                break;
            }
            let (checked, lagging, changed) = transaction!(self, tx => {
                let checks = lock_checks(tx, chunk).await?;
                let mut due = Vec::new();
                let mut lagging = 0;
                for check in checks.iter() {
                    if lag_ms.is_none_or(|lag| lag > check.interval_ms) {
                        lagging += 1;
                        continue;
                    }
                    let from = match check.decided_through {
                        Some(through) => through,
                        // Never decided: from its first result, which may
                        // predate the row (as with a placeholder).
                        None => first_result(tx, check.id)
                            .await?
                            .map_or(check.created_at, |f| f.min(check.created_at)),
                    };
                    due.push(Due {
                        check: check.clone(),
                        from: from.min(now),
                        fresh: None,
                        cert_not_after: None,
                    });
                }
                let changed =
                    with_ops!(tx, |ops| flow::recompute(ops, &due, Some(now)).await)?;
                (checks.len(), lagging, changed)
            })
            .await?;
            report.checks += checked;
            report.lagging += lagging;
            if !changed.is_empty() {
                self.announce(changed.clone());
            }
            report.changed.extend(changed);
        }
        Ok(report)
    }

    /// Folds every changed minute rollup into its hour, and every changed
    /// hour into its day. Returns the rows written.
    pub async fn fold_rollups(&self) -> Result<usize, StoreError> {
        Ok(self.fold_within(Millis::MAX, Duration::MAX).await?.written)
    }

    /// Folds changed minutes into hours and changed hours into days,
    /// spending at most `budget`. Work goes in chunks of [`FOLD_CHUNK`]
    /// checks, each a short transaction of its own that locks only its
    /// checks, so a write waits for one chunk at most, never for the whole
    /// fold. Both levels share one queue, oldest unfolded bucket first;
    /// those left are counted as deferred and come first next time.
    ///
    /// A chunk starts only while twice the longest so far still fits in
    /// the budget (the first always runs, so every pass makes progress): a
    /// pass ends within its budget, not a chunk past it, even when a chunk
    /// takes longer than those before it (a write holding its checks).
    ///
    /// A check waits until its oldest change is [`FOLD_SETTLE_MS`] old
    /// (before `now`), so its hour is rewritten about once a minute however
    /// many results and locations its minutes got, not once a pass.
    pub async fn fold_within(
        &self,
        now: Millis,
        budget: Duration,
    ) -> Result<FoldReport, StoreError> {
        let started = tokio::time::Instant::now();
        let mut queue: Vec<(Millis, Level, i32)> = Vec::new();
        for level in [Level::Minute, Level::Hour] {
            let dirty = transaction!(self, tx => {
                super::reads::unfolded(tx.conn(), level).await?
            })
            .await?;
            queue.extend(
                dirty
                    .into_iter()
                    .filter(|&(_, oldest)| oldest <= now.saturating_sub(FOLD_SETTLE_MS))
                    .map(|(check, oldest)| (oldest, level, check)),
            );
        }
        queue.sort_unstable();
        let mut report = FoldReport::default();
        let mut longest = Duration::ZERO;
        for (n, chunk) in queue.chunks(FOLD_CHUNK).enumerate() {
            if n > 0 && started.elapsed() + 2 * longest > budget {
                report.deferred = queue.len() - n * FOLD_CHUNK;
                break;
            }
            let began = tokio::time::Instant::now();
            // The chunk's minutes, then the hours of all its checks: the
            // minutes just folded changed those hours, and a day follows
            // its hours in the same pass.
            let ids = |wanted: &[Level]| {
                let mut ids: Vec<i32> = chunk
                    .iter()
                    .filter(|q| wanted.contains(&q.1))
                    .map(|q| q.2)
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            };
            let (minutes, all) = (ids(&[Level::Minute]), ids(&[Level::Minute, Level::Hour]));
            for (level, ids) in [(Level::Minute, minutes), (Level::Hour, all)] {
                if ids.is_empty() {
                    continue;
                }
                report.written += transaction!(self, tx => {
                    with_ops!(tx, |ops| flow::fold(ops, level, &ids).await)?
                })
                .await?;
            }
            longest = longest.max(began.elapsed());
        }
        Ok(report)
    }

    /// Every active, configured check's status.
    pub async fn check_statuses(&self) -> Result<Vec<CheckUp>, StoreError> {
        let pool = self.sql();
        let d = pool.dialect();
        let sql = format!(
            "SELECT slug, group_name, status, {} AS slo_target_ppm, {} AS slo_window_days
             FROM checks WHERE retired_at IS NULL AND NOT placeholder ORDER BY position, slug",
            d.int("slo_target_ppm"),
            d.int("slo_window_days"),
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            slug: String,
            group_name: String,
            status: String,
            slo_target_ppm: Option<i64>,
            slo_window_days: Option<i64>,
        }
        let rows: Vec<Row> = pool.rows(&sql, &[]).await?;
        rows.into_iter()
            .map(|r| {
                Ok(CheckUp {
                    slo: super::rows::slo(r.slo_target_ppm, r.slo_window_days),
                    status: super::rows::parse_status(&r.status)?,
                    slug: r.slug,
                    group: r.group_name,
                })
            })
            .collect()
    }

    /// Each agent's id, zone and last-seen instant (ms).
    pub async fn agents_seen(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        let pool = self.sql();
        let sql = format!(
            "SELECT name, zone, {} FROM agents ORDER BY name",
            pool.dialect().ms("last_seen")
        );
        Ok(pool.rows(&sql, &[]).await?)
    }

    /// How many incidents are open.
    pub async fn open_incidents(&self) -> Result<i64, StoreError> {
        let open: Vec<(i64,)> = self
            .sql()
            .rows(
                "SELECT count(*) FROM incidents WHERE state <> 'resolved'",
                &[],
            )
            .await?;
        Ok(open.first().map_or(0, |o| o.0))
    }
}

/// When a check's first stored result was scheduled.
async fn first_result(tx: &mut Tx, check: i32) -> Result<Option<Millis>, StoreError> {
    let d = tx.dialect();
    let first: Vec<(Option<i64>,)> = tx
        .rows(
            &format!(
                "SELECT {} FROM results WHERE check_id = {}",
                d.ms("min(scheduled_at)"),
                d.p(1)
            ),
            &[Arg::Int(check.into())],
        )
        .await?;
    Ok(first.first().and_then(|f| f.0))
}

/// The description of check `c`'s group, if it has one.
fn group_description<'c>(catalog: &'c Catalog, c: &config::Check) -> Option<&'c str> {
    catalog
        .groups
        .iter()
        .find(|g| *g.name == *c.group)
        .and_then(|g| g.description.as_deref())
}

/// Check `c`'s objective as its two columns: the target in parts per
/// million and the window in days.
fn slo_columns(c: &config::Check) -> (Option<i64>, Option<i64>) {
    (
        c.slo.map(|s| i64::from(s.target_ppm)),
        c.slo.map(|s| i64::from(s.window_days)),
    )
}

/// Upserts these checks of `catalog` (each with its position in it),
/// touching only rows that differ.
async fn upsert_checks(
    tx: &mut Tx,
    catalog: &Catalog,
    checks: &[(usize, &config::Check)],
    now: Millis,
) -> Result<(), StoreError> {
    use super::sql::Field::{Bool, Int, Text};
    if checks.is_empty() {
        return Ok(());
    }
    let d = tx.dialect();
    let changed = [
        "config_hash",
        "name",
        "group_name",
        "group_description",
        "slo_target_ppm",
        "slo_window_days",
        "position",
        "public",
        "locations",
    ]
    .map(|c| d.differs(&format!("checks.{c}"), &format!("excluded.{c}")))
    .join(" OR ");
    let columns = [
        ("slug", Text),
        ("name", Text),
        ("group_name", Text),
        ("description", Text),
        ("public", Bool),
        ("kind", Text),
        ("position", Int),
        ("interval_ms", Int),
        ("failure_threshold", Int),
        ("success_threshold", Int),
        ("quorum", Int),
        ("reopen_window_ms", Int),
        ("config_hash", Text),
        ("locations", Int),
        ("group_description", Text),
        ("slo_target_ppm", Int),
        ("slo_window_days", Int),
    ];
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    // One statement a chunk. (SQLite reads `ON CONFLICT` after a bare
    // `SELECT ... FROM` as a join's; the `WHERE true` ends the select.)
    let sql = format!(
        "INSERT INTO checks ({names}, placeholder, created_at)
         SELECT {names}, false, {created} FROM ({records}) AS r WHERE true
         ON CONFLICT (slug) DO UPDATE SET name = excluded.name,
             group_name = excluded.group_name, group_description = excluded.group_description,
             slo_target_ppm = excluded.slo_target_ppm, slo_window_days = excluded.slo_window_days,
             description = excluded.description,
             public = excluded.public, kind = excluded.kind, position = excluded.position,
             interval_ms = excluded.interval_ms,
             failure_threshold = excluded.failure_threshold,
             success_threshold = excluded.success_threshold, quorum = excluded.quorum,
             reopen_window_ms = excluded.reopen_window_ms,
             config_hash = excluded.config_hash, placeholder = false,
             locations = excluded.locations, absent_since = NULL, retired_at = NULL
         WHERE {changed} OR checks.placeholder
            OR checks.absent_since IS NOT NULL OR checks.retired_at IS NOT NULL",
        names = names.join(", "),
        created = d.at(2),
        records = d.records(1, &columns),
    );
    let rows: Vec<serde_json::Value> = checks
        .iter()
        .map(|(position, c)| {
            let quorum = match c.quorum {
                Quorum::Majority => None,
                Quorum::Count(n) => Some(i64::from(n)),
            };
            let (slo_target, slo_window) = slo_columns(c);
            serde_json::json!([
                c.id.as_str(),
                c.name,
                c.group,
                c.description,
                c.public,
                c.probe.kind().as_str(),
                *position as i64,
                c.schedule.period().as_millis().max(1) as i64,
                i64::from(c.failure_threshold),
                i64::from(c.success_threshold),
                quorum,
                c.reopen_window.as_millis() as i64,
                c.config_hash.to_string(),
                i64::from(super::locations_code(c.locations)),
                group_description(catalog, c),
                slo_target,
                slo_window,
            ])
        })
        .collect();
    tx.exec(&sql, &[Arg::records(rows), Arg::Int(now)]).await?;
    Ok(())
}

/// Materializes config windows ending after `now` and starting within the
/// horizon; a running one starts at `now`, never in the past. Future config
/// windows no longer in the YAML are deleted; API windows are never touched.
async fn sync_maintenance(tx: &mut Tx, catalog: &Catalog, now: Millis) -> Result<(), StoreError> {
    let d = tx.dialect();
    let upsert = format!(
        "INSERT INTO maintenance_windows (source, name, description, checks, starts_at,
             ends_at, created_by, created_at)
         VALUES ('config', {}, {}, {}, {}, {}, 'config', {})
         ON CONFLICT (source, name, ends_at) DO UPDATE SET description = excluded.description,
             checks = excluded.checks",
        d.p(1),
        d.p(2),
        d.list_value(3),
        d.greatest(&d.at(4), &d.at(5)),
        d.at(6),
        d.at(5),
    );
    let mut kept: Vec<(String, Millis)> = Vec::new();
    for w in &catalog.maintenance {
        let checks: Vec<&str> = w.checks.iter().map(|c| c.as_str()).collect();
        for (start, end) in occurrences(w, now) {
            tx.exec(
                &upsert,
                &[
                    Arg::Text(w.name.clone()),
                    Arg::MaybeText(w.description.clone()),
                    Arg::list(&checks),
                    Arg::Int(start),
                    Arg::Int(now),
                    Arg::Int(end),
                ],
            )
            .await?;
            kept.push((w.name.clone(), end));
        }
    }
    let future: Vec<(i64, String, i64)> = tx
        .rows(
            &format!(
                "SELECT {}, name, {} FROM maintenance_windows
                 WHERE source = 'config' AND starts_at > {}",
                d.int("id"),
                d.ms("ends_at"),
                d.at(1)
            ),
            &[Arg::Int(now)],
        )
        .await?;
    let dropped: Vec<i64> = future
        .into_iter()
        .filter(|(_, name, end)| !kept.iter().any(|k| k.0 == *name && k.1 == *end))
        .map(|(id, _, _)| id)
        .collect();
    if !dropped.is_empty() {
        tx.exec(
            &format!(
                "DELETE FROM maintenance_windows WHERE id IN ({})",
                d.int_list(1)
            ),
            &[Arg::ints(&dropped)],
        )
        .await?;
    }
    Ok(())
}

/// The occurrences of a config window to materialize at `now`: the running
/// one, and those starting within [`MAINTENANCE_HORIZON_MS`].
pub(crate) fn occurrences(
    w: &config::catalog::MaintenanceWindow,
    now: Millis,
) -> Vec<(Millis, Millis)> {
    let at = ts(now);
    let horizon = at + ChronoDuration::milliseconds(MAINTENANCE_HORIZON_MS);
    let mut out = Vec::new();
    if let Some(active) = w.active_at(at) {
        out.push(active);
    }
    let mut cursor = at;
    while let Some((start, end)) = w.next_after(cursor) {
        if start > horizon || out.len() > 500 {
            break;
        }
        out.push((start, end));
        cursor = start;
    }
    out.into_iter()
        .map(|(s, e)| (s.timestamp_millis(), e.timestamp_millis()))
        .collect()
}

impl PgStore {
    /// Makes the daily partitions from `now - back` to [`PARTITIONS_AHEAD`]
    /// days ahead, without ever holding up a reader or a writer of
    /// `results`: each is made as a table of its own and then attached,
    /// which takes only a `SHARE UPDATE EXCLUSIVE` lock on `results`
    /// (`CREATE TABLE ... PARTITION OF` would take `ACCESS EXCLUSIVE`, queue
    /// behind every reader, and every writer behind it), and that lock is
    /// waited for at most [`super::retention::DDL_LOCK_TIMEOUT`]: past it,
    /// the next pass tries again (partitions are made days ahead).
    pub async fn ensure_partitions_back(
        &self,
        now: Millis,
        back: Millis,
    ) -> Result<(), StoreError> {
        let today = now.div_euclid(DAY_MS);
        let first = (now - back).div_euclid(DAY_MS);
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}'",
            super::retention::DDL_LOCK_TIMEOUT
        ))
        .execute(&mut *tx)
        .await?;
        // Replicas may start together: one makes them, the others find them made.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        let attached: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'results'::regclass",
        )
        .fetch_all(&mut *tx)
        .await?;
        for day in first..=(today + PARTITIONS_AHEAD) {
            let (start, end) = (ts(day * DAY_MS), ts((day + 1) * DAY_MS));
            let name = format!("results_{}", start.format("%Y%m%d"));
            if attached.contains(&name) {
                continue;
            }
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {name}
                 (LIKE results INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "ALTER TABLE results ATTACH PARTITION {name}
                 FOR VALUES FROM ('{}') TO ('{}')",
                start.to_rfc3339(),
                end.to_rfc3339()
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

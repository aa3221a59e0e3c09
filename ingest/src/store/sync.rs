//! The leader's work on the store: partitions made ahead, catalog sync
//! (checks, retirement, config maintenance windows), the silence and
//! maintenance tick, and what the metrics export reads.

use super::flow::{Due, recompute, retire};
use super::pg_ops::{PgOps, Writes, select_checks};
use super::{PgStore, StoreError, ms, retrying, ts};
use crate::state::Millis;
use crate::status::Status;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use config::Catalog;
use config::defaults::Quorum;
use std::time::Duration;

const DAY_MS: Millis = 86_400_000;
/// Raw-result partitions are kept made this many days ahead.
pub const PARTITIONS_AHEAD: i64 = 3;
/// Config maintenance windows are materialized this far ahead.
pub const MAINTENANCE_HORIZON_MS: Millis = 7 * DAY_MS;

/// A check's verdict for `statuspage_check_up`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckUp {
    /// The check id.
    pub slug: String,
    /// Its group.
    pub group: String,
    /// Its status.
    pub status: Status,
}

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Checks looked at.
    pub checks: usize,
    /// Checks skipped because ingest lags more than their interval.
    pub lagging: usize,
    /// Checks whose status or incident changed.
    pub changed: Vec<String>,
}

impl PgStore {
    /// Makes the daily partitions of `results` from the default raw
    /// retention back to [`PARTITIONS_AHEAD`] days ahead.
    pub async fn ensure_partitions(&self, now: Millis) -> Result<(), StoreError> {
        self.ensure_partitions_back(now, crate::screen::MAX_AGE_MS)
            .await
    }

    /// Makes the daily partitions from `now - back` to [`PARTITIONS_AHEAD`]
    /// days ahead.
    pub async fn ensure_partitions_back(
        &self,
        now: Millis,
        back: Millis,
    ) -> Result<(), StoreError> {
        let today = now.div_euclid(DAY_MS);
        let first = (now - back).div_euclid(DAY_MS);
        let mut tx = self.pool.begin().await?;
        // Replicas may start together: one creates, the others find them made.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::LEADER_LOCK + 1)
            .execute(&mut *tx)
            .await?;
        for day in first..=(today + PARTITIONS_AHEAD) {
            let (start, end) = (ts(day * DAY_MS), ts((day + 1) * DAY_MS));
            let name = format!("results_{}", start.format("%Y%m%d"));
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF results
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

    /// Brings the checks table in step with the catalog: upserts every check
    /// (turning placeholders into real checks), marks missing ones absent,
    /// and retires those absent and silent for `retire_after`. Config
    /// maintenance windows are materialized too; API windows are never touched.
    pub async fn sync_catalog(
        &self,
        catalog: &Catalog,
        now: Millis,
        retire_after: Duration,
    ) -> Result<Vec<String>, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            upsert_checks(&mut tx, catalog).await?;
            let slugs: Vec<&str> = catalog.checks.iter().map(|c| c.id.as_str()).collect();
            sqlx::query(
                "UPDATE checks SET absent_since = $2
                 WHERE slug <> ALL($1) AND retired_at IS NULL AND absent_since IS NULL",
            )
            .bind(&slugs)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            let cutoff = ts(now - retire_after.as_millis() as i64);
            let gone: Vec<super::CheckRow> = {
                let rows: Vec<(i32,)> = sqlx::query_as(
                    "SELECT id FROM checks
                     WHERE retired_at IS NULL AND absent_since <= $1
                       AND NOT EXISTS (SELECT 1 FROM results r
                                       WHERE r.check_id = checks.id AND r.scheduled_at > $1)
                     ORDER BY id FOR UPDATE",
                )
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                let ids: Vec<i32> = rows.into_iter().map(|r| r.0).collect();
                select_checks(&mut *tx, "WHERE id = ANY($1) ORDER BY id", &ids).await?
            };
            for check in &gone {
                retire(&mut PgOps(&mut tx, Writes::Upsert), check, now).await?;
                sqlx::query("UPDATE checks SET retired_at = $2 WHERE id = $1")
                    .bind(check.id)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(event = "check_retired", check = %check.slug);
            }
            sync_maintenance(&mut tx, catalog, now).await?;
            tx.commit().await?;
            Ok(gone.into_iter().map(|c| c.slug).collect())
        })
        .await
    }

    /// Decides silence and maintenance up to `now` for every active check,
    /// each in its own short transaction. While ingest lags more than a
    /// check's interval (`lag_ms`), that check is left alone: our own
    /// backlog is never the target's outage.
    pub async fn tick(
        &self,
        now: Millis,
        lag_ms: Option<Millis>,
    ) -> Result<TickReport, StoreError> {
        // A check that got results lately was decided up to them: it is due
        // again after a quarter interval (at most 15 s), or at once when a
        // maintenance window starts or ends.
        let ids: Vec<i32> = sqlx::query_scalar(
            "SELECT id FROM checks c WHERE retired_at IS NULL AND (
                 decided_through IS NULL
                 OR decided_through <= $1 - make_interval(secs => LEAST(interval_ms, 60000) / 4000.0)
                 OR EXISTS (SELECT 1 FROM maintenance_windows m
                            WHERE c.slug = ANY(m.checks)
                              AND ((m.starts_at > c.decided_through AND m.starts_at <= $1)
                                OR (m.ends_at > c.decided_through AND m.ends_at <= $1))))
             ORDER BY id",
        )
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        let mut report = TickReport::default();
        for chunk in ids.chunks(100) {
            let (checked, lagging, changed) = retrying(|| async move {
                let mut tx = self.pool.begin().await?;
                let checks = select_checks(
                    &mut *tx,
                    "WHERE id = ANY($1) AND retired_at IS NULL ORDER BY id FOR UPDATE",
                    chunk,
                )
                .await?;
                // A check never decided starts from its first result (which
                // may predate the row, as with a placeholder).
                let firsts: Vec<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "SELECT c, (SELECT min(scheduled_at) FROM results WHERE check_id = c)
                     FROM UNNEST($1::int4[]) AS c WHERE c = ANY($2)",
                )
                .bind(chunk)
                .bind(
                    checks
                        .iter()
                        .filter(|c| c.decided_through.is_none())
                        .map(|c| c.id)
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&mut *tx)
                .await?;
                let firsts: std::collections::BTreeMap<i32, Option<DateTime<Utc>>> =
                    firsts.into_iter().collect();
                let mut due = Vec::new();
                let mut lagging = 0;
                for check in &checks {
                    if lag_ms.is_some_and(|lag| lag > check.interval_ms) {
                        lagging += 1;
                        continue;
                    }
                    let first = firsts.get(&check.id).copied().flatten().map(ms);
                    let from = check.decided_through.unwrap_or_else(|| {
                        first.map_or(check.created_at, |f| f.min(check.created_at))
                    });
                    due.push(Due {
                        check: check.clone(),
                        from: from.min(now),
                        fresh: None,
                        cert_not_after: None,
                    });
                }
                let changed =
                    recompute(&mut PgOps(&mut tx, Writes::Upsert), &due, Some(now)).await?;
                tx.commit().await?;
                Ok((checks.len(), lagging, changed))
            })
            .await?;
            report.checks += checked;
            report.lagging += lagging;
            if !changed.is_empty() {
                let _ = self.changes.send(changed.clone());
            }
            report.changed.extend(changed);
        }
        Ok(report)
    }

    /// Every active, configured check's status.
    pub async fn check_statuses(&self) -> Result<Vec<CheckUp>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT slug, group_name, status FROM checks
             WHERE retired_at IS NULL AND NOT placeholder ORDER BY position, slug",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(slug, group, status)| {
                Ok(CheckUp {
                    slug,
                    group,
                    status: Status::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status:?}")))?,
                })
            })
            .collect()
    }

    /// Each agent's id, zone and last-seen instant.
    pub async fn agents_seen(&self) -> Result<Vec<(String, String, Millis)>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>)> =
            sqlx::query_as("SELECT name, zone, last_seen FROM agents ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(a, z, t)| (a, z, ms(t))).collect())
    }

    /// How many incidents are open.
    pub async fn open_incidents(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM incidents WHERE state <> 'resolved'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

async fn upsert_checks(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    catalog: &Catalog,
) -> Result<(), StoreError> {
    let mut sorted: Vec<(usize, &config::Check)> = catalog.checks.iter().enumerate().collect();
    sorted.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    for (position, c) in sorted {
        let quorum = match c.quorum {
            Quorum::Majority => None,
            Quorum::Count(n) => Some(n as i32),
        };
        sqlx::query(
            "INSERT INTO checks (slug, name, group_name, description, public, kind, position,
                 interval_ms, failure_threshold, success_threshold, quorum, reopen_window_ms,
                 config_hash, placeholder, locations)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, false, $14)
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name,
                 group_name = excluded.group_name, description = excluded.description,
                 public = excluded.public, kind = excluded.kind, position = excluded.position,
                 interval_ms = excluded.interval_ms,
                 failure_threshold = excluded.failure_threshold,
                 success_threshold = excluded.success_threshold, quorum = excluded.quorum,
                 reopen_window_ms = excluded.reopen_window_ms,
                 config_hash = excluded.config_hash, placeholder = false,
                 locations = excluded.locations, absent_since = NULL, retired_at = NULL
             WHERE (checks.config_hash, checks.name, checks.group_name, checks.position,
                    checks.public, checks.placeholder, checks.absent_since IS NULL,
                    checks.retired_at IS NULL, checks.locations)
                   IS DISTINCT FROM
                   (excluded.config_hash, excluded.name, excluded.group_name, excluded.position,
                    excluded.public, false, true, true, excluded.locations)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(&c.group)
        .bind(&c.description)
        .bind(c.public)
        .bind(c.probe.kind().as_str())
        .bind(position as i32)
        .bind(c.schedule.period().as_millis().max(1) as i64)
        .bind(c.failure_threshold as i32)
        .bind(c.success_threshold as i32)
        .bind(quorum)
        .bind(c.reopen_window.as_millis() as i64)
        .bind(&c.config_hash)
        .bind(super::locations_code(c.locations))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Materializes config windows ending after `now` and starting within the
/// horizon; a running one starts at `now`, never in the past. Future config
/// windows no longer in the YAML are deleted; API windows are never touched.
async fn sync_maintenance(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    catalog: &Catalog,
    now: Millis,
) -> Result<(), StoreError> {
    let at = ts(now);
    let (mut names, mut ends) = (Vec::new(), Vec::new());
    for w in &catalog.maintenance {
        let occurrences: Vec<_> = occurrences(w, now)
            .into_iter()
            .map(|(s, e)| (ts(s), ts(e)))
            .collect();
        let checks: Vec<&str> = w.checks.iter().map(|c| c.as_str()).collect();
        for (start, end) in occurrences {
            sqlx::query(
                "INSERT INTO maintenance_windows (source, name, description, checks, starts_at,
                     ends_at, created_by)
                 VALUES ('config', $1, $2, $3, GREATEST($4, $5), $6, 'config')
                 ON CONFLICT (source, name, ends_at) DO UPDATE SET description = excluded.description,
                     checks = excluded.checks",
            )
            .bind(&w.name)
            .bind(&w.description)
            .bind(&checks)
            .bind(start)
            .bind(at)
            .bind(end)
            .execute(&mut **tx)
            .await?;
            names.push(w.name.clone());
            ends.push(end);
        }
    }
    sqlx::query(
        "DELETE FROM maintenance_windows m WHERE source = 'config' AND starts_at > $1
           AND NOT EXISTS (SELECT 1 FROM UNNEST($2::text[], $3::timestamptz[]) AS k(name, ends_at)
                           WHERE k.name = m.name AND k.ends_at = m.ends_at)",
    )
    .bind(at)
    .bind(&names)
    .bind(&ends)
    .execute(&mut **tx)
    .await?;
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
    out.into_iter().map(|(s, e)| (ms(s), ms(e))).collect()
}

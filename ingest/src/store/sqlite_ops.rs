//! [`Ops`] on SQLite: small statements in loops (SQLite is in-process, so a
//! statement costs microseconds, not a round trip).
//!
//! **Locking.** SQLite has one writer at a time. Every write transaction
//! starts with `BEGIN IMMEDIATE`, which takes the write lock at once, so two
//! writers never both read and then collide on upgrade (no `SQLITE_BUSY` in
//! the middle of a transaction); the check-row locks PostgreSQL needs are
//! implied. In WAL mode readers (the dashboard) never block the writer nor
//! it them, and a `busy_timeout` makes a second writer wait instead of fail.

use super::ops::{Decided, NewRow, Ops, PairKey, RollupKey, RowKey};
use super::reads;
use super::rows::{StoredCheck, check_columns};
use super::rows::{detail, outcome_code};
use super::sql::Dialect;
use super::{CheckRow, StoreError, reason_code};
use crate::rollup::Rollups;
use crate::state::{Millis, Pair, PairState};
use crate::status::{Change, Status};
use config::defaults::BUILT_IN;
use config::wire::AgentInfo;
use sqlx::types::Json;
use sqlx::{Sqlite, Transaction};
use std::collections::{BTreeMap, BTreeSet};

/// A SQLite transaction seen as [`Ops`].
pub(crate) struct SqliteOps<'a, 'c>(pub &'a mut Transaction<'c, Sqlite>);

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl reads::Connected for SqliteOps<'_, '_> {
    fn conn(&mut self) -> super::sql::Conn<'_> {
        super::sql::Conn::Sqlite(self.0)
    }
}

impl Ops for SqliteOps<'_, '_> {
    async fn upsert_agents(
        &mut self,
        agents: &[(&AgentInfo, Millis)],
    ) -> Result<Vec<i32>, StoreError> {
        let mut ids = Vec::with_capacity(agents.len());
        for (agent, seen) in agents {
            ids.push(
                sqlx::query_scalar(
                    "INSERT INTO agents (name, zone, region, first_seen, last_seen, label)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)
                     ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, region = excluded.region,
                         label = excluded.label,
                         last_seen = max(agents.last_seen, excluded.last_seen)
                     RETURNING id",
                )
                .bind(&agent.id)
                .bind(&agent.zone)
                .bind(&agent.region)
                .bind(seen)
                .bind(&agent.label)
                .fetch_one(&mut **self.0)
                .await?,
            );
        }
        Ok(ids)
    }

    async fn lock_checks(&mut self, wanted: &[(&str, i64)]) -> Result<Vec<CheckRow>, StoreError> {
        let mut out = Vec::new();
        for (slug, interval) in wanted {
            sqlx::query(
                "INSERT INTO checks (slug, name, placeholder, interval_ms, failure_threshold,
                                     success_threshold, reopen_window_ms, created_at)
                 VALUES (?1, ?1, 1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (slug) DO NOTHING",
            )
            .bind(slug)
            .bind(interval)
            .bind(BUILT_IN.failure_threshold as i32)
            .bind(BUILT_IN.success_threshold as i32)
            .bind(BUILT_IN.reopen_window.as_millis() as i64)
            .bind(now_ms())
            .execute(&mut **self.0)
            .await?;
            let row: StoredCheck = sqlx::query_as(&format!(
                "SELECT {} FROM checks WHERE slug = ?1",
                check_columns(Dialect::Sqlite)
            ))
            .bind(slug)
            .fetch_one(&mut **self.0)
            .await?;
            out.push(CheckRow::from(row));
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn insert_results(
        &mut self,
        rows: &[NewRow<'_>],
    ) -> Result<BTreeSet<RowKey>, StoreError> {
        let mut inserted = BTreeSet::new();
        let us = |v: u64| v.min(i32::MAX as u64) as i64;
        for row in rows {
            let r = row.result;
            let p = &r.phases;
            let done = sqlx::query(
                "INSERT INTO results (check_id, scheduled_at, agent_id, start_delay_ms, interval_ms,
                                      duration_us, dns_us, connect_us, tls_us, ttfb_us, transfer_us,
                                      assigned, outcome, reason, state, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT DO NOTHING",
            )
            .bind(row.check)
            .bind(r.scheduled_at.unix_ms())
            .bind(row.agent)
            .bind(r.started_at.unix_ms() - r.scheduled_at.unix_ms())
            .bind(super::flow::interval_ms(r))
            .bind(us(r.duration_us))
            .bind(p.dns_us.map(us))
            .bind(p.connect_us.map(us))
            .bind(p.tls_us.map(us))
            .bind(p.ttfb_us.map(us))
            .bind(p.transfer_us.map(us))
            .bind(i64::from(r.assigned.min(i16::MAX as u32)))
            .bind(outcome_code(&r.outcome))
            .bind(reason_code(&r.reason))
            .bind(row.state)
            .bind(detail(r).map(Json))
            .execute(&mut **self.0)
            .await?;
            if done.rows_affected() == 1 {
                inserted.insert((row.agent, row.check, r.scheduled_at.unix_ms()));
            }
        }
        Ok(inserted)
    }

    async fn write_states(
        &mut self,
        states: &BTreeMap<RowKey, PairState>,
    ) -> Result<(), StoreError> {
        for ((agent, check, at), s) in states {
            sqlx::query("UPDATE results SET state = ?4 WHERE check_id = ?1 AND scheduled_at = ?2 AND agent_id = ?3")
                .bind(check)
                .bind(at)
                .bind(agent)
                .bind(s.code())
                .execute(&mut **self.0)
                .await?;
        }
        Ok(())
    }

    async fn save_pairs(
        &mut self,
        pairs: &BTreeMap<PairKey, Pair>,
        _stored: &BTreeSet<PairKey>,
    ) -> Result<(), StoreError> {
        for ((agent, check), pair) in pairs {
            sqlx::query(
                "INSERT INTO pairs (check_id, agent_id, pair) VALUES (?1, ?2, ?3)
                 ON CONFLICT (check_id, agent_id) DO UPDATE SET pair = excluded.pair",
            )
            .bind(check)
            .bind(agent)
            .bind(pair.encode())
            .execute(&mut **self.0)
            .await?;
        }
        Ok(())
    }

    async fn save_rollups(
        &mut self,
        rollups: &Rollups,
        _stored: Option<&BTreeSet<RollupKey>>,
    ) -> Result<(), StoreError> {
        for ((level, check, bucket), r) in rollups {
            sqlx::query(
                "INSERT INTO rollups (level, check_id, bucket, count, up, measures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (level, check_id, bucket) DO UPDATE
                     SET count = excluded.count, up = excluded.up, measures = excluded.measures,
                         folded = 0",
            )
            .bind(level.code())
            .bind(check)
            .bind(bucket)
            .bind(r.count as i32)
            .bind(r.up as i32)
            .bind(r.encode())
            .execute(&mut **self.0)
            .await?;
        }
        Ok(())
    }

    async fn lock_ids(&mut self, _checks: &[i32]) -> Result<(), StoreError> {
        Ok(()) // BEGIN IMMEDIATE already holds the only write lock
    }

    async fn set_decided(&mut self, decided: &[Decided]) -> Result<(), StoreError> {
        for d in decided {
            sqlx::query(
                "UPDATE checks SET decided_through = ?2, latest = ?3,
                        cert_not_after = COALESCE(?4, cert_not_after), quiet_until = ?5
                 WHERE id = ?1",
            )
            .bind(d.check)
            .bind(d.through)
            .bind(&d.latest)
            .bind(d.cert_not_after)
            .bind(d.quiet_until)
            .execute(&mut **self.0)
            .await?;
        }
        Ok(())
    }

    async fn write_changes(
        &mut self,
        rewrites: &[(i32, Millis, &[Change])],
    ) -> Result<(), StoreError> {
        for (check, from, changes) in rewrites {
            sqlx::query("DELETE FROM status_changes WHERE check_id = ?1 AND at >= ?2")
                .bind(check)
                .bind(from)
                .execute(&mut **self.0)
                .await?;
            for c in *changes {
                sqlx::query(
                    "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(check)
                .bind(c.at)
                .bind(c.status.as_str())
                .bind(c.detail.assigned as i32)
                .bind(c.detail.reporting as i32)
                .bind(c.detail.failing as i32)
                .bind(Json(&c.detail.reasons))
                .execute(&mut **self.0)
                .await?;
            }
        }
        Ok(())
    }

    async fn set_statuses(
        &mut self,
        statuses: &[(i32, Status)],
        _slugs: &[String],
    ) -> Result<(), StoreError> {
        for (check, status) in statuses {
            sqlx::query(
                "UPDATE checks SET status = ?2,
                     status_since = (SELECT max(at) FROM status_changes WHERE check_id = ?1)
                 WHERE id = ?1",
            )
            .bind(check)
            .bind(status.as_str())
            .execute(&mut **self.0)
            .await?;
        }
        Ok(())
    }
}

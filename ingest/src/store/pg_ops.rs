//! [`Ops`] on PostgreSQL: one set-based statement per step (`UNNEST`,
//! `LATERAL`, a binary `COPY` for new result rows), whatever the number of
//! agents and checks, and `SELECT ... FOR UPDATE` on check rows in id order.

use super::ops::{Decided, NewRow, Ops, PairKey, RollupKey, RowKey};
use super::pg_columns::{COPY_COLUMNS, Columns};
use super::reads;
use super::rows::{StoredCheck, check_columns};
use super::sql::Dialect;
use super::{CheckRow, StoreError, ms, ts};
use crate::rollup::Rollups;
use crate::state::{Millis, Pair, PairState};
use crate::status::{Change, Status};
use chrono::{DateTime, Utc};
use config::defaults::BUILT_IN;
use config::wire::AgentInfo;
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet};

/// A PostgreSQL transaction seen as [`Ops`], and how it writes.
pub(crate) struct PgOps<'a, 'c>(pub &'a mut Transaction<'c, Postgres>, pub Writes);

/// How a write's rows go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writes {
    /// Trusts what was read under the check locks: result rows their pairs'
    /// buffers placed (so they cannot be in the table yet, see `flow`) go in
    /// by binary `COPY`; pairs and rollups read are `UPDATE`d, the others
    /// plainly `INSERT`ed. Should that ever be wrong (a pair deleted while
    /// its results stayed, a rollup deleted by retention meanwhile), a
    /// statement fails (a unique violation, or [`StoreError::Raced`]), the
    /// transaction rolls back, and the store runs it again as
    /// [`Writes::Upsert`].
    Known,
    /// Trusts nothing: every row by `INSERT ... ON CONFLICT`.
    Upsert,
}

/// A pair to write, with its key.
type PairRow<'a> = (&'a PairKey, &'a Pair);

impl reads::Connected for PgOps<'_, '_> {
    fn conn(&mut self) -> super::sql::Conn<'_> {
        super::sql::Conn::Pg(self.0)
    }
}

impl Ops for PgOps<'_, '_> {
    async fn upsert_agents(
        &mut self,
        agents: &[(&AgentInfo, Millis)],
    ) -> Result<Vec<i32>, StoreError> {
        let names: Vec<&str> = agents.iter().map(|a| a.0.id.as_str()).collect();
        let zones: Vec<&str> = agents.iter().map(|a| a.0.zone.as_str()).collect();
        let regions: Vec<&str> = agents.iter().map(|a| a.0.region.as_str()).collect();
        let labels: Vec<&str> = agents.iter().map(|a| a.0.label.as_str()).collect();
        let seen: Vec<DateTime<Utc>> = agents.iter().map(|a| ts(a.1)).collect();
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "INSERT INTO agents (name, zone, region, label, first_seen, last_seen)
             SELECT n, z, r, l, s, s
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                  AS u(n, z, r, s, l)
             ORDER BY n
             ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, region = excluded.region,
                 label = excluded.label,
                 last_seen = GREATEST(agents.last_seen, excluded.last_seen)
             RETURNING name, id",
        )
        .bind(&names)
        .bind(&zones)
        .bind(&regions)
        .bind(&seen)
        .bind(&labels)
        .fetch_all(&mut **self.0)
        .await?;
        let ids: BTreeMap<String, i32> = rows.into_iter().collect();
        names
            .iter()
            .map(|n| {
                ids.get(*n)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("no row for agent {n}")))
            })
            .collect()
    }

    async fn lock_checks(&mut self, wanted: &[(&str, i64)]) -> Result<Vec<CheckRow>, StoreError> {
        let (slugs, intervals): (Vec<&str>, Vec<i64>) = wanted.iter().copied().unzip();
        let select = format!(
            "SELECT {} FROM checks WHERE slug = ANY($1) ORDER BY id FOR UPDATE",
            check_columns(Dialect::Postgres)
        );
        let rows: Vec<StoredCheck> = sqlx::query_as(&select)
            .bind(&slugs)
            .fetch_all(&mut **self.0)
            .await?;
        if rows.len() == slugs.len() {
            return Ok(rows.into_iter().map(CheckRow::from).collect());
        }
        // Some are new: placeholders (in slug order), then every row locked again.
        sqlx::query(
            "INSERT INTO checks (slug, name, placeholder, interval_ms, failure_threshold,
                                 success_threshold, reopen_window_ms)
             SELECT s, s, true, i, $3, $4, $5 FROM UNNEST($1::text[], $2::int8[]) AS u(s, i)
             WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.slug = u.s)
             ORDER BY s
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&slugs)
        .bind(&intervals)
        .bind(BUILT_IN.failure_threshold as i32)
        .bind(BUILT_IN.success_threshold as i32)
        .bind(BUILT_IN.reopen_window.as_millis() as i64)
        .execute(&mut **self.0)
        .await?;
        let rows: Vec<StoredCheck> = sqlx::query_as(&select)
            .bind(&slugs)
            .fetch_all(&mut **self.0)
            .await?;
        Ok(rows.into_iter().map(CheckRow::from).collect())
    }

    async fn insert_results(
        &mut self,
        rows: &[NewRow<'_>],
    ) -> Result<BTreeSet<RowKey>, StoreError> {
        let copy = self.1 == Writes::Known;
        let (fresh, others): (Vec<&NewRow>, Vec<&NewRow>) =
            rows.iter().partition(|r| copy && r.fresh);
        let mut inserted = BTreeSet::new();
        if !fresh.is_empty() {
            let mut c = Columns::default();
            for row in &fresh {
                c.push(row);
            }
            let mut sink = (**self.0)
                .copy_in_raw(&format!(
                    "COPY results ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await?;
            sink.send(c.copy_binary()).await?;
            sink.finish().await?;
            inserted.extend(
                fresh
                    .iter()
                    .map(|r| (r.agent, r.check, r.result.scheduled_at.unix_ms())),
            );
        }
        if others.is_empty() {
            return Ok(inserted);
        }
        let mut c = Columns::default();
        for row in &others {
            c.push(row);
        }
        let returned: Vec<(i32, i32, DateTime<Utc>)> = sqlx::query_as(
            "INSERT INTO results (scheduled_at, check_id, agent_id, start_delay_ms, interval_ms,
                                  duration_us, dns_us, connect_us, tls_us, ttfb_us, transfer_us,
                                  assigned, outcome, reason, state, detail)
             SELECT * FROM UNNEST($1::timestamptz[], $2::int4[], $3::int4[], $4::int4[],
                                  $5::int4[], $6::int4[], $7::int4[], $8::int4[], $9::int4[],
                                  $10::int4[], $11::int4[], $12::int2[], $13::int2[], $14::int2[],
                                  $15::int2[], $16::jsonb[])
             ON CONFLICT DO NOTHING
             RETURNING agent_id, check_id, scheduled_at",
        )
        .bind(&c.scheduled)
        .bind(&c.check)
        .bind(&c.agent)
        .bind(&c.start_delay)
        .bind(&c.interval)
        .bind(&c.duration)
        .bind(&c.phases[0])
        .bind(&c.phases[1])
        .bind(&c.phases[2])
        .bind(&c.phases[3])
        .bind(&c.phases[4])
        .bind(&c.assigned)
        .bind(&c.outcome)
        .bind(&c.reason)
        .bind(&c.state)
        .bind(&c.detail)
        .fetch_all(&mut **self.0)
        .await?;
        inserted.extend(returned.into_iter().map(|(a, c, at)| (a, c, ms(at))));
        Ok(inserted)
    }

    async fn write_states(
        &mut self,
        states: &BTreeMap<RowKey, PairState>,
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let agents: Vec<i32> = states.keys().map(|k| k.0).collect();
        let checks: Vec<i32> = states.keys().map(|k| k.1).collect();
        let ats: Vec<_> = states.keys().map(|k| ts(k.2)).collect();
        let codes: Vec<i16> = states.values().map(|s| s.code()).collect();
        sqlx::query(
            "UPDATE results SET state = u.state
             FROM UNNEST($1::int4[], $2::int4[], $3::timestamptz[], $4::int2[])
                  AS u(agent_id, check_id, at, state)
             WHERE results.check_id = u.check_id AND results.scheduled_at = u.at
               AND results.agent_id = u.agent_id",
        )
        .bind(&agents)
        .bind(&checks)
        .bind(&ats)
        .bind(&codes)
        .execute(&mut **self.0)
        .await?;
        Ok(())
    }

    async fn save_pairs(
        &mut self,
        pairs: &BTreeMap<PairKey, Pair>,
        stored: &BTreeSet<PairKey>,
    ) -> Result<(), StoreError> {
        let (old, new): (Vec<PairRow>, Vec<PairRow>) = pairs
            .iter()
            .partition(|(k, _)| self.1 == Writes::Known && stored.contains(k));
        let columns = |rows: &[PairRow]| {
            let agents: Vec<i32> = rows.iter().map(|r| r.0.0).collect();
            let checks: Vec<i32> = rows.iter().map(|r| r.0.1).collect();
            let bytes: Vec<Vec<u8>> = rows.iter().map(|r| r.1.encode()).collect();
            (agents, checks, bytes)
        };
        if !old.is_empty() {
            let (agents, checks, bytes) = columns(&old);
            let done = sqlx::query(
                "UPDATE pairs SET pair = u.p
                 FROM UNNEST($1::int4[], $2::int4[], $3::bytea[]) AS u(a, c, p)
                 WHERE pairs.agent_id = u.a AND pairs.check_id = u.c",
            )
            .bind(&agents)
            .bind(&checks)
            .bind(&bytes)
            .execute(&mut **self.0)
            .await?;
            if done.rows_affected() != old.len() as u64 {
                return Err(StoreError::Raced("pairs".into()));
            }
        }
        if !new.is_empty() {
            let (agents, checks, bytes) = columns(&new);
            let conflict = match self.1 {
                Writes::Known => "",
                Writes::Upsert => {
                    "ON CONFLICT (check_id, agent_id) DO UPDATE SET pair = excluded.pair"
                }
            };
            sqlx::query(&format!(
                "INSERT INTO pairs (agent_id, check_id, pair)
                 SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::bytea[]) {conflict}"
            ))
            .bind(&agents)
            .bind(&checks)
            .bind(&bytes)
            .execute(&mut **self.0)
            .await?;
        }
        Ok(())
    }

    async fn save_rollups(
        &mut self,
        rollups: &Rollups,
        stored: Option<&BTreeSet<RollupKey>>,
    ) -> Result<(), StoreError> {
        let known = stored.filter(|_| self.1 == Writes::Known);
        super::pg_rollups::save_rollups(self.0, rollups, known).await
    }

    async fn lock_ids(&mut self, checks: &[i32]) -> Result<(), StoreError> {
        sqlx::query("SELECT id FROM checks WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(checks)
            .execute(&mut **self.0)
            .await?;
        Ok(())
    }

    async fn set_decided(&mut self, decided: &[Decided]) -> Result<(), StoreError> {
        let ids: Vec<i32> = decided.iter().map(|d| d.check).collect();
        let ds: Vec<DateTime<Utc>> = decided.iter().map(|d| ts(d.through)).collect();
        let latest: Vec<&[u8]> = decided.iter().map(|d| d.latest.as_slice()).collect();
        let certs: Vec<Option<DateTime<Utc>>> =
            decided.iter().map(|d| d.cert_not_after.map(ts)).collect();
        let quiet: Vec<DateTime<Utc>> = decided.iter().map(|d| ts(d.quiet_until)).collect();
        sqlx::query(
            "UPDATE checks SET decided_through = u.d, latest = u.l,
                    cert_not_after = COALESCE(u.c, checks.cert_not_after), quiet_until = u.q
             FROM UNNEST($1::int4[], $2::timestamptz[], $3::bytea[], $4::timestamptz[],
                         $5::timestamptz[])
                  AS u(id, d, l, c, q)
             WHERE checks.id = u.id",
        )
        .bind(&ids)
        .bind(&ds)
        .bind(&latest)
        .bind(&certs)
        .bind(&quiet)
        .execute(&mut **self.0)
        .await?;
        Ok(())
    }

    async fn write_changes(
        &mut self,
        rewrites: &[(i32, Millis, &[Change])],
    ) -> Result<(), StoreError> {
        let ids: Vec<i32> = rewrites.iter().map(|r| r.0).collect();
        let froms: Vec<_> = rewrites.iter().map(|r| ts(r.1)).collect();
        sqlx::query(
            "DELETE FROM status_changes s USING UNNEST($1::int4[], $2::timestamptz[]) AS q(c, f)
             WHERE s.check_id = q.c AND s.at >= q.f",
        )
        .bind(&ids)
        .bind(&froms)
        .execute(&mut **self.0)
        .await?;
        let all: Vec<(i32, &Change)> = rewrites
            .iter()
            .flat_map(|(c, _, cs)| cs.iter().map(move |x| (*c, x)))
            .collect();
        let check: Vec<i32> = all.iter().map(|c| c.0).collect();
        let at: Vec<_> = all.iter().map(|c| ts(c.1.at)).collect();
        let status: Vec<_> = all.iter().map(|c| c.1.status.as_str()).collect();
        let assigned: Vec<i32> = all.iter().map(|c| c.1.detail.assigned as i32).collect();
        let reporting: Vec<i32> = all.iter().map(|c| c.1.detail.reporting as i32).collect();
        let failing: Vec<i32> = all.iter().map(|c| c.1.detail.failing as i32).collect();
        // One text per change (reason codes never hold commas): PostgreSQL has no ragged arrays.
        let reasons: Vec<String> = all.iter().map(|c| c.1.detail.reasons.join(",")).collect();
        sqlx::query(
            "INSERT INTO status_changes (check_id, at, status, assigned, reporting, failing, reasons)
             SELECT c, a, s, n, r, f, CASE WHEN rs = '' THEN '{}'::text[] ELSE string_to_array(rs, ',') END
             FROM UNNEST($1::int4[], $2::timestamptz[], $3::text[], $4::int4[], $5::int4[], $6::int4[],
                         $7::text[]) AS u(c, a, s, n, r, f, rs)",
        )
        .bind(&check)
        .bind(&at)
        .bind(&status)
        .bind(&assigned)
        .bind(&reporting)
        .bind(&failing)
        .bind(&reasons)
        .execute(&mut **self.0)
        .await?;
        Ok(())
    }

    async fn set_statuses(
        &mut self,
        statuses: &[(i32, Status)],
        slugs: &[String],
    ) -> Result<(), StoreError> {
        let ids: Vec<i32> = statuses.iter().map(|s| s.0).collect();
        let texts: Vec<&str> = statuses.iter().map(|s| s.1.as_str()).collect();
        sqlx::query(
            "UPDATE checks SET status = u.s,
                 status_since = (SELECT max(at) FROM status_changes WHERE check_id = u.id)
             FROM UNNEST($1::int4[], $2::text[]) AS u(id, s) WHERE checks.id = u.id",
        )
        .bind(&ids)
        .bind(&texts)
        .execute(&mut **self.0)
        .await?;
        // Dashboards drop their cache at once (DESIGN §4.4).
        sqlx::query("SELECT pg_notify('statuspage_changes', c) FROM UNNEST($1::text[]) AS c")
            .bind(slugs)
            .execute(&mut **self.0)
            .await?;
        Ok(())
    }
}

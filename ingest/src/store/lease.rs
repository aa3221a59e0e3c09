//! The leader's lease: one row in PostgreSQL, held while unexpired and
//! renewed by its holder each tick. A holder that stops renewing (crashed,
//! or cut off by a half-open connection) loses it when it expires, however
//! long the server keeps its old session.
//!
//! Two leaders never act at once: every leader transaction begins by
//! reading the lease `FOR SHARE` ([`Store::begin`] on a [`Store::fenced`]
//! store), and fails unless its holder still holds it; a taker's `UPDATE`
//! of the row waits for those transactions to end. The holder itself stops
//! acting before the lease can expire (see `leader.rs`). SQLite has one
//! process, which always leads.

use super::sql::{Arg, Tx};
use super::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

impl Store {
    /// Takes or renews the lead for `holder`, for `span` from now on the
    /// server's clock: `true` while `holder` holds it.
    pub async fn hold_lead(&self, holder: &str, span: Duration) -> Result<bool, StoreError> {
        let Store::Pg(pg) = self else {
            return Ok(true);
        };
        let held: Vec<(String,)> = self
            .within("leader: lease", async {
                Ok(super::sql::Pool::Pg(pg.pool.clone())
                    .rows(
                        "INSERT INTO leader_lease AS l (name, holder, expires_at)
                         VALUES ('leader', $1, now() + $2::int8 * interval '1 millisecond')
                         ON CONFLICT (name) DO UPDATE
                         SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE l.holder = excluded.holder OR l.expires_at < now()
                         RETURNING l.holder",
                        &[
                            Arg::Text(holder.to_string()),
                            Arg::Int(span.as_millis() as i64),
                        ],
                    )
                    .await?)
            })
            .await?;
        Ok(!held.is_empty())
    }

    /// Gives the lead up, so another replica takes it at its next tick
    /// rather than when the lease expires.
    pub async fn release_lead(&self, holder: &str) -> Result<(), StoreError> {
        let Store::Pg(pg) = self else {
            return Ok(());
        };
        self.within("leader: release", async {
            super::sql::Pool::Pg(pg.pool.clone())
                .exec(
                    "DELETE FROM leader_lease WHERE name = 'leader' AND holder = $1",
                    &[Arg::Text(holder.to_string())],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// This store with its transactions fenced by `holder`'s lease: each
    /// fails with [`StoreError::NotLeader`] unless `holder` holds the lead.
    pub fn fenced(&self, holder: &str) -> Store {
        match self {
            Store::Pg(pg) => {
                let mut pg = pg.clone();
                pg.lead = Some(Arc::from(holder));
                Store::Pg(pg)
            }
            Store::Sqlite(s) => Store::Sqlite(s.clone()),
        }
    }

    /// Begins a transaction; on a fenced store, only while its holder holds
    /// the lead, which it keeps from changing hands until the end.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        let mut tx = self.sql().begin().await?;
        if let Store::Pg(super::PgStore {
            lead: Some(holder), ..
        }) = self
        {
            let held: Vec<(String,)> = tx
                .rows(
                    "SELECT holder FROM leader_lease
                     WHERE name = 'leader' AND holder = $1 AND expires_at > now()
                     FOR SHARE",
                    &[Arg::Text(holder.to_string())],
                )
                .await?;
            if held.is_empty() {
                return Err(StoreError::NotLeader);
            }
        }
        Ok(tx)
    }
}

/// How long a lease lasts by default: its holder renews it every tick, and
/// a replica takes over this long after the holder's last renewal.
pub const LEASE: Duration = Duration::from_secs(30);

//! The result rows of a write, column by column, for PostgreSQL's `UNNEST`,
//! and the same values as the binary `COPY` stream.

use super::ops::NewRow;
use super::reason_code;
use super::rows::{detail, outcome_code};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

fn us(v: u64) -> i32 {
    v.min(crate::rollup::MAX_DURATION_US) as i32
}

/// The result rows, column by column, for `UNNEST`.
#[derive(Default)]
pub(crate) struct Columns {
    pub(crate) scheduled: Vec<DateTime<Utc>>,
    pub(crate) check: Vec<i32>,
    pub(crate) agent: Vec<i32>,
    pub(crate) start_delay: Vec<i32>,
    pub(crate) interval: Vec<i32>,
    pub(crate) duration: Vec<i32>,
    pub(crate) phases: [Vec<Option<i32>>; 5],
    pub(crate) assigned: Vec<i16>,
    pub(crate) outcome: Vec<i16>,
    pub(crate) reason: Vec<i16>,
    pub(crate) state: Vec<Option<i16>>,
    pub(crate) detail: Vec<Option<Json<serde_json::Value>>>,
}

impl Columns {
    pub(crate) fn push(&mut self, row: &NewRow<'_>) {
        let r = row.result;
        self.scheduled.push(r.scheduled_at.datetime());
        self.check.push(row.check);
        self.agent.push(row.agent);
        let delay = r.started_at.unix_ms() - r.scheduled_at.unix_ms();
        self.start_delay
            .push(delay.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        self.interval.push(super::flow::interval_ms(r) as i32);
        self.duration.push(us(r.duration_us));
        let p = &r.phases;
        for (col, v) in
            self.phases
                .iter_mut()
                .zip([p.dns_us, p.connect_us, p.tls_us, p.ttfb_us, p.transfer_us])
        {
            col.push(v.map(us));
        }
        self.assigned.push(r.assigned.min(i16::MAX as u32) as i16);
        self.outcome.push(outcome_code(&r.outcome));
        self.reason.push(reason_code(&r.reason));
        self.state.push(row.state);
        self.detail.push(detail(r).map(Json));
    }
}

/// The columns [`Columns::copy_binary`] writes, in its order.
pub(crate) const COPY_COLUMNS: &str = "scheduled_at, check_id, agent_id, start_delay_ms, \
    interval_ms, duration_us, dns_us, connect_us, tls_us, ttfb_us, transfer_us, assigned, \
    outcome, reason, state, detail";

/// µs from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

impl Columns {
    /// The rows as `COPY ... FROM STDIN (FORMAT binary)` data, columns as
    /// [`COPY_COLUMNS`]: the signature, then per row the field count and
    /// each field as a length (-1 for NULL) and its bytes, big-endian.
    pub(crate) fn copy_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.check.len() * 110 + 2);
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0_i32.to_be_bytes()); // flags
        out.extend_from_slice(&0_i32.to_be_bytes()); // header extension
        let int4 = |out: &mut Vec<u8>, v: Option<i32>| match v {
            Some(v) => {
                out.extend_from_slice(&4_i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            None => out.extend_from_slice(&(-1_i32).to_be_bytes()),
        };
        let int2 = |out: &mut Vec<u8>, v: Option<i16>| match v {
            Some(v) => {
                out.extend_from_slice(&2_i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            None => out.extend_from_slice(&(-1_i32).to_be_bytes()),
        };
        for i in 0..self.check.len() {
            out.extend_from_slice(&16_i16.to_be_bytes());
            out.extend_from_slice(&8_i32.to_be_bytes());
            let at = self.scheduled[i].timestamp_micros() - PG_EPOCH_US;
            out.extend_from_slice(&at.to_be_bytes());
            int4(&mut out, Some(self.check[i]));
            int4(&mut out, Some(self.agent[i]));
            int4(&mut out, Some(self.start_delay[i]));
            int4(&mut out, Some(self.interval[i]));
            int4(&mut out, Some(self.duration[i]));
            for phase in &self.phases {
                int4(&mut out, phase[i]);
            }
            int2(&mut out, Some(self.assigned[i]));
            int2(&mut out, Some(self.outcome[i]));
            int2(&mut out, Some(self.reason[i]));
            int2(&mut out, self.state[i]);
            match &self.detail[i] {
                Some(Json(value)) => {
                    // jsonb's binary form: version 1, then the JSON text.
                    let text = value.to_string();
                    out.extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
                    out.push(1);
                    out.extend_from_slice(text.as_bytes());
                }
                None => out.extend_from_slice(&(-1_i32).to_be_bytes()),
            }
        }
        out.extend_from_slice(&(-1_i16).to_be_bytes());
        out
    }
}

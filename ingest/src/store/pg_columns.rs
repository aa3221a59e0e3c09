//! The result rows of a message, column by column, for PostgreSQL's `UNNEST`.

use super::ops::NewRow;
use super::reason_code;
use super::rows::{detail, outcome_code};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

fn us(v: u64) -> i32 {
    v.min(i32::MAX as u64) as i32
}

/// The result rows, column by column, for `UNNEST`.
#[derive(Default)]
pub(crate) struct Columns {
    pub(crate) scheduled: Vec<DateTime<Utc>>,
    pub(crate) check: Vec<i32>,
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

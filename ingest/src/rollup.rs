//! Latency rollups (DESIGN §6): per check and minute, hour or day, the count,
//! the up count, and for the total time and each phase: count, sum, max and a
//! fixed histogram, from which p50 and p95 are estimated. Pure.
//!
//! Each message adds to its minute rows; the leader folds changed minutes
//! into their hours, and hours into days, by recomputing the whole hour (day)
//! from its parts, so folding is exact and idempotent.
//!
//! **Error bound.** Bucket `k` holds `[100 µs · √2^k, 100 µs · √2^(k+1))`
//! (the first also holds everything below, the last everything above ~105 s).
//! A quantile is reported as the geometric middle of its bucket, so it is
//! within a factor of 2^(1/4) (−16%, +19%) of the true value, for any data.

use crate::state::Millis;
use std::collections::BTreeMap;

/// The measures: the whole probe, then each phase.
pub const METRICS: [&str; 6] = ["total", "dns", "connect", "tls", "ttfb", "transfer"];
/// How many histogram buckets each measure has.
pub const BUCKETS: u8 = 41;
const BASE_US: f64 = 100.0;

/// The rollup levels and how long each is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Per minute; kept 14 days.
    Minute,
    /// Per hour; kept 400 days.
    Hour,
    /// Per UTC day; kept forever.
    Day,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 3] = [Level::Minute, Level::Hour, Level::Day];

    /// The bucket length in ms.
    pub fn span_ms(self) -> Millis {
        match self {
            Level::Minute => 60_000,
            Level::Hour => 3_600_000,
            Level::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `at`.
    pub fn bucket(self, at: Millis) -> Millis {
        at.div_euclid(self.span_ms()) * self.span_ms()
    }

    /// How long rows of this level are kept; `None` is forever.
    pub fn retention_ms(self) -> Option<Millis> {
        match self {
            Level::Minute => Some(14 * 86_400_000),
            Level::Hour => Some(400 * 86_400_000),
            Level::Day => None,
        }
    }

    /// The small integer stored.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The level folded from this one: minutes into hours, hours into days.
    pub fn parent(self) -> Option<Level> {
        match self {
            Level::Minute => Some(Level::Hour),
            Level::Hour => Some(Level::Day),
            Level::Day => None,
        }
    }
}

/// The longest duration stored, in µs (a result row keeps durations in 32
/// bits: about 35 minutes). Longer ones, which only a broken or hostile
/// agent sends, are clamped to it in rows and rollups alike, so no sum can
/// overflow.
pub const MAX_DURATION_US: u64 = i32::MAX as u64;

/// The histogram bucket of a duration.
pub fn bucket_of(us: u64) -> u8 {
    if (us as f64) < BASE_US {
        return 0;
    }
    let k = ((us as f64 / BASE_US).log2() * 2.0).floor();
    (k as i64).clamp(0, i64::from(BUCKETS) - 1) as u8
}

/// The geometric middle of a bucket, in µs.
pub fn bucket_middle_us(k: u8) -> f64 {
    BASE_US * 2_f64.powf((f64::from(k) + 0.5) / 2.0)
}

/// One measure's aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measure {
    /// How many results had it.
    pub count: u32,
    /// Their sum, in µs.
    pub sum_us: u64,
    /// The largest, in µs.
    pub max_us: u64,
    /// The count in each bucket.
    pub hist: [u32; BUCKETS as usize],
}

impl Default for Measure {
    fn default() -> Measure {
        Measure {
            count: 0,
            sum_us: 0,
            max_us: 0,
            hist: [0; BUCKETS as usize],
        }
    }
}

impl Measure {
    fn add(&mut self, us: u64) {
        let us = us.min(MAX_DURATION_US);
        self.count = self.count.saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let slot = &mut self.hist[usize::from(bucket_of(us))];
        *slot = slot.saturating_add(1);
    }

    fn merge(&mut self, other: &Measure) {
        self.count = self.count.saturating_add(other.count);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The estimated `q` quantile (0..=1) in µs; `None` without data.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total: u32 = self.hist.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * f64::from(total)).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (k, n) in (0..BUCKETS).zip(&self.hist) {
            seen += n;
            if seen >= rank {
                // Never above what was really seen.
                return Some(bucket_middle_us(k).min(self.max_us as f64));
            }
        }
        None
    }
}

/// One check's rollup for one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollup {
    /// Results.
    pub count: u32,
    /// Results that were `up`.
    pub up: u32,
    /// `total`, then each phase (see [`METRICS`]).
    pub measures: [Measure; 6],
}

impl Rollup {
    /// Adds one result: `up` and its durations (total, then the phases that happened).
    pub fn add(&mut self, up: bool, durations: [Option<u64>; 6]) {
        self.count = self.count.saturating_add(1);
        self.up = self.up.saturating_add(u32::from(up));
        for (m, d) in self.measures.iter_mut().zip(durations) {
            if let Some(us) = d {
                m.add(us);
            }
        }
    }

    /// Adds another rollup of the same check and bucket.
    pub fn merge(&mut self, other: &Rollup) {
        self.count = self.count.saturating_add(other.count);
        self.up = self.up.saturating_add(other.up);
        for (m, o) in self.measures.iter_mut().zip(&other.measures) {
            m.merge(o);
        }
    }

    /// The measures as bytes, for the `measures` column: per measure its
    /// count (u32), sum (u64) and max (u64), then per used bucket
    /// `measure·64 + bucket` (u16) and its count (u32); little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 * 20 + 36);
        for m in &self.measures {
            out.extend_from_slice(&m.count.to_le_bytes());
            out.extend_from_slice(&m.sum_us.to_le_bytes());
            out.extend_from_slice(&m.max_us.to_le_bytes());
        }
        for (i, m) in self.measures.iter().enumerate() {
            for (k, n) in (0..u16::from(BUCKETS)).zip(&m.hist) {
                if *n > 0 {
                    out.extend_from_slice(&(i as u16 * 64 + k).to_le_bytes());
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
        out
    }

    /// The rollup stored as `count`, `up` and [`Rollup::encode`]'s bytes;
    /// `None` when the bytes are not of that shape.
    pub fn decode(count: u32, up: u32, bytes: &[u8]) -> Option<Rollup> {
        let mut r = Rollup {
            count,
            up,
            ..Rollup::default()
        };
        let (head, tail) = bytes.split_at_checked(6 * 20)?;
        for (m, c) in r.measures.iter_mut().zip(head.chunks_exact(20)) {
            m.count = u32::from_le_bytes(c[0..4].try_into().ok()?);
            m.sum_us = u64::from_le_bytes(c[4..12].try_into().ok()?);
            m.max_us = u64::from_le_bytes(c[12..20].try_into().ok()?);
        }
        if !tail.len().is_multiple_of(6) {
            return None;
        }
        for c in tail.chunks_exact(6) {
            let key = u16::from_le_bytes([c[0], c[1]]);
            let n = u32::from_le_bytes([c[2], c[3], c[4], c[5]]);
            let m = r.measures.get_mut((key / 64) as usize)?;
            *m.hist.get_mut((key % 64) as usize)? += n;
        }
        Some(r)
    }
}

/// Rollups of a set of results: `(level, check, bucket start) → rollup`.
pub type Rollups = BTreeMap<(Level, i32, Millis), Rollup>;

/// Adds one result to its minute rollup. Hours and days are folded from
/// minutes later ([`Level::parent`]), so no row is rewritten by every message.
pub fn add(into: &mut Rollups, check: i32, at: Millis, up: bool, durations: [Option<u64>; 6]) {
    into.entry((Level::Minute, check, Level::Minute.bucket(at)))
        .or_default()
        .add(up, durations);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_half_octaves_from_100_us() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(99), 0);
        assert_eq!(bucket_of(100), 0);
        assert_eq!(bucket_of(142), 1);
        assert_eq!(bucket_of(200), 2);
        assert_eq!(bucket_of(1_000_000_000), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_documented_bound() {
        let mut m = Measure::default();
        let values: Vec<u64> = (1..=1000).map(|i| i * 97).collect();
        for v in &values {
            m.add(*v);
        }
        for (q, truth) in [(0.5, values[499] as f64), (0.95, values[949] as f64)] {
            let got = m.quantile_us(q).unwrap();
            let ratio = got / truth;
            assert!((0.84..=1.19).contains(&ratio), "q{q}: {got} vs {truth}");
        }
        assert_eq!(Measure::default().quantile_us(0.5), None);
    }

    #[test]
    fn rollups_merge_and_round_trip_through_bytes() {
        let mut a = Rollup::default();
        a.add(
            true,
            [Some(20_000), Some(500), None, None, Some(15_000), Some(300)],
        );
        let mut b = Rollup::default();
        b.add(false, [Some(3_000_000), None, None, None, None, None]);
        a.merge(&b);
        assert_eq!((a.count, a.up), (2, 1));
        assert_eq!(a.measures[0].count, 2);
        assert_eq!(a.measures[0].max_us, 3_000_000);
        assert_eq!(
            a.measures[2].count, 0,
            "a phase that did not happen is not counted"
        );
        let back = Rollup::decode(a.count, a.up, &a.encode()).unwrap();
        assert_eq!(back, a);
        assert_eq!(Rollup::decode(1, 1, &[1, 2, 3]), None);
        let mut bad = a.encode();
        bad.push(0);
        assert_eq!(Rollup::decode(1, 1, &bad), None);
    }

    #[test]
    fn levels_bucket_by_utc_minute_hour_and_day() {
        let at = 86_400_000 + 3_600_000 + 61_000;
        assert_eq!(Level::Minute.bucket(at), 86_400_000 + 3_600_000 + 60_000);
        assert_eq!(Level::Hour.bucket(at), 86_400_000 + 3_600_000);
        assert_eq!(Level::Day.bucket(at), 86_400_000);
    }

    #[test]
    fn durations_past_the_stored_range_are_clamped_and_sums_never_overflow() {
        let mut r = Rollup::default();
        for _ in 0..10 {
            r.add(true, [Some(u64::MAX); 6]);
        }
        let mut twice = r.clone();
        twice.merge(&r);
        let total = &twice.measures[0];
        assert_eq!(total.count, 20);
        assert_eq!(total.max_us, MAX_DURATION_US);
        assert_eq!(total.sum_us, 20 * MAX_DURATION_US);
        assert_eq!(total.hist[usize::from(BUCKETS - 1)], 20);
    }
}

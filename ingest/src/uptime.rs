//! Uptime (DESIGN §5), computed exactly from status changes. The dashboard
//! calls these functions; there is no second copy.
//!
//! `uptime = 1 - down_time / observed_time`, where observed time is the window
//! minus unknown time, maintenance time and time before the check existed
//! (or before its first status). Degraded time counts as up. `None` when
//! nothing was observed.

use crate::state::Millis;
use crate::status::Status;
use chrono::{DateTime, Duration, NaiveDate, Utc};

const DAY_MS: Millis = 86_400_000;

/// Down and observed time in a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Milliseconds spent `down`.
    pub down_ms: Millis,
    /// Milliseconds spent `up`, `degraded` or `down`.
    pub observed_ms: Millis,
}

impl Tally {
    /// `1 - down/observed`, or `None` when nothing was observed.
    pub fn ratio(self) -> Option<f64> {
        (self.observed_ms > 0).then(|| 1.0 - self.down_ms as f64 / self.observed_ms as f64)
    }
}

/// The segments `[start, end)` of each status inside `[from, to)`. `changes`
/// are sorted by `at`; time before the first change, or before `created`,
/// has no status.
pub fn segments(
    changes: &[(Millis, Status)],
    created: Millis,
    from: Millis,
    to: Millis,
) -> Vec<(Millis, Millis, Status)> {
    let mut out = Vec::new();
    for (i, &(at, status)) in changes.iter().enumerate() {
        let end = changes.get(i + 1).map_or(to, |c| c.0);
        let (s, e) = (at.max(from).max(created), end.min(to));
        if s < e {
            out.push((s, e, status));
        }
    }
    out
}

/// Down and observed time in `[from, to)`.
pub fn tally(changes: &[(Millis, Status)], created: Millis, from: Millis, to: Millis) -> Tally {
    let mut t = Tally::default();
    for (s, e, status) in segments(changes, created, from, to) {
        match status {
            Status::Down => {
                t.down_ms += e - s;
                t.observed_ms += e - s;
            }
            Status::Up | Status::Degraded => t.observed_ms += e - s,
            Status::Maintenance | Status::Unknown => {}
        }
    }
    t
}

/// `changes` with the time after `decided_through` made `unknown`: ingest
/// has decided nothing past it, so none of it was observed. A stopped
/// ingest (or a fleet whose results stopped arriving) freezes uptime; it
/// never inflates it by extending the last status up to now.
pub fn until_decided(
    changes: &[(Millis, Status)],
    decided_through: Option<Millis>,
) -> Vec<(Millis, Status)> {
    let mut out = changes.to_vec();
    if let (Some(t), Some(&(last, status))) = (decided_through, changes.last())
        && status != Status::Unknown
    {
        out.push((t.max(last), Status::Unknown));
    }
    out
}

/// The four windows of the API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Uptimes {
    /// The last 24 hours.
    pub h24: Option<f64>,
    /// The last 7 days.
    pub d7: Option<f64>,
    /// The last 30 days.
    pub d30: Option<f64>,
    /// The last 90 days.
    pub d90: Option<f64>,
    /// How much time each figure was computed over: up, degraded or down
    /// (never maintenance, unknown, or before monitoring began), in ms.
    pub observed_ms: Observed,
    /// When monitoring began: the check's first status (not before it
    /// existed). A window that starts earlier covers less than its length.
    pub since: Option<Millis>,
}

/// The observed time of each window, in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// In the last 24 hours.
    pub h24: Millis,
    /// In the last 7 days.
    pub d7: Millis,
    /// In the last 30 days.
    pub d30: Millis,
    /// In the last 90 days.
    pub d90: Millis,
}

/// When monitoring of a check made at `created` began: its first status.
pub fn monitored_since(changes: &[(Millis, Status)], created: Millis) -> Option<Millis> {
    changes.first().map(|c| c.0.max(created))
}

/// Uptime over the 24h, 7d, 30d and 90d before `now`, with the time each
/// was observed over.
pub fn windows(changes: &[(Millis, Status)], created: Millis, now: Millis) -> Uptimes {
    let over = |days: i64| tally(changes, created, now - days * DAY_MS, now);
    let (h24, d7, d30, d90) = (over(1), over(7), over(30), over(90));
    Uptimes {
        h24: h24.ratio(),
        d7: d7.ratio(),
        d30: d30.ratio(),
        d90: d90.ratio(),
        observed_ms: Observed {
            h24: h24.observed_ms,
            d7: d7.observed_ms,
            d30: d30.observed_ms,
            d90: d90.observed_ms,
        },
        since: monitored_since(changes, created),
    }
}

/// A service level objective's standing at one instant: its SLI over the
/// rolling window, the error budget, and how fast it burns. The SLI is the
/// same exact uptime: maintenance and unobserved time count for neither
/// side, and the budget is the objective's share of the observed time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloStanding {
    /// The objective.
    pub slo: config::catalog::Slo,
    /// Uptime over the window; `None` when nothing was observed.
    pub sli: Option<f64>,
    /// The down time the window allows: `(1 - target) × observed`, in ms.
    pub budget_ms: f64,
    /// The down time spent in the window, in ms.
    pub spent_ms: Millis,
    /// The burn rate over the last hour: its down share over the share the
    /// objective allows (1 spends the budget exactly by the window's end);
    /// `None` when the hour observed nothing.
    pub burn_1h: Option<f64>,
    /// The burn rate over the last 6 hours.
    pub burn_6h: Option<f64>,
}

impl SloStanding {
    /// The budget not yet spent, in ms; negative once overspent.
    pub fn remaining_ms(&self) -> f64 {
        self.budget_ms - self.spent_ms as f64
    }

    /// The share of the budget not yet spent (negative once overspent);
    /// `None` while the window has no budget (nothing observed).
    pub fn remaining_ratio(&self) -> Option<f64> {
        (self.budget_ms > 0.0).then(|| self.remaining_ms() / self.budget_ms)
    }

    /// More down time than the budget allows.
    pub fn exhausted(&self) -> bool {
        self.spent_ms as f64 > self.budget_ms
    }
}

/// `slo`'s standing at `now`, from a check's status changes.
pub fn slo(
    changes: &[(Millis, Status)],
    created: Millis,
    slo: config::catalog::Slo,
    now: Millis,
) -> SloStanding {
    let allowed = f64::from(1_000_000 - slo.target_ppm) / 1e6;
    let window = tally(
        changes,
        created,
        now - i64::from(slo.window_days) * DAY_MS,
        now,
    );
    let burn = |hours: i64| {
        tally(changes, created, now - hours * 3_600_000, now)
            .ratio()
            .map(|up| (1.0 - up) / allowed)
    };
    SloStanding {
        slo,
        sli: window.ratio(),
        budget_ms: allowed * window.observed_ms as f64,
        spent_ms: window.down_ms,
        burn_1h: burn(1),
        burn_6h: burn(6),
    }
}

/// An incident as the daily buckets need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentSpan {
    /// Its id.
    pub id: i64,
    /// When it started.
    pub started_at: Millis,
    /// When it was resolved; `None` while open.
    pub resolved_at: Option<Millis>,
}

/// One UTC day of the 90-day bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    /// The UTC date.
    pub date: NaiveDate,
    /// Its uptime; `None` when nothing was observed.
    pub uptime: Option<f64>,
    /// The worst status seen that day; `None` when it had no status at all.
    pub worst: Option<Status>,
    /// The incidents that overlap it.
    pub incidents: Vec<i64>,
    /// It ended before monitoring began: "no data" because nothing was
    /// watched yet, not a gap within monitoring.
    pub before_monitoring: bool,
}

/// How bad a status is, for "the worst of the day".
pub fn severity(s: Status) -> u8 {
    match s {
        Status::Unknown => 0,
        Status::Up => 1,
        Status::Maintenance => 2,
        Status::Degraded => 3,
        Status::Down => 4,
    }
}

/// The `n` UTC days ending with today (oldest first); today is cut at `now`.
pub fn days(
    changes: &[(Millis, Status)],
    created: Millis,
    incidents: &[IncidentSpan],
    now: Millis,
    n: u32,
) -> Vec<Day> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let since = monitored_since(changes, created);
    (0..i64::from(n))
        .rev()
        .map(|back| {
            let start = today - back * DAY_MS;
            let end = (start + DAY_MS).min(now);
            let segs = segments(changes, created, start, end);
            let worst = segs.iter().map(|s| s.2).max_by_key(|s| severity(*s));
            Day {
                date: date_of(start),
                uptime: tally(changes, created, start, end).ratio(),
                worst,
                incidents: incidents
                    .iter()
                    .filter(|i| i.started_at < end && i.resolved_at.is_none_or(|r| r > start))
                    .map(|i| i.id)
                    .collect(),
                before_monitoring: since.is_none_or(|m| end <= m),
            }
        })
        .collect()
}

fn date_of(ms: Millis) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.date_naive())
        .unwrap_or_else(|| (DateTime::<Utc>::UNIX_EPOCH + Duration::milliseconds(0)).date_naive())
}

/// A ratio as a percentage with `decimals` places, floored: 99.999% never
/// shows as 100%.
pub fn percent_floor(ratio: f64, decimals: u32) -> String {
    let scale = 10_f64.powi(decimals as i32);
    // The small epsilon keeps exact ratios such as 0.5 from flooring a step
    // down through binary rounding.
    let floored = ((ratio * 100.0 * scale) + 1e-9).floor() / scale;
    let floored = if ratio < 1.0 {
        floored.min(100.0 - 1.0 / scale)
    } else {
        floored
    };
    format!("{floored:.prec$}%", prec = decimals as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_counts_degraded_as_up_and_skips_unknown_and_maintenance() {
        let changes = [
            (0, Status::Up),
            (100, Status::Down),
            (200, Status::Degraded),
            (300, Status::Unknown),
            (400, Status::Maintenance),
            (500, Status::Up),
        ];
        let t = tally(&changes, 0, 0, 600);
        assert_eq!(
            t,
            Tally {
                down_ms: 100,
                observed_ms: 400
            }
        );
        assert_eq!(t.ratio(), Some(0.75));
    }

    #[test]
    fn uptime_is_null_when_nothing_was_observed() {
        assert_eq!(tally(&[], 0, 0, 1000).ratio(), None);
        assert_eq!(tally(&[(0, Status::Unknown)], 0, 0, 1000).ratio(), None);
        assert_eq!(
            tally(&[(0, Status::Up)], 2000, 0, 1000).ratio(),
            None,
            "before the check existed"
        );
    }

    #[test]
    fn days_are_utc_with_worst_status_and_incidents() {
        let d = DAY_MS;
        let changes = [
            (0, Status::Up),
            (d + 1000, Status::Down),
            (d + 2000, Status::Up),
        ];
        let incidents = [IncidentSpan {
            id: 9,
            started_at: d + 1000,
            resolved_at: Some(d + 2000),
        }];
        let got = days(&changes, 0, &incidents, 2 * d + 10, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].worst, Some(Status::Up));
        assert_eq!(got[1].worst, Some(Status::Down));
        assert_eq!(got[1].incidents, vec![9]);
        assert_eq!(got[1].uptime, Some(1.0 - 1000.0 / d as f64));
        assert_eq!(got[2].date.to_string(), "1970-01-03");
        assert_eq!(got[2].uptime, Some(1.0));
    }

    #[test]
    fn percentages_floor_and_never_round_up_to_100() {
        assert_eq!(percent_floor(0.999_999, 2), "99.99%");
        assert_eq!(percent_floor(1.0, 2), "100.00%");
        assert_eq!(percent_floor(0.5, 1), "50.0%");
        assert_eq!(percent_floor(0.987_65, 2), "98.76%");
    }

    /// One status per second, brute force: a history of `statuses` from
    /// second 0, each lasting its run of seconds.
    fn per_second(runs: &[(u8, Status)]) -> Vec<Status> {
        runs.iter()
            .flat_map(|&(n, s)| std::iter::repeat_n(s, usize::from(n)))
            .collect()
    }

    fn any_status() -> impl proptest::strategy::Strategy<Value = Status> {
        proptest::sample::select(vec![
            Status::Up,
            Status::Down,
            Status::Degraded,
            Status::Maintenance,
            Status::Unknown,
        ])
    }

    proptest::proptest! {
        /// The SLI, budget and burn rates equal a second-by-second count
        /// over a random history, on a scale where a "day" is 100 s.
        #[test]
        fn slo_figures_equal_a_brute_force_count(
            runs in proptest::collection::vec((1u8..60, any_status()), 1..80),
            created in 0i64..400,
            target_ppm in 1u32..1_000_000,
            window_days in proptest::sample::select(vec![7u32, 28, 30]),
            extra in 0i64..300,
        ) {
            // Scale: the functions take ms; a brute-force second is 1 ms
            // here, and DAY_MS of them make a day. A random history is far
            // shorter than a day, so it is spread over the window by
            // stretching each second to `unit` ms.
            let history = per_second(&runs);
            let unit: Millis = DAY_MS / 100;
            let changes: Vec<(Millis, Status)> = history
                .iter()
                .enumerate()
                .filter(|(i, s)| *i == 0 || history[i - 1] != **s)
                .map(|(i, s)| (i as Millis * unit, *s))
                .collect();
            let created_ms = created * unit;
            let now = (history.len() as i64 + extra) * unit;
            // The last status lasts until now.
            let mut seconds = history.clone();
            seconds.extend(std::iter::repeat_n(history[history.len() - 1], extra as usize));
            let slo_value = config::catalog::Slo { target_ppm, window_days };
            let got = slo(&changes, created_ms, slo_value, now);

            let count = |from: Millis| {
                let (mut down, mut observed) = (0i64, 0i64);
                for (i, s) in seconds.iter().enumerate() {
                    let (start, end) = (i as i64 * unit, (i as i64 + 1) * unit);
                    let (start, end) = (start.max(from).max(created_ms), end.min(now));
                    if start >= end {
                        continue;
                    }
                    match s {
                        Status::Down => { down += end - start; observed += end - start; }
                        Status::Up | Status::Degraded => observed += end - start,
                        Status::Maintenance | Status::Unknown => {}
                    }
                }
                (down, observed)
            };
            let allowed = f64::from(1_000_000 - target_ppm) / 1e6;
            let (down, observed) = count(now - i64::from(window_days) * DAY_MS);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            proptest::prop_assert_eq!(got.spent_ms, down);
            proptest::prop_assert!(close(got.budget_ms, allowed * observed as f64));
            match got.sli {
                None => proptest::prop_assert_eq!(observed, 0),
                Some(sli) => proptest::prop_assert!(close(sli, 1.0 - down as f64 / observed as f64)),
            }
            proptest::prop_assert_eq!(got.exhausted(), down as f64 > allowed * observed as f64);
            for (hours, burn) in [(1, got.burn_1h), (6, got.burn_6h)] {
                let (d, o) = count(now - hours * 3_600_000);
                match burn {
                    None => proptest::prop_assert_eq!(o, 0),
                    Some(b) => proptest::prop_assert!(close(b, d as f64 / o as f64 / allowed)),
                }
            }
        }
    }

    #[test]
    fn an_slo_spends_its_budget_only_in_observed_time() {
        let d = DAY_MS;
        let hour = 3_600_000;
        let objective = config::catalog::Slo {
            target_ppm: 995_000,
            window_days: 7,
        };
        // Up until day 6, down for an hour, then in maintenance for an hour.
        let changes = [
            (0, Status::Up),
            (6 * d, Status::Down),
            (6 * d + hour, Status::Maintenance),
        ];
        let got = slo(&changes, 0, objective, 6 * d + 2 * hour);
        assert_eq!(got.spent_ms, hour);
        let observed = (6 * d + hour) as f64;
        assert!((got.budget_ms - 0.005 * observed).abs() < 1e-6);
        assert!(got.exhausted(), "an hour down is more than 0.5% of 6 days");
        assert!(got.remaining_ratio().unwrap() < 0.0);
        assert_eq!(got.burn_1h, None, "the last hour was all maintenance");
        // The last 6 hours observed 4 up and 1 down: a down share of 1/5.
        assert!((got.burn_6h.unwrap() - 0.2 / 0.005).abs() < 1e-9);
        assert_eq!(got.sli, Some(1.0 - hour as f64 / observed));
    }
}

//! The charts' geometry, as pure functions over plain data: where each bar of
//! the 90-day uptime bar goes and what colour and title it has, and the paths
//! and ticks of a latency graph. The templates only print what these return.

use crate::model::Point;
use ingest::state::Millis;
use ingest::status::Status;
use ingest::uptime::{Day, percent_floor};

/// The width of one day's bar in the uptime bar's view box.
pub const BAR_WIDTH: u32 = 7;
/// The gap between two bars.
pub const BAR_GAP: u32 = 2;
/// The uptime bar's height.
pub const BAR_HEIGHT: u32 = 34;

/// One day's bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Its left edge.
    pub x: u32,
    /// Its CSS class, which sets its colour: `before` (monitoring had not
    /// begun), `none` (no data within monitoring), `up`, `maintenance`,
    /// `degraded`, `partial` or `down`.
    pub class: &'static str,
    /// Its tooltip and accessible name: date, uptime and incidents.
    pub title: String,
}

/// The view box width of a bar of `n` days.
pub fn bar_view_width(n: usize) -> u32 {
    (n as u32)
        .saturating_mul(BAR_WIDTH + BAR_GAP)
        .saturating_sub(BAR_GAP)
}

/// The colour class of a day: grey without data; by its worst status
/// otherwise, with a day that was down for less than 5% of its observed time
/// shown as a partial outage rather than red.
pub fn day_class(day: &Day) -> &'static str {
    if day.before_monitoring {
        return "before";
    }
    match (day.worst, day.uptime) {
        (None, _) | (Some(Status::Unknown), _) => "none",
        (Some(Status::Down), Some(u)) if u >= 0.95 => "partial",
        (Some(Status::Down), _) => "down",
        (Some(Status::Degraded), _) => "degraded",
        (Some(Status::Maintenance), _) => "maintenance",
        (Some(Status::Up), _) => "up",
    }
}

/// "2026-11-25: 99.93% uptime, 1 incident" ("2026-11-25: 100.00% uptime"
/// without incidents: the page carries 90 of these per check).
pub fn day_title(day: &Day) -> String {
    let uptime = match day.uptime {
        Some(u) => format!("{} uptime", percent_floor(u, 2)),
        None if day.worst == Some(Status::Maintenance) => "under maintenance".to_string(),
        None if day.before_monitoring => "not monitored yet".to_string(),
        None => "no data".to_string(),
    };
    match day.incidents.len() {
        0 => format!("{}: {uptime}", day.date),
        1 => format!("{}: {uptime}, 1 incident", day.date),
        n => format!("{}: {uptime}, {n} incidents", day.date),
    }
}

/// The bars of the uptime bar, oldest on the left.
pub fn uptime_bars(days: &[Day]) -> Vec<Bar> {
    days.iter()
        .enumerate()
        .map(|(i, d)| Bar {
            x: i as u32 * (BAR_WIDTH + BAR_GAP),
            class: day_class(d),
            title: day_title(d),
        })
        .collect()
}

/// The latency graph's drawing area, in view box units.
pub const CHART_WIDTH: f64 = 600.0;
/// Its height.
pub const CHART_HEIGHT: f64 = 160.0;

/// A latency graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// The p50 line, as SVG path data (`M`/`L`; a gap where data is missing).
    pub p50: String,
    /// The p95 line.
    pub p95: String,
    /// The top of the y axis, in ms.
    pub y_max: f64,
    /// Horizontal grid lines: (y, label).
    pub y_ticks: Vec<(f64, String)>,
    /// Time labels: (x, label).
    pub x_ticks: Vec<(f64, String)>,
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v`.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mut step = 10_f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * step >= v - 1e-9 {
            step *= m;
            return step;
        }
    }
    step * 10.0
}

/// The path through the points' values, scaled into the chart; a gap where
/// a value is missing.
fn path(
    points: &[Point],
    x: impl Fn(usize) -> f64,
    y_max: f64,
    pick: fn(&Point) -> Option<f64>,
) -> String {
    let mut out = String::new();
    let mut pen_down = false;
    for (i, p) in points.iter().enumerate() {
        match pick(p) {
            Some(v) => {
                let y = CHART_HEIGHT - (v / y_max).clamp(0.0, 1.0) * CHART_HEIGHT;
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&format!(
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    y
                ));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    out
}

/// The graph of a latency series; `label` names a time for the x axis, and
/// every `label_every`-th point gets one.
pub fn latency_chart(points: &[Point], label_every: usize, label: fn(Millis) -> String) -> Chart {
    let top = points
        .iter()
        .filter_map(|p| p.latency.p95.or(p.latency.p50))
        .fold(0.0_f64, f64::max);
    let y_max = nice_ceiling(top);
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            CHART_WIDTH / 2.0
        } else {
            i as f64 * CHART_WIDTH / (n - 1) as f64
        }
    };
    let y_ticks = (0..=4)
        .map(|k| {
            let v = y_max * f64::from(k) / 4.0;
            (CHART_HEIGHT - v / y_max * CHART_HEIGHT, format_ms(v))
        })
        .collect();
    let x_ticks = points
        .iter()
        .enumerate()
        .filter(|(i, _)| label_every > 0 && i % label_every == 0)
        .map(|(i, p)| (x(i), label(p.at)))
        .collect();
    Chart {
        p50: path(points, x, y_max, |p| p.latency.p50),
        p95: path(points, x, y_max, |p| p.latency.p95),
        y_max,
        y_ticks,
        x_ticks,
    }
}

/// The phases' names, as the stacked graph's legend and classes give them.
pub const PHASES: [&str; 5] = ["dns", "connect", "tls", "ttfb", "transfer"];

/// A stacked graph of the phases: for each bucket with results, a bar per
/// phase, bottom to top in [`PHASES`] order, from the sum of the phases
/// below it to that sum plus its own p50; one SVG path per phase holds its
/// bars. Buckets without a result have no bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Stacked {
    /// Each phase's bars, as path data.
    pub areas: Vec<(&'static str, String)>,
    /// The top of the y axis, in ms.
    pub y_max: f64,
    /// Horizontal grid lines: (y, label).
    pub y_ticks: Vec<(f64, String)>,
    /// Time labels: (x, label).
    pub x_ticks: Vec<(f64, String)>,
}

/// The stacked graph of `points` (see [`crate::model::phase_series`]).
pub fn stacked_chart(
    points: &[(Millis, Option<[f64; 5]>)],
    label_every: usize,
    label: fn(Millis) -> String,
) -> Stacked {
    let top = points
        .iter()
        .filter_map(|p| p.1.map(|v| v.iter().sum::<f64>()))
        .fold(0.0_f64, f64::max);
    let y_max = nice_ceiling(top);
    let width = CHART_WIDTH / points.len().max(1) as f64;
    let x = |i: usize| i as f64 * width;
    let y = |v: f64| CHART_HEIGHT - v / y_max * CHART_HEIGHT;
    let areas = PHASES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let bars: Vec<String> = points
                .iter()
                .enumerate()
                .filter_map(|(i, (_, p))| {
                    let v = (*p)?;
                    let lo: f64 = v[..k].iter().sum();
                    (v[k] > 0.0).then(|| {
                        format!(
                            "M{:.1},{:.1}H{:.1}V{:.1}H{:.1}Z",
                            x(i),
                            y(lo + v[k]),
                            x(i) + width,
                            y(lo),
                            x(i)
                        )
                    })
                })
                .collect();
            (*name, bars.join(""))
        })
        .collect();
    let y_ticks = (0..=4)
        .map(|k| {
            let v = y_max * f64::from(k) / 4.0;
            (y(v), format_ms(v))
        })
        .collect();
    let x_ticks = points
        .iter()
        .enumerate()
        .filter(|(i, _)| label_every > 0 && i % label_every == 0)
        .map(|(i, p)| (x(i), label(p.0)))
        .collect();
    Stacked {
        areas,
        y_max,
        y_ticks,
        x_ticks,
    }
}

/// "850 ms", "1.2 s".
pub fn format_ms(v: f64) -> String {
    if v >= 1000.0 {
        let s = v / 1000.0;
        if s.fract().abs() < 1e-9 {
            format!("{s:.0} s")
        } else {
            format!("{s:.1} s")
        }
    } else if v >= 10.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Latency;
    use chrono::NaiveDate;

    fn day(uptime: Option<f64>, worst: Option<Status>, incidents: Vec<i64>) -> Day {
        Day {
            date: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            uptime,
            worst,
            incidents,
            before_monitoring: false,
        }
    }

    fn point(at: Millis, p50: Option<f64>, p95: Option<f64>) -> Point {
        Point {
            at,
            latency: Latency { p50, p95 },
        }
    }

    #[test]
    fn phases_stack_each_on_the_ones_below_with_no_bar_where_nothing_ran() {
        let points = [
            (0, Some([1.0, 2.0, 3.0, 4.0, 10.0])),
            (1, Some([1.0, 2.0, 3.0, 4.0, 10.0])),
            (2, None),
            (3, Some([2.0, 2.0, 0.0, 4.0, 12.0])),
        ];
        let c = stacked_chart(&points, 0, |_| String::new());
        assert_eq!(c.y_max, 20.0);
        let names: Vec<&str> = c.areas.iter().map(|a| a.0).collect();
        assert_eq!(names, PHASES);
        // DNS from 0 to 1 ms in the first bucket (150 wide): 160 - 1/20*160 = 152.
        assert!(
            c.areas[0].1.starts_with("M0.0,152.0H150.0V160.0H0.0Z"),
            "{}",
            c.areas[0].1
        );
        // Transfer sits on the 10 ms of the others, up to 20.
        assert!(
            c.areas[4].1.starts_with("M0.0,0.0H150.0V80.0H0.0Z"),
            "{}",
            c.areas[4].1
        );
        // No bar in the empty bucket, nor for a phase that took no time.
        assert_eq!(c.areas[0].1.matches('Z').count(), 3);
        assert_eq!(
            c.areas[2].1.matches('Z').count(),
            2,
            "no TLS in the last bucket"
        );
        assert!(!c.areas[0].1.contains("M300.0"));
    }

    #[test]
    fn bars_sit_side_by_side_and_fill_the_view_box() {
        let days = vec![day(Some(1.0), Some(Status::Up), vec![]); 90];
        let bars = uptime_bars(&days);
        assert_eq!(bars.len(), 90);
        assert_eq!(bars[0].x, 0);
        assert_eq!(bars[1].x, BAR_WIDTH + BAR_GAP);
        assert_eq!(bars[89].x + BAR_WIDTH, bar_view_width(90));
        assert_eq!(bar_view_width(0), 0);
    }

    #[test]
    fn a_day_is_coloured_by_its_worst_status_and_grey_without_data() {
        assert_eq!(day_class(&day(None, None, vec![])), "none");
        assert_eq!(day_class(&day(None, Some(Status::Unknown), vec![])), "none");
        let mut before = day(None, None, vec![]);
        before.before_monitoring = true;
        assert_eq!(day_class(&before), "before");
        assert_eq!(day_title(&before), "2026-11-25: not monitored yet");
        assert_eq!(day_class(&day(Some(1.0), Some(Status::Up), vec![])), "up");
        assert_eq!(
            day_class(&day(Some(1.0), Some(Status::Degraded), vec![])),
            "degraded"
        );
        assert_eq!(
            day_class(&day(None, Some(Status::Maintenance), vec![])),
            "maintenance"
        );
        assert_eq!(
            day_class(&day(Some(0.99), Some(Status::Down), vec![])),
            "partial"
        );
        assert_eq!(
            day_class(&day(Some(0.5), Some(Status::Down), vec![])),
            "down"
        );
    }

    #[test]
    fn a_bar_is_titled_with_its_date_floored_uptime_and_incidents() {
        assert_eq!(
            day_title(&day(Some(0.99999), Some(Status::Down), vec![4])),
            "2026-11-25: 99.99% uptime, 1 incident"
        );
        assert_eq!(day_title(&day(None, None, vec![])), "2026-11-25: no data");
        assert_eq!(
            day_title(&day(Some(0.5), Some(Status::Down), vec![1, 2])),
            "2026-11-25: 50.00% uptime, 2 incidents"
        );
    }

    #[test]
    fn the_y_axis_ends_at_a_round_number_above_the_highest_p95() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(201.0), 500.0);
        assert_eq!(nice_ceiling(501.0), 1000.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn lines_are_scaled_into_the_chart_and_broken_where_data_is_missing() {
        let points = [
            point(0, Some(50.0), Some(100.0)),
            point(1, None, None),
            point(2, Some(100.0), Some(200.0)),
        ];
        let c = latency_chart(&points, 1, |at| at.to_string());
        assert_eq!(c.y_max, 200.0);
        // p95 200 ms is the top edge; p50 50 ms is three quarters down.
        assert_eq!(c.p95, "M0.0,80.0 M600.0,0.0");
        assert_eq!(c.p50, "M0.0,120.0 M600.0,80.0");
        assert_eq!(c.y_ticks.first(), Some(&(CHART_HEIGHT, "0 ms".to_string())));
        assert_eq!(c.y_ticks.last(), Some(&(0.0, "200 ms".to_string())));
        assert_eq!(c.x_ticks.len(), 3);
        assert_eq!(c.x_ticks[2], (600.0, "2".to_string()));
    }

    #[test]
    fn consecutive_points_are_joined() {
        let points = [
            point(0, Some(10.0), Some(10.0)),
            point(1, Some(5.0), Some(10.0)),
        ];
        let c = latency_chart(&points, 0, |_| String::new());
        assert_eq!(c.p50, "M0.0,0.0 L600.0,80.0");
        assert!(c.x_ticks.is_empty());
    }

    #[test]
    fn an_empty_series_draws_nothing() {
        let c = latency_chart(&[], 4, |_| String::new());
        assert_eq!((c.p50.as_str(), c.p95.as_str()), ("", ""));
        assert_eq!(c.y_max, 1.0);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_ms(0.0), "0 ms");
        assert_eq!(format_ms(2.5), "2.5 ms");
        assert_eq!(format_ms(850.0), "850 ms");
        assert_eq!(format_ms(1000.0), "1 s");
        assert_eq!(format_ms(1500.0), "1.5 s");
    }
}

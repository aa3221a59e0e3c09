//! The dashboard's Prometheus metrics (names are a contract; see the
//! README): requests by route and code, cache outcomes, renders, and
//! invalidations.

use crate::cache::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The dashboard's counters.
#[derive(Debug, Default)]
pub struct DashboardMetrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    cache: Mutex<BTreeMap<&'static str, u64>>,
    render_count: AtomicU64,
    render_micros: AtomicU64,
    invalidations: AtomicU64,
}

impl DashboardMetrics {
    /// Counts a request.
    pub fn request(&self, route: &'static str, code: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route, code)).or_default() += 1;
    }

    /// Counts a cache outcome.
    pub fn cache(&self, outcome: Outcome) {
        let name = match outcome {
            Outcome::Hit => "hit",
            Outcome::Coalesced => "coalesced",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Failed => "failed",
        };
        let mut m = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(name).or_default() += 1;
    }

    /// Records a render's duration.
    pub fn render(&self, took: std::time::Duration) {
        self.render_count.fetch_add(1, Ordering::Relaxed);
        self.render_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts an invalidation.
    pub fn invalidated(&self) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP statuspage_dashboard_requests_total Public requests by route and status code.\n");
        out.push_str("# TYPE statuspage_dashboard_requests_total counter\n");
        for ((route, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "statuspage_dashboard_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP statuspage_dashboard_cache_total Cache lookups by outcome (hit, coalesced, miss, stale, failed).\n");
        out.push_str("# TYPE statuspage_dashboard_cache_total counter\n");
        for (outcome, n) in self.cache.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "statuspage_dashboard_cache_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP statuspage_dashboard_render_seconds Time spent reading and rendering on cache misses.\n");
        out.push_str("# TYPE statuspage_dashboard_render_seconds summary\n");
        let _ = writeln!(
            out,
            "statuspage_dashboard_render_seconds_sum {}",
            self.render_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "statuspage_dashboard_render_seconds_count {}",
            self.render_count.load(Ordering::Relaxed)
        );
        out.push_str("# HELP statuspage_dashboard_cache_invalidations_total Status or incident changes that emptied the cache.\n");
        out.push_str("# TYPE statuspage_dashboard_cache_invalidations_total counter\n");
        let _ = writeln!(
            out,
            "statuspage_dashboard_cache_invalidations_total {}",
            self.invalidations.load(Ordering::Relaxed)
        );
        out
    }
}

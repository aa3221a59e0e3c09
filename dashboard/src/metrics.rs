//! The dashboard's metrics (names are a contract; see the README): requests
//! by route and code, cache outcomes, renders, and invalidations, recorded
//! through the `metrics` facade; the process's exporter renders them.

use crate::cache::Outcome;
use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use std::time::Duration;

const REQUESTS: &str = "statuspage_dashboard_requests_total";
const CACHE: &str = "statuspage_dashboard_cache_total";
const RENDER: &str = "statuspage_dashboard_render_seconds";
const INVALIDATIONS: &str = "statuspage_dashboard_cache_invalidations_total";
const ENTRIES: &str = "statuspage_dashboard_cache_entries";

/// Gives every family its help text (once per process, after the recorder is installed).
pub fn describe() {
    describe_counter!(REQUESTS, "Public requests by route and status code.");
    describe_counter!(
        CACHE,
        "Cache lookups by outcome (hit, coalesced, miss, stale, failed)."
    );
    describe_histogram!(RENDER, "Time spent reading and rendering on cache misses.");
    describe_counter!(
        INVALIDATIONS,
        "Status or incident changes that emptied the cache."
    );
    describe_gauge!(
        ENTRIES,
        "Keys the cache holds (at most its capacity, statuspage's MAX_KEYS)."
    );
    describe_counter!(
        crate::subscribe::REQUESTS,
        "Subscription requests (form and links) by action and outcome."
    );
}

/// Sets the dashboard's gauges from its cache, just before a scrape.
pub fn publish(cache: &crate::cache::Cache) {
    gauge!(ENTRIES).set(cache.entries() as f64);
}

/// The dashboard's instruments. Cache outcomes, renders and invalidations
/// are registered, when made, with the current recorder; a request's series
/// (route and code) when first seen.
#[derive(Debug)]
pub struct DashboardMetrics {
    cache: [(Outcome, Counter); 5],
    render: Histogram,
    invalidations: Counter,
}

impl Default for DashboardMetrics {
    fn default() -> Self {
        let outcome = |o: Outcome| (o, counter!(CACHE, "outcome" => name(o)));
        Self {
            cache: [
                outcome(Outcome::Hit),
                outcome(Outcome::Coalesced),
                outcome(Outcome::Miss),
                outcome(Outcome::Stale),
                outcome(Outcome::Failed),
            ],
            render: histogram!(RENDER),
            invalidations: counter!(INVALIDATIONS),
        }
    }
}

fn name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Hit => "hit",
        Outcome::Coalesced => "coalesced",
        Outcome::Miss => "miss",
        Outcome::Stale => "stale",
        Outcome::Failed => "failed",
    }
}

impl DashboardMetrics {
    /// Counts a request.
    pub fn request(&self, route: &'static str, code: u16) {
        counter!(REQUESTS, "route" => route, "code" => code.to_string()).increment(1);
    }

    /// Counts a cache outcome.
    pub fn cache(&self, outcome: Outcome) {
        if let Some((_, c)) = self.cache.iter().find(|(o, _)| *o == outcome) {
            c.increment(1);
        }
    }

    /// Records a render's duration.
    pub fn render(&self, took: Duration) {
        self.render.record(took.as_secs_f64());
    }

    /// Counts an invalidation.
    pub fn invalidated(&self) {
        self.invalidations.increment(1);
    }
}

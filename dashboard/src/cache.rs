//! Rendered pages and API answers, kept for a short TTL so a spike on the
//! public page during an outage costs one render per TTL, not one per
//! request.
//!
//! - **Single flight.** Concurrent misses of one key wait for one render.
//! - **Invalidation.** [`Cache::invalidate`] (called on every status or
//!   incident change) makes every entry stale at once.
//! - **Stale on error.** When a render fails (the database is down), the last
//!   good render is served, marked stale; for a second after a failure the
//!   database is not asked again, so a spike never piles up on a dead one.
//! - **Bounded.** The keys live in a `moka` cache of at most [`MAX_KEYS`]
//!   entries (least recently and least frequently used go first), and an
//!   entry nobody asked for in [`IDLE`] goes. The last good render of the
//!   [`PINNED`] keys (what the page needs through an outage) is kept apart,
//!   whatever is evicted. The key space is bounded by the data as well:
//!   routes answer a page past the last, or an id that does not exist,
//!   without a slot.

use bytes::Bytes;
use http::StatusCode;
use ingest::state::Millis;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// How long after a failed render the database is left alone.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest a render may take: a database that stopped answering (a
/// blackholed address during a failover, with no reset) fails the render
/// like a refused connection would, so the last good page is served.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(8);
/// The most keys kept.
pub const MAX_KEYS: u64 = 1024;
/// A key nobody asked for this long is dropped.
const IDLE: Duration = Duration::from_secs(600);
/// The keys whose last good render is kept however full the cache is.
pub const PINNED: &[&str] = &[
    "/",
    "api:status",
    "api:summary",
    "feed",
    "ids:checks",
    "ids:incidents",
    "ids:groups",
];

/// A finished render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The HTTP status.
    pub status: StatusCode,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
    /// Where a "this page is stale" notice goes when it is served from a
    /// failed refresh (HTML pages only).
    pub notice_at: Option<usize>,
    /// When the data behind it was read (wall clock, ms).
    pub at: Millis,
}

/// Bodies smaller than this are sent as they are.
const GZIP_OVER: usize = 1024;

/// A render kept in the cache.
#[derive(Debug)]
pub struct Entry {
    /// What was rendered.
    pub rendered: Rendered,
    /// Its strong validator: a hash of the body.
    pub etag: String,
    /// The body gzipped once, when it is big enough to be worth it (a page
    /// of 200 checks' bars shrinks about twentyfold).
    pub gzip: Option<Bytes>,
    born: Instant,
    generation: u64,
}

/// `body` gzipped (fast level: it is done once per render, and the bars
/// repeat so much that the ratio hardly depends on the level).
pub fn gzip(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::new(3),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}

impl Entry {
    pub(crate) fn new(rendered: Rendered, generation: u64) -> Entry {
        let digest = Sha256::digest(&rendered.body);
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let gzip = (rendered.body.len() >= GZIP_OVER)
            .then(|| gzip(&rendered.body))
            .flatten();
        Entry {
            etag: format!("\"{hex}\""),
            gzip,
            rendered,
            born: Instant::now(),
            generation,
        }
    }

    /// The validator of the gzipped representation.
    pub fn etag_gzip(&self) -> String {
        format!("{}-gz\"", self.etag.trim_end_matches('"'))
    }
}

/// What [`Cache::get`] found.
#[derive(Clone, Debug)]
pub enum Served {
    /// A render that is current.
    Fresh(Arc<Entry>),
    /// The last good render, served because a new one failed.
    Stale(Arc<Entry>),
    /// Nothing to serve: the render failed and there was none before.
    Failed,
}

/// How the cache answered, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A fresh entry, no render.
    Hit,
    /// Waited for another request's render.
    Coalesced,
    /// Rendered.
    Miss,
    /// A failed render, with an older one served.
    Stale,
    /// A failed render with nothing to serve.
    Failed,
}

#[derive(Debug, Default)]
struct Slot {
    current: RwLock<Option<Arc<Entry>>>,
    failed_at: Mutex<Option<Instant>>,
    render: tokio::sync::Mutex<()>,
}

/// The cache of rendered answers, by key.
#[derive(Debug)]
pub struct Cache {
    ttl: Duration,
    /// The longest a render may take (see [`RENDER_TIMEOUT`]).
    render_timeout: Duration,
    generation: AtomicU64,
    slots: moka::sync::Cache<String, Arc<Slot>>,
    /// The last good render of each [`PINNED`] key.
    pinned: Mutex<HashMap<&'static str, Arc<Entry>>>,
}

impl Cache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Cache {
        Cache {
            ttl,
            render_timeout: RENDER_TIMEOUT,
            generation: AtomicU64::new(0),
            slots: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_idle(IDLE)
                .build(),
            pinned: Mutex::new(HashMap::new()),
        }
    }

    /// Renders (the database reads behind them) within `deadline` when it
    /// is shorter than [`RENDER_TIMEOUT`] (`--database-deadline`).
    pub fn with_deadline(mut self, deadline: Duration) -> Cache {
        self.render_timeout = deadline.min(RENDER_TIMEOUT);
        self
    }

    /// How many keys are kept (for the metric).
    pub fn entries(&self) -> u64 {
        self.slots.run_pending_tasks();
        self.slots.entry_count()
    }

    /// The last good render of a pinned key.
    fn pinned(&self, key: &str) -> Option<Arc<Entry>> {
        let pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.get(key).cloned()
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether a render of `key` is kept, fresh or not: what this replica
    /// can still serve while the database cannot be read.
    pub fn has(&self, key: &str) -> bool {
        self.pinned(key).is_some()
            || self.slots.get(key).is_some_and(|slot| {
                slot.current
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some()
            })
    }

    /// Makes every entry stale: the next request renders anew.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots.get_with_by_ref(key, Arc::default)
    }

    fn fresh(&self, slot: &Slot, generation: u64) -> Option<Arc<Entry>> {
        let current = slot.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|e| e.generation == generation && e.born.elapsed() < self.ttl)
            .cloned()
    }

    fn recently_failed(slot: &Slot) -> bool {
        let failed = slot.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        failed.is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }

    fn last(&self, key: &str, slot: &Slot) -> Served {
        let current = slot.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .clone()
            .or_else(|| self.pinned(key))
            .map_or(Served::Failed, Served::Stale)
    }

    /// The answer for `key`: a fresh entry, or `render`'s (which only one
    /// caller at a time runs), or on its failure the last good one. Answers
    /// that are not `cacheable` are returned without being kept.
    pub async fn get<F, Fut, E>(&self, key: &str, render: F) -> (Served, Outcome)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Rendered, bool), E>>,
        E: std::fmt::Display,
    {
        let slot = self.slot(key);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(e) = self.fresh(&slot, generation) {
            return (Served::Fresh(e), Outcome::Hit);
        }
        if Self::recently_failed(&slot) {
            return self.failed(key, &slot);
        }
        let _turn = slot.render.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(e) = self.fresh(&slot, generation) {
            return (Served::Fresh(e), Outcome::Coalesced);
        }
        if Self::recently_failed(&slot) {
            return self.failed(key, &slot);
        }
        let outcome = match tokio::time::timeout(self.render_timeout, render()).await {
            Ok(done) => done.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.render_timeout)),
        };
        match outcome {
            Ok((rendered, cacheable)) => {
                let entry = Arc::new(Entry::new(rendered, generation));
                *slot.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if cacheable {
                    *slot.current.write().unwrap_or_else(|p| p.into_inner()) = Some(entry.clone());
                    if let Some(pinned) = PINNED.iter().find(|p| **p == key) {
                        let mut kept = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
                        kept.insert(pinned, entry.clone());
                    }
                }
                (Served::Fresh(entry), Outcome::Miss)
            }
            Err(e) => {
                tracing::warn!(event = "render_failed", key, error = %e);
                *slot.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                self.failed(key, &slot)
            }
        }
    }

    fn failed(&self, key: &str, slot: &Slot) -> (Served, Outcome) {
        match self.last(key, slot) {
            Served::Stale(e) => (Served::Stale(e), Outcome::Stale),
            other => (other, Outcome::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn page(text: &str) -> Rendered {
        Rendered {
            status: StatusCode::OK,
            content_type: "text/plain",
            body: Bytes::from(text.to_string()),
            notice_at: None,
            at: 0,
        }
    }

    fn body(s: &Served) -> String {
        match s {
            Served::Fresh(e) | Served::Stale(e) => {
                String::from_utf8_lossy(&e.rendered.body).into_owned()
            }
            Served::Failed => "failed".into(),
        }
    }

    #[tokio::test]
    async fn the_cache_never_holds_more_than_its_capacity_and_keeps_the_pinned_pages() {
        let cache = Cache::new(Duration::from_secs(60));
        cache
            .get("/", || async { Ok::<_, String>((page("home"), true)) })
            .await;
        for n in 0..(3 * MAX_KEYS) {
            cache
                .get(&format!("k{n}"), || async {
                    Ok::<_, String>((page("x"), true))
                })
                .await;
        }
        assert!(cache.entries() <= MAX_KEYS, "{} keys", cache.entries());
        // Whatever was evicted, the home page's last good render is served
        // when a render fails.
        cache.invalidate();
        let (served, outcome) = cache
            .get("/", || async {
                Err::<(Rendered, bool), _>("database down")
            })
            .await;
        assert_eq!(
            (body(&served), outcome),
            ("home".to_string(), Outcome::Stale)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_render() {
        let cache = Arc::new(Cache::new(Duration::from_secs(10)));
        let renders = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, renders) = (cache.clone(), renders.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("/", || async {
                        renders.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, String>((page("one"), true))
                    })
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            let (served, outcome) = t.await.unwrap();
            assert_eq!(body(&served), "one");
            outcomes.push(outcome);
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Outcome::Coalesced)
                .count(),
            49
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_lives_for_the_ttl_and_invalidation_ends_it_at_once() {
        let cache = Cache::new(Duration::from_secs(10));
        let render =
            |text: &'static str| move || async move { Ok::<_, String>((page(text), true)) };
        assert_eq!(cache.get("/", render("a")).await.1, Outcome::Miss);
        tokio::time::advance(Duration::from_secs(9)).await;
        let (served, outcome) = cache.get("/", render("b")).await;
        assert_eq!((body(&served).as_str(), outcome), ("a", Outcome::Hit));
        tokio::time::advance(Duration::from_secs(2)).await;
        let (served, outcome) = cache.get("/", render("c")).await;
        assert_eq!((body(&served).as_str(), outcome), ("c", Outcome::Miss));
        cache.invalidate();
        let (served, outcome) = cache.get("/", render("d")).await;
        assert_eq!((body(&served).as_str(), outcome), ("d", Outcome::Miss));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_render_serves_the_last_good_one_and_spares_the_database() {
        let cache = Cache::new(Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(Rendered, bool), _>("database down")
        };
        assert!(matches!(cache.get("/", failing).await.0, Served::Failed));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(RETRY_AFTER).await;
        cache
            .get("/", || async { Ok::<_, String>((page("good"), true)) })
            .await;
        cache.invalidate();
        let (served, outcome) = cache.get("/", failing).await;
        assert!(matches!(served, Served::Stale(_)));
        assert_eq!((body(&served).as_str(), outcome), ("good", Outcome::Stale));
        // Within a second of the failure the database is not asked again.
        let (served, _) = cache.get("/", failing).await;
        assert_eq!(body(&served), "good");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_render_that_never_finishes_gives_way_to_the_last_good_one() {
        let cache = Cache::new(Duration::from_secs(10));
        cache
            .get("/", || async { Ok::<_, String>((page("good"), true)) })
            .await;
        cache.invalidate();
        let started = tokio::time::Instant::now();
        let (served, outcome) = cache
            .get("/", || async {
                std::future::pending::<()>().await;
                Ok::<_, String>((page("never"), true))
            })
            .await;
        assert_eq!((body(&served).as_str(), outcome), ("good", Outcome::Stale));
        assert_eq!(started.elapsed(), RENDER_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn uncacheable_answers_are_rendered_every_time() {
        let cache = Cache::new(Duration::from_secs(10));
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .get("/checks/nope", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>((page("404"), false))
                })
                .await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn big_bodies_are_gzipped_once_and_small_ones_are_not() {
        use std::io::Read;
        let big = "<rect class=\"up\" x=\"9\"><title>2026-11-25: 100.00% uptime</title></rect>"
            .repeat(200);
        let e = Entry::new(page(&big), 0);
        let gz = e.gzip.clone().expect("gzipped");
        assert!(gz.len() * 10 < big.len(), "{} of {}", gz.len(), big.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, big);
        assert_eq!(
            e.etag_gzip(),
            format!("{}-gz\"", e.etag.trim_end_matches('"'))
        );
        assert!(Entry::new(page("small"), 0).gzip.is_none());
    }

    #[test]
    fn the_etag_is_a_quoted_hash_of_the_body() {
        let a = Entry::new(page("x"), 0);
        let b = Entry::new(page("x"), 1);
        let c = Entry::new(page("y"), 0);
        assert_eq!(a.etag, b.etag);
        assert_ne!(a.etag, c.etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.etag.len() == 26);
    }
}

//! The bounded result buffer between the probes and the publisher. It holds
//! at most so many results and so many bytes; when full, the oldest results
//! are dropped and counted, so memory never grows without bound.
//!
//! Each result is held as its JSON, as the wire carries it: about a quarter
//! of the memory of the decoded result (which has its own copies of the
//! check id, the config hash and the agent id), so a full default buffer of
//! 50,000 results is about 15 MiB of JSON rather than 60 decoded. It stays
//! JSON until delivered: messages are written from it as it is, and a
//! publish that fails puts the same JSON back, decoding nothing.

use config::wire::ProbeResult;
use serde_json::value::RawValue;
use std::collections::VecDeque;

/// A result as its JSON (compact, so one line), as the buffer, a message
/// and the spool hold it.
pub type RawResult = Box<RawValue>;

/// Limits of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most results held.
    pub results: usize,
    /// The most bytes held, counting each result's JSON size.
    pub bytes: usize,
}

/// The default bound in results. An agent of 100,000 checks whose SQS is
/// down fills it in 30 s and then stays within 192 MiB (167-168 MiB
/// measured, 155 with glibc's `MALLOC_ARENA_MAX=2` as the chart runs it);
/// it is five minutes of a 10,000-check agent's results. `--spool-dir`
/// keeps what it drops.
pub const DEFAULT_RESULTS: usize = 50_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            results: DEFAULT_RESULTS,
            bytes: 64 << 20,
        }
    }
}

/// A FIFO of results, each held as its JSON.
#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    queue: VecDeque<RawResult>,
    bytes: usize,
    dropped: u64,
}

impl Buffer {
    /// An empty buffer with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Adds a result; returns how many were dropped to make room (the
    /// oldest), or because it could not be encoded.
    pub fn push(&mut self, result: ProbeResult) -> u64 {
        let Some(json) = encode(&result) else {
            self.dropped += 1;
            return 1;
        };
        self.bytes += json.get().len();
        self.queue.push_back(json);
        self.shed()
    }

    /// Takes the oldest results whose JSON adds up to at most `max_bytes`
    /// (at least one, if any is held).
    pub fn take(&mut self, max_bytes: usize) -> Vec<RawResult> {
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(s) = self.queue.front().map(|j| j.get().len()) {
            if !taken.is_empty() && size + s + 1 > max_bytes {
                break;
            }
            let Some(json) = self.queue.pop_front() else {
                break;
            };
            size += s + 1;
            self.bytes -= s;
            taken.push(json);
        }
        taken
    }

    /// Puts results back at the front, oldest first (a publish that failed).
    /// Limits still hold: what does not fit is dropped and counted, the
    /// oldest first, so the newest results survive a long outage.
    pub fn requeue(&mut self, results: Vec<RawResult>) -> u64 {
        for json in results.into_iter().rev() {
            self.bytes += json.get().len();
            self.queue.push_front(json);
        }
        self.shed()
    }

    /// Drops the oldest results until the limits hold; returns how many.
    fn shed(&mut self) -> u64 {
        let mut dropped = 0;
        while self.queue.len() > self.limits.results || self.bytes > self.limits.bytes {
            let Some(json) = self.queue.pop_front() else {
                break;
            };
            self.bytes -= json.get().len();
            dropped += 1;
        }
        self.dropped += dropped;
        dropped
    }

    /// Results held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Results dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A result's JSON, as the buffer holds it (`None` only for a value JSON
/// cannot carry, which a result never holds).
pub fn encode(r: &ProbeResult) -> Option<RawResult> {
    serde_json::value::to_raw_value(r).ok()
}

/// The result of its JSON; `None` for JSON that is not a result.
pub fn decode(json: &RawValue) -> Option<ProbeResult> {
    serde_json::from_str(json.get()).ok()
}

/// The JSON size of a result.
pub fn encoded_len(r: &ProbeResult) -> usize {
    encode(r).map_or(0, |j| j.get().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::wire::Timestamp;

    fn result(n: i64) -> ProbeResult {
        let t = Timestamp::from_unix_ms(1_780_000_000_000 + n * 1000).unwrap();
        ProbeResult::new("c", "h", "a", t, 1_000_000, 1)
    }

    #[test]
    fn a_result_comes_out_exactly_as_it_went_in() {
        use config::wire::{Assertion, Outcome, Reason};
        let mut r = result(7);
        r.outcome = Outcome::Down;
        r.reason = Reason::HttpStatus;
        r.duration_us = 123_456;
        r.set_message("503 from \"edge\" \u{0}\u{1F600} ünïcode\n");
        r.phases.connect_us = Some(1_500);
        r.phases.ttfb_us = Some(90_000);
        r.facts.http_status = Some(503);
        r.facts.dns_answers = Some(vec!["127.0.0.1".into(), "::1".into()]);
        r.facts.cert_not_after = Some(Timestamp::from_unix_ms(1_800_000_000_123).unwrap());
        r.assertions.push(Assertion::new("status", false, "503"));
        let mut b = Buffer::new(Limits::default());
        b.push(r.clone());
        b.push(result(8));
        let back: Vec<_> = b
            .take(usize::MAX)
            .iter()
            .filter_map(|j| decode(j))
            .collect();
        assert_eq!(back, vec![r, result(8)]);
        assert_eq!((b.len(), b.bytes(), b.dropped()), (0, 0, 0));
    }

    #[test]
    fn when_full_the_oldest_results_are_dropped_and_counted() {
        let mut b = Buffer::new(Limits {
            results: 3,
            bytes: 1 << 20,
        });
        for n in 0..5 {
            b.push(result(n));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped(), 2);
        let ids: Vec<i64> = b
            .take(1 << 20)
            .iter()
            .filter_map(|j| decode(j))
            .map(|r| r.scheduled_at.unix_ms() % 100_000)
            .collect();
        assert_eq!(ids, vec![2000, 3000, 4000]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn the_byte_limit_holds_too() {
        let one = encoded_len(&result(0));
        let mut b = Buffer::new(Limits {
            results: 1000,
            bytes: one * 2 + one / 2,
        });
        for n in 0..10 {
            b.push(result(n));
        }
        assert_eq!(b.len(), 2);
        assert_eq!(b.dropped(), 8);
        assert!(b.bytes() <= one * 2 + one / 2);
    }

    #[test]
    fn take_respects_the_size_and_requeue_restores_order() {
        let one = encoded_len(&result(0));
        let mut b = Buffer::new(Limits::default());
        for n in 0..5 {
            b.push(result(n));
        }
        let first = b.take(one * 2 + 2);
        assert_eq!(first.len(), 2);
        assert_eq!(b.len(), 3);
        b.requeue(first);
        let all: Vec<_> = b
            .take(usize::MAX)
            .iter()
            .filter_map(|j| decode(j))
            .map(|r| r.scheduled_at.unix_ms())
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        assert_eq!(all.len(), 5);
        let mut tiny = Buffer::new(Limits::default());
        tiny.push(result(0));
        assert_eq!(tiny.take(1).len(), 1, "one result always fits a take");
    }
}

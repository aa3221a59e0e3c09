//! The bounded result buffer between the probes and the publisher. It holds
//! at most so many results and so many bytes; when full, the oldest results
//! are dropped and counted, so memory never grows without bound.

use config::wire::ProbeResult;
use std::collections::VecDeque;

/// Limits of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most results held.
    pub results: usize,
    /// The most bytes held, counting each result's JSON size.
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            results: 100_000,
            bytes: 64 << 20,
        }
    }
}

/// A FIFO of results with their encoded sizes.
#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    queue: VecDeque<(ProbeResult, usize)>,
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

    /// Adds a result; returns how many of the oldest were dropped to make room.
    pub fn push(&mut self, result: ProbeResult) -> u64 {
        let size = encoded_len(&result);
        self.queue.push_back((result, size));
        self.bytes += size;
        let mut dropped = 0;
        while self.queue.len() > self.limits.results
            || (self.bytes > self.limits.bytes && !self.queue.is_empty())
        {
            if let Some((_, s)) = self.queue.pop_front() {
                self.bytes -= s;
                dropped += 1;
            }
        }
        self.dropped += dropped;
        dropped
    }

    /// Takes the oldest results whose JSON adds up to at most `max_bytes`
    /// (at least one, if any is held).
    pub fn take(&mut self, max_bytes: usize) -> Vec<ProbeResult> {
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(&(_, s)) = self.queue.front() {
            if !taken.is_empty() && size + s + 1 > max_bytes {
                break;
            }
            let Some((r, s)) = self.queue.pop_front() else {
                break;
            };
            size += s + 1;
            self.bytes -= s;
            taken.push(r);
        }
        taken
    }

    /// Puts results back at the front, oldest first (a publish that failed).
    /// Limits still hold: what does not fit is dropped and counted.
    pub fn requeue(&mut self, results: Vec<ProbeResult>) -> u64 {
        for r in results.into_iter().rev() {
            let size = encoded_len(&r);
            self.queue.push_front((r, size));
            self.bytes += size;
        }
        let mut dropped = 0;
        while self.queue.len() > self.limits.results || self.bytes > self.limits.bytes {
            // Newest results survive a long outage: drop from the front.
            let Some((_, s)) = self.queue.pop_front() else {
                break;
            };
            self.bytes -= s;
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

/// The JSON size of a result.
pub fn encoded_len(r: &ProbeResult) -> usize {
    serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0)
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
            .map(|r| r.scheduled_at.unix_ms())
            .collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        assert_eq!(all.len(), 5);
        let mut tiny = Buffer::new(Limits::default());
        tiny.push(result(0));
        assert_eq!(tiny.take(1).len(), 1, "one result always fits a take");
    }
}

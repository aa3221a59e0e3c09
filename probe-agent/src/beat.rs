//! Liveness heartbeats: when a loop last made an attempt. The agent's
//! `/healthz` fails only when its scheduler or its publisher stops
//! attempting, never because SQS fails: its buffer is in memory, and a
//! restart would lose it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// When a loop last made an attempt, and whether one is under way.
#[derive(Debug)]
pub struct Beat {
    at: Mutex<Instant>,
    busy: AtomicBool,
}

impl Default for Beat {
    fn default() -> Self {
        Self {
            at: Mutex::new(Instant::now()),
            busy: AtomicBool::new(false),
        }
    }
}

impl Beat {
    /// An attempt now.
    pub fn touch(&self) {
        if let Ok(mut at) = self.at.lock() {
            *at = Instant::now();
        }
    }

    /// Marks an attempt under way (a publish with its own deadlines and
    /// retries), or over.
    pub fn set_busy(&self, busy: bool) {
        if !busy && self.busy.swap(false, Ordering::Relaxed) {
            self.touch();
        } else if busy {
            self.busy.store(true, Ordering::Relaxed);
        }
    }

    /// How long since the last attempt: zero while one is under way.
    pub fn idle(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        self.at.lock().map(|at| at.elapsed()).unwrap_or_default()
    }
}

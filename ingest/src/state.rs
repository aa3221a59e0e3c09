//! Location state (DESIGN §5): each (check, location) pair is passing,
//! degraded or failing, decided by thresholds over its results folded in
//! `scheduled_at` order through a small reorder buffer.
//!
//! Pure: no I/O, no clock. The store keeps a [`Pair`] as JSON in its row.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; every instant in the pure core.
pub type Millis = i64;

/// The state of one (check, location) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairState {
    /// A new pair starts here.
    #[default]
    Passing,
    /// Slow or partly failing, but not failing.
    Degraded,
    /// `failure_threshold` consecutive `down` results.
    Failing,
}

impl PairState {
    /// The small integer stored in a result row.
    pub fn code(self) -> i16 {
        match self {
            PairState::Passing => 0,
            PairState::Degraded => 1,
            PairState::Failing => 2,
        }
    }

    /// The inverse of [`PairState::code`].
    pub fn from_code(code: i16) -> Option<PairState> {
        match code {
            0 => Some(PairState::Passing),
            1 => Some(PairState::Degraded),
            2 => Some(PairState::Failing),
            _ => None,
        }
    }
}

/// A result's outcome as the state machine sees it. An outcome this version
/// does not know counts as `Degraded`: neither proof of health nor of an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `up`.
    Up,
    /// `degraded`, or an unknown outcome.
    Degraded,
    /// `down`.
    Down,
}

impl From<&config::wire::Outcome> for Verdict {
    fn from(o: &config::wire::Outcome) -> Self {
        use config::wire::Outcome;
        match o {
            Outcome::Up => Verdict::Up,
            Outcome::Down => Verdict::Down,
            Outcome::Degraded | Outcome::Other(_) => Verdict::Degraded,
        }
    }
}

/// The shortest reorder buffer: SQS standard queues, several ingest workers
/// and retried batches reorder a pair's results by a few slots at most.
pub const MIN_BUFFER: u32 = 8;

/// The thresholds of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive `down` results before failing (and bad ones before degraded).
    pub failure: u32,
    /// Consecutive `up` results before passing again.
    pub success: u32,
}

impl Thresholds {
    /// R, the reorder buffer's length: the largest threshold, and at least
    /// [`MIN_BUFFER`], so results up to that many slots late still count.
    pub fn buffer_len(self) -> usize {
        self.failure.max(self.success).max(MIN_BUFFER) as usize
    }
}

/// A fold checkpoint: the state and the current runs of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// The state after the results folded so far.
    pub state: PairState,
    /// Consecutive `down` results at the end.
    pub downs: u32,
    /// Consecutive `degraded` or `down` results at the end.
    pub bads: u32,
    /// Consecutive `up` results at the end.
    pub ups: u32,
}

impl Fold {
    /// Folds one more result in.
    pub fn step(self, verdict: Verdict, t: Thresholds) -> Fold {
        let mut f = self;
        match verdict {
            Verdict::Up => {
                f.ups = f.ups.saturating_add(1);
                f.downs = 0;
                f.bads = 0;
            }
            Verdict::Degraded => {
                f.ups = 0;
                f.downs = 0;
                f.bads = f.bads.saturating_add(1);
            }
            Verdict::Down => {
                f.ups = 0;
                f.downs = f.downs.saturating_add(1);
                f.bads = f.bads.saturating_add(1);
            }
        }
        if f.downs >= t.failure {
            f.state = PairState::Failing;
        } else if f.bads >= t.failure && f.state != PairState::Failing {
            f.state = PairState::Degraded;
        } else if f.ups >= t.success {
            f.state = PairState::Passing;
        }
        f
    }
}

/// One result as the reorder buffer keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its `scheduled_at`.
    pub at: Millis,
    /// Its outcome.
    pub verdict: Verdict,
}

/// A pair's persistent state: a checkpoint and the newest R results after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The fold of every result older than the buffer.
    pub base: Fold,
    /// The newest results, oldest first, at most R.
    pub buffer: Vec<Entry>,
}

/// What admitting a result did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Put in place; the states from this `scheduled_at` on were recomputed.
    Placed {
        /// The earliest `scheduled_at` whose state may have changed.
        from: Millis,
    },
    /// Older than the whole (full) buffer: stored, but moves no state.
    TooOld,
    /// A result for this slot was already admitted.
    Duplicate,
}

impl Pair {
    /// Admits a result: in order, or out of order while it is newer than the
    /// oldest buffered one; older ones are refused ([`Admission::TooOld`]).
    pub fn admit(&mut self, entry: Entry, t: Thresholds) -> Admission {
        let r = t.buffer_len();
        let pos = match self.buffer.binary_search_by_key(&entry.at, |e| e.at) {
            Ok(_) => return Admission::Duplicate,
            Err(pos) => pos,
        };
        if pos == 0 && self.buffer.len() >= r {
            return Admission::TooOld;
        }
        self.buffer.insert(pos, entry);
        while self.buffer.len() > r {
            let oldest = self.buffer.remove(0);
            self.base = self.base.step(oldest.verdict, t);
        }
        Admission::Placed { from: entry.at }
    }

    /// The state after each buffered result, oldest first.
    pub fn states(&self, t: Thresholds) -> Vec<(Millis, PairState)> {
        let mut fold = self.base;
        self.buffer
            .iter()
            .map(|e| {
                fold = fold.step(e.verdict, t);
                (e.at, fold.state)
            })
            .collect()
    }

    /// The state after every result admitted so far.
    pub fn current(&self, t: Thresholds) -> PairState {
        self.states(t).last().map_or(self.base.state, |s| s.1)
    }

    /// The newest admitted `scheduled_at`.
    pub fn newest(&self) -> Option<Millis> {
        self.buffer.last().map(|e| e.at)
    }
}

impl Pair {
    /// The stored form: state, the three runs, then each buffered result's
    /// `scheduled_at` and verdict; little-endian, 13 + 9 bytes a result.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + 9 * self.buffer.len());
        out.push(self.base.state.code() as u8);
        for run in [self.base.downs, self.base.bads, self.base.ups] {
            out.extend_from_slice(&run.to_le_bytes());
        }
        for e in &self.buffer {
            out.extend_from_slice(&e.at.to_le_bytes());
            out.push(match e.verdict {
                Verdict::Up => 0,
                Verdict::Degraded => 1,
                Verdict::Down => 2,
            });
        }
        out
    }

    /// The inverse of [`Pair::encode`]; `None` for bytes not of that shape.
    pub fn decode(bytes: &[u8]) -> Option<Pair> {
        let (head, tail) = bytes.split_at_checked(13)?;
        if !tail.len().is_multiple_of(9) {
            return None;
        }
        let run = |i: usize| head.get(i..i + 4)?.try_into().ok().map(u32::from_le_bytes);
        let base = Fold {
            state: PairState::from_code(i16::from(head[0]))?,
            downs: run(1)?,
            bads: run(5)?,
            ups: run(9)?,
        };
        let mut buffer = Vec::with_capacity(tail.len() / 9);
        for c in tail.chunks_exact(9) {
            let at = i64::from_le_bytes(c[..8].try_into().ok()?);
            let verdict = match c[8] {
                0 => Verdict::Up,
                1 => Verdict::Degraded,
                2 => Verdict::Down,
                _ => return None,
            };
            buffer.push(Entry { at, verdict });
        }
        Some(Pair { base, buffer })
    }
}

/// The states of a pair folded from scratch, in `scheduled_at` order: the
/// reference [`Pair::admit`] must agree with.
pub fn fold_sorted(entries: &[Entry], t: Thresholds) -> Vec<(Millis, PairState)> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.at);
    sorted.dedup_by_key(|e| e.at);
    let mut fold = Fold::default();
    sorted
        .iter()
        .map(|e| {
            fold = fold.step(e.verdict, t);
            (e.at, fold.state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    const T22: Thresholds = Thresholds {
        failure: 2,
        success: 2,
    };

    fn run(verdicts: &[Verdict], t: Thresholds) -> Vec<PairState> {
        let entries: Vec<_> = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| Entry {
                at: i as Millis * 1000,
                verdict: *v,
            })
            .collect();
        fold_sorted(&entries, t).into_iter().map(|s| s.1).collect()
    }

    #[test]
    fn thresholds_decide_failing_degraded_and_passing() {
        use PairState::{Failing, Passing};
        assert_eq!(
            run(&[Down, Down, Up, Up], T22),
            [Passing, Failing, Failing, Passing]
        );
        assert_eq!(
            run(&[Degraded, Down, Down, Up], T22),
            [Passing, PairState::Degraded, Failing, Failing]
        );
        assert_eq!(
            run(&[Down, Up, Down, Up], T22),
            [Passing, Passing, Passing, Passing],
            "alternating never reaches a threshold"
        );
        let t13 = Thresholds {
            failure: 1,
            success: 3,
        };
        assert_eq!(
            run(&[Down, Up, Up, Up], t13),
            [Failing, Failing, Failing, Passing]
        );
    }

    #[test]
    fn a_failing_pair_is_not_demoted_to_degraded_by_degraded_results() {
        use PairState::{Failing, Passing};
        assert_eq!(
            run(&[Down, Down, Degraded, Degraded, Up, Up], T22),
            [Passing, Failing, Failing, Failing, Failing, Passing]
        );
    }

    #[test]
    fn pairs_round_trip_through_their_stored_bytes() {
        let mut p = Pair::default();
        for (i, v) in [Down, Down, Up, Degraded].into_iter().enumerate() {
            p.admit(
                Entry {
                    at: 1_700_000_000_000 + i as Millis,
                    verdict: v,
                },
                T22,
            );
        }
        assert_eq!(Pair::decode(&p.encode()), Some(p.clone()));
        assert_eq!(
            Pair::decode(&Pair::default().encode()),
            Some(Pair::default())
        );
        assert_eq!(Pair::decode(&[0; 12]), None);
        let mut bad = p.encode();
        bad.push(7);
        assert_eq!(Pair::decode(&bad), None);
    }

    #[test]
    fn out_of_order_within_the_buffer_is_put_in_place() {
        let mut p = Pair::default();
        let e = |at, verdict| Entry { at, verdict };
        assert_eq!(
            p.admit(e(2000, Down), T22),
            Admission::Placed { from: 2000 }
        );
        assert_eq!(
            p.admit(e(1000, Down), T22),
            Admission::Placed { from: 1000 }
        );
        assert_eq!(p.current(T22), PairState::Failing);
        assert_eq!(p.admit(e(1000, Up), T22), Admission::Duplicate);
        for at in 3..=10 {
            assert_eq!(
                p.admit(e(at * 1000, Up), T22),
                Admission::Placed { from: at * 1000 }
            );
        }
        assert_eq!(p.buffer.len(), T22.buffer_len());
        assert_eq!(
            p.admit(e(2500, Up), T22),
            Admission::TooOld,
            "after R newer ones"
        );
        assert_eq!(p.newest(), Some(10_000));
        assert_eq!(p.current(T22), PairState::Passing);
    }
}

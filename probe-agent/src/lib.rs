//! The probe agent: probes that gather facts with per-phase timings, and the
//! pure judgement of those facts.
//!
//! `Prober::run` probes one check once and returns a complete `ProbeResult`.
//! Scheduling, fleet sharding and publishing come with the agent.

pub mod agent;
pub mod beat;
pub mod buffer;
pub mod discovery;
pub mod evaluate;
pub mod observation;
/// Which agents probe which check: one rendezvous function, in `config`,
/// shared with ingest, which recomputes the assignment to count votes.
pub use config::fleet;
pub mod probe;
pub mod publish;
pub mod scheduler;
pub mod spool;
pub mod telemetry;

pub use evaluate::{Verdict, evaluate};
pub use probe::{Observation, Prober};

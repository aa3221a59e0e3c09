//! Ingest: consumes result batches (SQS, or a channel in standalone mode),
//! stores them, and decides each check's status, uptime and incidents.
//!
//! The truth of the page is decided by pure modules: [`state`] (locations),
//! [`status`] (quorum and precedence), [`incident`], [`uptime`] and
//! [`timeline`] (one check's step); everything else moves data in and out.

pub mod incident;
pub mod screen;
pub mod state;
pub mod status;
pub mod store;
pub mod timeline;
pub mod uptime;

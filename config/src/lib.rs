//! The shared contract of statuspage.
//!
//! - The check definitions: YAML ([`load`]) into a validated [`Catalog`],
//!   with every problem as a positioned [`Diagnostic`].
//! - The JSON Schema of that YAML ([`schema`]).
//! - The wire types agents send to ingest ([`wire`]).
//!
//! This crate does no network or database I/O; it reads config files only.

pub mod catalog;
mod decode;
pub mod defaults;
pub mod diagnostic;
pub mod exposition;
pub mod fleet;
mod load;
pub mod notify;
mod raw;
pub mod schema;
mod source;
pub mod units;
mod validate;
pub mod wire;

pub use catalog::{Catalog, Check, CheckId, Kind, Probe};
pub use diagnostic::{Diagnostic, Diagnostics, Mark, Origin};
pub use load::{
    Fingerprint, Kept, MAX_FILE_BYTES, Sections, fingerprint, load, load_failed, load_reusing,
    load_sections, load_str,
};

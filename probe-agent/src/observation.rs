//! What a probe saw: facts only, gathered by `probe/` and judged by
//! `evaluate`, which both use these types (and neither uses the other's
//! internals).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use config::wire::{Phases, Reason};
use std::time::Duration;

/// What a probe saw: facts only; `evaluate` judges them.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Per-phase timings (µs); a phase that did not happen is absent.
    pub phases: Phases,
    /// The whole probe.
    pub duration: Duration,
    /// Why the probe could not complete, when it could not.
    pub failure: Option<Failure>,
    /// The phase the probe was in, so a deadline names the right reason.
    pub stage: Stage,
    /// HTTP facts of the final response.
    pub http: Option<HttpFacts>,
    /// TLS facts, also from a failed handshake when a chain was sent.
    pub tls: Option<TlsFacts>,
    /// DNS facts.
    pub dns: Option<DnsFacts>,
    /// What a TCP target replied, as text.
    pub tcp_reply: Option<String>,
}

/// The phase a probe is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    /// Resolving a name.
    #[default]
    Dns,
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Anything after the connection is up.
    Exchange,
}

/// A target that did not answer as a target should: data, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The reason code.
    pub reason: Reason,
    /// A human sentence.
    pub message: String,
}

impl Failure {
    /// A failure with its reason and sentence.
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Facts of an HTTP response.
#[derive(Clone, Debug, Default)]
pub struct HttpFacts {
    /// The status code.
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, at most `max_body` bytes.
    pub body: Bytes,
    /// Redirects followed.
    pub redirects: u32,
}

/// Facts of a TLS handshake.
#[derive(Clone, Debug, Default)]
pub struct TlsFacts {
    /// The name verified (SNI).
    pub host: String,
    /// `1.2` or `1.3`; empty when the handshake failed.
    pub version: String,
    /// The cipher suite.
    pub cipher: String,
    /// The leaf's subject.
    pub leaf_subject: String,
    /// The leaf's issuer.
    pub leaf_issuer: String,
    /// The leaf's not-after.
    pub leaf_not_after: Option<DateTime<Utc>>,
    /// The earliest not-after in the chain.
    pub chain_not_after: Option<DateTime<Utc>>,
}

/// Facts of a DNS answer.
#[derive(Clone, Debug, Default)]
pub struct DnsFacts {
    /// `NOERROR`, `NXDOMAIN`, ...
    pub rcode: String,
    /// The answers of the queried type, as text.
    pub answers: Vec<String>,
}

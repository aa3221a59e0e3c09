//! The wire format: what agents send to ingest, one SQS message a batch.
//!
//! Additive only. Unknown fields are ignored (never `deny_unknown_fields`
//! here) and unknown enum values decode into `Other`, so agents and ingest
//! of neighbouring versions interoperate.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::io::{Read, Write};

/// The version of the batch format this crate writes.
pub const VERSION: u32 = 1;
/// The SQS message attribute that names the body's encoding.
pub const ENCODING_ATTRIBUTE: &str = "statuspage-encoding";
/// The encoding value for a gzip-compressed, base64-encoded JSON body.
pub const GZIP_BASE64: &str = "gzip+base64";
/// `message` is cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 512;
/// An assertion's `actual` is cut to this many characters.
pub const MAX_ACTUAL_CHARS: usize = 256;
/// The default cap on one SQS message (256 KiB, SQS's own limit).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// How much larger than a message its body may decompress: the bound on a
/// gzip bomb, and the most an agent packs into one compressed message.
pub const MAX_EXPANSION: usize = 16;

/// The decompressed size a message of at most `max_message_bytes` may
/// reach (4 MiB at the default). Agents and ingest both use it, so what an
/// agent sends is always what ingest reads.
pub fn decompressed_cap(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(MAX_EXPANSION)
}

/// An instant, UTC, with millisecond precision: `2026-12-01T02:00:00.000Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The instant, cut to whole milliseconds.
    pub fn new(t: DateTime<Utc>) -> Self {
        Self::from_unix_ms(t.timestamp_millis()).unwrap_or(Timestamp(t))
    }

    /// From milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: i64) -> Option<Self> {
        Utc.timestamp_millis_opt(ms).single().map(Timestamp)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The instant.
    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp::new(t.with_timezone(&Utc)))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "expected an RFC 3339 timestamp, found {text:?}: {e}"
                ))
            })
    }
}

/// One message: a batch of results from one agent. No results is a heartbeat.
///
/// An agent holds its results as their JSON until they are delivered
/// (`ResultBatch<Box<RawValue>>`, written as it is): a publish that fails
/// keeps them without decoding or encoding them again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultBatch<R = ProbeResult> {
    /// The format version, [`VERSION`].
    pub v: u32,
    /// Who sent it.
    pub agent: AgentInfo,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The results; empty for a heartbeat.
    #[serde(default = "Vec::new")]
    pub results: Vec<R>,
}

/// An agent's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Stable id (the node name in Kubernetes); never contains `/`.
    pub id: String,
    /// Its availability zone, or empty.
    #[serde(default)]
    pub zone: String,
    /// Its region, or empty.
    #[serde(default)]
    pub region: String,
    /// What the public page calls its location (`--location-label`); empty
    /// for its zone. Never its id: a node name carries internal addresses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Everything as expected.
    Up,
    /// Working, but slower than `degraded_over`.
    Degraded,
    /// Failed.
    Down,
    /// A value from a newer version.
    Other(String),
}

/// Why a probe had its outcome: a closed, documented set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// All assertions held.
    Ok,
    /// The name does not exist.
    DnsNxdomain,
    /// The DNS server did not answer in time.
    DnsTimeout,
    /// The DNS server failed.
    DnsServfail,
    /// The port refused the connection.
    ConnectRefused,
    /// The connection was not established in time.
    ConnectTimeout,
    /// The TLS handshake failed for a reason other than the certificate.
    TlsHandshake,
    /// A certificate of the chain has expired.
    TlsExpired,
    /// The chain is not trusted.
    TlsUntrusted,
    /// The certificate is not valid for the host name.
    TlsHostname,
    /// The HTTP status was not accepted.
    HttpStatus,
    /// An assertion failed.
    Assertion,
    /// The probe ran past its timeout.
    Timeout,
    /// The body was larger than `max_body`.
    BodyTooLarge,
    /// More redirects than `max_redirects`, or a loop.
    TooManyRedirects,
    /// The response was not valid HTTP (a malformed header, bad chunked encoding, a cut body).
    HttpProtocol,
    /// A redirect that would carry the check's secrets off its origin or
    /// over plain HTTP: not followed.
    HttpRedirectInsecure,
    /// A value from a newer version.
    Other(String),
}

macro_rules! wire_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// Every known value, in documented order.
            pub const KNOWN: &'static [&'static str] = &[$($text),*];

            /// The wire text.
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$variant => $text,)*
                    $ty::Other(s) => s,
                }
            }

            /// Parses wire text; an unknown value is kept as `Other`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => $ty::$variant,)*
                    other => $ty::Other(other.to_string()),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty::parse(&String::deserialize(d)?))
            }
        }
    };
}

wire_enum!(Outcome { Up => "up", Degraded => "degraded", Down => "down" });
wire_enum!(Reason {
    Ok => "ok",
    DnsNxdomain => "dns_nxdomain",
    DnsTimeout => "dns_timeout",
    DnsServfail => "dns_servfail",
    ConnectRefused => "connect_refused",
    ConnectTimeout => "connect_timeout",
    TlsHandshake => "tls_handshake",
    TlsExpired => "tls_expired",
    TlsUntrusted => "tls_untrusted",
    TlsHostname => "tls_hostname",
    HttpStatus => "http_status",
    Assertion => "assertion",
    Timeout => "timeout",
    BodyTooLarge => "body_too_large",
    TooManyRedirects => "too_many_redirects",
    HttpProtocol => "http_protocol",
    HttpRedirectInsecure => "http_redirect_insecure",
});

/// One probe's result: facts with per-phase timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `{check}/{agent}/{scheduled_at as unix ms}`; a retried slot repeats it.
    pub id: String,
    /// The check's id.
    pub check: String,
    /// A hash of the check's definition.
    pub config_hash: String,
    /// The slot this probe ran for.
    pub scheduled_at: Timestamp,
    /// When the probe really started.
    pub started_at: Timestamp,
    /// The check's interval, or the gap to its next cron slot, in µs.
    pub interval_us: u64,
    /// How many agents the fleet assigned to the check.
    pub assigned: u32,
    /// The whole probe, in µs.
    pub duration_us: u64,
    /// up, degraded or down.
    pub outcome: Outcome,
    /// Why.
    pub reason: Reason,
    /// A human message, at most [`MAX_MESSAGE_CHARS`], secrets redacted.
    #[serde(default, deserialize_with = "capped_message")]
    pub message: String,
    /// Per-phase timings; a phase that did not happen is absent.
    #[serde(default)]
    pub phases: Phases,
    /// Protocol facts.
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
    /// The assertions and how each went.
    #[serde(default)]
    pub assertions: Vec<Assertion>,
}

impl ProbeResult {
    /// A result for one slot of `check` from `agent`: `up`/`ok`, started on
    /// time, nothing measured yet. The prober fills in what it saw.
    pub fn new(
        check: &str,
        config_hash: impl std::fmt::Display,
        agent: &str,
        scheduled_at: Timestamp,
        interval_us: u64,
        assigned: u32,
    ) -> Self {
        Self {
            id: Self::make_id(check, agent, scheduled_at),
            check: check.to_string(),
            config_hash: config_hash.to_string(),
            scheduled_at,
            started_at: scheduled_at,
            interval_us,
            assigned,
            duration_us: 0,
            outcome: Outcome::Up,
            reason: Reason::Ok,
            message: String::new(),
            phases: Phases::default(),
            facts: Facts::default(),
            assertions: Vec::new(),
        }
    }

    /// The deterministic result id.
    pub fn make_id(check: &str, agent: &str, scheduled_at: Timestamp) -> String {
        format!("{check}/{agent}/{}", scheduled_at.unix_ms())
    }

    /// Sets `message`, cut to [`MAX_MESSAGE_CHARS`].
    pub fn set_message(&mut self, message: &str) {
        self.message = cap(message, MAX_MESSAGE_CHARS);
    }

    /// Makes every free-text field visible (see [`visible`]): the message,
    /// the assertions, the facts, the hash and an unknown reason or outcome.
    /// Agents call it where a result is built and ingest again where it
    /// screens one, since an older agent may not have.
    pub fn make_visible(&mut self) {
        let fix = |s: &mut String| {
            if let Cow::Owned(v) = visible(s) {
                *s = v;
            }
        };
        fix(&mut self.config_hash);
        fix(&mut self.message);
        if let Reason::Other(r) = &mut self.reason {
            fix(r);
        }
        if let Outcome::Other(o) = &mut self.outcome {
            fix(o);
        }
        for a in &mut self.assertions {
            fix(&mut a.name);
            fix(&mut a.actual);
        }
        let f = &mut self.facts;
        for s in [
            &mut f.http_version,
            &mut f.tls_version,
            &mut f.tls_cipher,
            &mut f.cert_subject,
            &mut f.cert_issuer,
            &mut f.dns_rcode,
        ]
        .into_iter()
        .flatten()
        {
            fix(s);
        }
        for s in f.dns_answers.iter_mut().flatten() {
            fix(s);
        }
    }
}

/// `text` with every control character made visible: a C0 control or DEL
/// becomes its Unicode control picture (U+0000 is shown as `␀`, a newline
/// as `␊`), and a C1 control becomes U+FFFD. A target's bytes are data to
/// show, never bytes that a database, a terminal or a log may act on (and
/// PostgreSQL's text and jsonb refuse U+0000). Borrowed when nothing changes.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c as u32 {
                n @ 0x00..=0x1f => char::from_u32(0x2400 + n).unwrap_or('\u{fffd}'),
                0x7f => '\u{2421}',
                _ if c.is_control() => '\u{fffd}',
                _ => c,
            })
            .collect(),
    )
}

/// The parts of a result id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultId {
    /// The check's id.
    pub check: String,
    /// The agent's id.
    pub agent: String,
    /// The slot.
    pub scheduled_at: Timestamp,
}

impl ResultId {
    /// Splits `check/agent/ms`; `None` when it is not of that shape.
    pub fn parse(id: &str) -> Option<ResultId> {
        let mut parts = id.splitn(3, '/');
        let (check, agent, ms) = (parts.next()?, parts.next()?, parts.next()?);
        if check.is_empty() || agent.is_empty() || ms.contains('/') {
            return None;
        }
        Some(ResultId {
            check: check.to_string(),
            agent: agent.to_string(),
            scheduled_at: Timestamp::from_unix_ms(ms.parse().ok()?)?,
        })
    }
}

/// Per-phase timings in µs; a phase that did not happen is absent, not 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    /// Name resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_us: Option<u64>,
    /// TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<u64>,
    /// TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<u64>,
    /// From request sent to the first response byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_us: Option<u64>,
    /// Reading the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_us: Option<u64>,
}

/// Protocol facts a probe observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The final HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The HTTP version, such as `HTTP/2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// How many redirects were followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<u32>,
    /// The negotiated TLS version, such as `1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The negotiated cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cipher: Option<String>,
    /// The leaf certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    /// The leaf certificate's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_issuer: Option<String>,
    /// The leaf certificate's not-after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<Timestamp>,
    /// The earliest not-after in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_not_after: Option<Timestamp>,
    /// The DNS response code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_rcode: Option<String>,
    /// The DNS answers, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_answers: Option<Vec<String>>,
}

impl Facts {
    /// True when nothing was observed.
    pub fn is_empty(&self) -> bool {
        *self == Facts::default()
    }
}

/// One assertion and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assertion {
    /// What was asserted, such as `status in [2xx]`.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen, at most [`MAX_ACTUAL_CHARS`].
    #[serde(default, deserialize_with = "capped_actual")]
    pub actual: String,
}

impl Assertion {
    /// An assertion with `actual` cut to [`MAX_ACTUAL_CHARS`].
    pub fn new(name: impl Into<String>, passed: bool, actual: &str) -> Self {
        Self {
            name: name.into(),
            passed,
            actual: cap(actual, MAX_ACTUAL_CHARS),
        }
    }
}

/// `text` cut to `max` characters, the cut marked with `…`.
pub fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn capped_message<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(cap(&String::deserialize(d)?, MAX_MESSAGE_CHARS))
}

fn capped_actual<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(cap(&String::deserialize(d)?, MAX_ACTUAL_CHARS))
}

/// Why a message body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The encoding attribute names an encoding this version does not know.
    #[error("unknown encoding {0:?}: expected none or \"{GZIP_BASE64}\"")]
    UnknownEncoding(String),
    /// The base64 text is invalid.
    #[error("the body is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The gzip stream is invalid.
    #[error("the body is not valid gzip: {0}")]
    Gzip(std::io::Error),
    /// The body decompresses to more than the cap.
    #[error("the body decompresses to more than {0} bytes")]
    TooLarge(usize),
    /// The JSON is invalid or not a batch.
    #[error("the body is not a result batch: {0}")]
    Json(#[from] serde_json::Error),
}

/// An encoded message body and its encoding attribute (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The SQS message body.
    pub body: String,
    /// The value of [`ENCODING_ATTRIBUTE`], when compressed.
    pub encoding: Option<&'static str>,
}

/// Encodes a batch as plain JSON, or as gzip+base64 when `compress`.
pub fn encode<R: Serialize>(batch: &ResultBatch<R>, compress: bool) -> Result<Encoded, WireError> {
    let json = serde_json::to_vec(batch)?;
    if !compress {
        // serde_json writes UTF-8.
        let body =
            String::from_utf8(json).map_err(|e| WireError::Gzip(std::io::Error::other(e)))?;
        return Ok(Encoded {
            body,
            encoding: None,
        });
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&json).map_err(WireError::Gzip)?;
    let bytes = gz.finish().map_err(WireError::Gzip)?;
    Ok(Encoded {
        body: base64::engine::general_purpose::STANDARD.encode(bytes),
        encoding: Some(GZIP_BASE64),
    })
}

/// Decodes an SQS message body of at most `max_message_bytes`: a plain
/// body may be that long, and a compressed one may decompress to
/// [`decompressed_cap`] of it.
pub fn decode_message(
    body: &str,
    encoding: Option<&str>,
    max_message_bytes: usize,
) -> Result<ResultBatch, WireError> {
    match encoding {
        None | Some("") => decode(body, encoding, max_message_bytes),
        _ => decode(body, encoding, decompressed_cap(max_message_bytes)),
    }
}

/// Decodes a body in either form; the decompressed JSON may be at most `max_bytes`.
pub fn decode(
    body: &str,
    encoding: Option<&str>,
    max_bytes: usize,
) -> Result<ResultBatch, WireError> {
    match encoding {
        None | Some("") => {
            if body.len() > max_bytes {
                return Err(WireError::TooLarge(max_bytes));
            }
            Ok(serde_json::from_str(body)?)
        }
        Some(GZIP_BASE64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(body.trim())?;
            let mut json = Vec::new();
            GzDecoder::new(bytes.as_slice())
                .take(max_bytes as u64 + 1)
                .read_to_end(&mut json)
                .map_err(WireError::Gzip)?;
            if json.len() > max_bytes {
                return Err(WireError::TooLarge(max_bytes));
            }
            Ok(serde_json::from_slice(&json)?)
        }
        Some(other) => Err(WireError::UnknownEncoding(other.to_string())),
    }
}

//! The validated catalog: types that cannot hold a wrong value.
//!
//! Built only by [`crate::load`]. Everything later (agent, ingest, dashboard)
//! reads checks from here.

use crate::defaults::{Locations, Quorum};
use crate::diagnostic::Origin;
pub use crate::raw::{DnsProtocol, IpFamily, Method, Rcode, RecordType, StatusPattern, TlsVersion};
use chrono::{DateTime, Utc};
use regex::Regex;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Every check, group and maintenance window, from one or more files.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// Groups in page order; a group named in two files is one group.
    pub groups: Vec<Group>,
    /// Every check, in page order; shared, so an agent schedules them
    /// without a copy.
    pub checks: Vec<Arc<Check>>,
    /// Maintenance windows from the config (`source: config`).
    pub maintenance: Vec<MaintenanceWindow>,
    /// Notification channels and routes (empty for a role that reads
    /// only the checks: [`crate::Sections::Checks`]).
    pub notifications: crate::notify::Notifications,
    /// Public email subscriptions, when enabled (read by every role but the
    /// agent and `check`).
    pub subscriptions: Option<crate::notify::Subscriptions>,
    /// The files the catalog was read from.
    pub files: Vec<PathBuf>,
}

impl Catalog {
    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.id.as_str() == id)
            .map(|c| &**c)
    }

    /// The checks that may appear on anything public.
    pub fn public_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.public).map(|c| &**c)
    }
}

/// A check id: lowercase letters, digits and single dashes, at most 64
/// characters. Shared, not copied: the check and its group's list hold the
/// same text (an agent may hold 100,000).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckId(Arc<str>);

impl serde::Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl CheckId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 64;

    /// Accepts a valid slug, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<CheckId, String> {
        let valid = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-')
            && !text.contains("--");
        if valid {
            Ok(CheckId(text.into()))
        } else {
            Err(format!(
                "expected an id of lowercase letters, digits and single dashes (at most {} characters), such as `{}`",
                Self::MAX_LEN,
                slug(text).unwrap_or_else(|| "website-homepage".into())
            ))
        }
    }

    /// The default id of a check: a slug of its group and name.
    pub fn from_names(group: &str, name: &str) -> Option<CheckId> {
        slug(&format!("{group} {name}")).map(|s| CheckId(s.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase ASCII letters and digits, with single dashes between words;
/// `None` when nothing is left.
pub fn slug(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if out.len() >= CheckId::MAX_LEN {
                break;
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// A group of checks on the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The name the page shows.
    pub name: String,
    /// A line of text under the name.
    pub description: Option<String>,
    /// Its checks, in order.
    pub checks: Vec<CheckId>,
}

/// One validated check.
#[derive(Clone)]
pub struct Check {
    /// The stable id.
    pub id: CheckId,
    /// The name the page shows.
    pub name: String,
    /// The name of its group, shared by the group's checks.
    pub group: std::sync::Arc<str>,
    /// A line of text shown with it.
    pub description: Option<String>,
    /// Whether anything public may show it.
    pub public: bool,
    /// When it runs.
    pub schedule: Schedule,
    /// The hard deadline of one probe; below the schedule's period.
    pub timeout: Duration,
    /// How many agents probe it.
    pub locations: Locations,
    /// How many failing locations make it down.
    pub quorum: Quorum,
    /// Consecutive `down` results before a location fails.
    pub failure_threshold: u32,
    /// Consecutive `up` results before a location passes again.
    pub success_threshold: u32,
    /// How long a resolved automatic incident may reopen.
    pub reopen_window: Duration,
    /// Its service level objective, if it has one.
    pub slo: Option<Slo>,
    /// What to probe and what to expect.
    pub probe: Probe,
    /// A hash of this check's definition (with the defaults it inherited).
    pub config_hash: ConfigHash,
    /// Values that came from `${VAR}`: never shown anywhere.
    pub secrets: Secrets,
    /// Where it was defined.
    pub origin: Origin,
}

/// A hash of a check's definition: the first 8 bytes of its SHA-256, written
/// as 16 hexadecimal digits (as results and the database carry it). Eight
/// bytes inline, not a string per check: 100,000 checks save about 5 MiB.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigHash(pub [u8; 8]);

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A service level objective: the share of observed time a check must be
/// up (degraded counts as up) over a rolling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slo {
    /// The objective in parts per million: `999000` for 99.9%.
    pub target_ppm: u32,
    /// The rolling window in days: 7, 28 or 30.
    pub window_days: u32,
}

impl Slo {
    /// The windows an objective may have, in days.
    pub const WINDOWS: [u32; 3] = [7, 28, 30];

    /// The objective as a ratio: `0.999`.
    pub fn target(self) -> f64 {
        f64::from(self.target_ppm) / 1e6
    }

    /// The window as YAML writes it: `30d`.
    pub fn window(self) -> String {
        format!("{}d", self.window_days)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} over {} days",
            crate::units::format_percent_ppm(self.target_ppm),
            self.window_days
        )
    }
}

impl fmt::Debug for Check {
    // Leaves out the probe, whose URL or headers may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("id", &self.id)
            .field("kind", &self.probe.kind())
            .field("schedule", &self.schedule)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// `text` with every secret of this check replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }
}

/// Values interpolated from the environment. `Debug` never shows them.
/// Most checks have none: they cost one pointer then.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Option<Box<Held>>);

#[derive(Clone, Default, PartialEq, Eq)]
struct Held {
    values: Vec<String>,
    paths: Vec<String>,
}

impl Secrets {
    /// Values shorter than this are not worth hiding and would garble messages.
    pub const MIN_LEN: usize = 4;

    pub(crate) fn new(mut values: Vec<String>, paths: Vec<String>) -> Self {
        values.retain(|v| v.len() >= Self::MIN_LEN);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        values.dedup();
        if values.is_empty() && paths.is_empty() {
            return Self(None);
        }
        Self(Some(Box::new(Held { values, paths })))
    }

    fn values(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |h| &h.values)
    }

    /// The key paths that hold a secret, such as `groups[0].checks[1].http.headers.Authorization`.
    pub fn paths(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |h| &h.paths)
    }

    /// True when the check has no secret.
    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    /// True when `text` holds a secret value.
    pub fn appear_in(&self, text: &str) -> bool {
        self.values().iter().any(|v| text.contains(v.as_str()))
    }

    /// True when the key `suffix` of the check (such as `http.body`) holds
    /// a `${VAR}` value, however short.
    pub fn at_key(&self, suffix: &str) -> bool {
        self.paths().iter().any(|p| {
            p == suffix
                || p.strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }

    /// True when any value of the check came from `${VAR}`.
    pub fn any(&self) -> bool {
        !self.paths().is_empty()
    }

    /// `text` with each secret value (longest first) replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets([redacted] x{})", self.values().len())
    }
}

/// When a check runs.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every so often, from a start spread over the interval.
    Interval(Duration),
    /// On a cron schedule, in UTC (boxed: a parsed schedule is large, and
    /// an agent may hold 100,000 checks).
    Cron(Box<CronSchedule>),
}

impl Schedule {
    /// The interval, or the shortest gap between two cron slots.
    pub fn period(&self) -> Duration {
        match self {
            Schedule::Interval(d) => *d,
            Schedule::Cron(c) => c.min_gap,
        }
    }
}

/// A parsed cron schedule.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    /// The expression as written (a 5-field line is kept as written).
    pub expression: String,
    /// The parsed schedule (always with a seconds field).
    pub schedule: cron::Schedule,
    /// The shortest gap between two consecutive slots.
    pub min_gap: Duration,
}

/// The kind of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// HTTP or HTTPS.
    Http,
    /// A TCP connection.
    Tcp,
    /// A TLS handshake.
    Tls,
    /// A DNS query.
    Dns,
}

impl Kind {
    /// The YAML key and metric label of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Dns => "dns",
        }
    }
}

/// What to probe and what to expect of it. Each kind is boxed, so a check
/// costs only the size of its own kind (an agent may hold 100,000).
#[derive(Clone, Debug)]
pub enum Probe {
    /// An HTTP or HTTPS request.
    Http(Box<HttpProbe>),
    /// A TCP connection.
    Tcp(Box<TcpProbe>),
    /// A TLS handshake.
    Tls(Box<TlsProbe>),
    /// A DNS query.
    Dns(Box<DnsProbe>),
}

impl Probe {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Probe::Http(_) => Kind::Http,
            Probe::Tcp(_) => Kind::Tcp,
            Probe::Tls(_) => Kind::Tls,
            Probe::Dns(_) => Kind::Dns,
        }
    }
}

/// Thresholds on the whole probe's duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Down when the probe takes longer.
    pub response_time_under: Option<Duration>,
    /// Degraded when the probe takes longer.
    pub degraded_over: Option<Duration>,
}

/// An HTTP probe.
///
/// An agent may hold 100,000 of these, and most set nothing but a URL and
/// a status or body assertion: what few checks set (request headers and
/// body, TLS settings, the rarer assertions) costs one pointer when unset,
/// and is read through methods.
#[derive(Clone, Debug)]
pub struct HttpProbe {
    /// The URL (http or https, with a host).
    pub url: Url,
    /// The method.
    pub method: Method,
    /// Redirects to follow; 0 follows none.
    pub max_redirects: u32,
    /// The most body bytes read.
    pub max_body: u64,
    /// The IP family tried first.
    pub prefer_ip: IpFamily,
    /// Whether the other family is tried when the first has no address.
    pub ip_fallback: bool,
    /// Whether HTTP/2 is offered through ALPN.
    pub http2: bool,
    /// Request headers and body, when it sends any; read them with
    /// [`HttpProbe::headers`] and [`HttpProbe::body`].
    pub request: Option<Box<HttpRequest>>,
    /// TLS client settings other than the defaults; read them with
    /// [`HttpProbe::tls`].
    pub tls: Option<Box<ClientTls>>,
    /// Assertions.
    pub expect: HttpExpect,
}

/// What an HTTP probe sends besides its method and URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// Request headers, in order; names are valid tokens, values have no line breaks.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Option<String>,
}

/// The TLS client settings of a probe that sets none.
static DEFAULT_TLS: ClientTls = ClientTls {
    ca_file: None,
    client_cert: None,
    server_name: None,
    insecure_skip_verify: false,
};

impl HttpProbe {
    /// The TLS client settings, defaults included.
    pub fn tls(&self) -> &ClientTls {
        self.tls.as_deref().unwrap_or(&DEFAULT_TLS)
    }

    /// Request headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        self.request.as_deref().map_or(&[], |r| &r.headers)
    }

    /// The request body.
    pub fn body(&self) -> Option<&str> {
        self.request.as_deref().and_then(|r| r.body.as_deref())
    }
}

/// TLS client settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust these CAs instead of the web roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The SNI name and name to verify, instead of the host.
    pub server_name: Option<String>,
    /// Skip verification (expiry is still reported).
    pub insecure_skip_verify: bool,
}

/// Assertions on an HTTP response. The common ones are fields; the rest
/// cost one pointer when unset and are read through methods.
#[derive(Clone, Debug)]
pub struct HttpExpect {
    /// Accepted statuses; never empty.
    pub status: Statuses,
    /// Text the body must contain.
    pub body_contains: Option<Box<str>>,
    /// Duration thresholds.
    pub timing: Timing,
    /// The other assertions, when any is set.
    pub more: Option<Box<MoreHttpExpect>>,
}

/// The statuses an HTTP probe accepts: one (most checks: no allocation) or
/// several. Reads as a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statuses {
    /// One code or class.
    One(StatusPattern),
    /// Several, in order.
    Many(Box<[StatusPattern]>),
}

impl From<Vec<StatusPattern>> for Statuses {
    fn from(list: Vec<StatusPattern>) -> Statuses {
        match list.len() {
            1 => Statuses::One(list[0]),
            _ => Statuses::Many(list.into_boxed_slice()),
        }
    }
}

impl std::ops::Deref for Statuses {
    type Target = [StatusPattern];

    fn deref(&self) -> &[StatusPattern] {
        match self {
            Statuses::One(one) => std::slice::from_ref(one),
            Statuses::Many(many) => many,
        }
    }
}

/// The rarer assertions on an HTTP response.
#[derive(Clone, Debug, Default)]
pub struct MoreHttpExpect {
    /// Text the body must not contain.
    pub body_not_contains: Option<String>,
    /// A regex the body must match.
    pub body_matches: Option<Regex>,
    /// JSONPath assertions.
    pub json: Vec<JsonAssertion>,
    /// Response headers that must match, by lowercase name.
    pub headers: Vec<(String, Regex)>,
    /// The least remaining certificate validity accepted.
    pub certificate_valid_for: Option<Duration>,
}

impl MoreHttpExpect {
    /// Whether it asserts nothing.
    pub fn is_empty(&self) -> bool {
        self.body_not_contains.is_none()
            && self.body_matches.is_none()
            && self.json.is_empty()
            && self.headers.is_empty()
            && self.certificate_valid_for.is_none()
    }
}

/// The assertions of a probe that sets none of the rarer ones.
static NO_MORE: MoreHttpExpect = MoreHttpExpect {
    body_not_contains: None,
    body_matches: None,
    json: Vec::new(),
    headers: Vec::new(),
    certificate_valid_for: None,
};

impl HttpExpect {
    /// The rarer assertions, unset ones included.
    pub fn more(&self) -> &MoreHttpExpect {
        self.more.as_deref().unwrap_or(&NO_MORE)
    }
}

/// A JSONPath assertion.
#[derive(Clone, Debug)]
pub struct JsonAssertion {
    /// The path as written, for messages.
    pub path_text: String,
    /// The compiled path.
    pub path: serde_json_path::JsonPath,
    /// What it must select.
    pub check: JsonCheck,
}

/// What a JSONPath must select.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonCheck {
    /// Exactly this value.
    Equals(serde_json::Value),
    /// Something (`true`) or nothing (`false`).
    Exists(bool),
}

/// A TCP probe.
#[derive(Clone, Debug)]
pub struct TcpProbe {
    /// Host name or IP address.
    pub host: String,
    /// Port, 1 to 65535.
    pub port: u16,
    /// The IP family tried first.
    pub prefer_ip: IpFamily,
    /// Text sent once connected.
    pub send: Option<String>,
    /// A regex the reply must match.
    pub reply_matches: Option<Regex>,
    /// Duration thresholds.
    pub timing: Timing,
}

/// A TLS probe.
#[derive(Clone, Debug)]
pub struct TlsProbe {
    /// Host name or IP address.
    pub host: String,
    /// Port, 1 to 65535.
    pub port: u16,
    /// The SNI name and name to verify, instead of the host.
    pub server_name: Option<String>,
    /// Trust these CAs instead of the web roots.
    pub ca_file: Option<PathBuf>,
    /// The IP family tried first.
    pub prefer_ip: IpFamily,
    /// The least remaining validity of the whole chain.
    pub certificate_valid_for: Option<Duration>,
    /// The lowest acceptable version.
    pub min_version: Option<TlsVersion>,
    /// Duration thresholds.
    pub timing: Timing,
}

/// A DNS probe.
#[derive(Clone, Debug)]
pub struct DnsProbe {
    /// The name to resolve.
    pub name: String,
    /// The record type.
    pub record_type: RecordType,
    /// The server to ask; `None` is the system resolver.
    pub server: Option<DnsServer>,
    /// UDP or TCP.
    pub protocol: DnsProtocol,
    /// The expected response code.
    pub rcode: Rcode,
    /// Values that must all be among the answers.
    pub answers_include: Vec<String>,
    /// The exact set of answers.
    pub answers_equal: Option<Vec<String>>,
    /// A regex every answer must match.
    pub answers_match: Option<Regex>,
    /// The fewest answers accepted.
    pub min_answers: Option<u32>,
    /// Duration thresholds.
    pub timing: Timing,
}

/// A DNS server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsServer {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A maintenance window from the config.
#[derive(Clone, Debug)]
pub struct MaintenanceWindow {
    /// The name the page shows.
    pub name: String,
    /// What is being done.
    pub description: Option<String>,
    /// The checks it covers.
    pub checks: Vec<CheckId>,
    /// When it happens.
    pub when: MaintenanceTime,
    /// How long each window lasts.
    pub duration: Duration,
    /// Where it was defined.
    pub origin: Origin,
}

/// When a maintenance window happens.
// Built once per config load and never moved in bulk: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum MaintenanceTime {
    /// Once, from this instant.
    Once(DateTime<Utc>),
    /// At every slot of a cron schedule, in a time zone.
    Recurring {
        /// The expression as written.
        expression: String,
        /// The parsed schedule.
        schedule: cron::Schedule,
        /// The zone the schedule is read in.
        timezone: chrono_tz::Tz,
    },
}

impl MaintenanceWindow {
    /// The window that covers `at`, as `[start, end)`, if any.
    pub fn active_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let length = chrono::Duration::from_std(self.duration).ok()?;
        let start = match &self.when {
            MaintenanceTime::Once(start) => *start,
            MaintenanceTime::Recurring {
                schedule, timezone, ..
            } => {
                // The first slot strictly after `at - length` is the only one that can cover `at`.
                let from = (at - length).with_timezone(timezone);
                schedule.after(&from).next()?.with_timezone(&Utc)
            }
        };
        let end = start + length;
        (start <= at && at < end).then_some((start, end))
    }

    /// The next window that starts after `at`.
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let length = chrono::Duration::from_std(self.duration).ok()?;
        let start = match &self.when {
            MaintenanceTime::Once(start) => (*start > at).then_some(*start)?,
            MaintenanceTime::Recurring {
                schedule, timezone, ..
            } => schedule
                .after(&at.with_timezone(timezone))
                .next()?
                .with_timezone(&Utc),
        };
        Some((start, start + length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_ids() {
        assert_eq!(
            slug("Website Homepage").as_deref(),
            Some("website-homepage")
        );
        assert_eq!(slug("  API / v2 (EU)  ").as_deref(), Some("api-v2-eu"));
        assert_eq!(slug("!!!"), None);
        assert!(CheckId::parse("website-homepage").is_ok());
        for bad in ["", "Website", "a--b", "-a", "a-", "a/b", &"x".repeat(65)] {
            assert!(CheckId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_redacted_longest_first_and_never_debug_printed() {
        let s = Secrets::new(
            vec!["abc".into(), "token-123".into(), "token-123456".into()],
            vec![],
        );
        assert_eq!(
            s.redact("a token-123456 b token-123 abc"),
            "a [redacted] b [redacted] abc"
        );
        assert!(!format!("{s:?}").contains("token"));
    }
}

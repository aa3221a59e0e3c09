//! The YAML as written: serde and JSON Schema types, before validation.
//!
//! Every leaf is a [`Field`], so each value is decoded on its own and one bad
//! value never hides the next. The `///` comments here are the YAML reference:
//! they become the JSON Schema descriptions and the README's reference tables.

use crate::decode::Field;
use crate::units::{DurationText, PercentText, SizeText};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A statuspage check file: groups of checks, shared defaults and maintenance windows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "statuspage checks")]
pub(crate) struct RawFile {
    /// Settings every check inherits unless it sets its own.
    pub defaults: Option<Field<RawDefaults>>,
    /// The groups of checks, in the order the page shows them.
    pub groups: Option<Field<Vec<Field<RawGroup>>>>,
    /// Planned maintenance: no incident opens and no downtime counts inside a window.
    pub maintenance: Option<Field<Vec<Field<RawMaintenance>>>>,
    /// Where operators are told of incidents and maintenance. Read (and its `${VAR}`s interpolated) by ingest and standalone only; the agent ignores it.
    pub notifications: Option<Field<RawNotifications>>,
    /// The mail server email channels send through (ingest and standalone only).
    pub smtp: Option<Field<RawSmtp>>,
    /// Public email subscriptions: the page's subscribe form, double opt-in, and mail to subscribers through `smtp`. Read by ingest, standalone, and the dashboard (which reads only this section).
    pub subscriptions: Option<Field<RawSubscriptions>>,
}

/// Public email subscriptions.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscriptions {
    /// Turns the subscribe form and subscriber mail on. Default false. Needs an `smtp` section.
    pub enabled: Option<Field<bool>>,
    /// A file whose raw bytes (32 or more, not decoded) are the key that signs the links in subscriber mail; a relative path is from the YAML file's directory. Required when enabled.
    pub signing_key_file: Option<Field<String>>,
    /// Earlier keys' files, for rotation: links signed with them still verify; new links are signed with `signing_key_file`.
    pub previous_signing_key_files: Option<Field<Vec<Field<String>>>>,
    /// The most subscriptions kept, pending and confirmed together. Default 100000; past it the form refuses new addresses (503) for everyone alike.
    pub max_subscribers: Option<Field<u64>>,
    /// Subscriber mails each ingest process sends per second at most. Default 20. Operator channels never wait behind them.
    pub mail_rate: Option<Field<u32>>,
    /// POSTs per client IP per minute to the subscription endpoints, then 429. Default 10.
    pub requests_per_minute: Option<Field<u32>>,
    /// Confirmation mails per address per day; past it the form answers as always and sends nothing. Default 5.
    pub confirmations_per_day: Option<Field<u32>>,
}

/// The mail server email channels send through.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    /// `smtp://host:587` (STARTTLS required) or `smtps://host:465` (TLS from the start); `user:${PASSWORD}@` for login. `?tls=none` (no TLS at all) only for a loopback host.
    pub url: Field<String>,
    /// The sender: `Acme status <status@acme.example>` or a bare address.
    pub from: Field<String>,
}

/// Notification channels, and optionally routes choosing what each hears.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    /// The channels. Names are unique across every file.
    pub channels: Option<Field<Vec<Field<RawChannel>>>>,
    /// Without routes, every channel hears every incident and maintenance event (public and private checks alike, unless `public_only`). With routes, a channel hears what a route naming it selects.
    pub routes: Option<Field<Vec<Field<RawRoute>>>>,
}

/// One channel: exactly one of `webhook`, `slack`, `pagerduty` or `email`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
    /// Its name, shown by delivery rows, metrics and the admin API (never its URL).
    pub name: Field<String>,
    /// Never hears of private checks. Default false.
    pub public_only: Option<Field<bool>>,
    /// A Standard Webhooks receiver: a signed JSON POST.
    pub webhook: Option<Field<RawWebhook>>,
    /// A Slack incoming webhook.
    pub slack: Option<Field<RawSlack>>,
    /// PagerDuty Events API v2: `trigger` on open and reopen, `resolve` on resolve.
    pub pagerduty: Option<Field<RawPagerDuty>>,
    /// Email through the `smtp` server: text and HTML, one incident's mails threaded.
    pub email: Option<Field<RawEmail>>,
}

/// An email channel.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    /// The recipients' addresses.
    pub to: Field<Vec<Field<String>>>,
}

/// A Standard Webhooks receiver.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    /// Where to POST: http:// or https://, never a link-local or metadata address. Redirects are never followed.
    pub url: Field<String>,
    /// The signing secret, `whsec_` and base64 (24 to 64 bytes); usually `${WEBHOOK_SECRET}`.
    pub secret: Option<Field<String>>,
    /// Several signing secrets, for rotation: each signs every request.
    pub secrets: Option<Field<Vec<Field<String>>>>,
}

/// A Slack incoming webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlack {
    /// The incoming webhook's URL (a secret: use `${SLACK_WEBHOOK_URL}`).
    pub url: Field<String>,
}

/// A PagerDuty Events API v2 integration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPagerDuty {
    /// The integration's routing key (a secret: use `${PD_ROUTING_KEY}`).
    pub routing_key: Field<String>,
    /// The Events API endpoint. Default `https://events.pagerduty.com/v2/enqueue`.
    pub url: Option<Field<String>>,
}

/// Which events some channels hear.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    /// The channels' names.
    pub channels: Field<Vec<Field<String>>>,
    /// `incident`, `maintenance` and/or `check` (`check.status_changed`, heard only where routed). Default `[incident, maintenance]`.
    pub events: Option<Field<Vec<Field<String>>>>,
    /// Only events about checks of these groups. Default: every group.
    pub groups: Option<Field<Vec<Field<String>>>>,
    /// Only incidents of at least this impact: `minor` (default) or `major`.
    pub min_impact: Option<Field<String>>,
}

/// Settings every check inherits unless it sets its own.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    /// How often each check runs.
    pub interval: Option<Field<DurationText>>,
    /// The hard deadline of one probe; always below the interval.
    pub timeout: Option<Field<DurationText>>,
    /// How many agents probe each check: a number, or `all`.
    pub locations: Option<Field<RawLocations>>,
    /// How many failing locations make a check down: `majority` or a number.
    pub quorum: Option<Field<RawQuorum>>,
    /// Consecutive `down` results before a location counts as failing.
    pub failure_threshold: Option<Field<u32>>,
    /// Consecutive `up` results before a failing location counts as passing again.
    pub success_threshold: Option<Field<u32>>,
    /// An automatic incident resolved less than this long ago reopens instead of a new one opening.
    pub reopen_window: Option<Field<DurationText>>,
    /// Whether checks appear on the public page, API, badges and feed.
    pub public: Option<Field<bool>>,
    /// A service level objective for every check of the file.
    pub slo: Option<Field<RawSlo>>,
}

/// A service level objective: the share of observed time a check must be up (degraded counts as up) over a rolling window. Maintenance and unobserved time count for neither side, exactly as in uptime.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlo {
    /// The objective: a percentage below 100%, such as `99.9%`.
    pub target: Field<PercentText>,
    /// The rolling window: `7d`, `28d` or `30d`.
    pub window: Field<DurationText>,
}

/// A named group of checks on the page.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    /// The group's name as the page shows it.
    pub name: Field<String>,
    /// A line of text under the group's name.
    pub description: Option<Field<String>>,
    /// A service level objective for every check of the group, over the file's `defaults`.
    pub slo: Option<Field<RawSlo>>,
    /// The checks of this group.
    pub checks: Field<Vec<Field<RawCheck>>>,
}

/// One check: exactly one of `http`, `tcp`, `tls` or `dns`, and its settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// The check's name as the page shows it.
    pub name: Field<String>,
    /// A stable id (lowercase letters, digits and `-`). Defaults to a slug of the group and the name: `website-homepage`.
    pub id: Option<Field<String>>,
    /// A line of text shown with the check.
    pub description: Option<Field<String>>,
    /// Whether this check appears on the public page, API, badges and feed. A private check is still probed and alerted on.
    pub public: Option<Field<bool>>,
    /// How often the check runs. Give this or `schedule`, not both.
    pub interval: Option<Field<DurationText>>,
    /// A cron schedule instead of an interval: 6 fields with seconds (`0 */5 * * * *`), or a standard 5-field crontab line (second 0).
    pub schedule: Option<Field<String>>,
    /// The hard deadline of one probe; below the interval.
    pub timeout: Option<Field<DurationText>>,
    /// How many agents probe this check: a number, or `all`.
    pub locations: Option<Field<RawLocations>>,
    /// How many failing locations make the check down: `majority` or a number, at most `locations`.
    pub quorum: Option<Field<RawQuorum>>,
    /// Consecutive `down` results before a location counts as failing.
    pub failure_threshold: Option<Field<u32>>,
    /// Consecutive `up` results before a location counts as passing again.
    pub success_threshold: Option<Field<u32>>,
    /// An automatic incident resolved less than this long ago reopens instead of a new one opening.
    pub reopen_window: Option<Field<DurationText>>,
    /// This check's service level objective, over its group's and the file's.
    pub slo: Option<Field<RawSlo>>,
    /// Probe an HTTP or HTTPS URL.
    pub http: Option<Field<RawHttp>>,
    /// Open a TCP connection, and optionally exchange bytes.
    pub tcp: Option<Field<RawTcp>>,
    /// Complete a TLS handshake and inspect the certificate chain.
    pub tls: Option<Field<RawTls>>,
    /// Resolve a DNS name.
    pub dns: Option<Field<RawDns>>,
}

/// An HTTP or HTTPS probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    /// The URL to request, `http://` or `https://`.
    pub url: Field<String>,
    /// The request method.
    pub method: Option<Field<Method>>,
    /// Request headers. `User-Agent` defaults to `statuspage-agent/<version> (<agent id>)`.
    pub headers: Option<Field<BTreeMap<String, Field<String>>>>,
    /// A request body.
    pub body: Option<Field<String>>,
    /// How many redirects to follow; 0 follows none. A loop is detected and fails the probe.
    pub max_redirects: Option<Field<u32>>,
    /// The most of the body that is read; more is `body_too_large`.
    pub max_body: Option<Field<SizeText>>,
    /// Which IP family to try first: `ipv4` or `ipv6`.
    pub prefer_ip: Option<Field<IpFamily>>,
    /// Whether to fall back to the other IP family when the preferred one has no address.
    pub ip_fallback: Option<Field<bool>>,
    /// Offer HTTP/2 through ALPN on HTTPS.
    pub http2: Option<Field<bool>>,
    /// TLS settings for `https://` URLs.
    pub tls: Option<Field<RawClientTls>>,
    /// What the response must look like.
    pub expect: Option<Field<RawHttpExpect>>,
}

/// TLS client settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientTls {
    /// A PEM file of CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<Field<String>>,
    /// A PEM client certificate chain, for mutual TLS; needs `client_key_file`.
    pub client_cert_file: Option<Field<String>>,
    /// The PEM private key of `client_cert_file`.
    pub client_key_file: Option<Field<String>>,
    /// The name to send in SNI and to verify, instead of the URL's host.
    pub server_name: Option<Field<String>>,
    /// Do not verify the certificate. Its expiry is still reported and `certificate_valid_for` still applies.
    pub insecure_skip_verify: Option<Field<bool>>,
}

/// Assertions on an HTTP response.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpExpect {
    /// Accepted status codes: numbers, or classes such as `2xx`. Default `[2xx]`.
    pub status: Option<Field<Vec<Field<StatusPattern>>>>,
    /// The body must contain this text.
    pub body_contains: Option<Field<String>>,
    /// The body must not contain this text.
    pub body_not_contains: Option<Field<String>>,
    /// The body must match this regular expression.
    pub body_matches: Option<Field<String>>,
    /// JSONPath assertions on a JSON body.
    pub json: Option<Field<Vec<Field<RawJsonAssertion>>>>,
    /// Response headers that must be present and match a regular expression, by name.
    pub headers: Option<Field<BTreeMap<String, Field<String>>>>,
    /// Down when the whole probe takes longer than this.
    pub response_time_under: Option<Field<DurationText>>,
    /// Degraded when the whole probe takes longer than this.
    pub degraded_over: Option<Field<DurationText>>,
    /// HTTPS only: down when the certificate chain expires sooner than this.
    pub certificate_valid_for: Option<Field<DurationText>>,
}

/// One JSONPath assertion: give `equals` or `exists`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJsonAssertion {
    /// A JSONPath expression (RFC 9535), such as `$.status`.
    pub path: Field<String>,
    /// The value the path must select.
    pub equals: Option<Field<JsonScalar>>,
    /// Whether the path must select something (`true`) or nothing (`false`).
    pub exists: Option<Field<bool>>,
}

/// A TCP probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcp {
    /// The host name or IP address.
    pub host: Field<String>,
    /// The port, 1 to 65535.
    pub port: Field<u32>,
    /// Which IP family to try first: `ipv4` or `ipv6`.
    pub prefer_ip: Option<Field<IpFamily>>,
    /// Text to send once connected.
    pub send: Option<Field<String>>,
    /// What the connection must look like.
    pub expect: Option<Field<RawTcpExpect>>,
}

/// Assertions on a TCP probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcpExpect {
    /// A regular expression the reply must match, read within the timeout.
    pub reply_matches: Option<Field<String>>,
    /// Down when the whole probe takes longer than this.
    pub response_time_under: Option<Field<DurationText>>,
    /// Degraded when the whole probe takes longer than this.
    pub degraded_over: Option<Field<DurationText>>,
}

/// A TLS probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    /// The host name or IP address to connect to.
    pub host: Field<String>,
    /// The port, 1 to 65535. Default 443.
    pub port: Option<Field<u32>>,
    /// The name to send in SNI and to verify, instead of `host`.
    pub server_name: Option<Field<String>>,
    /// A PEM file of CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<Field<String>>,
    /// Which IP family to try first: `ipv4` or `ipv6`.
    pub prefer_ip: Option<Field<IpFamily>>,
    /// What the handshake must look like.
    pub expect: Option<Field<RawTlsExpect>>,
}

/// Assertions on a TLS handshake.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTlsExpect {
    /// Down when any certificate of the chain expires sooner than this.
    pub certificate_valid_for: Option<Field<DurationText>>,
    /// The lowest acceptable TLS version: `"1.2"` or `"1.3"`.
    pub min_version: Option<Field<TlsVersion>>,
    /// Down when the whole probe takes longer than this.
    pub response_time_under: Option<Field<DurationText>>,
    /// Degraded when the whole probe takes longer than this.
    pub degraded_over: Option<Field<DurationText>>,
}

/// A DNS probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    /// The name to resolve.
    pub name: Field<String>,
    /// The record type. Default `A`.
    #[serde(rename = "type")]
    pub record_type: Option<Field<RecordType>>,
    /// The server to ask, `host:port` or `host` (port 53). Default: the system resolver.
    pub server: Option<Field<String>>,
    /// `udp` or `tcp`. Default `udp`.
    pub protocol: Option<Field<DnsProtocol>>,
    /// What the answer must look like.
    pub expect: Option<Field<RawDnsExpect>>,
}

/// Assertions on a DNS answer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnsExpect {
    /// The response code. Default `NOERROR`.
    pub rcode: Option<Field<Rcode>>,
    /// Values that must all be among the answers.
    pub answers_include: Option<Field<Vec<Field<String>>>>,
    /// The exact set of answers, in any order.
    pub answers_equal: Option<Field<Vec<Field<String>>>>,
    /// A regular expression that every answer must match.
    pub answers_match: Option<Field<String>>,
    /// The fewest answers accepted.
    pub min_answers: Option<Field<u32>>,
    /// Down when the whole probe takes longer than this.
    pub response_time_under: Option<Field<DurationText>>,
    /// Degraded when the whole probe takes longer than this.
    pub degraded_over: Option<Field<DurationText>>,
}

/// A maintenance window: one-off (`start` + `duration`) or recurring (`schedule` + `duration`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    /// The window's name as the page shows it.
    pub name: Field<String>,
    /// What is being done, for the page.
    pub description: Option<Field<String>>,
    /// The ids of the checks it covers.
    pub checks: Field<Vec<Field<String>>>,
    /// One-off: when it starts. RFC 3339 (`2026-12-01T02:00:00Z`), or a local time (`2026-12-01T02:00`) in `timezone`.
    pub start: Option<Field<String>>,
    /// Recurring: a cron expression for each start, in `timezone` (6 fields with seconds, or 5).
    pub schedule: Option<Field<String>>,
    /// How long each window lasts.
    pub duration: Field<DurationText>,
    /// An IANA time zone, such as `Europe/Berlin`, for `schedule` and local `start` times. Default `UTC`.
    pub timezone: Option<Field<String>>,
}

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "UPPERCASE", expecting = "an HTTP method such as `GET`")]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase", expecting = "`ipv4` or `ipv6`")]
pub enum IpFamily {
    /// IPv4 first.
    Ipv4,
    /// IPv6 first.
    Ipv6,
}

/// A TLS protocol version.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema, serde::Serialize,
)]
#[serde(expecting = "a TLS version: `\"1.2\"` or `\"1.3\"`")]
pub enum TlsVersion {
    /// TLS 1.2
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3
    #[serde(rename = "1.3")]
    Tls13,
}

/// A DNS record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "UPPERCASE", expecting = "a DNS record type such as `A`")]
#[allow(clippy::upper_case_acronyms)]
pub enum RecordType {
    /// IPv4 address
    A,
    /// IPv6 address
    AAAA,
    /// Canonical name
    CNAME,
    /// Mail exchanger
    MX,
    /// Text
    TXT,
    /// Name server
    NS,
    /// Start of authority
    SOA,
    /// Service locator
    SRV,
    /// Certification authority authorization
    CAA,
}

/// The transport of a DNS query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase", expecting = "`udp` or `tcp`")]
pub enum DnsProtocol {
    /// UDP, the usual.
    Udp,
    /// TCP.
    Tcp,
}

/// A DNS response code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(
    rename_all = "UPPERCASE",
    expecting = "a DNS response code such as `NOERROR`"
)]
pub enum Rcode {
    /// No error.
    NoError,
    /// Format error.
    FormErr,
    /// Server failure.
    ServFail,
    /// The name does not exist.
    NXDomain,
    /// Not implemented.
    NotImp,
    /// Refused.
    Refused,
}

/// `locations`: a number of agents, or every agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawLocations {
    Count(u64),
    All,
}

impl<'de> Deserialize<'de> for RawLocations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawLocations;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of locations (1 or more) or `all`")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawLocations, E> {
                Ok(RawLocations::Count(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawLocations, E> {
                Err(E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawLocations, E> {
                match s {
                    "all" => Ok(RawLocations::All),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawLocations {
    fn schema_name() -> Cow<'static, str> {
        "Locations".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "oneOf": [ { "type": "integer", "minimum": 1 }, { "const": "all" } ] })
    }
}

/// `quorum`: a majority of the assigned locations, or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawQuorum {
    Majority,
    Count(u64),
}

impl<'de> Deserialize<'de> for RawQuorum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawQuorum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`majority` or a number of locations (1 or more)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawQuorum, E> {
                Ok(RawQuorum::Count(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawQuorum, E> {
                Err(E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawQuorum, E> {
                match s {
                    "majority" => Ok(RawQuorum::Majority),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawQuorum {
    fn schema_name() -> Cow<'static, str> {
        "Quorum".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "oneOf": [ { "const": "majority" }, { "type": "integer", "minimum": 1 } ] })
    }
}

/// One accepted HTTP status: a code, or a class such as `2xx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum StatusPattern {
    /// Exactly this code.
    Code(u16),
    /// Any code of this hundred: `2` means `2xx`.
    Class(u8),
}

impl StatusPattern {
    /// Whether `status` is accepted.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Code(c) => c == status,
            StatusPattern::Class(c) => status / 100 == u16::from(c),
        }
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusPattern::Code(c) => write!(f, "{c}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StatusPattern;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code from 100 to 599, or a class such as `2xx`")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusPattern, E> {
                match n {
                    100..=599 => Ok(StatusPattern::Code(n as u16)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusPattern, E> {
                Err(E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusPattern, E> {
                let b = s.as_bytes();
                match b {
                    [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                        Ok(StatusPattern::Class(c - b'0'))
                    }
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for StatusPattern {
    fn schema_name() -> Cow<'static, str> {
        "StatusPattern".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "oneOf": [
            { "type": "integer", "minimum": 100, "maximum": 599 },
            { "type": "string", "pattern": "^[1-5][xX][xX]$" }
        ] })
    }
}

/// A scalar JSON value for `equals`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonScalar(pub serde_json::Value);

impl<'de> Deserialize<'de> for JsonScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonScalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_unit<E>(self) -> Result<JsonScalar, E> {
                Ok(JsonScalar(serde_json::Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<JsonScalar, E> {
                Ok(JsonScalar(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<JsonScalar, E> {
                Ok(JsonScalar(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JsonScalar, E> {
                Ok(JsonScalar(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<JsonScalar, E> {
                Ok(JsonScalar(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<JsonScalar, E> {
                Ok(JsonScalar(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for JsonScalar {
    fn schema_name() -> Cow<'static, str> {
        "JsonScalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean", "null"] })
    }
}

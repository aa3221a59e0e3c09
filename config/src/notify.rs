//! Notification channels and routes from the YAML, and the rule for which
//! addresses a delivery may reach.
//!
//! Secrets (webhook signing keys, Slack URLs, PagerDuty routing keys) never
//! appear in `Debug` output: each is shown as its channel's name and kind.

use std::fmt;
use std::net::IpAddr;

/// Every channel and route of the config.
#[derive(Clone, Debug, Default)]
pub struct Notifications {
    /// The mail server, for email channels.
    pub smtp: Option<Smtp>,
    /// The channels, in file order; names are unique.
    pub channels: Vec<Channel>,
    /// The routes; none means every channel hears every incident and
    /// maintenance event.
    pub routes: Vec<Route>,
}

/// Public email subscriptions, when enabled.
#[derive(Clone)]
pub struct Subscriptions {
    /// The signing keys: the first signs, any verifies.
    pub keys: Vec<Vec<u8>>,
    /// The most subscriptions kept (pending and confirmed).
    pub max_subscribers: u64,
    /// Subscriber mails per second per ingest process.
    pub mail_rate: u32,
    /// Subscription POSTs per client IP per minute.
    pub requests_per_minute: u32,
    /// Confirmation mails per address per day.
    pub confirmations_per_day: u32,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_subscribers: 100_000,
            mail_rate: 20,
            requests_per_minute: 10,
            confirmations_per_day: 5,
        }
    }
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are secrets: only how many.
        f.debug_struct("Subscriptions")
            .field("keys", &self.keys.len())
            .field("max_subscribers", &self.max_subscribers)
            .field("mail_rate", &self.mail_rate)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("confirmations_per_day", &self.confirmations_per_day)
            .finish()
    }
}

/// Whether `text` is a plain email address (`local@domain`, at most 254
/// characters, a local part of at most 64) with nothing that could break a
/// header: no control character (CR and LF among them), space, `<`, `>`,
/// `"`, `,` or `;`.
pub fn is_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text.len() <= 254
        && !domain.contains('@')
        && text.chars().all(|c| {
            !c.is_control() && !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | ',' | ';')
        })
}

/// Where events go.
#[derive(Clone)]
pub struct Channel {
    /// Its unique name: what delivery rows, metrics and the admin API show.
    pub name: String,
    /// Never hears of private checks.
    pub public_only: bool,
    /// How it is reached.
    pub kind: ChannelKind,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("public_only", &self.public_only)
            .field("kind", &self.kind.as_str())
            .finish_non_exhaustive()
    }
}

/// How a channel is reached. Every field may hold a secret.
#[derive(Clone)]
pub enum ChannelKind {
    /// Standard Webhooks: a signed JSON POST.
    Webhook {
        /// Where to.
        url: url::Url,
        /// The signing keys (the bytes after `whsec_`, decoded): one
        /// signature each, so a receiver can rotate.
        secrets: Vec<Vec<u8>>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL (itself the secret).
        url: url::Url,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        /// The Events API endpoint.
        url: url::Url,
        /// The integration's routing key.
        routing_key: String,
    },
    /// Email, through [`Notifications::smtp`].
    Email {
        /// The recipients.
        to: Vec<String>,
    },
}

impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field may be a secret: only the kind is shown.
        f.write_str(self.as_str())
    }
}

impl ChannelKind {
    /// `webhook`, `slack` or `pagerduty`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::PagerDuty { .. } => "pagerduty",
            ChannelKind::Email { .. } => "email",
        }
    }

    /// The URL a delivery is POSTed to (none for email).
    pub fn url(&self) -> Option<&url::Url> {
        match self {
            ChannelKind::Webhook { url, .. }
            | ChannelKind::Slack { url }
            | ChannelKind::PagerDuty { url, .. } => Some(url),
            ChannelKind::Email { .. } => None,
        }
    }
}

/// How the mail server is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (`smtp://`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// None at all (`?tls=none`, a loopback host only).
    None,
}

/// The mail server email channels send through. Its password never shows
/// in `Debug`.
#[derive(Clone)]
pub struct Smtp {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// How TLS is used.
    pub tls: SmtpTls,
    /// The login, if any: user and password.
    pub login: Option<(String, String)>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("login", &self.login.as_ref().map(|_| "…"))
            .field("from", &self.from)
            .finish()
    }
}

/// The Events API v2 endpoint, unless a channel names another.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A kind of event a route selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventFamily {
    /// `incident.*`
    Incident,
    /// `maintenance.*`
    Maintenance,
    /// `check.status_changed`
    Check,
}

impl EventFamily {
    /// The family of an event type such as `incident.opened`.
    pub fn of(event_type: &str) -> Option<EventFamily> {
        match event_type.split('.').next()? {
            "incident" => Some(EventFamily::Incident),
            "maintenance" => Some(EventFamily::Maintenance),
            "check" => Some(EventFamily::Check),
            _ => None,
        }
    }
}

/// Which events a list of channels hears.
#[derive(Clone, Debug)]
pub struct Route {
    /// The channels' names.
    pub channels: Vec<String>,
    /// The event families (default: incident and maintenance).
    pub events: Vec<EventFamily>,
    /// Only events about checks of these groups (default: every group).
    pub groups: Vec<String>,
    /// Only incidents of at least this impact (`minor` or `major`).
    pub min_major: bool,
}

/// What routing needs to know of one event.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// Its family.
    pub family: EventFamily,
    /// Every check it concerns is public.
    pub public: bool,
    /// The groups of the checks it concerns.
    pub groups: &'a [String],
    /// Its impact is major (incidents; else true).
    pub major: bool,
}

impl Notifications {
    /// The channels that hear an event with these facts, in config order.
    /// Without routes, every channel hears incident and maintenance events;
    /// check events go only where a route names them.
    pub fn channels_for(&self, facts: Facts<'_>) -> Vec<&Channel> {
        self.channels
            .iter()
            .filter(|c| facts.public || !c.public_only)
            .filter(|c| {
                if self.routes.is_empty() {
                    return facts.family != EventFamily::Check;
                }
                self.routes.iter().any(|r| {
                    r.channels.contains(&c.name)
                        && r.events.contains(&facts.family)
                        && (r.groups.is_empty()
                            || facts.groups.iter().any(|g| r.groups.contains(g)))
                        && (!r.min_major || facts.family != EventFamily::Incident || facts.major)
                })
            })
            .collect()
    }

    /// The channel with this name.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// Why a delivery may not reach `ip`, if it may not: link-local and
/// metadata addresses (`169.254.0.0/16`, `fe80::/10`, `fd00:ec2::254`), the
/// unspecified address, and any of them spelled as IPv4-mapped IPv6.
/// Loopback and private addresses are allowed: operators run receivers
/// inside their networks.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_link_local() => {
            Some("a link-local address (cloud metadata lives there)")
        }
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("a link-local address (cloud metadata lives there)")
        }
        IpAddr::V6(v6) if v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("the cloud metadata address")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, public_only: bool) -> Channel {
        Channel {
            name: name.into(),
            public_only,
            kind: ChannelKind::Slack {
                url: url::Url::parse("https://hooks.slack.test/x").unwrap(),
            },
        }
    }

    fn names(channels: Vec<&Channel>) -> Vec<&str> {
        channels.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn channels_hear_what_the_routes_and_public_only_allow() {
        let groups = ["Payments".to_string()];
        let facts = |family, public, major| Facts {
            family,
            public,
            groups: &groups,
            major,
        };
        let mut n = Notifications {
            smtp: None,
            channels: vec![
                channel("ops", false),
                channel("status", true),
                channel("pager", false),
            ],
            routes: Vec::new(),
        };
        // No routes: every channel, incidents and maintenance; no check events.
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Incident, true, true))),
            ["ops", "status", "pager"]
        );
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Maintenance, true, true))),
            ["ops", "status", "pager"]
        );
        assert!(
            n.channels_for(facts(EventFamily::Check, true, true))
                .is_empty()
        );
        // public_only never hears of a private check.
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Incident, false, true))),
            ["ops", "pager"]
        );
        // Routes: pager for major incidents of Payments, ops for checks too.
        n.routes = vec![
            Route {
                channels: vec!["pager".into()],
                events: vec![EventFamily::Incident],
                groups: vec!["Payments".into()],
                min_major: true,
            },
            Route {
                channels: vec!["ops".into()],
                events: vec![EventFamily::Incident, EventFamily::Check],
                groups: Vec::new(),
                min_major: false,
            },
        ];
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Incident, true, true))),
            ["ops", "pager"]
        );
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Incident, true, false))),
            ["ops"],
            "minor: not paged"
        );
        assert_eq!(
            names(n.channels_for(facts(EventFamily::Check, true, true))),
            ["ops"]
        );
        assert!(
            n.channels_for(facts(EventFamily::Maintenance, true, true))
                .is_empty(),
            "no route names maintenance"
        );
        let other = ["Website".to_string()];
        let website = Facts {
            family: EventFamily::Incident,
            public: true,
            groups: &other,
            major: true,
        };
        assert_eq!(
            names(n.channels_for(website)),
            ["ops"],
            "pager only for Payments"
        );
    }

    #[test]
    fn metadata_and_link_local_addresses_are_forbidden_in_every_spelling() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "::",
        ] {
            assert!(forbidden(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in ["127.0.0.1", "10.0.0.7", "192.168.1.1", "::1", "2001:db8::1"] {
            assert!(forbidden(good.parse().unwrap()).is_none(), "{good}");
        }
    }
}

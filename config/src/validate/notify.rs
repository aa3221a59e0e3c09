//! The `notifications` section: channels and routes. Route names are
//! resolved once every file is read (a route may name a channel of another
//! file), in [`crate::load`].

use crate::decode::{Cx, Field};
use crate::diagnostic::Origin;
use crate::notify::{
    Channel, ChannelKind, EventFamily, PAGERDUTY_EVENTS_URL, Smtp, SmtpTls, Subscriptions,
    forbidden, is_address,
};
use crate::raw::*;
use crate::source::{NodeId, clip};
use base64::Engine;

/// A route, with where each channel and group it names is written.
#[derive(Debug)]
pub(crate) struct FileRoute {
    pub channels: Vec<(String, Origin)>,
    pub events: Vec<EventFamily>,
    pub groups: Vec<(String, Origin)>,
    pub min_major: bool,
}

/// A channel, with where its name is written.
#[derive(Debug)]
pub(crate) struct FileChannel {
    pub channel: Channel,
    pub origin: Origin,
}

pub(crate) fn notifications(cx: &Cx, raw: RawNotifications) -> (Vec<FileChannel>, Vec<FileRoute>) {
    let mut channels = Vec::new();
    for f in cx.opt(raw.channels).unwrap_or_default() {
        if let Some(c) = cx.get(f) {
            channels.extend(channel(cx, c, f.id));
        }
    }
    let mut routes = Vec::new();
    for f in cx.opt(raw.routes).unwrap_or_default() {
        if let Some(r) = cx.get(f) {
            routes.push(route(cx, r));
        }
    }
    (channels, routes)
}

fn origin(cx: &Cx, id: NodeId) -> Origin {
    Origin {
        file: cx.doc.file.clone(),
        mark: cx.doc.node(id).mark,
    }
}

fn channel(cx: &Cx, raw: RawChannel, at: NodeId) -> Option<FileChannel> {
    let name_at = raw.name.id;
    let name = cx.get(raw.name).and_then(|n| {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            cx.error(
                name_at,
                format!(
                    "expected a channel name of letters, digits, `-` and `_` (at most 64), found `{}`",
                    clip(&n, 60)
                ),
            );
        }
        ok.then_some(n)
    });
    let public_only = cx.opt(raw.public_only).unwrap_or(false);
    let given = [
        raw.webhook.is_some(),
        raw.slack.is_some(),
        raw.pagerduty.is_some(),
        raw.email.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        cx.error(
            at,
            "expected exactly one of `webhook`, `slack`, `pagerduty` or `email` in a channel",
        );
        return None;
    }
    let kind = if let Some(f) = raw.email {
        let e = cx.get(f)?;
        let list_at = e.to.id;
        let mut to = Vec::new();
        let mut ok = true;
        for a in cx.get(e.to).unwrap_or_default() {
            match cx.get(a) {
                Some(text) if is_address(&text) => to.push(text),
                Some(text) => {
                    let shown = super::shown(cx, a.id, "an address", &text);
                    cx.error(
                        a.id,
                        format!(
                            "expected an email address such as `oncall@example.com`, found {shown}"
                        ),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if to.is_empty() && ok {
            cx.error(
                list_at,
                "expected at least one address, found an empty list",
            );
            return None;
        }
        ok.then_some(ChannelKind::Email { to })?
    } else if let Some(f) = raw.webhook {
        let w = cx.get(f)?;
        let url = url(cx, w.url);
        let mut written = Vec::new();
        written.extend(w.secret);
        written.extend(cx.opt(w.secrets).unwrap_or_default());
        if written.is_empty() {
            cx.error(
                f.id,
                "missing key `secret`: a webhook is signed (`whsec_` and base64, usually `${WEBHOOK_SECRET}`)",
            );
            return None;
        }
        let secrets: Vec<Option<Vec<u8>>> = written.into_iter().map(|s| secret(cx, s)).collect();
        ChannelKind::Webhook {
            url: url?,
            secrets: secrets.into_iter().collect::<Option<Vec<_>>>()?,
        }
    } else if let Some(f) = raw.slack {
        let s = cx.get(f)?;
        ChannelKind::Slack {
            url: url(cx, s.url)?,
        }
    } else if let Some(f) = raw.pagerduty {
        let p = cx.get(f)?;
        let key_at = p.routing_key.id;
        let routing_key = cx.get(p.routing_key).and_then(|k| {
            if k.trim().is_empty() || k.len() > 128 {
                cx.error(
                    key_at,
                    "expected a PagerDuty routing key (1 to 128 characters)",
                );
                None
            } else {
                Some(k)
            }
        });
        let url = match p.url {
            Some(u) => url(cx, u),
            None => url::Url::parse(PAGERDUTY_EVENTS_URL).ok(),
        };
        ChannelKind::PagerDuty {
            url: url?,
            routing_key: routing_key?,
        }
    } else {
        return None;
    };
    Some(FileChannel {
        channel: Channel {
            name: name?,
            public_only,
            kind,
        },
        origin: origin(cx, name_at),
    })
}

/// A destination URL: http(s), with a host, without credentials, and
/// never a literal link-local, metadata or non-canonical IPv4 address.
/// Names are not resolved here (validation runs offline); the sender
/// checks every address a name resolves to.
fn url(cx: &Cx, f: Field<String>) -> Option<url::Url> {
    let text = cx.get(f)?;
    let shown = super::shown(cx, f.id, "a URL", &text);
    let parsed = match url::Url::parse(&text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => {
            cx.error(
                f.id,
                format!("expected an http:// or https:// URL with a host, found {shown}"),
            );
            return None;
        }
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        cx.error(f.id, "a destination URL may not carry credentials");
        return None;
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => {
            // The URL parser reads `0x7f.1` or `2852039166` as an address:
            // only the dotted quad is accepted, so what is read is what is written.
            let written = text.split("://").nth(1).unwrap_or("");
            if !written.starts_with(&v4.to_string()) && !written.contains(&format!("@{v4}")) {
                cx.error(
                    f.id,
                    format!(
                        "expected an IPv4 address written as a dotted quad ({v4}), found {shown}"
                    ),
                );
                return None;
            }
            Some(std::net::IpAddr::V4(v4))
        }
        Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(why) = literal.and_then(forbidden) {
        cx.error(
            f.id,
            format!("a destination may not be {why}, found {shown}"),
        );
        return None;
    }
    Some(parsed)
}

/// A bare address: one `@`, something on each side, no space, no control
/// character and no angle bracket (so no header can be forged with it).
/// The mail server: `smtp://` (STARTTLS required), `smtps://` (implicit
/// TLS), `?tls=none` only for a loopback host; a sender address.
pub(crate) fn smtp(cx: &Cx, raw: RawSmtp) -> Option<Smtp> {
    let url_at = raw.url.id;
    let text = cx.get(raw.url)?;
    let shown = super::shown(cx, url_at, "a URL", &text);
    let Ok(url) = url::Url::parse(&text) else {
        cx.error(
            url_at,
            format!("expected smtp://HOST:PORT or smtps://HOST:PORT, found {shown}"),
        );
        return None;
    };
    let Some(host) = url
        .host_str()
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_matches(['[', ']']).to_string())
    else {
        cx.error(url_at, format!("expected a URL with a host, found {shown}"));
        return None;
    };
    let none = match url.query() {
        None => false,
        Some("tls=none") => true,
        Some(_) => {
            cx.error(url_at, "the only query an SMTP URL takes is `?tls=none`");
            return None;
        }
    };
    let tls = match (url.scheme(), none) {
        ("smtps", false) => SmtpTls::Implicit,
        ("smtp", false) => SmtpTls::StartTls,
        ("smtp", true) => SmtpTls::None,
        _ => {
            cx.error(
                url_at,
                format!("expected smtp:// (STARTTLS) or smtps:// (TLS), found {shown}"),
            );
            return None;
        }
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if tls == SmtpTls::None && !loopback {
        cx.error(
            url_at,
            "plain SMTP (`?tls=none`) is allowed only to a loopback host: a remote server must use STARTTLS (smtp://) or TLS (smtps://)",
        );
        return None;
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>()
        && let Some(why) = forbidden(ip)
    {
        cx.error(
            url_at,
            format!("a destination may not be {why}, found {shown}"),
        );
        return None;
    }
    let login = (!url.username().is_empty()).then(|| {
        (
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or("")),
        )
    });
    let port = url
        .port()
        .unwrap_or(if tls == SmtpTls::Implicit { 465 } else { 587 });
    let from_at = raw.from.id;
    let from = cx.get(raw.from)?;
    let address = match (from.find('<'), from.strip_suffix('>')) {
        (Some(i), Some(rest)) => {
            let name = &from[..i];
            (!name
                .chars()
                .any(|c| c.is_control() || matches!(c, '<' | '>' | '"')))
            .then(|| rest[i + 1..].to_string())
        }
        (None, None) => Some(from.clone()),
        _ => None,
    };
    if !address.as_deref().is_some_and(is_address) {
        cx.error(
            from_at,
            format!(
                "expected a sender such as `Acme status <status@acme.example>`, found `{}`",
                clip(&from, 80)
            ),
        );
        return None;
    }
    Some(Smtp {
        host,
        port,
        tls,
        login,
        from,
    })
}

/// `%xx` escapes of a URL's user or password, decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len() + 1)
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Standard Webhooks secret: `whsec_` and base64 of 24 to 64 bytes. The
/// value is never shown in an error.
fn secret(cx: &Cx, f: Field<String>) -> Option<Vec<u8>> {
    let text = cx.get(f)?;
    let key = text
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter(|k| (24..=64).contains(&k.len()));
    if key.is_none() {
        cx.error(
            f.id,
            "expected a Standard Webhooks secret: `whsec_` followed by base64 of 24 to 64 bytes (the value is not shown)",
        );
    }
    key
}

fn route(cx: &Cx, raw: RawRoute) -> FileRoute {
    let names = |f: Option<Field<Vec<Field<String>>>>| -> Vec<(String, Origin)> {
        cx.opt(f)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| cx.get(n).map(|v| (v, origin(cx, n.id))))
            .collect()
    };
    let channels_at = raw.channels.id;
    let channels = names(Some(raw.channels));
    if channels.is_empty() {
        cx.error(
            channels_at,
            "expected at least one channel name, found an empty list",
        );
    }
    let mut events = Vec::new();
    match raw.events {
        None => events.extend([EventFamily::Incident, EventFamily::Maintenance]),
        Some(f) => {
            for e in cx.get(f).unwrap_or_default() {
                match cx.get(e).as_deref() {
                    Some("incident") => events.push(EventFamily::Incident),
                    Some("maintenance") => events.push(EventFamily::Maintenance),
                    Some("check") => events.push(EventFamily::Check),
                    Some(other) => cx.error(
                        e.id,
                        format!(
                            "expected `incident`, `maintenance` or `check`, found `{}`",
                            clip(other, 40)
                        ),
                    ),
                    None => {}
                }
            }
        }
    }
    let min_major = match raw.min_impact {
        None => false,
        Some(f) => match cx.get(f).as_deref() {
            Some("minor") => false,
            Some("major") => true,
            Some(other) => {
                cx.error(
                    f.id,
                    format!("expected `minor` or `major`, found `{}`", clip(other, 40)),
                );
                false
            }
            None => false,
        },
    };
    FileRoute {
        channels,
        events,
        groups: names(raw.groups),
        min_major,
    }
}

/// The smallest signing key, in bytes.
pub(crate) const MIN_KEY_BYTES: usize = 32;

/// The `subscriptions` section: `None` when it is off (or wrong). Key
/// files are read here, so `validate` says what is missing; a key's bytes
/// are never shown.
pub(crate) fn subscriptions(cx: &Cx, raw: RawSubscriptions, at: NodeId) -> Option<Subscriptions> {
    if !cx.opt(raw.enabled).unwrap_or(false) {
        return None;
    }
    let Some(first) = raw.signing_key_file else {
        cx.error(
            at,
            "missing key `signing_key_file`: subscriber links are signed (a file of 32 or more random bytes, such as `head -c 32 /dev/urandom`)",
        );
        return None;
    };
    let mut files = vec![first];
    files.extend(cx.opt(raw.previous_signing_key_files).unwrap_or_default());
    let mut keys = Vec::new();
    for f in files {
        let at = f.id;
        let Some(path) = cx.get(f) else { continue };
        // A relative path is the YAML file's neighbour.
        let file = match cx.doc.file.parent() {
            Some(dir) if std::path::Path::new(&path).is_relative() => dir.join(&path),
            _ => std::path::PathBuf::from(&path),
        };
        match std::fs::read(&file) {
            Ok(bytes) if bytes.len() >= MIN_KEY_BYTES => keys.push(bytes),
            Ok(bytes) => cx.error(
                at,
                format!(
                    "the signing key in `{}` is {} bytes: at least {MIN_KEY_BYTES} are needed",
                    clip(&path, 120),
                    bytes.len()
                ),
            ),
            Err(e) => cx.error(
                at,
                format!(
                    "cannot read the signing key file `{}`: {e}",
                    clip(&path, 120)
                ),
            ),
        }
    }
    let positive = |f: Option<Field<u32>>, default: u32| {
        let at = f.as_ref().map(|f| f.id);
        match cx.opt(f) {
            Some(0) => {
                if let Some(at) = at {
                    cx.error(at, "expected a number of 1 or more, found 0");
                }
                None
            }
            Some(n) => Some(n),
            None => Some(default),
        }
    };
    let defaults = Subscriptions::default();
    let max_at = raw.max_subscribers.as_ref().map(|f| f.id);
    let max_subscribers = match cx.opt(raw.max_subscribers) {
        Some(0) => {
            if let Some(at) = max_at {
                cx.error(at, "expected a number of 1 or more, found 0");
            }
            None
        }
        Some(n) => Some(n),
        None => Some(defaults.max_subscribers),
    };
    let mail_rate = positive(raw.mail_rate, defaults.mail_rate);
    let requests_per_minute = positive(raw.requests_per_minute, defaults.requests_per_minute);
    let confirmations_per_day = positive(raw.confirmations_per_day, defaults.confirmations_per_day);
    if keys.is_empty() {
        return None;
    }
    Some(Subscriptions {
        keys,
        max_subscribers: max_subscribers?,
        mail_rate: mail_rate?,
        requests_per_minute: requests_per_minute?,
        confirmations_per_day: confirmations_per_day?,
    })
}

//! What each kind of channel is sent for an event: a Standard Webhooks
//! request, a Slack message, or a PagerDuty Events API v2 event. A body is
//! a function of the event (and the page's URL) only, so every attempt of
//! a delivery sends the same bytes.

use crate::store::outbox::{EventRow, instant};
use base64::Engine;
use config::notify::ChannelKind;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request to send: its headers and body.
#[derive(Debug)]
pub struct Request {
    /// Headers besides the content type.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The event's data with the page's links added (`url` of the incident,
/// and `page`), as every format shows it.
pub fn data(event: &EventRow, public_url: Option<&url::Url>) -> Value {
    let mut data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    if let (Some(base), Some(obj)) = (public_url, data.as_object_mut()) {
        let base = base.as_str().trim_end_matches('/');
        obj.insert("page".into(), Value::from(format!("{base}/")));
        if let Some(id) = obj
            .get("incident")
            .and_then(|i| i.get("id"))
            .and_then(Value::as_i64)
        {
            obj.insert("url".into(), Value::from(format!("{base}/incidents/{id}")));
        }
    }
    data
}

/// Whether a channel of this kind is told of this event type at all:
/// PagerDuty hears only what opens or resolves an alert.
pub fn heard_by(kind: &ChannelKind, event_type: &str) -> bool {
    match kind {
        ChannelKind::PagerDuty { .. } => matches!(
            event_type,
            "incident.opened" | "incident.reopened" | "incident.resolved" | "test"
        ),
        _ => true,
    }
}

/// The request for `event` to a channel of `kind`, signed (for a webhook)
/// at `now_s` (seconds since the epoch).
pub fn request(
    kind: &ChannelKind,
    event: &EventRow,
    public_url: Option<&url::Url>,
    now_s: i64,
) -> Request {
    let data = data(event, public_url);
    match kind {
        ChannelKind::Webhook { secrets, .. } => {
            let body = json!({
                "type": event.kind,
                "timestamp": instant(event.at),
                "data": data,
            })
            .to_string()
            .into_bytes();
            let signatures: Vec<String> = secrets
                .iter()
                .map(|key| sign(key, &event.id, now_s, &body))
                .collect();
            Request {
                headers: vec![
                    ("webhook-id", event.id.clone()),
                    ("webhook-timestamp", now_s.to_string()),
                    ("webhook-signature", signatures.join(" ")),
                ],
                body,
            }
        }
        ChannelKind::Slack { .. } => Request {
            headers: Vec::new(),
            body: slack(event, &data).to_string().into_bytes(),
        },
        ChannelKind::PagerDuty { routing_key, .. } => Request {
            headers: Vec::new(),
            body: pagerduty(routing_key, event, &data)
                .to_string()
                .into_bytes(),
        },
        // Mail is composed by `mail::compose`; it has no HTTP request.
        ChannelKind::Email { .. } => Request {
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}

/// A Standard Webhooks signature: `v1,` and the base64 of HMAC-SHA256 over
/// `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The checks an event is about, by name: `Web, API` (its `incident`'s
/// or its `window`'s).
fn check_names(data: &Value) -> String {
    let names: Vec<&str> = data
        .get("incident")
        .or_else(|| data.get("window"))
        .and_then(|i| i.get("checks"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "no check".into()
    } else {
        names.join(", ")
    }
}

/// The text at `data[object][key]`, or empty.
pub(crate) fn field<'a>(data: &'a Value, object: &str, key: &str) -> &'a str {
    data.get(object)
        .and_then(|o| o.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` only.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_maintenance(event: &EventRow, data: &Value) -> Value {
    let name = field(data, "window", "name");
    let checks = escape(&check_names(data));
    let verb = match event.kind.as_str() {
        "maintenance.scheduled" => "Maintenance scheduled",
        "maintenance.starting" => "Maintenance starting soon",
        "maintenance.started" => "Maintenance started",
        "maintenance.completed" => "Maintenance completed",
        other => other,
    };
    let (starts, ends) = (
        field(data, "window", "starts_at"),
        field(data, "window", "ends_at"),
    );
    json!({
        "text": format!("{verb}: {} ({checks}), {starts} to {ends}", escape(name)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": format!("{verb}: {name}")}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": format!("*Starts*\n{starts}")},
                {"type": "mrkdwn", "text": format!("*Ends*\n{ends}")},
                {"type": "mrkdwn", "text": format!("*Affected*\n{checks}")},
            ]},
        ],
    })
}

fn slack(event: &EventRow, data: &Value) -> Value {
    if event.kind.starts_with("maintenance.") {
        return slack_maintenance(event, data);
    }
    if event.kind == "check.status_changed" {
        let name = escape(field(data, "check", "name"));
        let status = data.get("status").and_then(Value::as_str).unwrap_or("");
        return json!({
            "text": format!("{name} is {status}"),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!("*{name}* is *{status}*")}}],
        });
    }
    let title = escape(field(data, "incident", "title"));
    let state = field(data, "incident", "state");
    let impact = field(data, "incident", "impact");
    let checks = escape(&check_names(data));
    let message = escape(field(data, "update", "message"));
    let verb = match event.kind.as_str() {
        "incident.opened" => "Incident opened",
        "incident.reopened" => "Incident reopened",
        "incident.resolved" => "Incident resolved",
        "incident.updated" => "Incident updated",
        "test" => "Test event",
        other => other,
    };
    let text = format!("{verb}: {title} ({checks}): {state}");
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{verb}: {}", field(data, "incident", "title"))}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Status*\n{state}")},
            {"type": "mrkdwn", "text": format!("*Impact*\n{impact}")},
            {"type": "mrkdwn", "text": format!("*Affected*\n{checks}")},
        ]}),
    ];
    if !message.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": message}}));
    }
    if let Some(url) = data.get("url").and_then(Value::as_str) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{url}|View on the status page>")}}));
    }
    json!({"text": text, "blocks": blocks})
}

fn pagerduty(routing_key: &str, event: &EventRow, data: &Value) -> Value {
    let incident = data
        .get("incident")
        .and_then(|i| i.get("id"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let action = if event.kind == "incident.resolved" {
        "resolve"
    } else {
        "trigger"
    };
    let severity = if field(data, "incident", "impact") == "major" {
        "critical"
    } else {
        "warning"
    };
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": format!("statuspage-incident-{incident}"),
        "payload": {
            "summary": format!("{} ({})", field(data, "incident", "title"), check_names(data)),
            "source": "statuspage",
            "severity": severity,
            "timestamp": instant(event.at),
            "custom_details": data,
        },
    });
    if let Some(url) = data.get("url").and_then(Value::as_str) {
        body["links"] = json!([{"href": url, "text": "Status page"}]);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> EventRow {
        EventRow {
            id: "maintenance-3-started".into(),
            kind: kind.into(),
            at: 1_796_000_000_000,
            subject: "maintenance-3".into(),
            seq: 3,
            data: data.to_string(),
            channel: None,
        }
    }

    #[test]
    fn maintenance_reaches_slack_and_webhooks_but_never_pages() {
        let e = event(
            "maintenance.started",
            json!({"window": {"id": 3, "name": "DB <upgrade>", "checks": [{"id": "db", "name": "Database"}],
                   "starts_at": "2026-12-02T02:00:00Z", "ends_at": "2026-12-02T03:00:00Z"}}),
        );
        let slack = url::Url::parse("https://hooks.slack.test/x").unwrap();
        let body = request(&ChannelKind::Slack { url: slack }, &e, None, 0).body;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["text"],
            "Maintenance started: DB &lt;upgrade&gt; (Database), 2026-12-02T02:00:00Z to 2026-12-02T03:00:00Z"
        );
        let pd = ChannelKind::PagerDuty {
            url: url::Url::parse("https://pd.test/").unwrap(),
            routing_key: "k".into(),
        };
        assert!(!heard_by(&pd, "maintenance.started"));
        assert!(!heard_by(&pd, "incident.updated"));
        assert!(heard_by(&pd, "incident.opened"));
        let page = url::Url::parse("https://status.example.com/").unwrap();
        let hook = ChannelKind::Webhook {
            url: page.clone(),
            secrets: vec![b"0123456789abcdef01234567".to_vec()],
        };
        let r = request(&hook, &e, Some(&page), 1_796_000_000);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "maintenance.started");
        assert_eq!(v["data"]["page"], "https://status.example.com/");
        assert_eq!(
            r.headers[0],
            ("webhook-id", "maintenance-3-started".to_string())
        );
        assert_eq!(
            r.headers[1],
            ("webhook-timestamp", "1796000000".to_string())
        );
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (secret
        // `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`).
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}

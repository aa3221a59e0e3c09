//! Email channels: a multipart text and HTML mail (maud, so every text is
//! escaped) per event, sent with lettre over rustls. One incident's mails
//! thread together: the first is `<incident-{id}@{domain}>`, the rest
//! answer it (`In-Reply-To`, `References`). No header value can carry CR or
//! LF: every text put in one has its control characters turned to spaces.

use super::format::field;
use crate::store::outbox::EventRow;
use config::notify::{Smtp, SmtpTls};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use maud::html;
use serde_json::Value;
use std::time::Duration;

/// Why a mail was not sent.
#[derive(Debug)]
pub struct MailError {
    /// The server refused it for good (5xx), or it cannot be built.
    pub permanent: bool,
    /// What happened (no password in it).
    pub message: String,
}

/// A text fit for a header: control characters (CR and LF among them)
/// become spaces, and it is cut to 200 characters.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// The domain of the sender's address, for message ids.
pub fn domain(from: &str) -> String {
    from.rsplit('@')
        .next()
        .unwrap_or("statuspage")
        .trim_end_matches('>')
        .to_string()
}

/// The subject, text and HTML of `event`, and its thread.
#[derive(Debug)]
pub struct Composed {
    /// `Subject`.
    pub subject: String,
    /// `Message-ID`.
    pub message_id: String,
    /// `In-Reply-To` and `References`: the thread's first mail.
    pub thread: Option<String>,
    /// The text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// What the mail for `event` says. `data` is the event's data with the
/// page's links added.
pub fn compose(event: &EventRow, data: &Value, from: &str) -> Composed {
    let domain = domain(from);
    let (object, title) = if data.get("window").is_some() {
        ("window", field(data, "window", "name"))
    } else if data.get("check").is_some() {
        ("check", field(data, "check", "name"))
    } else if data.get("incident").is_some() {
        ("incident", field(data, "incident", "title"))
    } else {
        ("", "Test event")
    };
    let checks: Vec<String> = data
        .get(object)
        .and_then(|o| o.get("checks"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let state = match event.kind.as_str() {
        "incident.opened" => "Investigating",
        "incident.reopened" => "Reopened",
        "incident.resolved" => "Resolved",
        "incident.updated" => "Updated",
        "maintenance.scheduled" => "Maintenance scheduled",
        "maintenance.starting" => "Maintenance starting soon",
        "maintenance.started" => "Maintenance started",
        "maintenance.completed" => "Maintenance completed",
        "check.status_changed" => match data.get("status").and_then(Value::as_str) {
            Some("up") => "Up",
            Some("down") => "Down",
            Some("degraded") => "Degraded",
            Some("maintenance") => "In maintenance",
            _ => "Unknown",
        },
        _ => "Test",
    };
    let affected = if checks.is_empty() {
        String::new()
    } else {
        format!(" ({})", checks.join(", "))
    };
    let subject = one_line(&format!("[{state}] {title}{affected}"));
    let message = if object == "incident" {
        field(data, "update", "message")
    } else if object == "window" {
        field(data, "window", "description")
    } else {
        field(data, "", "message")
    };
    let message = if message.is_empty() {
        data.get("message").and_then(Value::as_str).unwrap_or("")
    } else {
        message
    };
    let url = data
        .get("url")
        .or_else(|| data.get("page"))
        .and_then(Value::as_str);
    let incident = data
        .get("incident")
        .and_then(|i| i.get("id"))
        .and_then(Value::as_i64);
    let window = data
        .get("window")
        .and_then(|w| w.get("id"))
        .and_then(Value::as_i64);
    let root = match (incident, window) {
        (Some(i), _) => Some(format!("<incident-{i}@{domain}>")),
        (None, Some(w)) => Some(format!("<maintenance-{w}@{domain}>")),
        _ => None,
    };
    let first = matches!(
        event.kind.as_str(),
        "incident.opened" | "maintenance.scheduled"
    );
    let message_id = match (&root, first) {
        (Some(root), true) => root.clone(),
        _ => format!("<{}@{domain}>", one_line(&event.id).replace(' ', "-")),
    };
    let thread = if first { None } else { root };
    let mut text = format!("{state}: {title}\n");
    if !checks.is_empty() {
        text.push_str(&format!("Affected: {}\n", checks.join(", ")));
    }
    if !message.is_empty() {
        text.push_str(&format!("\n{message}\n"));
    }
    if let Some(url) = url {
        text.push_str(&format!("\n{url}\n"));
    }
    let html = html! {
        html {
            body {
                h1 { (state) ": " (title) }
                @if !checks.is_empty() {
                    p { "Affected: " (checks.join(", ")) }
                }
                @if !message.is_empty() {
                    p { (message) }
                }
                @if let Some(url) = url {
                    p { a href=(url) { "View on the status page" } }
                }
            }
        }
    }
    .into_string();
    Composed {
        subject,
        message_id,
        thread,
        text,
        html,
    }
}

fn refused(message: impl Into<String>) -> MailError {
    MailError {
        permanent: true,
        message: message.into(),
    }
}

/// A connection to `smtp` within `deadline`, reused for several mails
/// (pooled). The server's name is resolved once and every address checked;
/// the connection goes to the address checked, and TLS verifies the
/// server's name.
pub async fn transport(
    smtp: &Smtp,
    deadline: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let address = super::send::resolve_host(&smtp.host, smtp.port)
        .await
        .map_err(|message| MailError {
            permanent: false,
            message,
        })?;
    let parameters =
        || TlsParameters::new(smtp.host.clone()).map_err(|e| refused(format!("TLS: {e}")));
    let tls = match smtp.tls {
        SmtpTls::StartTls => Tls::Required(parameters()?),
        SmtpTls::Implicit => Tls::Wrapper(parameters()?),
        SmtpTls::None => Tls::None,
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .tls(tls)
            .timeout(Some(deadline));
    if let Some((user, password)) = &smtp.login {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(transport.build())
}

/// Headers some mails carry besides the usual ones (`List-Unsubscribe`).
pub type Extra = Vec<(HeaderName, String)>;

/// Builds `mail` from `from` to `to`, with `extra` headers (each value
/// made one line).
pub fn message(
    from: &str,
    to: &[String],
    mail: Composed,
    extra: Extra,
) -> Result<Message, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| refused(format!("the sender: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject)
        .message_id(Some(mail.message_id));
    if let Some(root) = mail.thread {
        builder = builder.in_reply_to(root.clone()).references(root);
    }
    for address in to {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|e| refused(format!("a recipient: {e}")))?;
        builder = builder.to(mailbox);
    }
    for (name, value) in extra {
        builder = builder.raw_header(HeaderValue::new(name, one_line(&value)));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        .map_err(|e| refused(format!("building the mail: {e}")))
}

/// Sends `message` over `transport` within `deadline`.
pub async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
    deadline: Duration,
) -> Result<(), MailError> {
    match tokio::time::timeout(deadline, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(MailError {
            permanent: e.is_permanent(),
            message: format!("SMTP: {e}"),
        }),
        Err(_) => Err(MailError {
            permanent: false,
            message: format!("no answer within {deadline:?}"),
        }),
    }
}

/// Sends `mail` to `to` through `smtp` within `deadline`, on a connection
/// of its own.
pub async fn send(
    smtp: &Smtp,
    to: &[String],
    mail: Composed,
    deadline: Duration,
) -> Result<(), MailError> {
    let message = message(&smtp.from, to, mail, Vec::new())?;
    deliver(&transport(smtp, deadline).await?, message, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_hostile_title_cannot_break_a_header_and_is_escaped_in_html() {
        let event = EventRow {
            id: "incident-4-9".into(),
            kind: "incident.updated".into(),
            at: 0,
            subject: "incident-4".into(),
            seq: 9,
            data: String::new(),
            channel: None,
        };
        let data = json!({
            "incident": {"id": 4, "title": "Web\r\nBcc: all@evil.example <script>", "checks": [{"id": "web", "name": "Web & <b>"}]},
            "update": {"message": "<img src=x onerror=alert(1)>"},
            "url": "https://status.example.com/incidents/4",
        });
        let m = compose(&event, &data, "Acme status <status@acme.example>");
        assert!(
            !m.subject.contains('\r') && !m.subject.contains('\n'),
            "{}",
            m.subject
        );
        assert!(m.html.contains("&lt;script&gt;") && !m.html.contains("<script>"));
        assert!(m.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(m.message_id, "<incident-4-9@acme.example>");
        assert_eq!(m.thread.as_deref(), Some("<incident-4@acme.example>"));
    }
}

//! `/feed.atom`: an Atom (RFC 4287) feed of the public incidents, one entry
//! per incident with its updates as content. An entry's id is the
//! incident's permanent URL, so it never changes as updates are added; its
//! `updated` is its newest update.
//!
//! Maintenance windows of public checks are entries too, one per phase
//! reached: scheduled (when it was made), started and completed (at its
//! start and end), each with an id of its own, so a reader sees each.

use crate::api::instant;
use crate::pages::{Site, state_text};
use crate::read::{IncidentRow, UpdateRow, WindowRow};
use ingest::state::Millis;

/// How many incidents the feed carries.
pub const ENTRIES: i64 = 50;

/// How long an ended maintenance window stays in the feed, in ms.
pub const WINDOWS_FOR: Millis = 30 * 86_400_000;

/// One entry, before it is written.
struct Entry {
    id: String,
    title: String,
    published: Millis,
    updated: Millis,
    link: String,
    category: String,
    content: String,
}

/// The entries of maintenance window `w` (its checks' names given) that
/// have happened by `now`.
fn window_entries(base: &str, w: &WindowRow, names: &[String], now: Millis) -> Vec<Entry> {
    let mut phases = vec![(
        "scheduled",
        "Maintenance scheduled",
        w.created_at.min(w.starts_at),
    )];
    if now >= w.starts_at {
        phases.push(("started", "Maintenance started", w.starts_at));
    }
    if now >= w.ends_at {
        phases.push(("completed", "Maintenance completed", w.ends_at));
    }
    let when = format!("{} – {}", instant(w.starts_at), instant(w.ends_at));
    phases
        .into_iter()
        .map(|(phase, label, at)| Entry {
            id: format!("{base}/#maintenance-{}-{phase}", w.id),
            title: format!("{label}: {}", w.name),
            published: at,
            updated: at,
            link: format!("{base}/"),
            category: format!("maintenance-{phase}"),
            content: format!(
                "<p><strong>{}</strong> · {}<br>Affects: {}</p>{}",
                escape(label),
                escape(&when),
                escape(&names.join(", ")),
                w.description
                    .as_deref()
                    .map(|d| format!("<p>{}</p>", escape(d)))
                    .unwrap_or_default()
            ),
        })
        .collect()
}

/// Text made safe for XML 1.0: markup characters escaped, and characters
/// XML cannot carry at all (most control characters) dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// An entry's content: its updates, newest first, as HTML (which the XML
/// then carries as escaped text).
fn content(updates: &[UpdateRow]) -> String {
    updates
        .iter()
        .rev()
        .map(|u| {
            format!(
                "<p><strong>{}</strong> · {} · {}<br>{}</p>",
                state_text(&u.state),
                instant(u.at),
                escape(&u.author),
                escape(&u.message)
            )
        })
        .collect()
}

/// The feed: incidents, and maintenance windows (with their checks'
/// names). `now` is its `updated` when it has no entries.
pub fn atom(
    site: &Site,
    now: Millis,
    incidents: &[(IncidentRow, Vec<UpdateRow>)],
    windows: &[(WindowRow, Vec<String>)],
) -> String {
    let base = site.public_url.trim_end_matches('/');
    let mut entries: Vec<Entry> = incidents
        .iter()
        .map(|(i, updates)| {
            let url = format!("{base}/incidents/{}", i.id);
            Entry {
                id: url.clone(),
                title: format!("[{}] {}", state_text(&i.state), i.title),
                published: i.started_at,
                updated: updates.last().map_or(i.started_at, |u| u.at),
                link: url,
                category: i.state.clone(),
                content: content(updates),
            }
        })
        .collect();
    for (w, names) in windows {
        entries.extend(window_entries(base, w, names, now));
    }
    entries.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
    let updated = entries.iter().map(|e| e.updated).max().unwrap_or(now);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(&format!("  <id>{}/feed.atom</id>\n", escape(base)));
    out.push_str(&format!(
        "  <title>{} incidents and maintenance</title>\n",
        escape(&site.title)
    ));
    out.push_str(&format!("  <updated>{}</updated>\n", instant(updated)));
    out.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}/feed.atom\"/>\n",
        escape(base)
    ));
    out.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}/\"/>\n",
        escape(base)
    ));
    out.push_str(&format!(
        "  <author><name>{}</name></author>\n",
        escape(&site.title)
    ));
    out.push_str("  <generator>statuspage</generator>\n");
    for e in entries {
        out.push_str("  <entry>\n");
        out.push_str(&format!("    <id>{}</id>\n", escape(&e.id)));
        out.push_str(&format!("    <title>{}</title>\n", escape(&e.title)));
        out.push_str(&format!(
            "    <published>{}</published>\n",
            instant(e.published)
        ));
        out.push_str(&format!("    <updated>{}</updated>\n", instant(e.updated)));
        out.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            escape(&e.link)
        ));
        out.push_str(&format!(
            "    <category term=\"{}\"/>\n",
            escape(&e.category)
        ));
        out.push_str(&format!(
            "    <content type=\"html\">{}</content>\n",
            escape(&e.content)
        ));
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            title: "Acme & Co".into(),
            logo_url: None,
            links: vec![],
            public_url: "https://status.acme.test/".into(),
            subscribe: false,
            collapse_over: crate::pages::COLLAPSE_OVER,
        }
    }

    fn incident(id: i64, title: &str) -> (IncidentRow, Vec<UpdateRow>) {
        (
            IncidentRow {
                id,
                title: title.into(),
                impact: "major".into(),
                state: "resolved".into(),
                auto: true,
                started_at: 1_000,
                resolved_at: Some(5_000),
                open_ms: Some(4_000),
                checks: vec![],
            },
            vec![
                UpdateRow {
                    incident: id,
                    at: 1_000,
                    state: "investigating".into(),
                    message: "Detected <b>".into(),
                    author: "statuspage".into(),
                },
                UpdateRow {
                    incident: id,
                    at: 5_000,
                    state: "resolved".into(),
                    message: "Fixed".into(),
                    author: "alice".into(),
                },
            ],
        )
    }

    #[test]
    fn xml_special_and_forbidden_characters_never_reach_the_feed_raw() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("bell\u{7}null\u{0}tab\t"), "bellnulltab\t");
    }

    #[test]
    fn an_entry_is_identified_by_its_incident_url_and_updated_by_its_newest_update() {
        let feed = atom(&site(), 99_000, &[incident(7, "API <down>")], &[]);
        assert!(feed.contains("<id>https://status.acme.test/incidents/7</id>"));
        assert!(feed.contains("<id>https://status.acme.test/feed.atom</id>"));
        assert!(feed.contains("<title>[Resolved] API &lt;down&gt;</title>"));
        assert!(feed.contains("<updated>1970-01-01T00:00:05Z</updated>"));
        assert!(feed.contains("<published>1970-01-01T00:00:01Z</published>"));
        assert!(feed.contains("<title>Acme &amp; Co incidents and maintenance</title>"));
        // Markup in a message is escaped twice: once as HTML, once as XML.
        assert!(feed.contains("Detected &amp;lt;b&amp;gt;"), "{feed}");
        // Newest update first.
        assert!(feed.find("Fixed").unwrap() < feed.find("Detected").unwrap());
    }

    #[test]
    fn a_maintenance_window_is_an_entry_per_phase_reached() {
        let w = WindowRow {
            id: 3,
            name: "DB <upgrade>".into(),
            description: Some("Planned.".into()),
            checks: vec!["db".into()],
            starts_at: 10_000,
            ends_at: 20_000,
            created_at: 1_000,
        };
        let names = vec!["Database".to_string()];
        let at = |now| atom(&site(), now, &[], &[(w.clone(), names.clone())]);
        let before = at(5_000);
        assert!(before.contains("<id>https://status.acme.test/#maintenance-3-scheduled</id>"));
        assert!(before.contains("<title>Maintenance scheduled: DB &lt;upgrade&gt;</title>"));
        assert!(before.contains("Affects: Database"));
        assert!(!before.contains("started"));
        let after = at(30_000);
        for phase in ["scheduled", "started", "completed"] {
            assert!(
                after.contains(&format!("#maintenance-3-{phase}</id>")),
                "{phase}"
            );
        }
        // Newest first.
        assert!(after.find("completed</id>").unwrap() < after.find("scheduled</id>").unwrap());
        assert!(after.contains("<updated>1970-01-01T00:00:20Z</updated>"));
    }

    #[test]
    fn an_empty_feed_is_updated_now() {
        let feed = atom(&site(), 86_400_000, &[], &[]);
        assert!(feed.contains("<updated>1970-01-02T00:00:00Z</updated>"));
        assert!(!feed.contains("<entry>"));
    }
}

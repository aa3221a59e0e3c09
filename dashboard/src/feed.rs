//! `/feed.atom`: an Atom (RFC 4287) feed of the public incidents, one entry
//! per incident with its updates as content. An entry's id is the
//! incident's permanent URL, so it never changes as updates are added; its
//! `updated` is its newest update.

use crate::api::instant;
use crate::pages::{Site, state_text};
use crate::read::{IncidentRow, UpdateRow};
use ingest::state::Millis;

/// How many incidents the feed carries.
pub const ENTRIES: i64 = 50;

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

/// The feed. `now` is its `updated` when it has no entries.
pub fn atom(site: &Site, now: Millis, incidents: &[(IncidentRow, Vec<UpdateRow>)]) -> String {
    let base = site.public_url.trim_end_matches('/');
    let last = |(i, u): &(IncidentRow, Vec<UpdateRow>)| u.last().map_or(i.started_at, |u| u.at);
    let updated = incidents.iter().map(last).max().unwrap_or(now);
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(&format!("  <id>{}/feed.atom</id>\n", escape(base)));
    out.push_str(&format!(
        "  <title>{} incidents</title>\n",
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
    for entry in incidents {
        let (i, updates) = entry;
        let url = format!("{base}/incidents/{}", i.id);
        let title = format!("[{}] {}", state_text(&i.state), i.title);
        out.push_str("  <entry>\n");
        out.push_str(&format!("    <id>{}</id>\n", escape(&url)));
        out.push_str(&format!("    <title>{}</title>\n", escape(&title)));
        out.push_str(&format!(
            "    <published>{}</published>\n",
            instant(i.started_at)
        ));
        out.push_str(&format!(
            "    <updated>{}</updated>\n",
            instant(last(entry))
        ));
        out.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            escape(&url)
        ));
        out.push_str(&format!("    <category term=\"{}\"/>\n", escape(&i.state)));
        out.push_str(&format!(
            "    <content type=\"html\">{}</content>\n",
            escape(&content(updates))
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
        let feed = atom(&site(), 99_000, &[incident(7, "API <down>")]);
        assert!(feed.contains("<id>https://status.acme.test/incidents/7</id>"));
        assert!(feed.contains("<id>https://status.acme.test/feed.atom</id>"));
        assert!(feed.contains("<title>[Resolved] API &lt;down&gt;</title>"));
        assert!(feed.contains("<updated>1970-01-01T00:00:05Z</updated>"));
        assert!(feed.contains("<published>1970-01-01T00:00:01Z</published>"));
        assert!(feed.contains("<title>Acme &amp; Co incidents</title>"));
        // Markup in a message is escaped twice: once as HTML, once as XML.
        assert!(feed.contains("Detected &amp;lt;b&amp;gt;"), "{feed}");
        // Newest update first.
        assert!(feed.find("Fixed").unwrap() < feed.find("Detected").unwrap());
    }

    #[test]
    fn an_empty_feed_is_updated_now() {
        let feed = atom(&site(), 86_400_000, &[]);
        assert!(feed.contains("<updated>1970-01-02T00:00:00Z</updated>"));
        assert!(!feed.contains("<entry>"));
    }
}

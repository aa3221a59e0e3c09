//! Shields-style SVG badges: `status` and `uptime <window>`. The geometry
//! (text widths, where each half goes) is pure and unit-tested; the SVG is
//! written by maud, so a check's name in the title is escaped.

use ingest::status::Status;
use ingest::uptime::percent_floor;
use maud::{Markup, html};

/// The badge height.
pub const HEIGHT: u32 = 20;
/// Space on each side of a text.
const PAD: f64 = 6.0;

/// A badge: a grey label on the left, a coloured value on the right.
#[derive(Clone, Debug, PartialEq)]
pub struct Badge {
    /// The left text.
    pub label: String,
    /// The right text.
    pub value: String,
    /// The right half's colour.
    pub color: &'static str,
    /// The accessible title (names the check).
    pub title: String,
}

/// The approximate width of `text` in 11px Verdana-like type, in px.
pub fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | 't' | 'f' | 'r' | 'I' | '.' | ',' | ':' | ';' | '|' | '!' | '\''
            | '(' | ')' | '[' | ']' | ' ' => 4.0,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.0,
            c if c.is_ascii_uppercase() => 7.5,
            _ => 6.6,
        })
        .sum()
}

/// Where the halves go: (label width, value width).
pub fn widths(b: &Badge) -> (f64, f64) {
    (
        (text_width(&b.label) + 2.0 * PAD).round(),
        (text_width(&b.value) + 2.0 * PAD).round(),
    )
}

/// The colour of a status.
pub fn status_color(s: Status) -> &'static str {
    match s {
        Status::Up => "#2e7d32",
        Status::Degraded => "#a15c00",
        Status::Down => "#c62828",
        Status::Maintenance => "#2f5fd0",
        Status::Unknown => "#5f6670",
    }
}

/// The colour of an uptime ratio.
pub fn uptime_color(r: Option<f64>) -> &'static str {
    match r {
        None => "#5f6670",
        Some(r) if r >= 0.999 => "#2e7d32",
        Some(r) if r >= 0.99 => "#5b7d0c",
        Some(r) if r >= 0.95 => "#a15c00",
        Some(_) => "#c62828",
    }
}

/// The status badge of `name`.
pub fn status(name: &str, s: Status) -> Badge {
    let value = match s {
        Status::Unknown => "no data",
        other => other.as_str(),
    };
    Badge {
        label: "status".into(),
        value: value.into(),
        color: status_color(s),
        title: format!("{name}: {value}"),
    }
}

/// The uptime badge of `name` over `window` (24h, 7d, 30d, 90d).
pub fn uptime(name: &str, window: &str, r: Option<f64>) -> Badge {
    let value = r.map_or_else(|| "no data".to_string(), |r| percent_floor(r, 2));
    Badge {
        label: format!("uptime {window}"),
        value: value.clone(),
        color: uptime_color(r),
        title: format!("{name}: {value} uptime over {window}"),
    }
}

/// The badge for an id that is not a public check.
pub fn not_found() -> Badge {
    Badge {
        label: "status".into(),
        value: "not found".into(),
        color: "#5f6670",
        title: "No public check has this id".into(),
    }
}

/// The SVG document.
pub fn svg(b: &Badge) -> Markup {
    let (lw, vw) = widths(b);
    let w = lw + vw;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(HEIGHT)
            viewBox={"0 0 " (w) " " (HEIGHT)} role="img" aria-label=(b.title) {
            title { (b.title) }
            rect width=(lw) height=(HEIGHT) fill="#555" rx="3" {}
            rect x=(lw) width=(vw) height=(HEIGHT) fill=(b.color) rx="3" {}
            rect x=(lw) width="4" height=(HEIGHT) fill=(b.color) {}
            g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" {
                text x=(lw / 2.0) y="14" { (b.label) }
                text x=(lw + vw / 2.0) y="14" { (b.value) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_fit_their_text_with_padding() {
        let b = status("API", Status::Up);
        let (lw, vw) = widths(&b);
        assert_eq!(lw, (text_width("status") + 12.0).round());
        assert_eq!(vw, (text_width("up") + 12.0).round());
        assert!(text_width("WWW") > text_width("iii"));
        let longer = uptime("API", "90d", Some(0.99995));
        assert!(widths(&longer).0 > lw);
    }

    #[test]
    fn values_and_colours_follow_the_status_and_the_floored_uptime() {
        assert_eq!(status("a", Status::Down).value, "down");
        assert_eq!(status("a", Status::Unknown).value, "no data");
        assert_eq!(status("a", Status::Down).color, "#c62828");
        let u = uptime("a", "30d", Some(0.99999));
        assert_eq!(u.value, "99.99%");
        assert_eq!(u.color, "#2e7d32");
        assert_eq!(uptime("a", "7d", Some(0.98)).color, "#a15c00");
        assert_eq!(uptime("a", "7d", None).value, "no data");
        assert_eq!(u.title, "a: 99.99% uptime over 30d");
    }

    #[test]
    fn the_svg_is_well_formed_and_escapes_the_name() {
        let svg = svg(&status("<script>x</script>", Status::Up)).into_string();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("<title>&lt;script&gt;x&lt;/script&gt;: up</title>"));
        assert!(!svg.contains("<script>"));
        assert_eq!(svg.matches("<rect").count(), svg.matches("</rect>").count());
    }
}

//! `/groups/{id}`: one group's checks with their 90-day bars, a page of
//! [`PER_PAGE`] at a time, for a front page that folds its groups.

use super::home::{check_item, group_counts, group_description};
use super::{Site, layout, pill};
use crate::model::{Freshness, Group};
use ingest::state::Millis;
use maud::{Markup, html};

/// Checks per page of a group.
pub const PER_PAGE: usize = 100;

/// How many pages of [`PER_PAGE`] `checks` fill (at least one).
pub fn pages(checks: usize) -> usize {
    checks.div_ceil(PER_PAGE).max(1)
}

/// Page `page` (from 1) of the group `g`.
pub fn page(site: &Site, now: Millis, freshness: Freshness, g: &Group<'_>, page: usize) -> Markup {
    let pages = pages(g.checks.len());
    let label = if g.name.is_empty() { "Checks" } else { g.name };
    let shown = g.checks.iter().skip((page - 1) * PER_PAGE).take(PER_PAGE);
    let body = html! {
        p.back { a href="/" { "← All checks" } }
        div.check-title {
            h1 { (label) }
            (pill(g.worst()))
        }
        p.meta { (group_counts(g)) }
        (group_description(g))
        ul.checks {
            @for c in shown { (check_item(c, now)) }
        }
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href={"/groups/" (g.id) "?page=" (page - 1)} { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href={"/groups/" (g.id) "?page=" (page + 1)} { "Next →" } }
            }
        }
    };
    layout(site, label, now, Some(freshness), body)
}

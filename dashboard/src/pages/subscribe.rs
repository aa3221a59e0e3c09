//! The subscription pages: the form, its one answer, and the pages behind
//! the signed links. None of them needs JavaScript or a cookie; every action
//! is a form POST. The form's answer is built from the address alone (no
//! time, no token, no id), so it is the same for a new, a pending and a
//! confirmed address.

use super::{Site, timeless};
use maud::{Markup, html};

/// A choice the form offers: a group and its public checks (id, name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The group's name ("" for checks in no group).
    pub group: String,
    /// Its checks: (id, name).
    pub checks: Vec<(String, String)>,
}

fn choices(all: &[Choice], checks: &[String], groups: &[String]) -> Markup {
    html! {
        fieldset.choices {
            legend { "What to hear about" }
            p.hint { "Leave everything unticked to hear of every public incident and maintenance window." }
            @for c in all {
                div.choice-group {
                    @if !c.group.is_empty() {
                        label.group {
                            input type="checkbox" name="group" value=(c.group) checked[groups.contains(&c.group)];
                            " " strong { (c.group) } " (all of it)"
                        }
                    }
                    ul {
                        @for (id, name) in &c.checks {
                            li {
                                label {
                                    input type="checkbox" name="check" value=(id) checked[checks.contains(id)];
                                    " " (name)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /subscribe`: the form.
pub fn form(site: &Site, all: &[Choice]) -> Markup {
    let body = html! {
        h1 { "Subscribe to updates" }
        p { "Get an email when an incident opens, is updated or is resolved, and when maintenance is scheduled, about to start or completed. You confirm by a link we send; every mail has a one-click unsubscribe link." }
        form.subscribe method="post" action="/subscribe" {
            label for="email" { "Email address" }
            input #email type="email" name="email" required autocomplete="email" maxlength="254" placeholder="you@example.com";
            (choices(all, &[], &[]))
            button type="submit" { "Subscribe" }
        }
    };
    timeless(site, "Subscribe", body)
}

/// The one answer to a subscribe request, whatever the address's state.
pub fn check_inbox(site: &Site, email: &str) -> Markup {
    let body = html! {
        h1 { "Check your inbox" }
        p { "If " strong { (email) } " can be subscribed, a mail is on its way to it. Follow its link to confirm, or to change what you receive if the address is already subscribed." }
        p { "Nothing is sent to an address until it is confirmed." }
        p { a href="/" { "Back to the status page" } }
    };
    timeless(site, "Check your inbox", body)
}

/// A page with a message and no form (refusals, results).
pub fn message(site: &Site, title: &str, lines: &[&str]) -> Markup {
    let body = html! {
        h1 { (title) }
        @for line in lines { p { (line) } }
        p { a href="/" { "Back to the status page" } }
    };
    timeless(site, title, body)
}

/// `GET /subscribe/confirm/…`: a button, so a mail scanner that follows
/// links confirms nothing.
pub fn confirm(site: &Site, email: &str, action: &str) -> Markup {
    let body = html! {
        h1 { "Confirm your subscription" }
        p { "Send incident and maintenance updates to " strong { (email) } "?" }
        form method="post" action=(action) {
            button type="submit" { "Confirm" }
        }
    };
    timeless(site, "Confirm", body)
}

/// `GET /subscribe/unsubscribe/…`: a button (the same POST as the
/// one-click unsubscribe of mail clients).
pub fn unsubscribe(site: &Site, email: &str, action: &str) -> Markup {
    let body = html! {
        h1 { "Unsubscribe" }
        p { "Stop all mail from this status page to " strong { (email) } "?" }
        form method="post" action=(action) {
            input type="hidden" name="List-Unsubscribe" value="One-Click";
            button type="submit" { "Unsubscribe" }
        }
    };
    timeless(site, "Unsubscribe", body)
}

/// `GET /subscribe/preferences/…`: the choices, and an unsubscribe button.
pub fn preferences(
    site: &Site,
    email: &str,
    all: &[Choice],
    chosen: (&[String], &[String]),
    action: &str,
    unsubscribe: &str,
) -> Markup {
    let body = html! {
        h1 { "Your subscription" }
        p { "Mail goes to " strong { (email) } "." }
        form.subscribe method="post" action=(action) {
            (choices(all, chosen.0, chosen.1))
            button type="submit" { "Save" }
        }
        form method="post" action=(unsubscribe) {
            input type="hidden" name="List-Unsubscribe" value="One-Click";
            button.secondary type="submit" { "Unsubscribe" }
        }
    };
    timeless(site, "Your subscription", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_depends_on_the_address_alone_and_escapes_it() {
        let site = Site {
            title: "Acme".into(),
            ..Site::default()
        };
        let a = check_inbox(&site, "a<b>@example.com").into_string();
        assert_eq!(a, check_inbox(&site, "a<b>@example.com").into_string());
        assert!(a.contains("a&lt;b&gt;@example.com") && !a.contains("<b>@"));
        assert!(!a.contains("<time"), "no time in it: {a}");
    }
}

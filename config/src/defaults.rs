//! The built-in defaults: the one place they are written down.
//!
//! The README's table of defaults is checked against [`BUILT_IN`] by a test.

use std::time::Duration;

/// The built-in value of every setting a `defaults:` block can override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// `interval`: how often a check runs.
    pub interval: Duration,
    /// `timeout`: the hard deadline of one probe.
    pub timeout: Duration,
    /// `locations`: how many agents probe a check.
    pub locations: Locations,
    /// `quorum`: how many failing locations make a check down.
    pub quorum: Quorum,
    /// `failure_threshold`: consecutive `down` results before a location fails.
    pub failure_threshold: u32,
    /// `success_threshold`: consecutive `up` results before a location passes.
    pub success_threshold: u32,
    /// `reopen_window`: how long a resolved automatic incident may reopen.
    pub reopen_window: Duration,
    /// `public`: whether checks are on the public page.
    pub public: bool,
}

/// How many agents probe a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Locations {
    /// This many agents, chosen by rendezvous hashing (fewer if the fleet is smaller).
    Count(u32),
    /// Every agent.
    All,
}

/// How many failing locations make a check down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// ⌊assigned/2⌋+1.
    Majority,
    /// This many, capped at the number of assigned locations.
    Count(u32),
}

impl Quorum {
    /// The number of failing locations that makes a check down, given how
    /// many locations the fleet assigned to it.
    pub fn required(self, assigned: u32) -> u32 {
        match self {
            Quorum::Majority => assigned / 2 + 1,
            Quorum::Count(n) => n.min(assigned).max(1),
        }
    }
}

/// The built-in defaults (DESIGN §4.2).
pub const BUILT_IN: Defaults = Defaults {
    interval: Duration::from_secs(60),
    timeout: Duration::from_secs(10),
    locations: Locations::Count(3),
    quorum: Quorum::Majority,
    failure_threshold: 2,
    success_threshold: 2,
    reopen_window: Duration::from_secs(600),
    public: true,
};

/// HTTP: redirects followed unless `max_redirects` says otherwise.
pub const HTTP_MAX_REDIRECTS: u32 = 10;
/// HTTP: the most of a body read unless `max_body` says otherwise.
pub const HTTP_MAX_BODY: u64 = 1 << 20;
/// TLS: the port unless `port` says otherwise.
pub const TLS_PORT: u16 = 443;
/// DNS: the server port when `server` names none.
pub const DNS_PORT: u16 = 53;

/// The defaults table as the README shows it: key and value, in order.
pub fn table() -> Vec<(&'static str, String)> {
    use crate::units::format_duration as d;
    let b = BUILT_IN;
    let locations = match b.locations {
        Locations::Count(n) => n.to_string(),
        Locations::All => "all".into(),
    };
    let quorum = match b.quorum {
        Quorum::Majority => "majority".into(),
        Quorum::Count(n) => n.to_string(),
    };
    vec![
        ("interval", d(b.interval)),
        (
            "timeout",
            format!("{} (always below the interval)", d(b.timeout)),
        ),
        ("locations", locations),
        ("quorum", quorum),
        ("failure_threshold", b.failure_threshold.to_string()),
        ("success_threshold", b.success_threshold.to_string()),
        ("reopen_window", d(b.reopen_window)),
        ("public", b.public.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_majority_and_numeric_cap() {
        assert_eq!(Quorum::Majority.required(1), 1);
        assert_eq!(Quorum::Majority.required(3), 2);
        assert_eq!(Quorum::Majority.required(4), 3);
        assert_eq!(Quorum::Count(2).required(1), 1);
        assert_eq!(Quorum::Count(2).required(5), 2);
    }
}

//! Screening of decoded batches: each result is judged on its own, so one bad
//! result never costs the good ones of its message. Pure.

use crate::state::Millis;
use config::CheckId;
use config::wire::{ProbeResult, ResultBatch, VERSION};
use std::fmt;

/// A result may be at most this far ahead of ingest's clock.
pub const MAX_FUTURE_MS: Millis = 60_000;
/// The default raw retention (7 days): results older than the retention are refused.
pub const MAX_AGE_MS: Millis = 7 * 86_400_000;
/// The longest interval a result may claim (24 days: it is stored in 32 bits of ms).
pub const MAX_INTERVAL_MS: Millis = 24 * 86_400_000;
/// The most locations a result may claim were assigned.
pub const MAX_ASSIGNED: u32 = 10_000;
/// Caps on the fields the decoder does not cut itself.
pub const MAX_HASH_LEN: usize = 128;
/// The longest reason code accepted.
pub const MAX_REASON_LEN: usize = 64;
/// The most assertions a result may carry.
pub const MAX_ASSERTIONS: usize = 64;
/// The longest assertion name.
pub const MAX_ASSERTION_NAME: usize = 256;
/// The most DNS answers kept.
pub const MAX_DNS_ANSWERS: usize = 64;
/// The longest free-text fact (versions, subject, issuer, an answer).
pub const MAX_FACT_LEN: usize = 512;

/// Why a result was refused: the `reason` label of the rejected counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// `scheduled_at` more than a minute ahead.
    Future,
    /// `scheduled_at` older than the retention.
    TooOld,
    /// The check id is not a valid id.
    BadCheck,
    /// The agent id is empty or holds `/`.
    BadAgent,
    /// The id is not `{check}/{agent}/{scheduled_at ms}`.
    BadId,
    /// The interval is zero or absurd.
    BadInterval,
    /// `assigned` is zero or absurd.
    BadAssigned,
    /// A field is longer than its cap.
    Oversized,
    /// The same id twice in one message.
    Repeated,
    /// The database refused the result itself (stored alone, it still
    /// failed for a reason other than being unavailable).
    Refused,
}

impl Rejection {
    /// Every label value, for zeroed series.
    pub const ALL: [Rejection; 10] = [
        Rejection::Future,
        Rejection::TooOld,
        Rejection::BadCheck,
        Rejection::BadAgent,
        Rejection::BadId,
        Rejection::BadInterval,
        Rejection::BadAssigned,
        Rejection::Oversized,
        Rejection::Repeated,
        Rejection::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Future => "future",
            Rejection::TooOld => "too_old",
            Rejection::BadCheck => "bad_check",
            Rejection::BadAgent => "bad_agent",
            Rejection::BadId => "bad_id",
            Rejection::BadInterval => "bad_interval",
            Rejection::BadAssigned => "bad_assigned",
            Rejection::Oversized => "oversized",
            Rejection::Repeated => "repeated",
            Rejection::Refused => "refused",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A batch ingest cannot read at all: left for the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// A format version this ingest does not know (a newer agent); the
    /// message is kept for a newer ingest or the DLQ redrive.
    #[error("batch version {0} is not supported (this ingest reads version {VERSION})")]
    Version(u32),
}

/// A batch after screening.
#[derive(Debug)]
pub struct Screened {
    /// Who sent them, its zone and region made visible.
    pub agent: config::wire::AgentInfo,
    /// When they were sent.
    pub sent_at: config::wire::Timestamp,
    /// The results to store.
    pub accepted: Vec<ProbeResult>,
    /// The refused ones, with why.
    pub rejected: Vec<(Rejection, String)>,
}

/// Screens every result of a batch against `now`; results older than
/// `max_age_ms` (the raw retention) are refused.
pub fn screen(
    mut batch: ResultBatch,
    now: Millis,
    max_age_ms: Millis,
) -> Result<Screened, Unusable> {
    if batch.v != VERSION {
        return Err(Unusable::Version(batch.v));
    }
    for place in [
        &mut batch.agent.zone,
        &mut batch.agent.region,
        &mut batch.agent.label,
    ] {
        if let std::borrow::Cow::Owned(v) = config::wire::visible(place) {
            *place = v;
        }
    }
    let agent_ok = !batch.agent.id.is_empty()
        && !batch.agent.id.contains('/')
        && !batch.agent.id.chars().any(char::is_control)
        && batch.agent.id.len() <= 253
        && batch.agent.zone.len() <= 128
        && batch.agent.region.len() <= 128
        && batch.agent.label.len() <= 128;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Screened {
        agent: batch.agent.clone(),
        sent_at: batch.sent_at,
        accepted: Vec::new(),
        rejected: Vec::new(),
    };
    for mut r in batch.results {
        // Target bytes are data: an older agent may not have made them visible.
        r.make_visible();
        let verdict = if agent_ok {
            judge(&r, &batch.agent.id, now, max_age_ms)
        } else {
            Err(Rejection::BadAgent)
        };
        match verdict {
            Ok(()) if !seen.insert(r.id.clone()) => {
                out.rejected.push((Rejection::Repeated, r.id));
            }
            Ok(()) => out.accepted.push(r),
            Err(why) => out.rejected.push((why, config::wire::cap(&r.id, 200))),
        }
    }
    Ok(out)
}

fn judge(r: &ProbeResult, agent: &str, now: Millis, max_age_ms: Millis) -> Result<(), Rejection> {
    CheckId::parse(&r.check).map_err(|_| Rejection::BadCheck)?;
    if r.id != ProbeResult::make_id(&r.check, agent, r.scheduled_at) {
        return Err(Rejection::BadId);
    }
    let at = r.scheduled_at.unix_ms();
    if at > now + MAX_FUTURE_MS {
        return Err(Rejection::Future);
    }
    if at < now - max_age_ms {
        return Err(Rejection::TooOld);
    }
    let interval_ms = (r.interval_us / 1000) as i64;
    if interval_ms <= 0 || interval_ms > MAX_INTERVAL_MS {
        return Err(Rejection::BadInterval);
    }
    if r.assigned == 0 || r.assigned > MAX_ASSIGNED {
        return Err(Rejection::BadAssigned);
    }
    let facts = &r.facts;
    let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > MAX_FACT_LEN);
    let oversized = r.config_hash.len() > MAX_HASH_LEN
        || r.reason.as_str().len() > MAX_REASON_LEN
        || r.assertions.len() > MAX_ASSERTIONS
        || r.assertions
            .iter()
            .any(|a| a.name.len() > MAX_ASSERTION_NAME)
        || [
            &facts.http_version,
            &facts.tls_version,
            &facts.tls_cipher,
            &facts.cert_subject,
            &facts.cert_issuer,
            &facts.dns_rcode,
        ]
        .into_iter()
        .any(long)
        || facts
            .dns_answers
            .as_ref()
            .is_some_and(|a| a.len() > MAX_DNS_ANSWERS || a.iter().any(|x| x.len() > MAX_FACT_LEN));
    if oversized {
        return Err(Rejection::Oversized);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::wire::{AgentInfo, Timestamp};

    const NOW: Millis = 1_800_000_000_000;

    fn result(check: &str, at: Millis) -> ProbeResult {
        ProbeResult::new(
            check,
            "h",
            "agent-a",
            Timestamp::from_unix_ms(at).unwrap(),
            60_000_000,
            3,
        )
    }

    fn batch(results: Vec<ProbeResult>) -> ResultBatch {
        ResultBatch {
            v: 1,
            agent: AgentInfo {
                id: "agent-a".into(),
                zone: "z".into(),
                region: String::new(),
                label: String::new(),
            },
            sent_at: Timestamp::from_unix_ms(NOW).unwrap(),
            results,
        }
    }

    #[test]
    fn each_result_is_judged_on_its_own() {
        let mut wrong_id = result("web", NOW);
        wrong_id.id = "web/other-agent/1".into();
        let mut huge = result("web", NOW - 5);
        huge.config_hash = "x".repeat(1000);
        let mut zero = result("web", NOW - 6);
        zero.interval_us = 0;
        let got = screen(
            batch(vec![
                result("web", NOW),
                result("web", NOW + 3_600_000),
                result("web", NOW - 8 * 86_400_000),
                result("<script>", NOW),
                wrong_id,
                huge,
                zero,
                result("web", NOW),
                result("api", NOW - 1),
            ]),
            NOW,
            MAX_AGE_MS,
        )
        .unwrap();
        let ids: Vec<_> = got.accepted.iter().map(|r| r.check.as_str()).collect();
        assert_eq!(ids, ["web", "api"]);
        let why: Vec<_> = got.rejected.iter().map(|r| r.0).collect();
        assert_eq!(
            why,
            [
                Rejection::Future,
                Rejection::TooOld,
                Rejection::BadCheck,
                Rejection::BadId,
                Rejection::Oversized,
                Rejection::BadInterval,
                Rejection::Repeated
            ]
        );
    }

    #[test]
    fn an_unknown_version_is_unusable_not_rejected() {
        let mut b = batch(vec![result("web", NOW)]);
        b.v = 2;
        assert_eq!(
            screen(b, NOW, MAX_AGE_MS).unwrap_err(),
            Unusable::Version(2)
        );
    }

    #[test]
    fn a_bad_agent_id_refuses_every_result() {
        let mut b = batch(vec![result("web", NOW)]);
        b.agent.id = "a/b".into();
        let got = screen(b, NOW, MAX_AGE_MS).unwrap();
        assert!(got.accepted.is_empty());
        assert_eq!(got.rejected[0].0, Rejection::BadAgent);
    }

    #[test]
    fn hostile_bytes_in_the_agent_and_results_are_made_visible_or_refused() {
        let mut r = result("web", NOW);
        r.message = "gre\0et".into();
        r.assertions = vec![config::wire::Assertion::new("reply", false, "a\0b")];
        let mut b = batch(vec![r]);
        b.agent.zone = "z\0".into();
        b.agent.label = "Frankfurt\u{7}".into();
        let got = screen(b, NOW, MAX_AGE_MS).unwrap();
        assert_eq!(got.accepted.len(), 1);
        assert_eq!(got.accepted[0].message, "gre␀et");
        assert_eq!(got.accepted[0].assertions[0].actual, "a␀b");
        assert_eq!(
            (got.agent.zone.as_str(), got.agent.label.as_str()),
            ("z␀", "Frankfurt␇")
        );
        // An agent id is a key, not text to show: a control character refuses it.
        let mut b = batch(vec![result("web", NOW)]);
        b.agent.id = "agent\0a".into();
        assert_eq!(
            screen(b, NOW, MAX_AGE_MS).unwrap().rejected[0].0,
            Rejection::BadAgent
        );
        let mut b = batch(vec![result("web", NOW)]);
        b.agent.label = "x".repeat(129);
        assert_eq!(
            screen(b, NOW, MAX_AGE_MS).unwrap().rejected[0].0,
            Rejection::BadAgent,
            "a label is capped like a zone"
        );
    }
}

//! Probes: one module per protocol, one entry function each, dispatched on
//! the check's kind. A probe gathers facts into an [`Observation`]; an
//! unreachable target is a [`Failure`] in it, never an `Err`.

mod dial;
mod dns;
mod http;
mod tcp;
mod tls;
mod trust;

use crate::evaluate::evaluate;
pub use crate::observation::{DnsFacts, Failure, HttpFacts, Observation, Stage, TlsFacts};
use chrono::Utc;
use config::Check;
use config::catalog::{IpFamily, Probe};
use config::wire::{Facts, ProbeResult, Reason, Timestamp};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a prober could not be set up (our problem, not a target's).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The system resolver configuration could not be read.
    #[error("cannot read the system resolver configuration: {0}")]
    Resolver(#[from] hickory_resolver::ResolveError),
}

/// Name resolvers, one per IP-family preference, none caching: every probe
/// measures a real lookup.
#[derive(Clone)]
pub(crate) struct Resolvers {
    prefer_v4: TokioResolver,
    prefer_v6: TokioResolver,
    only_v4: TokioResolver,
    only_v6: TokioResolver,
    /// The system's first name server, for DNS checks without `server`.
    pub system_server: Option<std::net::SocketAddr>,
}

impl Resolvers {
    fn new(config: ResolverConfig, mut opts: ResolverOpts) -> Self {
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Always;
        let system_server = config.name_servers().first().map(|n| n.socket_addr);
        let build = |strategy| {
            let mut o = opts.clone();
            o.ip_strategy = strategy;
            TokioResolver::builder_with_config(config.clone(), TokioConnectionProvider::default())
                .with_options(o)
                .build()
        };
        Self {
            prefer_v4: build(LookupIpStrategy::Ipv4thenIpv6),
            prefer_v6: build(LookupIpStrategy::Ipv6thenIpv4),
            only_v4: build(LookupIpStrategy::Ipv4Only),
            only_v6: build(LookupIpStrategy::Ipv6Only),
            system_server,
        }
    }

    pub fn pick(&self, prefer: IpFamily, fallback: bool) -> &TokioResolver {
        match (prefer, fallback) {
            (IpFamily::Ipv4, true) => &self.prefer_v4,
            (IpFamily::Ipv6, true) => &self.prefer_v6,
            (IpFamily::Ipv4, false) => &self.only_v4,
            (IpFamily::Ipv6, false) => &self.only_v6,
        }
    }
}

/// Runs probes. Cheap to share; holds no connection between probes.
#[derive(Clone)]
pub struct Prober {
    agent_id: String,
    user_agent: String,
    resolvers: Arc<Resolvers>,
    web_roots: Arc<rustls::RootCertStore>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// A prober that resolves names like this machine does (`/etc/resolv.conf`, `/etc/hosts`).
    pub fn new(agent_id: &str) -> Result<Self, SetupError> {
        let (config, opts) = hickory_resolver::system_conf::read_system_conf()?;
        Ok(Self::with_resolver(agent_id, config, opts))
    }

    /// A prober with an explicit resolver configuration.
    pub fn with_resolver(agent_id: &str, config: ResolverConfig, opts: ResolverOpts) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self {
            agent_id: agent_id.to_string(),
            user_agent: format!(
                "statuspage-agent/{} ({agent_id})",
                env!("CARGO_PKG_VERSION")
            ),
            resolvers: Arc::new(Resolvers::new(config, opts)),
            web_roots: Arc::new(roots),
        }
    }

    /// The `User-Agent` every HTTP probe sends unless the check sets one.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Probes `check` once under its hard deadline and gathers the facts.
    pub async fn observe(&self, check: &Check) -> Observation {
        let mut seen = Observation::default();
        let start = Instant::now();
        // Reserve a little of the deadline for judging a partial TCP reply.
        let give_up = start + check.timeout - (check.timeout / 10).min(Duration::from_millis(200));
        let outcome =
            tokio::time::timeout(check.timeout, self.dispatch(check, give_up, &mut seen)).await;
        seen.duration = start.elapsed();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => seen.failure = Some(failure),
            Err(_) => {
                let t = config::units::format_duration(check.timeout);
                seen.failure = Some(match seen.stage {
                    Stage::Dns => Failure::new(
                        Reason::DnsTimeout,
                        format!("no DNS answer within the {t} timeout"),
                    ),
                    Stage::Connect => Failure::new(
                        Reason::ConnectTimeout,
                        format!("the connection was not established within the {t} timeout"),
                    ),
                    Stage::Tls | Stage::Exchange => Failure::new(
                        Reason::Timeout,
                        format!("no complete answer within the {t} timeout"),
                    ),
                });
            }
        }
        if let Some(f) = &mut seen.failure {
            f.message = check.redact(&f.message);
        }
        seen
    }

    async fn dispatch(
        &self,
        check: &Check,
        give_up: Instant,
        seen: &mut Observation,
    ) -> Result<(), Failure> {
        match &check.probe {
            Probe::Http(p) => http::probe(self, p, &check.secrets, seen).await,
            Probe::Tcp(p) => tcp::probe(self, p, give_up, seen).await,
            Probe::Tls(p) => tls::probe(self, p, seen).await,
            Probe::Dns(p) => dns::probe(self, p, seen).await,
        }
    }

    /// Probes `check` for the slot `scheduled_at` and returns the full result.
    /// `interval` is the gap to the check's next slot (its interval, or the
    /// gap to the next cron slot), and `assigned` the fleet's count for it.
    pub async fn run(
        &self,
        check: &Check,
        scheduled_at: Timestamp,
        interval: Duration,
        assigned: u32,
    ) -> ProbeResult {
        let started_at = Timestamp::new(Utc::now());
        let seen = self.observe(check).await;
        self.result(check, &seen, scheduled_at, started_at, interval, assigned)
    }

    /// Builds the wire result from an observation.
    pub fn result(
        &self,
        check: &Check,
        seen: &Observation,
        scheduled_at: Timestamp,
        started_at: Timestamp,
        interval: Duration,
        assigned: u32,
    ) -> ProbeResult {
        let verdict = evaluate(&check.probe, seen, started_at.datetime());
        let mut assertions = verdict.assertions;
        for a in &mut assertions {
            a.name = check.redact(&a.name);
            a.actual = check.redact(&a.actual);
        }
        let mut result = ProbeResult::new(
            check.id.as_str(),
            check.config_hash,
            &self.agent_id,
            scheduled_at,
            interval.as_micros() as u64,
            assigned,
        );
        result.started_at = started_at;
        result.duration_us = seen.duration.as_micros() as u64;
        result.outcome = verdict.outcome;
        result.reason = verdict.reason;
        result.phases = seen.phases.clone();
        result.facts = facts(seen);
        result.assertions = assertions;
        result.set_message(&check.redact(&verdict.message));
        result.make_visible();
        result
    }
}

fn facts(seen: &Observation) -> Facts {
    let mut f = Facts::default();
    if let Some(h) = &seen.http {
        f.http_status = Some(h.status);
        f.http_version = Some(h.version.clone());
        f.redirects = Some(h.redirects);
    }
    if let Some(t) = &seen.tls {
        f.tls_version = (!t.version.is_empty()).then(|| t.version.clone());
        f.tls_cipher = (!t.cipher.is_empty()).then(|| t.cipher.clone());
        f.cert_subject = (!t.leaf_subject.is_empty()).then(|| t.leaf_subject.clone());
        f.cert_issuer = (!t.leaf_issuer.is_empty()).then(|| t.leaf_issuer.clone());
        f.cert_not_after = t.leaf_not_after.map(Timestamp::new);
        f.chain_not_after = t.chain_not_after.map(Timestamp::new);
    }
    if let Some(d) = &seen.dns {
        f.dns_rcode = Some(d.rcode.clone());
        f.dns_answers = Some(d.answers.clone());
    }
    f
}

/// Microseconds since `start`, for a phase.
pub(crate) fn micros_since(start: Instant) -> Option<u64> {
    Some(start.elapsed().as_micros() as u64)
}

/// Adds `more` to a phase that may have been measured already (redirect hops add up).
pub(crate) fn add_phase(slot: &mut Option<u64>, more: Option<u64>) {
    if let Some(m) = more {
        *slot = Some(slot.unwrap_or(0) + m);
    }
}

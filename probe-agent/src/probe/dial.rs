//! Resolving a host and opening a fresh TCP connection, each phase timed.

use super::{Failure, Observation, Prober, Stage, add_phase, micros_since};
use config::catalog::IpFamily;
use config::wire::Reason;
use hickory_proto::ProtoErrorKind;
use hickory_resolver::ResolveErrorKind;
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The addresses of `host`, preferred family first. An IP literal skips DNS
/// (and the `dns` phase stays absent).
pub(crate) async fn resolve(
    prober: &Prober,
    host: &str,
    prefer: IpFamily,
    fallback: bool,
    seen: &mut Observation,
) -> Result<Vec<IpAddr>, Failure> {
    seen.stage = Stage::Dns;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let start = Instant::now();
    let lookup = prober
        .resolvers
        .pick(prefer, fallback)
        .lookup_ip(host)
        .await;
    add_phase(&mut seen.phases.dns_us, micros_since(start));
    match lookup {
        Ok(ips) => {
            let mut ips: Vec<IpAddr> = ips.iter().collect();
            ips.sort_by_key(|ip| match (prefer, ip) {
                (IpFamily::Ipv4, IpAddr::V4(_)) | (IpFamily::Ipv6, IpAddr::V6(_)) => 0,
                _ => 1,
            });
            if ips.is_empty() {
                Err(Failure::new(
                    Reason::DnsNxdomain,
                    format!("{host} has no address"),
                ))
            } else {
                Ok(ips)
            }
        }
        Err(e) if e.is_nx_domain() => Err(Failure::new(
            Reason::DnsNxdomain,
            format!("{host} does not exist (NXDOMAIN)"),
        )),
        Err(e) if e.is_no_records_found() => Err(Failure::new(
            Reason::DnsNxdomain,
            format!("{host} has no address of the wanted family"),
        )),
        Err(e) if is_timeout(e.kind()) => Err(Failure::new(
            Reason::DnsTimeout,
            format!("no DNS answer for {host}"),
        )),
        Err(e) => Err(Failure::new(
            Reason::DnsServfail,
            format!("resolving {host} failed: {e}"),
        )),
    }
}

fn is_timeout(kind: &ResolveErrorKind) -> bool {
    match kind {
        ResolveErrorKind::Proto(p) => matches!(p.kind(), ProtoErrorKind::Timeout),
        _ => false,
    }
}

/// A fresh connection to the first address that accepts.
pub(crate) async fn connect(
    addrs: &[IpAddr],
    port: u16,
    seen: &mut Observation,
) -> Result<TcpStream, Failure> {
    seen.stage = Stage::Connect;
    let start = Instant::now();
    let mut last = None;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                add_phase(&mut seen.phases.connect_us, micros_since(start));
                let _ = stream.set_nodelay(true);
                seen.stage = Stage::Exchange;
                return Ok(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    add_phase(&mut seen.phases.connect_us, micros_since(start));
    Err(match last {
        Some((addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Failure::new(
            Reason::ConnectRefused,
            format!("{addr} refused the connection"),
        ),
        Some((addr, e)) if e.kind() == std::io::ErrorKind::TimedOut => Failure::new(
            Reason::ConnectTimeout,
            format!("connecting to {addr} timed out"),
        ),
        Some((addr, e)) => Failure::new(
            Reason::ConnectRefused,
            format!("cannot connect to {addr}: {e}"),
        ),
        None => Failure::new(Reason::DnsNxdomain, "no address to connect to"),
    })
}

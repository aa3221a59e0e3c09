//! The DNS probe: one query to one server over UDP or TCP, answered or not.

use super::{DnsFacts, Failure, Observation, Prober, Stage, add_phase, dial, micros_since};
use crate::evaluate::rcode_text;
use config::catalog::{DnsProbe, DnsProtocol, IpFamily, RecordType};
use config::wire::Reason;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType as Rt};
use std::net::SocketAddr;
use std::str::FromStr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Asks the check's server (or the system's first name server) one question.
pub(super) async fn probe(
    prober: &Prober,
    p: &DnsProbe,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let server = server(prober, p, seen).await?;
    let name = Name::from_str(&p.name).map_err(|e| {
        Failure::new(
            Reason::DnsServfail,
            format!("{} is not a DNS name: {e}", p.name),
        )
    })?;
    let rtype = record_type(p.record_type);
    let id: u16 = rand_id();
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    query.add_query(Query::query(name, rtype));
    let bytes = query
        .to_vec()
        .map_err(|e| Failure::new(Reason::DnsServfail, format!("cannot encode the query: {e}")))?;

    seen.stage = Stage::Dns;
    let start = Instant::now();
    let answer = match p.protocol {
        DnsProtocol::Udp => udp(server, &bytes, id).await,
        DnsProtocol::Tcp => tcp(server, &bytes, seen).await,
    };
    add_phase(&mut seen.phases.dns_us, micros_since(start));
    let response = answer?;
    let answers = response
        .answers()
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| rdata_text(r.data()))
        .collect();
    seen.dns = Some(DnsFacts {
        rcode: rcode(response.response_code()),
        answers,
    });
    Ok(())
}

async fn server(
    prober: &Prober,
    p: &DnsProbe,
    seen: &mut Observation,
) -> Result<SocketAddr, Failure> {
    match &p.server {
        Some(s) => {
            let ips = dial::resolve(prober, &s.host, IpFamily::Ipv4, true, seen).await?;
            Ok(SocketAddr::new(ips[0], s.port))
        }
        None => prober.resolvers.system_server.ok_or_else(|| {
            Failure::new(
                Reason::DnsServfail,
                "the system has no name server configured",
            )
        }),
    }
}

async fn udp(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, Failure> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| Failure::new(Reason::DnsServfail, "bad local address"))?;
    let socket = UdpSocket::bind(local).await.map_err(|e| {
        Failure::new(
            Reason::DnsServfail,
            format!("cannot open a UDP socket: {e}"),
        )
    })?;
    socket
        .connect(server)
        .await
        .map_err(|e| Failure::new(Reason::DnsServfail, format!("cannot reach {server}: {e}")))?;
    socket
        .send(bytes)
        .await
        .map_err(|e| Failure::new(Reason::DnsServfail, format!("cannot send to {server}: {e}")))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            // An ICMP port unreachable surfaces here: nothing listens.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Failure::new(
                    Reason::DnsTimeout,
                    format!("nothing answers DNS at {server} (port unreachable)"),
                ));
            }
            Err(e) => {
                return Err(Failure::new(
                    Reason::DnsServfail,
                    format!("receiving from {server} failed: {e}"),
                ));
            }
        };
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.id() == id && m.message_type() == MessageType::Response => return Ok(m),
            // A stray or spoofed datagram: keep waiting for ours.
            _ => continue,
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8], seen: &mut Observation) -> Result<Message, Failure> {
    let mut stream = dial::connect(&[server.ip()], server.port(), seen).await?;
    seen.stage = Stage::Dns;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    let io = |e: std::io::Error| {
        Failure::new(
            Reason::DnsServfail,
            format!("DNS over TCP with {server} failed: {e}"),
        )
    };
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    Message::from_vec(&buf).map_err(|e| {
        Failure::new(
            Reason::DnsServfail,
            format!("{server} sent an invalid DNS message: {e}"),
        )
    })
}

fn rand_id() -> u16 {
    // Unpredictable enough against stray datagrams; not a security boundary.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (t ^ (t >> 16)) as u16
}

fn record_type(t: RecordType) -> Rt {
    match t {
        RecordType::A => Rt::A,
        RecordType::AAAA => Rt::AAAA,
        RecordType::CNAME => Rt::CNAME,
        RecordType::MX => Rt::MX,
        RecordType::TXT => Rt::TXT,
        RecordType::NS => Rt::NS,
        RecordType::SOA => Rt::SOA,
        RecordType::SRV => Rt::SRV,
        RecordType::CAA => Rt::CAA,
    }
}

fn rcode(code: ResponseCode) -> String {
    use config::catalog::Rcode;
    let known = match code {
        ResponseCode::NoError => Some(Rcode::NoError),
        ResponseCode::FormErr => Some(Rcode::FormErr),
        ResponseCode::ServFail => Some(Rcode::ServFail),
        ResponseCode::NXDomain => Some(Rcode::NXDomain),
        ResponseCode::NotImp => Some(Rcode::NotImp),
        ResponseCode::Refused => Some(Rcode::Refused),
        _ => None,
    };
    known
        .map(|r| rcode_text(r).to_string())
        .unwrap_or_else(|| format!("RCODE{}", u16::from(code)))
}

/// An answer as people write it: `93.184.216.34`, `10 mail.example.com.`.
fn rdata_text(data: &RData) -> String {
    match data {
        RData::A(a) => a.to_string(),
        RData::AAAA(a) => a.to_string(),
        RData::CNAME(n) => n.to_string(),
        RData::NS(n) => n.to_string(),
        RData::MX(mx) => format!("{} {}", mx.preference(), mx.exchange()),
        RData::TXT(txt) => txt
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(""),
        other => other.to_string(),
    }
}

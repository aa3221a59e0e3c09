//! The TCP probe: connect, optionally send, optionally read until the reply matches.

use super::{Failure, Observation, Prober, dial, micros_since};
use config::catalog::TcpProbe;
use config::wire::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The most of a reply that is read.
const MAX_REPLY: usize = 64 * 1024;

/// Connects to `p.host:p.port`; with `send` and `reply_matches`, exchanges bytes.
/// A reply that started but never matched is judged just before the
/// deadline (`give_up`), so the verdict shows what was received.
pub(super) async fn probe(
    prober: &Prober,
    p: &TcpProbe,
    give_up: Instant,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let addrs = dial::resolve(prober, &p.host, p.prefer_ip, true, seen).await?;
    let mut stream = dial::connect(&addrs, p.port, seen).await?;
    let start = Instant::now();
    if let Some(text) = &p.send {
        stream.write_all(text.as_bytes()).await.map_err(|e| {
            Failure::new(
                Reason::ConnectRefused,
                format!("the connection closed while sending: {e}"),
            )
        })?;
    }
    if let Some(re) = &p.reply_matches {
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let mut first = true;
        loop {
            let n = if reply.is_empty() {
                stream.read(&mut buf).await.unwrap_or(0)
            } else {
                match tokio::time::timeout_at(give_up, stream.read(&mut buf)).await {
                    Ok(read) => read.unwrap_or(0),
                    Err(_) => break,
                }
            };
            if first {
                seen.phases.ttfb_us = micros_since(start);
                first = false;
            }
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.len() >= MAX_REPLY || re.is_match(&String::from_utf8_lossy(&reply)) {
                break;
            }
            // Keep what was read so far visible if the deadline cuts the read.
            seen.tcp_reply = Some(String::from_utf8_lossy(&reply).into_owned());
        }
        reply.truncate(MAX_REPLY);
        seen.tcp_reply = Some(String::from_utf8_lossy(&reply).into_owned());
    }
    drop(stream);
    Ok(())
}

//! One POST to a channel, on hyper over a connection we make ourselves:
//! the name is resolved once, every address it resolves to is checked
//! ([`config::notify::forbidden`]), and the connection goes to the address
//! that was checked, so DNS rebinding cannot swap it. Redirects are never
//! followed. The whole exchange has one deadline.
//!
//! Errors name what failed, never the URL (it may be the secret itself, as
//! a Slack webhook's is).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the receiver answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Its `Retry-After`, in seconds, if it gave one.
    pub retry_after: Option<Duration>,
}

/// The most of an answer's body read (and thrown away).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// TLS for deliveries: the Mozilla roots through webpki, on aws-lc-rs.
pub fn tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// POSTs `body` to `url` with `headers`, within `deadline`.
pub async fn post(
    url: &url::Url,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    deadline: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Answer, String> {
    match tokio::time::timeout(deadline, exchange(url, headers, body, tls)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}

async fn exchange(
    url: &url::Url,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Answer, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let addr = resolve(url, port).await?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("statuspage/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    if url.scheme() == "https" {
        let name = match url.host() {
            Some(url::Host::Domain(d)) => ServerName::try_from(d.to_string()),
            Some(url::Host::Ipv4(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
            Some(url::Host::Ipv6(ip)) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
            None => return Err("the URL has no host".into()),
        }
        .map_err(|_| "the host is not a valid TLS name".to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(TokioIo::new(stream), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
}

/// Resolves the URL's host once and checks every address; the first is used.
async fn resolve(url: &url::Url, port: u16) -> Result<SocketAddr, String> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check(vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Ipv6(ip)) => check(vec![SocketAddr::new(ip.into(), port)]),
        Some(url::Host::Domain(d)) => resolve_host(d, port).await,
        None => Err("the URL has no host".into()),
    }
}

/// Resolves `host` (a name or an address) once and checks every address
/// it gives ([`config::notify::forbidden`]); the first is the one to use.
pub async fn resolve_host(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return check(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving the host: {}", e.kind()))?
        .collect();
    check(addrs)
}

fn check(addrs: Vec<SocketAddr>) -> Result<SocketAddr, String> {
    for a in &addrs {
        if let Some(why) = config::notify::forbidden(a.ip()) {
            return Err(format!("refused: the host resolves to {why}"));
        }
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| "the host resolves to no address".to_string())
}

async fn send<T>(io: TokioIo<T>, request: http::Request<Full<Bytes>>) -> Result<Answer, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    let result = match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read a little of the body, so the receiver is not cut off
            // mid-answer; never more than the cap.
            let mut body = response.into_body();
            let mut read = 0;
            while read < MAX_ANSWER_BYTES {
                match body.frame().await {
                    Some(Ok(f)) => read += f.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
            Ok(Answer {
                status,
                retry_after,
            })
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_or_address_that_resolves_to_metadata_is_refused_at_send_time() {
        for host in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "0.0.0.0",
        ] {
            let refused = resolve_host(host, 80).await.unwrap_err();
            assert!(
                refused.starts_with("refused: the host resolves to"),
                "{host}: {refused}"
            );
        }
        // A name is resolved once, and its addresses checked: loopback is allowed.
        let local = resolve_host("localhost", 80).await.unwrap();
        assert!(local.ip().is_loopback());
        // A literal metadata URL is refused before any connection is made.
        let url = url::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        let tls = tls().unwrap();
        let answer = post(&url, &[], Vec::new(), Duration::from_secs(2), &tls).await;
        assert!(answer.unwrap_err().starts_with("refused:"));
    }
}

//! The HTTP probe: a fresh connection per request, every phase timed, redirects
//! followed up to a limit, the body read up to a cap.

use super::trust::{self, TlsSettings};
use super::{Failure, HttpFacts, Observation, Prober, Stage, dial, micros_since};
use bytes::{Bytes, BytesMut};
use config::catalog::HttpProbe;
use config::wire::Reason;
use http::header::{HOST, LOCATION, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

/// Requests `p.url`, following redirects, and records the final response.
pub(super) async fn probe(
    prober: &Prober,
    p: &HttpProbe,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let mut url = p.url.clone();
    let mut visited = HashSet::new();
    let mut redirects = 0u32;
    loop {
        visited.insert(url.to_string());
        let response = exchange(prober, p, &url, redirects, seen).await?;
        let next = redirect_target(&url, &response);
        let Some(next) = next else {
            return read_body(p, response, redirects, seen).await;
        };
        if redirects >= p.max_redirects {
            if p.max_redirects == 0 {
                // Not following redirects: the 3xx is the answer.
                return read_body(p, response, redirects, seen).await;
            }
            return Err(Failure::new(
                Reason::TooManyRedirects,
                format!("more than {} redirects (last to {})", p.max_redirects, next),
            ));
        }
        if visited.contains(next.as_str()) {
            return Err(Failure::new(
                Reason::TooManyRedirects,
                format!("redirect loop: {url} redirects back to {next}"),
            ));
        }
        redirects += 1;
        url = next;
    }
}

/// The `Location` of a redirect, resolved against `base`; `None` when not a redirect.
fn redirect_target(base: &Url, response: &Response) -> Option<Url> {
    if !matches!(response.head.status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.head.headers.get(LOCATION)?.to_str().ok()?;
    let next = base.join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// A response whose body is still to be read, with its connection's driver.
struct Response {
    head: http::response::Parts,
    body: Incoming,
    version: String,
    _driver: Driver,
}

/// Aborts the connection task when the probe ends or is cut by its deadline.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(
    prober: &Prober,
    p: &HttpProbe,
    url: &Url,
    hop: u32,
    seen: &mut Observation,
) -> Result<Response, Failure> {
    let host = url.host_str().unwrap_or_default().to_string();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let addrs = dial::resolve(prober, &host, p.prefer_ip, p.ip_fallback, seen).await?;
    let tcp = dial::connect(&addrs, port, seen).await?;
    let request = build_request(prober, p, url, hop)?;
    if https {
        let chain = Arc::new(Mutex::new(Vec::new()));
        let alpn: &[&[u8]] = if p.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let settings = TlsSettings {
            ca_file: p.tls.ca_file.as_deref(),
            client_cert: p
                .tls
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
            insecure_skip_verify: p.tls.insecure_skip_verify,
            alpn,
        };
        let config = trust::client_config(&prober.web_roots, &settings, chain.clone())?;
        let name = p.tls.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let stream = trust::handshake(tcp, config, &name, chain, seen).await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        send(TokioIo::new(stream), h2, request, seen).await
    } else {
        send::<TokioIo<TcpStream>>(TokioIo::new(tcp), false, request, seen).await
    }
}

fn build_request(
    prober: &Prober,
    p: &HttpProbe,
    url: &Url,
    hop: u32,
) -> Result<Request<Full<Bytes>>, Failure> {
    let bad = |what: &str| {
        Failure::new(
            Reason::HttpProtocol,
            format!("cannot build the request: {what}"),
        )
    };
    let uri: Uri = url
        .as_str()
        .parse()
        .map_err(|_| bad("the URL is not a valid URI"))?;
    let method =
        http::Method::from_bytes(format!("{:?}", p.method).to_ascii_uppercase().as_bytes())
            .map_err(|_| bad("method"))?;
    // A redirect is followed with GET and no body, as browsers do for 301-303.
    let (method, body) = if hop > 0 && method != http::Method::HEAD {
        (http::Method::GET, Bytes::new())
    } else {
        (method, Bytes::from(p.body.clone().unwrap_or_default()))
    };
    let mut request = Request::builder().method(method).uri(uri);
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let headers = request.headers_mut().ok_or_else(|| bad("headers"))?;
    headers.insert(
        HOST,
        HeaderValue::from_str(&authority).map_err(|_| bad("host"))?,
    );
    headers.insert(
        USER_AGENT,
        HeaderValue::from_str(prober.user_agent()).map_err(|_| bad("user agent"))?,
    );
    for (name, value) in &p.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("a header name"))?;
        let value = HeaderValue::from_str(value).map_err(|_| bad("a header value"))?;
        headers.insert(name, value);
    }
    request
        .body(Full::new(body))
        .map_err(|e| bad(&e.to_string()))
}

async fn send<IO>(
    io: IO,
    h2: bool,
    mut request: Request<Full<Bytes>>,
    seen: &mut Observation,
) -> Result<Response, Failure>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    seen.stage = Stage::Exchange;
    let protocol = |e: hyper::Error| Failure::new(Reason::HttpProtocol, format!("HTTP error: {e}"));
    let (response, driver, version) = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(protocol)?;
        let driver = Driver(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = timed(seen, sender.send_request(request)).await;
        (response, driver, "HTTP/2.0")
    } else {
        // HTTP/1.1 wants an origin-form target; the Host header names the server.
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        *request.uri_mut() = path
            .parse()
            .map_err(|_| Failure::new(Reason::HttpProtocol, "bad request path"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(protocol)?;
        let driver = Driver(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = timed(seen, sender.send_request(request)).await;
        (response, driver, "HTTP/1.1")
    };
    let response = response.map_err(|e| {
        Failure::new(
            Reason::HttpProtocol,
            format!("the server did not send a valid HTTP response: {e}"),
        )
    })?;
    let (head, body) = response.into_parts();
    Ok(Response {
        head,
        body,
        version: version.into(),
        _driver: driver,
    })
}

/// Awaits the response head, timing `ttfb` from the request to it.
async fn timed<T>(seen: &mut Observation, exchange: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = exchange.await;
    seen.phases.ttfb_us = micros_since(start);
    out
}

async fn read_body(
    p: &HttpProbe,
    response: Response,
    redirects: u32,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let Response {
        head,
        mut body,
        version,
        _driver,
    } = response;
    let headers = head
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    seen.http = Some(HttpFacts {
        status: head.status.as_u16(),
        version,
        headers,
        body: Bytes::new(),
        redirects,
    });
    let start = Instant::now();
    let mut buf = BytesMut::new();
    let cap = usize::try_from(p.max_body).unwrap_or(usize::MAX);
    let result = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => {
                break Err(Failure::new(
                    Reason::HttpProtocol,
                    format!(
                        "the body was cut or malformed after {} bytes: {e}",
                        buf.len()
                    ),
                ));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > cap {
                        let keep = cap - buf.len();
                        buf.extend_from_slice(&data[..keep]);
                        break Err(Failure::new(
                            Reason::BodyTooLarge,
                            format!("the body is larger than {} bytes", p.max_body),
                        ));
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    };
    seen.phases.transfer_us = micros_since(start);
    if let Some(h) = &mut seen.http {
        h.body = buf.freeze();
    }
    result
}

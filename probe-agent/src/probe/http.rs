//! The HTTP probe: a fresh connection per request, every phase timed, redirects
//! followed up to a limit, the body read up to a cap.

use super::trust::{self, TlsSettings};
use super::{Failure, HttpFacts, Observation, Prober, Stage, dial, micros_since};
use bytes::{Bytes, BytesMut};
use config::catalog::{HttpProbe, Secrets};
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
/// What the check carries (its headers, body, client certificate and
/// `server_name`) stays with its own origin: see [`follow`].
pub(super) async fn probe(
    prober: &Prober,
    p: &HttpProbe,
    secrets: &Secrets,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let mut hop = Hop::first(p);
    let mut visited = HashSet::new();
    let mut redirects = 0u32;
    loop {
        visited.insert(hop.url.to_string());
        let response = exchange(prober, p, &hop, seen).await?;
        let Some(next) = redirect_target(&hop.url, &response) else {
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
                format!("redirect loop: {} redirects back to {next}", hop.url),
            ));
        }
        hop = follow(p, secrets, &hop, next, response.head.status.as_u16())?;
        redirects += 1;
    }
}

/// One request of a probe: where it goes and what it may carry.
#[derive(Debug)]
struct Hop {
    url: Url,
    method: http::Method,
    body: Bytes,
    /// At the check's own origin (scheme, host, port): only there do its
    /// configured headers go.
    home: bool,
    /// At the check's own host: only there do its client certificate and
    /// `tls.server_name` apply.
    own_host: bool,
}

impl Hop {
    fn first(p: &HttpProbe) -> Hop {
        Hop {
            url: p.url.clone(),
            method: method(p),
            body: Bytes::from(p.body().unwrap_or_default().to_owned()),
            home: true,
            own_host: true,
        }
    }
}

fn method(p: &HttpProbe) -> http::Method {
    http::Method::from_bytes(format!("{:?}", p.method).to_ascii_uppercase().as_bytes())
        .unwrap_or(http::Method::GET)
}

/// The next hop of a redirect with `status` from `from` to `to`, as browsers
/// follow one: 307 and 308 keep the method and body, 301, 302 and 303 become
/// a GET without a body (a HEAD stays a HEAD). Refused (`http_redirect_insecure`)
/// when it would carry a secret where it does not belong: from https to
/// http while the check holds any `${VAR}` value, or a secret body or URL
/// to another origin.
fn follow(
    p: &HttpProbe,
    secrets: &Secrets,
    from: &Hop,
    to: Url,
    status: u16,
) -> Result<Hop, Failure> {
    let refuse = |why: &str| {
        Failure::new(
            Reason::HttpRedirectInsecure,
            format!(
                "not following the redirect to {}: {why}",
                secrets.redact(to.as_str())
            ),
        )
    };
    if secrets.any() && from.url.scheme() == "https" && to.scheme() == "http" {
        return Err(refuse(
            "it leaves https for plain http and the check carries secrets",
        ));
    }
    let (method, body) = match status {
        307 | 308 => (from.method.clone(), from.body.clone()),
        _ if from.method == http::Method::HEAD => (http::Method::HEAD, Bytes::new()),
        _ => (http::Method::GET, Bytes::new()),
    };
    let home = origin(&to) == origin(&p.url);
    if !home {
        if !body.is_empty() && secrets.at_key("http.body") {
            return Err(refuse(
                "it would send the check's secret body to another origin",
            ));
        }
        let echoed =
            secrets.at_key("http.url") && to.query().is_some() && to.query() == p.url.query();
        if echoed || secrets.appear_in(to.as_str()) {
            return Err(refuse("it would send a secret to another origin"));
        }
    }
    Ok(Hop {
        own_host: to.host() == p.url.host(),
        url: to,
        method,
        body,
        home,
    })
}

/// A URL's origin: scheme, host and port.
fn origin(url: &Url) -> (&str, Option<url::Host<&str>>, Option<u16>) {
    (url.scheme(), url.host(), url.port_or_known_default())
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
    hop: &Hop,
    seen: &mut Observation,
) -> Result<Response, Failure> {
    let url = &hop.url;
    let host = url.host_str().unwrap_or_default().to_string();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let addrs = dial::resolve(prober, &host, p.prefer_ip, p.ip_fallback, seen).await?;
    let tcp = dial::connect(&addrs, port, seen).await?;
    let request = build_request(prober, p, hop)?;
    if https {
        let chain = Arc::new(Mutex::new(Vec::new()));
        let alpn: &[&[u8]] = if p.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let settings = TlsSettings {
            ca_file: p.tls().ca_file.as_deref(),
            client_cert: p
                .tls()
                .client_cert
                .as_ref()
                .filter(|_| hop.own_host)
                .map(|(c, k)| (c.as_path(), k.as_path())),
            insecure_skip_verify: p.tls().insecure_skip_verify,
            alpn,
        };
        let config = trust::client_config(&prober.web_roots, &settings, chain.clone())?;
        let server_name = p.tls().server_name.clone().filter(|_| hop.own_host);
        let name = server_name.unwrap_or_else(|| {
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
    hop: &Hop,
) -> Result<Request<Full<Bytes>>, Failure> {
    let bad = |what: &str| {
        Failure::new(
            Reason::HttpProtocol,
            format!("cannot build the request: {what}"),
        )
    };
    let url = &hop.url;
    let uri: Uri = url
        .as_str()
        .parse()
        .map_err(|_| bad("the URL is not a valid URI"))?;
    let (method, body) = (hop.method.clone(), hop.body.clone());
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
    // The check's own headers go to its own origin only, never across a
    // redirect to another (where `Authorization` or a `${VAR}` would leak).
    for (name, value) in p.headers().iter().filter(|_| hop.home) {
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

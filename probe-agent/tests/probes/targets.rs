//! Real target servers on 127.0.0.1, started inside the tests: HTTP (hyper,
//! HTTP/1.1 and HTTP/2), TLS with certificates made here (rcgen), raw TCP
//! servers that misbehave, a DNS server speaking the real wire protocol, and a
//! UDP socket that never answers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

type Body = BoxBody<Bytes, Infallible>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(full(body))
        .unwrap()
}

fn redirect(to: &str) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", to)
        .body(full(""))
        .unwrap()
}

/// The routes of the test HTTP target.
async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let response = match path.as_str() {
        "/" => Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("x-served-by", "test-target")
            .body(full(
                "<html><title>Test</title><body>Welcome to the test page</body></html>",
            ))
            .unwrap(),
        "/json" => Response::builder()
            .header("content-type", "application/json")
            .body(full(r#"{"status":"ok","checks":{"db":true},"n":3}"#))
            .unwrap(),
        "/echo-headers" => {
            let ua = req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            reply(
                200,
                format!(
                    "user-agent={ua}\nauthorization={auth}\nmethod={}\nversion={:?}",
                    req.method(),
                    req.version()
                ),
            )
        }
        "/status/503" => reply(503, "down for maintenance"),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            reply(200, "slow but fine")
        }
        "/loop-a" => redirect("/loop-b"),
        "/loop-b" => redirect("/loop-a"),
        "/big" => {
            // 50 MiB, streamed in 64 KiB chunks.
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::iter(
                (0..800).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            );
            Response::new(StreamBody::new(stream).boxed())
        }
        "/trickle" => {
            // One byte a second, forever.
            let stream = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"."))),
                    (),
                ))
            });
            Response::new(StreamBody::new(stream).boxed())
        }
        p if p.starts_with("/redirect/") => {
            let n: u32 = p["/redirect/".len()..].parse().unwrap_or(0);
            if n == 0 {
                reply(200, "arrived")
            } else {
                redirect(&format!("/redirect/{}", n - 1))
            }
        }
        // `/goto/307?URL` answers a 307 (any 3xx code) to URL.
        p if p.starts_with("/goto/") => Response::builder()
            .status(p["/goto/".len()..].parse::<u16>().unwrap_or(302))
            .header("location", req.uri().query().unwrap_or("/"))
            .body(full(""))
            .unwrap(),
        p if p.starts_with("/forever/") => {
            let n: u32 = p["/forever/".len()..].parse().unwrap_or(0);
            redirect(&format!("/forever/{}", n + 1))
        }
        _ => reply(404, "not found"),
    };
    Ok(response)
}

/// An HTTP/1.1 + HTTP/2 (h2c not offered) target on 127.0.0.1.
pub async fn http_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(route))
                    .await;
            });
        }
    });
    addr
}

/// A test PKI: a CA, and leaves signed by it, written as PEM files.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// Which certificate a TLS target presents.
#[derive(Clone, Copy, Debug)]
pub enum Leaf {
    /// For localhost and 127.0.0.1, valid for years.
    Valid,
    /// Expired in 2020.
    Expired,
    /// For another name only.
    WrongHost,
    /// Valid, but expiring within 5 days.
    ExpiresSoon,
    /// Self-signed, not from the CA.
    SelfSigned,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("statuspage-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "statuspage test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).unwrap();
        Pki {
            dir,
            ca_file,
            issuer,
        }
    }

    /// A server config presenting `leaf`, offering `alpn`.
    pub fn server_config(&self, leaf: Leaf, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let names = match leaf {
            Leaf::WrongHost => vec!["other.example".to_string()],
            _ => vec!["localhost".to_string()],
        };
        let mut params = CertificateParams::new(names).unwrap();
        if !matches!(leaf, Leaf::WrongHost) {
            params
                .subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{leaf:?} leaf"));
        match leaf {
            Leaf::Expired => {
                params.not_before = rcgen::date_time_ymd(2019, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            Leaf::ExpiresSoon => {
                let soon = chrono::Utc::now() + chrono::Duration::days(5);
                use chrono::Datelike;
                params.not_after =
                    rcgen::date_time_ymd(soon.year(), soon.month() as u8, soon.day() as u8);
            }
            _ => {}
        }
        let key = KeyPair::generate().unwrap();
        let cert = match leaf {
            Leaf::SelfSigned => params.self_signed(&key).unwrap(),
            _ => params.signed_by(&key, &self.issuer).unwrap(),
        };
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

impl Pki {
    /// A client certificate signed by the CA, as PEM files (cert, key).
    pub fn client_cert_files(&self) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "probe client");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (self.dir.join("client.pem"), self.dir.join("client-key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A server config (valid leaf, HTTP/1.1) that requires a client certificate from the CA.
    pub fn server_config_requiring_client_cert(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let plain = self.server_config(Leaf::Valid, &[]);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(plain.cert_resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS target that completes handshakes and, if `http`, serves the HTTP routes over them.
pub async fn tls_target(config: rustls::ServerConfig, http: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if http {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(route))
                        .await;
                } else {
                    let mut buf = [0u8; 1];
                    let _ = tls.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// A TCP server that runs `handle` on every connection.
pub async fn tcp_target<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// Accepts and never answers.
pub async fn silent_target() -> SocketAddr {
    tcp_target(|mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
}

/// Answers with a chunked body whose chunk size is not hex.
pub async fn bad_chunked_target() -> SocketAddr {
    tcp_target(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbroken\r\n0\r\n\r\n").await;
        let _ = s.shutdown().await;
    })
    .await
}

/// A line-based echo server with a banner, like SMTP.
pub async fn banner_target() -> SocketAddr {
    tcp_target(|mut s| async move {
        let _ = s.write_all(b"220 test.example ESMTP ready\r\n").await;
        let mut buf = [0u8; 1024];
        if let Ok(n) = s.read(&mut buf).await {
            let _ = s.write_all(&buf[..n]).await;
        }
    })
    .await
}

/// A port that refuses connections: bound, then closed.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// A UDP socket that receives and never answers (kept open by the returned handle).
pub async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}

pub use dns::dns_target;

mod dns {
    //! A small authoritative DNS server for `example.test.` on the real wire
    //! protocol (UDP and TCP): `www` and `multi` have A records, `alias` is a
    //! CNAME, `mail` an MX, `fail.` names get SERVFAIL, the rest NXDOMAIN.

    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use std::net::SocketAddr;
    use std::str::FromStr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    fn answer(query: &Message) -> Message {
        let mut resp = Message::new();
        resp.set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(query.op_code())
            .set_authoritative(true);
        let Some(q) = query.queries().first() else {
            resp.set_response_code(ResponseCode::FormErr);
            return resp;
        };
        resp.add_query(q.clone());
        let name = q.name().to_ascii().to_ascii_lowercase();
        let n = q.name().clone();
        let records: Vec<RData> = match (name.as_str(), q.query_type()) {
            ("www.example.test.", RecordType::A) => vec![RData::A(A::new(192, 0, 2, 10))],
            ("multi.example.test.", RecordType::A) => vec![
                RData::A(A::new(192, 0, 2, 1)),
                RData::A(A::new(192, 0, 2, 2)),
            ],
            ("alias.example.test.", RecordType::CNAME) => vec![RData::CNAME(CNAME(
                Name::from_str("www.example.test.").unwrap(),
            ))],
            ("example.test.", RecordType::MX) => vec![RData::MX(MX::new(
                10,
                Name::from_str("mail.example.test.").unwrap(),
            ))],
            ("example.test.", RecordType::TXT) => {
                vec![RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))]
            }
            (n, _) if n.starts_with("fail.") => {
                resp.set_response_code(ResponseCode::ServFail);
                return resp;
            }
            (
                "www.example.test."
                | "multi.example.test."
                | "alias.example.test."
                | "example.test.",
                _,
            ) => vec![],
            _ => {
                resp.set_response_code(ResponseCode::NXDomain);
                return resp;
            }
        };
        for r in records {
            resp.add_answer(Record::from_rdata(n.clone(), 300, r));
        }
        resp
    }

    /// Serves on one port for both UDP and TCP.
    pub async fn dns_target() -> SocketAddr {
        // The UDP port's TCP twin may be taken by another test: try another.
        let (udp, addr, tcp) = 'bind: {
            for _ in 0..50 {
                let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let addr = udp.local_addr().unwrap();
                if let Ok(tcp) = TcpListener::bind(addr).await {
                    break 'bind (udp, addr, tcp);
                }
            }
            panic!("no loopback port free for both UDP and TCP");
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                if let Ok(q) = Message::from_vec(&buf[..n]) {
                    let _ = udp.send_to(&answer(&q).to_vec().unwrap(), from).await;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut buf = vec![0u8; len as usize];
                    if s.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Ok(q) = Message::from_vec(&buf) else {
                        return;
                    };
                    let bytes = answer(&q).to_vec().unwrap();
                    let _ = s.write_u16(bytes.len() as u16).await;
                    let _ = s.write_all(&bytes).await;
                });
            }
        });
        addr
    }
}

/// A plain HTTP/1.1 server on 127.0.0.1 that records every request (head and
/// body, as text) and answers each with `answer(path)`: a whole response.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    pub async fn start(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, answer) = (seen.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The head, then as many body bytes as it announces.
                    let head_end = loop {
                        let Ok(n @ 1..) = s.read(&mut buf).await else {
                            return;
                        };
                        got.extend_from_slice(&buf[..n]);
                        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while got.len() < head_end + length {
                        let Ok(n @ 1..) = s.read(&mut buf).await else {
                            break;
                        };
                        got.extend_from_slice(&buf[..n]);
                    }
                    let text = String::from_utf8_lossy(&got).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                    log.lock().unwrap().push(text);
                    let _ = s.write_all(answer(&path).as_bytes()).await;
                });
            }
        });
        Recorder { addr, seen }
    }

    /// Every request so far, as text.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A whole HTTP/1.1 response with `status`, extra `headers` lines and `body`.
pub fn answer(status: u16, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

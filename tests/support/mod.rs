//! Helpers shared by the binary tests (each test binary uses some of them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};

pub mod browser;
pub mod proxy;
pub mod receiver;
#[allow(unused_imports)]
pub use browser::{chromium, screenshots_dir};

/// Every batch in the queue, decoded (either encoding), deleting as it goes.
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<config::wire::ResultBatch> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for msg in msgs {
            let enc = msg
                .message_attributes
                .as_ref()
                .and_then(|a| a.get(config::wire::ENCODING_ATTRIBUTE))
                .and_then(|v| v.string_value().map(str::to_string));
            out.push(
                config::wire::decode(
                    msg.body().unwrap_or_default(),
                    enc.as_deref(),
                    config::wire::DEFAULT_MAX_MESSAGE_BYTES,
                )
                .unwrap(),
            );
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(msg.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A client for moto and a fresh, shallow queue named after `tag`.
pub async fn fresh_queue(tag: &str) -> (aws_sdk_sqs::Client, String) {
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{tag}-{nanos}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, queue)
}

/// A child process killed when dropped, so a failing test leaves no
/// server running behind it.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A loopback port that is free now and that no other caller in this test
/// process has been given. The tests of a binary run in parallel, and a
/// port chosen here is released at once, to be bound later by a child
/// process: until then the kernel may hand it out again to the next test.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

pub fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The sample `name` with these labels in a scrape's exposition (-1 when absent).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    config::exposition::value(text, name, labels).unwrap_or(-1.0)
}

/// A fresh, empty database on the test server (`DATABASE_URL`, which
/// scripts/test starts); returns its URL and name.
pub async fn fresh_database(tag: &str) -> (String, String) {
    use sqlx::Connection;
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL: scripts/test starts PostgreSQL");
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL is reachable");
    let name = format!("{tag}_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    (format!("{head}/{name}"), name)
}

/// A GET to the loopback `port`, the whole response (status line and
/// headers too).
pub fn http_raw(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A GET's body, or `None` while the server is not answering.
pub fn http_body(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// A GET's status code, or `None` while the server is not answering.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// A GET's body as JSON.
pub fn http_json(port: u16, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&http_body(port, path)?).ok()
}

/// The check `id` in `/api/v1/status`.
pub fn status_of(port: u16, id: &str) -> Option<serde_json::Value> {
    let v = http_json(port, "/api/v1/status")?;
    v["checks"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

/// Polls `f` every 100 ms until it gives `Some` (returned with the instant),
/// or fails the test after `within`.
pub fn until<T>(
    within: std::time::Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> (T, std::time::Instant) {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return (v, std::time::Instant::now());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Watches a property that must keep holding: `holds` is checked every
/// 100 ms for the whole of `during`, and the first time it does not, the
/// test fails with what it says.
pub fn watch(during: std::time::Duration, mut holds: impl FnMut() -> Result<(), String>) {
    let end = std::time::Instant::now() + during;
    while std::time::Instant::now() < end {
        if let Err(why) = holds() {
            panic!("{why}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An HTTP target on loopback, each request on a thread of its own: it
/// answers 503 when `fails(request text)` says so, else 200.
pub fn http_target(fails: impl Fn(&str) -> bool + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fails = std::sync::Arc::new(fails);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let fails = fails.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let status = if fails(&request) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            });
        }
    });
    port
}

//! Helpers shared by the binary tests (each test binary uses some of them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};

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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// One headless Chromium run (Debian's, from STATUSPAGE_TEST_CHROMIUM) with
/// a fresh profile; returns (stdout, the console messages it logged).
pub fn chromium(args: &[String]) -> (String, Vec<String>) {
    let bin = std::env::var("STATUSPAGE_TEST_CHROMIUM")
        .expect("STATUSPAGE_TEST_CHROMIUM: scripts/test installs Debian's chromium");
    let profile = std::env::temp_dir().join(format!(
        "statuspage-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// Where screenshots go: `<target dir>/screenshots`.
pub fn screenshots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("target")
        });
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

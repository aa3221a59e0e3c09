//! The notification receiver (`webhook_receiver.py`): Standard Webhooks
//! verified by the `standardwebhooks` package, mail by `aiosmtpd`.

use super::{Reaped, until};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The webhook secret the receiver verifies with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The receiver, answering the webhook path by `plan`, with an SMTP server
/// beside it; its HTTP port, its SMTP port and its log's path.
pub fn receiver(dir: &Path, plan: &str) -> (Reaped, u16, u16, PathBuf) {
    let python = std::env::var("STATUSPAGE_TEST_WEBHOOK_PYTHON")
        .expect("STATUSPAGE_TEST_WEBHOOK_PYTHON: scripts/test installs standardwebhooks in a venv");
    let port_file = dir.join("receiver.port");
    let smtp_file = dir.join("smtp.port");
    let log = dir.join("receiver.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
    let child = Reaped(
        Command::new(python)
            .arg(script)
            .arg(&port_file)
            .arg(&log)
            .arg(SECRET)
            .arg(plan)
            .arg(&smtp_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let read = |file: &Path| {
        std::fs::read_to_string(file)
            .ok()?
            .trim()
            .parse::<u16>()
            .ok()
    };
    let ((port, smtp), _) = until(Duration::from_secs(20), "the receiver listening", || {
        Some((read(&port_file)?, read(&smtp_file)?))
    });
    (child, port, smtp, log)
}

pub fn received(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn on(records: &[serde_json::Value], path: &str) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|r| r["path"] == path)
        .cloned()
        .collect()
}

//! Headless Chromium for the browser tests, shared by the binary's tests and
//! the dashboard crate's (which includes this file by path): std only.

use std::process::Command;

/// One headless Chromium run (Debian's, from STATUSPAGE_TEST_CHROMIUM) with
/// a fresh profile; returns (stdout, the console messages it logged).
pub fn chromium(args: &[String]) -> (String, Vec<String>) {
    run(args, true)
}

/// [`chromium`] with JavaScript blocked, as a reader who turned it off has
/// it: the profile's content setting, which stops page scripts but not
/// `--dump-dom`.
pub fn chromium_without_javascript(args: &[String]) -> (String, Vec<String>) {
    run(args, false)
}

fn run(args: &[String], javascript: bool) -> (String, Vec<String>) {
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
    if !javascript {
        let default = profile.join("Default");
        std::fs::create_dir_all(&default).expect("a profile directory");
        std::fs::write(
            default.join("Preferences"),
            r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
        )
        .expect("a profile that blocks JavaScript");
    }
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

/// Where screenshots go: `<target dir>/screenshots` (`CARGO_TARGET_DIR`, else
/// `target/` at the workspace root, the folder with `Cargo.lock`).
pub fn screenshots_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            let here = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
            here.ancestors()
                .find(|d| d.join("Cargo.lock").exists())
                .unwrap_or(&here)
                .join("target")
        });
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

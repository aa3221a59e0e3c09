//! The `statuspage` binary as a user runs it: exit codes, output formats,
//! and `check` against real local targets.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn statuspage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(args)
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .env_remove("STATUSPAGE_CONFIG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_config(tag: &str, yaml: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("statuspage-cli-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A one-thread HTTP server answering `200 Welcome` to every request.
fn http_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nWelcome",
            );
        }
    });
    port
}

#[test]
fn validate_prints_a_summary_and_exits_zero() {
    let out = statuspage(&["validate", "config/examples/checks.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: 7 checks (1 private) in 2 groups, 2 maintenance windows, from 1 file\n"
    );
    let out = statuspage(&["validate", "--config", "config/examples/minimal.yaml"]);
    assert!(out.status.success());
}

#[test]
fn validate_prints_every_problem_with_its_position_and_exits_one() {
    let fixture = "config/tests/fixtures/invalid/many-errors-one-file.yaml";
    let out = statuspage(&["validate", fixture]);
    assert_eq!(out.status.code(), Some(1));
    let expected =
        std::fs::read_to_string("config/tests/fixtures/invalid/many-errors-one-file.expected")
            .unwrap();
    let expected = expected.replace("invalid/", "config/tests/fixtures/invalid/");
    assert_eq!(text(&out.stderr), format!("{expected}6 problems found\n"));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_config_can_come_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .arg("validate")
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .env("STATUSPAGE_CONFIG", "config/examples/minimal.yaml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = statuspage(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no config given"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn schema_prints_a_json_schema() {
    let out = statuspage(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap()
            .contains("json-schema.org")
    );
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn help_lists_every_subcommand() {
    let help = text(&statuspage(&["--help"]).stdout);
    for sub in [
        "validate",
        "check",
        "agent",
        "ingest",
        "dashboard",
        "standalone",
        "demo",
        "migrate",
        "schema",
        "rules",
    ] {
        assert!(
            help.contains(&format!("  {sub} ")),
            "{sub} missing from:\n{help}"
        );
    }
    let out = statuspage(&["demo", "--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_probes_local_targets_and_exits_by_outcome() {
    let up = http_target();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = temp_config(
        "check",
        &format!(
            "groups:\n  - name: Local\n    checks:\n      - name: Web\n        timeout: 2s\n        http: {{ url: 'http://127.0.0.1:{up}/', expect: {{ body_contains: Welcome }} }}\n      - name: Gone\n        timeout: 2s\n        tcp: {{ host: 127.0.0.1, port: {closed} }}\n"
        ),
    );
    let path = config.to_str().unwrap();

    let out = statuspage(&["check", "--config", path, "--check", "local-web"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let table = text(&out.stdout);
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with("local-web") && row.contains(" up ") && row.contains(" ok "),
        "{table}"
    );
    assert!(table.contains("pass  body contains \"Welcome\""), "{table}");
    assert!(table.ends_with("1 of 1 check up\n"), "{table}");

    let out = statuspage(&["check", "--config", path]);
    assert_eq!(out.status.code(), Some(1), "one check is down");
    assert!(text(&out.stdout).contains("connect_refused"));

    let out = statuspage(&["check", "--config", path, "--json"]);
    let results: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["outcome"], "up");
    assert!(results[0]["phases"]["connect_us"].is_u64());
    assert_eq!(results[1]["reason"], "connect_refused");

    let out = statuspage(&["check", "--config", path, "--check", "local-wbe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no check with id `local-wbe`; did you mean: local-web"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(Path::new(path)).unwrap();
}

/// A secret in a display name would be published on the page, the API,
/// the badges and the feed: `validate` refuses it at its position, and never
/// prints the value. Before, `"Billing ${SECRET}"` passed and was shown.
#[test]
fn validate_refuses_a_secret_in_display_text_without_printing_it() {
    let config = temp_config(
        "secret-name",
        "groups:\n  - name: Billing\n    checks:\n      - name: \"Billing ${BILLING_TOKEN}\"\n        http: { url: 'https://example.com/' }\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["validate", config.to_str().unwrap()])
        .env("BILLING_TOKEN", "tok-0123456789")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(":4:15: groups[0].checks[0].name: `${...}` is not allowed in display text"),
        "{stderr}"
    );
    assert!(!stderr.contains("tok-0123456789") && !text(&out.stdout).contains("tok-0123456789"));
    let _ = std::fs::remove_file(config);
}

/// A lease no longer than two ticks would lapse between renewals, and two
/// replicas would lead at once: ingest refuses it before touching anything.
#[test]
fn ingest_refuses_a_leader_lease_of_two_ticks_or_less() {
    let out = statuspage(&[
        "ingest",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--queue-url",
        "http://127.0.0.1:1/000000000000/none",
        "--tick-seconds",
        "5",
        "--leader-lease",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("--leader-lease (10s) must be more than twice --tick-seconds (5s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rules_prints_the_charts_slo_rules_and_checks_a_config_first() {
    let plain = statuspage(&["rules"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/statuspage/files/slo-rules.yaml"),
    )
    .unwrap();
    assert_eq!(
        text(&plain.stdout),
        shipped,
        "the chart ships what the command prints"
    );
    for needle in [
        "- alert: StatusCheckErrorBudgetBurn\n",
        "- alert: StatusCheckErrorBudgetBurnSlow\n",
        "statuspage_check_slo_objective",
        "statuspage_check_slo_window_seconds",
        "clamp_max(0.02 * statuspage_check:slo_window:seconds / 3600 *",
        "clamp_max(0.05 * statuspage_check:slo_window:seconds / 21600 *",
        "clamp_max(0.1 * statuspage_check:slo_window:seconds / 259200 *",
    ] {
        assert!(shipped.contains(needle), "{needle}");
    }

    let operator = text(&statuspage(&["rules", "--format", "prometheus-rule"]).stdout);
    assert!(operator.contains("\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"));
    assert!(operator.contains("\nspec:\n  groups:\n    - name: statuspage.slo.sli\n"));

    let good = temp_config(
        "rules-good",
        "groups:\n  - name: Web\n    slo: { target: 99.9%, window: 30d }\n    checks:\n      - name: Home\n        tcp: { host: 127.0.0.1, port: 9 }\n",
    );
    let out = statuspage(&["rules", "--config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout)
            .contains("# The objectives in --config:\n#   web-home: 99.9% over 30 days\n")
    );

    let none = temp_config(
        "rules-none",
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        tcp: { host: 127.0.0.1, port: 9 }\n",
    );
    let out = statuspage(&["rules", "--config", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("no check in --config has an slo; these rules will never fire")
    );

    let bad = temp_config(
        "rules-bad",
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        slo: { target: 100%, window: 30d }\n        tcp: { host: 127.0.0.1, port: 9 }\n",
    );
    let out = statuspage(&["rules", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no rules after a bad config");
    assert!(
        text(&out.stderr).contains(
            ":5:24: groups[0].checks[0].slo.target: expected a percentage above 0% and below 100%"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        statuspage(&["rules", "--format", "yaml"]).status.code(),
        Some(2)
    );
    for f in [good, none, bad] {
        let _ = std::fs::remove_file(f);
    }
}

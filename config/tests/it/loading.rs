//! Loading, defaults, ids, secrets, schedules and maintenance, on valid input.

use crate::{crate_dir, env_of, load_text};
use chrono::{TimeZone, Utc};
use config::Probe;
use config::catalog::{JsonCheck, MaintenanceTime, Schedule, StatusPattern, Statuses};
use config::defaults::{BUILT_IN, Locations, Quorum};
use std::time::Duration;

#[test]
fn the_examples_validate_without_any_environment() {
    let none = env_of(&[]);
    for name in ["checks.yaml", "minimal.yaml"] {
        let path = crate_dir().join("examples").join(name);
        let catalog = config::load(&[path], &none).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert!(!catalog.checks.is_empty());
    }
}

#[test]
fn the_full_example_uses_every_probe_kind() {
    let catalog = config::load(&[crate_dir().join("examples/checks.yaml")], &env_of(&[])).unwrap();
    let kinds: std::collections::BTreeSet<_> = catalog
        .checks
        .iter()
        .map(|c| c.probe.kind().as_str())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["dns", "http", "tcp", "tls"]
    );
    assert_eq!(catalog.maintenance.len(), 2);
}

#[test]
fn checks_inherit_built_in_defaults_then_file_defaults_then_their_own() {
    let catalog = load_text(
        "defaults: { interval: 30s, quorum: 1 }\n\
         groups:\n  - name: Website\n    checks:\n\
         \x20     - name: Homepage\n        http: { url: https://example.com/ }\n\
         \x20     - name: API\n        interval: 2m\n        timeout: 20s\n        locations: all\n        http: { url: https://example.com/api }\n",
        &env_of(&[]),
    )
    .unwrap();
    let home = catalog
        .check("website-homepage")
        .expect("default id from group and name");
    assert!(matches!(home.schedule, Schedule::Interval(d) if d == Duration::from_secs(30)));
    assert_eq!(home.timeout, BUILT_IN.timeout);
    assert_eq!(home.locations, BUILT_IN.locations);
    assert_eq!(home.quorum, Quorum::Count(1));
    assert_eq!(home.failure_threshold, BUILT_IN.failure_threshold);
    assert!(home.public);
    let api = catalog.check("website-api").unwrap();
    assert!(matches!(api.schedule, Schedule::Interval(d) if d == Duration::from_secs(120)));
    assert_eq!(api.timeout, Duration::from_secs(20));
    assert_eq!(api.locations, Locations::All);
    let Probe::Http(http) = &home.probe else {
        panic!("http")
    };
    assert_eq!(*http.expect.status, [StatusPattern::Class(2)]);
    assert_eq!(http.max_redirects, 10);
    assert_eq!(http.max_body, 1 << 20);
}

/// What few HTTP checks set costs one pointer when unset (an agent may hold
/// 100,000 checks), and reads the same whether set or not.
#[test]
fn an_http_probe_boxes_only_what_it_sets() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n\
         \x20     - name: Plain\n        http: { url: 'https://example.com/', expect: { status: [200], body_contains: ok } }\n\
         \x20     - name: Full\n        http: { url: 'https://example.com/', method: POST, body: hi, headers: { X-A: b },\n\
         \x20         expect: { status: [200, 3xx], body_not_contains: error, certificate_valid_for: 7d } }\n",
        &env_of(&[]),
    )
    .unwrap();
    let http = |id: &str| match &catalog.check(id).unwrap().probe {
        Probe::Http(h) => h.clone(),
        other => panic!("{other:?}"),
    };
    let plain = http("web-plain");
    assert!(plain.request.is_none() && plain.expect.more.is_none() && plain.tls.is_none());
    assert!(matches!(
        plain.expect.status,
        Statuses::One(StatusPattern::Code(200))
    ));
    assert_eq!(plain.expect.body_contains.as_deref(), Some("ok"));
    assert_eq!((plain.headers(), plain.body()), (&[][..], None));
    assert_eq!(plain.expect.more().body_not_contains, None);
    let full = http("web-full");
    assert_eq!(full.headers(), [("X-A".to_string(), "b".to_string())]);
    assert_eq!(full.body(), Some("hi"));
    assert_eq!(
        *full.expect.status,
        [StatusPattern::Code(200), StatusPattern::Class(3)]
    );
    let more = full
        .expect
        .more
        .as_deref()
        .expect("the rarer assertions, boxed");
    assert_eq!(more.body_not_contains.as_deref(), Some("error"));
    assert_eq!(
        more.certificate_valid_for,
        Some(Duration::from_secs(7 * 86_400))
    );
}

#[test]
fn a_directory_is_one_catalog_and_a_group_may_span_files() {
    let dir = tempdir("dir");
    std::fs::write(dir.join("a.yaml"), "groups:\n  - name: Web\n    checks:\n      - name: A\n        tcp: { host: a.example, port: 80 }\n").unwrap();
    std::fs::write(dir.join("b.yml"), "groups:\n  - name: Web\n    checks:\n      - name: B\n        tcp: { host: b.example, port: 80 }\n").unwrap();
    std::fs::write(dir.join(".hidden.yaml"), "not: [valid").unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let catalog = config::load(std::slice::from_ref(&dir), &env_of(&[])).unwrap();
    assert_eq!(catalog.groups.len(), 1);
    assert_eq!(
        catalog.groups[0]
            .checks
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["web-a", "web-b"]
    );
    assert_eq!(catalog.files.len(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_path_and_an_empty_directory_are_errors_with_the_path() {
    let dir = tempdir("empty");
    let missing = dir.join("nope.yaml");
    let err = config::load(&[missing.clone(), dir.clone()], &env_of(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}:1:1: cannot read the file", missing.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:1:1: the directory has no .yaml or .yml files",
            dir.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn interpolated_values_are_marked_secret_and_redactable() {
    let env = env_of(&[("TOKEN", "tok-abcdef"), ("PORT", "8443")]);
    let catalog = load_text(
        "groups:\n  - name: API\n    checks:\n      - name: Health\n        http:\n          url: https://api.example.com/\n          headers: { Authorization: \"Bearer ${TOKEN}\" }\n\
         \x20     - name: Port\n        tcp: { host: db.example, port: \"${PORT}\" }\n",
        &env,
    )
    .unwrap();
    let health = catalog.check("api-health").unwrap();
    assert_eq!(
        health.secrets.paths(),
        ["groups[0].checks[0].http.headers.Authorization"]
    );
    assert_eq!(
        health.redact("401 for Bearer tok-abcdef"),
        "401 for Bearer [redacted]"
    );
    assert!(!format!("{health:?}").contains("tok-abcdef"));
    let Probe::Http(http) = &health.probe else {
        panic!()
    };
    assert_eq!(
        http.headers(),
        [("Authorization".to_string(), "Bearer tok-abcdef".to_string())]
    );
    let Probe::Tcp(tcp) = &catalog.check("api-port").unwrap().probe else {
        panic!()
    };
    assert_eq!(tcp.port, 8443, "a number may come from the environment");
}

#[test]
fn an_interpolated_value_cannot_inject_yaml() {
    let injected = "x\n        tcp: { host: evil, port: 1 }";
    let env = env_of(&[("BODY", injected)]);
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: { url: https://example.com/, method: POST, body: \"${BODY}\" }\n",
        &env,
    )
    .unwrap();
    let Probe::Http(http) = &catalog.checks[0].probe else {
        panic!("still one HTTP check")
    };
    assert_eq!(http.body(), Some(injected), "the value is text, not YAML");
}

#[test]
fn a_secret_in_display_text_is_refused_at_its_position() {
    let env = env_of(&[("NAME", "hunter2-value")]);
    let err = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: \"Billing ${NAME}\"\n        http: { url: https://example.com/ }\n",
        &env,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "checks.yaml:4:15: groups[0].checks[0].name: `${...}` is not allowed in display text: interpolated values are secrets and this text is published (write `$${` for a literal `${`)"
    );
}

#[test]
fn a_dollar_dollar_brace_is_a_literal() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http:\n          url: https://example.com/\n          expect: { body_contains: \"$${NOT_A_VAR}\" }\n",
        &env_of(&[]),
    )
    .unwrap();
    let Probe::Http(http) = &catalog.checks[0].probe else {
        panic!()
    };
    assert_eq!(http.expect.body_contains.as_deref(), Some("${NOT_A_VAR}"));
    assert!(catalog.checks[0].secrets.is_empty());
}

#[test]
fn a_five_field_cron_line_means_second_zero() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        schedule: \"*/5 * * * *\"\n        http: { url: https://example.com/ }\n",
        &env_of(&[]),
    )
    .unwrap();
    let Schedule::Cron(cron) = &catalog.checks[0].schedule else {
        panic!("cron")
    };
    let from = Utc.with_ymd_and_hms(2026, 5, 1, 10, 1, 30).unwrap();
    assert_eq!(
        cron.schedule.after(&from).next(),
        Some(Utc.with_ymd_and_hms(2026, 5, 1, 10, 5, 0).unwrap())
    );
    assert_eq!(cron.min_gap, Duration::from_secs(300));
}

#[test]
fn config_hash_is_stable_and_follows_the_definition() {
    let text = |url: &str| {
        format!(
            "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: {{ url: {url} }}\n"
        )
    };
    let hash = |t: &str| {
        load_text(t, &env_of(&[])).unwrap().checks[0]
            .config_hash
            .to_string()
    };
    assert_eq!(
        hash(&text("https://a.example/")),
        hash(&text("https://a.example/"))
    );
    assert_ne!(
        hash(&text("https://a.example/")),
        hash(&text("https://b.example/"))
    );
    let shown = hash(&text("https://a.example/"));
    assert_eq!(shown.len(), 16, "{shown}");
    assert!(
        shown
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{shown}"
    );
}

#[test]
fn json_assertions_and_status_classes_are_compiled() {
    let catalog = load_text(
        "groups:\n  - name: API\n    checks:\n      - name: Health\n        http:\n          url: https://api.example.com/\n\
         \x20         expect:\n            status: [204, 3xx]\n            json:\n              - { path: $.status, equals: ok }\n              - { path: $.errors, exists: false }\n",
        &env_of(&[]),
    )
    .unwrap();
    let Probe::Http(http) = &catalog.checks[0].probe else {
        panic!()
    };
    assert!(http.expect.status.iter().any(|s| s.matches(302)));
    assert!(!http.expect.status.iter().any(|s| s.matches(200)));
    assert_eq!(
        http.expect.more().json[0].check,
        JsonCheck::Equals("ok".into())
    );
    let doc = serde_json::json!({"status": "ok"});
    assert_eq!(
        http.expect.more().json[0].path.query(&doc).all(),
        vec![&serde_json::json!("ok")]
    );
}

#[test]
fn recurring_maintenance_follows_its_time_zone() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: { url: https://example.com/ }\n\
         maintenance:\n  - name: Patching\n    checks: [web-home]\n    schedule: \"0 3 * * SUN\"\n    timezone: Europe/Berlin\n    duration: 30m\n",
        &env_of(&[]),
    )
    .unwrap();
    let window = &catalog.maintenance[0];
    assert!(matches!(window.when, MaintenanceTime::Recurring { .. }));
    // Sunday 2026-07-05 03:00 in Berlin (CEST, UTC+2) is 01:00 UTC.
    let inside = Utc.with_ymd_and_hms(2026, 7, 5, 1, 10, 0).unwrap();
    let (start, end) = window.active_at(inside).expect("inside the window");
    assert_eq!(start, Utc.with_ymd_and_hms(2026, 7, 5, 1, 0, 0).unwrap());
    assert_eq!(end, Utc.with_ymd_and_hms(2026, 7, 5, 1, 30, 0).unwrap());
    assert_eq!(
        window.active_at(Utc.with_ymd_and_hms(2026, 7, 5, 1, 30, 0).unwrap()),
        None
    );
    assert_eq!(window.checks[0].as_str(), "web-home");
}

#[test]
fn one_off_maintenance_accepts_a_local_time_in_its_zone() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: { url: https://example.com/ }\n\
         maintenance:\n  - name: Upgrade\n    checks: [web-home]\n    start: 2026-12-01T02:00\n    timezone: America/New_York\n    duration: 2h\n",
        &env_of(&[]),
    )
    .unwrap();
    let MaintenanceTime::Once(start) = catalog.maintenance[0].when else {
        panic!()
    };
    assert_eq!(start, Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap());
}

#[test]
fn private_checks_are_left_out_of_public_views() {
    let catalog = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: { url: https://example.com/ }\n      - name: DB\n        public: false\n        tcp: { host: db, port: 5432 }\n",
        &env_of(&[]),
    )
    .unwrap();
    assert_eq!(
        catalog
            .public_checks()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["web-home"]
    );
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("statuspage-config-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_config_hash_is_over_the_text_before_interpolation() {
    let yaml = |path: &str| {
        format!(
            "groups:\n  - name: Billing\n    checks:\n      - name: Api\n        http:\n          url: https://example.com{path}\n          headers: {{ Authorization: \"Bearer ${{TOKEN}}\" }}\n"
        )
    };
    let hash = |text: &str, token: &str| {
        load_text(text, &env_of(&[("TOKEN", token)]))
            .unwrap()
            .checks[0]
            .config_hash
    };
    let one = hash(&yaml("/"), "1234");
    // A four-digit PIN would be found by hashing 10,000 guesses, were it hashed.
    assert_eq!(
        one,
        hash(&yaml("/"), "9999"),
        "the secret's value is not hashed"
    );
    assert_ne!(one, hash(&yaml("/v2"), "1234"), "the text around it is");
}

/// The agent reads only the checks: a `notifications` section whose
/// variables are unset where the agent runs is neither interpolated nor
/// validated there, while ingest (every section) reads and checks it.
#[test]
fn only_the_roles_that_read_notifications_interpolate_them() {
    let yaml = r#"
groups:
  - name: Website
    checks:
      - name: Homepage
        http: { url: "https://example.com/" }
smtp:
  url: "smtp://status:${SMTP_PASSWORD}@mail.example.com:587"
  from: "Status <status@example.com>"
notifications:
  channels:
    - name: ops
      webhook: { url: "https://hooks.example.com/in", secret: "${WEBHOOK_SECRET}" }
    - name: pager
      pagerduty: { routing_key: "${PD_KEY}" }
  routes:
    - channels: [pager]
      groups: [Website]
      min_impact: major
"#;
    let sources = [(std::path::PathBuf::from("n.yaml"), yaml.to_string())];
    let path = std::env::temp_dir().join(format!("statuspage-notify-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    let none = env_of(&[]);
    let agent = config::load_sections(std::slice::from_ref(&path), &none, config::Sections::Checks)
        .expect("the agent never needs the notification secrets");
    assert_eq!(agent.checks.len(), 1);
    assert!(agent.notifications.channels.is_empty());

    let problems = config::load_str(&sources, &none).unwrap_err();
    let text = problems.to_string();
    assert!(text.contains("`WEBHOOK_SECRET` is not set"), "{text}");
    assert!(text.contains("`PD_KEY` is not set"), "{text}");
    assert!(text.contains("`SMTP_PASSWORD` is not set"), "{text}");

    let env = env_of(&[
        ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("PD_KEY", "R0UT1NG"),
        ("SMTP_PASSWORD", "p%40ss"),
    ]);
    let ingest = config::load_str(&sources, &env).expect("valid");
    let names: Vec<&str> = ingest
        .notifications
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["ops", "pager"]);
    let smtp = ingest
        .notifications
        .smtp
        .as_ref()
        .expect("the smtp section");
    assert_eq!(
        smtp.login,
        Some(("status".to_string(), "p@ss".to_string())),
        "the password is percent-decoded"
    );
    assert_eq!((smtp.host.as_str(), smtp.port), ("mail.example.com", 587));
    let debug = format!("{:?}", ingest.notifications);
    assert!(
        !debug.contains("R0UT1NG") && !debug.contains("MfKQ9r8G") && !debug.contains("p@ss"),
        "no secret in Debug: {debug}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn an_slo_is_inherited_from_defaults_then_the_group_then_the_check() {
    let catalog = load_text(
        "defaults: { slo: { target: 99%, window: 7d } }\n\
         groups:\n\
         \x20 - name: Core\n    slo: { target: 99.95%, window: 28d }\n    checks:\n\
         \x20     - name: API\n        http: { url: https://example.com/api }\n\
         \x20     - name: Web\n        slo: { target: 99.9%, window: 30d }\n        http: { url: https://example.com/ }\n\
         \x20 - name: Edge\n    checks:\n\
         \x20     - name: CDN\n        http: { url: https://example.com/cdn }\n",
        &env_of(&[]),
    )
    .unwrap();
    let slo = |id: &str| catalog.check(id).unwrap().slo.unwrap();
    assert_eq!(
        slo("core-api"),
        config::catalog::Slo {
            target_ppm: 999_500,
            window_days: 28
        }
    );
    assert_eq!(slo("core-web").target(), 0.999);
    assert_eq!(slo("core-web").window(), "30d");
    assert_eq!(slo("edge-cdn").to_string(), "99% over 7 days");
    let none = load_text(
        "groups:\n  - name: Web\n    checks:\n      - name: Home\n        http: { url: https://example.com/ }\n",
        &env_of(&[]),
    )
    .unwrap();
    assert_eq!(none.checks[0].slo, None);
}

//! The distributed shape end to end: two agents (zone-a, zone-b), two
//! ingest processes and a dashboard, as separate `statuspage` processes over
//! the moto SQS server and PostgreSQL. The target fails for one agent's
//! User-Agent, then for both, then recovers; one ingest is SIGKILLed mid-run;
//! then both agents stop.

mod support;

use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use support::{
    free_port, fresh_database, fresh_queue, http_json, http_target, signal, status_of, until,
};

const OK: u8 = 0;
const FAIL_A: u8 = 1;
const FAIL_BOTH: u8 = 2;

fn incidents(port: u16) -> Vec<serde_json::Value> {
    http_json(port, "/api/v1/incidents?state=all")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

struct Fleet {
    dir: std::path::PathBuf,
    queue: String,
    db: String,
}

impl Fleet {
    /// A fresh queue, database and directory named after `tag`, with the
    /// checks file `yaml`; returns the fleet, the checks file's path and an
    /// SQS client.
    async fn fresh(tag: &str, yaml: &str) -> (Fleet, String, aws_sdk_sqs::Client) {
        let (sqs, queue) = fresh_queue(tag).await;
        let (db, _) = fresh_database(tag).await;
        let dir = std::env::temp_dir().join(format!("statuspage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("checks.yaml");
        std::fs::write(&config, yaml).unwrap();
        let config = config.to_string_lossy().into_owned();
        (Fleet { dir, queue, db }, config, sqs)
    }

    /// A dashboard over the fleet's database, with a 1 s cache; and its port.
    fn dashboard(&self) -> (Child, u16) {
        let port = free_port();
        let child = self.spawn(
            "dashboard",
            &[
                "dashboard",
                "--database-url",
                &self.db,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{}", free_port()),
                "--cache-ttl",
                "1s",
            ],
        );
        (child, port)
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_statuspage"))
            .args(args)
            .env("STATUSPAGE_LOG_FORMAT", "json")
            .env_remove("STATUSPAGE_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap()
    }

    fn agent(&self, id: &str, zone: &str, config: &str) -> Child {
        self.agent_with_peers(id, zone, config, "agent-a@zone-a,agent-b@zone-b")
    }

    fn agent_with_peers(&self, id: &str, zone: &str, config: &str, peers: &str) -> Child {
        let metrics = format!("127.0.0.1:{}", free_port());
        self.spawn(
            id,
            &[
                "agent",
                "--config",
                config,
                "--queue-url",
                &self.queue,
                "--agent-id",
                id,
                "--zone",
                zone,
                "--peers",
                peers,
                "--metrics-listen",
                &metrics,
            ],
        )
    }

    fn ingest(&self, name: &str, config: &str) -> Child {
        let metrics = format!("127.0.0.1:{}", free_port());
        self.spawn(
            name,
            &[
                "ingest",
                "--config",
                config,
                "--queue-url",
                &self.queue,
                "--database-url",
                &self.db,
                "--metrics-listen",
                &metrics,
                "--tick-seconds",
                "1",
                // A killed leader's lease lapses within the test's waits.
                "--leader-lease",
                "4s",
                "--wait-seconds",
                "1",
                "--workers",
                "2",
            ],
        )
    }

    /// The `results` (one per probe run) and `dropped` an agent logged when it stopped.
    fn agent_totals(&self, id: &str) -> (i64, i64) {
        let log = std::fs::read_to_string(self.dir.join(format!("{id}.log"))).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("\"agent_stopped\""))
            .unwrap_or_else(|| panic!("{id} never logged agent_stopped:\n{log}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        (
            v["results"].as_i64().unwrap(),
            v["dropped"].as_i64().unwrap(),
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quorum_recovery_crash_and_silence_across_separate_processes() {
    let mode = Arc::new(AtomicU8::new(OK));
    // The target fails by the prober's User-Agent, which names the agent:
    // `statuspage-agent/<version> (<agent id>)`.
    let target_port = {
        let mode = mode.clone();
        http_target(move |request| match mode.load(Ordering::SeqCst) {
            FAIL_A => request.contains("(agent-a)"),
            FAIL_BOTH => true,
            _ => false,
        })
    };
    let (fleet, config, sqs) = Fleet::fresh(
        "distributed",
        &format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  locations: all\n  failure_threshold: 2\n  success_threshold: 2\ngroups:\n  - name: Shop\n    checks:\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{target_port}/\n"
        ),
    )
    .await;
    let (db, dir) = (fleet.db.clone(), fleet.dir.clone());
    // A short visibility timeout: the message a killed ingest held comes back
    // within the test.
    sqs.set_queue_attributes()
        .queue_url(&fleet.queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "5",
        )
        .send()
        .await
        .unwrap();
    let migrated = Command::new(env!("CARGO_BIN_EXE_statuspage"))
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(migrated.status.success());

    let mut ingest_1 = fleet.ingest("ingest-1", &config);
    let mut ingest_2 = fleet.ingest("ingest-2", &config);
    let mut agent_a = fleet.agent("agent-a", "zone-a", &config);
    let mut agent_b = fleet.agent("agent-b", "zone-b", &config);
    let (mut dash, port) = fleet.dashboard();
    until(
        Duration::from_secs(30),
        "web up from both locations",
        || {
            status_of(port, "web")
                .filter(|c| c["status"] == "up" && c["locations"]["reporting"] == 2)
        },
    );

    // Quorum: failing for agent A only is degraded, and opens nothing.
    mode.store(FAIL_A, Ordering::SeqCst);
    let (degraded, _) = until(Duration::from_secs(10), "web degraded", || {
        status_of(port, "web").filter(|c| c["status"] == "degraded")
    });
    assert_eq!(degraded["locations"]["failing"], 1);
    support::watch(Duration::from_secs(3), || {
        let status = status_of(port, "web").map(|c| c["status"].clone());
        if status != Some("degraded".into()) {
            return Err(format!("web left degraded: {status:?}"));
        }
        if !incidents(port).is_empty() {
            return Err("one location short of the quorum opened an incident".into());
        }
        Ok(())
    });

    // Both fail: one incident, not two (two ingests, and one of them killed).
    mode.store(FAIL_BOTH, Ordering::SeqCst);
    until(Duration::from_secs(10), "both locations failing", || {
        status_of(port, "web").filter(|c| c["locations"]["failing"] == 2)
    });
    signal(&ingest_1, "KILL");
    let _ = ingest_1.wait();
    let (opened, _) = until(Duration::from_secs(15), "an incident", || {
        let all = incidents(port);
        (!all.is_empty()).then_some(all)
    });
    assert_eq!(opened.len(), 1, "{opened:?}");
    ingest_1 = fleet.ingest("ingest-1b", &config);
    until(Duration::from_secs(10), "web down", || {
        status_of(port, "web").filter(|c| c["status"] == "down")
    });

    // Recovery: the incident is resolved.
    mode.store(OK, Ordering::SeqCst);
    let (resolved, _) = until(Duration::from_secs(15), "the incident resolved", || {
        let all = incidents(port);
        all.iter().all(|i| i["state"] == "resolved").then_some(all)
    });
    assert_eq!(resolved.len(), 1, "one incident in all: {resolved:?}");
    until(Duration::from_secs(10), "web up again", || {
        status_of(port, "web").filter(|c| c["status"] == "up")
    });

    // Silence: both agents stop; the check becomes unknown after three
    // intervals, and nothing opens.
    signal(&agent_a, "TERM");
    signal(&agent_b, "TERM");
    assert!(agent_a.wait().unwrap().success());
    assert!(agent_b.wait().unwrap().success());
    until(Duration::from_secs(15), "web unknown", || {
        status_of(port, "web").filter(|c| c["status"] == "unknown")
    });
    support::watch(Duration::from_secs(2), || match incidents(port).len() {
        1 => Ok(()),
        n => Err(format!(
            "silence is not an outage, yet there are {n} incidents"
        )),
    });

    // Counts are exact: every result the agents ran is stored once.
    let (runs_a, dropped_a) = fleet.agent_totals("agent-a");
    let (runs_b, dropped_b) = fleet.agent_totals("agent-b");
    assert_eq!((dropped_a, dropped_b), (0, 0));
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    // Within the visibility timeout of a message the killed ingest held.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM results r JOIN checks c ON c.id = r.check_id WHERE c.slug = 'web'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if stored == runs_a + runs_b {
            break;
        }
        assert!(
            stored < runs_a + runs_b,
            "more stored ({stored}) than run ({})",
            runs_a + runs_b
        );
        assert!(
            Instant::now() < deadline,
            "stored {stored} of {} results",
            runs_a + runs_b
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let incidents_in_db: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(incidents_in_db, 1);

    for child in [&mut ingest_1, &mut ingest_2, &mut dash] {
        signal(child, "TERM");
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One confused agent cannot open an incident alone: three agents share a
/// check (`locations: 3`, majority), and a fourth believes it is alone (its
/// static peers are only itself), so it probes every check and reports
/// `assigned = 1`. Ingest decides the fleet itself (four agents heard) and
/// which three are assigned; the confused agent's failures are at most one
/// vote of three. Before, ingest took `assigned` from its report and opened
/// "Detected: 1 of 4 locations failing".
#[tokio::test(flavor = "multi_thread")]
async fn a_confused_agent_alone_cannot_open_an_incident() {
    let target_port = http_target(|request| request.contains("(agent-d)"));
    let (fleet, config, _) = Fleet::fresh(
        "confused",
        &format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  locations: 3\n  failure_threshold: 2\ngroups:\n  - name: Shop\n    checks:\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{target_port}/\n"
        ),
    )
    .await;
    let mut children = vec![fleet.ingest("ingest", &config)];
    let three = "agent-a@zone-a,agent-b@zone-b,agent-c@zone-c";
    for (id, zone) in [
        ("agent-a", "zone-a"),
        ("agent-b", "zone-b"),
        ("agent-c", "zone-c"),
    ] {
        children.push(fleet.agent_with_peers(id, zone, &config, three));
    }
    let (dash, port) = fleet.dashboard();
    children.push(dash);
    // The confused agent joins a fleet ingest already knows: were it heard
    // first, it would be the whole fleet, and one location of one failing
    // is rightly down.
    until(Duration::from_secs(30), "three agents reporting", || {
        let v = http_json(port, "/api/v1/checks/web")?;
        (v["locations"]["reporting"].as_i64()? >= 3).then_some(())
    });
    children.push(fleet.agent_with_peers("agent-d", "zone-d", &config, ""));
    // The confused agent's location has failed (two results in a row), and
    // ingest has gone on deciding with it for several more intervals.
    let failed_at = |v: &serde_json::Value| -> Option<String> {
        v["location_states"]
            .as_array()?
            .iter()
            .find(|l| l["zone"] == "zone-d" && l["state"] == "failing")
            .and_then(|l| l["last_result_at"].as_str().map(str::to_string))
    };
    let (first, _) = until(Duration::from_secs(30), "agent-d failing", || {
        failed_at(&http_json(port, "/api/v1/checks/web")?)
    });
    let (web, _) = until(Duration::from_secs(15), "three more of its results", || {
        let v = http_json(port, "/api/v1/checks/web")?;
        let at = failed_at(&v)?;
        (chrono::DateTime::parse_from_rfc3339(&at).ok()?
            - chrono::DateTime::parse_from_rfc3339(&first).ok()?
            >= chrono::Duration::seconds(3))
        .then_some(v)
    });
    assert_ne!(web["status"], "down", "{web}");
    assert_eq!(
        web["locations"]["assigned"], 3,
        "min(locations, fleet of four)"
    );
    assert!(web["locations"]["failing"].as_i64().unwrap() <= 1, "{web}");
    assert!(
        incidents(port).is_empty(),
        "one agent opened an incident alone: {:?}",
        incidents(port)
    );
    for child in &mut children {
        signal(child, "TERM");
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&fleet.dir);
}

/// Blind is not healthy. With every agent SIGKILLed, the page says "Status
/// unavailable" (never "All systems operational"); with ingest SIGKILLed,
/// the page shows how old its data is, and uptime stops where ingest stopped
/// deciding instead of counting the silence as up time.
#[tokio::test(flavor = "multi_thread")]
async fn a_blind_fleet_or_a_dead_ingest_is_never_shown_as_healthy() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let target_port = {
        let down = down.clone();
        http_target(move |_| down.load(Ordering::SeqCst))
    };
    let (fleet, config, _) = Fleet::fresh(
        "blind",
        &format!(
            "defaults:\n  interval: 1s\n  timeout: 500ms\n  locations: 1\n  failure_threshold: 1\n  success_threshold: 1\ngroups:\n  - name: Shop\n    checks:\n      - name: Web\n        id: web\n        http:\n          url: http://127.0.0.1:{target_port}/\n      - name: Api\n        id: api\n        http:\n          url: http://127.0.0.1:{target_port}/api\n"
        ),
    )
    .await;
    let mut ingest = fleet.ingest("ingest", &config);
    let agent = |name: &str| fleet.agent_with_peers(name, "zone-a", &config, "agent-a@zone-a");
    let mut agent_a = agent("agent-a");
    let (mut dash, port) = fleet.dashboard();
    let overall = |port| http_json(port, "/api/v1/status").map(|v| v["status"].clone());
    until(Duration::from_secs(30), "operational", || {
        overall(port).filter(|s| s == "operational")
    });

    // Every agent killed: three intervals later nothing reports.
    signal(&agent_a, "KILL");
    let _ = agent_a.wait();
    until(Duration::from_secs(15), "status unavailable", || {
        overall(port).filter(|s| s == "unavailable")
    });
    let page = support::http_body(port, "/").unwrap();
    assert!(page.contains("Status unavailable"), "{page}");
    assert!(!page.contains("All systems operational"));
    let summary = http_json(port, "/api/v2/summary.json").unwrap();
    assert_eq!(summary["status"]["indicator"], "none");
    assert_eq!(summary["status"]["description"], "Status unavailable");

    // Back, with an outage and a recovery, so uptime is below 100%.
    agent_a = agent("agent-a");
    until(Duration::from_secs(20), "operational again", || {
        overall(port).filter(|s| s == "operational")
    });
    down.store(true, Ordering::SeqCst);
    until(Duration::from_secs(10), "web down", || {
        status_of(port, "web").filter(|c| c["status"] == "down")
    });
    down.store(false, Ordering::SeqCst);
    until(Duration::from_secs(10), "web up", || {
        status_of(port, "web").filter(|c| c["status"] == "up")
    });

    // Ingest killed: the agent goes on, but nothing is decided any more.
    signal(&ingest, "KILL");
    let _ = ingest.wait();
    // The first board that says so was rendered after ingest's last
    // decision (every board before the kill was operational), so its uptime
    // is where deciding stopped. A read straight after the kill could be a
    // board cached up to 1 s before it, short of ingest's last decisions.
    let uptime_of = |board: &serde_json::Value| {
        let checks = board["checks"].as_array()?;
        let web = checks.iter().find(|c| c["id"] == "web")?;
        web["uptime"]["24h"].as_f64()
    };
    let (board, _) = until(Duration::from_secs(15), "status unavailable", || {
        http_json(port, "/api/v1/status").filter(|v| v["status"] == "unavailable")
    });
    let frozen = uptime_of(&board).unwrap();
    assert!(frozen < 1.0, "{board}");
    let page = support::http_body(port, "/").unwrap();
    assert!(page.contains("id=\"data-as-of\""), "{page}");
    assert!(page.contains("Data as of "), "{page}");
    // Over three lifetimes of the 1 s cache, no board counts more up time.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        let later = http_json(port, "/api/v1/status")
            .as_ref()
            .and_then(uptime_of)
            .unwrap();
        assert!(
            later <= frozen + 1e-9,
            "uptime grew from {frozen} to {later} while ingest was dead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in [&mut agent_a, &mut dash] {
        signal(child, "TERM");
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&fleet.dir);
}

//! PostgreSQL stopped mid-run and started again: ingest stops receiving while
//! the database is away (so no valid message burns its receive count into
//! the DLQ), recovers by itself, and loses and doubles nothing. The test runs
//! its own PostgreSQL cluster, since it stops it.

use crate::support::*;
use ingest::store::PgStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A throwaway PostgreSQL cluster from the distribution's binaries.
struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("STATUSPAGE_TEST_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .filter(|b| b.join("pg_ctl").exists())
        .expect("PostgreSQL server binaries are needed (scripts/test installs them): set STATUSPAGE_TEST_PG_BIN")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root.
fn pg(bin: &Path, tool: &str, args: &[&str]) -> bool {
    let exe = bin.join(tool);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(&exe).args(args).stdout(Stdio::null()).status()
    };
    status.map(|s| s.success()).unwrap_or(false)
}

impl TempPostgres {
    fn start() -> TempPostgres {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "statuspage-outage-{}-{}",
            std::process::id(),
            now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["postgres:", dir.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join("data");
        assert!(pg(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync"
            ]
        ));
        let pg = TempPostgres { dir, bin, port };
        pg.start_again();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_again(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        assert!(pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
                "-o",
                &opts
            ]
        ));
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        assert!(pg(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]
        ));
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            pg(
                &self.bin,
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_mid_run_loses_nothing_doubles_nothing_and_burns_no_receives() {
    let postgres = TempPostgres::start();
    let store = PgStore::connect_lazy(&postgres.url(), 5, Default::default()).unwrap();
    let both = ingest::store::Store::Pg(store.clone());
    let sqs = sqs_client().await;
    // Three receives and a message is dead-lettered: a consumer that kept
    // receiving through the outage would lose these to the DLQ.
    let (queue, dlq) = fresh_queue(&sqs, "db-down", 1, 3).await;
    let replica = Replica::start(both, &sqs, &queue, Some(&dlq), vec![], 256 * 1024);
    let t0 = start();
    let slot = |k: i64| {
        batch(
            ["a", "b", "c"][(k % 3) as usize],
            vec![result(
                "web",
                ["a", "b", "c"][(k % 3) as usize],
                t0 + k * MINUTE,
                true,
            )],
        )
    };
    for k in 0..3 {
        send(&sqs, &queue, &slot(k)).await;
    }
    let rows = |store: PgStore| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM results")
            .fetch_one(store.pool())
            .await
            .unwrap_or(-1)
    };
    eventually(30, "the first batches are stored", || {
        rows(store.clone()).then_eq(3)
    })
    .await;

    postgres.stop();
    for k in 3..9 {
        send(&sqs, &queue, &slot(k)).await;
    }
    eventually(15, "ingest notices the database is gone", || async {
        !replica.metrics.db_ready.load(Ordering::Relaxed)
    })
    .await;
    // Several visibility timeouts pass while the database is away, and no
    // valid message reaches the DLQ at any moment of them.
    let away = tokio::time::Instant::now();
    while away.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            depth(&sqs, &dlq).await,
            0,
            "no valid message reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    postgres.start_again();
    eventually(40, "ingest recovers and stores the rest", || {
        rows(store.clone()).then_eq(9)
    })
    .await;
    eventually(10, "the queue is drained", || async {
        depth(&sqs, &queue).await == 0
    })
    .await;
    assert_eq!(depth(&sqs, &dlq).await, 0);
    assert!(replica.metrics.db_ready.load(Ordering::Relaxed));
    let (inserted, _, rejected) = replica.metrics.results();
    assert_eq!(
        (inserted, rejected),
        (9, 0),
        "nothing doubled, nothing lost"
    );
    assert_eq!(rows(store.clone()).await, 9);
    replica.stop().await;
}

trait ThenEq {
    fn then_eq(self, n: i64) -> impl std::future::Future<Output = bool>;
}

impl<F: std::future::Future<Output = i64>> ThenEq for F {
    async fn then_eq(self, n: i64) -> bool {
        self.await == n
    }
}

//! The probe benchmark: fresh-connection HTTP, TLS and TCP probes against local
//! targets at a fixed concurrency, reporting probes/s and CPU-seconds per 1,000
//! probes (the result fully built: phases, assertions, serialised), and the
//! same targets probed through prometheus-blackbox-exporter's `/probe` for a ratio.
//!
//! cargo run --release -p statuspage-probe-agent --example bench -- [SECONDS] [CONCURRENCY] [KIND]
//! cargo run --release -p statuspage-probe-agent --example bench -- agent [SECONDS] [CHECKS]
//!
//! The targets run in a child process, so neither side's CPU counts for the other.

use bytes::Bytes;
use config::wire::Timestamp;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use probe_agent::Prober;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Errors of this harness: it stops with a message, never panics.
type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("targets") {
        return targets();
    }
    if args.get(1).map(String::as_str) == Some("agent") {
        let seconds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(120);
        let checks = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        return agent_bench(seconds, checks);
    }
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    // An optional third argument runs one kind only (http, tls or tcp), without blackbox_exporter.
    let only = args.get(3).cloned();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("targets")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("the child's stdout")?)
        .read_line(&mut line)?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (http, tls, ca, tcp) = (
        parts[0].to_string(),
        parts[1].to_string(),
        PathBuf::from(parts[2]),
        parts[3].to_string(),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("{seconds}s per kind at concurrency {concurrency}, fresh connection per probe\n");
    println!(
        "{:<28} {:>10} {:>16}",
        "probe", "probes/s", "CPU-s per 1,000"
    );
    let kinds = [
        (
            "statuspage http",
            format!("http: {{ url: 'http://{http}/' }}"),
        ),
        (
            "statuspage tls",
            format!(
                "tls: {{ host: localhost, port: {}, ca_file: '{}' }}",
                tls.rsplit(':').next().ok_or("an address with a port")?,
                ca.display()
            ),
        ),
        (
            "statuspage tcp",
            format!(
                "tcp: {{ host: 127.0.0.1, port: {} }}",
                tcp.rsplit(':').next().ok_or("an address with a port")?
            ),
        ),
    ];
    if only.as_deref().is_none_or(|o| o == "http") {
        let addr: SocketAddr = http.parse()?;
        let (rate, cpu) = runtime.block_on(measure_baseline(addr, seconds, concurrency))?;
        println!(
            "{:<28} {rate:>10.0} {cpu:>16.3}",
            "bare hyper loop (reference)"
        );
    }
    let mut ours = Vec::new();
    for (name, yaml) in &kinds {
        if only.as_ref().is_some_and(|o| !name.ends_with(o.as_str())) {
            continue;
        }
        let check = check(yaml)?;
        // BENCH_RATE paces a single-kind run (for profiling at a given rate).
        let pace = std::env::var("BENCH_RATE")
            .ok()
            .and_then(|r| r.parse().ok());
        let (rate, cpu) =
            runtime.block_on(measure_ours(check.clone(), seconds, concurrency, pace))?;
        println!("{name:<28} {rate:>10.0} {cpu:>16.3}");
        ours.push(check);
    }

    if only.is_some() {
        // One kind alone: for profiling.
    } else if Path::new(BLACKBOX).exists() {
        let blackbox = runtime.block_on(blackbox_start(&ca))?;
        let targets = [
            ("http_2xx", format!("http://{http}/")),
            (
                "tls",
                format!(
                    "localhost:{}",
                    tls.rsplit(':').next().ok_or("an address with a port")?
                ),
            ),
            ("tcp", tcp.clone()),
        ];
        let mut theirs = Vec::new();
        for (module, target) in &targets {
            let (rate, cpu) = runtime.block_on(measure_blackbox(
                &blackbox,
                module,
                target,
                seconds,
                concurrency,
            ))?;
            println!(
                "{:<28} {rate:>10.0} {cpu:>16.3}",
                format!("blackbox_exporter {module}")
            );
            theirs.push((rate, cpu));
        }
        // The kernel's cost per fresh connection grows with the connection
        // rate, so compare at blackbox_exporter's rate too.
        let mut paced = Vec::new();
        for (i, check) in ours.iter().enumerate() {
            let (rate, cpu) = runtime.block_on(measure_ours(
                check.clone(),
                seconds,
                concurrency,
                Some(theirs[i].0),
            ))?;
            println!(
                "{:<28} {rate:>10.0} {cpu:>16.3}",
                format!("statuspage {} at that rate", ["http", "tls", "tcp"][i])
            );
            paced.push(cpu);
        }
        println!();
        for (i, kind) in ["http", "tls", "tcp"].iter().enumerate() {
            println!(
                "{kind}: at the same rate, statuspage uses {:.1}x less CPU per probe than blackbox_exporter",
                theirs[i].1 / paced[i]
            );
        }
        let mut blackbox = blackbox;
        let _ = blackbox.child.kill();
        let _ = blackbox.child.wait();
    } else {
        println!(
            "\n{BLACKBOX} is missing: apt-get install prometheus-blackbox-exporter for the comparison"
        );
    }
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

fn check(yaml: &str) -> Res<config::Check> {
    let text = format!(
        "groups:\n  - name: Bench\n    checks:\n      - name: Target\n        timeout: 5s\n        {yaml}\n"
    );
    let env = |_: &str| None;
    Ok(Arc::unwrap_or_clone(
        config::load_str(&[("bench.yaml".into(), text)], &env)?
            .checks
            .remove(0),
    ))
}

/// Starts the targets child process; returns it and its first line's fields.
fn spawn_targets() -> Res<(std::process::Child, Vec<String>)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("targets")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("the child's stdout")?)
        .read_line(&mut line)?;
    Ok((child, line.split_whitespace().map(str::to_string).collect()))
}

/// The agent benchmark: `checks` HTTP checks at a 30 s interval against a
/// local target for `seconds`, through the scheduler and the publishing loop
/// (channel publisher), from a directory of files of 1,000 checks each, as
/// the agent loads it. Reports schedule lag, CPU per 1,000 probes and RSS at
/// the end of `seconds`; then a reload in which one file changes (parsed with
/// [`config::Kept`], then applied), its duration, the slots later than 50 ms
/// in the 15 s after it (and in the 15 s before it, as a control), and the
/// peak RSS.
///
/// cargo run --release -p statuspage-probe-agent --example bench -- agent [SECONDS] [CHECKS]
fn agent_bench(seconds: u64, checks: usize) -> Res {
    use probe_agent::publish::{self, PublishStats, channel::ChannelPublisher};
    use probe_agent::scheduler::{Clock, Scheduler, SchedulerStats, Slot};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (mut child, fields) = spawn_targets()?;
    let http = fields[0].clone();
    let dir = std::env::temp_dir().join(format!("agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = |n: usize, interval: &str| -> Res {
        let mut text = format!("groups:\n  - name: Bench {n}\n    checks:\n");
        for i in (n * 1000..checks).take(1000) {
            text.push_str(&format!("      - name: C{i}\n        interval: {interval}\n        timeout: 5s\n        http: {{ url: 'http://{http}/' }}\n"));
        }
        Ok(std::fs::write(
            dir.join(format!("checks-{n:03}.yaml")),
            text,
        )?)
    };
    for n in 0..checks.div_ceil(1000) {
        file(n, "30s")?;
    }
    let paths = vec![dir.clone()];
    let env: probe_agent::agent::Env = Arc::new(|_: &str| None);
    let mut kept = config::Kept::default();
    let catalog = config::load_reusing(&paths, &*env, config::Sections::Checks, &mut kept)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (runs, lag, cpu, delivered, not_up, (rss_at_end, reload, late)) =
        runtime.block_on(async move {
            let prober = Prober::new("bench")?;
            // The scheduler's instruments record into a recorder of the bench's own.
            let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
            for (name, buckets) in probe_agent::telemetry::HISTOGRAMS {
                builder = builder.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full((*name).into()),
                    buckets,
                )?;
            }
            let recorder = builder.build_recorder();
            let stats = Arc::new(metrics::with_local_recorder(
                &recorder,
                SchedulerStats::default,
            ));
            let (results_tx, results_rx) = tokio::sync::mpsc::channel(4096);
            let (batches_tx, mut batches_rx) = tokio::sync::mpsc::channel(1024);
            let delivered = Arc::new(AtomicU64::new(0));
            let not_up = Arc::new(AtomicU64::new(0));
            let sink = {
                let (delivered, not_up) = (delivered.clone(), not_up.clone());
                tokio::spawn(async move {
                    while let Some(batch) = batches_rx.recv().await {
                        let batch: config::wire::ResultBatch = batch;
                        for r in &batch.results {
                            if r.outcome != config::wire::Outcome::Up {
                                not_up.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        delivered.fetch_add(batch.results.len() as u64, Ordering::Relaxed);
                    }
                })
            };
            let settings = publish::Settings {
                agent: config::wire::AgentInfo {
                    id: "bench".into(),
                    zone: String::new(),
                    region: String::new(),
                    label: String::new(),
                },
                max_message_bytes: config::wire::DEFAULT_MAX_MESSAGE_BYTES,
                flush_every: Duration::from_secs(1),
                heartbeat_every: Duration::from_secs(30),
                limits: Default::default(),
                drain_deadline: Duration::from_secs(10),
                spool: None,
            };
            let publishing = tokio::spawn(publish::run(
                settings,
                Arc::new(ChannelPublisher::new(batches_tx)),
                results_rx,
                Arc::new(PublishStats::default()),
                tokio_util::sync::CancellationToken::new(),
            ));
            let probe = move |slot: Slot| {
                let prober = prober.clone();
                async move {
                    prober
                        .run(&slot.check, slot.scheduled_at, slot.interval, slot.assigned)
                        .await
                }
            };
            let mut scheduler = Scheduler::new(
                "bench",
                Clock::system(),
                256,
                probe,
                results_tx,
                stats.clone(),
                tokio_util::sync::CancellationToken::new(),
            );
            let cpu0 = cpu_seconds("self");
            if std::env::var_os("BENCH_TRACE").is_some() {
                let rss = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                eprintln!(
                    "after loading: {}",
                    rss.lines()
                        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            scheduler.apply(catalog.checks.into_iter().map(|c| (c, 1)).collect());
            tokio::time::sleep(Duration::from_secs(seconds.saturating_sub(15))).await;
            let control = recorder.handle().render();
            tokio::time::sleep(Duration::from_secs(15.min(seconds))).await;
            let cpu = cpu_seconds("self") - cpu0;
            let at_end = (recorder.handle().render(), rss_mib("VmRSS:"));
            // A reload: one file changes (its checks' interval), the rest are kept.
            file(0, "15s")?;
            let started = std::time::Instant::now();
            let (loaded, back) = tokio::task::spawn_blocking({
                let (paths, env) = (paths.clone(), env.clone());
                move || {
                    let loaded =
                        config::load_reusing(&paths, &*env, config::Sections::Checks, &mut kept);
                    (loaded, kept)
                }
            })
            .await?;
            kept = back;
            scheduler.apply(loaded?.checks.into_iter().map(|c| (c, 1)).collect());
            let reload = started.elapsed();
            tokio::time::sleep(Duration::from_secs(15)).await;
            let after = recorder.handle().render();
            drop(kept);
            scheduler.drain().await;
            let _ = publishing.await;
            let _ = sink.await;
            let (text, rss_at_end) = at_end;
            let lag = probe_agent::telemetry::SCHEDULE_LAG;
            let late = (late_slots(&control, &text), late_slots(&text, &after));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                config::exposition::value(&text, probe_agent::telemetry::RUNS, &[]).unwrap_or(0.0)
                    as u64,
                (
                    config::exposition::quantile_bound(&text, lag, 0.5),
                    config::exposition::quantile_bound(&text, lag, 0.99),
                ),
                cpu,
                delivered.load(Ordering::Relaxed),
                not_up.load(Ordering::Relaxed),
                (rss_at_end, reload, late),
            ))
        })?;
    let _ = std::fs::remove_dir_all(&dir);
    let peak = rss_mib("VmHWM:");
    println!(
        "{checks} checks at 30 s for {seconds} s: {runs} probes ({:.0}/s), {delivered} delivered, {not_up} not up",
        runs as f64 / seconds as f64
    );
    println!(
        "schedule lag p50 <= {:.1} ms, p99 <= {:.1} ms (histogram bucket bounds)",
        lag.0.unwrap_or(0.0) * 1000.0,
        lag.1.unwrap_or(0.0) * 1000.0
    );
    println!(
        "CPU: {:.3} CPU-s per 1,000 probes ({cpu:.1} CPU-s in all)",
        cpu / runs.max(1) as f64 * 1000.0
    );
    println!("RSS at {seconds} s: {rss_at_end:.1} MiB");
    let ((late_before, slots_before), (late_after, slots_after)) = late;
    println!(
        "reload (one file of {} changed, parsed and handed to the scheduler): {:.2} s; {late_after} of {slots_after} slots in the 15 s after it later than 50 ms (the 15 s before it: {late_before} of {slots_before})",
        checks.div_ceil(1000),
        reload.as_secs_f64()
    );
    println!("peak RSS: {peak:.1} MiB");
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// A `/proc/self/status` figure (`VmRSS:`, `VmHWM:`) in MiB.
fn rss_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The slots started between two expositions, and how many of them were
/// later than 50 ms: `(late, started)`.
fn late_slots(before: &str, after: &str) -> (u64, u64) {
    let bucket = format!("{}_bucket", probe_agent::telemetry::SCHEDULE_LAG);
    let count = |text: &str, le: &str| {
        config::exposition::value(text, &bucket, &[("le", le)]).unwrap_or(0.0) as u64
    };
    let started = count(after, "+Inf") - count(before, "+Inf");
    let on_time = count(after, "0.05") - count(before, "0.05");
    (started - on_time, started)
}

/// CPU seconds (user + system) used so far by a process, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// Probes as fast as `concurrency` allows, or at most `rate` probes/s in all.
async fn measure_ours(
    check: config::Check,
    seconds: u64,
    concurrency: usize,
    rate: Option<f64>,
) -> Res<(f64, f64)> {
    let prober = Prober::new("bench")?;
    let check = Arc::new(check);
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (prober, check, done, bad) = (prober.clone(), check.clone(), done.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            let mut pace = rate.map(|r| {
                let mut t = tokio::time::interval(Duration::from_secs_f64(concurrency as f64 / r));
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while Instant::now() < stop {
                if let Some(t) = &mut pace {
                    t.tick().await;
                }
                let result = prober
                    .run(
                        &check,
                        Timestamp::new(chrono::Utc::now()),
                        check.schedule.period(),
                        1,
                    )
                    .await;
                let bytes = serde_json::to_vec(&result)?;
                std::hint::black_box(bytes);
                if result.outcome != config::wire::Outcome::Up {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                if std::env::var_os("BENCH_TRACE").is_some() && result.duration_us > 50_000 {
                    eprintln!("slow probe: {}", serde_json::to_string(&result)?);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu0;
    let n = done.load(Ordering::Relaxed) as f64;
    let failed = bad.load(Ordering::Relaxed);
    if failed != 0 {
        return Err(format!("{failed} probes were not up: the benchmark is invalid").into());
    }
    Ok((n / elapsed, cpu / n * 1000.0))
}

/// The reference: a bare hyper GET on a fresh connection, nothing measured or judged.
async fn measure_baseline(addr: SocketAddr, seconds: u64, concurrency: usize) -> Res<(f64, f64)> {
    let done = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                let driver = tokio::spawn(conn);
                let req = hyper::Request::get("/")
                    .header("host", "localhost")
                    .body(Empty::<Bytes>::new())?;
                let resp = sender.send_request(req).await?;
                let body = resp.into_body().collect().await?.to_bytes();
                std::hint::black_box(body);
                driver.abort();
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = done.load(Ordering::Relaxed) as f64;
    Ok((
        n / start.elapsed().as_secs_f64(),
        (cpu_seconds("self") - cpu0) / n * 1000.0,
    ))
}

struct Blackbox {
    child: std::process::Child,
    pid: u32,
    addr: SocketAddr,
    _dir: PathBuf,
}

async fn blackbox_start(ca: &Path) -> Res<Blackbox> {
    let dir = std::env::temp_dir().join(format!("statuspage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("blackbox.yml");
    let mut f = std::fs::File::create(&config)?;
    write!(
        f,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n  tls:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n      tls: true\n      tls_config:\n        ca_file: {}\n  tcp:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n",
        ca.display()
    )?;
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = std::process::Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Blackbox {
        pid: child.id(),
        child,
        addr,
        _dir: dir,
    })
}

/// Drives `/probe` over kept-alive connections (the driver's CPU is not counted).
async fn measure_blackbox(
    b: &Blackbox,
    module: &str,
    target: &str,
    seconds: u64,
    concurrency: usize,
) -> Res<(f64, f64)> {
    let pid = b.pid.to_string();
    let uri = format!("http://{}/probe?module={module}&target={target}", b.addr);
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(&pid);
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (uri, done, bad, addr) = (uri.clone(), done.clone(), bad.clone(), b.addr);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            while Instant::now() < stop {
                let req = hyper::Request::get(uri.as_str())
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())?;
                let resp = sender.send_request(req).await?;
                let body = resp.into_body().collect().await?.to_bytes();
                if !body.windows(15).any(|w| w == b"probe_success 1") {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&pid) - cpu0;
    let n = done.load(Ordering::Relaxed) as f64;
    let failed = bad.load(Ordering::Relaxed);
    if failed != 0 {
        return Err(format!("{failed} blackbox probes failed: the benchmark is invalid").into());
    }
    Ok((n / elapsed, cpu / n * 1000.0))
}

/// A loopback listener with a deep accept queue, so bursts of fresh
/// connections are not dropped (a drop costs the prober a 1 s SYN retransmit).
fn listen() -> Res<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    Ok(socket.listen(4096)?)
}

/// The child process: an HTTP target and a TLS target, until stdin closes.
fn targets() -> Res {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = listen()?;
        let tls = listen()?;
        let tcp = listen()?;
        let dir = std::env::temp_dir().join(format!("statuspage-bench-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        let leaf_key = rcgen::KeyPair::generate()?;
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])?
            .signed_by(&leaf_key, &ca)?;
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())?,
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        println!(
            "{} {} {} {}",
            http.local_addr()?,
            tls.local_addr()?,
            ca_file.display(),
            tcp.local_addr()?
        );
        std::io::stdout().flush()?;
        // The TCP target accepts and waits for the prober to hang up. (A server
        // that closes first leaves TIME_WAIT entries that, on loopback, collide
        // with the prober's next ephemeral ports and cost 1 s SYN retransmits.)
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = http.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), service)
                        .await;
                });
            }
        });
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = tls.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut t) = acceptor.accept(s).await {
                        let mut buf = [0u8; 64];
                        let _ = tokio::io::AsyncReadExt::read(&mut t, &mut buf).await;
                    }
                });
            }
        });
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await?;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    })
}

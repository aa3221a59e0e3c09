//! `statuspage`: one binary, one subcommand per role. This file only parses
//! flags and hands them to the crates.

use ::ingest::store::DatabaseUrl;
use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A self-hosted status page: probe agents, an SQS ingest, PostgreSQL or
/// SQLite, and a public dashboard.
#[derive(Debug, Parser)]
#[command(name = "statuspage", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check YAML check definitions and print every problem as PATH:LINE:COL: message.
    Validate(ValidateArgs),
    /// Run each selected check once, now, from this machine, and print phases, reason and assertions.
    Check(CheckArgs),
    /// Run a probe agent: probe the checks the fleet assigns to it and push results to SQS.
    Agent(AgentArgs),
    /// Consume results from SQS into PostgreSQL; decide status, uptime and incidents.
    Ingest(IngestArgs),
    /// Serve the public status page, its JSON APIs, badges and feed, cached, and the admin API.
    Dashboard(DashboardArgs),
    /// Run agent, ingest and dashboard in one process, on one port, on SQLite (default) or PostgreSQL.
    Standalone(StandaloneArgs),
    /// Run standalone with built-in local demo targets that fail now and then, on SQLite in a temp dir.
    Demo(DemoArgs),
    /// Apply the database migrations, or check that they are applied.
    Migrate(MigrateArgs),
    /// Print the JSON Schema of the check YAML (or its Markdown reference).
    Schema(SchemaArgs),
    /// Print the Prometheus burn-rate alerts for every check's SLO (generic: they read the leader's SLO gauges).
    Rules(RulesArgs),
}

// Flags shared by several subcommands are declared once each, below, and
// flattened in; `per_role` gives each subcommand its own default or makes the
// flag required, so names, environment variables and help text never drift.

/// `--config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigFlag {
    /// The check YAML: a file or a directory of them; repeat or separate with commas. Agent, ingest and standalone reload it when it changes (agent and standalone on SIGHUP too); ingest keeps results for checks not in it under placeholder checks.
    #[arg(
        long = "config",
        env = "STATUSPAGE_CONFIG",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub paths: Vec<PathBuf>,
}

/// `--database-url` and `--database-max-connections`.
#[derive(Debug, Args)]
pub(crate) struct DatabaseFlags {
    /// The database: `postgres://...` or `sqlite://PATH` (created if missing); never logged. SQLite serves a single ingest, or standalone.
    #[arg(long, env = "STATUSPAGE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
    /// The most database connections.
    #[arg(
        long,
        env = "STATUSPAGE_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub database_max_connections: u32,
    /// The client-side deadline of each database write, leader step and read: past it the call is abandoned and its connection closed. The one that counts when the database hangs (a half-open connection after a failover), since the server never sees the query.
    #[arg(long, env = "STATUSPAGE_DATABASE_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub database_deadline: std::time::Duration,
    /// PostgreSQL's statement_timeout for this process's sessions (migrations excepted).
    #[arg(long, env = "STATUSPAGE_DATABASE_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub database_statement_timeout: std::time::Duration,
    /// PostgreSQL's lock_timeout for this process's sessions: a write waiting longer on a row lock is retried.
    #[arg(long, env = "STATUSPAGE_DATABASE_LOCK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub database_lock_timeout: std::time::Duration,
    /// PostgreSQL's idle_in_transaction_session_timeout: the server ends a transaction its client abandoned (and frees its locks).
    #[arg(long, env = "STATUSPAGE_DATABASE_IDLE_TRANSACTION_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub database_idle_transaction_timeout: std::time::Duration,
}

impl DatabaseFlags {
    /// The database deadlines.
    pub fn limits(&self) -> ::ingest::store::sql::Limits {
        ::ingest::store::sql::Limits {
            deadline: self.database_deadline,
            statement_timeout: self.database_statement_timeout,
            lock_timeout: self.database_lock_timeout,
            idle_in_transaction_timeout: self.database_idle_transaction_timeout,
        }
    }

    /// The URL (required or defaulted per role by `per_role`, so always given).
    pub fn url(&self) -> anyhow::Result<&DatabaseUrl> {
        self.database_url
            .as_ref()
            .context("--database-url (or STATUSPAGE_DATABASE_URL) is required")
    }
}

/// `--metrics-listen` and `--log-format`: every long-running role's.
#[derive(Debug, Args)]
pub(crate) struct OpsFlags {
    /// Where /metrics, /healthz and /readyz are served, never on the public port. Standalone and demo serve no /metrics without it, so two of them never collide on a port.
    #[arg(long, env = "STATUSPAGE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log format: `json` (one event per line) or `text`.
    #[arg(long, env = "STATUSPAGE_LOG_FORMAT", value_parser = ["json", "text"])]
    pub log_format: Option<String>,
}

impl OpsFlags {
    /// The ops address (defaulted per role by `per_role` where there is one).
    pub fn metrics_listen(&self) -> anyhow::Result<&str> {
        self.metrics_listen
            .as_deref()
            .context("--metrics-listen (or STATUSPAGE_METRICS_LISTEN) is required")
    }

    /// Starts logging in the chosen format.
    pub fn start_logging(&self) -> anyhow::Result<()> {
        logging(self.log_format.as_deref().unwrap_or("json"))
    }
}

/// `--queue-url` and `--max-message-bytes`: the agent's and ingest's.
#[derive(Debug, Args)]
pub(crate) struct QueueFlags {
    /// The SQS queue URL results go through. AWS settings come from the SDK's environment (AWS_REGION, AWS_ENDPOINT_URL, IRSA).
    #[arg(long, env = "STATUSPAGE_QUEUE_URL", required = true)]
    pub queue_url: String,
    /// The largest SQS message (and SendMessageBatch) the agent sends, and the largest body, decompressed, ingest accepts, in bytes.
    #[arg(long, env = "STATUSPAGE_MAX_MESSAGE_BYTES", default_value_t = config::wire::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
}

/// Each subcommand's defaults, and which shared flags it requires.
fn per_role(cli: clap::Command) -> clap::Command {
    let default = |value: &'static str| move |a: clap::Arg| a.default_value(value);
    cli.mut_subcommand("check", |c| c.mut_arg("paths", |a| a.required(true)))
        .mut_subcommand("agent", |c| {
            c.mut_arg("paths", |a| a.required(true))
                .mut_arg("metrics_listen", default("0.0.0.0:9090"))
                .mut_arg("log_format", default("json"))
        })
        .mut_subcommand("ingest", |c| {
            c.mut_arg("database_url", |a| a.required(true))
                .mut_arg("metrics_listen", default("0.0.0.0:9091"))
                .mut_arg("log_format", default("json"))
        })
        .mut_subcommand("dashboard", |c| {
            c.mut_arg("database_url", |a| a.required(true))
                .mut_arg("metrics_listen", default("0.0.0.0:9092"))
                .mut_arg("log_format", default("json"))
        })
        .mut_subcommand("standalone", |c| {
            c.mut_arg("paths", |a| a.required(true))
                .mut_arg("database_url", default("sqlite://statuspage.db"))
                .mut_arg("log_format", default("text"))
        })
        .mut_subcommand("demo", |c| c.mut_arg("log_format", default("text")))
        .mut_subcommand("migrate", |c| {
            c.mut_arg("database_url", |a| a.required(true))
        })
}

#[derive(Debug, Args)]
struct ValidateArgs {
    #[command(flatten)]
    config: ConfigFlag,
    /// Files or directories, as an alternative to --config.
    #[arg(value_name = "PATH")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigFlag,
    /// Run only this check id (repeat for more).
    #[arg(long = "check", value_name = "ID")]
    check: Vec<String>,
    /// Print one ProbeResult JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// The agent id recorded in results and sent in the User-Agent.
    #[arg(long, env = "STATUSPAGE_AGENT_ID", default_value = "cli")]
    agent_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    #[command(flatten)]
    pub queue: QueueFlags,
    /// This agent's stable id (the node name in Kubernetes); may not contain `/`.
    #[arg(long, env = "STATUSPAGE_AGENT_ID", required = true)]
    pub agent_id: String,
    /// This agent's availability zone; with --peers-k8s-service and no zone, the one its EndpointSlice entry gives.
    #[arg(long, env = "STATUSPAGE_ZONE", default_value = "")]
    pub zone: String,
    /// This agent's region.
    #[arg(long, env = "STATUSPAGE_REGION", default_value = "")]
    pub region: String,
    /// What the public page calls this agent's location (default: its zone). The page never shows the agent id: node names carry internal addresses.
    #[arg(long, env = "STATUSPAGE_LOCATION_LABEL", default_value = "")]
    pub location_label: String,
    /// Static peers: id[@zone],... (this agent always counts itself).
    #[arg(long, env = "STATUSPAGE_PEERS", default_value = "")]
    pub peers: String,
    /// The agents' headless Service in this pod's namespace: its EndpointSlices list the peers (node name and zone), read every 30 s with the pod's service account.
    #[arg(long, env = "STATUSPAGE_PEERS_K8S_SERVICE")]
    pub peers_k8s_service: Option<String>,
    /// A directory where results that could not be sent are kept (under <dir>/<agent-id>/) until SQS is back, also across restarts.
    #[arg(long, env = "STATUSPAGE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// The most bytes the spool holds; the oldest files are dropped past it.
    #[arg(long, env = "STATUSPAGE_SPOOL_MAX_BYTES", default_value_t = 256 << 20)]
    pub spool_max_bytes: u64,
    #[command(flatten)]
    pub ops: OpsFlags,
    /// /healthz fails once the publisher loop has not turned for this long, or no probe has started for this long past the longest check interval. A failing SQS never fails it: the buffer is in memory.
    #[arg(long, env = "STATUSPAGE_LIVENESS_BOUND", default_value = "90s", value_parser = parse_duration)]
    pub liveness_bound: std::time::Duration,
    /// The most probes running at once.
    #[arg(long, env = "STATUSPAGE_MAX_CONCURRENCY", default_value_t = 256)]
    pub max_concurrency: usize,
    /// The blackbox-style probe_* series (about six per check) are exported only while this agent holds at most this many checks, never a partial set; above it, per-check state comes from ingest's statuspage_check_* series.
    #[arg(long, env = "STATUSPAGE_CHECK_SERIES_MAX", default_value_t = probe_agent::agent::metrics::CHECK_SERIES_MAX)]
    pub check_series_max: usize,
    /// The most results buffered while SQS is slow or down; the oldest are dropped past it (and kept with --spool-dir). The default keeps an agent of 100,000 checks within 192 MiB while SQS is down (168 MiB measured; 155 with MALLOC_ARENA_MAX=2, as the Helm chart runs it).
    #[arg(long, env = "STATUSPAGE_BUFFER_MAX_RESULTS", default_value_t = probe_agent::buffer::DEFAULT_RESULTS)]
    pub buffer_max_results: usize,
    /// The most bytes of results buffered; the oldest are dropped past it.
    #[arg(long, env = "STATUSPAGE_BUFFER_MAX_BYTES", default_value_t = 64 << 20)]
    pub buffer_max_bytes: usize,
    /// How long a shutdown may spend publishing what is buffered, in seconds.
    #[arg(long, env = "STATUSPAGE_DRAIN_SECONDS", default_value_t = 20)]
    pub drain_seconds: u64,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    #[command(flatten)]
    pub queue: QueueFlags,
    /// The dead-letter queue, whose depth is exported as statuspage_dead_letter_queue_messages.
    #[arg(long, env = "STATUSPAGE_DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: Option<String>,
    #[command(flatten)]
    pub database: DatabaseFlags,
    #[command(flatten)]
    pub ops: OpsFlags,
    /// Workers receiving from SQS at once (each takes 10 messages a receive; a process writes one receive at a time).
    #[arg(long, env = "STATUSPAGE_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// Long-polling wait of each receive, in seconds (0-20).
    #[arg(long, env = "STATUSPAGE_WAIT_SECONDS", default_value_t = 20)]
    pub wait_seconds: i32,
    /// The visibility timeout assumed when the queue's cannot be read, in seconds.
    #[arg(
        long,
        env = "STATUSPAGE_VISIBILITY_TIMEOUT_SECONDS",
        default_value_t = 60
    )]
    pub visibility_timeout_seconds: u64,
    /// How long a receive's messages are kept invisible at most while they are written; past it they are left to redelivery and counted in statuspage_sqs_visibility_abandoned_total.
    #[arg(long, env = "STATUSPAGE_VISIBILITY_CAP", default_value = "2m", value_parser = parse_duration)]
    pub visibility_cap: std::time::Duration,
    /// How often the leader decides silence and maintenance, folds minute rollups into hours and days (at most about 1 s a tick) and refreshes the export, in seconds; the catalog sync, partitions and retention run once a minute.
    #[arg(long, env = "STATUSPAGE_TICK_SECONDS", default_value_t = 5)]
    pub tick_seconds: u64,
    /// How long the leader's lease lasts: if the leader stops renewing it (each tick), another replica leads this long after its last renewal. More than twice the tick.
    #[arg(long, env = "STATUSPAGE_LEADER_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub leader_lease: std::time::Duration,
    /// Agents unseen this long are deleted with their pairs (never sooner than --raw-retention, so every stored result keeps its agent).
    #[arg(long, env = "STATUSPAGE_PRUNE_AFTER", default_value = "7d", value_parser = parse_duration)]
    pub prune_after: std::time::Duration,
    /// /healthz fails once no database round trip of the consumer or the leader has succeeded for this long, so Kubernetes restarts an ingest wedged on a hung database (ingest keeps no state).
    #[arg(long, env = "STATUSPAGE_LIVENESS_BOUND", default_value = "90s", value_parser = parse_duration)]
    pub liveness_bound: std::time::Duration,
    /// How long raw results are kept: older ones are refused, and their daily partitions dropped (rollups and status history stay).
    #[arg(long, env = "STATUSPAGE_RAW_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub raw_retention: std::time::Duration,
    /// A check absent from the YAML and silent this long is retired, in seconds; an agent silent this long while another reports leaves the metrics export.
    #[arg(long, env = "STATUSPAGE_RETIRE_AFTER_SECONDS", default_value_t = 600)]
    pub retire_after_seconds: u64,
    /// Where the page is published (http or https): the links notifications carry, and those of subscriber mail (required with `subscriptions`; production must use https).
    #[arg(long, env = "STATUSPAGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The page title, in subscriber mail.
    #[arg(long, env = "STATUSPAGE_TITLE", default_value = "Service status")]
    pub title: String,
    #[command(flatten)]
    pub notify: NotifyFlags,
}

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    #[command(flatten)]
    pub database: DatabaseFlags,
    /// The YAML, of which the dashboard reads only the `subscriptions` section (and no `${VAR}` of any other); without it, no subscribe form.
    #[arg(
        long = "config",
        env = "STATUSPAGE_CONFIG",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub config: Vec<PathBuf>,
    /// The database for public subscription writes, through a role that may only write subscriptions and insert outbox events; defaults to --database-url. Never logged.
    #[arg(
        long,
        env = "STATUSPAGE_SUBSCRIPTIONS_DATABASE_URL",
        hide_env_values = true
    )]
    pub subscriptions_database_url: Option<DatabaseUrl>,
    #[command(flatten)]
    pub proxy: ProxyFlag,
    /// The database for the admin API's writes, through a role limited to incidents and maintenance windows; defaults to --database-url. Never logged.
    #[arg(long, env = "STATUSPAGE_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: Option<DatabaseUrl>,
    /// A file of `name token` lines (tokens of 16 or more characters) that turns the admin API on; the name is the author of what a token writes. STATUSPAGE_ADMIN_TOKEN (one token, named `admin`) also does.
    #[arg(long, env = "STATUSPAGE_ADMIN_TOKEN_FILE", value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// The public HTTP address (the status page and its JSON API).
    #[arg(long, env = "STATUSPAGE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    #[command(flatten)]
    pub ops: OpsFlags,
    /// How long a rendered page or API answer is reused; a status or incident change empties the cache at once.
    #[arg(long, env = "STATUSPAGE_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub cache_ttl: std::time::Duration,
    /// Where the page is published (http or https, no path): the base of the feed's links and ids and of summary.json's page URL.
    #[arg(
        long,
        env = "STATUSPAGE_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// The page title.
    #[arg(long, env = "STATUSPAGE_TITLE", default_value = "Service status")]
    pub title: String,
    /// A front page with more public checks than this shows each group folded (a `<details>` with the group's worst status and what is not operational, open by itself when a check is down, degraded or without data); each group also has a page of its own at /groups/ID.
    #[arg(long, env = "STATUSPAGE_COLLAPSE_GROUPS_OVER", value_name = "CHECKS", default_value_t = ::dashboard::pages::COLLAPSE_OVER)]
    pub collapse_groups_over: usize,
    /// A logo shown beside the title: an https:// URL or a path on this site.
    #[arg(long, env = "STATUSPAGE_LOGO_URL")]
    pub logo_url: Option<String>,
    /// A link in the page header, as `Label=URL` (http or https); repeat, or separate with commas.
    #[arg(
        long = "link",
        env = "STATUSPAGE_LINKS",
        value_name = "LABEL=URL",
        value_delimiter = ','
    )]
    pub links: Vec<String>,
}

/// `--trusted-proxy-header` (dashboard and standalone).
#[derive(Debug, Args)]
pub(crate) struct ProxyFlag {
    /// Behind a CDN or load balancer: the request header that carries the client's IP (its last value is used, e.g. `CF-Connecting-IP` or `X-Forwarded-For`), for the subscribe form's per-IP limit. Off by default: the peer's address is used and no header is trusted.
    #[arg(long, env = "STATUSPAGE_TRUSTED_PROXY_HEADER", value_name = "NAME")]
    pub trusted_proxy_header: Option<String>,
}

impl ProxyFlag {
    /// The header's name, checked.
    pub fn header(&self) -> anyhow::Result<Option<axum::http::HeaderName>> {
        self.trusted_proxy_header
            .as_deref()
            .map(|n| {
                axum::http::HeaderName::from_bytes(n.trim().as_bytes())
                    .map_err(|_| anyhow::anyhow!("--trusted-proxy-header {n:?}: not a header name"))
            })
            .transpose()
    }
}

/// How notifications are delivered (ingest and standalone).
#[derive(Debug, Args)]
pub(crate) struct NotifyFlags {
    /// The wait before each notification delivery attempt, comma-separated (Standard Webhooks' schedule); past the last, the delivery has finally failed. A receiver's Retry-After is honoured when longer.
    #[arg(
        long,
        env = "STATUSPAGE_NOTIFY_RETRY_SCHEDULE",
        default_value = "0s,5s,5m,30m,2h,5h,10h,10h",
        value_parser = parse_wait,
        value_delimiter = ','
    )]
    pub notify_retry_schedule: Vec<std::time::Duration>,
    /// Delivered and finally failed notification rows are deleted this long after.
    #[arg(long, env = "STATUSPAGE_NOTIFY_KEEP", default_value = "30d", value_parser = parse_duration)]
    pub notify_keep: std::time::Duration,
    /// Each notification request's deadline. A delivery is leased for six times this: a worker that dies mid-send has its rows taken over that long after.
    #[arg(long, env = "STATUSPAGE_NOTIFY_REQUEST_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub notify_request_deadline: std::time::Duration,
    /// How long before a maintenance window starts `maintenance.starting` is sent.
    #[arg(long, env = "STATUSPAGE_NOTIFY_MAINTENANCE_LEAD", default_value = "60m", value_parser = parse_duration)]
    pub notify_maintenance_lead: std::time::Duration,
}

impl NotifyFlags {
    /// The workers' settings, with the page's URL for the links events carry.
    pub fn settings(
        &self,
        public_url: Option<&str>,
        title: &str,
    ) -> anyhow::Result<::ingest::notify::Settings> {
        let public_url = match public_url {
            Some(u) => Some(url::Url::parse(u).map_err(|e| anyhow::anyhow!("--public-url: {e}"))?),
            None => None,
        };
        if self.notify_retry_schedule.is_empty() {
            anyhow::bail!("--notify-retry-schedule: expected at least one wait");
        }
        Ok(::ingest::notify::Settings {
            public_url,
            title: Some(title.to_string()),
            schedule: self.notify_retry_schedule.clone(),
            keep: self.notify_keep,
            maintenance_lead: self.notify_maintenance_lead,
            request_deadline: self.notify_request_deadline,
            lease: self.notify_request_deadline * 6,
            ..Default::default()
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    #[command(flatten)]
    pub config: ConfigFlag,
    #[command(flatten)]
    pub database: DatabaseFlags,
    /// The one public HTTP address: the page, the APIs, badges, feed, admin API and /healthz.
    #[arg(long, env = "STATUSPAGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub ops: OpsFlags,
    /// Where the page is published (http or https, no path): the base of the feed's links and ids.
    #[arg(long, env = "STATUSPAGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The page title.
    #[arg(long, env = "STATUSPAGE_TITLE", default_value = "Service status")]
    pub title: String,
    /// A front page with more public checks than this shows each group folded (a `<details>` with the group's worst status and what is not operational, open by itself when a check is down, degraded or without data); each group also has a page of its own at /groups/ID.
    #[arg(long, env = "STATUSPAGE_COLLAPSE_GROUPS_OVER", value_name = "CHECKS", default_value_t = ::dashboard::pages::COLLAPSE_OVER)]
    pub collapse_groups_over: usize,
    /// A file of `name token` lines that turns the admin API on (or STATUSPAGE_ADMIN_TOKEN, one token named `admin`).
    #[arg(long, env = "STATUSPAGE_ADMIN_TOKEN_FILE", value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// How long a rendered page is reused; every status or incident change empties the cache at once.
    #[arg(long, env = "STATUSPAGE_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub cache_ttl: std::time::Duration,
    #[command(flatten)]
    pub proxy: ProxyFlag,
    #[command(flatten)]
    pub notify: NotifyFlags,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The HTTP address of the demo page.
    #[arg(long, env = "STATUSPAGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub ops: OpsFlags,
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseFlags,
    /// Exit 0 only if the database is reachable and fully migrated; change nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
struct SchemaArgs {
    /// Print the README's YAML reference (Markdown) instead of the JSON Schema.
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RulesArgs {
    /// Optional: check this YAML first and list its objectives in a comment (the rules do not depend on it).
    #[command(flatten)]
    pub config: ConfigFlag,
    /// `prometheus`: a rules file for Prometheus's rule_files; `prometheus-rule`: a PrometheusRule for the Prometheus Operator.
    #[arg(long, value_enum, default_value = "prometheus")]
    pub format: RulesFormat,
}

/// What `statuspage rules` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum RulesFormat {
    /// A `groups:` rules file.
    Prometheus,
    /// A `monitoring.coreos.com/v1` PrometheusRule.
    PrometheusRule,
}

fn main() -> ExitCode {
    // One crypto provider for the whole process, before anything builds a TLS config.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::from_arg_matches(&per_role(Cli::command()).get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("statuspage: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate(args),
        Command::Schema(args) => {
            if args.markdown {
                print!("{}", config::schema::reference_markdown());
            } else {
                let text = serde_json::to_string_pretty(&config::schema::json_schema())
                    .context("rendering the JSON Schema")?;
                println!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => check::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Standalone(args) => standalone::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Migrate(args) => ingest::migrate(args),
        Command::Rules(args) => rules::run(args),
    }
}

mod agent;
mod check;
mod dashboard;
mod demo;
mod ingest;
mod ops;
mod rules;
mod standalone;

/// Structured logs on stderr: JSON lines by default (CloudWatch-ready), or text.
fn logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STATUSPAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        "text" => builder.with_ansi(false).init(),
        other => anyhow::bail!("--log-format: expected `json` or `text`, found {other:?}"),
    }
    Ok(())
}

/// Loads the sections of the catalog a role reads, printing every problem;
/// `None` when there were problems.
fn load_catalog(paths: &[PathBuf], sections: config::Sections) -> Option<config::Catalog> {
    load_catalog_keeping(paths, sections, &mut config::Kept::default())
}

/// [`load_catalog`], filling `kept` so that a later reload parses only the
/// files that changed.
fn load_catalog_keeping(
    paths: &[PathBuf],
    sections: config::Sections,
    kept: &mut config::Kept,
) -> Option<config::Catalog> {
    let env = |name: &str| std::env::var(name).ok();
    match config::load_reusing(paths, &env, sections, kept) {
        Ok(catalog) => Some(catalog),
        Err(problems) => {
            for p in problems.iter() {
                eprintln!("{p}");
            }
            eprintln!("{} problem{} found", problems.len(), plural(problems.len()));
            None
        }
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut paths = args.config.paths;
    paths.extend(args.files);
    if paths.is_empty() {
        anyhow::bail!(
            "no config given: pass --config PATH (or set STATUSPAGE_CONFIG), or a bare PATH"
        );
    }
    match load_catalog(&paths, config::Sections::All) {
        Some(catalog) => {
            let private = catalog.checks.iter().filter(|c| !c.public).count();
            println!(
                "ok: {} check{} ({} private) in {} group{}, {} maintenance window{}, from {} file{}",
                catalog.checks.len(),
                plural(catalog.checks.len()),
                private,
                catalog.groups.len(),
                plural(catalog.groups.len()),
                catalog.maintenance.len(),
                plural(catalog.maintenance.len()),
                catalog.files.len(),
                plural(catalog.files.len()),
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A duration flag such as `7d`, `36h` or `90m`.
/// A wait, zero included (`0s`: at once).
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    config::units::parse_duration(text.trim())
        .ok_or_else(|| format!("expected a wait such as `0s`, `5s` or `30m`, found {text:?}"))
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    config::units::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a duration such as `7d`, `36h` or `90m`, found {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clap's own consistency checks, on every subcommand as `per_role` leaves it
    /// (a flattened flag whose id clashes with a subcommand's own is caught here).
    #[test]
    fn every_subcommand_is_consistent() {
        per_role(Cli::command()).debug_assert();
    }

    #[test]
    fn shared_flags_take_each_role_s_default_or_are_required() {
        let parse = |args: &[&str]| {
            Cli::from_arg_matches(&per_role(Cli::command()).try_get_matches_from(args)?)
        };
        let Ok(Cli {
            command: Command::Ingest(ingest),
        }) = parse(&[
            "statuspage",
            "ingest",
            "--queue-url",
            "q",
            "--database-url",
            "sqlite://x.db",
        ])
        else {
            panic!("ingest parses");
        };
        assert_eq!(ingest.ops.metrics_listen.as_deref(), Some("0.0.0.0:9091"));
        assert_eq!(ingest.ops.log_format.as_deref(), Some("json"));
        let Ok(Cli {
            command: Command::Standalone(standalone),
        }) = parse(&["statuspage", "standalone", "--config", "c.yaml"])
        else {
            panic!("standalone parses");
        };
        assert_eq!(standalone.ops.metrics_listen, None);
        assert_eq!(standalone.ops.log_format.as_deref(), Some("text"));
        assert!(standalone.database.url().is_ok());
        let missing =
            parse(&["statuspage", "dashboard"]).expect_err("the dashboard needs a database");
        assert!(missing.to_string().contains("--database-url"), "{missing}");
        let bad = parse(&["statuspage", "demo", "--log-format", "yaml"]).expect_err("json or text");
        assert!(
            bad.to_string().contains("possible values: json, text"),
            "{bad}"
        );
    }
}

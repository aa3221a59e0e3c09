//! `statuspage dashboard`: flags, logging and signals, wired to
//! `dashboard::run`.

use crate::DashboardArgs;
use anyhow::Context;
use dashboard::admin::Admin;
use dashboard::admin::auth::Tokens;
use dashboard::admin::write::Writer;
use dashboard::pages::{Site, safe_url};
use dashboard::read::Reader;
use dashboard::subscribe::Subscriptions;
use dashboard::{AppState, Changes, Settings};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The header links, from `Label=URL` items.
fn links(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .map(|item| {
            let (label, url) = item
                .split_once('=')
                .with_context(|| format!("--link {item:?}: expected LABEL=URL"))?;
            let (label, url) = (label.trim(), url.trim());
            anyhow::ensure!(!label.is_empty(), "--link {item:?}: the label is empty");
            anyhow::ensure!(
                safe_url(url),
                "--link {label:?}: the URL must start with https://, http:// or /"
            );
            Ok((label.to_string(), url.to_string()))
        })
        .collect()
}

/// The admin tokens: from `--admin-token-file`, or `STATUSPAGE_ADMIN_TOKEN`
/// (one token named `admin`); `None` turns the admin API off.
pub(crate) fn admin_tokens(file: Option<&std::path::Path>) -> anyhow::Result<Option<Tokens>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--admin-token-file {}", path.display()))?;
        let tokens = Tokens::parse(&text)
            .with_context(|| format!("--admin-token-file {}", path.display()))?;
        return Ok(Some(tokens));
    }
    match std::env::var("STATUSPAGE_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Ok(Some(
            Tokens::single("admin", token.trim()).context("STATUSPAGE_ADMIN_TOKEN")?,
        )),
        _ => Ok(None),
    }
}

/// `--public-url` checked: http(s), a host, no path or query.
pub(crate) fn public_url(text: &str) -> anyhow::Result<String> {
    let public_url = text.trim_end_matches('/').to_string();
    let parsed = url::Url::parse(&public_url).ok();
    anyhow::ensure!(
        parsed.as_ref().is_some_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none()
                && u.path() == "/"
        }),
        "--public-url {public_url:?}: expected http(s)://HOST[:PORT] with no path"
    );
    Ok(public_url)
}

pub(crate) fn address(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.parse()
        .with_context(|| format!("{flag} {text:?}: expected an address such as 0.0.0.0:8080"))
}

pub(crate) fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    args.ops.start_logging()?;
    let listen = address("--listen", &args.listen)?;
    if let Some(logo) = &args.logo_url {
        anyhow::ensure!(
            logo.to_ascii_lowercase().starts_with("https://")
                || (logo.starts_with('/') && safe_url(logo)),
            "--logo-url: expected an https:// URL or a path on this site"
        );
    }
    let public_url = public_url(&args.public_url)?;
    // Only the `subscriptions` section: no check, and no `${VAR}` of one.
    let subscriptions = if args.config.is_empty() {
        None
    } else {
        match crate::load_catalog(&args.config, config::Sections::Subscriptions) {
            Some(c) => c.subscriptions,
            None => return Ok(ExitCode::from(2)),
        }
    };
    let proxy = args.proxy.header()?;
    let site = Site {
        title: args.title.clone(),
        logo_url: args.logo_url.clone(),
        links: links(&args.links)?,
        public_url,
        subscribe: subscriptions.is_some(),
        collapse_over: args.collapse_groups_over,
    };
    let tokens = admin_tokens(args.admin_token_file.as_deref())?;
    crate::ingest::runtime()?.block_on(async move {
        let reader = Reader::connect_lazy(
            args.database.url()?.expose(),
            args.database.database_max_connections,
            args.database.limits(),
        )
        .context("--database-url")?;
        let admin = match tokens {
            Some(tokens) => {
                let url = args
                    .admin_database_url
                    .as_ref()
                    .map_or_else(|| args.database.url(), Ok)?;
                let writer = Writer::connect_lazy(url.expose(), 4, args.database.limits())
                    .context("--admin-database-url")?;
                tracing::info!(event = "admin_api_enabled", tokens = ?tokens);
                Some(Arc::new(Admin { tokens, writer }))
            }
            None => None,
        };
        let subscriptions = match subscriptions {
            Some(config) => {
                let url = args
                    .subscriptions_database_url
                    .as_ref()
                    .map_or_else(|| args.database.url(), Ok)?;
                let writer = Writer::connect_lazy(url.expose(), 4, args.database.limits())
                    .context("--subscriptions-database-url")?;
                tracing::info!(event = "subscriptions_enabled", config = ?config);
                Some(Arc::new(Subscriptions::new(config, writer, proxy, None)))
            }
            None => None,
        };
        let changes = match &reader {
            Reader::Pg(pool) => Changes::Listen(pool.clone()),
            Reader::Sqlite(_) => Changes::None,
        };
        let exporter = crate::ops::exporter()?;
        let mut state = AppState::new(reader, site, args.cache_ttl, dashboard::system_clock())
            .with_deadline(args.database.database_deadline);
        state.admin = admin;
        state.subscriptions = subscriptions;
        let shutdown = CancellationToken::new();
        crate::ingest::stop_on_signal(shutdown.clone());
        let listener = crate::ops::bind(args.ops.metrics_listen()?).await?;
        let ops = {
            let ready = state.clone();
            crate::ops::router(
                exporter.clone(),
                {
                    let cache = state.cache.clone();
                    Arc::new(move || dashboard::metrics::publish(&cache))
                },
                Arc::new(move || {
                    let state = ready.clone();
                    Box::pin(async move { dashboard::readiness(&state).await })
                }),
                // Stateless, and every read has a deadline: nothing to wedge.
                crate::ops::always_live(),
            )
        };
        let ops_server = crate::ops::spawn(listener, ops, exporter, shutdown.clone());
        let served = dashboard::run(
            Settings {
                listen,
                extra: None,
            },
            state,
            changes,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        let _ = ops_server.await;
        served.context("dashboard stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

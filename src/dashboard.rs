//! `statuspage dashboard`: flags, logging and signals, wired to
//! `dashboard::run`.

use crate::DashboardArgs;
use anyhow::Context;
use dashboard::pages::{Site, safe_url};
use dashboard::read::Reader;
use dashboard::{AppState, Changes, Settings};
use std::net::SocketAddr;
use std::process::ExitCode;
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

fn address(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.parse()
        .with_context(|| format!("{flag} {text:?}: expected an address such as 0.0.0.0:8080"))
}

pub(crate) fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    crate::logging(&args.log_format)?;
    let listen = address("--listen", &args.listen)?;
    let metrics_listen = address("--metrics-listen", &args.metrics_listen)?;
    if let Some(logo) = &args.logo_url {
        anyhow::ensure!(
            logo.to_ascii_lowercase().starts_with("https://")
                || (logo.starts_with('/') && safe_url(logo)),
            "--logo-url: expected an https:// URL or a path on this site"
        );
    }
    let site = Site {
        title: args.title.clone(),
        logo_url: args.logo_url.clone(),
        links: links(&args.links)?,
    };
    crate::ingest::runtime()?.block_on(async move {
        let reader = Reader::connect_lazy(&args.database_url, args.database_max_connections)
            .context("--database-url")?;
        let changes = match &reader {
            Reader::Pg(pool) => Changes::Listen(pool.clone()),
            Reader::Sqlite(_) => Changes::None,
        };
        let state = AppState::new(reader, site, args.cache_ttl, dashboard::system_clock());
        let shutdown = CancellationToken::new();
        crate::ingest::stop_on_signal(shutdown.clone());
        dashboard::run(
            Settings {
                listen,
                metrics_listen: Some(metrics_listen),
            },
            state,
            changes,
            shutdown,
        )
        .await
        .context("dashboard stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

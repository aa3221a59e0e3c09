//! Serves the dashboard over the test fixture (a SQLite file in a temp dir),
//! to look at the pages in a browser:
//!
//! ```text
//! cargo run -p statuspage-dashboard --example preview -- 127.0.0.1:8099
//! ```
//!
//! The fixture is the one the route tests use: a check down with an open
//! incident, one degraded, a private one, hostile names, maintenance ahead.

#[path = "../tests/it/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into())
        .parse()?;
    let db = fixture::Db::sqlite().await;
    let state = db.state(Duration::from_secs(10));
    eprintln!("preview: http://{addr}/");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    dashboard::run(
        dashboard::Settings {
            listen: addr,
            extra: None,
        },
        state,
        dashboard::Changes::None,
        shutdown,
    )
    .await?;
    Ok(())
}

//! The TLS probe: connect, handshake with SNI, report the chain.

use super::trust::{self, TlsSettings};
use super::{Failure, Observation, Prober, dial};
use config::catalog::TlsProbe;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Handshakes with `p.host:p.port` and records version, cipher and chain.
pub(super) async fn probe(
    prober: &Prober,
    p: &TlsProbe,
    seen: &mut Observation,
) -> Result<(), Failure> {
    let chain = Arc::new(Mutex::new(Vec::new()));
    let settings = TlsSettings {
        ca_file: p.ca_file.as_deref(),
        client_cert: None,
        insecure_skip_verify: false,
        alpn: &[],
    };
    let config = trust::client_config(&prober.web_roots, &settings, chain.clone())?;
    let addrs = dial::resolve(prober, &p.host, p.prefer_ip, true, seen).await?;
    let tcp = dial::connect(&addrs, p.port, seen).await?;
    let name = p.server_name.as_deref().unwrap_or(&p.host);
    let mut stream = trust::handshake(tcp, config, name, chain, seen).await?;
    let _ = stream.shutdown().await;
    Ok(())
}

//! Peer discovery in Kubernetes: the EndpointSlices of the agents' headless
//! Service, read with one authenticated GET (RBAC allows only that). Each
//! endpoint gives a peer's node name (its agent id) and zone. The Service
//! publishes not-ready addresses, so an SQS outage never empties the fleet;
//! terminating endpoints are left out, so a drained node's checks move.

use bytes::Bytes;
use config::fleet::Peer;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the service account's files are mounted in a pod.
pub const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API server.
#[derive(Clone, Debug)]
pub struct K8sDiscovery {
    /// `https://host:port` of the API server.
    pub api: String,
    /// The bearer token file (re-read on every request: tokens rotate).
    pub token_file: PathBuf,
    /// The API server's CA.
    pub ca_file: PathBuf,
    /// The namespace of the Service.
    pub namespace: String,
    /// The headless Service's name.
    pub service: String,
}

/// Why a read failed; the caller keeps the last known peers.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Not running in a pod, or the service account is not mounted.
    #[error("not in a Kubernetes pod: {0}")]
    NotInCluster(String),
    /// The API server could not be reached or refused.
    #[error("reading EndpointSlices failed: {0}")]
    Request(String),
    /// The answer was not an EndpointSliceList.
    #[error("the EndpointSlice list is not valid: {0}")]
    Parse(String),
}

impl K8sDiscovery {
    /// The in-cluster settings: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
    /// mounted service account. `env` reads the environment (passed in).
    pub fn in_cluster(
        service: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, DiscoveryError> {
        let host = env("KUBERNETES_SERVICE_HOST").ok_or_else(|| {
            DiscoveryError::NotInCluster("KUBERNETES_SERVICE_HOST is not set".into())
        })?;
        let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
        let dir = PathBuf::from(SERVICE_ACCOUNT);
        let namespace = std::fs::read_to_string(dir.join("namespace")).map_err(|e| {
            DiscoveryError::NotInCluster(format!("{}/namespace: {e}", SERVICE_ACCOUNT))
        })?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(Self {
            api: format!("https://{host}:{port}"),
            token_file: dir.join("token"),
            ca_file: dir.join("ca.crt"),
            namespace: namespace.trim().to_string(),
            service: service.to_string(),
        })
    }

    /// Reads the peers now.
    pub async fn peers(&self) -> Result<Vec<Peer>, DiscoveryError> {
        let body = tokio::time::timeout(Duration::from_secs(10), self.get())
            .await
            .map_err(|_| DiscoveryError::Request("no answer within 10s".into()))??;
        parse_endpoint_slices(&body)
    }

    async fn get(&self) -> Result<Bytes, DiscoveryError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| DiscoveryError::Request(format!("{what}: {e}"));
        let url = url::Url::parse(&self.api).map_err(|e| fail("the API URL", &e))?;
        let host = url
            .host_str()
            .ok_or_else(|| DiscoveryError::Request("the API URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| fail(&format!("reading {}", self.token_file.display()), &e))?;
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&self.ca_file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| fail(&format!("reading {}", self.ca_file.display()), &e))?;
        roots.add_parsable_certificates(certs);
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("TLS", &e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail("connecting", &e))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| fail("server name", &e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| fail("TLS handshake", &e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail("HTTP", &e))?;
        let driver = tokio::spawn(conn);
        let path = format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{}",
            self.namespace, self.service
        );
        let request = http::Request::get(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail("request", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("request", &e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail("reading the answer", &e))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(DiscoveryError::Request(format!(
                "the API server answered {status}"
            )));
        }
        Ok(body)
    }
}

#[derive(Deserialize)]
struct SliceList {
    #[serde(default)]
    items: Vec<Slice>,
}

#[derive(Deserialize)]
struct Slice {
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    node_name: Option<String>,
    zone: Option<String>,
    #[serde(default)]
    conditions: Conditions,
}

#[derive(Default, Deserialize)]
struct Conditions {
    terminating: Option<bool>,
}

/// The peers in an EndpointSliceList: node name and zone of every endpoint
/// that is not terminating, without duplicates, in id order.
pub fn parse_endpoint_slices(json: &[u8]) -> Result<Vec<Peer>, DiscoveryError> {
    let list: SliceList =
        serde_json::from_slice(json).map_err(|e| DiscoveryError::Parse(e.to_string()))?;
    let mut peers: Vec<Peer> = list
        .items
        .into_iter()
        .flat_map(|s| s.endpoints)
        .filter(|e| e.conditions.terminating != Some(true))
        .filter_map(|e| {
            Some(Peer::new(
                e.node_name.filter(|n| !n.is_empty() && !n.contains('/'))?,
                e.zone.unwrap_or_default(),
            ))
        })
        .collect();
    peers.sort();
    peers.dedup();
    Ok(peers)
}

/// The zone the EndpointSlices give for agent `id`, when they give one.
/// A pod cannot read its node's zone label through the downward API, so an
/// agent started without `--zone` learns it here, as its peers see it.
pub fn own_zone(peers: &[Peer], id: &str) -> Option<String> {
    peers
        .iter()
        .find(|p| p.id == id && !p.zone.is_empty())
        .map(|p| p.zone.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_node_names_and_zones_without_terminating_ones() {
        let json = br#"{"kind":"EndpointSliceList","items":[
          {"endpoints":[
            {"addresses":["10.0.1.5"],"conditions":{"ready":true},"nodeName":"ip-10-0-1-5","zone":"eu-west-1a"},
            {"addresses":["10.0.2.7"],"conditions":{"ready":false},"nodeName":"ip-10-0-2-7","zone":"eu-west-1b"},
            {"addresses":["10.0.3.9"],"conditions":{"ready":false,"terminating":true},"nodeName":"ip-10-0-3-9","zone":"eu-west-1c"},
            {"addresses":["10.0.4.1"],"conditions":{}}]},
          {"endpoints":[{"addresses":["10.0.1.5"],"nodeName":"ip-10-0-1-5","zone":"eu-west-1a"}]}]}"#;
        let peers = parse_endpoint_slices(json).unwrap();
        assert_eq!(
            peers,
            vec![
                Peer::new("ip-10-0-1-5", "eu-west-1a"),
                Peer::new("ip-10-0-2-7", "eu-west-1b")
            ],
            "not-ready counts, terminating does not"
        );
    }

    #[test]
    fn an_agent_learns_its_own_zone_from_the_slices() {
        let peers = vec![Peer::new("ip-a", "eu-west-1a"), Peer::new("ip-b", "")];
        assert_eq!(own_zone(&peers, "ip-a").as_deref(), Some("eu-west-1a"));
        assert_eq!(own_zone(&peers, "ip-b"), None, "an empty zone is no zone");
        assert_eq!(own_zone(&peers, "ip-c"), None, "not listed yet");
    }

    #[test]
    fn a_list_that_is_not_json_is_a_parse_error() {
        let err = parse_endpoint_slices(b"<html>").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the EndpointSlice list is not valid:"),
            "{err}"
        );
        assert_eq!(parse_endpoint_slices(b"{}").unwrap(), vec![]);
    }

    #[test]
    fn outside_a_pod_discovery_says_so() {
        let err = K8sDiscovery::in_cluster("agents", &|_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set"
        );
    }
}

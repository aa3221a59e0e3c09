//! TLS client setup for probes: which roots to trust, a verifier that records
//! the chain before judging it (so an invalid chain still yields its facts),
//! and the mapping of handshake errors to reasons.

use super::{Failure, Observation, Stage, TlsFacts, add_phase, micros_since};
use chrono::{DateTime, Utc};
use config::wire::Reason;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The certificates a server presented, leaf first.
pub(crate) type Chain = Arc<Mutex<Vec<CertificateDer<'static>>>>;

/// What a probe asks of TLS.
pub(crate) struct TlsSettings<'a> {
    pub ca_file: Option<&'a Path>,
    pub client_cert: Option<(&'a Path, &'a Path)>,
    pub insecure_skip_verify: bool,
    pub alpn: &'a [&'a [u8]],
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client config whose verifier records the presented chain into `chain`.
pub(crate) fn client_config(
    web_roots: &Arc<RootCertStore>,
    s: &TlsSettings<'_>,
    chain: Chain,
) -> Result<ClientConfig, Failure> {
    let provider = provider();
    let roots = match s.ca_file {
        None => web_roots.clone(),
        Some(path) => {
            let mut store = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Failure::new(
                        Reason::TlsHandshake,
                        format!("cannot read the CA file {}: {e}", path.display()),
                    )
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Failure::new(
                    Reason::TlsHandshake,
                    format!("the CA file {} holds no certificate", path.display()),
                ));
            }
            Arc::new(store)
        }
    };
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| {
            Failure::new(
                Reason::TlsHandshake,
                format!("cannot build the certificate verifier: {e}"),
            )
        })?;
    let verifier = Arc::new(Recorder {
        inner,
        chain,
        insecure: s.insecure_skip_verify,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Failure::new(
                Reason::TlsHandshake,
                format!("cannot set TLS versions: {e}"),
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match s.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Failure::new(
                        Reason::TlsHandshake,
                        format!("cannot read the client certificate {}: {e}", cert.display()),
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                Failure::new(
                    Reason::TlsHandshake,
                    format!("cannot read the client key {}: {e}", key.display()),
                )
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Failure::new(
                    Reason::TlsHandshake,
                    format!("the client certificate and key do not fit: {e}"),
                )
            })?
        }
    };
    config.alpn_protocols = s.alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Runs the handshake on `io`, timing the `tls` phase and filling the TLS facts,
/// also when the handshake fails.
pub(crate) async fn handshake<IO>(
    io: IO,
    config: ClientConfig,
    server_name: &str,
    chain: Chain,
    seen: &mut Observation,
) -> Result<TlsStream<IO>, Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    seen.stage = Stage::Tls;
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        Failure::new(
            Reason::TlsHandshake,
            format!("{server_name} is not a valid TLS server name"),
        )
    })?;
    let start = Instant::now();
    let result = TlsConnector::from(Arc::new(config)).connect(name, io).await;
    add_phase(&mut seen.phases.tls_us, micros_since(start));
    let mut facts = chain_facts(
        server_name,
        &chain.lock().map(|c| c.clone()).unwrap_or_default(),
    );
    match result {
        Ok(stream) => {
            let (_, conn) = stream.get_ref();
            facts.version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".into(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".into(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            facts.cipher = conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default();
            seen.tls = Some(facts);
            seen.stage = Stage::Exchange;
            Ok(stream)
        }
        Err(e) => {
            let failure = handshake_failure(server_name, &e, &facts);
            if facts.leaf_not_after.is_some() {
                seen.tls = Some(facts);
            }
            Err(failure)
        }
    }
}

/// Maps a handshake error (a rustls error inside an io::Error) to a reason.
fn handshake_failure(host: &str, e: &std::io::Error, facts: &TlsFacts) -> Failure {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let when = facts
                    .chain_not_after
                    .map(|t| format!(" on {}", t.format("%Y-%m-%d")))
                    .unwrap_or_default();
                Failure::new(
                    Reason::TlsExpired,
                    format!("the certificate for {host} expired{when}"),
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Failure::new(
                    Reason::TlsHostname,
                    format!(
                        "the certificate is not valid for {host} (subject {})",
                        facts.leaf_subject
                    ),
                )
            }
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::InvalidPurpose
            | CertificateError::Revoked => Failure::new(
                Reason::TlsUntrusted,
                format!(
                    "the certificate chain for {host} is not trusted ({c:?}, issuer {})",
                    facts.leaf_issuer
                ),
            ),
            other => Failure::new(
                Reason::TlsUntrusted,
                format!("the certificate for {host} is invalid: {other:?}"),
            ),
        },
        Some(other) => Failure::new(
            Reason::TlsHandshake,
            format!("TLS handshake with {host} failed: {other}"),
        ),
        None => Failure::new(
            Reason::TlsHandshake,
            format!("TLS handshake with {host} failed: {e}"),
        ),
    }
}

/// Subject, issuer and expiry from the presented chain.
pub(crate) fn chain_facts(host: &str, chain: &[CertificateDer<'static>]) -> TlsFacts {
    let mut facts = TlsFacts {
        host: host.to_string(),
        ..TlsFacts::default()
    };
    for (i, der) in chain.iter().enumerate() {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
            continue;
        };
        let not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0);
        if i == 0 {
            facts.leaf_subject = cert.subject().to_string();
            facts.leaf_issuer = cert.issuer().to_string();
            facts.leaf_not_after = not_after;
        }
        facts.chain_not_after = match (facts.chain_not_after, not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    facts
}

/// Records the chain, then lets webpki judge it (or, with
/// `insecure_skip_verify`, accepts it; signatures are still checked).
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    chain: Chain,
    insecure: bool,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.clear();
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_a_client_config_needs_no_process_default_provider() {
        // No provider is installed in this test process: the config names
        // aws-lc-rs itself, so building it cannot panic.
        let roots = Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
        let settings = TlsSettings {
            ca_file: None,
            client_cert: None,
            insecure_skip_verify: false,
            alpn: &[b"h2"],
        };
        let config = client_config(&roots, &settings, Arc::default()).expect("a config");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_failure_not_a_panic() {
        let roots = Arc::new(RootCertStore::empty());
        let settings = TlsSettings {
            ca_file: Some(Path::new("/nonexistent/ca.pem")),
            client_cert: None,
            insecure_skip_verify: false,
            alpn: &[],
        };
        let failure = client_config(&roots, &settings, Arc::default()).unwrap_err();
        assert_eq!(failure.reason, Reason::TlsHandshake);
        assert!(
            failure
                .message
                .starts_with("cannot read the CA file /nonexistent/ca.pem"),
            "{}",
            failure.message
        );
    }
}

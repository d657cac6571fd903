//! TLS and mutual TLS through rustls (ring), both ends negotiating HTTP/2 by ALPN.

use std::sync::Arc;

use otlp_core::{ErrorKind, ExportError};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn config_error(what: &str, error: impl std::fmt::Display) -> ExportError {
    ExportError::new(ErrorKind::FailedPrecondition, format!("{what}: {error}"))
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ExportError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(what, e))?;
    if certificates.is_empty() {
        return Err(config_error(what, "no certificate in the PEM data"));
    }
    Ok(certificates)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ExportError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| config_error("private key", e))
}

fn roots(pem: &[u8], what: &str) -> Result<RootCertStore, ExportError> {
    let mut store = RootCertStore::empty();
    for certificate in certificates(pem, what)? {
        store.add(certificate).map_err(|e| config_error(what, e))?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS settings: its certificate chain and key, and for mutual TLS the CAs
/// whose client certificates it accepts.
///
/// ```no_run
/// use otlp_net::tls::ServerTls;
/// let tls = ServerTls::from_pem(&std::fs::read("server.crt")?, &std::fs::read("server.key")?)?
///     .require_client_certificates(&std::fs::read("clients-ca.crt")?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_roots: Option<Arc<RootCertStore>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain", &self.chain.len())
            .field("mutual", &self.client_roots.is_some())
            .finish()
    }
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ExportError> {
        Ok(Self {
            chain: certificates(chain_pem, "server certificate")?,
            key: Arc::new(private_key(key_pem)?),
            client_roots: None,
        })
    }

    /// Mutual TLS: clients must present a certificate signed by one of these CAs.
    pub fn require_client_certificates(mut self, ca_pem: &[u8]) -> Result<Self, ExportError> {
        self.client_roots = Some(Arc::new(roots(ca_pem, "client CA")?));
        Ok(self)
    }

    /// The rustls configuration offering `alpn` protocols (for example `h2`, `http/1.1`),
    /// in order of preference.
    pub fn rustls_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, ExportError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS versions", e))?;
        let builder = match &self.client_roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                        .build()
                        .map_err(|e| config_error("client CA", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| config_error("server certificate", e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A client's TLS settings: the CAs it trusts, and for mutual TLS its own certificate.
#[derive(Clone)]
pub struct ClientTls {
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("mutual", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClientTls {
    /// Trusts the operating system's CAs (read by `rustls-native-certs` from the platform
    /// store: `/etc/ssl/certs` and the like, or `SSL_CERT_FILE`/`SSL_CERT_DIR`): what an
    /// `https://` endpoint gets when no CA is configured. Certificates the store holds but
    /// rustls cannot parse are skipped; a store with none usable is an error.
    pub fn system_roots() -> Result<Self, ExportError> {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "no certificates found".to_string(), ToString::to_string);
            return Err(ExportError::new(
                ErrorKind::FailedPrecondition,
                format!("no usable system trust roots ({why}); configure a CA certificate"),
            ));
        }
        Ok(Self {
            roots: Arc::new(store),
            identity: None,
            server_name: None,
        })
    }

    /// Trusts the CAs in `ca_pem` (and no others: a configured CA replaces the system's).
    pub fn with_ca_pem(ca_pem: &[u8]) -> Result<Self, ExportError> {
        Ok(Self {
            roots: Arc::new(roots(ca_pem, "CA")?),
            identity: None,
            server_name: None,
        })
    }

    /// Presents this certificate chain and key (mutual TLS).
    pub fn with_client_certificate(
        mut self,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, ExportError> {
        self.identity = Some((
            certificates(chain_pem, "client certificate")?,
            Arc::new(private_key(key_pem)?),
        ));
        Ok(self)
    }

    /// Verifies the server as `name` instead of the endpoint's host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name the server certificate must match: the override, or `host`.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, ExportError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string()).map_err(|e| config_error("TLS server name", e))
    }

    /// The rustls configuration asking for `alpn` protocols, in order of preference.
    pub fn rustls_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, ExportError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS versions", e))?
            .with_root_certificates(self.roots.clone());
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| config_error("client certificate", e))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

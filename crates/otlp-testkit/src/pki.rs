//! A throwaway certificate authority for TLS tests: one CA, a server certificate for
//! `localhost` and a client certificate, all PEM, generated fresh per call so no key
//! material lives in the repository.
//!
//! ```
//! let pki = otlp_testkit::pki::TestPki::generate();
//! assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(pki.server.key_pem.contains("PRIVATE KEY"));
//! ```

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertifiedKey {
    /// The certificate, signed by the test CA.
    pub cert_pem: String,
    /// The certificate's private key (PKCS#8).
    pub key_pem: String,
}

/// The CA and the two leaves a TLS or mutual-TLS test needs.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate: trust it on the client, or require client certificates it signed.
    pub ca_pem: String,
    /// A server certificate whose subject alternative name is `localhost`.
    pub server: CertifiedKey,
    /// A client certificate (subject alternative name `client`) for mutual TLS.
    pub client: CertifiedKey,
}

impl TestPki {
    /// Generates a fresh CA and signs the server and client certificates with it.
    ///
    /// # Panics
    /// If key generation or signing fails, which only a broken crypto provider causes.
    pub fn generate() -> Self {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = |name: &str| {
            let key = rcgen::KeyPair::generate().expect("leaf key");
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .expect("leaf parameters")
                .signed_by(&key, &issuer)
                .expect("leaf signed by the CA");
            CertifiedKey {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        };
        TestPki {
            ca_pem: ca_cert.pem(),
            server: leaf("localhost"),
            client: leaf("client"),
        }
    }
}

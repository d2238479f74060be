//! The serving certificate behind an `ArcSwap`: rustls asks the resolver per handshake, so a
//! swap takes effect on the next connection without dropping open ones. A new pair is swapped
//! in only after certificate and key parse and match; a bad pair keeps the old one.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate PEM: {0}")]
    Cert(String),
    #[error("private key PEM: {0}")]
    Key(String),
    #[error("certificate and key do not match: {0}")]
    Mismatch(String),
}

/// The current certificate and when it expires.
#[derive(Debug, Default)]
pub struct CertStore {
    current: ArcSwapOption<CertifiedKey>,
    not_after: ArcSwapOption<SystemTime>,
}

impl CertStore {
    /// Parses, checks and swaps in a certificate chain and key; `not_after` feeds the metric.
    pub fn load(
        &self,
        cert_pem: &str,
        key_pem: &str,
        not_after: SystemTime,
    ) -> Result<(), TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Cert("no certificate found".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Key(e.to_string()))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        self.current.store(Some(Arc::new(certified)));
        self.not_after.store(Some(Arc::new(not_after)));
        Ok(())
    }

    /// Whether a certificate is loaded (part of readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Seconds until the loaded certificate expires (negative once expired).
    pub fn seconds_to_expiry(&self, now: SystemTime) -> Option<f64> {
        let not_after = *self.not_after.load_full()?;
        Some(match not_after.duration_since(now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
    }
}

/// Resolves every handshake to the store's current certificate.
#[derive(Debug)]
pub struct Resolver(pub Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current.load_full()
    }
}

/// A rustls server config: TLS 1.2 and 1.3 only, ALPN h2 and http/1.1, certificate from `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

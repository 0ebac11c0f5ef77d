//! rustls configurations for mTLS (feature `tls`): a server that requires client certificates
//! from a CA, and a client that trusts only pinned roots.
//!
//! Every option given here takes effect or the builder returns an error: an empty CA bundle, a
//! certificate that does not parse, a PEM file with no key, a protocol version the build cannot
//! offer are all [`TlsError`]s, never silently skipped. TLS 1.3 is the minimum unless
//! [`TlsOptions::allow_tls12`] is asked for.
//!
//! ```
//! use mcp_security::tls::{self, TlsOptions};
//!
//! // Certificates from files: tls::load_certs("ca.pem")?, tls::load_private_key("key.pem")?.
//! let err = tls::server_config(Vec::new(), None, &[], &TlsOptions::default()).unwrap_err();
//! assert_eq!(err.to_string(), "tls: no certificate chain for the server");
//! ```

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::context::Credentials;

/// A TLS configuration that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the expected kind.
    #[error("tls: cannot load {what} from the pem file: {reason}")]
    Pem {
        /// Certificates or a private key.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// No certificate chain (server) was given.
    #[error("tls: no certificate chain for the server")]
    NoChain,
    /// No trusted root was given: pinning to nothing would trust nothing, or everything.
    #[error("tls: no trusted ca certificate")]
    NoRoots,
    /// A CA certificate was refused as a trust anchor.
    #[error("tls: ca certificate {index} is not a usable trust anchor")]
    BadRoot {
        /// Its position in the list.
        index: usize,
    },
    /// rustls refused the configuration (key does not match the certificate, a protocol
    /// version the crypto provider lacks...).
    #[error("tls: {0}")]
    Rustls(String),
    /// An ALPN protocol name is empty or longer than 255 bytes.
    #[error("tls: alpn protocol names must be 1 to 255 bytes")]
    Alpn,
}

/// Options shared by [`server_config`] and [`client_config`].
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    allow_tls12: bool,
    alpn: Vec<Vec<u8>>,
}

impl TlsOptions {
    /// TLS 1.3 only, no ALPN.
    pub fn new() -> Self {
        TlsOptions::default()
    }

    /// Also accept TLS 1.2 (for peers that cannot do 1.3).
    pub fn allow_tls12(mut self) -> Self {
        self.allow_tls12 = true;
        self
    }

    /// ALPN protocols to offer, in preference order (`h2`, `http/1.1`).
    pub fn with_alpn(mut self, protocols: impl IntoIterator<Item = impl Into<Vec<u8>>>) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static BOTH: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        if self.allow_tls12 { BOTH } else { TLS13 }
    }

    fn alpn(&self) -> Result<Vec<Vec<u8>>, TlsError> {
        if self
            .alpn
            .iter()
            .any(|p| p.is_empty() || p.len() > usize::from(u8::MAX))
        {
            return Err(TlsError::Alpn);
        }
        Ok(self.alpn.clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// Every certificate in a PEM file (a chain, or a CA bundle).
///
/// # Errors
/// [`TlsError::Pem`] when the file cannot be read, a block is malformed, or it holds none.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what: "certificates",
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
/// [`TlsError::Pem`] when the file cannot be read or holds no key.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        what: "a private key",
        reason: e.to_string(),
    })
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    if ca.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let mut store = RootCertStore::empty();
    for (index, c) in ca.iter().enumerate() {
        // `add` (not `add_parsable_certificates`): a CA that does not parse is an error.
        store
            .add(c.clone())
            .map_err(|_| TlsError::BadRoot { index })?;
    }
    Ok(store)
}

/// A server configuration that requires a client certificate chaining to one of `client_ca`.
/// A handshake without a client certificate, or with one from another CA, fails.
///
/// `chain` is the server's certificate chain (leaf first) and `key` its private key.
///
/// # Errors
/// A [`TlsError`] when any input is missing or unusable.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: Option<PrivateKeyDer<'static>>,
    client_ca: &[CertificateDer<'static>],
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::NoChain);
    }
    let key = key.ok_or_else(|| TlsError::Pem {
        what: "a private key",
        reason: "none given".into(),
    })?;
    let provider = provider();
    // No `allow_unauthenticated`: the verifier requires a certificate.
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_ca)?), provider.clone())
            .build()
            .map_err(rustls_err)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(options.versions())
        .map_err(rustls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(rustls_err)?;
    config.alpn_protocols = options.alpn()?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts only `roots` (CA pinning: the system roots are not
/// consulted) and, when `client_auth` is given, presents that certificate chain and key.
///
/// # Errors
/// A [`TlsError`] when any input is missing or unusable.
pub fn client_config(
    roots_pem: &[CertificateDer<'static>],
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    options: &TlsOptions,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(options.versions())
        .map_err(rustls_err)?
        .with_root_certificates(roots(roots_pem)?);
    let mut config = match client_auth {
        Some((chain, key)) => {
            if chain.is_empty() {
                return Err(TlsError::NoChain);
            }
            builder
                .with_client_auth_cert(chain, key)
                .map_err(rustls_err)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn()?;
    Ok(Arc::new(config))
}

/// The client's verified leaf certificate on an accepted server-side TLS stream. `None` when
/// the client presented none (impossible with [`server_config`], which requires one).
pub fn peer_certificate<IO>(
    stream: &tokio_rustls::server::TlsStream<IO>,
) -> Option<CertificateDer<'static>> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()?
        .first()
        .map(|c| c.clone().into_owned())
}

/// [`peer_certificate`] as [`Credentials`] for
/// [`CertificateAuthenticator`](crate::authn::CertificateAuthenticator). To send a bearer token
/// over the same connection, use `Credentials::bearer(t).with_client_certificate(der)`.
pub fn peer_credentials<IO>(stream: &tokio_rustls::server::TlsStream<IO>) -> Option<Credentials> {
    peer_certificate(stream).map(|c| Credentials::client_certificate(c.as_ref()))
}

//! Identities from client certificates verified by the TLS handshake (feature `tls`).

use std::net::IpAddr;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::{Authenticator, AuthnError, KeyHashError};
use crate::context::{AuthMethod, Identity, RequestContext};

/// What in a verified client certificate names a host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateMatch {
    /// A subject common name (CN), compared exactly.
    SubjectCn(String),
    /// A subject alternative name: a DNS name, URI, e-mail address or IP address, compared
    /// exactly with its text form.
    San(String),
    /// The SHA-256 of the certificate's DER encoding (pins one certificate).
    Sha256([u8; 32]),
}

impl CertificateMatch {
    /// A fingerprint match from 64 hex characters.
    ///
    /// # Errors
    /// [`KeyHashError`] when `hex` is not 64 hexadecimal characters.
    pub fn sha256_hex(hex: &str) -> Result<Self, KeyHashError> {
        crate::hex::parse_sha256(hex)
            .map(CertificateMatch::Sha256)
            .ok_or(KeyHashError)
    }

    fn matches(&self, fingerprint: &[u8; 32], cert: &X509Certificate<'_>) -> bool {
        match self {
            CertificateMatch::Sha256(pin) => pin == fingerprint,
            CertificateMatch::SubjectCn(cn) => cert
                .subject()
                .iter_common_name()
                .any(|a| a.as_str().is_ok_and(|s| s == cn)),
            CertificateMatch::San(name) => {
                let Ok(Some(san)) = cert.subject_alternative_name() else {
                    return false;
                };
                san.value.general_names.iter().any(|g| match g {
                    GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                        s == name
                    }
                    GeneralName::IPAddress(bytes) => ip_text(bytes).is_some_and(|ip| {
                        name.parse::<IpAddr>().is_ok_and(|n| n.to_canonical() == ip)
                    }),
                    _ => false,
                })
            }
        }
    }
}

fn ip_text(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
    .map(|ip| ip.to_canonical())
}

/// Maps verified client certificates to hosts.
///
/// Reads [`Credentials::client_certificate_der`](crate::Credentials::client_certificate_der),
/// which the transport sets only after rustls verified the chain against the configured CA (see
/// [`tls::server_config`](crate::tls::server_config)). The rules are tried in order, the first
/// match names the host; a certificate no rule matches is refused with
/// [`AuthnError::Invalid`], one outside its validity period with [`AuthnError::Expired`] or
/// [`AuthnError::NotYetValid`] (a long-lived connection can outlast its certificate).
///
/// ```
/// use mcp_security::authn::{CertificateAuthenticator, CertificateMatch};
///
/// let mtls = CertificateAuthenticator::new()
///     .map(CertificateMatch::SubjectCn("billing-agent".into()), "billing")
///     .map(CertificateMatch::San("spiffe://example.org/ci".into()), "ci");
/// # let _ = mtls;
/// ```
#[derive(Debug, Clone, Default)]
pub struct CertificateAuthenticator {
    rules: Vec<(CertificateMatch, Identity)>,
}

impl CertificateAuthenticator {
    /// No rules yet: every certificate is refused.
    pub fn new() -> Self {
        CertificateAuthenticator::default()
    }

    /// Certificates matching `m` authenticate as `host`.
    pub fn map(self, m: CertificateMatch, host: &str) -> Self {
        self.map_identity(m, Identity::new(host))
    }

    /// Certificates matching `m` authenticate as `identity` (with its scopes and attributes).
    pub fn map_identity(mut self, m: CertificateMatch, identity: Identity) -> Self {
        self.rules
            .push((m, identity.with_method(AuthMethod::ClientCertificate)));
        self
    }

    /// The hosts the rules name, in order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(_, id)| id.host())
    }
}

#[async_trait]
impl Authenticator for CertificateAuthenticator {
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        let der = cx
            .credentials()
            .client_certificate_der()
            .ok_or(AuthnError::Missing)?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| AuthnError::Malformed)?;
        let at = ASN1Time::from_timestamp(cx.received_at().timestamp())
            .map_err(|_| AuthnError::Malformed)?;
        let validity = cert.validity();
        if at < validity.not_before {
            return Err(AuthnError::NotYetValid);
        }
        if at > validity.not_after {
            return Err(AuthnError::Expired);
        }
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        self.rules
            .iter()
            .find(|(m, _)| m.matches(&fingerprint, &cert))
            .map(|(_, id)| id.clone())
            .ok_or(AuthnError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Credentials, Transport};

    proptest::proptest! {
        /// Arbitrary bytes where a certificate should be are refused, never a panic.
        #[test]
        fn any_bytes_are_refused_without_panic(der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let auth = CertificateAuthenticator::new()
                .map(CertificateMatch::SubjectCn("x".into()), "x")
                .map(CertificateMatch::San("x".into()), "x")
                .map(CertificateMatch::Sha256([0; 32]), "x");
            let cx = RequestContext::new(Transport::Http)
                .with_credentials(Credentials::client_certificate(der));
            let rt = tokio::runtime::Builder::new_current_thread().build();
            let Ok(rt) = rt else { unreachable!() };
            proptest::prop_assert!(rt.block_on(auth.authenticate(&cx)).is_err());
        }
    }
}

//! Authentication: who is calling. The [`Authenticator`] trait and its built-ins.
//!
//! An authenticator turns the [`Credentials`](crate::Credentials) in a
//! [`RequestContext`] into an [`Identity`], the proof that authentication succeeded, or an
//! [`AuthnError`]. Every error denies: there is no "unknown" outcome.
//!
//! Built-ins: [`ApiKeyAuthenticator`] (hashed keys with expiry, not-before and source networks),
//! `JwtAuthenticator` (feature `jwt`: OAuth 2.1 bearer tokens checked against a JWKS),
//! `CertificateAuthenticator` (feature `tls`: client certificates verified by the TLS
//! handshake), [`AssertedIdentity`] (dry runs), and [`AnyOf`], which chains several and keeps
//! the most specific refusal reason. Each [`AuthnError`] variant is a distinct reason for the
//! audit record; the peer only ever learns "unauthenticated".
//!
//! ```
//! use mcp_security::authn::{ApiKeyAuthenticator, ApiKeyEntry, Authenticator};
//! use mcp_security::{Credentials, RequestContext, Transport};
//!
//! # tokio_test_block_on(async {
//! let auth = ApiKeyAuthenticator::new([ApiKeyEntry::from_key("analytics-bot", "k-123")]);
//! let cx = RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key("k-123"));
//! let who = auth.authenticate(&cx).await?;
//! assert_eq!(who.host(), "analytics-bot");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().map(|rt| rt.block_on(f)).unwrap_or_else(|_| unreachable!())
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod any_of;
mod api_key;
#[cfg(feature = "jwt")]
mod jwt;
#[cfg(feature = "tls")]
mod mtls;

pub use any_of::AnyOf;
pub use api_key::{ApiKeyAuthenticator, ApiKeyEntry, KeyHashError};
#[cfg(feature = "jwt")]
pub use jwt::{HostClaim, JwksSource, JwtAlgorithm, JwtAuthenticator, JwtConfig, JwtConfigError};
#[cfg(feature = "tls")]
pub use mtls::{CertificateAuthenticator, CertificateMatch};

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::context::{Identity, RequestContext};

/// Why authentication failed. The peer only ever learns "unauthenticated"; the variant goes to
/// the audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// Nothing was presented.
    #[error("no credentials presented")]
    Missing,
    /// The credential matches nothing known.
    #[error("credentials not recognised")]
    Invalid,
    /// The credential matched but has expired.
    #[error("credentials expired")]
    Expired,
    /// The credential matched but is not allowed from the caller's address.
    #[error("credentials not allowed from this address")]
    AddressNotAllowed,
    /// The authenticator could not run (an identity provider is down): fail closed.
    #[error("authenticator unavailable: {0}")]
    Unavailable(&'static str),
    /// The credential matched but its validity has not started (API key `not_before`, JWT `nbf`).
    #[error("credentials not yet valid")]
    NotYetValid,
    /// The credential is not well formed (a token that is not a JWT, a header that is not JSON).
    #[error("credentials malformed")]
    Malformed,
    /// The credential is larger than the configured cap; it was not parsed.
    #[error("credentials too large")]
    TooLarge,
    /// The token's `alg` is not allowed (`none`, any HMAC, one not configured) or is not the
    /// algorithm of the key it names.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The token names a key (`kid`) the key set does not hold, even after a refetch.
    #[error("token signing key unknown")]
    UnknownKey,
    /// The signature does not verify with the named key.
    #[error("token signature invalid")]
    BadSignature,
    /// The token's `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// The token's `aud` does not contain this server's resource URI.
    #[error("token audience not accepted")]
    WrongAudience,
    /// A required claim is absent (the name of the claim, never its value).
    #[error("token claim missing: {0}")]
    MissingClaim(&'static str),
}

/// Establishes who is calling.
///
/// Async because real authenticators may do I/O (a JWKS fetch, token introspection).
/// Implementations must deny on every error path.
#[async_trait]
pub trait Authenticator: Debug + Send + Sync {
    /// Verifies the credentials in `cx` and returns the caller's identity.
    ///
    /// # Errors
    /// An [`AuthnError`] for every reason the caller is not authenticated.
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError>;
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Arc<T> {
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        (**self).authenticate(cx).await
    }
}

/// Accepts every caller as one fixed identity, without checking anything.
///
/// For dry runs and tests (`mcp-security check --host H`) and for stdio servers whose only
/// caller is the process that launched them. The identity it returns is marked
/// [`AuthMethod::Asserted`](crate::AuthMethod::Asserted) so the audit record shows no
/// credential was checked.
#[derive(Debug, Clone)]
pub struct AssertedIdentity(Identity);

impl AssertedIdentity {
    /// Asserts `identity` for every request.
    pub fn new(identity: Identity) -> Self {
        AssertedIdentity(identity.with_method(crate::AuthMethod::Asserted))
    }
}

#[async_trait]
impl Authenticator for AssertedIdentity {
    async fn authenticate(&self, _cx: &RequestContext) -> Result<Identity, AuthnError> {
        Ok(self.0.clone())
    }
}

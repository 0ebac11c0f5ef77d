//! Several authenticators, any one of which may establish the identity.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Authenticator, AuthnError};
use crate::context::{Identity, RequestContext};

/// Tries each authenticator in order; the first success wins.
///
/// When all fail, the error kept for the audit record is the most specific one:
/// - [`AuthnError::Missing`] (this authenticator found nothing of its kind) is the least specific;
/// - [`AuthnError::Unavailable`] (it could not run) is more specific than `Missing`;
/// - every other error (a credential was examined and refused) is the most specific;
/// - between errors of the same rank, the earliest authenticator in the chain wins.
///
/// So a bad API key presented to `[jwt, api_key]` is audited as "credentials not recognised",
/// not as the JWT authenticator's "no credentials presented"; and a caller presenting nothing
/// is audited as `Missing`. The peer learns none of this.
///
/// ```
/// use mcp_security::authn::{AnyOf, ApiKeyAuthenticator, ApiKeyEntry, Authenticator, AuthnError};
/// use mcp_security::{Credentials, RequestContext, Transport};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let chain = AnyOf::new()
///     .with(ApiKeyAuthenticator::new([ApiKeyEntry::from_key("a", "key-a")]))
///     .with(ApiKeyAuthenticator::new([ApiKeyEntry::from_key("b", "key-b")]));
/// let cx = |k: &str| RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key(k));
/// assert_eq!(chain.authenticate(&cx("key-b")).await?.host(), "b");
/// assert_eq!(chain.authenticate(&cx("nope")).await.err(), Some(AuthnError::Invalid));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AnyOf {
    chain: Vec<Arc<dyn Authenticator>>,
}

fn rank(e: &AuthnError) -> u8 {
    match e {
        AuthnError::Missing => 0,
        AuthnError::Unavailable(_) => 1,
        _ => 2,
    }
}

impl AnyOf {
    /// An empty chain; it refuses everyone with [`AuthnError::Missing`].
    pub fn new() -> Self {
        AnyOf::default()
    }

    /// Appends `a` to the chain.
    pub fn with(mut self, a: impl Authenticator + 'static) -> Self {
        self.chain.push(Arc::new(a));
        self
    }

    /// Appends a shared authenticator to the chain.
    pub fn with_arc(mut self, a: Arc<dyn Authenticator>) -> Self {
        self.chain.push(a);
        self
    }

    /// How many authenticators the chain holds.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }
}

#[async_trait]
impl Authenticator for AnyOf {
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        let mut kept = AuthnError::Missing;
        for a in &self.chain {
            match a.authenticate(cx).await {
                Ok(id) => return Ok(id),
                Err(e) if rank(&e) > rank(&kept) => kept = e,
                Err(_) => {}
            }
        }
        Err(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::{ApiKeyAuthenticator, ApiKeyEntry};
    use crate::context::{Credentials, Transport};

    #[derive(Debug)]
    struct Fails(AuthnError);

    #[async_trait]
    impl Authenticator for Fails {
        async fn authenticate(&self, _cx: &RequestContext) -> Result<Identity, AuthnError> {
            Err(self.0.clone())
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => unreachable!("runtime: {e}"),
        }
    }

    #[test]
    fn most_specific_reason_is_kept() {
        let cx = RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key("x"));
        let chain = AnyOf::new()
            .with(Fails(AuthnError::Missing))
            .with(Fails(AuthnError::Unavailable("idp down")))
            .with(Fails(AuthnError::Expired))
            .with(Fails(AuthnError::Invalid));
        assert_eq!(
            block_on(chain.authenticate(&cx)).err(),
            Some(AuthnError::Expired)
        );
        let chain = AnyOf::new()
            .with(Fails(AuthnError::Missing))
            .with(Fails(AuthnError::Unavailable("idp down")));
        assert_eq!(
            block_on(chain.authenticate(&cx)).err(),
            Some(AuthnError::Unavailable("idp down"))
        );
        assert_eq!(
            block_on(AnyOf::new().authenticate(&cx)).err(),
            Some(AuthnError::Missing)
        );
    }

    #[test]
    fn first_success_wins() {
        let cx = RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key("k"));
        let chain = AnyOf::new()
            .with(Fails(AuthnError::Invalid))
            .with(ApiKeyAuthenticator::new([ApiKeyEntry::from_key(
                "first", "k",
            )]))
            .with(ApiKeyAuthenticator::new([ApiKeyEntry::from_key(
                "second", "k",
            )]));
        assert_eq!(
            block_on(chain.authenticate(&cx)).map(|i| i.host().to_owned()),
            Ok("first".to_owned())
        );
    }
}

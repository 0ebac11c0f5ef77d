//! API keys stored as SHA-256 hashes, compared in constant time.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::{Authenticator, AuthnError};
use crate::context::{AuthMethod, Identity, RequestContext};

/// A hex SHA-256 digest that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sha-256 key hash must be 64 hexadecimal characters")]
pub struct KeyHashError;

/// One accepted API key: the SHA-256 of the key (never the key), the identity it stands for, an
/// optional expiry and optional source networks.
#[derive(Debug, Clone)]
pub struct ApiKeyEntry {
    hash: [u8; 32],
    identity: Identity,
    expires: Option<DateTime<Utc>>,
    not_before: Option<DateTime<Utc>>,
    allowed_ips: Vec<IpNet>,
}

impl ApiKeyEntry {
    /// An entry for `host` from the hex SHA-256 of its key (the policy file's `key_sha256`).
    ///
    /// # Errors
    /// [`KeyHashError`] when `hex` is not 64 hexadecimal characters.
    pub fn from_sha256_hex(host: &str, hex: &str) -> Result<Self, KeyHashError> {
        Ok(Self::from_hash(
            host,
            crate::hex::parse_sha256(hex).ok_or(KeyHashError)?,
        ))
    }

    /// An entry for `host` from the key itself; only the hash is kept.
    pub fn from_key(host: &str, key: &str) -> Self {
        Self::from_hash(host, sha256(key.as_bytes()))
    }

    fn from_hash(host: &str, hash: [u8; 32]) -> Self {
        ApiKeyEntry {
            hash,
            identity: Identity::new(host).with_method(AuthMethod::ApiKey),
            expires: None,
            not_before: None,
            allowed_ips: Vec::new(),
        }
    }

    /// The key stops working at `at`.
    pub fn with_expires(mut self, at: DateTime<Utc>) -> Self {
        self.expires = Some(at);
        self.identity = self.identity.with_expires(at);
        self
    }

    /// The key starts working at `at`. With [`with_expires`](Self::with_expires) on the key it
    /// replaces, a host's old and new keys overlap during a rotation.
    pub fn with_not_before(mut self, at: DateTime<Utc>) -> Self {
        self.not_before = Some(at);
        self
    }

    /// The key works only from these networks (an empty list allows any address).
    pub fn with_allowed_ips(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.allowed_ips = nets.into_iter().collect();
        self
    }

    /// Scopes granted to the key.
    pub fn with_scopes<S: Into<std::sync::Arc<str>>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.identity = self.identity.with_scopes(scopes);
        self
    }

    /// The host this key authenticates.
    pub fn host(&self) -> &str {
        self.identity.host()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Authenticates API keys against stored SHA-256 hashes.
///
/// The presented key is hashed once and compared with every stored hash in constant time, so
/// neither the comparison nor the position of the match in the list leaks through timing.
/// Expiry, not-before and source networks are checked after the match, against the request's
/// receive time and peer address (an IPv4-mapped IPv6 address is checked as the IPv4 address).
/// A host may hold several keys at once (rotation): each is its own entry.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyAuthenticator {
    entries: Vec<ApiKeyEntry>,
}

impl ApiKeyAuthenticator {
    /// An authenticator accepting `entries`.
    pub fn new(entries: impl IntoIterator<Item = ApiKeyEntry>) -> Self {
        ApiKeyAuthenticator {
            entries: entries.into_iter().collect(),
        }
    }

    /// The hosts with a key, in policy order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(ApiKeyEntry::host)
    }
}

fn ip_allowed(nets: &[IpNet], addr: Option<IpAddr>) -> bool {
    if nets.is_empty() {
        return true;
    }
    // A key restricted to networks is refused when the transport has no address: fail closed.
    addr.map(|a| a.to_canonical())
        .is_some_and(|a| nets.iter().any(|n| n.contains(&a)))
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        // Over HTTP an API key may come as a bearer token (`Authorization: Bearer <key>`).
        let credentials = cx.credentials();
        let key = credentials
            .api_key_secret()
            .or_else(|| credentials.bearer_secret())
            .ok_or(AuthnError::Missing)?;
        let presented = sha256(key.expose().as_bytes());
        let mut found: Option<&ApiKeyEntry> = None;
        for entry in &self.entries {
            let eq: Choice = entry.hash.ct_eq(&presented);
            // Every entry is compared; only the bookkeeping after the comparison branches.
            if bool::from(eq) && found.is_none() {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(AuthnError::Invalid)?;
        if entry.expires.is_some_and(|exp| cx.received_at() >= exp) {
            return Err(AuthnError::Expired);
        }
        if entry.not_before.is_some_and(|nbf| cx.received_at() < nbf) {
            return Err(AuthnError::NotYetValid);
        }
        if !ip_allowed(&entry.allowed_ips, cx.peer_addr()) {
            return Err(AuthnError::AddressNotAllowed);
        }
        Ok(entry.identity.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Credentials, Transport};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => unreachable!("runtime: {e}"),
        }
    }

    fn cx(key: &str) -> RequestContext {
        RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key(key))
    }

    #[test]
    fn entry_from_hex_hash() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let auth = ApiKeyAuthenticator::new([
            ApiKeyEntry::from_sha256_hex("t", hex).unwrap_or_else(|e| unreachable!("{e}"))
        ]);
        assert!(block_on(auth.authenticate(&cx("test"))).is_ok());
        assert_eq!(
            ApiKeyEntry::from_sha256_hex("t", "abc").err(),
            Some(KeyHashError)
        );
    }

    #[test]
    fn valid_invalid_missing_expired_and_address() {
        let past = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap_or_default();
        let auth = ApiKeyAuthenticator::new([
            ApiKeyEntry::from_key("a", "key-a"),
            ApiKeyEntry::from_key("old", "key-old").with_expires(past),
            ApiKeyEntry::from_key("lan", "key-lan")
                .with_allowed_ips(["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())]),
        ]);
        assert_eq!(
            block_on(auth.authenticate(&cx("key-a"))).map(|i| i.host().to_owned()),
            Ok("a".to_owned())
        );
        assert_eq!(
            block_on(auth.authenticate(&cx("nope"))).err(),
            Some(AuthnError::Invalid)
        );
        assert_eq!(
            block_on(auth.authenticate(&RequestContext::new(Transport::Stdio))).err(),
            Some(AuthnError::Missing)
        );
        assert_eq!(
            block_on(auth.authenticate(&cx("key-old"))).err(),
            Some(AuthnError::Expired)
        );
        assert_eq!(
            block_on(auth.authenticate(&cx("key-lan"))).err(),
            Some(AuthnError::AddressNotAllowed)
        );
        let from_lan =
            cx("key-lan").with_peer_addr("10.1.2.3".parse().unwrap_or_else(|_| unreachable!()));
        assert!(block_on(auth.authenticate(&from_lan)).is_ok());
        let from_wan =
            cx("key-lan").with_peer_addr("192.0.2.1".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(
            block_on(auth.authenticate(&from_wan)).err(),
            Some(AuthnError::AddressNotAllowed)
        );
    }

    #[test]
    fn rotation_overlap_not_before_and_mapped_ipv4() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap_or_default();
        let auth = ApiKeyAuthenticator::new([
            ApiKeyEntry::from_key("bot", "old").with_expires(t(2_000)),
            ApiKeyEntry::from_key("bot", "new").with_not_before(t(1_000)),
            ApiKeyEntry::from_key("v4", "v4")
                .with_allowed_ips(["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())]),
        ]);
        let at = |k: &str, s: i64| block_on(auth.authenticate(&cx(k).with_received_at(t(s))));
        // Before the rotation window only the old key works; during it both; after it the new.
        assert_eq!(
            at("old", 500).map(|i| i.host().to_owned()),
            Ok("bot".into())
        );
        assert_eq!(at("new", 500).err(), Some(AuthnError::NotYetValid));
        assert!(at("old", 1_500).is_ok() && at("new", 1_500).is_ok());
        assert_eq!(at("old", 2_500).err(), Some(AuthnError::Expired));
        assert!(at("new", 2_500).is_ok());
        // ::ffff:10.1.2.3 is 10.1.2.3.
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or_else(|_| unreachable!());
        assert!(block_on(auth.authenticate(&cx("v4").with_peer_addr(mapped))).is_ok());
        let other: IpAddr = "::ffff:192.0.2.1"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            block_on(auth.authenticate(&cx("v4").with_peer_addr(other))).err(),
            Some(AuthnError::AddressNotAllowed)
        );
    }
}

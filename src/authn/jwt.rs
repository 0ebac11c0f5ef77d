//! OAuth 2.1 resource server: JWT bearer tokens verified against a JWKS (feature `jwt`).
//!
//! What is checked, in order, and why each step is before the next:
//! 1. the token's size, before any parsing (a cap on what an anonymous peer makes us decode);
//! 2. the verified-token cache (SHA-256 of the token), so a repeated token costs a hash;
//! 3. the header: `alg` must be one of the configured asymmetric algorithms (`none` and every
//!    `HS*` are refused outright, so a public key can never be used as an HMAC secret);
//! 4. the key named by `kid`, whose own algorithm must equal `alg`; an unknown `kid` triggers
//!    at most one JWKS refetch per interval, shared by every concurrent miss;
//! 5. the signature (ring), and only then the claims: `exp`, `iss`, `aud` required; `iss`
//!    exact, `aud` (string or array) containing the resource URI, `exp` and `nbf` with a bounded
//!    leeway.
//!
//! Signatures are checked with `ring` (already in the tree through rustls): its RSA verification
//! is an order of magnitude faster than `jsonwebtoken`'s pure-Rust backend (see
//! docs/benchmarks.md), and keeping the claim checks here keeps every refusal reason distinct.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use serde::Deserialize;

use super::{Authenticator, AuthnError};
use crate::context::{AuthMethod, Identity, RequestContext};

/// The most leeway the configuration accepts: clock skew beyond five minutes is a broken clock.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The largest JWKS document read from a file or URL.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// The smallest RSA modulus accepted in a JWKS, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksSource {
    /// A JWKS document on disk, read at construction and re-read on an unknown `kid`.
    File(PathBuf),
    /// A JWKS URL (`https://`, or `http://` to a loopback address only), fetched on first use
    /// and on an unknown `kid`.
    Url(String),
    /// A JWKS document held in memory (tests, embedded keys); never refetched.
    Inline(String),
}

/// A JWS algorithm this verifier accepts. There is deliberately no `none` and no HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 bits or more.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses an `alg` value; `None` for every other algorithm (`none`, `HS256`, `PS256`...).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(JwtAlgorithm::RS256),
            "ES256" => Some(JwtAlgorithm::ES256),
            "EdDSA" => Some(JwtAlgorithm::EdDSA),
            _ => None,
        }
    }
}

/// The claim that names the host (the MCP client application) in the [`Identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HostClaim {
    /// `sub`, the subject (the default).
    #[default]
    Subject,
    /// `azp`, the authorized party (the OAuth client the token was issued to).
    AuthorizedParty,
    /// `client_id` (RFC 9068).
    ClientId,
}

impl HostClaim {
    /// The claim's name.
    pub fn name(self) -> &'static str {
        match self {
            HostClaim::Subject => "sub",
            HostClaim::AuthorizedParty => "azp",
            HostClaim::ClientId => "client_id",
        }
    }

    /// Parses a claim name (`sub`, `azp`, `client_id`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sub" => Some(HostClaim::Subject),
            "azp" => Some(HostClaim::AuthorizedParty),
            "client_id" => Some(HostClaim::ClientId),
            _ => None,
        }
    }
}

/// A JWT configuration that cannot work. Raised at construction, never at request time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// The issuer or the audience is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The leeway exceeds the bound.
    #[error("leeway must be at most 300 seconds")]
    Leeway,
    /// No algorithm.
    #[error("algorithms must be a non-empty subset of RS256, ES256, EdDSA")]
    Algorithms,
    /// The token size cap or the cache capacity is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The JWKS URL is not `https://` (or `http://` to loopback), or cannot be parsed.
    #[error("jwks url must be https (http only to a loopback address)")]
    Url,
    /// The HTTP client for the JWKS URL could not be built.
    #[error("cannot build the jwks http client")]
    Client,
    /// The JWKS file could not be read.
    #[error("cannot read the jwks file: {0}")]
    Read(String),
    /// The JWKS document is not JSON with a `keys` array, or holds no usable key.
    #[error("jwks: {0}")]
    Jwks(&'static str),
}

/// The configuration of a [`JwtAuthenticator`].
///
/// ```
/// use std::time::Duration;
/// use mcp_security::authn::{HostClaim, JwksSource, JwtConfig};
///
/// let config = JwtConfig::new(
///     "https://auth.example.com",
///     "https://mcp.example.com/mcp",
///     JwksSource::Url("https://auth.example.com/.well-known/jwks.json".into()),
/// )
/// .with_host_claim(HostClaim::ClientId)
/// .with_leeway(Duration::from_secs(30));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct JwtConfig {
    issuer: String,
    audience: String,
    source: JwksSource,
    algorithms: Vec<JwtAlgorithm>,
    host_claim: HostClaim,
    leeway: Duration,
    max_token_bytes: usize,
    refetch_interval: Duration,
    max_key_age: Duration,
    fetch_timeout: Duration,
    cache_capacity: usize,
}

impl JwtConfig {
    /// Tokens from `issuer` (compared exactly) for the resource `audience` (this server's
    /// canonical URI, RFC 8707), signed by keys from `source`. Defaults: RS256, ES256 and EdDSA;
    /// host from `sub`; 30 s leeway; tokens up to 8 KiB; at most one JWKS refetch per 30 s; keys
    /// refreshed after an hour; 5 s fetch timeout; 10 000 cached tokens.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, source: JwksSource) -> Self {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            source,
            algorithms: vec![
                JwtAlgorithm::RS256,
                JwtAlgorithm::ES256,
                JwtAlgorithm::EdDSA,
            ],
            host_claim: HostClaim::Subject,
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            refetch_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
            cache_capacity: 10_000,
        }
    }

    /// The accepted algorithms (a non-empty subset).
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = JwtAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// The claim that names the host.
    pub fn with_host_claim(mut self, claim: HostClaim) -> Self {
        self.host_claim = claim;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (at most 300 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Tokens longer than this many bytes are refused before parsing.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The least time between two JWKS refetches caused by unknown `kid`s.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// How long a fetched key set is trusted before the next cold verification refreshes it
    /// (so that keys the issuer withdrew stop verifying). A failed refresh keeps the old keys.
    pub fn with_max_key_age(mut self, age: Duration) -> Self {
        self.max_key_age = age;
        self
    }

    /// How long one JWKS fetch may take.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// How many verified tokens are remembered.
    pub fn with_cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }
}

/// The public key material, decoded once when the JWKS is read.
#[derive(Clone)]
enum KeyMaterial {
    Rsa {
        n: Arc<[u8]>,
        e: Arc<[u8]>,
    },
    /// The uncompressed SEC1 point (0x04 || x || y).
    P256(Arc<[u8]>),
    Ed25519([u8; 32]),
}

/// One verification key from the JWKS, with the one algorithm it may be used with.
#[derive(Clone)]
struct VerifyKey {
    alg: JwtAlgorithm,
    key: KeyMaterial,
}

impl VerifyKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents { n: &**n, e: &**e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            KeyMaterial::P256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &**point)
                .verify(message, signature)
                .is_ok(),
            KeyMaterial::Ed25519(x) => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

struct KeySet {
    by_kid: HashMap<String, VerifyKey>,
    /// Keys published without a `kid`; used only when the set holds exactly one key.
    unnamed: Vec<VerifyKey>,
    /// When the set was read: past the maximum age it is refreshed before it is trusted again.
    loaded: Instant,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet {
            by_kid: HashMap::new(),
            unnamed: Vec::new(),
            loaded: Instant::now(),
        }
    }
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.by_kid.len() + self.unnamed.len() == 1 => {
                self.unnamed.first().or_else(|| self.by_kid.values().next())
            }
            None => None,
        }
    }

    fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

/// A JWK as published; unknown members are ignored, unknown key types skipped.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

fn b64(s: Option<&str>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s?).ok()
}

/// The key and its algorithm, or `None` for a key this verifier will not use (symmetric, an
/// unsupported curve, a short RSA modulus, an encryption key, malformed components).
fn verify_key(jwk: &RawJwk) -> Option<VerifyKey> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, key) = match jwk.kty.as_str() {
        "RSA" => {
            let (mut n, e) = (b64(jwk.n.as_deref())?, b64(jwk.e.as_deref())?);
            // Leading zero octets do not count towards the modulus size.
            let zeros = n.iter().take_while(|b| **b == 0).count();
            n.drain(..zeros);
            if n.len() < MIN_RSA_MODULUS_BYTES || e.is_empty() {
                return None;
            }
            (
                JwtAlgorithm::RS256,
                KeyMaterial::Rsa {
                    n: n.into(),
                    e: e.into(),
                },
            )
        }
        "EC" if jwk.crv.as_deref() == Some("P-256") => {
            let (x, y) = (b64(jwk.x.as_deref())?, b64(jwk.y.as_deref())?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (JwtAlgorithm::ES256, KeyMaterial::P256(point.into()))
        }
        "OKP" if jwk.crv.as_deref() == Some("Ed25519") => {
            let x = <[u8; 32]>::try_from(b64(jwk.x.as_deref())?.as_slice()).ok()?;
            (JwtAlgorithm::EdDSA, KeyMaterial::Ed25519(x))
        }
        _ => return None,
    };
    // A key that declares an algorithm is used with that algorithm only.
    if jwk.alg.as_deref().is_some_and(|a| a != alg.name()) {
        return None;
    }
    Some(VerifyKey { alg, key })
}

fn parse_jwks(bytes: &[u8]) -> Result<KeySet, &'static str> {
    let raw: RawJwks =
        serde_json::from_slice(bytes).map_err(|_| "not a json object with a `keys` array")?;
    let mut set = KeySet::default();
    for value in raw.keys {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
            continue;
        };
        let Some(key) = verify_key(&jwk) else {
            continue;
        };
        match jwk.kid {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.unnamed.push(key),
        }
    }
    if set.len() == 0 {
        return Err("no usable signing key (RSA >= 2048 bits, P-256 or Ed25519)");
    }
    Ok(set)
}

fn url_allowed(url: &jwks_http::Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url.host_str().is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

enum Fetcher {
    File(PathBuf),
    Url(jwks_http::Client, jwks_http::Url),
    Inline,
}

impl Fetcher {
    async fn fetch(&self) -> Result<Option<KeySet>, AuthnError> {
        let bytes = match self {
            Fetcher::Inline => return Ok(None),
            // Rate-limited to one read per interval, so a blocking read of a small file is
            // cheaper than a thread hop.
            Fetcher::File(path) => std::fs::read(path)
                .map_err(|_| AuthnError::Unavailable("cannot read the jwks file"))?,
            Fetcher::Url(client, url) => {
                let unavailable = |_| AuthnError::Unavailable("jwks fetch failed");
                let mut resp = client.get(url.clone()).send().await.map_err(unavailable)?;
                if !resp.status().is_success() {
                    return Err(AuthnError::Unavailable("jwks endpoint answered an error"));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(AuthnError::Unavailable("jwks document too large"));
                    }
                    body.extend_from_slice(&chunk);
                }
                body
            }
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(AuthnError::Unavailable("jwks document too large"));
        }
        parse_jwks(&bytes)
            .map(Some)
            .map_err(|_| AuthnError::Unavailable("jwks document unusable"))
    }
}

/// When the JWKS was last fetched, and whether that failed: until the next attempt is allowed,
/// an unknown `kid` is reported as the JWKS being unavailable, not as an unknown key.
#[derive(Default)]
struct LastFetch {
    at: Option<Instant>,
    failed: bool,
}

/// A verified token, remembered until its `exp`.
struct Cached {
    identity: Identity,
    exp: i64,
}

struct Inner {
    issuer: String,
    audience: String,
    host_claim: HostClaim,
    max_token_bytes: usize,
    refetch_interval: Duration,
    max_key_age: Duration,
    cache_capacity: usize,
    algorithms: Vec<JwtAlgorithm>,
    leeway: i64,
    keys: ArcSwap<KeySet>,
    /// Bumped after every successful key-set replacement; a waiter that sees it change knows
    /// another task refetched for it.
    generation: AtomicU64,
    /// Single flight: the last fetch attempt, behind an async mutex so that concurrent misses
    /// wait for one fetch instead of starting their own.
    last_fetch: tokio::sync::Mutex<LastFetch>,
    fetcher: Fetcher,
    fetches: AtomicU64,
    verifications: AtomicU64,
    cache: DashMap<[u8; 32], Cached>,
}

/// Verifies JWT bearer tokens (OAuth 2.1 resource server, RFC 9068 access tokens).
///
/// Reads [`Credentials::bearer`](crate::Credentials::bearer); returns an [`Identity`] whose host
/// is the configured [`HostClaim`], whose subject is `sub`, whose scopes are the token's
/// `scope` (space-separated) and `scp` (string or array) claims, whose expiry is `exp`, and whose
/// method is [`AuthMethod::Bearer`]. Cloning shares the key set and the cache.
///
/// ```no_run
/// use mcp_security::authn::{Authenticator, JwksSource, JwtAuthenticator, JwtConfig};
/// use mcp_security::{Credentials, RequestContext, Transport};
///
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let jwt = JwtAuthenticator::new(JwtConfig::new(
///     "https://auth.example.com",
///     "https://mcp.example.com/mcp",
///     JwksSource::Url("https://auth.example.com/.well-known/jwks.json".into()),
/// ))?;
/// let cx = RequestContext::new(Transport::Http).with_credentials(Credentials::bearer(token));
/// let who = jwt.authenticate(&cx).await?;
/// println!("{} may use {:?}", who.host(), who.scopes().collect::<Vec<_>>());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtAuthenticator(Arc<Inner>);

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.0.issuer)
            .field("audience", &self.0.audience)
            .field("keys", &self.0.keys.load().len())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims read from a token whose signature has verified. The required ones are optional
/// here so that their absence is reported as [`AuthnError::MissingClaim`], not as malformed.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    /// NumericDate: a JSON number, possibly with a fraction.
    exp: Option<f64>,
    nbf: Option<f64>,
    sub: Option<String>,
    azp: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    scp: Option<ScopeList>,
}

/// Seconds since the epoch, rounded down; saturating for absurd values.
#[expect(
    clippy::cast_possible_truncation,
    reason = "a saturating float-to-int cast is the intent"
)]
fn numeric_date(v: f64) -> i64 {
    v.floor() as i64
}

impl JwtAuthenticator {
    /// Checks `config` and, for [`JwksSource::File`] and [`JwksSource::Inline`], loads the keys.
    /// A URL is fetched on first use (or by [`refresh_keys`](Self::refresh_keys)).
    ///
    /// # Errors
    /// A [`JwtConfigError`] for every setting that cannot work: nothing is silently ignored.
    pub fn new(config: JwtConfig) -> Result<Self, JwtConfigError> {
        if config.issuer.is_empty() {
            return Err(JwtConfigError::Empty("issuer"));
        }
        if config.audience.is_empty() {
            return Err(JwtConfigError::Empty("audience"));
        }
        if config.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::Leeway);
        }
        if config.max_token_bytes == 0 {
            return Err(JwtConfigError::Zero("max token bytes"));
        }
        if config.cache_capacity == 0 {
            return Err(JwtConfigError::Zero("cache capacity"));
        }
        if config.algorithms.is_empty() {
            return Err(JwtConfigError::Algorithms);
        }
        let leeway = i64::try_from(config.leeway.as_secs()).map_err(|_| JwtConfigError::Leeway)?;
        let (fetcher, keys) = match &config.source {
            JwksSource::File(path) => {
                let bytes =
                    std::fs::read(path).map_err(|e| JwtConfigError::Read(e.kind().to_string()))?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(JwtConfigError::Jwks("document larger than 1 MiB"));
                }
                let set = parse_jwks(&bytes).map_err(JwtConfigError::Jwks)?;
                (Fetcher::File(path.clone()), set)
            }
            JwksSource::Inline(doc) => (
                Fetcher::Inline,
                parse_jwks(doc.as_bytes()).map_err(JwtConfigError::Jwks)?,
            ),
            JwksSource::Url(url) => {
                let url = jwks_http::Url::parse(url).map_err(|_| JwtConfigError::Url)?;
                if !url_allowed(&url) {
                    return Err(JwtConfigError::Url);
                }
                let client = jwks_http::Client::builder()
                    .timeout(config.fetch_timeout)
                    .redirect(jwks_http::redirect::Policy::none())
                    .https_only(url.scheme() == "https")
                    .build()
                    .map_err(|_| JwtConfigError::Client)?;
                (Fetcher::Url(client, url), KeySet::default())
            }
        };
        Ok(JwtAuthenticator(Arc::new(Inner {
            issuer: config.issuer,
            audience: config.audience,
            host_claim: config.host_claim,
            max_token_bytes: config.max_token_bytes,
            refetch_interval: config.refetch_interval,
            max_key_age: config.max_key_age,
            cache_capacity: config.cache_capacity,
            algorithms: config.algorithms,
            leeway,
            keys: ArcSwap::from_pointee(keys),
            generation: AtomicU64::new(0),
            last_fetch: tokio::sync::Mutex::new(LastFetch::default()),
            fetcher,
            fetches: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
            cache: DashMap::new(),
        })))
    }

    /// Fetches the key set now (ignoring the refetch interval), as a warm-up at startup.
    /// Returns how many usable keys the set holds.
    ///
    /// # Errors
    /// [`AuthnError::Unavailable`] when the JWKS cannot be fetched or holds no usable key; the
    /// previous keys stay in use.
    pub async fn refresh_keys(&self) -> Result<usize, AuthnError> {
        let mut last = self.0.last_fetch.lock().await;
        last.at = Some(Instant::now());
        let fetched = self.fetch_and_store().await;
        last.failed = fetched.is_err();
        fetched?;
        Ok(self.0.keys.load().len())
    }

    /// How many times the JWKS has been fetched or re-read since construction.
    pub fn jwks_fetches(&self) -> u64 {
        self.0.fetches.load(Ordering::Relaxed)
    }

    /// How many signatures have been verified (tokens not answered from the cache).
    pub fn signature_verifications(&self) -> u64 {
        self.0.verifications.load(Ordering::Relaxed)
    }

    /// How many verified tokens the cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.0.cache.len()
    }

    /// The resource URI tokens must name in `aud`.
    pub fn audience(&self) -> &str {
        &self.0.audience
    }

    /// The issuer tokens must name in `iss`.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    async fn fetch_and_store(&self) -> Result<(), AuthnError> {
        let inner = &self.0;
        if matches!(inner.fetcher, Fetcher::Inline) {
            return Ok(());
        }
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let Some(set) = inner.fetcher.fetch().await? else {
            return Ok(());
        };
        let old = inner.keys.swap(Arc::new(set));
        let new = inner.keys.load();
        // Tokens verified with a key that is gone must be verified again (and fail).
        if old.by_kid.keys().any(|k| !new.by_kid.contains_key(k)) || !old.unnamed.is_empty() {
            inner.cache.clear();
        }
        inner.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Refetches once per interval; concurrent callers share the fetch.
    async fn refetch(&self, seen_generation: u64) -> Result<(), AuthnError> {
        let inner = &self.0;
        let mut last = inner.last_fetch.lock().await;
        if inner.generation.load(Ordering::Acquire) != seen_generation {
            return Ok(());
        }
        if last
            .at
            .is_some_and(|t| t.elapsed() < inner.refetch_interval)
        {
            return if last.failed {
                Err(AuthnError::Unavailable("jwks fetch failed"))
            } else {
                Ok(())
            };
        }
        last.at = Some(Instant::now());
        let fetched = self.fetch_and_store().await;
        last.failed = fetched.is_err();
        fetched
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<VerifyKey, AuthnError> {
        let inner = &self.0;
        if matches!(inner.fetcher, Fetcher::Inline) {
            return inner
                .keys
                .load()
                .find(kid)
                .cloned()
                .ok_or(AuthnError::UnknownKey);
        }
        let mut generation = inner.generation.load(Ordering::Acquire);
        if inner.keys.load().loaded.elapsed() > inner.max_key_age {
            // A key the issuer withdrew must stop verifying even if no unknown kid ever shows
            // up. A failed refresh leaves the old keys serving: an identity provider's outage
            // should not refuse tokens signed with keys we already hold.
            let _ = self.refetch(generation).await;
            generation = inner.generation.load(Ordering::Acquire);
        }
        if let Some(k) = inner.keys.load().find(kid) {
            return Ok(k.clone());
        }
        self.refetch(generation).await?;
        self.0
            .keys
            .load()
            .find(kid)
            .cloned()
            .ok_or(AuthnError::UnknownKey)
    }

    fn cache_get(&self, hash: &[u8; 32], now: i64) -> Option<Identity> {
        let cache = &self.0.cache;
        if let Some(hit) = cache.get(hash) {
            if hit.exp > now {
                return Some(hit.identity.clone());
            }
        } else {
            return None;
        }
        // Expired: drop it (the read guard is released above, so this cannot deadlock).
        cache.remove_if(hash, |_, c| c.exp <= now);
        None
    }

    fn cache_put(&self, hash: [u8; 32], identity: &Identity, exp: i64, now: i64) {
        let cache = &self.0.cache;
        if cache.len() >= self.0.cache_capacity {
            cache.retain(|_, c| c.exp > now);
            if cache.len() >= self.0.cache_capacity {
                // Full of live tokens: verify the newcomer each time rather than grow.
                return;
            }
        }
        cache.insert(
            hash,
            Cached {
                identity: identity.clone(),
                exp,
            },
        );
    }

    async fn verify(&self, token: &str) -> Result<Identity, AuthnError> {
        let inner = &self.0;
        if token.len() > inner.max_token_bytes {
            return Err(AuthnError::TooLarge);
        }
        let hash = cache_key(token);
        let now = now_secs();
        if let Some(id) = self.cache_get(&hash, now) {
            return Ok(id);
        }

        // header.payload.signature, exactly three segments.
        let mut parts = token.splitn(3, '.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthnError::Malformed);
        };
        if signature_b64.contains('.') {
            return Err(AuthnError::Malformed);
        }
        let malformed = |_| AuthnError::Malformed;
        let header: Header =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).map_err(malformed)?)
                .map_err(|_| AuthnError::Malformed)?;
        if header.crit.is_some() {
            // RFC 7515 4.1.11: extensions we do not understand must be refused.
            return Err(AuthnError::Malformed);
        }
        let alg = JwtAlgorithm::from_name(&header.alg)
            .filter(|a| inner.algorithms.contains(a))
            .ok_or(AuthnError::AlgorithmNotAllowed)?;
        let key = self.key_for(header.kid.as_deref()).await?;
        if key.alg != alg {
            return Err(AuthnError::AlgorithmNotAllowed);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(malformed)?;
        inner.verifications.fetch_add(1, Ordering::Relaxed);
        // The signed message is the token up to the last dot, as sent.
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify(message.as_bytes(), &signature) {
            return Err(AuthnError::BadSignature);
        }

        // Only now is the payload worth reading.
        let claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).map_err(malformed)?)
                .map_err(|_| AuthnError::Malformed)?;
        let exp = numeric_date(claims.exp.ok_or(AuthnError::MissingClaim("exp"))?);
        let iss = claims
            .iss
            .as_deref()
            .ok_or(AuthnError::MissingClaim("iss"))?;
        let aud = claims.aud.as_ref().ok_or(AuthnError::MissingClaim("aud"))?;
        if now >= exp.saturating_add(inner.leeway) {
            return Err(AuthnError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| numeric_date(nbf) > now.saturating_add(inner.leeway))
        {
            return Err(AuthnError::NotYetValid);
        }
        if iss != inner.issuer {
            return Err(AuthnError::WrongIssuer);
        }
        let for_us = match aud {
            Audience::One(a) => *a == inner.audience,
            Audience::Many(list) => list.iter().any(|a| *a == inner.audience),
        };
        if !for_us {
            return Err(AuthnError::WrongAudience);
        }

        let host = match inner.host_claim {
            HostClaim::Subject => claims.sub.as_deref(),
            HostClaim::AuthorizedParty => claims.azp.as_deref(),
            HostClaim::ClientId => claims.client_id.as_deref(),
        }
        .filter(|h| !h.is_empty())
        .ok_or(AuthnError::MissingClaim(inner.host_claim.name()))?;
        let mut scopes: Vec<&str> = Vec::new();
        if let Some(s) = &claims.scope {
            scopes.extend(s.split(' ').filter(|s| !s.is_empty()));
        }
        match &claims.scp {
            Some(ScopeList::One(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(ScopeList::Many(v)) => scopes.extend(v.iter().map(String::as_str)),
            None => {}
        }
        let mut identity = Identity::new(host)
            .with_scopes(scopes)
            .with_method(AuthMethod::Bearer);
        if let Some(sub) = claims.sub.as_deref() {
            identity = identity.with_subject(sub);
        }
        if let Some(at) = chrono::DateTime::from_timestamp(exp, 0) {
            identity = identity.with_expires(at);
        }
        // Cached until exp itself (not exp + leeway): the cache never extends a token's life.
        self.cache_put(hash, &identity, exp, now);
        Ok(identity)
    }
}

/// The cache key: SHA-256 of the whole token (the `sha2` crate measured faster than ring's on
/// tokens of a few hundred bytes; both use the CPU's SHA extensions).
fn cache_key(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        let token = cx
            .credentials()
            .bearer_secret()
            .ok_or(AuthnError::Missing)?;
        self.verify(token.expose()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_parsing_skips_unusable_keys_and_never_panics() {
        // A short Ed25519 x, an HMAC key, an
        // encryption key, a P-384 key: all skipped, so the set is empty.
        let doc = r#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"},
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"OKP","crv":"Ed25519","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"EC","crv":"P-384","x":"AA","y":"AA"},
            {"kty":"RSA","n":"AQAB","e":"AQAB"}
        ]}"#;
        assert!(parse_jwks(doc.as_bytes()).is_err());
        let ok = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let set = parse_jwks(ok.as_bytes()).unwrap_or_default();
        assert_eq!(set.len(), 1);
        assert!(
            set.find(Some("k"))
                .is_some_and(|k| k.alg == JwtAlgorithm::EdDSA)
        );
        assert!(set.find(None).is_some());
        // A key declaring another algorithm than its type allows is skipped.
        let mismatched = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"RS256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        assert!(parse_jwks(mismatched.as_bytes()).is_err());
    }

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |u: &str| jwks_http::Url::parse(u).is_ok_and(|u| url_allowed(&u));
        assert!(ok("https://auth.example.com/jwks"));
        assert!(ok("http://127.0.0.1:8080/jwks"));
        assert!(ok("http://[::1]/jwks"));
        assert!(ok("http://localhost/jwks"));
        assert!(!ok("http://auth.example.com/jwks"));
        assert!(!ok("ftp://127.0.0.1/jwks"));
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => unreachable!("runtime: {e}"),
        }
    }

    fn inline() -> JwtAuthenticator {
        let doc = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        JwtAuthenticator::new(JwtConfig::new(
            "https://issuer.test",
            "https://aud.test",
            JwksSource::Inline(doc.into()),
        ))
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    proptest::proptest! {
        #[test]
        fn jwks_parser_never_panics(doc in ".{0,400}") {
            let _ = parse_jwks(doc.as_bytes());
        }

        /// Arbitrary text, and arbitrary JSON headers and payloads in the JWT shape, are refused
        /// without a panic and without reaching the cache.
        #[test]
        fn any_token_is_refused_without_panic(
            raw in ".{0,300}",
            header in "\\{(\"(alg|kid|crit|typ)\":(\"[A-Za-z0-9]{0,6}\"|[0-9]{1,3}|null|\\[\\]),?){0,4}\\}",
            payload in "[ -~]{0,200}",
            sig in "[A-Za-z0-9_-]{0,90}",
        ) {
            let auth = inline();
            proptest::prop_assert!(block_on(auth.verify(&raw)).is_err());
            let shaped = format!(
                "{}.{}.{sig}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            proptest::prop_assert!(block_on(auth.verify(&shaped)).is_err());
            proptest::prop_assert_eq!(auth.cached_tokens(), 0);
        }
    }
}

//! Who asks, from where, and when: [`RequestContext`], [`Credentials`] and [`Identity`].
//!
//! A transport adapter fills a [`RequestContext`] for every inbound message. The
//! [`Authenticator`](crate::authn::Authenticator) turns the presented [`Credentials`] into an
//! [`Identity`], which is the proof that authentication succeeded: the rest of the pipeline, and
//! the wrapped handler, only ever see an `Identity`, never a bare flag.
//!
//! ```
//! use mcp_security::{Credentials, RequestContext, Transport};
//!
//! let cx = RequestContext::new(Transport::Stdio)
//!     .with_credentials(Credentials::api_key("demo-key"))
//!     .with_peer_addr("127.0.0.1".parse()?);
//! assert_eq!(cx.transport(), Transport::Stdio);
//! // Secrets never print.
//! assert!(!format!("{cx:?}").contains("demo-key"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// Newline-delimited JSON on a child process's stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// An in-process pipe (tests, embedded clients).
    InProcess,
    /// A dry run from the command line (`mcp-security check`).
    DryRun,
}

impl Transport {
    /// The stable lowercase name used in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::InProcess => "in_process",
            Transport::DryRun => "dry_run",
        }
    }
}

/// A secret value (an API key, a bearer token).
///
/// `Debug` and `Display` never show the value; [`Secret::expose`] is the one way to read it, so
/// every read can be found with grep. Cloning is a reference-count increment.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Never log or echo it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What the caller presented to prove who it is.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    api_key: Option<Secret>,
    bearer: Option<Secret>,
    client_certificate: Option<Arc<[u8]>>,
}

impl Credentials {
    /// No credentials at all.
    pub fn none() -> Self {
        Credentials::default()
    }

    /// An API key (header `X-API-Key`, or an environment variable over stdio).
    pub fn api_key(key: impl Into<Arc<str>>) -> Self {
        Credentials {
            api_key: Some(Secret::new(key)),
            ..Credentials::default()
        }
    }

    /// A bearer token (`Authorization: Bearer ...`).
    pub fn bearer(token: impl Into<Arc<str>>) -> Self {
        Credentials {
            bearer: Some(Secret::new(token)),
            ..Credentials::default()
        }
    }

    /// The DER certificate a TLS client presented and the TLS stack verified (mTLS). Set it only
    /// from a completed handshake whose verifier required and checked client certificates (for
    /// example `tls::server_config`, feature `tls`): the certificate authenticator trusts that
    /// the chain was verified.
    pub fn client_certificate(der: impl Into<Arc<[u8]>>) -> Self {
        Credentials::none().with_client_certificate(der)
    }

    /// Adds the verified client certificate to other credentials (a bearer token over mTLS).
    pub fn with_client_certificate(mut self, der: impl Into<Arc<[u8]>>) -> Self {
        self.client_certificate = Some(der.into());
        self
    }

    /// The verified client certificate (DER), if the transport had one.
    pub fn client_certificate_der(&self) -> Option<&[u8]> {
        self.client_certificate.as_deref()
    }

    /// Reads an API key from the environment variable `var`, as the MCP specification asks of
    /// stdio servers ("retrieve credentials from the environment"). An unset or empty variable
    /// gives no credentials, which the authenticator then refuses.
    pub fn from_env(var: &str) -> Self {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Credentials::api_key(v),
            _ => Credentials::none(),
        }
    }

    /// The presented API key, if any.
    pub fn api_key_secret(&self) -> Option<&Secret> {
        self.api_key.as_ref()
    }

    /// The presented bearer token, if any.
    pub fn bearer_secret(&self) -> Option<&Secret> {
        self.bearer.as_ref()
    }

    /// Whether nothing was presented.
    pub fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.bearer.is_none() && self.client_certificate.is_none()
    }
}

/// The JSON-RPC id of a request, used to correlate audit records with the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CorrelationId {
    /// A notification, or a request whose id is not known.
    #[default]
    None,
    /// A numeric id.
    Number(i64),
    /// A string id.
    Text(Arc<str>),
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorrelationId::None => Ok(()),
            CorrelationId::Number(n) => write!(f, "{n}"),
            CorrelationId::Text(s) => f.write_str(s),
        }
    }
}

/// Everything the pipeline knows about one inbound message besides the message itself.
#[derive(Debug, Clone)]
pub struct RequestContext {
    transport: Transport,
    peer_addr: Option<IpAddr>,
    credentials: Credentials,
    received_at: DateTime<Utc>,
    correlation_id: CorrelationId,
    session_id: Option<Arc<str>>,
    /// The caller, when a transport layer of this crate authenticated it already (the HTTP
    /// layer). Only crate code can set it, so a peer cannot.
    verified: Option<Identity>,
    user_agent: Option<Arc<str>>,
}

impl RequestContext {
    /// A context for a message received now on `transport`, with no credentials.
    pub fn new(transport: Transport) -> Self {
        RequestContext {
            transport,
            peer_addr: None,
            credentials: Credentials::none(),
            received_at: Utc::now(),
            correlation_id: CorrelationId::None,
            session_id: None,
            verified: None,
            user_agent: None,
        }
    }

    /// Marks the caller as already authenticated by a transport layer of this crate: the
    /// pipeline's authentication stage takes this identity instead of running the
    /// authenticator again.
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "set only by the HTTP adapter")
    )]
    pub(crate) fn with_verified_identity(mut self, identity: Identity) -> Self {
        self.verified = Some(identity);
        self
    }

    /// The identity a transport layer of this crate already authenticated, if any.
    pub(crate) fn verified_identity(&self) -> Option<&Identity> {
        self.verified.as_ref()
    }

    /// Sets the peer's `User-Agent` (HTTP), for the audit record.
    pub fn with_user_agent(mut self, agent: impl Into<Arc<str>>) -> Self {
        self.user_agent = Some(agent.into());
        self
    }

    /// The peer's `User-Agent`, if the transport has one.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Sets the peer's network address (HTTP); conditions on CIDRs use it.
    pub fn with_peer_addr(mut self, addr: IpAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// Sets the presented credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets when the message was received (dry runs evaluate a policy at a given time).
    pub fn with_received_at(mut self, at: DateTime<Utc>) -> Self {
        self.received_at = at;
        self
    }

    /// Sets the JSON-RPC id.
    pub fn with_correlation_id(mut self, id: CorrelationId) -> Self {
        self.correlation_id = id;
        self
    }

    /// Sets the transport session id (`Mcp-Session-Id`).
    pub fn with_session_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<IpAddr> {
        self.peer_addr
    }

    /// The presented credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// When the message was received.
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }

    /// The JSON-RPC id.
    pub fn correlation_id(&self) -> &CorrelationId {
        &self.correlation_id
    }

    /// The transport session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

/// How an [`Identity`] was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key matched a stored hash.
    ApiKey,
    /// A bearer token was verified.
    Bearer,
    /// The layer was built with `allow_anonymous()` and nothing was presented.
    Anonymous,
    /// Asserted by the operator (dry runs, tests): no credential was checked.
    Asserted,
    /// A custom authenticator.
    Custom,
    /// A client certificate verified by the TLS handshake (mTLS).
    ClientCertificate,
}

impl AuthMethod {
    /// The stable lowercase name used in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Bearer => "bearer",
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Asserted => "asserted",
            AuthMethod::Custom => "custom",
            AuthMethod::ClientCertificate => "mtls",
        }
    }
}

#[derive(Debug, Clone)]
struct IdentityInner {
    host: Arc<str>,
    subject: Arc<str>,
    scopes: Vec<Arc<str>>,
    expires: Option<DateTime<Utc>>,
    attributes: BTreeMap<String, String>,
    method: AuthMethod,
}

/// An authenticated caller: the proof an [`Authenticator`](crate::authn::Authenticator) returns.
///
/// `host` is the MCP client application (the policy's `allowed_hosts` name hosts); `subject`
/// is the user or service acting through it (the same as `host` for API keys). Cloning is a
/// reference-count increment, so the layer can hand the identity to the wrapped handler for free.
///
/// ```
/// use mcp_security::Identity;
///
/// let id = Identity::new("analytics-bot").with_scopes(["tools:read"]);
/// assert_eq!(id.host(), "analytics-bot");
/// assert!(id.has_scope("tools:read"));
/// ```
#[derive(Debug, Clone)]
pub struct Identity(Arc<IdentityInner>);

impl Identity {
    /// An identity for `host`, with the host as subject, established by [`AuthMethod::Custom`].
    pub fn new(host: impl Into<Arc<str>>) -> Self {
        let host = host.into();
        Identity(Arc::new(IdentityInner {
            subject: host.clone(),
            host,
            scopes: Vec::new(),
            expires: None,
            attributes: BTreeMap::new(),
            method: AuthMethod::Custom,
        }))
    }

    /// The anonymous identity (host and subject `anonymous`).
    pub fn anonymous() -> Self {
        Identity::new("anonymous").with_method(AuthMethod::Anonymous)
    }

    fn inner_mut(&mut self) -> &mut IdentityInner {
        // Builders run before the identity is shared, so this clones only when a builder is
        // called on an identity that is already shared.
        Arc::make_mut(&mut self.0)
    }

    /// Sets the subject (the user behind the host).
    pub fn with_subject(mut self, subject: impl Into<Arc<str>>) -> Self {
        self.inner_mut().subject = subject.into();
        self
    }

    /// Sets the granted scopes.
    pub fn with_scopes<S: Into<Arc<str>>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.inner_mut().scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets when the credential behind this identity expires.
    pub fn with_expires(mut self, at: DateTime<Utc>) -> Self {
        self.inner_mut().expires = Some(at);
        self
    }

    /// Adds a free-form attribute (tenant, team, ...).
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner_mut().attributes.insert(key.into(), value.into());
        self
    }

    /// Sets how the identity was established.
    pub fn with_method(mut self, method: AuthMethod) -> Self {
        self.inner_mut().method = method;
        self
    }

    /// The client application.
    pub fn host(&self) -> &str {
        &self.0.host
    }

    /// The user or service.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The subject as a shared string: a cheap key for per-caller state such as rate limits.
    pub fn subject_shared(&self) -> &Arc<str> {
        &self.0.subject
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scopes.iter().map(|s| &**s)
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| &**s == scope)
    }

    /// When the credential expires, if it does.
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        self.0.expires
    }

    /// A free-form attribute.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.0.attributes.get(key).map(String::as_str)
    }

    /// How the identity was established.
    pub fn method(&self) -> AuthMethod {
        self.0.method
    }
}

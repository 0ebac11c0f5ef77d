//! [`HttpConfig`]: what the HTTP layer enforces, from the policy's `[http]` table or in code.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// The hosts accepted when none are configured: loopback only, so a page on another site cannot
/// reach a local server by rebinding its own name to 127.0.0.1 (DNS rebinding).
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The largest request body accepted when none is configured, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The longest `Authorization` header accepted when none is configured, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many session bindings are remembered when no bound is configured.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// An [`HttpConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The MCP endpoint path does not start with `/`, or has a query or fragment.
    #[error("path must start with `/` and have no query or fragment")]
    Path,
    /// The resource is not an absolute `http` or `https` URI without a fragment.
    #[error("resource must be an absolute http or https URI without a fragment")]
    Resource,
    /// An authorization server is not an absolute `https` URI (`http` only on loopback).
    #[error("authorization servers must be absolute https URIs (http only for loopback)")]
    AuthorizationServer,
    /// An allowed host is empty or has characters a host cannot have.
    #[error("allowed hosts must be host names or IP addresses, with an optional port")]
    Host,
    /// An allowed origin is not `scheme://host[:port]` or `null`.
    #[error("allowed origins must be scheme://host[:port] (port may be *), or null")]
    Origin,
    /// A size limit is zero.
    #[error("size limits must be greater than zero")]
    Limit,
    /// A scope is empty or has a character a scope token cannot have (RFC 6749 section 3.3).
    #[error(
        "scopes must be non-empty and use printable ascii without spaces, quotes or backslashes"
    )]
    Scope,
    /// The anonymous identity has no name.
    #[error("the anonymous identity needs a host name")]
    AnonymousHost,
}

/// Callers that present no credentials and connect from one of `from` become the identity
/// `host`: anonymous access asked for by name and limited to networks, never implied.
#[derive(Debug, Clone)]
pub struct AnonymousAccess {
    pub(crate) host: Arc<str>,
    pub(crate) from: Vec<IpNet>,
    pub(crate) scopes: Vec<Arc<str>>,
}

impl AnonymousAccess {
    /// Callers presenting nothing from `from` become the identity `host`.
    ///
    /// # Errors
    /// [`HttpConfigError::AnonymousHost`] when `host` is empty.
    pub fn new(
        host: impl Into<Arc<str>>,
        from: impl IntoIterator<Item = IpNet>,
    ) -> Result<Self, HttpConfigError> {
        let host = host.into();
        if host.trim().is_empty() {
            return Err(HttpConfigError::AnonymousHost);
        }
        Ok(AnonymousAccess {
            host,
            from: from.into_iter().collect(),
            scopes: Vec::new(),
        })
    }

    /// Scopes the anonymous identity holds.
    ///
    /// # Errors
    /// [`HttpConfigError::Scope`] for a scope that is not a scope token.
    pub fn with_scopes<S: AsRef<str>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        self.scopes = checked_scopes(scopes)?;
        Ok(self)
    }

    /// Whether a caller at `addr` may be anonymous. No address (the server was not told the
    /// peer's) is refused: fail closed.
    pub(crate) fn admits(&self, addr: Option<IpAddr>) -> bool {
        addr.map(|a| a.to_canonical())
            .is_some_and(|a| self.from.iter().any(|n| n.contains(&a)))
    }
}

/// What the HTTP layer enforces. Build it in code, or read it from the policy's `[http]` table
/// ([`Policy::http`](crate::policy::Policy::http)).
///
/// ```
/// use mcp_security::adapters::http::HttpConfig;
///
/// let config = HttpConfig::new()
///     .with_resource("https://mcp.example.com/mcp")?
///     .with_authorization_servers(["https://auth.example.com"])?
///     .with_required_scopes(["mcp:tools"])?
///     .with_allowed_hosts(["mcp.example.com"])?;
/// assert_eq!(
///     config.metadata_url().as_deref(),
///     Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
/// );
/// # Ok::<(), mcp_security::adapters::http::HttpConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub(crate) path: String,
    pub(crate) resource: Option<String>,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) scopes_supported: Vec<Arc<str>>,
    pub(crate) required_scopes: Vec<Arc<str>>,
    pub(crate) allowed_hosts: Vec<HostPattern>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_token_bytes: usize,
    pub(crate) max_sessions: usize,
    pub(crate) anonymous: Option<AnonymousAccess>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig::new()
    }
}

/// One allowed `Host`: a lowercase host (IPv6 in brackets) and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPattern {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

impl HostPattern {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (host, port) = split_authority(s)?;
        Some(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    pub(crate) fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && (self.port.is_none() || self.port == port)
    }
}

/// Splits `host[:port]` (IPv6 as `[addr][:port]`, or a bare IPv6 address) into a host, IPv6
/// kept in brackets, and a port. `None` when it is not an authority a `Host` header can carry.
pub(crate) fn split_authority(s: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    if s.is_empty() || s.len() > 255 {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        // `[addr]` as written, borrowed: this runs on every request's `Host`.
        return Some((Cow::Borrowed(&s[..addr.len() + 2]), port));
    }
    // A bare IPv6 address (as written in a configuration file): no port possible. It has two
    // colons or more; a `host:port` has one, and is not parsed as an address for nothing.
    if s.bytes().filter(|&b| b == b':').nth(1).is_some() && s.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return Some((Cow::Owned(format!("[{s}]")), None));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (s, None),
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    valid.then_some((Cow::Borrowed(host), port))
}

fn checked_scopes<S: AsRef<str>>(
    scopes: impl IntoIterator<Item = S>,
) -> Result<Vec<Arc<str>>, HttpConfigError> {
    scopes
        .into_iter()
        .map(|s| {
            let s = s.as_ref();
            // scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): no space, `"` or `\`.
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
            if ok {
                Ok(Arc::from(s))
            } else {
                Err(HttpConfigError::Scope)
            }
        })
        .collect()
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// `scheme://authority/path` split into its parts; `None` unless absolute http(s).
fn split_uri(uri: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    split_authority(authority)?;
    Some((scheme, authority, path))
}

impl HttpConfig {
    /// The defaults: endpoint `/mcp`, loopback hosts only, Origins on those hosts only, 1 MiB
    /// bodies, 8 KiB tokens, 10,000 sessions, no anonymous access, no scopes required.
    pub fn new() -> Self {
        HttpConfig {
            path: "/mcp".to_owned(),
            resource: None,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            required_scopes: Vec::new(),
            allowed_hosts: LOOPBACK_HOSTS
                .iter()
                .filter_map(|h| HostPattern::parse(h))
                .collect(),
            allowed_origins: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_sessions: DEFAULT_MAX_SESSIONS,
            anonymous: None,
        }
    }

    /// The path the MCP endpoint is served at (default `/mcp`); other paths answer 404, except
    /// the protected resource metadata.
    ///
    /// # Errors
    /// [`HttpConfigError::Path`] unless it starts with `/` and has no query or fragment.
    pub fn with_path(mut self, path: impl Into<String>) -> Result<Self, HttpConfigError> {
        let path = path.into();
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(HttpConfigError::Path);
        }
        self.path = path;
        Ok(self)
    }

    /// The server's canonical URI (RFC 8707; the JWT audience): the `resource` of the metadata
    /// document, and where the metadata URL in challenges points.
    ///
    /// # Errors
    /// [`HttpConfigError::Resource`] unless it is an absolute `http`/`https` URI without a
    /// fragment.
    pub fn with_resource(mut self, uri: impl Into<String>) -> Result<Self, HttpConfigError> {
        let uri = uri.into();
        if uri.contains('#') || split_uri(&uri).is_none() {
            return Err(HttpConfigError::Resource);
        }
        self.resource = Some(uri);
        Ok(self)
    }

    /// The OAuth authorization servers that issue tokens for this server (metadata
    /// `authorization_servers`).
    ///
    /// # Errors
    /// [`HttpConfigError::AuthorizationServer`] for one that is not an absolute `https` URI
    /// (`http` is accepted for a loopback host, for local testing).
    pub fn with_authorization_servers<S: Into<String>>(
        mut self,
        servers: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        let mut list = Vec::new();
        for s in servers {
            let s = s.into();
            let (scheme, authority, _) =
                split_uri(&s).ok_or(HttpConfigError::AuthorizationServer)?;
            let host = split_authority(authority)
                .map(|(h, _)| h)
                .unwrap_or_default();
            if !scheme.eq_ignore_ascii_case("https") && !is_loopback_host(&host) {
                return Err(HttpConfigError::AuthorizationServer);
            }
            list.push(s);
        }
        self.authorization_servers = list;
        Ok(self)
    }

    /// The scopes advertised in the metadata document (`scopes_supported`). Keep it to what a
    /// client needs: the MCP security guidance warns against publishing every scope.
    ///
    /// # Errors
    /// [`HttpConfigError::Scope`] for a scope that is not a scope token.
    pub fn with_scopes_supported<S: AsRef<str>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        self.scopes_supported = checked_scopes(scopes)?;
        Ok(self)
    }

    /// The scopes every request to the endpoint needs: a caller holding fewer gets 403
    /// `insufficient_scope` naming them, and the 401 challenge asks for them.
    ///
    /// # Errors
    /// [`HttpConfigError::Scope`] for a scope that is not a scope token.
    pub fn with_required_scopes<S: AsRef<str>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        self.required_scopes = checked_scopes(scopes)?;
        Ok(self)
    }

    /// The `Host` values accepted (`name` or `name:port`; IPv6 as `[::1]`). Replaces the
    /// loopback default: a server reachable under a public name lists that name.
    ///
    /// # Errors
    /// [`HttpConfigError::Host`] for an entry that is not a host.
    pub fn with_allowed_hosts<S: AsRef<str>>(
        mut self,
        hosts: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        self.allowed_hosts = hosts
            .into_iter()
            .map(|h| HostPattern::parse(h.as_ref()).ok_or(HttpConfigError::Host))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// The browser `Origin`s accepted (`scheme://host[:port]`, `:*` for any port, or `null`).
    /// Without this list, an Origin is accepted when its host is an allowed host. A request with
    /// no `Origin` (not a browser) is never refused for it.
    ///
    /// # Errors
    /// [`HttpConfigError::Origin`] for an entry that is not an origin.
    pub fn with_allowed_origins<S: AsRef<str>>(
        mut self,
        origins: impl IntoIterator<Item = S>,
    ) -> Result<Self, HttpConfigError> {
        let mut list = Vec::new();
        for o in origins {
            let o = o.as_ref();
            let valid = o == "null"
                || o.split_once("://").is_some_and(|(scheme, authority)| {
                    !scheme.is_empty()
                        && scheme
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'+')
                        && split_authority(authority.strip_suffix(":*").unwrap_or(authority))
                            .is_some()
                });
            if !valid {
                return Err(HttpConfigError::Origin);
            }
            list.push(o.to_ascii_lowercase());
        }
        self.allowed_origins = Some(list);
        Ok(self)
    }

    /// The largest request body, in bytes; larger ones get 413.
    ///
    /// # Errors
    /// [`HttpConfigError::Limit`] for zero.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Result<Self, HttpConfigError> {
        self.max_body_bytes = nonzero(bytes)?;
        Ok(self)
    }

    /// The longest `Authorization` header, in bytes; longer ones get 401 without being read.
    ///
    /// # Errors
    /// [`HttpConfigError::Limit`] for zero.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Result<Self, HttpConfigError> {
        self.max_token_bytes = nonzero(bytes)?;
        Ok(self)
    }

    /// How many session-to-identity bindings are kept; beyond it the oldest session is
    /// forgotten, and its next request gets 404 like any unknown session.
    ///
    /// # Errors
    /// [`HttpConfigError::Limit`] for zero.
    pub fn with_max_sessions(mut self, sessions: usize) -> Result<Self, HttpConfigError> {
        self.max_sessions = nonzero(sessions)?;
        Ok(self)
    }

    /// Lets callers that present nothing in through [`AnonymousAccess`].
    pub fn with_anonymous(mut self, anonymous: AnonymousAccess) -> Self {
        self.anonymous = Some(anonymous);
        self
    }

    /// The canonical resource URI, when configured.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Whether every allowed host is a loopback name (the default): a server listening on
    /// another address then refuses requests that name it (403), until its names are listed.
    pub fn allows_only_loopback(&self) -> bool {
        self.allowed_hosts.iter().all(|p| is_loopback_host(&p.host))
    }

    /// The MCP endpoint path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The largest request body accepted, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The URL of the protected resource metadata (RFC 9728 section 3.1: the well-known suffix
    /// goes between the host and the resource's path). `None` without a resource.
    pub fn metadata_url(&self) -> Option<String> {
        let (scheme, authority, path) = split_uri(self.resource.as_deref()?)?;
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = if path == "/" { "" } else { path };
        Some(format!(
            "{scheme}://{authority}{WELL_KNOWN_PRM}{path}",
            scheme = scheme.to_ascii_lowercase()
        ))
    }

    /// The paths the metadata document is served at: the path-suffixed well-known location for
    /// the resource (or the endpoint path) and the root one.
    pub(crate) fn metadata_paths(&self) -> [String; 2] {
        let suffix = self
            .resource
            .as_deref()
            .and_then(split_uri)
            .map(|(_, _, p)| p.split(['?', '#']).next().unwrap_or_default().to_owned())
            .filter(|p| !p.is_empty() && p != "/")
            .unwrap_or_else(|| self.path.clone());
        [
            format!("{WELL_KNOWN_PRM}{suffix}"),
            WELL_KNOWN_PRM.to_owned(),
        ]
    }
}

/// The well-known path of the protected resource metadata (RFC 9728).
pub const WELL_KNOWN_PRM: &str = "/.well-known/oauth-protected-resource";

fn nonzero(n: usize) -> Result<usize, HttpConfigError> {
    if n == 0 {
        Err(HttpConfigError::Limit)
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let owned = |s| split_authority(s).map(|(h, p)| (h.into_owned(), p));
        assert_eq!(
            owned("Example.com:8080"),
            Some(("Example.com".to_owned(), Some(8080)))
        );
        assert_eq!(owned("[::1]:3000"), Some(("[::1]".to_owned(), Some(3000))));
        assert_eq!(owned("[::1]"), Some(("[::1]".to_owned(), None)));
        assert_eq!(owned("::1"), Some(("[::1]".to_owned(), None)));
        assert_eq!(
            owned("127.0.0.1:8080"),
            Some(("127.0.0.1".to_owned(), Some(8080)))
        );
        assert_eq!(split_authority("a:b:c"), None);
        assert_eq!(split_authority("[::1]x"), None);
        assert_eq!(split_authority("evil.com:99999"), None);
        assert_eq!(split_authority("a b"), None);
        assert_eq!(split_authority("[zz]"), None);
        assert_eq!(split_authority(""), None);
    }

    #[test]
    fn metadata_url_and_paths() {
        let c = HttpConfig::new()
            .with_resource("http://127.0.0.1:8080/mcp")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            c.metadata_url().as_deref(),
            Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            c.metadata_paths(),
            [
                "/.well-known/oauth-protected-resource/mcp".to_owned(),
                "/.well-known/oauth-protected-resource".to_owned()
            ]
        );
        assert!(HttpConfig::new().with_resource("ftp://x/y").is_err());
        assert!(HttpConfig::new().with_resource("https://x/y#f").is_err());
        assert!(
            HttpConfig::new()
                .with_authorization_servers(["http://auth.example.com"])
                .is_err()
        );
        assert!(
            HttpConfig::new()
                .with_authorization_servers(["http://127.0.0.1:9000"])
                .is_ok()
        );
        assert!(HttpConfig::new().allows_only_loopback());
        assert!(
            !HttpConfig::new()
                .with_allowed_hosts(["127.0.0.1", "mcp.example.com"])
                .unwrap_or_else(|e| unreachable!("{e}"))
                .allows_only_loopback()
        );
        assert!(HttpConfig::new().with_required_scopes(["a b"]).is_err());
        assert!(HttpConfig::new().with_required_scopes(["a\"b"]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn authorities_never_panic(s in ".{0,300}") {
            if let Some((host, _)) = split_authority(&s) {
                proptest::prop_assert!(!host.is_empty());
            }
        }
    }
}

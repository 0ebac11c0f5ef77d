//! The HTTP layer: a tower `Layer` in front of rmcp's Streamable HTTP service (feature `http`;
//! [`HttpConfig`] is always built, so every build checks a policy's `[http]` table).
//!
//! [`HttpSecurityLayer`] does what only the HTTP side can: `Host` and `Origin` checks (DNS
//! rebinding protection, on by default: loopback hosts only), the RFC 9728 protected resource
//! metadata, bearer authentication with spec-correct `WWW-Authenticate` challenges, required
//! scopes, the binding of each `Mcp-Session-Id` to the identity that opened it, and a body
//! limit. It authenticates with the [`SecurityLayer`](crate::SecurityLayer)'s
//! [`Authenticator`](crate::authn::Authenticator) (an API key presented as a bearer token, or
//! any authenticator reading [`Credentials::bearer_secret`](crate::Credentials::bearer_secret),
//! such as a JWT verifier), removes the `Authorization` header and hands the caller to
//! [`SecureServer`](crate::adapters::rmcp::SecureServer) as an [`Authenticated`] in the request
//! extensions, so authorization, rate limits and audit see the caller of each request.
//!
//! | refusal | status | `WWW-Authenticate` |
//! |---|---|---|
//! | `Host` not allowed, `Origin` not allowed | 403 | |
//! | no credentials | 401 | `Bearer resource_metadata="...", scope="..."` |
//! | credentials refused | 401 | `Bearer resource_metadata="...", error="invalid_token", scope="..."` |
//! | several `Authorization` headers, another scheme, a malformed or oversized token | 400 | `error="invalid_request"` |
//! | a required scope missing | 403 | `Bearer resource_metadata="...", error="insufficient_scope", scope="..."` |
//! | a session id the caller did not open (or unknown) | 404 | |
//! | body over the limit | 413 | |
//! | the authenticator could not run | 503 | |
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()`: the peer address goes to
//! the audit record, to CIDR conditions and API-key address limits, and anonymous access
//! ([`AnonymousAccess`]) needs it (without it, anonymous callers are refused).

#[cfg(feature = "http")]
mod challenge;
#[cfg_attr(
    not(feature = "http"),
    allow(
        dead_code,
        reason = "without the layer, the configuration is only checked"
    )
)]
mod config;
#[cfg(feature = "http")]
mod service;
#[cfg(feature = "http")]
mod sessions;

pub use config::{
    AnonymousAccess, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_TOKEN_BYTES,
    HttpConfig, HttpConfigError, LOOPBACK_HOSTS, WELL_KNOWN_PRM,
};
#[cfg(feature = "http")]
pub(crate) use service::request_context;
#[cfg(feature = "http")]
pub use service::{Authenticated, BoxError, HttpBody, HttpSecurityLayer, HttpSecurityService};

//! Security for Model Context Protocol servers and clients: every request authenticated,
//! authorized, validated, answered, redacted and audited.
//!
//! ```
//! use mcp_security::policy::Policy;
//! use mcp_security::{Action, Credentials, RequestContext, Transport};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let policy = Policy::from_toml_str(&format!(r#"
//!     [[auth.api_keys]]
//!     host = "analytics-bot"
//!     key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" # sha256("test")
//!
//!     [[tools]]
//!     name = "query_database"
//!     allowed_hosts = ["analytics-bot"]
//!
//!     [audit]
//!     path = "{}/audit.jsonl"
//! "#, dir.path().display()))?;
//! let layer = policy.build()?;
//!
//! let cx = RequestContext::new(Transport::Stdio).with_credentials(Credentials::api_key("test"));
//! let query = Action::CallTool { name: "query_database", arguments: None };
//! assert!(layer.evaluate(&query, &cx, None).await.is_ok());
//! let delete = Action::CallTool { name: "delete_all_data", arguments: None };
//! assert!(layer.evaluate(&delete, &cx, None).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The pipeline
//! Every inbound message goes through the same stages in the same order:
//! frame limits, authentication, authorization, rate limits, validation, the handler,
//! redaction, audit.
//! Each stage is a component behind a trait ([`authn::Authenticator`], [`authz::Authorizer`],
//! [`ratelimit::RateLimiter`], [`validate::InputValidator`], [`redact::Redactor`],
//! [`audit::AuditSink`]; hosts also get [`provenance::ProvenanceVerifier`]), composed by
//! [`SecurityLayer`]. Deny by default, fail
//! closed, audit every decision, never echo a secret.
//!
//! # Feature flags
//! | feature | default | what it adds |
//! |---|---|---|
//! | `rmcp` | yes | [`adapters::rmcp::SecureServer`], wrapping any rmcp `ServerHandler` |
//! | `cli` | no | the `mcp-security` command-line tool |
//! | `redis` | no | [`ratelimit::RedisRateLimiter`]: rate limits shared by replicas through Redis |
//! | `schema` | no | [`validate::ToolSchemas`] checks tool arguments against each tool's JSON Schema |
//! | `provenance` | no | ed25519/RSA signatures and keyring, server catalog, OSV dependency scan ([`provenance`]) |
//! | `rmcp-client` | no | `adapters::rmcp::SecureClient`: tool definition pinning on the client side |
//! | `http` | no | [`adapters::http::HttpSecurityLayer`]: the tower layer in front of rmcp's Streamable HTTP service |
//! | `jwt` | no | [`authn::JwtAuthenticator`]: OAuth 2.1 resource server, JWT bearer tokens checked against a JWKS file or URL |
//! | `tls` | no | [`authn::CertificateAuthenticator`] and [`tls`]: mTLS identities, rustls server/client configs |
//! | `tracing` | no | `audit::TracingSink`: one `tracing` event per audit record |
//! | `postgres` | no | `audit::PostgresSink`: audit records in PostgreSQL, hash-chained per writer |
//!
//! # Untrusted input and panics
//! Every parser here ([`Message::parse`], the policy file, URIs, arguments) returns an error
//! for bad input and never panics; error messages name what is wrong and never repeat the
//! request's values.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapters;
pub mod audit;
pub mod authn;
pub mod authz;
mod context;
mod decision;
mod glob;
mod hex;
mod layer;
mod message;
pub mod policy;
pub mod provenance;
pub mod ratelimit;
pub mod redact;
#[cfg(feature = "tls")]
pub mod tls;
mod uripath;
pub mod validate;

pub use context::{
    AuthMethod, CorrelationId, Credentials, Identity, RequestContext, Secret, Transport,
};
pub use decision::{
    Decision, Denial, DenyKind, FORBIDDEN, RATE_LIMITED, RESOURCE_NOT_FOUND, RuleId, Stage,
    UNAUTHENTICATED,
};
pub use layer::{Admission, BuildError, Completion, SecurityLayer, SecurityLayerBuilder};
pub use message::{Action, Envelope, EnvelopeKind, ListKind, Message, MessageError};

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

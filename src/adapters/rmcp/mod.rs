//! The rmcp adapter: [`SecureServer`] wraps any rmcp [`ServerHandler`](::rmcp::ServerHandler).
//!
//! rmcp has no middleware trait, so the wrapper implements every `ServerHandler` method
//! ([`FORWARDED_METHODS`] lists them; a test compares that list with the rmcp source in
//! Cargo.lock). Each request method runs the layer's checks, calls the inner handler with the
//! caller's [`Identity`](crate::Identity) in the request extensions, redacts the result and
//! writes the audit record. Notifications are checked too; a refused notification is dropped
//! (and audited), never forwarded.
//!
//! Errors on the wire:
//! - a hidden or unknown tool or prompt: `-32602` (`tool not found`, as rmcp's own router says);
//!   a hidden resource: `-32002` `resource not found` (rmcp maps it to `-32602` for 2026 peers);
//! - not authenticated: `-31401`; visible but refused: `-31403`; rate limited: `-31429`;
//! - invalid tool arguments: a tool result with `isError: true` naming the argument;
//! - malformed requests and invalid arguments elsewhere: `-32602`;
//! - a security component that could not run (the audit sink, an identity provider): `-32603`.
//!
//! ```no_run
//! use mcp_security::adapters::rmcp::SecureServer;
//! use mcp_security::policy::Policy;
//! use mcp_security::Credentials;
//! use rmcp::{ServerHandler, ServiceExt};
//!
//! #[derive(Clone)]
//! struct MyServer;
//! impl ServerHandler for MyServer {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = Policy::load("policy.toml")?.build()?;
//! // Over stdio the caller's credentials come from the environment, as the MCP spec says.
//! let server = SecureServer::new(MyServer, layer).with_credentials(Credentials::from_env("MCP_API_KEY"));
//! # let transport = (tokio::io::empty(), tokio::io::sink());
//! server.serve(transport).await?.waiting().await?;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "rmcp-client")]
mod client;
mod server;
mod tasks;

#[cfg(feature = "rmcp-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp-client")))]
pub use client::{SecureClient, SecureClientError, ToolList};
pub use server::{FORWARDED_METHODS, SecureServer};

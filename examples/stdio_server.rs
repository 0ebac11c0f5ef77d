//! A secured rmcp server over stdio: the demo server behind `SecureServer`, configured by a
//! policy file, its one caller's API key taken from the environment (`auth.api_key_env`,
//! `MCP_API_KEY` by default), as the MCP specification asks of stdio servers.
//!
//! ```text
//! MCP_API_KEY=demo-http-key-change-me \
//!     cargo run --example stdio_server -- --policy examples/http_policy.toml
//! ```
//!
//! Stdout carries MCP messages and nothing else; diagnostics go to stderr. A caller whose key
//! is missing or wrong gets `-31401` for its `initialize` (and for every request, if it skips
//! the handshake under protocol 2026-07-28).

#[path = "support/demo.rs"]
mod demo;

use std::error::Error;

use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::policy::Policy;
use rmcp::ServiceExt;

const USAGE: &str =
    "usage: stdio_server --policy FILE (the caller's API key in MCP_API_KEY, or auth.api_key_env)";

fn policy_arg() -> Result<String, Box<dyn Error>> {
    let mut policy = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--policy" => policy = it.next(),
            _ => return Err(format!("unknown argument `{a}`\n{USAGE}").into()),
        }
    }
    policy.ok_or_else(|| USAGE.into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let policy = Policy::load(policy_arg()?)?;
    let server = SecureServer::new(demo::DemoServer, policy.build()?)
        .with_credentials(policy.stdio_credentials());
    // A refused `initialize` ends the connection here with an error, after the client has been
    // answered; main's `Err` then goes to stderr, never to stdout.
    server
        .serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}

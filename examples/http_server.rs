//! A secured rmcp server over Streamable HTTP: the demo server behind `SecureServer` and the
//! HTTP layer (bearer authentication, RFC 9728 metadata, Origin/Host checks, session binding,
//! body limit), configured by a policy file.
//!
//! ```text
//! cargo run --example http_server --features http -- --policy examples/http_policy.toml --listen 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp
//! ```

#![allow(clippy::print_stdout, reason = "an example prints where it listens")]

#[path = "support/demo.rs"]
mod demo;
#[path = "support/http.rs"]
mod http;

use std::error::Error;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = http::args("http_server --policy FILE --listen 127.0.0.1:PORT")?;
    http::serve(&args, || demo::DemoServer).await
}

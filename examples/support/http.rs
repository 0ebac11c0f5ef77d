//! Serving an rmcp handler over Streamable HTTP behind the security layers, for the examples:
//! `SecureServer` around the handler, rmcp's `StreamableHttpService`, `HttpSecurityLayer` in
//! front, axum serving it with the peer address.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each example uses a different part"
)]

use std::error::Error;
use std::net::SocketAddr;

use mcp_security::adapters::http::{HttpConfig, HttpSecurityLayer};
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::policy::Policy;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower_layer::Layer;

/// `--policy FILE --listen ADDR` from the command line.
pub struct Args {
    pub policy: String,
    pub listen: SocketAddr,
}

pub fn args(usage: &str) -> Result<Args, Box<dyn Error>> {
    let mut policy = None;
    let mut listen = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--policy" => policy = it.next(),
            "--listen" => listen = it.next(),
            _ => return Err(format!("unknown argument `{a}`\nusage: {usage}").into()),
        }
    }
    let (Some(policy), Some(listen)) = (policy, listen) else {
        return Err(format!("usage: {usage}").into());
    };
    Ok(Args {
        policy,
        listen: listen.parse()?,
    })
}

/// The policy's `[http]` table; the resource defaults to `http://LISTEN/PATH` when the policy
/// has no `[server] resource`.
pub fn http_config(policy: &Policy, listen: SocketAddr) -> Result<HttpConfig, Box<dyn Error>> {
    let config = policy.http().cloned().unwrap_or_default();
    if config.resource().is_some() {
        return Ok(config);
    }
    let path = config.path().to_owned();
    Ok(config.with_resource(format!("http://{listen}{path}"))?)
}

/// Serves `make()` handlers, one per session, until Ctrl-C.
pub async fn serve<H, F>(args: &Args, make: F) -> Result<(), Box<dyn Error>>
where
    H: ServerHandler + Send + Sync + 'static,
    F: Fn() -> H + Send + Sync + 'static,
{
    let policy = Policy::load(&args.policy)?;
    let layer = policy.build()?;
    let config = http_config(&policy, args.listen)?;
    let mcp = StreamableHttpService::new(
        {
            let layer = layer.clone();
            move || Ok(SecureServer::new(make(), layer.clone()))
        },
        LocalSessionManager::default().into(),
        // The HTTP layer checks Host and Origin (with the policy's lists), and the body size.
        StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .with_max_request_body_bytes(config.max_body_bytes()),
    );
    if !args.listen.ip().is_loopback() && config.allows_only_loopback() {
        eprintln!(
            "note: listening on {} but [http] allowed_hosts names only loopback hosts: requests naming \
             another host get 403 (DNS rebinding protection); list this server's names there",
            args.listen
        );
    }
    let path = config.path().to_owned();
    let app =
        axum::Router::new().fallback_service(HttpSecurityLayer::new(config, layer).layer(mcp));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    // Without TCP_NODELAY the last small write of each SSE response waits for the client's
    // delayed ACK: about 40 ms per call.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on http://{local}{path}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

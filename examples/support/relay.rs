//! The stdio proxy's relay between a real rmcp client and a real rmcp server, over in-memory
//! pipes instead of a child process: for the tests and benchmarks that check or measure the
//! relay itself.

use mcp_security::adapters::proxy::Proxy;
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ServerHandler, ServiceExt};

/// Serves `server` behind `proxy` and returns a client connected to the proxy's client side.
pub(crate) async fn through_proxy<S>(proxy: Proxy, server: S) -> RunningService<RoleClient, ()>
where
    S: ServerHandler + Send + 'static,
{
    let (server_io, proxy_server_side) = tokio::io::duplex(64 * 1024);
    let (proxy_client_side, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    tokio::spawn(async move {
        let (ci, co) = tokio::io::split(proxy_client_side);
        let (so, si) = tokio::io::split(proxy_server_side);
        proxy.relay(ci, co, si, so).await
    });
    ().serve(client_io).await.unwrap()
}

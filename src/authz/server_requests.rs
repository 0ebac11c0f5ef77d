//! Requests a server sends to its client: which of them a host lets through.
//!
//! MCP lets a server ask its client for things: `sampling/createMessage` (run the host's model
//! on a prompt the server wrote), `elicitation/create` (ask the user a question), `roots/list`
//! (learn which directories the host exposes). A compromised or malicious server uses exactly
//! these to reach the model and the user, so a host (the stdio proxy, [`SecureClient`]) passes
//! only the ones the policy names. `ping` is always allowed: it carries nothing.
//!
//! [`SecureClient`]: crate::adapters::rmcp::SecureClient
//!
//! ```
//! use mcp_security::authz::ServerRequestGate;
//!
//! let gate = ServerRequestGate::default();
//! assert!(gate.permits("ping"));
//! assert!(!gate.permits("sampling/createMessage"));
//!
//! let gate = ServerRequestGate::new(["roots/list"]);
//! assert!(gate.permits("roots/list"));
//! assert!(!gate.permits("elicitation/create"));
//! ```

use crate::decision::{Denial, DenyKind, RuleId, Stage};

/// The server-to-client requests MCP defines, besides `ping`.
pub const SERVER_REQUEST_METHODS: &[&str] =
    &["sampling/createMessage", "elicitation/create", "roots/list"];

/// Which requests a server may send to its client. Deny by default: only `ping` passes unless
/// the policy names more (`[server_requests] allow = [...]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerRequestGate {
    allowed: Vec<Box<str>>,
}

impl ServerRequestGate {
    /// A gate passing exactly `methods` (and `ping`).
    pub fn new<S: Into<Box<str>>>(methods: impl IntoIterator<Item = S>) -> Self {
        ServerRequestGate {
            allowed: methods.into_iter().map(Into::into).collect(),
        }
    }

    /// A gate passing every server-to-client request MCP defines: for a host that trusts the
    /// server, or a proxy that must be transparent.
    pub fn allow_all() -> Self {
        Self::new(SERVER_REQUEST_METHODS.iter().copied())
    }

    /// Whether a server may send a request with this method to its client.
    pub fn permits(&self, method: &str) -> bool {
        method == "ping" || self.allowed.iter().any(|m| &**m == method)
    }

    /// The denial a refused server request is answered (and audited) with. The reason names no
    /// value from the request.
    pub fn denial(&self) -> Denial {
        Denial::new(
            Stage::Authorization,
            DenyKind::Forbidden,
            "server request not allowed by policy",
        )
        .with_rule(RuleId::from_static("server_requests"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_by_default_but_ping() {
        let g = ServerRequestGate::default();
        assert!(g.permits("ping"));
        for m in SERVER_REQUEST_METHODS {
            assert!(!g.permits(m), "{m}");
        }
        assert!(!g.permits("Ping"));
    }

    #[test]
    fn allow_all_passes_every_defined_request_and_no_other() {
        let g = ServerRequestGate::allow_all();
        for m in SERVER_REQUEST_METHODS {
            assert!(g.permits(m), "{m}");
        }
        assert!(!g.permits("tools/call"));
        assert_eq!(g.denial().kind(), DenyKind::Forbidden);
    }
}

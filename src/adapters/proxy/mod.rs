//! The stdio proxy: the whole pipeline in front of an MCP server written in any language.
//!
//! `mcp-security proxy --policy P -- COMMAND [ARGS...]` starts the server as a child process and
//! relays JSON-RPC lines between its own stdin/stdout (the client) and the child's.

mod config;

pub use config::{DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_PENDING, LOADER_VARIABLES, ProxyConfig};

#[cfg(feature = "proxy")]
mod relay;

#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub use relay::{Proxy, ProxyError, ProxyExit, RelayEnd};

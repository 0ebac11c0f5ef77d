//! [`ProxyConfig`]: what the stdio proxy enforces beyond the pipeline (the `[proxy]` table).

use std::sync::Arc;

use crate::authz::ServerRequestGate;

/// Loader and start-up variables removed from the child's environment unless the policy keeps
/// them: each one lets whoever set the proxy's environment run code inside the server.
pub const LOADER_VARIABLES: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_DEBUG",
    "LD_PROFILE",
    "DYLD_INSERT_LIBRARIES",
    "DYLD_LIBRARY_PATH",
    "DYLD_FRAMEWORK_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH",
    "DYLD_FALLBACK_FRAMEWORK_PATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    // `PYTHONWARNINGS` imports the module a warning filter names (with `BROWSER`, the
    // `antigravity` module runs a command).
    "PYTHONWARNINGS",
    "BROWSER",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "BASH_ENV",
    "ENV",
    "GCONV_PATH",
    "MALLOC_CONF",
];

/// The default bound on one line (one JSON-RPC message) in either direction: 4 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 << 20;
/// The default bound on requests waiting for their answer, per direction.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// What the stdio proxy enforces besides the pipeline: who its client is, the child's
/// environment, line and pending-request bounds, and which server-to-client requests pass.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The host the proxy's one client is, when the policy names it (`[proxy] identity`): the
    /// operator vouches for whoever starts the proxy. Without it, the client's API key comes
    /// from the environment (`auth.api_key_env`) and is checked like any other.
    pub identity: Option<Arc<str>>,
    /// Loader variables passed to the child anyway (`keep_env`).
    pub keep_env: Vec<String>,
    /// The longest line accepted from either side, in bytes.
    pub max_line_bytes: usize,
    /// The most requests waiting for an answer, per direction; more are refused.
    pub max_pending: usize,
    /// Which requests the server may send the client.
    pub server_requests: ServerRequestGate,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            identity: None,
            keep_env: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_pending: DEFAULT_MAX_PENDING,
            server_requests: ServerRequestGate::default(),
        }
    }
}

impl ProxyConfig {
    /// The loader variables to remove from the child's environment: [`LOADER_VARIABLES`] less
    /// the ones the policy keeps.
    pub fn removed_env(&self) -> impl Iterator<Item = &'static str> + '_ {
        LOADER_VARIABLES
            .iter()
            .copied()
            .filter(|v| !self.keep_env.iter().any(|k| k == v))
    }
}

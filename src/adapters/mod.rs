//! Adapters to MCP SDKs and transports: the only code that names SDK types.

#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod rmcp;

#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

/// The stdio proxy: the pipeline in front of an MCP server in any language, run as a child.
pub mod proxy;

//! Input validation: is the request well formed and are its arguments acceptable?
//!
//! An [`InputValidator`] has two hooks, at two points of the pipeline:
//! - [`InputValidator::check_frame`] runs first, before authentication: size, depth and syntax
//!   checks that need no knowledge of who is calling (a `file://../../etc/passwd` URI is
//!   malformed whoever sends it).
//! - [`InputValidator::validate`] runs after authorization, so a caller who may not use a tool
//!   learns nothing about what its arguments must look like.
//!
//! ```
//! use mcp_security::validate::{FrameLimits, Frame, InputValidator};
//! use mcp_security::Action;
//!
//! let limits = FrameLimits::new(1024, 8);
//! let action = Action::Ping;
//! assert!(limits.check_frame(&Frame::new(&action, Some(100))).is_ok());
//! assert!(limits.check_frame(&Frame::new(&action, Some(4096))).is_err());
//! ```

mod arguments;
mod limits;
mod path;
pub mod sanitize;
mod schema;
mod ssrf;
pub mod unicode;
mod uri;

pub use arguments::{
    ArgumentConstraints, ArgumentKind, ArgumentRule, ArgumentType, ConstraintError,
};
pub use limits::FrameLimits;
pub use path::PathGuard;
pub use sanitize::RuleSet;
pub use schema::ToolSchemas;
pub use ssrf::{Resolver, SsrfGuard, SystemResolver};
pub use unicode::Invisible;
pub use uri::ResourceUriValidator;

use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::{Identity, RequestContext};
use crate::decision::DenyKind;
use crate::message::Action;

/// What the frame stage sees: the action and, when the transport knows it, the size of the
/// message as received.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    action: &'a Action<'a>,
    encoded_len: Option<usize>,
}

impl<'a> Frame<'a> {
    /// A frame for `action`, `encoded_len` bytes long on the wire when known.
    pub fn new(action: &'a Action<'a>, encoded_len: Option<usize>) -> Self {
        Frame {
            action,
            encoded_len,
        }
    }

    /// The action.
    pub fn action(&self) -> &'a Action<'a> {
        self.action
    }

    /// The size on the wire, when the transport knows it.
    pub fn encoded_len(&self) -> Option<usize> {
        self.encoded_len
    }
}

/// What is wrong with the input. Messages name the problem and, for arguments, the argument as
/// the policy names it; they never echo a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The message is larger than the frame limit.
    #[error("request is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The arguments nest deeper than the limit.
    #[error("request nests deeper than the limit of {limit} levels")]
    TooDeep {
        /// The limit in levels.
        limit: usize,
    },
    /// The resource URI is malformed or tries to escape its path.
    #[error("invalid resource uri: {0}")]
    InvalidUri(&'static str),
    /// The resource URI's scheme is not allowed.
    #[error("resource uri scheme is not allowed")]
    SchemeNotAllowed,
    /// The resource path is outside every allowed root.
    #[error("resource path is outside the allowed roots")]
    OutsideRoots,
    /// An argument breaks a constraint.
    #[error("invalid arguments: {0}")]
    Argument(#[from] ConstraintError),
    /// A count or size limit on the message's structure.
    #[error("request has {what} over the limit of {limit}")]
    Limit {
        /// What was counted (`a string`, `an array`, `arguments`, ...).
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// An argument or URI holds invisible Unicode characters (zero-width, bidi controls, tags).
    #[error("request contains invisible unicode characters")]
    Invisible,
    /// The tool's input schema was never declared, and the policy requires one.
    #[error("the tool's input schema is not known")]
    UnknownSchema,
    /// The tool's input schema cannot be used (too large, external references, does not compile).
    #[error("{0}")]
    SchemaUnusable(&'static str),
}

impl ValidationError {
    /// The kind of denial this error becomes: malformed frames are invalid requests, the rest
    /// are invalid arguments.
    pub fn deny_kind(&self) -> DenyKind {
        match self {
            ValidationError::TooLarge { .. }
            | ValidationError::TooDeep { .. }
            | ValidationError::Limit { .. }
            | ValidationError::InvalidUri(_) => DenyKind::InvalidRequest,
            _ => DenyKind::InvalidArguments,
        }
    }
}

/// Scheme lists are compared in lower case (`HTTPS:` is `https:`).
fn lowercased<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items
        .into_iter()
        .map(|s| s.into().to_ascii_lowercase())
        .collect()
}

/// A tool as the server declares it: its name and its `inputSchema`.
#[derive(Debug, Clone, Copy)]
pub struct ToolSchema<'a> {
    /// The tool's name.
    pub name: &'a str,
    /// The tool's `inputSchema` object.
    pub input_schema: &'a Map<String, Value>,
}

/// Whose arguments are being rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgumentsOf<'a> {
    /// A `tools/call` of this tool.
    Tool(&'a str),
    /// A `prompts/get` of this prompt.
    Prompt(&'a str),
}

/// Checks requests for well-formedness and acceptable arguments.
///
/// Synchronous and CPU-only: compile schemas and patterns when the validator is built, never
/// per request. Both hooks default to accepting, so a validator implements only what it checks.
pub trait InputValidator: Debug + Send + Sync {
    /// Structural checks, before authentication.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the problem.
    fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ValidationError> {
        let _ = frame;
        Ok(())
    }

    /// Argument and confinement checks, after authorization.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the problem.
    fn validate(
        &self,
        action: &Action<'_>,
        identity: &Identity,
        cx: &RequestContext,
    ) -> Result<(), ValidationError> {
        let _ = (action, identity, cx);
        Ok(())
    }

    /// Normalizes the arguments of a request before any check sees them (stripping invisible
    /// characters): what is checked is then what the handler gets. A rewrite after the checks
    /// could make a checked value unsafe (`..\u{200b}/` passes a path check as a name and
    /// becomes `../` once stripped). Default: nothing.
    fn normalize_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        let _ = (target, args);
    }

    /// Rewrites the arguments of an admitted request before the handler sees them (escaping
    /// HTML). Runs after every check passed, on the values the checks saw; it must not make a
    /// value less safe than the one checked. Default: nothing.
    fn rewrite_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        let _ = (target, args);
    }

    /// Learns the tools the server declares (their input schemas). Default: nothing.
    fn observe_tools(&self, tools: &[ToolSchema<'_>]) {
        let _ = tools;
    }

    /// Whether this validator needs the schema of tool `name` and has not seen it: the adapter
    /// then asks the handler for the tool's definition before the call. Default: no.
    fn needs_tool_schema(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

impl<T: InputValidator + ?Sized> InputValidator for Arc<T> {
    fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ValidationError> {
        (**self).check_frame(frame)
    }

    fn validate(
        &self,
        action: &Action<'_>,
        identity: &Identity,
        cx: &RequestContext,
    ) -> Result<(), ValidationError> {
        (**self).validate(action, identity, cx)
    }

    fn normalize_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        (**self).normalize_arguments(target, args);
    }

    fn rewrite_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        (**self).rewrite_arguments(target, args);
    }

    fn observe_tools(&self, tools: &[ToolSchema<'_>]) {
        (**self).observe_tools(tools);
    }

    fn needs_tool_schema(&self, name: &str) -> bool {
        (**self).needs_tool_schema(name)
    }
}

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
mod uri;

pub use arguments::{ArgumentConstraints, ArgumentRule, ArgumentType, ConstraintError};
pub use limits::FrameLimits;
pub use uri::ResourceUriValidator;

use std::fmt::Debug;
use std::sync::Arc;

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
}

impl ValidationError {
    /// The kind of denial this error becomes: malformed frames are invalid requests, the rest
    /// are invalid arguments.
    pub fn deny_kind(&self) -> DenyKind {
        match self {
            ValidationError::TooLarge { .. }
            | ValidationError::TooDeep { .. }
            | ValidationError::InvalidUri(_) => DenyKind::InvalidRequest,
            _ => DenyKind::InvalidArguments,
        }
    }
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
}

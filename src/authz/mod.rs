//! Authorization: may this identity do this? The [`Authorizer`] trait and its built-ins.
//!
//! Authorization is synchronous and returns a [`Decision`] value, never a `Result` (cedar's
//! shape): an authorizer that cannot decide must return [`Decision::Deny`].
//!
//! ```
//! use mcp_security::authz::{AclAuthorizer, Authorizer, HostSet, ToolRule};
//! use mcp_security::{Action, Identity, RequestContext, Transport};
//!
//! let acl = AclAuthorizer::builder()
//!     .tool(ToolRule::new("query_database", HostSet::only(["analytics-bot"])))
//!     .build()?;
//! let cx = RequestContext::new(Transport::Stdio);
//! let call = Action::CallTool { name: "query_database", arguments: None };
//! assert!(acl.authorize(&Identity::new("analytics-bot"), &call, &cx).is_allow());
//! assert!(!acl.authorize(&Identity::new("other"), &call, &cx).is_allow());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod acl;

pub use acl::{
    AclAuthorizer, AclBuilder, GlobError, HostSet, PromptRule, ResourcePermission, ResourceRule,
    ToolRule,
};

use std::fmt::{self, Debug};
use std::sync::Arc;

use crate::context::{Identity, RequestContext};
use crate::decision::Decision;
use crate::message::Action;

/// Decides whether an identity may perform an action.
///
/// Synchronous: authorization runs on in-memory policy on every request, and any slow work
/// (compiling patterns) belongs at build time.
pub trait Authorizer: Debug + Send + Sync {
    /// The decision for `identity` performing `action` in `cx`.
    ///
    /// The layer also calls this to filter `*/list` results: an item is listed exactly when a
    /// call to it would be allowed (with no arguments), so a hidden item reads as unknown.
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision;
}

impl<T: Authorizer + ?Sized> Authorizer for Arc<T> {
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        (**self).authorize(identity, action, cx)
    }
}

impl<T: Authorizer + ?Sized> Authorizer for Box<T> {
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        (**self).authorize(identity, action, cx)
    }
}

/// An [`Authorizer`] from a closure; see [`authorize_fn`].
#[derive(Clone)]
pub struct FnAuthorizer<F>(F);

impl<F> Debug for FnAuthorizer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnAuthorizer")
    }
}

/// Wraps a closure as an [`Authorizer`], for tests and small integrations.
///
/// ```
/// use mcp_security::authz::{authorize_fn, Authorizer};
/// use mcp_security::{Action, Decision, Denial, DenyKind, Identity, RequestContext, Stage, Transport};
///
/// let only_ping = authorize_fn(|_who: &Identity, action: &Action<'_>, _cx: &RequestContext| match action {
///     Action::Ping => Decision::Allow(None),
///     _ => Decision::Deny(Denial::new(Stage::Authorization, DenyKind::Forbidden, "forbidden")),
/// });
/// let cx = RequestContext::new(Transport::Stdio);
/// assert!(only_ping.authorize(&Identity::new("h"), &Action::Ping, &cx).is_allow());
/// ```
pub fn authorize_fn<F>(f: F) -> FnAuthorizer<F>
where
    F: Fn(&Identity, &Action<'_>, &RequestContext) -> Decision + Send + Sync,
{
    FnAuthorizer(f)
}

impl<F> Authorizer for FnAuthorizer<F>
where
    F: Fn(&Identity, &Action<'_>, &RequestContext) -> Decision + Send + Sync,
{
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        (self.0)(identity, action, cx)
    }
}

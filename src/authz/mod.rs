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
mod conditions;
mod server_requests;

pub use acl::{
    AclAuthorizer, AclBuilder, Effect, GlobError, HostSet, PromptRule, ResourcePermission,
    ResourceRule, ToolRule,
};
pub use conditions::{Conditions, TimeWindow, TimeWindowError};
pub use server_requests::{SERVER_REQUEST_METHODS, ServerRequestGate};

use std::fmt::{self, Debug};
use std::sync::Arc;

use crate::context::{Identity, RequestContext};
use crate::decision::{Decision, RuleId};
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

    /// The decision with the rules that led to it. The default explains nothing beyond the
    /// decision itself; [`AclAuthorizer`] lists every rule that matched the target and what it did.
    fn explain(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
    ) -> Explanation {
        Explanation::new(self.authorize(identity, action, cx), Vec::new())
    }
}

/// What one rule did in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// The rule.
    pub rule: RuleId,
    /// `"allow"` or `"deny"`.
    pub effect: &'static str,
    /// What it did: `"allows"`, `"denies"`, `"not for this caller"`, `"outside the allowed hours"`...
    pub outcome: &'static str,
}

/// A decision and the rules that led to it, for operators (`mcp-security check --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    decision: Decision,
    rules: Vec<RuleTrace>,
}

impl Explanation {
    /// A decision explained by `rules`, in the order they were considered.
    pub fn new(decision: Decision, rules: Vec<RuleTrace>) -> Self {
        Explanation { decision, rules }
    }

    /// The decision.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The rules that matched the target, in order, with what each did.
    pub fn rules(&self) -> &[RuleTrace] {
        &self.rules
    }
}

impl<T: Authorizer + ?Sized> Authorizer for Arc<T> {
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        (**self).authorize(identity, action, cx)
    }

    fn explain(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
    ) -> Explanation {
        (**self).explain(identity, action, cx)
    }
}

impl<T: Authorizer + ?Sized> Authorizer for Box<T> {
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        (**self).authorize(identity, action, cx)
    }

    fn explain(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
    ) -> Explanation {
        (**self).explain(identity, action, cx)
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

//! What comes out of the pipeline: [`Decision`], [`Denial`], [`Stage`] and [`RuleId`].
//!
//! A decision is a value, as in cedar: the authorizer never returns a `Result` that a caller
//! could forget to check, and [`Decision`] is exhaustive on purpose so that a third outcome
//! would break every `match` at compile time.
//!
//! ```
//! use mcp_security::{Decision, Denial, DenyKind, RuleId, Stage};
//!
//! let d = Decision::Deny(
//!     Denial::new(Stage::Authorization, DenyKind::NotFound, "tool not found")
//!         .with_rule(RuleId::from_static("default-deny")),
//! );
//! assert!(!d.is_allow());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A stage of the fixed pipeline, in order.
///
/// Exhaustive on purpose: the pipeline's order is part of the contract, and a new stage is a
/// breaking change that every `match` should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[expect(
    clippy::exhaustive_enums,
    reason = "the pipeline order is part of the contract"
)]
pub enum Stage {
    /// Frame limits and well-formedness (size, depth, URI syntax), before authentication.
    Frame,
    /// Who is calling.
    Authentication,
    /// Whether they may do this.
    Authorization,
    /// How often they may do it (counted only for allowed calls).
    RateLimit,
    /// Whether the arguments are acceptable.
    Validation,
    /// The wrapped handler ran.
    Handler,
    /// The result was redacted.
    Redaction,
    /// The audit record could not be written.
    Audit,
}

impl Stage {
    /// The stable lowercase name used in audit records and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Frame => "frame",
            Stage::Authentication => "authentication",
            Stage::RateLimit => "rate_limit",
            Stage::Authorization => "authorization",
            Stage::Validation => "validation",
            Stage::Handler => "handler",
            Stage::Redaction => "redaction",
            Stage::Audit => "audit",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identifier of the policy rule that decided, for the audit record.
///
/// Cloning is free for static ids and a reference-count increment for ids built from a policy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RuleId(RuleRepr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum RuleRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl RuleId {
    /// A rule id known at compile time (`"default-deny"`).
    pub const fn from_static(id: &'static str) -> Self {
        RuleId(RuleRepr::Static(id))
    }

    /// A rule id built at run time (`"tools[0]"`).
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        RuleId(RuleRepr::Shared(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            RuleRepr::Static(s) => s,
            RuleRepr::Shared(s) => s,
        }
    }
}

impl fmt::Debug for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuleId({:?})", self.as_str())
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of refusal a [`Denial`] is; it decides what the peer sees on the wire.
///
/// The JSON-RPC codes live here, in one place ([`DenyKind::code`]). Codes for refusals the
/// JSON-RPC specification does not cover are application codes outside the reserved range
/// `-32768..=-32000`, as the MCP specification asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyKind {
    /// The message is malformed or over a frame limit (`-32600` / `-32602`).
    InvalidRequest,
    /// No valid credentials (`-31401`; HTTP 401).
    Unauthenticated,
    /// Too many calls (`-31429`).
    RateLimited,
    /// The target is hidden from this caller: the peer sees exactly what an unknown target gives
    /// (`-32602`, or `-32002` for resources).
    NotFound,
    /// The target is visible but this call is refused (`-31403`; HTTP 403).
    Forbidden,
    /// The arguments were refused. A `tools/call` answers with a tool result whose `isError` is
    /// true, so the model can correct itself; other methods answer `-32602`.
    InvalidArguments,
    /// A security component could not run, so the layer failed closed (`-32603`).
    Unavailable,
}

impl DenyKind {
    /// The stable lowercase name used in audit records and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyKind::InvalidRequest => "invalid_request",
            DenyKind::Unauthenticated => "unauthenticated",
            DenyKind::RateLimited => "rate_limited",
            DenyKind::NotFound => "not_found",
            DenyKind::Forbidden => "forbidden",
            DenyKind::InvalidArguments => "invalid_arguments",
            DenyKind::Unavailable => "unavailable",
        }
    }

    /// The JSON-RPC error code for this refusal (see the type docs).
    pub fn code(self) -> i32 {
        match self {
            DenyKind::InvalidRequest | DenyKind::NotFound | DenyKind::InvalidArguments => -32602,
            DenyKind::Unauthenticated => UNAUTHENTICATED,
            DenyKind::RateLimited => RATE_LIMITED,
            DenyKind::Forbidden => FORBIDDEN,
            DenyKind::Unavailable => -32603,
        }
    }
}

/// The denial for a request whose audit record could not be written (fail closed).
pub(crate) fn audit_unavailable() -> Denial {
    Denial::new(Stage::Audit, DenyKind::Unavailable, "audit unavailable")
        .with_rule(RuleId::from_static("audit.on_failure"))
}

/// The denial for a result classified above the caller's clearance: the result is withheld.
pub(crate) fn withheld() -> Denial {
    Denial::new(
        Stage::Redaction,
        DenyKind::Forbidden,
        "response classified above the caller's clearance",
    )
    .with_rule(RuleId::from_static("redaction.clearance"))
}

/// The JSON-RPC error code a refused `action` is answered with: [`DenyKind::code`], except that a
/// hidden resource reads like a missing one (`-32002`). Shared by every adapter so the wire
/// looks the same whichever one answers.
pub(crate) fn wire_code(action: &crate::message::Action<'_>, d: &Denial) -> i32 {
    use crate::message::Action;
    match (d.kind(), action) {
        (DenyKind::NotFound, Action::ReadResource { .. } | Action::SubscribeResource { .. }) => {
            RESOURCE_NOT_FOUND
        }
        (kind, _) => kind.code(),
    }
}

/// Application error code: no valid credentials.
pub const UNAUTHENTICATED: i32 = -31401;
/// Application error code: authenticated, but this call is refused.
pub const FORBIDDEN: i32 = -31403;
/// Application error code: rate limit exceeded.
pub const RATE_LIMITED: i32 = -31429;
/// MCP's code for an unknown resource (protocol versions up to 2025-11-25; rmcp maps it to
/// `-32602` for later peers).
pub const RESOURCE_NOT_FOUND: i32 = -32002;

/// A refusal: which stage decided, what kind it is, why, and under which rule.
///
/// `reason` is safe to show to the peer and to store: it is fixed text or built from the policy,
/// never from request values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    stage: Stage,
    kind: DenyKind,
    reason: Cow<'static, str>,
    rule: Option<RuleId>,
    retry_after: Option<std::time::Duration>,
}

impl Denial {
    /// A denial at `stage`. Never put request values into `reason`.
    pub fn new(stage: Stage, kind: DenyKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Denial {
            stage,
            kind,
            reason: reason.into(),
            rule: None,
            retry_after: None,
        }
    }

    /// Names the rule that decided.
    pub fn with_rule(mut self, rule: RuleId) -> Self {
        self.rule = Some(rule);
        self
    }

    /// Says when the refused call may be retried (rate limits).
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// When the refused call may be retried, if the denial knows.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// The deciding stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The kind of refusal.
    pub fn kind(&self) -> DenyKind {
        self.kind
    }

    /// Why, in words safe for the peer and the log.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The deciding rule, if a rule decided.
    pub fn rule(&self) -> Option<&RuleId> {
        self.rule.as_ref()
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied at {}: {}", self.stage, self.reason)
    }
}

impl std::error::Error for Denial {}

/// The outcome of an authorization.
///
/// Exhaustive on purpose (cedar's rule for the authorization path): a third outcome must break
/// every caller's build rather than fall into a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a third outcome must break every match"
)]
pub enum Decision {
    /// Allowed, by the named rule when a rule decided.
    Allow(Option<RuleId>),
    /// Refused.
    Deny(Denial),
}

impl Decision {
    /// Whether the decision allows.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The deciding rule, for either outcome.
    pub fn rule(&self) -> Option<&RuleId> {
        match self {
            Decision::Allow(rule) => rule.as_ref(),
            Decision::Deny(d) => d.rule(),
        }
    }
}

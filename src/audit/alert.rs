//! Security alerts: a hook the layer (and the audit sinks) call when something needs a human.

use std::fmt::Debug;

use super::AuditEvent;

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// A caller failed authentication.
    AuthenticationFailure,
    /// A result classified above the caller's clearance was withheld.
    RestrictedDataDenied,
    /// A caller went over a rate limit.
    RateLimitExceeded,
    /// An audit record could not be written.
    AuditFailure,
    /// A chained audit log does not verify (found when a sink reopens it, or by the verifier).
    TamperDetected,
}

impl AlertKind {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::AuthenticationFailure => "authentication_failure",
            AlertKind::RestrictedDataDenied => "restricted_data_denied",
            AlertKind::RateLimitExceeded => "rate_limit_exceeded",
            AlertKind::AuditFailure => "audit_failure",
            AlertKind::TamperDetected => "tamper_detected",
        }
    }
}

/// One alert: its kind, the audit record that raised it (when a request did) and a fixed
/// description (never request values).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SecurityAlert<'a> {
    /// Why.
    pub kind: AlertKind,
    /// The record of the request that raised it.
    pub event: Option<&'a AuditEvent<'a>>,
    /// What happened, for the operator.
    pub detail: &'a str,
}

impl<'a> SecurityAlert<'a> {
    /// An alert of `kind` with a description.
    pub fn new(kind: AlertKind, detail: &'a str) -> Self {
        SecurityAlert {
            kind,
            event: None,
            detail,
        }
    }

    /// Attaches the record that raised it.
    pub fn with_event(mut self, event: &'a AuditEvent<'a>) -> Self {
        self.event = Some(event);
        self
    }

    /// The alert for a request record, when the record calls for one.
    pub(crate) fn for_event(event: &'a AuditEvent<'a>) -> Option<Self> {
        use crate::decision::{DenyKind, Stage};
        let kind = match (event.deny_kind, event.stage) {
            (Some(DenyKind::Unauthenticated), _) => AlertKind::AuthenticationFailure,
            (Some(DenyKind::RateLimited), _) => AlertKind::RateLimitExceeded,
            (Some(_), Stage::Redaction) => AlertKind::RestrictedDataDenied,
            _ => return None,
        };
        let detail = match kind {
            AlertKind::AuthenticationFailure => "authentication failed",
            AlertKind::RateLimitExceeded => "rate limit exceeded",
            _ => "result above the caller's clearance withheld",
        };
        Some(SecurityAlert::new(kind, detail).with_event(event))
    }
}

/// Receives security alerts. Called inline on the request path: return quickly (hand the
/// alert to a channel or a counter; do not do network I/O here).
///
/// Any `Fn(&SecurityAlert) + Send + Sync` closure is a hook:
///
/// ```
/// use mcp_security::audit::{AlertHook, AlertKind, SecurityAlert};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let failures = Arc::new(AtomicU64::new(0));
/// let counter = failures.clone();
/// let hook = move |a: &SecurityAlert<'_>| {
///     if a.kind == AlertKind::AuthenticationFailure {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// hook.alert(&SecurityAlert::new(AlertKind::AuthenticationFailure, "test"));
/// assert_eq!(failures.load(Ordering::Relaxed), 1);
/// ```
pub trait AlertHook: Send + Sync {
    /// Handles one alert.
    fn alert(&self, alert: &SecurityAlert<'_>);
}

impl<F: Fn(&SecurityAlert<'_>) + Send + Sync> AlertHook for F {
    fn alert(&self, alert: &SecurityAlert<'_>) {
        self(alert);
    }
}

impl Debug for dyn AlertHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertHook")
    }
}

//! Audit: one record for every decision, allowed and denied, on every exit path.
//!
//! The layer builds an [`AuditEvent`] for each request and hands it to an [`AuditSink`]. The
//! event holds no argument values, no credentials and no result content; its target (a tool
//! name or resource URI) has been through the redactor. A sink error is never silent: with
//! [`AuditFailureMode::Deny`] (the default) the request is refused, otherwise it is counted.
//!
//! ```
//! use mcp_security::audit::{AuditSink, MemorySink};
//!
//! let sink = MemorySink::new();
//! assert!(sink.records().is_empty());
//! ```

mod file;
mod memory;

pub use file::JsonLinesSink;
pub use memory::MemorySink;

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::context::{AuthMethod, CorrelationId, Transport};
use crate::decision::{DenyKind, RuleId, Stage};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditOutcome {
    /// The request passed every check and the handler answered.
    Allow,
    /// A check refused the request.
    Deny,
    /// The request passed every check and the handler returned an error.
    Error,
    /// The request passed every check, but the handler never answered (cancelled).
    Cancelled,
}

/// What an audit sink does when it cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuditFailureMode {
    /// Refuse the request (fail closed). The default.
    #[default]
    Deny,
    /// Answer the request anyway and count the failure
    /// ([`SecurityLayer::audit_failures`](crate::SecurityLayer::audit_failures)).
    Continue,
}

/// One audit record. Built by the layer; sinks read it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditEvent<'a> {
    /// When the request was received.
    pub timestamp: DateTime<Utc>,
    /// The transport.
    #[serde(serialize_with = "ser_transport")]
    pub transport: Transport,
    /// The JSON-RPC id.
    #[serde(serialize_with = "ser_correlation")]
    pub correlation_id: &'a CorrelationId,
    /// The transport session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    /// The peer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<IpAddr>,
    /// The authenticated host, when authentication succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    /// The authenticated subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// How the caller was authenticated.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_auth")]
    pub auth_method: Option<AuthMethod>,
    /// The JSON-RPC method.
    pub method: &'a str,
    /// The tool, prompt or resource, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'a str>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The deciding stage (the last stage reached when allowed).
    #[serde(serialize_with = "ser_stage")]
    pub stage: Stage,
    /// The kind of denial.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_kind")]
    pub deny_kind: Option<DenyKind>,
    /// The deciding rule.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_rule")]
    pub rule: Option<&'a RuleId>,
    /// Why (fixed or policy text, never request values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Detail for the operator (which authentication check failed, ...), never request values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// The handler's JSON-RPC error code, when it returned an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// How many values the redactor replaced in the result.
    pub redactions: u32,
    /// How sensitive the result was (level, categories, retention, encryption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<&'a crate::redact::Classification>,
    /// Time spent from receipt to this record, in microseconds.
    pub latency_us: u64,
}

fn ser_transport<S: serde::Serializer>(t: &Transport, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn ser_correlation<S: serde::Serializer>(id: &&CorrelationId, s: S) -> Result<S::Ok, S::Error> {
    match id {
        CorrelationId::None => s.serialize_none(),
        CorrelationId::Number(n) => s.serialize_i64(*n),
        CorrelationId::Text(t) => s.serialize_str(t),
    }
}

fn ser_auth<S: serde::Serializer>(m: &Option<AuthMethod>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_stage<S: serde::Serializer>(st: &Stage, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(st.as_str())
}

fn ser_kind<S: serde::Serializer>(k: &Option<DenyKind>, s: S) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_str(k.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_rule<S: serde::Serializer>(r: &Option<&RuleId>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_str(r.as_str()),
        None => s.serialize_none(),
    }
}

/// An audit record could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Writing failed.
    #[error("audit write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The record could not be encoded.
    #[error("audit record could not be encoded")]
    Encode,
    /// A custom sink's failure.
    #[error("audit sink failed: {0}")]
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

/// Receives audit records.
///
/// Async because sinks do I/O. A sink must either persist the record or return an error: it
/// must never drop a record silently.
#[async_trait]
pub trait AuditSink: Debug + Send + Sync {
    /// Records one event.
    ///
    /// # Errors
    /// An [`AuditError`] when the record could not be persisted.
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError>;
}

#[async_trait]
impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        (**self).record(event).await
    }
}

//! Audit: one record for every decision, allowed and denied, on every exit path.
//!
//! The layer builds an [`AuditEvent`] for each request and hands it to an [`AuditSink`]. The
//! event holds no argument values, no credentials and no result content; its target (a tool
//! name or resource URI) has been through the redactor. A sink error is never silent: with
//! [`AuditFailureMode::Deny`] (the default) the request is refused, otherwise it is counted and
//! the [`AlertHook`] is told.
//!
//! Sinks: [`FileSink`] (hash-chained JSON lines with signed checkpoints, size rotation, fsync
//! policy, a bounded queue with back-pressure), [`JsonLinesSink`] (plain JSON lines),
//! [`MemorySink`] (tests), [`FanOutSink`] (several at once), `TracingSink` (feature `tracing`)
//! and `PostgresSink` (feature `postgres`). [`verify_files`] checks a chained log.
//!
//! ```
//! use mcp_security::audit::{AuditSink, MemorySink};
//!
//! let sink = MemorySink::new();
//! assert!(sink.records().is_empty());
//! ```

mod alert;
mod canonical;
mod chain;
mod chained;
mod encode;
mod fanout;
mod file;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "tracing")]
mod tracing_sink;
mod verify;

pub use alert::{AlertHook, AlertKind, SecurityAlert};
pub use canonical::to_canonical_json;
pub use chain::{
    CHECKPOINT_DOMAIN, GENESIS, KeyError, chain_hash, checkpoint_message, generate_signing_key,
    key_id, read_signing_key, read_verifying_key, signing_key_pem, verifying_key_pem,
};
pub use chained::{FileSink, FileSinkConfig, FsyncPolicy, Receipt};
pub use fanout::FanOutSink;
pub use file::JsonLinesSink;
pub use memory::MemorySink;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresSink};
#[cfg(feature = "tracing")]
pub use tracing_sink::TracingSink;
pub use verify::{Tamper, TamperKind, VerifyError, VerifyReport, verify_files};

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

impl AuditOutcome {
    /// The stable lowercase name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allow => "allow",
            AuditOutcome::Deny => "deny",
            AuditOutcome::Error => "error",
            AuditOutcome::Cancelled => "cancelled",
        }
    }
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

/// What kind of event a record is (the seed's `event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// Authentication refused a caller.
    Authentication,
    /// Authorization decided (a refusal, or a call that is neither a tool nor a resource).
    Authorization,
    /// A resource or prompt was read or listed.
    ResourceAccess,
    /// A tool was called or listed.
    ToolInvocation,
    /// The policy in force changed.
    ConfigurationChange,
    /// A security check outside authentication and authorization fired: frame or validation
    /// limits, rate limits, withheld results, audit failures.
    SecurityEvent,
}

impl EventType {
    /// The stable lowercase name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Authentication => "authentication",
            EventType::Authorization => "authorization",
            EventType::ResourceAccess => "resource_access",
            EventType::ToolInvocation => "tool_invocation",
            EventType::ConfigurationChange => "configuration_change",
            EventType::SecurityEvent => "security_event",
        }
    }

    /// The type of a request record: a refusal is typed by the stage that refused, anything
    /// else by its method.
    pub fn of_request(method: &str, outcome: AuditOutcome, stage: Stage) -> Self {
        if outcome == AuditOutcome::Deny {
            return match stage {
                Stage::Authentication => EventType::Authentication,
                Stage::Authorization => EventType::Authorization,
                _ => EventType::SecurityEvent,
            };
        }
        if method.starts_with("tools/") {
            EventType::ToolInvocation
        } else if method.starts_with("resources/") || method.starts_with("prompts/") {
            EventType::ResourceAccess
        } else {
            EventType::Authorization
        }
    }
}

/// A record's unique id: 128 bits, a random per-process prefix and a counter, written as 32 hex
/// digits. Unique without a lock or a system call per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

static EVENT_COUNTER: AtomicU64 = AtomicU64::new(0);
static EVENT_PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

impl EventId {
    /// A fresh id.
    pub fn generate() -> Self {
        let prefix = *EVENT_PREFIX.get_or_init(|| {
            let mut b = [0u8; 8];
            // Without OS randomness, fall back on the time and pid: unique enough per process.
            if getrandom::fill(&mut b).is_err() {
                let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
                b = (t.unsigned_abs() ^ u64::from(std::process::id()).rotate_left(32))
                    .to_be_bytes();
            }
            u64::from_be_bytes(b)
        });
        let n = EVENT_COUNTER.fetch_add(1, Ordering::Relaxed);
        EventId((u128::from(prefix) << 64) | u128::from(n))
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One audit record. Built by the layer; sinks read it.
///
/// The fields are declared in the byte order of their names, so serializing the struct gives
/// canonical JSON directly ([`write_canonical`](Self::write_canonical)), without a detour through
/// a map; a test checks this against [`to_canonical_json`].
///
/// The seed's `AuditLogEntry` fields map as follows: `host_id` is `host`, `user_id` is
/// `subject`, `ip_address` is `peer_addr`, `action` is `method`, `result` is `outcome`,
/// `error_message` is `reason` (and `detail`), `data_classification` is `classification`;
/// `event_id`, `event_type`, `server_id`, `resource_uri`, `tool_name`, `user_agent`,
/// `correlation_id` and `session_id` keep their names. Argument values are never part of a record.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditEvent<'a> {
    /// How the caller was authenticated.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_auth")]
    pub auth_method: Option<AuthMethod>,
    /// How sensitive the result was (level, categories, retention, encryption).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_classification"
    )]
    pub classification: Option<&'a crate::redact::Classification>,
    /// The JSON-RPC id.
    #[serde(serialize_with = "ser_correlation")]
    pub correlation_id: &'a CorrelationId,
    /// The kind of denial.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_kind")]
    pub deny_kind: Option<DenyKind>,
    /// Detail for the operator (which authentication check failed, ...), never request values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// The handler's JSON-RPC error code, when it returned an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// The record's unique id.
    pub event_id: EventId,
    /// What kind of event this is.
    pub event_type: EventType,
    /// The authenticated host, when authentication succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<&'a str>,
    /// Time spent from receipt to this record, in microseconds.
    pub latency_us: u64,
    /// The JSON-RPC method.
    pub method: &'a str,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The peer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<IpAddr>,
    /// Why (fixed or policy text, never request values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// How many values the redactor replaced in the result.
    pub redactions: u32,
    /// The resource URI, redacted, for resource reads and subscriptions (the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<&'a str>,
    /// The deciding rule.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_rule")]
    pub rule: Option<&'a RuleId>,
    /// The server this layer protects (the policy's `server.name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<&'a str>,
    /// The transport session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    /// The deciding stage (the last stage reached when allowed).
    #[serde(serialize_with = "ser_stage")]
    pub stage: Stage,
    /// The authenticated subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The tool, prompt or resource, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'a str>,
    /// When the request was received.
    pub timestamp: DateTime<Utc>,
    /// The tool's name, for tool calls (the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<&'a str>,
    /// The transport.
    #[serde(serialize_with = "ser_transport")]
    pub transport: Transport,
    /// The peer's `User-Agent` (HTTP), bounded in length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    /// A record that is not about a request: a configuration change, or a security event
    /// raised outside the pipeline. `method` names what happened (`policy/reload`).
    pub fn system(
        event_type: EventType,
        method: &'a str,
        correlation_id: &'a CorrelationId,
    ) -> Self {
        AuditEvent {
            event_id: EventId::generate(),
            event_type,
            timestamp: Utc::now(),
            server_id: None,
            transport: Transport::InProcess,
            correlation_id,
            session_id: None,
            peer_addr: None,
            user_agent: None,
            host: None,
            subject: None,
            auth_method: None,
            method,
            target: None,
            tool_name: None,
            resource_uri: None,
            outcome: AuditOutcome::Allow,
            stage: Stage::Audit,
            deny_kind: None,
            rule: None,
            reason: None,
            detail: None,
            error_code: None,
            redactions: 0,
            classification: None,
            latency_us: 0,
        }
    }

    /// Appends the record's canonical JSON (as [`to_canonical_json`] gives) to `out`, encoded
    /// straight from the struct.
    ///
    /// # Errors
    /// [`AuditError::Encode`] if serialization fails (it does not for these field types).
    pub fn write_canonical(&self, out: &mut Vec<u8>) -> Result<(), AuditError> {
        encode::write_event(self, out)
    }

    /// Sets the detail (fixed or policy text, never request values).
    pub fn with_detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Sets the server id.
    pub fn with_server_id(mut self, server_id: &'a str) -> Self {
        self.server_id = Some(server_id);
        self
    }
}

fn ser_classification<S: serde::Serializer>(
    c: &Option<&crate::redact::Classification>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let Some(c) = c else {
        return s.serialize_none();
    };
    // Keys in byte order, for canonical JSON.
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("categories", &c.categories)?;
    m.serialize_entry("encryption_required", &c.encryption_required)?;
    m.serialize_entry("level", &c.level)?;
    if let Some(d) = c.retention_days {
        m.serialize_entry("retention_days", &d)?;
    }
    m.end()
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
    /// The sink's writer has stopped (it was shut down, or its thread died).
    #[error("audit writer stopped")]
    Closed,
    /// The database refused or lost the record.
    #[error("audit database write failed: {0}")]
    Database(String),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn the_struct_encoding_is_canonical_with_every_field_set() {
        let cid = CorrelationId::Text("req-\u{2028}\"7\"".into());
        let rule = RuleId::from_static("tools[2]");
        let class = crate::redact::Classification {
            level: crate::redact::Level::Restricted,
            categories: vec!["PII", "PCI"],
            retention_days: Some(30),
            encryption_required: true,
        };
        let mut e = AuditEvent::system(EventType::ToolInvocation, "tools/call", &cid)
            .with_detail("d\u{0}\n")
            .with_server_id("srv");
        e.session_id = Some("s");
        e.peer_addr = Some("::1".parse().unwrap());
        e.user_agent = Some("ua");
        e.host = Some("h");
        e.subject = Some("sub");
        e.auth_method = Some(AuthMethod::ApiKey);
        e.target = Some("t");
        e.tool_name = Some("t");
        e.resource_uri = Some("file:///x");
        e.outcome = AuditOutcome::Deny;
        e.deny_kind = Some(DenyKind::Forbidden);
        e.rule = Some(&rule);
        e.reason = Some("r");
        e.error_code = Some(-31403);
        e.redactions = 3;
        e.classification = Some(&class);
        e.latency_us = 17;
        let mut fast = Vec::new();
        e.write_canonical(&mut fast).unwrap();
        let mut generic = Vec::new();
        to_canonical_json(&e, &mut generic).unwrap();
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(generic).unwrap()
        );
        // And with the optional fields absent.
        let bare = AuditEvent::system(EventType::SecurityEvent, "x", &CorrelationId::None);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        bare.write_canonical(&mut a).unwrap();
        to_canonical_json(&bare, &mut b).unwrap();
        assert_eq!(a, b);
    }
}

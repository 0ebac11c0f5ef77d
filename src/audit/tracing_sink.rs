//! The `tracing` sink: one structured event per audit record, for any subscriber
//! (OpenTelemetry, JSON logs, journald).

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

/// Emits each record as a `tracing` event with target `mcp_security::audit`, at `INFO` for
/// allowed requests and `WARN` for the rest, with the record's fields as event fields
/// (`event_id`, `event_type`, `outcome`, `stage`, `rule`, `host`, `method`, `target`, ...) and
/// the whole record as canonical JSON in `record`.
///
/// A `tracing` subscriber cannot report a failed write, so this sink never fails; pair it with
/// a durable sink in a [`FanOutSink`](super::FanOutSink) when records must not be lost.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl TracingSink {
    /// A tracing sink.
    pub fn new() -> Self {
        TracingSink
    }
}

#[async_trait]
impl AuditSink for TracingSink {
    async fn record(&self, e: &AuditEvent<'_>) -> Result<(), AuditError> {
        let mut json = Vec::with_capacity(512);
        e.write_canonical(&mut json)?;
        let record = String::from_utf8_lossy(&json);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "mcp_security::audit",
                    $level,
                    event_id = %e.event_id,
                    event_type = e.event_type.as_str(),
                    outcome = ?e.outcome,
                    stage = e.stage.as_str(),
                    rule = e.rule.map(|r| r.as_str()),
                    host = e.host,
                    subject = e.subject,
                    method = e.method,
                    target = e.target,
                    latency_us = e.latency_us,
                    record = %record,
                    "audit"
                )
            };
        }
        if e.outcome == super::AuditOutcome::Allow {
            emit!(tracing::Level::INFO);
        } else {
            emit!(tracing::Level::WARN);
        }
        Ok(())
    }
}

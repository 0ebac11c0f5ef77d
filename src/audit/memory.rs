//! In-memory sink, for tests and dry runs.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{AuditError, AuditEvent, AuditSink};

/// Keeps every record in memory as JSON. For tests and `mcp-security check`; not for
/// production (it grows without bound).
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Vec<Value>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// A copy of the records so far, oldest first.
    pub fn records(&self) -> Vec<Value> {
        match self.records.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let v = serde_json::to_value(event).map_err(|_| AuditError::Encode)?;
        match self.records.lock() {
            Ok(mut g) => g.push(v),
            Err(poisoned) => poisoned.into_inner().push(v),
        }
        Ok(())
    }
}

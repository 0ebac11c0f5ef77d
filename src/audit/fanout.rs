//! Fan-out: every record to several sinks.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditError, AuditEvent, AuditSink};

/// Writes every record to each of its sinks, in order. Every sink is tried even when one
/// fails; the record counts as written only when all of them took it (the first error is
/// returned), so the layer's failure mode applies to the weakest sink.
///
/// ```
/// use mcp_security::audit::{FanOutSink, MemorySink};
/// use std::sync::Arc;
///
/// let a = Arc::new(MemorySink::new());
/// let b = Arc::new(MemorySink::new());
/// let both = FanOutSink::new([a.clone() as Arc<_>, b.clone() as Arc<_>]);
/// assert_eq!(both.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FanOutSink {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl FanOutSink {
    /// Fans out to `sinks`.
    pub fn new(sinks: impl IntoIterator<Item = Arc<dyn AuditSink>>) -> Self {
        FanOutSink {
            sinks: sinks.into_iter().collect(),
        }
    }

    /// Adds a sink.
    pub fn with(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How many sinks.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether there are none (then every record fails: a record nobody keeps is lost).
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

#[async_trait]
impl AuditSink for FanOutSink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if self.sinks.is_empty() {
            return Err(AuditError::Closed);
        }
        let mut first_err = None;
        for s in &self.sinks {
            if let Err(e) = s.record(event).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

//! A user-written audit sink: records go to a SIEM-style collector (here, a bounded channel a
//! forwarding task drains), next to the hash-chained file, through a fan-out.
//!
//! ```text
//! cargo run --example custom_audit_sink
//! ```
//!
//! What a sink must do: persist the record or return an error, never drop it silently; the
//! layer's `on_failure` mode then decides whether the request is refused.

use std::sync::Arc;

use async_trait::async_trait;
use mcp_security::audit::{
    AuditError, AuditEvent, AuditSink, FanOutSink, FileSink, FileSinkConfig, FsyncPolicy,
    to_canonical_json, verify_files,
};
use mcp_security::authz::{AclAuthorizer, HostSet, ToolRule};
use mcp_security::{Action, RequestContext, SecurityLayer, Transport};
use tokio::sync::mpsc;

/// Sends each record, as canonical JSON, to a collector task. The channel is bounded: when the
/// collector falls behind, `record` waits (back-pressure) instead of dropping.
#[derive(Debug)]
struct SiemSink {
    tx: mpsc::Sender<Vec<u8>>,
}

/// The collector went away: the record could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("the SIEM collector is gone")]
struct CollectorGone;

#[async_trait]
impl AuditSink for SiemSink {
    async fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let mut json = Vec::with_capacity(512);
        to_canonical_json(event, &mut json)?;
        self.tx
            .send(json)
            .await
            .map_err(|_| AuditError::Other(Arc::new(CollectorGone)))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let collector = tokio::spawn(async move {
        let mut n = 0;
        while let Some(record) = rx.recv().await {
            // A real collector would ship this to its SIEM over TLS.
            println!("siem <- {}", String::from_utf8_lossy(&record));
            n += 1;
        }
        n
    });

    let file = FileSink::open(
        FileSinkConfig::new(dir.path().join("audit.jsonl")).fsync(FsyncPolicy::Always),
    )?;
    let sinks = FanOutSink::new([
        Arc::new(file) as Arc<dyn AuditSink>,
        Arc::new(SiemSink { tx }) as Arc<dyn AuditSink>,
    ]);
    let layer = SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(
            AclAuthorizer::builder()
                .tool(ToolRule::new("echo", HostSet::Any))
                .build()?,
        )
        .audit_sink(sinks)
        .build()?;

    let cx = RequestContext::new(Transport::InProcess);
    layer
        .evaluate(
            &Action::CallTool {
                name: "echo",
                arguments: None,
            },
            &cx,
            None,
        )
        .await?;
    let denied = layer
        .evaluate(
            &Action::CallTool {
                name: "rm",
                arguments: None,
            },
            &cx,
            None,
        )
        .await;
    assert!(denied.is_err());

    // Dropping the layer closes both sinks: the file's writer finishes, the channel closes.
    drop(layer);
    let delivered = collector.await?;
    let report = verify_files(&[dir.path().join("audit.jsonl")], None, None)?;
    println!(
        "{delivered} records delivered to the collector; the file holds {} chained records, intact: {}",
        report.events,
        report.is_intact()
    );
    Ok(())
}

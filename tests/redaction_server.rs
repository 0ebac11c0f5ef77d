//! Redaction and classification through a wrapped rmcp server and a real client: results
//! redacted, results above a host's clearance withheld, arguments redacted before the handler
//! when asked, and no detected value in the audit log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::sync::{Arc, Mutex};

use demo::{DemoKeys, sha256_hex};
use mcp_security::SecurityLayer;
use mcp_security::policy::Policy;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

fn policy(keys: &DemoKeys, audit: &std::path::Path, arguments: bool) -> String {
    format!(
        r#"
[[auth.api_keys]]
host = "analytics-bot"
key_sha256 = "{}"
[[auth.api_keys]]
host = "limited-host"
key_sha256 = "{}"

[[tools]]
name = "*"
allowed_hosts = ["*"]

[redaction]
detectors = ["all"]
arguments = {arguments}

[redaction.classification]
levels = {{ PII = "confidential", PCI = "restricted" }}
retention_days = {{ restricted = 30 }}
encryption_required = ["restricted"]

[[redaction.clearance]]
host = "limited-host"
level = "internal"

[audit]
path = "{}"
"#,
        sha256_hex(&keys.analytics),
        sha256_hex(&keys.limited),
        audit.display()
    )
}

fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

#[tokio::test]
async fn results_are_classified_and_withheld_above_clearance() {
    let dir = tempfile::tempdir().unwrap();
    let keys = DemoKeys::generate();
    let audit = dir.path().join("audit.jsonl");
    let layer = Policy::from_toml_str(&policy(&keys, &audit, false))
        .unwrap()
        .build()
        .unwrap();

    let cleared = demo::connect(&layer, &keys.analytics).await.unwrap();
    let r = cleared
        .call_tool(call("query_database", json!({"query": "SELECT 1"})))
        .await
        .unwrap();
    let text = &r.content[0].as_text().unwrap().text;
    assert!(
        text.contains("[EMAIL REDACTED]") && text.contains("[CREDIT_CARD REDACTED]"),
        "{text}"
    );
    cleared.cancel().await.unwrap();

    let limited = demo::connect(&layer, &keys.limited).await.unwrap();
    match limited
        .call_tool(call("query_database", json!({"query": "SELECT 1"})))
        .await
    {
        Err(rmcp::service::ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode(mcp_security::FORBIDDEN));
            assert_eq!(
                e.message,
                "response classified above the caller's clearance"
            );
        }
        other => panic!("expected the result to be withheld, got {other:?}"),
    }
    // Clean results still flow.
    let r = limited
        .call_tool(call("echo", json!({"text": "hello"})))
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text().unwrap().text, "hello");
    limited.cancel().await.unwrap();

    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        // The card as the server wrote it; a bare `4111` can occur in a digest or timestamp.
        !log.contains("jane.doe@example.com") && !log.contains("4111 1111"),
        "a detected value reached the audit log"
    );
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let allowed = records
        .iter()
        .find(|r| r["host"] == "analytics-bot" && r["target"] == "query_database")
        .unwrap();
    assert_eq!(allowed["classification"]["level"], "restricted");
    assert_eq!(
        allowed["classification"]["categories"],
        json!(["PII", "PCI"])
    );
    assert_eq!(allowed["classification"]["retention_days"], 30);
    assert_eq!(allowed["classification"]["encryption_required"], true);
    let withheld = records
        .iter()
        .find(|r| r["host"] == "limited-host" && r["target"] == "query_database")
        .unwrap();
    assert_eq!(
        (withheld["outcome"].as_str(), withheld["stage"].as_str()),
        (Some("deny"), Some("redaction"))
    );
    assert_eq!(withheld["rule"], "redaction.clearance");
}

/// Records the arguments it receives.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Value>>>);

impl ServerHandler for Recorder {
    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.0
            .lock()
            .unwrap()
            .push(Value::Object(r.arguments.unwrap_or_default()));
        Ok(CallToolResult::success(vec![ContentBlock::text("stored")]).into())
    }
}

async fn arguments_seen(redact_arguments: bool) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let keys = DemoKeys::generate();
    let layer: SecurityLayer = Policy::from_toml_str(&policy(
        &keys,
        &dir.path().join("a.jsonl"),
        redact_arguments,
    ))
    .unwrap()
    .build()
    .unwrap();
    let recorder = Recorder::default();
    let client = demo::connect_to(recorder.clone(), &layer, &keys.analytics)
        .await
        .unwrap();
    client
        .call_tool(call(
            "store",
            json!({"note": "mail jane.doe@example.com", "n": 3}),
        ))
        .await
        .unwrap();
    client.cancel().await.unwrap();
    recorder.0.lock().unwrap()[0].clone()
}

#[tokio::test]
async fn arguments_are_redacted_before_the_handler_when_asked() {
    assert_eq!(
        arguments_seen(true).await,
        json!({"note": "mail [EMAIL REDACTED]", "n": 3})
    );
    assert_eq!(
        arguments_seen(false).await,
        json!({"note": "mail jane.doe@example.com", "n": 3})
    );
}

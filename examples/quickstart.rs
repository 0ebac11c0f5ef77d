//! Quickstart: a real rmcp server wrapped in the security layer, and a real rmcp client talking
//! to it in-process. Prints what happened to each request and where the audit log went.
//!
//! Run it with `cargo run --example quickstart`.

#![allow(clippy::print_stdout, reason = "an example prints its results")]

#[path = "support/demo.rs"]
mod demo;

use std::error::Error;

use demo::{DemoKeys, connect, demo_policy};
use mcp_security::policy::Policy;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams};
use rmcp::service::ServiceError;
use serde_json::json;

fn call(name: &'static str, args: serde_json::Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

fn describe_error(e: ServiceError) -> String {
    match e {
        ServiceError::McpError(e) => format!("denied: {} {}", e.code.0, e.message),
        other => format!("failed: {other}"),
    }
}

fn describe_result(r: Result<rmcp::model::CallToolResult, ServiceError>) -> String {
    match r {
        Ok(r) => {
            let text = r
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone())
                .unwrap_or_default();
            if r.is_error == Some(true) {
                format!("refused as invalid input: {text}")
            } else {
                format!("allowed: {text}")
            }
        }
        Err(e) => describe_error(e),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("mcp-security-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let audit_path = dir.join("audit.jsonl");
    let keys = DemoKeys::generate();
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, demo_policy(&keys, &audit_path))?;
    let layer = Policy::load(&policy_path)?.build()?;

    let mut rows: Vec<(&str, &str, String)> = Vec::new();

    let analytics = connect(&layer, &keys.analytics).await?;
    let r = analytics
        .call_tool(call(
            "query_database",
            json!({"query": "SELECT id FROM orders", "limit": 5}),
        ))
        .await;
    rows.push((
        "analytics-bot",
        "tools/call query_database",
        describe_result(r),
    ));
    analytics.cancel().await?;

    let limited = connect(&layer, &keys.limited).await?;
    let r = limited.call_tool(call("delete_all_data", json!({}))).await;
    rows.push((
        "limited-host",
        "tools/call delete_all_data",
        describe_result(r),
    ));
    let r = limited
        .read_resource(ReadResourceRequestParams::new("file://../../etc/passwd"))
        .await;
    rows.push((
        "limited-host",
        "resources/read file://../../etc/passwd",
        r.map(|_| "allowed".to_owned())
            .unwrap_or_else(describe_error),
    ));
    let r = limited
        .read_resource(ReadResourceRequestParams::new("file:///etc/passwd"))
        .await;
    rows.push((
        "limited-host",
        "resources/read file:///etc/passwd",
        r.map(|_| "allowed".to_owned())
            .unwrap_or_else(describe_error),
    ));
    let r = limited
        .call_tool(call(
            "query_database",
            json!({"query": "'; DROP TABLE users; --"}),
        ))
        .await;
    rows.push((
        "limited-host",
        "tools/call query_database (SQL injection)",
        describe_result(r),
    ));
    limited.cancel().await?;

    let outcome = match connect(&layer, "mcpk_guessed_key").await {
        Ok(c) => {
            c.cancel().await?;
            "connected".to_owned()
        }
        Err(e) => format!("connection refused: {e}"),
    };
    rows.push(("unknown key", "initialize", outcome));

    println!(
        "mcp-security quickstart: an rmcp server wrapped in the layer, an rmcp client in-process\n"
    );
    println!("{:<14} | {:<42} | outcome", "caller", "request");
    println!("{:-<14}-+-{:-<42}-+-{:-<60}", "", "", "");
    for (who, what, outcome) in &rows {
        println!("{who:<14} | {what:<42} | {outcome}");
    }
    let records = std::fs::read_to_string(&audit_path)?;
    let denied = records
        .lines()
        .filter(|l| l.contains(r#""outcome":"deny""#))
        .count();
    let leaks =
        keys.all().iter().any(|k| records.contains(k)) || records.contains("jane.doe@example.com");
    println!(
        "\naudit log: {} ({} records, {} denials; {})",
        audit_path.display(),
        records.lines().count(),
        denied,
        if leaks {
            "WARNING: a secret reached the log"
        } else {
            "checked: no API key or redacted value in it"
        }
    );
    println!("policy:    {}", policy_path.display());
    Ok(())
}

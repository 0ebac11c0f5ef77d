//! The proxy answers like the embedded wrapper: the same rmcp demo server, once wrapped in
//! `SecureServer` and once unwrapped behind `Proxy::relay`, each driven by a real rmcp client
//! with the same key and the same policy, must give the same answer to every request: lists,
//! allowed and redacted calls, hidden tools, invalid arguments, resources inside and outside
//! the roots, hidden prompts. (Only what the handler itself reads from the embedded wrapper,
//! the caller's `Identity` in its request extensions, cannot cross a process boundary.)

#![cfg(feature = "proxy")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;
#[path = "../examples/support/relay.rs"]
mod relay;

use std::path::Path;

use demo::{DemoKeys, DemoServer, demo_policy};
use mcp_security::Credentials;
use mcp_security::adapters::proxy::Proxy;
use mcp_security::policy::Policy;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use serde_json::{Value, json};

async fn through_proxy(policy: &Policy, key: &str) -> RunningService<RoleClient, ()> {
    let proxy = Proxy::new(policy.build().unwrap(), policy.proxy().clone())
        .with_credentials(Credentials::api_key(key));
    relay::through_proxy(proxy, DemoServer).await
}

fn outcome<T: serde::Serialize>(r: Result<T, ServiceError>) -> Value {
    match r {
        Ok(v) => serde_json::to_value(v).unwrap(),
        Err(ServiceError::McpError(e)) => json!({"error": e.code.0, "message": e.message}),
        Err(other) => panic!("transport failure: {other}"),
    }
}

fn call(name: &str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name.to_owned());
    p.arguments = args.as_object().cloned();
    p
}

/// Every answer a client gets, in order.
async fn session(client: &RunningService<RoleClient, ()>) -> Vec<Value> {
    let mut got = Vec::new();
    let names = |v: Vec<String>| {
        let mut v = v;
        v.sort();
        json!(v)
    };
    got.push(names(
        client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect(),
    ));
    got.push(names(
        client
            .list_all_resources()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.uri.clone())
            .collect(),
    ));
    got.push(names(
        client
            .list_all_prompts()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name.clone())
            .collect(),
    ));
    for (tool, args) in [
        ("echo", json!({"text": "hi"})),
        (
            "query_database",
            json!({"query": "SELECT id FROM orders", "limit": 5}),
        ),
        (
            "query_database",
            json!({"query": "SELECT id FROM orders; DROP TABLE users"}),
        ),
        (
            "query_database",
            json!({"query": "SELECT id FROM orders", "limit": 0}),
        ),
        ("delete_all_data", json!({})),
        ("no_such_tool", json!({})),
    ] {
        got.push(outcome(client.call_tool(call(tool, args)).await));
    }
    for uri in [
        "file:///srv/data/report.csv",
        "file:///etc/passwd",
        "file://../../etc/passwd",
        "file:///srv/data/%2e%2e/%2e%2e/etc/passwd",
    ] {
        got.push(outcome(
            client
                .read_resource(ReadResourceRequestParams::new(uri))
                .await,
        ));
    }
    got.push(outcome(
        client
            .get_prompt(GetPromptRequestParams::new("summarize"))
            .await,
    ));
    got
}

#[tokio::test]
async fn the_proxy_answers_exactly_like_secure_server() {
    let dir = tempfile::tempdir().unwrap();
    let keys = DemoKeys::generate();
    let policy_for = |audit: &Path| Policy::from_toml_str(&demo_policy(&keys, audit)).unwrap();
    let embedded_policy = policy_for(&dir.path().join("embedded.jsonl"));
    let proxy_policy = policy_for(&dir.path().join("proxy.jsonl"));

    for key in [&keys.limited, &keys.analytics, &keys.admin] {
        let layer = embedded_policy.build().unwrap();
        let embedded = demo::connect(&layer, key).await.unwrap();
        let expected = session(&embedded).await;
        embedded.cancel().await.unwrap();

        let proxied = through_proxy(&proxy_policy, key).await;
        let got = session(&proxied).await;
        proxied.cancel().await.unwrap();

        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "answer {i} differs");
        }
    }

    // Spot checks that the shared answers are the secure ones.
    let proxied = through_proxy(&proxy_policy, &keys.limited).await;
    let got = session(&proxied).await;
    proxied.cancel().await.unwrap();
    assert_eq!(got[0], json!(["echo", "query_database", "who_am_i"]));
    assert_eq!(got[1], json!(["file:///srv/data/report.csv"]));
    assert_eq!(got[2], json!([]));
    assert_eq!(got[3]["content"][0]["text"], "hi");
    let rows = got[4]["content"][0]["text"].as_str().unwrap();
    assert!(
        rows.contains("[EMAIL REDACTED]") && !rows.contains("jane.doe"),
        "{rows}"
    );
    assert_eq!(got[5]["isError"], true);
    assert_eq!(got[7]["error"], -32602);
    assert_eq!(got[10]["error"], -32002);

    // Both logs hold the same decisions.
    let decisions = |file: &str| -> Vec<(String, String, String)> {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["method"] != "notifications/initialized")
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or_default().to_owned(),
                    r["target"].as_str().unwrap_or_default().to_owned(),
                    r["outcome"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let embedded = decisions("embedded.jsonl");
    let proxy = decisions("proxy.jsonl");
    for d in &embedded {
        assert!(proxy.contains(d), "the proxy did not audit {d:?}");
    }
}

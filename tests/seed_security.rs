//! The seed's security cases, through a real rmcp client talking to a wrapped rmcp server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::path::Path;

use demo::{DemoKeys, demo_policy};
use mcp_security::SecurityLayer;
use mcp_security::policy::Policy;
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, ErrorCode, GetPromptRequestParams, ReadResourceRequestParams,
};
use rmcp::service::{RunningService, ServiceError};
use serde_json::{Value, json};

struct Fixture {
    keys: DemoKeys,
    layer: SecurityLayer,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = DemoKeys::generate();
        let policy =
            Policy::from_toml_str(&demo_policy(&keys, &dir.path().join("audit.jsonl"))).unwrap();
        Fixture {
            keys,
            layer: policy.build().unwrap(),
            dir,
        }
    }

    fn audit_path(&self) -> std::path::PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    async fn connect(&self, key: &str) -> Result<RunningService<RoleClient, ()>, String> {
        demo::connect(&self.layer, key).await
    }
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is one JSON object"))
        .collect()
}

fn mcp_error(e: ServiceError) -> rmcp::ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

#[tokio::test]
async fn invalid_credentials_are_rejected_at_connection() {
    let f = Fixture::new();
    let err = f
        .connect("mcpk_not_a_real_key")
        .await
        .expect_err("an unknown key must not connect");
    assert!(err.contains("unauthenticated"), "{err}");
    let recs = audit_records(&f.audit_path());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["outcome"], "deny");
    assert_eq!(recs[0]["stage"], "authentication");
    assert_eq!(recs[0]["method"], "initialize");
    assert_eq!(recs[0]["detail"], "credentials not recognised");
}

#[tokio::test]
async fn expired_credentials_are_rejected() {
    let f = Fixture::new();
    let err = f
        .connect(&f.keys.expired.clone())
        .await
        .expect_err("an expired key must not connect");
    assert!(err.contains("unauthenticated"), "{err}");
    let recs = audit_records(&f.audit_path());
    assert_eq!(recs[0]["detail"], "credentials expired");
    assert_eq!(recs[0]["deny_kind"], "unauthenticated");
}

#[tokio::test]
async fn seed_cases_through_a_real_client() {
    let f = Fixture::new();
    let limited = f.connect(&f.keys.limited.clone()).await.unwrap();

    // resources/read of file:///etc/passwd by a limited host: denied, and reads as unknown.
    let e = mcp_error(
        limited
            .read_resource(ReadResourceRequestParams::new("file:///etc/passwd"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode(mcp_security::RESOURCE_NOT_FOUND));
    assert_eq!(e.message, "resource not found");

    // tools/call delete_all_data by a limited host: denied exactly as an unknown tool.
    let e = mcp_error(
        limited
            .call_tool(call("delete_all_data", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert_eq!(e.message, "tool not found");
    let unknown = mcp_error(
        limited
            .call_tool(call("no_such_tool", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((unknown.code, unknown.message), (e.code, e.message));

    // file://../../etc/passwd: an invalid resource URI, refused before anything else.
    let e = mcp_error(
        limited
            .read_resource(ReadResourceRequestParams::new("file://../../etc/passwd"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert!(
        e.message.starts_with("invalid resource uri"),
        "{}",
        e.message
    );

    // SQL injection in query_database: invalid input, as a tool error the model can read.
    let r = limited
        .call_tool(call(
            "query_database",
            json!({"query": "'; DROP TABLE users; --"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = r.content[0].as_text().unwrap().text.clone();
    assert_eq!(
        text,
        "invalid arguments: argument `query` does not match the allowed pattern"
    );
    assert!(!text.contains("DROP"));

    // The limited host lists only what it may use.
    let tools: Vec<String> = limited
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(tools, ["echo", "who_am_i", "query_database"]);
    let resources = limited.list_resources(None).await.unwrap();
    assert_eq!(
        resources
            .resources
            .iter()
            .map(|r| r.uri.as_str())
            .collect::<Vec<_>>(),
        ["file:///srv/data/report.csv"]
    );
    let prompts = limited.list_prompts(None).await.unwrap();
    assert!(prompts.prompts.is_empty());
    let e = mcp_error(
        limited
            .get_prompt(GetPromptRequestParams::new("summarize"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "prompt not found");

    // An allowed call: the handler sees the identity, the result is redacted.
    let me = limited
        .call_tool(call("who_am_i", json!({})))
        .await
        .unwrap();
    assert_eq!(
        me.content[0].as_text().unwrap().text,
        "you are limited-host"
    );
    let r = limited
        .call_tool(call(
            "query_database",
            json!({"query": "SELECT id FROM orders", "limit": 5}),
        ))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false));
    let text = &r.content[0].as_text().unwrap().text;
    assert!(
        text.contains("[EMAIL REDACTED]") && text.contains("[CREDIT_CARD REDACTED]"),
        "{text}"
    );
    assert!(
        !text.contains("jane.doe@example.com") && !text.contains("4111 1111"),
        "{text}"
    );
    let data = limited
        .read_resource(ReadResourceRequestParams::new(
            "file:///srv/data/report.csv",
        ))
        .await
        .unwrap();
    let body = serde_json::to_string(&data).unwrap();
    assert!(
        body.contains("[EMAIL REDACTED]") && !body.contains("ops@example.com"),
        "{body}"
    );

    limited.cancel().await.unwrap();

    // Every denial has an audit record; no record holds a raw secret or redacted value.
    let raw = std::fs::read_to_string(f.audit_path()).unwrap();
    for secret in f.keys.all() {
        assert!(!raw.contains(secret), "an API key reached the audit log");
    }
    // Probe for the values as the server wrote them: a bare `4111` also turns up by chance in
    // hash-chain digests, timestamps and latencies, which made this check flaky.
    for leaked in [
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "1111 1111",
        "ops@example.com",
        "DROP TABLE",
    ] {
        assert!(!raw.contains(leaked), "`{leaked}` reached the audit log");
    }
    let recs = audit_records(&f.audit_path());
    let denied: Vec<&Value> = recs.iter().filter(|r| r["outcome"] == "deny").collect();
    let by = |method: &str, target: &str| {
        denied
            .iter()
            .any(|r| r["method"] == method && r["target"] == target)
    };
    assert!(by("resources/read", "file:///etc/passwd"));
    assert!(by("tools/call", "delete_all_data"));
    assert!(by("tools/call", "no_such_tool"));
    assert!(by("resources/read", "file://../../etc/passwd"));
    assert!(by("tools/call", "query_database"));
    assert!(by("prompts/get", "summarize"));
    assert_eq!(denied.len(), 6, "one record per denial: {denied:#?}");
    for r in &denied {
        assert_eq!(r["host"].as_str().unwrap_or("limited-host"), "limited-host");
        assert!(
            r["stage"].is_string() && r["rule"].is_string() && r["reason"].is_string(),
            "{r}"
        );
    }
    let frame = denied
        .iter()
        .find(|r| r["target"] == "file://../../etc/passwd")
        .unwrap();
    assert_eq!(frame["stage"], "frame");
    let sql = denied
        .iter()
        .find(|r| r["target"] == "query_database")
        .unwrap();
    assert_eq!(
        (sql["stage"].as_str(), sql["deny_kind"].as_str()),
        (Some("validation"), Some("invalid_arguments"))
    );
    let passwd = denied
        .iter()
        .find(|r| r["target"] == "file:///etc/passwd")
        .unwrap();
    assert_eq!(
        (passwd["stage"].as_str(), passwd["rule"].as_str()),
        (Some("authorization"), Some("default-deny"))
    );
    let allowed_query = recs
        .iter()
        .find(|r| r["outcome"] == "allow" && r["target"] == "query_database")
        .unwrap();
    assert_eq!(allowed_query["redactions"], 2);
    assert_eq!(allowed_query["rule"], "tools[2]");
}

#[tokio::test]
async fn admin_may_do_what_the_limited_host_may_not() {
    let f = Fixture::new();
    let admin = f.connect(&f.keys.admin.clone()).await.unwrap();
    let r = admin
        .call_tool(call("delete_all_data", json!({})))
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text().unwrap().text, "all data deleted");
    // Not listed for admin: query_database.
    let e = mcp_error(
        admin
            .call_tool(call("query_database", json!({"query": "SELECT a FROM b"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message, "tool not found");
    admin.cancel().await.unwrap();
}

#[tokio::test]
async fn audit_failure_fails_closed() {
    let keys = DemoKeys::generate();
    // /dev/full accepts the open and fails every write, like a sink on a full disk.
    let failing = Policy::from_toml_str(&demo_policy(&keys, Path::new("/dev/full")))
        .unwrap()
        .build()
        .unwrap();
    let f = Fixture {
        keys: keys.clone(),
        layer: failing.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let err = f
        .connect(&keys.analytics)
        .await
        .expect_err("no audit, no service");
    assert!(err.contains("audit unavailable"), "{err}");
    assert_eq!(failing.audit_failures(), 1);
}

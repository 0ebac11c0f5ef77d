//! A small MCP server and policy shared by the quickstart, the integration tests and the
//! benchmarks: a real rmcp `ServerHandler` with tools, resources and a prompt whose results
//! carry personal data, so that every stage of the layer has something to do.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each user (example, test, bench) uses a different part"
)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;

use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::{Credentials, Identity, SecurityLayer, Transport};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::service::RunningService;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use rmcp::{RoleClient, ServiceExt};

/// The demo server. It trusts its caller completely: the layer is what protects it.
#[derive(Debug, Clone, Default)]
pub struct DemoServer;

fn schema(props: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::json!({ "type": "object", "properties": props }) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

pub fn demo_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "echo",
            "Echo the text back",
            schema(serde_json::json!({"text": {"type": "string"}})),
        ),
        Tool::new(
            "who_am_i",
            "Say which host is calling",
            schema(serde_json::json!({})),
        ),
        Tool::new(
            "query_database",
            "Run a read-only query",
            schema(serde_json::json!({"query": {"type": "string"}, "limit": {"type": "integer"}})),
        ),
        Tool::new(
            "delete_all_data",
            "Delete everything",
            schema(serde_json::json!({})),
        ),
    ]
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(demo_tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        demo_tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arg = |k: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let text = match &*request.name {
            "echo" => arg("text"),
            "who_am_i" => match context.extensions.get::<Identity>() {
                Some(id) => format!("you are {}", id.host()),
                None => "no identity".to_owned(),
            },
            "query_database" => format!(
                "1 row for `{}`: customer jane.doe@example.com paid with card 4111 1111 1111 1111",
                arg("query")
            ),
            "delete_all_data" => "all data deleted".to_owned(),
            _ => return Err(McpError::invalid_params("tool not found", None)),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("file:///srv/data/report.csv", "report"),
            Resource::new("file:///etc/passwd", "passwd"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let body = if request.uri == "file:///etc/passwd" {
            "root:x:0:0:root:/root:/bin/bash".to_owned()
        } else {
            "id,owner\n1,ops@example.com\n".to_owned()
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(body, request.uri)]).into())
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "summarize",
            Some("Summarize a report"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        _r: GetPromptRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            "Summarize; escalate to boss@example.com",
        )])
        .into())
    }
}

/// API keys made fresh for each run; only their hashes go into the policy.
#[derive(Debug, Clone)]
pub struct DemoKeys {
    pub analytics: String,
    pub limited: String,
    pub expired: String,
    pub admin: String,
}

fn random_key(label: &str) -> String {
    // RandomState is seeded from the OS for every instance: good enough for throwaway demo keys.
    let a = RandomState::new().hash_one(label);
    let b = RandomState::new().hash_one(label);
    format!("mcpk_{label}_{a:016x}{b:016x}")
}

impl DemoKeys {
    pub fn generate() -> Self {
        DemoKeys {
            analytics: random_key("analytics"),
            limited: random_key("limited"),
            expired: random_key("expired"),
            admin: random_key("admin"),
        }
    }

    pub fn all(&self) -> [&str; 4] {
        [&self.analytics, &self.limited, &self.expired, &self.admin]
    }
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The demo policy, with the keys' hashes and the audit path filled in.
pub fn demo_policy(keys: &DemoKeys, audit: &Path) -> String {
    format!(
        r#"
[server]
name = "demo"

[auth]
[[auth.api_keys]]
host = "analytics-bot"
key_sha256 = "{analytics}"

[[auth.api_keys]]
host = "limited-host"
key_sha256 = "{limited}"

[[auth.api_keys]]
host = "expired-host"
key_sha256 = "{expired}"
expires = 2020-01-01T00:00:00Z

[[auth.api_keys]]
host = "admin"
key_sha256 = "{admin}"

[[tools]]
name = "echo"
allowed_hosts = ["*"]

[[tools]]
name = "who_am_i"
allowed_hosts = ["*"]

[[tools]]
name = "query_database"
allowed_hosts = ["analytics-bot", "limited-host"]
additional_arguments = false
arguments.query = {{ type = "string", required = true, max_length = 500, pattern = "SELECT [A-Za-z0-9_, *]+ FROM [A-Za-z0-9_]+( WHERE [A-Za-z0-9_]+ = [0-9]+)?" }}
arguments.limit = {{ type = "integer", min = 1, max = 1000, required = false }}

[[tools]]
name = "delete_all_data"
allowed_hosts = ["admin"]

[[resources]]
uri = "file:///srv/data/**"
allowed_hosts = ["analytics-bot", "limited-host"]

[[prompts]]
name = "summarize"
allowed_hosts = ["analytics-bot"]

[validation]
max_frame_bytes = 65536
max_depth = 16
schemes = ["file"]
roots = ["/srv/data"]

[redaction]
detectors = ["email", "credit_card"]

[audit]
path = "{audit}"
on_failure = "deny"
"#,
        analytics = sha256_hex(&keys.analytics),
        limited = sha256_hex(&keys.limited),
        expired = sha256_hex(&keys.expired),
        admin = sha256_hex(&keys.admin),
        audit = audit.display(),
    )
}

/// Starts the demo server wrapped in `layer`, serving one in-process connection whose caller
/// presents `key`, and connects an rmcp client to it. A connection the layer refuses (a wrong
/// key) comes back as the error text.
pub async fn connect(
    layer: &SecurityLayer,
    key: &str,
) -> Result<RunningService<RoleClient, ()>, String> {
    connect_to(DemoServer, layer, key).await
}

/// [`connect`] with any handler in place of the demo server.
pub async fn connect_to<H: ServerHandler>(
    handler: H,
    layer: &SecurityLayer,
    key: &str,
) -> Result<RunningService<RoleClient, ()>, String> {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = SecureServer::new(handler, layer.clone())
        .with_credentials(Credentials::api_key(key))
        .with_transport(Transport::InProcess);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.map_err(|e| e.to_string())
}

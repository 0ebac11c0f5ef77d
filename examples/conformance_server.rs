//! The server the official MCP conformance suite (`@modelcontextprotocol/conformance`) tests:
//! every tool, resource and prompt its server scenarios call, served over Streamable HTTP behind
//! the HTTP layer and `SecureServer` (authorization, validation, redaction and audit all active,
//! configured by `examples/conformance_policy.toml`).
//!
//! ```text
//! cargo run --example conformance_server --features http -- --policy examples/conformance_policy.toml --listen 127.0.0.1:3001
//! cargo run --example conformance_server --features http -- --unwrapped --listen 127.0.0.1:3002
//! ```
//!
//! `--unwrapped` serves the same handler with rmcp alone (its default Streamable HTTP
//! configuration, no layer), to tell what rmcp itself fails from what the layer changes.
//! `.ci/conformance.sh` runs the suite against both.

#![allow(clippy::print_stdout, reason = "an example prints where it listens")]
#![allow(
    deprecated,
    reason = "sampling is deprecated in rmcp (SEP-2577) but still a conformance scenario"
)]

#[path = "support/http.rs"]
mod http;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use rmcp::model::{
    AudioContent, CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
    CompleteResult, CompletionInfo, ContentBlock, CreateMessageRequestParams, ElicitRequestParams,
    ElicitationSchema, GetPromptRequestParams, GetPromptResponse, GetPromptResult, ImageContent,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, Role, SamplingMessage, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==";
/// A WAV file with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    Tool::new(name, description, object(schema))
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn tools() -> Vec<Tool> {
    vec![
        tool("test_simple_text", "Returns simple text content", no_args()),
        tool("test_image_content", "Returns image content", no_args()),
        tool("test_audio_content", "Returns audio content", no_args()),
        tool(
            "test_embedded_resource",
            "Returns an embedded resource",
            no_args(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, image and resource content",
            no_args(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends log messages while it runs",
            no_args(),
        ),
        tool("test_error_handling", "Always fails", no_args()),
        tool(
            "test_tool_with_progress",
            "Reports progress while it runs",
            no_args(),
        ),
        tool(
            "test_sampling",
            "Asks the client's model",
            json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}),
        ),
        tool(
            "test_elicitation",
            "Asks the user",
            json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Asks the user, with defaults (SEP-1034)",
            no_args(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Asks the user to pick from enums (SEP-1330)",
            no_args(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Input schema with JSON Schema 2020-12 keywords",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                "additionalProperties": false
            }),
        ),
        tool(
            "test_reconnection",
            "Takes a moment, to test SSE reconnection",
            no_args(),
        ),
    ]
}

/// Implements what the suite's server scenarios call. It trusts its caller: the layers around it
/// are what is under test.
#[derive(Debug, Clone, Default)]
struct Conformance;

fn text(s: impl Into<String>) -> ContentBlock {
    ContentBlock::text(s)
}

async fn elicit(
    cx: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
) -> Result<String, String> {
    let schema: ElicitationSchema = serde_json::from_value(schema).map_err(|e| e.to_string())?;
    let params = serde_json::from_value::<ElicitRequestParams>(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": schema,
    }))
    .map_err(|e| e.to_string())?;
    let result = cx
        .peer
        .create_elicitation(params)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::to_string(&result).unwrap_or_default())
}

impl Conformance {
    async fn run_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let arg = |k: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(match &*request.name {
            "test_simple_text" => {
                CallToolResult::success(vec![text("This is a simple text response for testing.")])
            }
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")])
            }
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::Audio(
                AudioContent::new(WAV, "audio/wav"),
            )]),
            "test_embedded_resource" => {
                CallToolResult::success(vec![ContentBlock::resource(ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                ))])
            }
            "test_multiple_content_types" => CallToolResult::success(vec![
                text("Multiple content types test:"),
                ContentBlock::image(PNG, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        r#"{"test":"data","value":123}"#,
                        "test://mixed-content-resource",
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => {
                for msg in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    let _ = cx
                        .peer
                        .notify_logging_message(
                            LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(msg))
                                .with_logger("conformance-server"),
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                CallToolResult::success(vec![text("Logging test completed")])
            }
            "test_error_handling" => CallToolResult::error(vec![text(
                "This tool intentionally returns an error for testing",
            )]),
            "test_tool_with_progress" => {
                let token = cx.meta.get_progress_token();
                for (progress, message) in
                    [(0.0, "Starting"), (50.0, "Halfway"), (100.0, "Complete")]
                {
                    if let Some(token) = &token {
                        let _ = cx
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), progress)
                                    .with_total(100.0)
                                    .with_message(message),
                            )
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                CallToolResult::success(vec![text("Progress test completed")])
            }
            "test_sampling" => {
                let prompt = arg("prompt").unwrap_or_else(|| "Hello".to_owned());
                match cx
                    .peer
                    .create_message(CreateMessageRequestParams::new(
                        vec![SamplingMessage::user_text(prompt)],
                        100,
                    ))
                    .await
                {
                    Ok(r) => {
                        let answer = serde_json::to_value(&r.message)
                            .ok()
                            .and_then(|m| {
                                m.pointer("/content/text")
                                    .or_else(|| m.pointer("/content/0/text"))
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            })
                            .unwrap_or_else(|| "no text".to_owned());
                        CallToolResult::success(vec![text(format!("LLM response: {answer}"))])
                    }
                    Err(e) => CallToolResult::error(vec![text(format!("Sampling error: {e}"))]),
                }
            }
            "test_elicitation" => {
                let message =
                    arg("message").unwrap_or_else(|| "Please provide your information".to_owned());
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                });
                match elicit(&cx, &message, schema).await {
                    Ok(r) => CallToolResult::success(vec![text(format!("User response: {r}"))]),
                    Err(e) => CallToolResult::error(vec![text(format!("Elicitation error: {e}"))]),
                }
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "User's name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User's age", "default": 30},
                        "score": {"type": "number", "description": "User's score", "default": 95.5},
                        "status": {"type": "string", "description": "User's status", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Whether the user is verified", "default": true}
                    }
                });
                match elicit(&cx, "Please provide values (all have defaults)", schema).await {
                    Ok(r) => {
                        CallToolResult::success(vec![text(format!("Elicitation completed: {r}"))])
                    }
                    Err(e) => CallToolResult::error(vec![text(format!("Elicitation error: {e}"))]),
                }
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"}
                        ]},
                        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "items": {"anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"}
                        ]}}
                    }
                });
                match elicit(&cx, "Test enum schema improvements", schema).await {
                    Ok(r) => CallToolResult::success(vec![text(format!(
                        "Enum elicitation completed: {r}"
                    ))]),
                    Err(e) => CallToolResult::error(vec![text(format!("Elicitation error: {e}"))]),
                }
            }
            "json_schema_2020_12_tool" => {
                let name = arg("name").unwrap_or_else(|| "world".to_owned());
                CallToolResult::success(vec![text(format!("Hello, {name}!"))])
            }
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                CallToolResult::success(vec![text("Reconnection test completed")])
            }
            _ => return Err(McpError::invalid_params("tool not found", None)),
        })
    }
}

impl ServerHandler for Conformance {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-security-conformance",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn ping(&self, _cx: RequestContext<RoleServer>) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.run_tool(request, cx).await.map(Into::into)
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("test://static-text", "Static Text Resource")
                .with_description("A static text resource for testing")
                .with_mime_type("text/plain"),
            Resource::new("test://static-binary", "Static Binary Resource")
                .with_description("A static binary resource for testing")
                .with_mime_type("image/png"),
            Resource::new("test://watched-resource", "Watched Resource")
                .with_description("A resource clients can subscribe to")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("test://template/{id}/data", "Dynamic Resource")
                .with_description("A resource with a parameter")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
            }
            "test://watched-resource" => ResourceContents::text("Watched resource content.", uri),
            "test://static-binary" => ResourceContents::blob(PNG, uri).with_mime_type("image/png"),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|s| s.strip_suffix("/data"))
            {
                Some(id) => ResourceContents::text(
                    json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                        .to_string(),
                    uri,
                )
                .with_mime_type("application/json"),
                None => return Err(McpError::resource_not_found("resource not found", None)),
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A simple prompt without arguments"),
                None,
            ),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with arguments"),
                Some(vec![
                    PromptArgument::new("arg1")
                        .with_description("First argument")
                        .with_required(true),
                    PromptArgument::new("arg2")
                        .with_description("Second argument")
                        .with_required(false),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt with an embedded resource"),
                Some(vec![
                    PromptArgument::new("resourceUri")
                        .with_description("The resource to embed")
                        .with_required(false),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt with an image"),
                None,
            ),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let arg = |k: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let result = match request.name.as_str() {
            "test_simple_prompt" => GetPromptResult::new(vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )]),
            "test_prompt_with_arguments" => GetPromptResult::new(vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    arg("arg1"),
                    arg("arg2")
                ),
            )]),
            "test_prompt_with_embedded_resource" => {
                let uri = Some(arg("resourceUri"))
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "test://example-resource".to_owned());
                GetPromptResult::new(vec![
                    PromptMessage::new_resource(
                        Role::User,
                        uri,
                        Some("text/plain".to_owned()),
                        Some("Embedded resource content for testing.".to_owned()),
                        None,
                        None,
                        None,
                    ),
                    PromptMessage::new_text(
                        Role::User,
                        "Please process the embedded resource above.",
                    ),
                ])
            }
            "test_prompt_with_image" => GetPromptResult::new(vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::Image(ImageContent::new(PNG, "image/png")),
                ),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ]),
            _ => return Err(McpError::invalid_params("prompt not found", None)),
        };
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let values = match &request.r#ref {
            Reference::Prompt(_) => vec!["paris".to_owned(), "park".to_owned(), "party".to_owned()],
            _ => Vec::new(),
        };
        let info = CompletionInfo::new(values).map_err(|e| McpError::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|a| a == "--unwrapped") {
        return unwrapped().await;
    }
    let args = http::args(
        "conformance_server --policy FILE --listen 127.0.0.1:PORT | --unwrapped --listen 127.0.0.1:PORT",
    )?;
    http::serve(&args, || Conformance).await
}

/// rmcp alone, with its default Streamable HTTP configuration: the baseline.
async fn unwrapped() -> Result<(), Box<dyn Error>> {
    let mut listen: Option<SocketAddr> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--listen" {
            listen = it.next().map(|s| s.parse()).transpose()?;
        }
    }
    let listen = listen.ok_or("usage: conformance_server --unwrapped --listen 127.0.0.1:PORT")?;
    let mcp = StreamableHttpService::new(
        || Ok(Conformance),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "listening on http://{}/mcp (unwrapped)",
        listener.local_addr()?
    );
    // TCP_NODELAY: see examples/support/http.rs.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

//! `SecureServer<H>`: the layer around an rmcp `ServerHandler`.

#![allow(
    deprecated,
    reason = "subscribe/unsubscribe are deprecated in rmcp but still served to older peers, so they are gated too"
)]

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    CancelledNotificationParam, CompleteRequestParams, CompleteResult, ContentBlock,
    CustomNotification, CustomRequest, CustomResult, DiscoverResult, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, GetSkillRequestParams, GetSkillResult,
    GetTaskParams, GetTaskResult, InitializeRequestParams, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListSkillsResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ReadResourceDirectoryRequestParams, ReadResourceDirectoryResult, ReadResourceRequestParams,
    ReadResourceResponse, ResourceContents, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use super::tasks::TaskOwners;
use crate::context::{CorrelationId, Credentials, Transport};
use crate::decision::{Denial, DenyKind};
use crate::layer::{Admission, Completion, SecurityLayer};
use crate::message::{Action, ListKind, MessageError};
use crate::redact::RedactionReport;
use crate::validate::{ArgumentsOf, ToolSchema};

/// Every `ServerHandler` method of the rmcp version this crate is built against, in the order
/// rmcp declares them. `SecureServer` implements each one; the test suite checks this list
/// against the rmcp source in Cargo.lock, so an rmcp upgrade that adds a method fails the build
/// instead of letting the method fall back to rmcp's default, unchecked.
pub const FORWARDED_METHODS: &[&str] = &[
    "ping",
    "initialize",
    "negotiate_initialize",
    "supported_protocol_versions",
    "discover",
    "complete",
    "set_level",
    "get_prompt",
    "list_prompts",
    "list_resources",
    "list_resource_templates",
    "read_resource",
    "accepted_subscription_filter",
    "listen",
    "subscribe",
    "unsubscribe",
    "call_tool",
    "list_tools",
    "get_tool",
    "on_custom_request",
    "on_cancelled",
    "on_progress",
    "on_initialized",
    "on_roots_list_changed",
    "on_custom_notification",
    "get_info",
    "get_task",
    "update_task",
    "cancel_task",
    "list_skills",
    "get_skill",
    "read_resource_directory",
];

/// How many task ids a server remembers the owner of.
const MAX_TRACKED_TASKS: usize = 100_000;

/// Wraps any rmcp [`ServerHandler`] in a [`SecurityLayer`].
///
/// The wrapper is itself a `ServerHandler`, so it serves over stdio (`serve(stdio())`), any
/// `IntoTransport`, and rmcp's Streamable HTTP service alike. The inner handler finds the
/// caller's [`Identity`](crate::Identity) in `context.extensions` (or through rmcp's
/// `Extension<Identity>` extractor in `#[tool]` functions).
#[derive(Debug)]
pub struct SecureServer<H> {
    inner: Arc<H>,
    layer: SecurityLayer,
    credentials: Credentials,
    transport: Transport,
    tasks: Arc<TaskOwners>,
}

impl<H> Clone for SecureServer<H> {
    fn clone(&self) -> Self {
        SecureServer {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
            credentials: self.credentials.clone(),
            transport: self.transport,
            tasks: self.tasks.clone(),
        }
    }
}

/// What a request names besides its method, for [`SecureServer::gated_naming`].
enum Names<'a> {
    /// Nothing: the method is all there is to allow.
    Nothing,
    /// A prompt or resource the caller must also be allowed.
    Target(Action<'a>),
    /// Something this version cannot judge (a kind of reference it does not know): refused.
    Unknown,
}

/// The JSON-RPC error for a denial (see the module docs for the table).
fn wire_error(action: &Action<'_>, d: &Denial) -> McpError {
    let code = crate::decision::wire_code(action, d);
    // A rate-limited caller learns when to come back, and nothing else.
    let data = d
        .retry_after()
        .map(|after| serde_json::json!({ "retryAfterMs": after.as_millis() }));
    McpError::new(ErrorCode(code), d.reason().to_owned(), data)
}

fn correlation(id: &rmcp::model::RequestId) -> CorrelationId {
    match id {
        rmcp::model::NumberOrString::Number(n) => CorrelationId::Number(*n),
        rmcp::model::NumberOrString::String(s) => CorrelationId::Text(s.clone()),
    }
}

/// An admitted request whose audit record is still owed.
///
/// [`Pending::finish`] writes it once the handler has answered. If the handler's future is
/// dropped instead (the client cancelled, the connection closed), `Drop` writes it as cancelled
/// from a task on the current runtime, so no admitted request goes unaudited.
struct Pending {
    layer: SecurityLayer,
    admission: Option<Admission>,
    method: Cow<'static, str>,
    target: Option<String>,
    cx: crate::RequestContext,
}

impl Pending {
    fn new(
        layer: &SecurityLayer,
        admission: Admission,
        action: &Action<'_>,
        cx: crate::RequestContext,
    ) -> Self {
        let method = match action.protocol_method() {
            Some(m) => Cow::Borrowed(m),
            None => Cow::Owned(action.method().to_owned()),
        };
        Pending {
            layer: layer.clone(),
            admission: Some(admission),
            method,
            target: action.target().map(str::to_owned),
            cx,
        }
    }

    fn identity(&self) -> &crate::Identity {
        match &self.admission {
            Some(a) => a.identity(),
            // INVARIANT: the admission is taken only by `finish`, which consumes `self`.
            None => unreachable!("pending admission already finished"),
        }
    }

    fn permits(&self, action: &Action<'_>) -> bool {
        self.admission
            .as_ref()
            .is_some_and(|a| self.layer.permits(a.identity(), action, &self.cx))
    }

    /// Audits the handler's answer; an audit failure in fail-closed mode replaces the answer.
    async fn finish<T>(
        mut self,
        result: Result<T, McpError>,
        report: RedactionReport,
    ) -> Result<T, McpError> {
        let Some(admission) = self.admission.take() else {
            return result;
        };
        let mut result = result;
        let mut report = report;
        // A handler's error message and data reach the peer too: redact them like results.
        if let Err(e) = result.as_mut() {
            if let Some(red) = self.layer.redact_text(&e.message) {
                let (text, found) = red.into_parts();
                report.merge(&found);
                e.message = Cow::Owned(text);
            }
            if let Some(data) = e.data.as_mut() {
                report.merge(&self.layer.redact_value(data));
            }
        }
        let completion = match (&result, self.layer.classify(&admission, &report)) {
            (Err(e), _) => Completion::HandlerError { code: e.code.0 },
            (Ok(_), Ok(classification)) => Completion::Ok {
                redactions: report.total(),
                classification,
            },
            // Classified above the caller's clearance: the result is withheld.
            (Ok(_), Err(classification)) => {
                let d = crate::decision::withheld();
                result = Err(McpError::new(
                    ErrorCode(d.kind().code()),
                    d.reason().to_owned(),
                    None,
                ));
                Completion::Withheld { classification }
            }
        };
        // Boxed: the record's future is most of this one's size (see the `ServerHandler` impl).
        match Box::pin(self.layer.complete_named(
            admission,
            &self.method,
            self.target.as_deref(),
            &self.cx,
            completion,
        ))
        .await
        {
            Ok(()) => result,
            Err(d) => Err(McpError::new(
                ErrorCode(d.kind().code()),
                d.reason().to_owned(),
                None,
            )),
        }
    }
}

impl Pending {
    /// Refuses an admitted request after all (a check that needs the admission, such as task
    /// ownership), auditing the denial.
    async fn refuse<T>(mut self, denial: Denial) -> Result<T, McpError> {
        let wire = McpError::new(
            ErrorCode(denial.kind().code()),
            denial.reason().to_owned(),
            None,
        );
        if let Some(admission) = self.admission.take() {
            let _ = self
                .layer
                .complete_named(
                    admission,
                    &self.method,
                    self.target.as_deref(),
                    &self.cx,
                    Completion::Refused(denial),
                )
                .await;
        }
        Err(wire)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let layer = self.layer.clone();
        let method = std::mem::take(&mut self.method);
        let target = self.target.take();
        let cx = self.cx.clone();
        runtime.spawn(async move {
            let _ = layer
                .complete_named(
                    admission,
                    &method,
                    target.as_deref(),
                    &cx,
                    Completion::Cancelled,
                )
                .await;
        });
    }
}

impl<H: ServerHandler> SecureServer<H> {
    /// Wraps `inner`. Requests carry no credentials until [`with_credentials`](Self::with_credentials)
    /// says which; the transport is recorded as stdio unless [`with_transport`](Self::with_transport)
    /// says otherwise.
    pub fn new(inner: H, layer: SecurityLayer) -> Self {
        SecureServer {
            inner: Arc::new(inner),
            layer,
            credentials: Credentials::none(),
            transport: Transport::Stdio,
            tasks: Arc::new(TaskOwners::new(MAX_TRACKED_TASKS)),
        }
    }

    /// The credentials every request on this connection presents. Over stdio there is one caller,
    /// the process that launched the server, and its credential comes from the environment
    /// ([`Credentials::from_env`]).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The transport recorded in audit records.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The layer.
    pub fn layer(&self) -> &SecurityLayer {
        &self.layer
    }

    /// The context of one request. Over Streamable HTTP behind the HTTP layer, the caller is
    /// the one the layer authenticated for this very request (read from the `http` request
    /// parts rmcp puts in the extensions); otherwise it is the connection's credentials.
    fn context(
        &self,
        id: Option<&rmcp::model::RequestId>,
        #[cfg_attr(
            not(feature = "http"),
            allow(unused_variables, reason = "read only over HTTP")
        )]
        ext: &rmcp::model::Extensions,
    ) -> crate::RequestContext {
        #[cfg(feature = "http")]
        let per_request = crate::adapters::http::request_context(ext);
        #[cfg(not(feature = "http"))]
        let per_request: Option<crate::RequestContext> = None;
        let cx = per_request.unwrap_or_else(|| {
            crate::RequestContext::new(self.transport).with_credentials(self.credentials.clone())
        });
        match id {
            Some(id) => cx.with_correlation_id(correlation(id)),
            None => cx,
        }
    }

    /// Runs the checks before the handler and, when they pass, puts the identity where the inner
    /// handler can read it and returns the audit record still owed.
    async fn admit(
        &self,
        action: &Action<'_>,
        cx: crate::RequestContext,
        ext: &mut rmcp::model::Extensions,
    ) -> Result<Pending, McpError> {
        match self.layer.admit(action, &cx, None).await {
            Ok(admission) => {
                ext.insert(admission.identity().clone());
                Ok(Pending::new(&self.layer, admission, action, cx))
            }
            Err(d) => Err(wire_error(action, &d)),
        }
    }

    /// Gate for requests without a result type of their own to walk. The inner handler is
    /// called only after the checks pass, with the identity in the context's extensions; every
    /// string in its result is redacted through the result's JSON form.
    async fn gated<'a, T, F, Fut>(
        &'a self,
        action: Action<'_>,
        context: RequestContext<RoleServer>,
        call: F,
    ) -> Result<T, McpError>
    where
        F: FnOnce(&'a H, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<T, McpError>>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.gated_naming(action, Names::Nothing, context, call)
            .await
    }

    /// [`gated`](Self::gated) for a method that names a prompt or resource (a completion's
    /// reference, a directory, a skill): allowing the method is not enough, the caller must
    /// also be allowed what it names, as a request naming it directly would be. Anything else
    /// reads as not found, like a hidden item.
    async fn gated_naming<'a, T, F, Fut>(
        &'a self,
        action: Action<'_>,
        names: Names<'_>,
        mut context: RequestContext<RoleServer>,
        call: F,
    ) -> Result<T, McpError>
    where
        F: FnOnce(&'a H, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<T, McpError>>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let cx = self.context(Some(&context.id), &context.extensions);
        let pending = self.admit(&action, cx, &mut context.extensions).await?;
        let allowed = match names {
            Names::Nothing => true,
            Names::Target(named) => pending.permits(&named),
            Names::Unknown => false,
        };
        if !allowed {
            let d = Denial::new(crate::Stage::Authorization, DenyKind::NotFound, "not found")
                .with_rule(crate::RuleId::from_static("authorization.named_target"));
            return pending.refuse(d).await;
        }
        let mut result = call(&self.inner, context).await;
        let mut report = RedactionReport::default();
        if let Ok(value) = result.as_mut()
            && let Err(e) = self.redact_json(value, &mut report)
        {
            result = Err(e);
        }
        pending.finish(result, report).await
    }

    /// [`gated`](Self::gated) for `tasks/*`: the task must have been created by the caller.
    /// Anyone else's task, and a task this server does not know, read as unknown.
    async fn task_gated<'a, T, F, Fut>(
        &'a self,
        method: &'static str,
        task_id: &str,
        mut context: RequestContext<RoleServer>,
        call: F,
    ) -> Result<T, McpError>
    where
        F: FnOnce(&'a H, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<T, McpError>>,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let action = Action::Other { method };
        let cx = self.context(Some(&context.id), &context.extensions);
        let pending = self.admit(&action, cx, &mut context.extensions).await?;
        if !self.tasks.owned_by(task_id, pending.identity()) {
            let d = Denial::new(
                crate::Stage::Authorization,
                DenyKind::NotFound,
                "task not found",
            )
            .with_rule(crate::RuleId::from_static("tasks.owner"));
            return pending.refuse(d).await;
        }
        let mut result = call(&self.inner, context).await;
        let mut report = RedactionReport::default();
        if let Ok(value) = result.as_mut()
            && let Err(e) = self.redact_json(value, &mut report)
        {
            result = Err(e);
        }
        pending.finish(result, report).await
    }

    /// Checks a notification; `true` when it may be forwarded.
    async fn notification_allowed(
        &self,
        method: &str,
        context: &mut NotificationContext<RoleServer>,
    ) -> bool {
        let cx = self.context(None, &context.extensions);
        let action = Action::Notification { method };
        match self.layer.admit(&action, &cx, None).await {
            Ok(admission) => {
                context.extensions.insert(admission.identity().clone());
                self.layer
                    .complete(admission, &action, &cx, Completion::ok(0))
                    .await
                    .is_ok()
            }
            Err(_) => false,
        }
    }

    fn redact_contents(&self, contents: &mut [ResourceContents]) -> RedactionReport {
        let mut report = RedactionReport::default();
        for c in contents {
            match c {
                ResourceContents::TextResourceContents { text, .. } => {
                    report.merge(&self.layer.redact_string(text))
                }
                // Binary blobs are base64: a text detector finds nothing useful in them.
                ResourceContents::BlobResourceContents { .. } => {}
                other => {
                    let uri = String::new();
                    report.merge(
                        &self.redact_via_json(other, || ResourceContents::text("[REDACTED]", uri)),
                    );
                }
            }
        }
        report
    }

    fn redact_blocks<'a>(
        &self,
        blocks: impl IntoIterator<Item = &'a mut ContentBlock>,
    ) -> RedactionReport {
        let mut report = RedactionReport::default();
        for block in blocks {
            match block {
                ContentBlock::Text(t) => report.merge(&self.layer.redact_string(&mut t.text)),
                ContentBlock::Resource(r) => {
                    report.merge(&self.redact_contents(std::slice::from_mut(&mut r.resource)))
                }
                ContentBlock::Image(_) | ContentBlock::Audio(_) => {}
                // Resource links and any content kind added later: redact every string in it.
                other => {
                    report.merge(&self.redact_via_json(other, || ContentBlock::text("[REDACTED]")))
                }
            }
        }
        report
    }

    /// Redacts a value of a type this adapter does not walk by hand, through its JSON form.
    /// A value that cannot make the round trip is replaced by `fallback()` rather than sent
    /// unredacted.
    fn redact_via_json<T>(&self, value: &mut T, fallback: impl FnOnce() -> T) -> RedactionReport
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut report = RedactionReport::default();
        // Not readable as JSON, so not checkable: replaced rather than sent unchecked.
        if self.redact_json(value, &mut report).is_err() {
            *value = fallback();
        }
        report
    }

    /// Redacts tool or prompt arguments in place when the policy asks for it, after the checks
    /// ran on the real values: the handler never sees sensitive values the caller sent.
    fn redact_arguments(
        &self,
        args: Option<&mut serde_json::Map<String, serde_json::Value>>,
    ) -> RedactionReport {
        let Some(args) = args.filter(|_| self.layer.redacts_arguments()) else {
            return RedactionReport::default();
        };
        let mut value = serde_json::Value::Object(std::mem::take(args));
        let report = self.layer.redact_value(&mut value);
        if let serde_json::Value::Object(redacted) = value {
            *args = redacted;
        }
        report
    }

    /// Redacts every string of `value` through its JSON form. A value that cannot make the
    /// round trip is not sent: the caller gets an internal error instead (fail closed).
    fn redact_json<T>(&self, value: &mut T, report: &mut RedactionReport) -> Result<(), McpError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        if !self.layer.redacts() {
            return Ok(());
        }
        let unredactable = || McpError::internal_error("result could not be redacted", None);
        let mut json = serde_json::to_value(&*value).map_err(|_| unredactable())?;
        let found = self.layer.redact_value(&mut json);
        if !found.is_empty() {
            // Counted even when the value then cannot be rebuilt: it was found, and the caller
            // withholds or replaces the value rather than sending it.
            report.merge(&found);
            *value = serde_json::from_value(json).map_err(|_| unredactable())?;
        }
        Ok(())
    }

    fn redact_tool_result(&self, r: &mut CallToolResult) -> RedactionReport {
        let mut report = self.redact_blocks(r.content.iter_mut());
        if let Some(v) = r.structured_content.as_mut() {
            report.merge(&self.layer.redact_value(v));
        }
        report
    }

    /// Lists: check the list request, then keep only the items the caller may use, and mark
    /// the result private so no cache shares it across callers.
    async fn listed<'a, T, F, Fut>(
        &'a self,
        kind: ListKind,
        mut context: RequestContext<RoleServer>,
        call: F,
        filter: impl FnOnce(&mut T, &dyn Fn(&Action<'_>) -> bool),
    ) -> Result<T, McpError>
    where
        F: FnOnce(&'a H, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<T, McpError>>,
    {
        let action = Action::List(kind);
        let cx = self.context(Some(&context.id), &context.extensions);
        let pending = self.admit(&action, cx, &mut context.extensions).await?;
        let mut result = call(&self.inner, context).await;
        if let Ok(list) = result.as_mut() {
            let permits = |a: &Action<'_>| pending.permits(a);
            filter(list, &permits);
        }
        pending.finish(result, RedactionReport::default()).await
    }
}

impl<H: ServerHandler> SecureServer<H> {
    /// `tools/call` through the layer (see the `ServerHandler` impl, which boxes it).
    async fn secured_call_tool(
        &self,
        mut request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let cx = self.context(Some(&context.id), &context.extensions);
        if let Some(args) = request.arguments.as_mut() {
            self.layer
                .normalize_arguments(ArgumentsOf::Tool(&request.name), args);
        }
        // A tool called before any listing: its schema comes from the handler's own definition.
        if self.layer.needs_tool_schema(&request.name)
            && let Some(tool) = self.inner.get_tool(&request.name)
        {
            self.layer.observe_tools(&[ToolSchema {
                name: &tool.name,
                input_schema: &tool.input_schema,
            }]);
        }
        let action = Action::CallTool {
            name: &request.name,
            arguments: request.arguments.as_ref(),
        };
        let pending = match self.layer.admit(&action, &cx, None).await {
            Ok(a) => Pending::new(&self.layer, a, &action, cx),
            // Argument problems are tool results the model can read and correct (MCP 2025-11-25).
            Err(d) if d.kind() == DenyKind::InvalidArguments => {
                return Ok(
                    CallToolResult::error(vec![ContentBlock::text(d.reason().to_owned())]).into(),
                );
            }
            Err(d) => return Err(wire_error(&action, &d)),
        };
        context.extensions.insert(pending.identity().clone());
        if let Some(args) = request.arguments.as_mut() {
            self.layer
                .rewrite_arguments(ArgumentsOf::Tool(&request.name), args);
        }
        let from_arguments = self.redact_arguments(request.arguments.as_mut());
        let mut result = self.inner.call_tool(request, context).await;
        let mut report = from_arguments;
        match result.as_mut() {
            Ok(CallToolResponse::Complete(r)) => report.merge(&self.redact_tool_result(r)),
            // Input requests and task handles carry text too.
            Ok(CallToolResponse::InputRequired(r)) => {
                if let Err(e) = self.redact_json(r, &mut report) {
                    result = Err(e);
                }
            }
            Ok(CallToolResponse::Task(r)) => {
                // Only the identity that created a task may read, update or cancel it.
                self.tasks.record(&r.task.task_id, pending.identity());
                if let Err(e) = self.redact_json(r, &mut report) {
                    result = Err(e);
                }
            }
            Ok(_) | Err(_) => {}
        }
        pending.finish(result, report).await
    }
}

// Every request handler's future is boxed. rmcp spawns one task per request, whose future is
// the largest of all the handlers' futures, and copies it whole on the way (spawn, the task
// cell, its output): unboxed, the layer's checks and audit record made that 5.6 KiB against the
// bare handler's 3.3 KiB, and those copies were a quarter of the layer's per-request cost under
// callgrind's cache simulation. Boxed, the task stays about the bare handler's size.
impl<H: ServerHandler> ServerHandler for SecureServer<H> {
    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move { self.gated(Action::Ping, context, |h, c| h.ping(c)).await })
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            // A connection whose credentials fail is refused here, at its first request.
            let cx = self.context(Some(&context.id), &context.extensions);
            let pending = self
                .admit(&Action::Initialize, cx, &mut context.extensions)
                .await?;
            let result = self.inner.initialize(request, context).await;
            pending.finish(result, RedactionReport::default()).await
        })
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            self.gated(
                Action::Other {
                    method: "server/discover",
                },
                context,
                |h, c| h.discover(c),
            )
            .await
        })
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            let named = match &request.r#ref {
                rmcp::model::Reference::Prompt(p) => Some((true, p.name.clone())),
                rmcp::model::Reference::Resource(r) => Some((false, r.uri.clone())),
                _ => None,
            };
            let names = match &named {
                Some((true, name)) => Names::Target(Action::GetPrompt {
                    name,
                    arguments: None,
                }),
                Some((false, uri)) => Names::Target(Action::ReadResource { uri }),
                None => Names::Unknown,
            };
            self.gated_naming(
                Action::Other {
                    method: "completion/complete",
                },
                names,
                context,
                |h, c| h.complete(request, c),
            )
            .await
        })
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move {
            self.gated(
                Action::Other {
                    method: "logging/setLevel",
                },
                context,
                |h, c| h.set_level(request, c),
            )
            .await
        })
    }

    fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            let cx = self.context(Some(&context.id), &context.extensions);
            if let Some(args) = request.arguments.as_mut() {
                self.layer
                    .normalize_arguments(ArgumentsOf::Prompt(&request.name), args);
            }
            let pending = {
                let action = Action::GetPrompt {
                    name: &request.name,
                    arguments: request.arguments.as_ref(),
                };
                self.admit(&action, cx, &mut context.extensions).await?
            };
            if let Some(args) = request.arguments.as_mut() {
                self.layer
                    .rewrite_arguments(ArgumentsOf::Prompt(&request.name), args);
            }
            let from_arguments = self.redact_arguments(request.arguments.as_mut());
            let mut result = self.inner.get_prompt(request, context).await;
            let mut report = from_arguments;
            let redacted = match result.as_mut() {
                Ok(GetPromptResponse::Complete(r)) => self.redact_json(r, &mut report),
                Ok(GetPromptResponse::InputRequired(r)) => self.redact_json(r, &mut report),
                Ok(_) | Err(_) => Ok(()),
            };
            if let Err(e) = redacted {
                result = Err(e);
            }
            pending.finish(result, report).await
        })
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            self.listed(
                ListKind::Prompts,
                context,
                |h, c| h.list_prompts(request, c),
                |list: &mut ListPromptsResult, permits| {
                    list.prompts.retain(|p| {
                        permits(&Action::GetPrompt {
                            name: &p.name,
                            arguments: None,
                        })
                    });
                    list.cache_scope = Some(CacheScope::Private);
                },
            )
            .await
        })
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            self.listed(
                ListKind::Resources,
                context,
                |h, c| h.list_resources(request, c),
                |list: &mut ListResourcesResult, permits| {
                    list.resources
                        .retain(|r| permits(&Action::ReadResource { uri: &r.uri }));
                    list.cache_scope = Some(CacheScope::Private);
                },
            )
            .await
        })
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>>
    + rmcp::service::MaybeSendFuture
    + '_ {
        Box::pin(async move {
            self.listed(
                ListKind::ResourceTemplates,
                context,
                |h, c| h.list_resource_templates(request, c),
                |list: &mut ListResourceTemplatesResult, permits| {
                    // A template is listed when its literal text falls under a readable URI pattern.
                    list.resource_templates.retain(|t| {
                        permits(&Action::ReadResource {
                            uri: &t.uri_template,
                        })
                    });
                    list.cache_scope = Some(CacheScope::Private);
                },
            )
            .await
        })
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            let cx = self.context(Some(&context.id), &context.extensions);
            let action = Action::ReadResource { uri: &request.uri };
            let pending = self.admit(&action, cx, &mut context.extensions).await?;
            let mut result = self.inner.read_resource(request, context).await;
            let mut report = RedactionReport::default();
            match result.as_mut() {
                Ok(ReadResourceResponse::Complete(r)) => {
                    report = self.redact_contents(&mut r.contents)
                }
                Ok(ReadResourceResponse::InputRequired(r)) => {
                    if let Err(e) = self.redact_json(r, &mut report) {
                        result = Err(e);
                    }
                }
                Ok(_) | Err(_) => {}
            }
            pending.finish(result, report).await
        })
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        // rmcp acknowledges subscriptions/listen before calling listen, so a refusal here ends
        // the stream right after the acknowledgment; gate it at the HTTP layer too.
        let action = Action::Other {
            method: "subscriptions/listen",
        };
        let cx = self.context(
            Some(&context.request_context().id),
            &context.request_context().extensions,
        );
        let pending = match self.layer.admit(&action, &cx, None).await {
            Ok(a) => Pending::new(&self.layer, a, &action, cx),
            Err(d) => return Err(wire_error(&action, &d)),
        };
        // The filter can name resources: each one needs the same permission as
        // resources/subscribe, or the stream ends here, before the handler sends anything.
        let uris = context
            .accepted()
            .resource_subscriptions
            .as_deref()
            .unwrap_or_default();
        if let Some(uri) = uris.iter().find(|uri| {
            !pending.permits(&Action::SubscribeResource {
                uri,
                unsubscribe: false,
            })
        }) {
            let hidden = Denial::new(
                crate::Stage::Authorization,
                DenyKind::NotFound,
                "resource not found",
            );
            let refusal = wire_error(
                &Action::SubscribeResource {
                    uri,
                    unsubscribe: false,
                },
                &hidden,
            );
            return pending
                .finish(Err(refusal), RedactionReport::default())
                .await;
        }
        let result = self.inner.listen(context).await;
        pending.finish(result, RedactionReport::default()).await
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move {
            let uri = request.uri.clone();
            self.gated(
                Action::SubscribeResource {
                    uri: &uri,
                    unsubscribe: false,
                },
                context,
                |h, c| h.subscribe(request, c),
            )
            .await
        })
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move {
            let uri = request.uri.clone();
            self.gated(
                Action::SubscribeResource {
                    uri: &uri,
                    unsubscribe: true,
                },
                context,
                |h, c| h.unsubscribe(request, c),
            )
            .await
        })
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(self.secured_call_tool(request, context))
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            self.listed(
                ListKind::Tools,
                context,
                |h, c| h.list_tools(request, c),
                |list: &mut ListToolsResult, permits| {
                    // Every tool the server declares, before filtering: schemas are checked on
                    // calls whoever listed them.
                    let declared: Vec<ToolSchema<'_>> = list
                        .tools
                        .iter()
                        .map(|t| ToolSchema {
                            name: &t.name,
                            input_schema: &t.input_schema,
                        })
                        .collect();
                    self.layer.observe_tools(&declared);
                    list.tools.retain(|t| {
                        permits(&Action::CallTool {
                            name: &t.name,
                            arguments: None,
                        })
                    });
                    list.cache_scope = Some(CacheScope::Private);
                },
            )
            .await
        })
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // rmcp's HTTP transport asks for tool schemas to validate SEP-2243 headers; the answer
        // never reaches the peer, and calls are still authorized in `call_tool`.
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            // rmcp hands over any request it could not read as a typed one, so a `tools/call`
            // whose `name` is a number arrives here. A known MCP method is never served as custom:
            // its parameters are malformed, and it is refused as such.
            match Action::from_method(&request.method, request.params.as_ref(), false) {
                Ok(Action::Other { .. }) => {}
                other => {
                    let error = other.err().unwrap_or(MessageError::InvalidParams {
                        field: "params",
                        expected: "what the method defines",
                    });
                    let cx = self.context(Some(&context.id), &context.extensions);
                    let d = self
                        .layer
                        .reject_malformed(&request.method, &cx, &error)
                        .await;
                    return Err(wire_error(
                        &Action::Other {
                            method: &request.method,
                        },
                        &d,
                    ));
                }
            }
            let method = request.method.clone();
            self.gated(Action::Other { method: &method }, context, |h, c| {
                h.on_custom_request(request, c)
            })
            .await
        })
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        mut context: NotificationContext<RoleServer>,
    ) {
        if self
            .notification_allowed("notifications/cancelled", &mut context)
            .await
        {
            self.inner.on_cancelled(notification, context).await;
        }
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        mut context: NotificationContext<RoleServer>,
    ) {
        if self
            .notification_allowed("notifications/progress", &mut context)
            .await
        {
            self.inner.on_progress(notification, context).await;
        }
    }

    async fn on_initialized(&self, mut context: NotificationContext<RoleServer>) {
        if self
            .notification_allowed("notifications/initialized", &mut context)
            .await
        {
            self.inner.on_initialized(context).await;
        }
    }

    async fn on_roots_list_changed(&self, mut context: NotificationContext<RoleServer>) {
        if self
            .notification_allowed("notifications/roots/list_changed", &mut context)
            .await
        {
            self.inner.on_roots_list_changed(context).await;
        }
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        mut context: NotificationContext<RoleServer>,
    ) {
        if self
            .notification_allowed(&notification.method.clone(), &mut context)
            .await
        {
            self.inner
                .on_custom_notification(notification, context)
                .await;
        }
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            let task_id = request.task_id.clone();
            self.task_gated("tasks/get", &task_id, context, |h, c| {
                h.get_task(request, c)
            })
            .await
        })
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move {
            let task_id = request.task_id.clone();
            self.task_gated("tasks/update", &task_id, context, |h, c| {
                h.update_task(request, c)
            })
            .await
        })
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + rmcp::service::MaybeSendFuture + '_ {
        Box::pin(async move {
            let task_id = request.task_id.clone();
            self.task_gated("tasks/cancel", &task_id, context, |h, c| {
                h.cancel_task(request, c)
            })
            .await
        })
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            self.gated(
                Action::Other {
                    method: "skills/list",
                },
                context,
                |h, c| h.list_skills(request, c),
            )
            .await
        })
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + rmcp::service::MaybeSendFuture + '_
    {
        Box::pin(async move {
            let uri = request.uri.clone();
            self.gated_naming(
                Action::Other {
                    method: "skills/get",
                },
                Names::Target(Action::ReadResource { uri: &uri }),
                context,
                |h, c| h.get_skill(request, c),
            )
            .await
        })
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>>
    + rmcp::service::MaybeSendFuture
    + '_ {
        Box::pin(async move {
            let uri = request.uri.clone();
            self.gated_naming(
                Action::Other {
                    method: "resources/directory/read",
                },
                Names::Target(Action::ReadResource { uri: &uri }),
                context,
                |h, c| h.read_resource_directory(request, c),
            )
            .await
        })
    }
}

//! [`SecureClient`]: the client side. Wraps any rmcp [`ClientHandler`] and gates the server's
//! tools: every listing (`tools/list`, and again on `notifications/tools/list_changed`) is
//! checked against the pinned definitions and scanned for poisoning
//! ([`pinning`](crate::provenance::pinning)); changed, new and poisoned tools are blocked by
//! default, and [`SecureClient::call_tool`] refuses a blocked tool before anything is sent.
//!
//! ```no_run
//! use mcp_security::adapters::rmcp::SecureClient;
//! use mcp_security::provenance::pinning::{PinPolicy, PinStore};
//! use rmcp::ServiceExt;
//! use rmcp::model::CallToolRequestParams;
//!
//! # async fn run(transport: tokio::io::DuplexStream) -> Result<(), Box<dyn std::error::Error>> {
//! let client = SecureClient::new((), PinStore::load("pins.json")?).with_pin_file("pins.json");
//! let mut reports = client.reports();
//! let running = client.serve(transport).await?;
//! let listed = running.service().list_tools(running.peer()).await?;
//! for blocked in listed.report.blocked() {
//!     eprintln!("blocked {}: {:?} {:?}", blocked.name, blocked.status, blocked.findings);
//! }
//! let result = running
//!     .service()
//!     .call_tool(running.peer(), CallToolRequestParams::new("add"))
//!     .await?;
//! // Later listings (after `tools/list_changed`) arrive on `reports`.
//! reports.changed().await?;
//! # Ok(())
//! # }
//! ```

// Sampling, roots and logging are deprecated by SEP-2577, but servers still use them: the
// wrapper must forward them, or the inner handler would silently stop receiving them.
#![allow(
    deprecated,
    reason = "forwards every ClientHandler method, deprecated ones included"
)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rmcp::model::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, CustomNotification, CustomRequest,
    CustomResult, ElicitRequestParams, ElicitResult, InputRequest, ListRootsResult,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProgressNotificationParam,
    ResourceUpdatedNotificationParam, SubscriptionsAcknowledgedNotificationParams, TaskPayload,
    TaskStatusNotificationParams, Tool,
};
use rmcp::service::{
    MaybeSendFuture, NotificationContext, RequestContext, RoleClient, ServiceError,
};
use rmcp::{ClientHandler, ErrorData as McpError, Peer};
use tokio::sync::watch;

use crate::authz::ServerRequestGate;
use crate::context::Transport;
use crate::decision::{Denial, DenyKind, RuleId, Stage};
use crate::layer::SecurityLayer;
use crate::provenance::pinning::{PinError, PinPolicy, PinReport, PinStore};

/// The most pages one tool listing may take: a server that keeps handing out cursors is
/// refused, not followed forever.
const MAX_LIST_PAGES: usize = 256;

/// The most tools one listing may hold. Pinning checks every tool against every other's name,
/// so the work grows with the square of this.
const MAX_LISTED_TOOLS: usize = 1024;

/// Why a [`SecureClient`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecureClientError {
    /// The tool is blocked: changed since it was pinned, new, or poisoned.
    #[error("tool `{tool}` is blocked by tool pinning")]
    ToolBlocked {
        /// The tool.
        tool: String,
    },
    /// The server did not list the tool.
    #[error("tool `{tool}` is not listed by the server")]
    UnknownTool {
        /// The tool.
        tool: String,
    },
    /// The MCP request failed. With a layer ([`SecureClient::with_layer`]), an error the server
    /// sent has had its message and data redacted.
    #[error("mcp request failed: {0}")]
    Service(#[from] rmcp::service::ServiceError),
    /// The server's tool listing took more than 256 pages or held more than 1,024 tools.
    #[error("tool listing exceeds the client's limits")]
    ListingTooLarge,
    /// The pin file could not be written.
    #[error(transparent)]
    Pins(#[from] PinError),
    /// The layer refused to pass the answer on (its audit record could not be written and the
    /// policy fails closed).
    #[error("refused: {reason}")]
    Refused {
        /// The denial's reason.
        reason: String,
    },
}

/// The allowed tools of one listing, and the full report.
#[derive(Debug, Clone)]
pub struct ToolList {
    /// The tools that may be used (blocked ones are left out).
    pub tools: Vec<Tool>,
    /// What was checked and what was blocked.
    pub report: Arc<PinReport>,
}

#[derive(Debug)]
struct GuardState {
    pins: PinStore,
    /// name -> allowed; a name absent here was not in the last listing.
    listed: HashMap<String, bool>,
    listed_once: bool,
    /// Pins learned but not yet saved (a save failed): the next listing saves them again.
    unsaved: bool,
}

/// What a [`SecureClient`] is configured with (set by its builders before it is served).
#[derive(Debug, Clone, Default)]
struct Settings {
    policy: PinPolicy,
    pin_file: Option<PathBuf>,
    /// Redaction and audit of what the server sends; none without a layer.
    layer: Option<SecurityLayer>,
    /// Which server-to-client requests reach the inner handler.
    gate: ServerRequestGate,
}

#[derive(Debug)]
struct Guard {
    settings: Settings,
    state: Mutex<GuardState>,
    reports: watch::Sender<Option<Arc<PinReport>>>,
    /// Held by the one task re-listing after `tools/list_changed`.
    relisting: tokio::sync::Mutex<()>,
    /// A `tools/list_changed` not yet answered by a listing.
    relist_pending: std::sync::atomic::AtomicBool,
}

/// A client handler wrapper for hosts that use servers they do not trust: it pins tool
/// definitions, passes the server's own requests (sampling, elicitation, roots) to the inner
/// handler only when a [`ServerRequestGate`] allows them (only `ping` by default), and, with a
/// [`SecurityLayer`] ([`with_layer`](Self::with_layer)), redacts what the server sends (tool
/// results, log and progress messages, the text of its requests) before the host sees it and
/// audits every call, refusal and gate decision. Cloning shares the pins and state.
#[derive(Debug, Clone)]
pub struct SecureClient<H = ()> {
    inner: H,
    guard: Arc<Guard>,
}

impl<H: ClientHandler> SecureClient<H> {
    /// Wraps `inner`, checking tools against `pins` with the default [`PinPolicy`] (block
    /// changed, new and poisoned tools).
    pub fn new(inner: H, pins: PinStore) -> Self {
        SecureClient {
            inner,
            guard: Arc::new(Guard {
                settings: Settings::default(),
                state: Mutex::new(GuardState {
                    pins,
                    listed: HashMap::new(),
                    listed_once: false,
                    unsaved: false,
                }),
                reports: watch::channel(None).0,
                relisting: tokio::sync::Mutex::new(()),
                relist_pending: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// A fresh guard with the same pins and listing state (builders run before the client is
    /// served, so nothing else observes the old one).
    fn rebuild(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.guard.settings.clone();
        change(&mut settings);
        let state = {
            let s = self.guard.lock();
            GuardState {
                pins: s.pins.clone(),
                listed: s.listed.clone(),
                listed_once: s.listed_once,
                unsaved: s.unsaved,
            }
        };
        SecureClient {
            inner: self.inner,
            guard: Arc::new(Guard {
                settings,
                state: Mutex::new(state),
                reports: watch::channel(None).0,
                relisting: tokio::sync::Mutex::new(()),
                relist_pending: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Uses `policy` instead of the default. Call before [`reports`](Self::reports).
    pub fn with_policy(self, policy: PinPolicy) -> Self {
        self.rebuild(|s| s.policy = policy)
    }

    /// Saves the pins to this file whenever trust on first use learns them. Call before
    /// [`reports`](Self::reports).
    pub fn with_pin_file(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.rebuild(|s| s.pin_file = Some(path))
    }

    /// Redacts what the server sends with `layer`'s redactor before the host sees it, and
    /// audits every tool call, refusal and server request decision to `layer`'s sink. The
    /// layer's authentication and authorization are not used: the server is not the caller
    /// here. Call before [`reports`](Self::reports).
    pub fn with_layer(self, layer: SecurityLayer) -> Self {
        self.rebuild(|s| s.layer = Some(layer))
    }

    /// Which requests the server may send the inner handler (`Policy::server_requests()` reads
    /// them from `[server_requests]`). Refused ones get a `-31403` error and never reach the
    /// inner handler. Call before [`reports`](Self::reports).
    pub fn with_server_requests(self, gate: ServerRequestGate) -> Self {
        self.rebuild(|s| s.gate = gate)
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The report of every listing, latest first: `None` until the first one.
    pub fn reports(&self) -> watch::Receiver<Option<Arc<PinReport>>> {
        self.guard.reports.subscribe()
    }

    /// The current pins.
    pub fn pins(&self) -> PinStore {
        self.guard.lock().pins.clone()
    }

    /// Lists every tool (all pages), checks the listing against the pins, and returns the
    /// allowed tools with the report.
    ///
    /// # Errors
    /// [`SecureClientError::Service`] when listing fails, [`SecureClientError::ListingTooLarge`]
    /// when the listing is over the limits; [`SecureClientError::Pins`] when learned pins cannot
    /// be saved (the next listing tries again).
    pub async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<ToolList, SecureClientError> {
        let tools = list_capped(peer)
            .await
            .map_err(|e| self.redacted_error(e).0)?;
        self.guard.apply(tools)
    }

    /// `e` with the message and data of an error the server sent redacted, and how many
    /// values were replaced: the host prints and logs errors, so they carry the server's
    /// text as far as its results do.
    fn redacted_error(&self, e: SecureClientError) -> (SecureClientError, u32) {
        let Some(layer) = &self.guard.settings.layer else {
            return (e, 0);
        };
        let mut data = match e {
            SecureClientError::Service(ServiceError::McpError(data)) => data,
            other => return (other, 0),
        };
        let mut found = 0;
        if let Some(red) = layer.redact_text(&data.message) {
            let (text, report) = red.into_parts();
            found += report.total();
            data.message = Cow::Owned(text);
        }
        if let Some(v) = data.data.as_mut() {
            found += layer.redact_value(v).total();
        }
        (
            SecureClientError::Service(ServiceError::McpError(data)),
            found,
        )
    }

    /// Calls a tool, after checking that the last listing allowed it (listing first if there
    /// was none). MRTR input requests are not driven here; use the tool list to gate calls
    /// made through `RunningService::call_tool` when you need them.
    ///
    /// # Errors
    /// [`SecureClientError::ToolBlocked`], [`SecureClientError::UnknownTool`], or the request's
    /// error.
    pub async fn call_tool(
        &self,
        peer: &Peer<RoleClient>,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, SecureClientError> {
        if !self.guard.lock().listed_once {
            self.list_tools(peer).await?;
        }
        let name = params.name.clone();
        if let Err(e) = self.check_tool(&name) {
            if let Some(layer) = &self.guard.settings.layer {
                let d = Denial::new(
                    Stage::Authorization,
                    DenyKind::Forbidden,
                    "tool blocked by tool pinning",
                )
                .with_rule(RuleId::from_static("tool_pinning"));
                // The call is refused either way; a failed record is counted by the layer.
                let _ = layer
                    .audit_from_server("tools/call", Some(&name), &host_context(), 0, Some(&d))
                    .await;
            }
            return Err(e);
        }
        let mut result = match peer.call_tool(params).await {
            Ok(r) => r,
            Err(e) => {
                let (e, redactions) = self.redacted_error(SecureClientError::Service(e));
                if let Some(layer) = &self.guard.settings.layer {
                    let code = match &e {
                        SecureClientError::Service(ServiceError::McpError(d)) => Some(d.code.0),
                        _ => None,
                    };
                    // The call failed either way; a failed record is counted by the layer.
                    let _ = layer
                        .audit_server_error(
                            "tools/call",
                            Some(&name),
                            &host_context(),
                            redactions,
                            code,
                        )
                        .await;
                }
                return Err(e);
            }
        };
        if let Some(layer) = &self.guard.settings.layer {
            let redacted = redact_typed(layer, &mut result);
            let refused = redacted.is_none().then(unredactable);
            let audited = layer
                .audit_from_server(
                    "tools/call",
                    Some(&name),
                    &host_context(),
                    redacted.unwrap_or(0),
                    refused.as_ref(),
                )
                .await;
            if let Some(d) = refused.or(audited.err()) {
                return Err(SecureClientError::Refused {
                    reason: d.reason().to_owned(),
                });
            }
        }
        Ok(result)
    }

    /// Whether the last listing allowed `tool`.
    ///
    /// # Errors
    /// [`SecureClientError::ToolBlocked`] or [`SecureClientError::UnknownTool`].
    pub fn check_tool(&self, tool: &str) -> Result<(), SecureClientError> {
        match self.guard.lock().listed.get(tool) {
            Some(true) => Ok(()),
            Some(false) => Err(SecureClientError::ToolBlocked {
                tool: tool.to_owned(),
            }),
            None => Err(SecureClientError::UnknownTool {
                tool: tool.to_owned(),
            }),
        }
    }
}

/// The context of client-side audit records: the host's own process.
fn host_context() -> crate::RequestContext {
    crate::RequestContext::new(Transport::InProcess)
}

/// Redacts every string of a typed MCP value in place (through its JSON form); returns how
/// many values were replaced, or `None` when the value could not be taken apart or put back
/// together: it must then not be passed on, since it may still hold what redaction would have
/// removed. (rmcp's own types always survive the round trip.)
fn redact_typed<T: serde::Serialize + serde::de::DeserializeOwned>(
    layer: &SecurityLayer,
    value: &mut T,
) -> Option<u32> {
    let mut json = serde_json::to_value(&*value).ok()?;
    let report = layer.redact_value(&mut json);
    if report.is_empty() {
        return Some(0);
    }
    *value = serde_json::from_value(json).ok()?;
    Some(report.total())
}

/// The refusal of something from the server that could not be redacted (fail closed).
fn unredactable() -> Denial {
    Denial::new(
        Stage::Redaction,
        DenyKind::Unavailable,
        "could not be redacted",
    )
    .with_rule(RuleId::from_static("redaction"))
}

/// Redacts the parameters of a request or notification the server made up (its own method).
fn redact_custom(layer: &SecurityLayer, params: &mut Option<serde_json::Value>) -> Option<u32> {
    Some(params.as_mut().map_or(0, |v| layer.redact_value(v).total()))
}

/// Every page of the server's tool listing, within [`MAX_LIST_PAGES`] pages and
/// [`MAX_LISTED_TOOLS`] tools: a server that keeps answering with cursors, or with thousands
/// of tools, is refused instead of growing the host's memory without end.
async fn list_capped(peer: &Peer<RoleClient>) -> Result<Vec<Tool>, SecureClientError> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_LIST_PAGES {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = peer.list_tools(params).await?;
        tools.extend(page.tools);
        if tools.len() > MAX_LISTED_TOOLS {
            return Err(SecureClientError::ListingTooLarge);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tools),
        }
    }
    Err(SecureClientError::ListingTooLarge)
}

/// The method of a request the server embeds in a task's `input_required` status: a server
/// request like any other, for the gate.
fn input_request_method(r: &InputRequest) -> Option<&'static str> {
    match r {
        InputRequest::CreateMessage(_) => Some("sampling/createMessage"),
        InputRequest::Elicitation(_) => Some("elicitation/create"),
        InputRequest::ListRoots(_) => Some("roots/list"),
        // A kind this version does not know cannot be checked: refused.
        _ => None,
    }
}

impl<H: ClientHandler> SecureClient<H> {
    /// Passes a server request on when the gate allows it (redacting its text with `redact`),
    /// and refuses it otherwise; audits either way.
    async fn gated<P, R, F>(
        &self,
        method: &str,
        mut params: P,
        redact: fn(&SecurityLayer, &mut P) -> Option<u32>,
        forward: F,
    ) -> Result<R, McpError>
    where
        F: AsyncFnOnce(P) -> Result<R, McpError>,
    {
        let gate = &self.guard.settings.gate;
        let refused = (!gate.permits(method)).then(|| gate.denial());
        match self
            .judged(method, None, refused, &mut params, redact)
            .await
        {
            Some(d) => Err(McpError::new(
                ErrorCode(d.kind().code()),
                d.reason().to_owned(),
                None,
            )),
            None => forward(params).await,
        }
    }

    /// The last word on something the server sent, given the gate's (`refused`): redacted in
    /// place when not refused, refused when it cannot be redacted, and audited either way (a
    /// record that cannot be written refuses it too). `None` when it may be passed on.
    async fn judged<P>(
        &self,
        method: &str,
        target: Option<&str>,
        mut refused: Option<Denial>,
        params: &mut P,
        redact: fn(&SecurityLayer, &mut P) -> Option<u32>,
    ) -> Option<Denial> {
        let Some(layer) = &self.guard.settings.layer else {
            return refused;
        };
        let mut redactions = 0;
        if refused.is_none() {
            match redact(layer, params) {
                Some(n) => redactions = n,
                None => refused = Some(unredactable()),
            }
        }
        let audited = layer
            .audit_from_server(
                method,
                target,
                &host_context(),
                redactions,
                refused.as_ref(),
            )
            .await;
        refused.or(audited.err())
    }

    /// Redacts a notification's text in place; `false` when it could not be redacted and must
    /// not be delivered. Without a layer there is nothing to redact with.
    fn redact_notification<P>(
        &self,
        params: &mut P,
        redact: fn(&SecurityLayer, &mut P) -> Option<u32>,
    ) -> bool {
        match &self.guard.settings.layer {
            Some(layer) => redact(layer, params).is_some(),
            None => true,
        }
    }
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        // A panic while holding the lock leaves consistent data (plain inserts).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, tools: Vec<Tool>) -> Result<ToolList, SecureClientError> {
        let values: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| serde_json::to_value(t).unwrap_or(serde_json::Value::Null))
            .collect();
        let (report, save) = {
            let mut state = self.lock();
            let was_empty = state.pins.is_empty();
            let report = state
                .pins
                .check_and_learn(values.iter(), &self.settings.policy);
            // Pins learned now, or learned earlier by a listing whose save failed: a pin that
            // never reaches the file would be learned afresh, unchecked, after a restart.
            let learned = (was_empty || state.unsaved) && !state.pins.is_empty();
            state.unsaved = learned;
            state.listed = report
                .tools
                .iter()
                .map(|t| (t.name.clone(), !t.blocked))
                .collect();
            state.listed_once = true;
            (Arc::new(report), learned.then(|| state.pins.clone()))
        };
        if let (Some(pins), Some(path)) = (save, &self.settings.pin_file) {
            pins.save(path)?;
        }
        self.lock().unsaved = false;
        let allowed: Vec<Tool> = tools
            .into_iter()
            .zip(&report.tools)
            .filter(|(_, c)| !c.blocked)
            .map(|(t, _)| t)
            .collect();
        self.reports.send_replace(Some(Arc::clone(&report)));
        Ok(ToolList {
            tools: allowed,
            report,
        })
    }
}

impl<H: ClientHandler> ClientHandler for SecureClient<H> {
    async fn ping(&self, context: RequestContext<RoleClient>) -> Result<(), McpError> {
        // Always allowed; audited like every other server request.
        self.gated("ping", (), redact_typed, async |()| {
            self.inner.ping(context).await
        })
        .await
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.gated("sampling/createMessage", params, redact_typed, async |p| {
            self.inner.create_message(p, context).await
        })
        .await
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.gated("roots/list", (), redact_typed, async |()| {
            self.inner.list_roots(context).await
        })
        .await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.gated("elicitation/create", request, redact_typed, async |r| {
            self.inner.create_elicitation(r, context).await
        })
        .await
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<CustomResult, McpError> {
        // A method of the server's own is a server request like the others: the gate decides
        // (it allows only the standard ones it names). A malformed `sampling/createMessage`
        // arrives here too, under its real method, and is gated as such.
        let method = request.method.clone();
        self.gated(
            &method,
            request,
            |layer, r| redact_custom(layer, &mut r.params),
            async |r| self.inner.on_custom_request(r, context).await,
        )
        .await
    }

    async fn on_cancelled(
        &self,
        mut params: CancelledNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // The reason is the server's text. Not delivered when it could not be redacted.
        if self.redact_notification(&mut params, redact_typed) {
            self.inner.on_cancelled(params, context).await;
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // A message that could not be redacted is not delivered.
        if let Some(layer) = &self.guard.settings.layer
            && redact_typed(layer, &mut params).is_none()
        {
            return;
        }
        self.inner.on_progress(params, context).await;
    }

    async fn on_logging_message(
        &self,
        mut params: LoggingMessageNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // A message that could not be redacted is not delivered.
        if let Some(layer) = &self.guard.settings.layer
            && redact_typed(layer, &mut params).is_none()
        {
            return;
        }
        self.inner.on_logging_message(params, context).await;
    }

    async fn on_resource_updated(
        &self,
        mut params: ResourceUpdatedNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // URIs carry personal data as often as text does.
        if self.redact_notification(&mut params, redact_typed) {
            self.inner.on_resource_updated(params, context).await;
        }
    }

    fn on_resource_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_resource_list_changed(context)
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // rmcp runs each notification in its own task, so listing here cannot deadlock; but a
        // server sending a flood of them would start as many listings. One task lists at a
        // time; a notification arriving meanwhile only marks another listing as owed, which
        // the listing task (or the next to take the lock) makes before it stops.
        use std::sync::atomic::Ordering::SeqCst;
        self.guard.relist_pending.store(true, SeqCst);
        while let Ok(_listing) = self.guard.relisting.try_lock() {
            if !self.guard.relist_pending.swap(false, SeqCst) {
                break;
            }
            match list_capped(&context.peer).await {
                Ok(tools) => {
                    // A pin file that cannot be saved is saved again by the next listing; the
                    // gate itself is already updated.
                    let _ = self.guard.apply(tools);
                }
                Err(_) => {
                    // Cannot see the new definitions: block everything until a listing works.
                    let mut state = self.guard.lock();
                    for allowed in state.listed.values_mut() {
                        *allowed = false;
                    }
                }
            }
        }
        self.inner.on_tool_list_changed(context).await;
    }

    fn on_prompt_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_prompt_list_changed(context)
    }

    async fn on_subscriptions_acknowledged(
        &self,
        mut params: SubscriptionsAcknowledgedNotificationParams,
        context: NotificationContext<RoleClient>,
    ) {
        // The accepted filter names resource URIs.
        if self.redact_notification(&mut params, redact_typed) {
            self.inner
                .on_subscriptions_acknowledged(params, context)
                .await;
        }
    }

    async fn on_task_status(
        &self,
        mut params: TaskStatusNotificationParams,
        context: NotificationContext<RoleClient>,
    ) {
        // A task's status carries what the call itself would have: its result (`completed`),
        // its error (`failed`), and requests for the host (`input_required`), which the gate
        // judges like the server's own requests. All of it is redacted, and the decision
        // audited; a status that is refused or cannot be redacted is not delivered.
        let gate = &self.guard.settings.gate;
        let refused = match &params.task.payload {
            TaskPayload::InputRequired { input_requests } => input_requests
                .values()
                .any(|r| input_request_method(r).is_none_or(|m| !gate.permits(m)))
                .then(|| gate.denial()),
            _ => None,
        };
        // The audit record's target (redacted there like every target).
        let task_id = params.task.task.task_id.clone();
        let refused = self
            .judged(
                "notifications/tasks",
                Some(&task_id),
                refused,
                &mut params,
                redact_typed,
            )
            .await;
        if refused.is_none() {
            self.inner.on_task_status(params, context).await;
        }
    }

    async fn on_custom_notification(
        &self,
        mut notification: CustomNotification,
        context: NotificationContext<RoleClient>,
    ) {
        if self.redact_notification(&mut notification, |layer, n| {
            redact_custom(layer, &mut n.params)
        }) {
            self.inner
                .on_custom_notification(notification, context)
                .await;
        }
    }

    fn get_info(&self) -> ClientConfig {
        self.inner.get_info()
    }
}

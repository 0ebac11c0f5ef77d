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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, CustomNotification, CustomRequest,
    CustomResult, ElicitRequestParams, ElicitResult, ListRootsResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, ResourceUpdatedNotificationParam,
    SubscriptionsAcknowledgedNotificationParams, TaskStatusNotificationParams, Tool,
};
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, RoleClient};
use rmcp::{ClientHandler, ErrorData as McpError, Peer};
use tokio::sync::watch;

use crate::provenance::pinning::{PinError, PinPolicy, PinReport, PinStore};

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
    /// The MCP request failed.
    #[error("mcp request failed: {0}")]
    Service(#[from] rmcp::service::ServiceError),
    /// The pin file could not be written.
    #[error(transparent)]
    Pins(#[from] PinError),
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
}

#[derive(Debug)]
struct Guard {
    policy: PinPolicy,
    pin_file: Option<PathBuf>,
    state: Mutex<GuardState>,
    reports: watch::Sender<Option<Arc<PinReport>>>,
}

/// A client handler wrapper that pins tool definitions. Cloning shares the pins and state.
///
/// Designed to grow: other client-side gates (redaction of results, sampling and elicitation
/// policies) wrap the same forwarded methods.
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
                policy: PinPolicy::default(),
                pin_file: None,
                state: Mutex::new(GuardState {
                    pins,
                    listed: HashMap::new(),
                    listed_once: false,
                }),
                reports: watch::channel(None).0,
            }),
        }
    }

    /// A fresh guard with the same pins and listing state (builders run before the client is
    /// served, so nothing else observes the old one).
    fn rebuild(self, policy: PinPolicy, pin_file: Option<PathBuf>) -> Self {
        let state = {
            let s = self.guard.lock();
            GuardState {
                pins: s.pins.clone(),
                listed: s.listed.clone(),
                listed_once: s.listed_once,
            }
        };
        SecureClient {
            inner: self.inner,
            guard: Arc::new(Guard {
                policy,
                pin_file,
                state: Mutex::new(state),
                reports: watch::channel(None).0,
            }),
        }
    }

    /// Uses `policy` instead of the default. Call before [`reports`](Self::reports).
    pub fn with_policy(self, policy: PinPolicy) -> Self {
        let pin_file = self.guard.pin_file.clone();
        self.rebuild(policy, pin_file)
    }

    /// Saves the pins to this file whenever trust on first use learns them. Call before
    /// [`reports`](Self::reports).
    pub fn with_pin_file(self, path: impl Into<PathBuf>) -> Self {
        let policy = self.guard.policy;
        self.rebuild(policy, Some(path.into()))
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
    /// [`SecureClientError::Service`] when listing fails; [`SecureClientError::Pins`] when
    /// learned pins cannot be saved.
    pub async fn list_tools(&self, peer: &Peer<RoleClient>) -> Result<ToolList, SecureClientError> {
        let tools = peer.list_all_tools().await?;
        self.guard.apply(tools)
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
        self.check_tool(&params.name)?;
        Ok(peer.call_tool(params).await?)
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
            let report = state.pins.check_and_learn(values.iter(), &self.policy);
            let learned = was_empty && !state.pins.is_empty();
            state.listed = report
                .tools
                .iter()
                .map(|t| (t.name.clone(), !t.blocked))
                .collect();
            state.listed_once = true;
            (Arc::new(report), learned.then(|| state.pins.clone()))
        };
        if let (Some(pins), Some(path)) = (save, &self.pin_file) {
            pins.save(path)?;
        }
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
    fn ping(
        &self,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<CreateMessageResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.create_message(params, context)
    }

    fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<ListRootsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_roots(context)
    }

    fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<ElicitResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.create_elicitation(request, context)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        params: CancelledNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(params, context)
    }

    fn on_progress(
        &self,
        params: ProgressNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(params, context)
    }

    fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_logging_message(params, context)
    }

    fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_resource_updated(params, context)
    }

    fn on_resource_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_resource_list_changed(context)
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // rmcp runs each notification in its own task, so listing here cannot deadlock.
        match context.peer.list_all_tools().await {
            Ok(tools) => {
                // A pin file that cannot be saved is reported by the next list_tools call;
                // the gate itself is already updated.
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
        self.inner.on_tool_list_changed(context).await;
    }

    fn on_prompt_list_changed(
        &self,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_prompt_list_changed(context)
    }

    fn on_subscriptions_acknowledged(
        &self,
        params: SubscriptionsAcknowledgedNotificationParams,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_subscriptions_acknowledged(params, context)
    }

    fn on_task_status(
        &self,
        params: TaskStatusNotificationParams,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_task_status(params, context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ClientConfig {
        self.inner.get_info()
    }
}

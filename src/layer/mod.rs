//! The [`SecurityLayer`]: the six components composed into one fixed pipeline.
//!
//! ```text
//! frame limits -> authenticate -> authorize -> rate limit -> validate -> [handler] -> redact -> audit
//! ```
//!
//! [`SecurityLayer::admit`] runs every check up to the handler and returns an [`Admission`]
//! (the proof the request may run) or the [`Denial`], already audited. After the handler, the
//! adapter redacts the result with [`SecurityLayer::redact_value`] / [`SecurityLayer::redact_text`]
//! and calls [`SecurityLayer::complete`], which writes the audit record. Every component error
//! denies: nothing fails open unless the builder was told so in a call whose name says so.
//!
//! ```
//! use mcp_security::audit::MemorySink;
//! use mcp_security::authn::{ApiKeyAuthenticator, ApiKeyEntry};
//! use mcp_security::authz::{AclAuthorizer, HostSet, ToolRule};
//! use mcp_security::{Action, Credentials, RequestContext, SecurityLayer, Transport};
//! use std::sync::Arc;
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let audit = Arc::new(MemorySink::new());
//! let layer = SecurityLayer::builder()
//!     .authenticator(ApiKeyAuthenticator::new([ApiKeyEntry::from_key("bot", "k-1")]))
//!     .authorizer(AclAuthorizer::builder().tool(ToolRule::new("echo", HostSet::only(["bot"]))).build()?)
//!     .audit_sink(audit.clone())
//!     .build()?;
//! let cx = RequestContext::new(Transport::InProcess).with_credentials(Credentials::api_key("k-1"));
//! let echo = Action::CallTool { name: "echo", arguments: None };
//! let admitted = layer.admit(&echo, &cx, None).await?;
//! layer.complete(admitted, &echo, &cx, mcp_security::Completion::ok(0)).await?;
//! let denied = layer.admit(&Action::CallTool { name: "rm", arguments: None }, &cx, None).await;
//! assert!(denied.is_err());
//! assert_eq!(audit.records().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;

pub use builder::{BuildError, SecurityLayerBuilder};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::audit::{
    AlertHook, AlertKind, AuditEvent, AuditFailureMode, AuditOutcome, AuditSink, EventId,
    EventType, SecurityAlert,
};
use crate::authn::{Authenticator, AuthnError};
use crate::authz::{Authorizer, Explanation};
use crate::context::{CorrelationId, Identity, RequestContext};
use crate::decision::{Decision, Denial, DenyKind, RuleId, Stage};
use crate::message::{Action, Message, MessageError};
use crate::provenance::ProvenanceVerifier;
use crate::ratelimit::{RateLimitError, RateLimiter};
use crate::redact::{Classification, Classifier, Redacted, RedactionReport, Redactor};
use crate::validate::{ArgumentsOf, Frame, InputValidator, ToolSchema};

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) allow_anonymous: bool,
    pub(crate) rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) validators: Vec<Arc<dyn InputValidator>>,
    pub(crate) redactor: Option<Arc<dyn Redactor>>,
    pub(crate) classifier: Option<Arc<Classifier>>,
    pub(crate) redact_arguments: bool,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) audit_failure: AuditFailureMode,
    pub(crate) provenance: Option<Arc<dyn ProvenanceVerifier>>,
    pub(crate) audit_failures: AtomicU64,
    pub(crate) alert: Option<Arc<dyn AlertHook>>,
    pub(crate) server_id: Option<Arc<str>>,
}

/// The composed security pipeline. Cheap to clone (one `Arc`), safe to share across tasks.
///
/// The components in force can be replaced while serving ([`SecurityLayer::reload`]): every
/// clone of the layer sees the new ones from its next request on, and a request already admitted
/// finishes, audit included, under the components it started with.
#[derive(Clone)]
pub struct SecurityLayer {
    current: Arc<ArcSwap<Inner>>,
}

impl std::fmt::Debug for SecurityLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityLayer")
            .field("current", &*self.current.load())
            .finish()
    }
}

/// Proof that a request passed every check before the handler. Hand it back to
/// [`SecurityLayer::complete`] once the handler has answered.
#[derive(Debug)]
#[must_use = "an admission must be completed, or the request is never audited"]
pub struct Admission {
    inner: Arc<Inner>,
    identity: Identity,
    rule: Option<RuleId>,
    started: Instant,
}

impl Admission {
    /// The authenticated caller.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The rule that allowed the request.
    pub fn rule(&self) -> Option<&RuleId> {
        self.rule.as_ref()
    }
}

/// How the handler answered, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// The handler answered; `redactions` values were replaced in its result.
    Ok {
        /// Values redacted from the result.
        redactions: u32,
        /// How sensitive the result was, when a classifier is configured and found something.
        classification: Option<Classification>,
    },
    /// The handler answered, but the result is classified above the caller's clearance and
    /// was withheld.
    Withheld {
        /// The result's classification.
        classification: Classification,
    },
    /// The handler returned a JSON-RPC error with this code.
    HandlerError {
        /// The error code.
        code: i32,
    },
    /// A check that needed the admission refused the request after all (task ownership); the
    /// handler did not run.
    Refused(Denial),
    /// The handler never answered: the request was cancelled or the connection closed while it
    /// ran.
    Cancelled,
}

impl Completion {
    /// The handler answered and `redactions` values were redacted.
    pub fn ok(redactions: u32) -> Self {
        Completion::Ok {
            redactions,
            classification: None,
        }
    }
}

/// The longest method or target an audit record holds, in bytes; longer ones are cut.
const MAX_AUDIT_FIELD: usize = 512;

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Everything one audit record needs beyond the context.
struct Record<'a> {
    identity: Option<&'a Identity>,
    outcome: AuditOutcome,
    stage: Stage,
    denial: Option<&'a Denial>,
    detail: Option<&'a str>,
    rule: Option<&'a RuleId>,
    error_code: Option<i32>,
    redactions: u32,
    classification: Option<&'a Classification>,
    started: Instant,
}

fn authn_denial(e: &AuthnError) -> Denial {
    let kind = match e {
        AuthnError::Unavailable(_) => DenyKind::Unavailable,
        _ => DenyKind::Unauthenticated,
    };
    // The peer learns only that it is not authenticated; which check failed goes to the audit
    // record as detail.
    Denial::new(Stage::Authentication, kind, "unauthenticated")
        .with_rule(RuleId::from_static("authentication"))
}

impl Inner {
    /// Runs the checks before the handler, in order: frame limits, authentication,
    /// authorization, rate limits, validation. `encoded_len` is the message's size on the wire when the
    /// transport knows it.
    ///
    /// # Errors
    /// The [`Denial`] of the first stage that refused. It has already been audited.
    async fn admit(
        &self,
        action: &Action<'_>,
        cx: &RequestContext,
        encoded_len: Option<usize>,
    ) -> Result<(Identity, Option<RuleId>, Instant), Denial> {
        let started = Instant::now();
        let inner = self;

        let frame = Frame::new(action, encoded_len);
        for v in &inner.validators {
            if let Err(e) = v.check_frame(&frame) {
                let d = Denial::new(Stage::Frame, e.deny_kind(), e.to_string())
                    .with_rule(RuleId::from_static("validation.frame"));
                return Err(self.deny(action, cx, None, d, None, started).await);
            }
        }

        let identity = match self.authenticate(cx).await {
            Ok(id) => id,
            Err(e) => {
                let d = authn_denial(&e);
                let detail = e.to_string();
                return Err(self.deny(action, cx, None, d, Some(&detail), started).await);
            }
        };

        let rule = match inner.authorizer.authorize(&identity, action, cx) {
            Decision::Allow(rule) => rule,
            Decision::Deny(d) => {
                return Err(self
                    .deny(action, cx, Some(&identity), d, None, started)
                    .await);
            }
        };

        // Limits are counted only for calls authorization allowed, with the rule that allowed
        // them: a hidden or refused call never reveals, or spends, a limit.
        if let Some(limiter) = &inner.rate_limiter
            && let Err(e) = limiter.check(&identity, action, rule.as_ref(), cx).await
        {
            let detail = e.to_string();
            let d = match e {
                RateLimitError::Limited { retry_after, rule } => Denial::new(
                    Stage::RateLimit,
                    DenyKind::RateLimited,
                    "rate limit exceeded",
                )
                .with_rule(rule)
                .with_retry_after(retry_after),
                RateLimitError::Unavailable(_) => Denial::new(
                    Stage::RateLimit,
                    DenyKind::Unavailable,
                    "rate limiter unavailable",
                )
                .with_rule(RuleId::from_static("rate_limit.on_failure")),
            };
            return Err(self
                .deny(action, cx, Some(&identity), d, Some(&detail), started)
                .await);
        }

        for v in &inner.validators {
            if let Err(e) = v.validate(action, &identity, cx) {
                let d = Denial::new(Stage::Validation, e.deny_kind(), e.to_string())
                    .with_rule(RuleId::from_static("validation"));
                return Err(self
                    .deny(action, cx, Some(&identity), d, None, started)
                    .await);
            }
        }

        Ok((identity, rule, started))
    }

    async fn authenticate(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        let inner = self;
        // The transport authenticated this request already (the HTTP layer, per request).
        if let Some(id) = cx.verified_identity() {
            return Ok(id.clone());
        }
        // Anonymous access applies only when nothing was presented: a wrong key is still wrong.
        if inner.allow_anonymous && cx.credentials().is_empty() {
            return Ok(Identity::anonymous());
        }
        match &inner.authenticator {
            Some(a) => a.authenticate(cx).await,
            None => Err(AuthnError::Invalid),
        }
    }

    /// [`complete`](Self::complete) for an adapter that no longer holds the action: the audit
    /// record needs only its method and target.
    ///
    /// # Errors
    /// As [`complete`](Self::complete).
    async fn complete_named(
        &self,
        admission: &Admission,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        completion: Completion,
    ) -> Result<(), Denial> {
        let withheld = crate::decision::withheld();
        let (outcome, error_code, redactions, classification, denial) = match &completion {
            Completion::Ok {
                redactions,
                classification,
            } => (
                AuditOutcome::Allow,
                None,
                *redactions,
                classification.as_ref(),
                None,
            ),
            Completion::Withheld { classification } => (
                AuditOutcome::Deny,
                None,
                0,
                Some(classification),
                Some(&withheld),
            ),
            Completion::HandlerError { code } => (AuditOutcome::Error, Some(*code), 0, None, None),
            Completion::Refused(d) => (AuditOutcome::Deny, None, 0, None, Some(d)),
            Completion::Cancelled => (AuditOutcome::Cancelled, None, 0, None, None),
        };
        let rec = Record {
            identity: Some(&admission.identity),
            outcome,
            stage: match denial {
                Some(d) => d.stage(),
                None if redactions > 0 => Stage::Redaction,
                None => Stage::Handler,
            },
            denial,
            detail: None,
            rule: denial.and_then(Denial::rule).or(admission.rule.as_ref()),
            error_code,
            redactions,
            classification,
            started: admission.started,
        };
        match self.write_audit(method, target, cx, rec).await {
            Ok(()) => Ok(()),
            Err(()) => Err(crate::decision::audit_unavailable()),
        }
    }

    /// Audits a denial and hands it back. Boxed: awaited only when a check refuses, its
    /// audit future would otherwise be carried by every admission's future (1,216 bytes instead
    /// of 376) and copied with it, allowed or not.
    fn deny(
        &self,
        action: &Action<'_>,
        cx: &RequestContext,
        identity: Option<&Identity>,
        denial: Denial,
        detail: Option<&str>,
        started: Instant,
    ) -> impl Future<Output = Denial> {
        Box::pin(async move {
            let rec = Record {
                identity,
                outcome: AuditOutcome::Deny,
                stage: denial.stage(),
                denial: Some(&denial),
                detail,
                rule: denial.rule(),
                error_code: None,
                redactions: 0,
                classification: None,
                started,
            };
            // The request is refused whatever the sink says; a failed write is counted in
            // `write_audit`, never dropped silently.
            let _ = self
                .write_audit(action.method(), action.target(), cx, rec)
                .await;
            denial
        })
    }

    /// Writes one record. `Err(())` means the request must be refused (fail closed).
    async fn write_audit(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        rec: Record<'_>,
    ) -> Result<(), ()> {
        let inner = self;
        // The target can itself carry personal data (a resource URI with an e-mail in it).
        let redacted_target =
            target.and_then(|t| inner.redactor.as_ref().and_then(|r| r.redact_text(t)));
        let target = match &redacted_target {
            Some(r) => Some(r.text()),
            None => target,
        };
        // Methods of custom requests and notifications are whatever the peer sent: bound their
        // length (and the target's) so a peer cannot flood the log.
        let method = truncate(method, MAX_AUDIT_FIELD);
        let target = target.map(|t| truncate(t, MAX_AUDIT_FIELD));
        let bounded_id;
        let correlation_id = match cx.correlation_id() {
            CorrelationId::Text(t) if t.len() > MAX_AUDIT_FIELD => {
                bounded_id = CorrelationId::Text(truncate(t, MAX_AUDIT_FIELD).into());
                &bounded_id
            }
            other => other,
        };
        let user_agent = cx.user_agent().map(|u| truncate(u, MAX_AUDIT_FIELD));
        let (tool_name, resource_uri) = match method {
            "tools/call" => (target, None),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => (None, target),
            _ => (None, None),
        };
        let event = AuditEvent {
            event_id: EventId::generate(),
            event_type: EventType::of_request(method, rec.outcome, rec.stage),
            timestamp: cx.received_at(),
            server_id: inner.server_id.as_deref(),
            transport: cx.transport(),
            correlation_id,
            session_id: cx.session_id(),
            peer_addr: cx.peer_addr(),
            user_agent,
            host: rec.identity.map(Identity::host),
            subject: rec.identity.map(Identity::subject),
            auth_method: rec.identity.map(Identity::method),
            method,
            target,
            tool_name,
            resource_uri,
            outcome: rec.outcome,
            stage: rec.stage,
            deny_kind: rec.denial.map(Denial::kind),
            rule: rec.rule,
            reason: rec.denial.map(Denial::reason),
            detail: rec.detail,
            error_code: rec.error_code,
            redactions: rec.redactions,
            classification: rec.classification,
            latency_us: u64::try_from(rec.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        if let Some(hook) = &inner.alert
            && let Some(alert) = SecurityAlert::for_event(&event)
        {
            hook.alert(&alert);
        }
        match inner.audit.record(&event).await {
            Ok(()) => Ok(()),
            Err(_) => {
                inner.audit_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = &inner.alert {
                    let detail = match inner.audit_failure {
                        AuditFailureMode::Deny => "audit record not written; request refused",
                        AuditFailureMode::Continue => "audit record not written; request answered",
                    };
                    hook.alert(
                        &SecurityAlert::new(AlertKind::AuditFailure, detail).with_event(&event),
                    );
                }
                match inner.audit_failure {
                    AuditFailureMode::Deny => Err(()),
                    AuditFailureMode::Continue => Ok(()),
                }
            }
        }
    }

    /// Refuses and audits a message the adapter could not read (its parameters do not match
    /// its method), at the frame stage. Returns the denial to answer with.
    async fn reject_malformed(
        &self,
        method: &str,
        cx: &RequestContext,
        error: &MessageError,
    ) -> Denial {
        let d = Denial::new(Stage::Frame, DenyKind::InvalidRequest, error.to_string())
            .with_rule(RuleId::from_static("message"));
        self.deny(&Action::Other { method }, cx, None, d, None, Instant::now())
            .await
    }
}

impl SecurityLayer {
    /// Starts building a layer.
    pub fn builder() -> SecurityLayerBuilder {
        SecurityLayerBuilder::default()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        SecurityLayer {
            current: Arc::new(ArcSwap::from_pointee(inner)),
        }
    }

    /// Puts `next`'s components in force for every clone of this layer, atomically. Requests
    /// already admitted finish under the components they started with; `next` is not changed.
    /// Build `next` completely first (a policy that does not load leaves this layer as it is).
    pub fn reload(&self, next: &SecurityLayer) {
        self.current.store(next.current.load_full());
    }

    /// [`reload`](Self::reload), recorded as a `configuration_change` event (method
    /// `policy/reload`, with `detail` saying what changed) in the new policy's audit sink.
    ///
    /// # Errors
    /// With [`AuditFailureMode::Deny`] in the new policy, a [`Denial`] at [`Stage::Audit`] when
    /// the record could not be written; the new components are in force either way.
    pub async fn reload_audited(&self, next: &SecurityLayer, detail: &str) -> Result<(), Denial> {
        self.reload(next);
        let inner = self.current.load_full();
        let mut event = AuditEvent::system(
            EventType::ConfigurationChange,
            "policy/reload",
            &CorrelationId::None,
        )
        .with_detail(detail);
        event.server_id = inner.server_id.as_deref();
        match inner.audit.record(&event).await {
            Ok(()) => Ok(()),
            Err(_) => {
                inner.audit_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(hook) = &inner.alert {
                    hook.alert(
                        &SecurityAlert::new(
                            AlertKind::AuditFailure,
                            "configuration change not audited",
                        )
                        .with_event(&event),
                    );
                }
                match inner.audit_failure {
                    AuditFailureMode::Deny => Err(crate::decision::audit_unavailable()),
                    AuditFailureMode::Continue => Ok(()),
                }
            }
        }
    }

    /// Runs the checks before the handler, in order: frame limits, authentication,
    /// authorization, rate limits, validation. `encoded_len` is the message's size on the wire when the
    /// transport knows it.
    ///
    /// # Errors
    /// The [`Denial`] of the first stage that refused. It has already been audited.
    pub async fn admit(
        &self,
        action: &Action<'_>,
        cx: &RequestContext,
        encoded_len: Option<usize>,
    ) -> Result<Admission, Denial> {
        // One snapshot for the whole request: a reload mid-request does not mix policies.
        let inner = self.current.load_full();
        let (identity, rule, started) = inner.admit(action, cx, encoded_len).await?;
        Ok(Admission {
            inner,
            identity,
            rule,
            started,
        })
    }

    /// Writes the audit record for an admitted request once the handler has answered.
    ///
    /// # Errors
    /// With [`AuditFailureMode::Deny`], a [`Denial`] at [`Stage::Audit`] when the record could
    /// not be written: the caller must then discard the handler's result and answer the denial.
    pub async fn complete(
        &self,
        admission: Admission,
        action: &Action<'_>,
        cx: &RequestContext,
        completion: Completion,
    ) -> Result<(), Denial> {
        self.complete_named(admission, action.method(), action.target(), cx, completion)
            .await
    }

    /// [`complete`](Self::complete) for an adapter that no longer holds the action: the audit
    /// record needs only its method and target.
    ///
    /// # Errors
    /// As [`complete`](Self::complete).
    pub async fn complete_named(
        &self,
        admission: Admission,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        completion: Completion,
    ) -> Result<(), Denial> {
        // The record goes to the sink of the policy the request was admitted under.
        let inner = admission.inner.clone();
        inner
            .complete_named(&admission, method, target, cx, completion)
            .await
    }

    /// Refuses and audits a message the adapter could not read (its parameters do not match
    /// its method), at the frame stage. Returns the denial to answer with.
    pub async fn reject_malformed(
        &self,
        method: &str,
        cx: &RequestContext,
        error: &MessageError,
    ) -> Denial {
        self.current
            .load_full()
            .reject_malformed(method, cx, error)
            .await
    }

    /// Authenticates a transport-level request (an HTTP request, before its body is read) as
    /// the pipeline's authentication stage would, and audits a refusal under `method` and
    /// `target`.
    ///
    /// # Errors
    /// The [`Denial`] (`unauthenticated`, or `unavailable` when the authenticator could not
    /// run), already audited with the internal reason as detail.
    pub async fn authenticate_request(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
    ) -> Result<Identity, Denial> {
        let inner = self.current.load_full();
        let started = Instant::now();
        match inner.authenticate(cx).await {
            Ok(id) => Ok(id),
            Err(e) => {
                let d = authn_denial(&e);
                let detail = e.to_string();
                let rec = Record {
                    identity: None,
                    outcome: AuditOutcome::Deny,
                    stage: d.stage(),
                    denial: Some(&d),
                    detail: Some(&detail),
                    rule: d.rule(),
                    error_code: None,
                    redactions: 0,
                    classification: None,
                    started,
                };
                // Refused whatever the sink says; a failed write is counted in `write_audit`.
                let _ = inner.write_audit(method, target, cx, rec).await;
                Err(d)
            }
        }
    }

    /// Audits a refusal a transport made on its own (a `Host` not allowed, a session that is
    /// not the caller's, a body over the limit) and hands the denial back.
    pub async fn audit_refusal(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        identity: Option<&Identity>,
        denial: Denial,
    ) -> Denial {
        let inner = self.current.load_full();
        let rec = Record {
            identity,
            outcome: AuditOutcome::Deny,
            stage: denial.stage(),
            denial: Some(&denial),
            detail: None,
            rule: denial.rule(),
            error_code: None,
            redactions: 0,
            classification: None,
            started: Instant::now(),
        };
        let _ = inner.write_audit(method, target, cx, rec).await;
        denial
    }

    /// Audits what a host (the proxy, [`SecureClient`](crate::adapters::rmcp::SecureClient))
    /// decided about traffic from a server: a request the server sent its client
    /// (`sampling/createMessage`, `elicitation/create`, `roots/list`), or the answer to a call
    /// the host made, with the values redacted from it. Passed on when `refused` is `None`,
    /// refused with it otherwise. The record has no identity: the server is the sender, and it
    /// is not authenticated.
    ///
    /// # Errors
    /// With [`AuditFailureMode::Deny`], the `audit unavailable` denial when the record could
    /// not be written: the host must then refuse what it was about to pass on.
    pub async fn audit_from_server(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        redactions: u32,
        refused: Option<&Denial>,
    ) -> Result<(), Denial> {
        let rec = Record {
            identity: None,
            outcome: if refused.is_some() {
                AuditOutcome::Deny
            } else {
                AuditOutcome::Allow
            },
            stage: match refused {
                Some(d) => d.stage(),
                None if redactions > 0 => Stage::Redaction,
                None => Stage::Handler,
            },
            denial: refused,
            detail: None,
            rule: refused.and_then(Denial::rule),
            error_code: None,
            redactions,
            classification: None,
            started: Instant::now(),
        };
        self.write_host_record(method, target, cx, rec).await
    }

    /// Writes a record of the host side (no identity); `Err` is the `audit unavailable`
    /// denial when it could not be written.
    async fn write_host_record(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        rec: Record<'_>,
    ) -> Result<(), Denial> {
        self.current
            .load_full()
            .write_audit(method, target, cx, rec)
            .await
            .map_err(|()| crate::decision::audit_unavailable())
    }

    /// Audits a call a host made that did not come back with a result: the server answered
    /// with an error (`code`, its JSON-RPC code; the message and data redacted by the host,
    /// `redactions` values), or the call failed on the way (`code` `None`). The record has no
    /// identity, as in [`audit_from_server`](Self::audit_from_server).
    ///
    /// # Errors
    /// With [`AuditFailureMode::Deny`], the `audit unavailable` denial when the record could
    /// not be written.
    pub async fn audit_server_error(
        &self,
        method: &str,
        target: Option<&str>,
        cx: &RequestContext,
        redactions: u32,
        code: Option<i32>,
    ) -> Result<(), Denial> {
        let rec = Record {
            identity: None,
            outcome: AuditOutcome::Error,
            stage: Stage::Handler,
            denial: None,
            detail: None,
            rule: None,
            error_code: code,
            redactions,
            classification: None,
            started: Instant::now(),
        };
        self.write_host_record(method, target, cx, rec).await
    }

    /// Authenticates `cx` as the pipeline would, without auditing: for diagnostics such as
    /// [`explain`](Self::explain).
    ///
    /// # Errors
    /// The [`AuthnError`] that authentication would deny with.
    pub async fn identify(&self, cx: &RequestContext) -> Result<Identity, AuthnError> {
        self.current.load_full().authenticate(cx).await
    }

    /// The decision the authorizer reaches for `identity` performing `action`, and the rules that
    /// led to it. Diagnostic: nothing is audited and no rate limit is counted.
    pub fn explain(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
    ) -> Explanation {
        self.current.load().authorizer.explain(identity, action, cx)
    }

    /// Whether `identity` may use the target of `action`: the list filter. An item is listed
    /// exactly when calling it would be authorized, so hidden items read as unknown.
    pub fn permits(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> bool {
        self.current
            .load()
            .authorizer
            .authorize(identity, action, cx)
            .is_allow()
    }

    /// Classifies what redaction found in an admitted request's result, under the policy the
    /// request was admitted with.
    ///
    /// # Errors
    /// When the result's level is above what the caller is cleared for, the classification
    /// comes back as the error: withhold the result and complete with
    /// [`Completion::Withheld`].
    pub fn classify(
        &self,
        admission: &Admission,
        report: &RedactionReport,
    ) -> Result<Option<Classification>, Classification> {
        let Some(classifier) = &admission.inner.classifier else {
            return Ok(None);
        };
        match classifier.classify(report) {
            Some(c) if !classifier.cleared(admission.identity.host(), c.level) => Err(c),
            other => Ok(other),
        }
    }

    /// Whether tool and prompt arguments are redacted before the handler sees them.
    pub fn redacts_arguments(&self) -> bool {
        self.current.load().redact_arguments
    }

    /// Normalizes the arguments of a `tools/call` or `prompts/get` before any check (invisible
    /// characters stripped when the policy says `strip`): call it before building the
    /// [`Action`] that [`admit`](Self::admit) checks, so the checks see what the handler will.
    pub fn normalize_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        for v in &self.current.load().validators {
            v.normalize_arguments(target, args);
        }
    }

    /// Rewrites the arguments of an admitted `tools/call` or `prompts/get` before the handler
    /// sees them: every validator's rewrites (HTML escaped where an argument asks for it).
    /// Call it after [`admit`](Self::admit) allowed the request.
    pub fn rewrite_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        for v in &self.current.load().validators {
            v.rewrite_arguments(target, args);
        }
    }

    /// Tells the validators which tools the server declares (on every `tools/list` the server
    /// answers, before filtering), so tool arguments are checked against each tool's own
    /// input schema.
    pub fn observe_tools(&self, tools: &[ToolSchema<'_>]) {
        for v in &self.current.load().validators {
            v.observe_tools(tools);
        }
    }

    /// Whether a validator needs the schema of tool `name` and has not seen it: the adapter
    /// then fetches the handler's tool definition and passes it to
    /// [`observe_tools`](Self::observe_tools) before admitting the call.
    pub fn needs_tool_schema(&self, name: &str) -> bool {
        self.current
            .load()
            .validators
            .iter()
            .any(|v| v.needs_tool_schema(name))
    }

    /// Redacts `text`; `None` when nothing was found (or no redactor is configured).
    pub fn redact_text(&self, text: &str) -> Option<Redacted> {
        self.current
            .load()
            .redactor
            .as_ref()
            .and_then(|r| r.redact_text(text))
    }

    /// Redacts `text` in place.
    pub fn redact_string(&self, text: &mut String) -> RedactionReport {
        match &self.current.load().redactor {
            Some(r) => crate::redact::redact_string(&**r, text),
            None => RedactionReport::default(),
        }
    }

    /// Redacts every string in `value`.
    pub fn redact_value(&self, value: &mut Value) -> RedactionReport {
        match &self.current.load().redactor {
            Some(r) => r.redact_value(value),
            None => RedactionReport::default(),
        }
    }

    /// Whether a redactor is configured.
    pub fn redacts(&self) -> bool {
        self.current.load().redactor.is_some()
    }

    /// The provenance verifier, if one was configured (hosts use it before launching a server).
    pub fn provenance(&self) -> Option<Arc<dyn ProvenanceVerifier>> {
        self.current.load().provenance.clone()
    }

    /// How many audit records could not be written under the components now in force.
    pub fn audit_failures(&self) -> u64 {
        self.current.load().audit_failures.load(Ordering::Relaxed)
    }

    /// Evaluates every envelope of `message` as a dry run, a batch element by element: the
    /// verdict per envelope, in order, each audited. An envelope whose parameters do not match
    /// its method, or a response where a request was expected, is refused at the frame stage.
    pub async fn evaluate_message(
        &self,
        message: &Message,
        cx: &RequestContext,
    ) -> Vec<Result<Option<RuleId>, Denial>> {
        let mut verdicts = Vec::with_capacity(message.envelopes().len());
        for envelope in message.envelopes() {
            let cx = cx.clone().with_correlation_id(envelope.id().clone());
            let method = envelope.method().unwrap_or("(response)");
            let verdict = match envelope.action() {
                Ok(action) => {
                    self.evaluate(&action, &cx, Some(message.encoded_len()))
                        .await
                }
                Err(e) => Err(self.reject_malformed(method, &cx, &e).await),
            };
            verdicts.push(verdict);
        }
        verdicts
    }

    /// Runs the checks before the handler and completes at once, as a dry run: the decision the
    /// layer would reach for `action`, audited like a real request.
    pub async fn evaluate(
        &self,
        action: &Action<'_>,
        cx: &RequestContext,
        encoded_len: Option<usize>,
    ) -> Result<Option<RuleId>, Denial> {
        let admission = self.admit(action, cx, encoded_len).await?;
        let rule = admission.rule.clone();
        self.complete(admission, action, cx, Completion::ok(0))
            .await?;
        Ok(rule)
    }
}

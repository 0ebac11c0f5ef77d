//! Building a [`SecurityLayer`]: every security-relevant choice is made explicitly.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{Inner, SecurityLayer};
use crate::audit::{AlertHook, AuditFailureMode, AuditSink};
use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::provenance::ProvenanceVerifier;
use crate::ratelimit::RateLimiter;
use crate::redact::{Classifier, Redactor};
use crate::validate::InputValidator;

/// A layer was asked for without a choice the builder refuses to make on the caller's behalf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither an authenticator nor `allow_anonymous()`.
    #[error(
        "no authenticator: set one, or call allow_anonymous() to accept unauthenticated callers"
    )]
    MissingAuthenticator,
    /// No authorizer.
    #[error("no authorizer: set one (deny by default needs a policy to deny by)")]
    MissingAuthorizer,
    /// No audit sink.
    #[error("no audit sink: every decision is audited, so set one")]
    MissingAuditSink,
}

/// Builds a [`SecurityLayer`]; see [`SecurityLayer::builder`].
///
/// `build` refuses to produce a layer without an authenticator (or an explicit
/// [`allow_anonymous`](Self::allow_anonymous)), an authorizer and an audit sink.
#[derive(Debug, Default)]
pub struct SecurityLayerBuilder {
    authenticator: Option<Arc<dyn Authenticator>>,
    allow_anonymous: bool,
    authorizer: Option<Arc<dyn Authorizer>>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
    validators: Vec<Arc<dyn InputValidator>>,
    redactor: Option<Arc<dyn Redactor>>,
    classifier: Option<Arc<Classifier>>,
    redact_arguments: bool,
    audit: Option<Arc<dyn AuditSink>>,
    audit_failure: AuditFailureMode,
    provenance: Option<Arc<dyn ProvenanceVerifier>>,
    alert: Option<Arc<dyn AlertHook>>,
    server_id: Option<Arc<str>>,
}

impl SecurityLayerBuilder {
    /// Sets the authenticator.
    pub fn authenticator(mut self, a: impl Authenticator + 'static) -> Self {
        self.authenticator = Some(Arc::new(a));
        self
    }

    /// Sets the authenticator from a shared one.
    pub fn authenticator_arc(mut self, a: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(a);
        self
    }

    /// Accepts callers that present no credentials, as the identity `anonymous`. Callers that
    /// do present credentials are still authenticated, and refused when those are wrong.
    pub fn allow_anonymous(mut self) -> Self {
        self.allow_anonymous = true;
        self
    }

    /// Sets the authorizer.
    pub fn authorizer(mut self, a: impl Authorizer + 'static) -> Self {
        self.authorizer = Some(Arc::new(a));
        self
    }

    /// Sets the authorizer from a shared one.
    pub fn authorizer_arc(mut self, a: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(a);
        self
    }

    /// Sets the rate limiter, checked after authentication and before authorization.
    pub fn rate_limiter(mut self, r: impl RateLimiter + 'static) -> Self {
        self.rate_limiter = Some(Arc::new(r));
        self
    }

    /// Sets the rate limiter from a shared one.
    pub fn rate_limiter_arc(mut self, r: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(r);
        self
    }

    /// Adds an input validator; validators run in the order added.
    pub fn validator(mut self, v: impl InputValidator + 'static) -> Self {
        self.validators.push(Arc::new(v));
        self
    }

    /// Sets the redactor for results and audit targets.
    pub fn redactor(mut self, r: impl Redactor + 'static) -> Self {
        self.redactor = Some(Arc::new(r));
        self
    }

    /// Classifies results by what the redactor found, and withholds results above the caller's
    /// clearance.
    pub fn classifier(mut self, c: Classifier) -> Self {
        self.classifier = Some(Arc::new(c));
        self
    }

    /// Also redacts tool and prompt arguments before the handler sees them.
    pub fn redact_arguments(mut self) -> Self {
        self.redact_arguments = true;
        self
    }

    /// Sets the audit sink.
    pub fn audit_sink(mut self, s: impl AuditSink + 'static) -> Self {
        self.audit = Some(Arc::new(s));
        self
    }

    /// Sets the audit sink from a shared one.
    pub fn audit_sink_arc(mut self, s: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(s);
        self
    }

    /// Keeps answering requests when the audit sink fails, counting the failures instead of
    /// refusing. The default refuses (fails closed).
    pub fn audit_failure_open(mut self) -> Self {
        self.audit_failure = AuditFailureMode::Continue;
        self
    }

    /// Sets what an audit failure means.
    pub fn audit_failure_mode(mut self, mode: AuditFailureMode) -> Self {
        self.audit_failure = mode;
        self
    }

    /// Calls `hook` for security events: authentication failures, rate limits exceeded,
    /// results withheld above the caller's clearance, audit records that could not be written.
    pub fn alert_hook(mut self, hook: impl AlertHook + 'static) -> Self {
        self.alert = Some(Arc::new(hook));
        self
    }

    /// Sets the alert hook from a shared one.
    pub fn alert_hook_arc(mut self, hook: Arc<dyn AlertHook>) -> Self {
        self.alert = Some(hook);
        self
    }

    /// Names the server this layer protects, in every audit record (`server_id`).
    pub fn server_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.server_id = Some(id.into());
        self
    }

    /// Sets a provenance verifier for the host to check server artifacts with.
    pub fn provenance(mut self, p: impl ProvenanceVerifier + 'static) -> Self {
        self.provenance = Some(Arc::new(p));
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// A [`BuildError`] naming the missing choice.
    pub fn build(self) -> Result<SecurityLayer, BuildError> {
        if self.authenticator.is_none() && !self.allow_anonymous {
            return Err(BuildError::MissingAuthenticator);
        }
        let authorizer = self.authorizer.ok_or(BuildError::MissingAuthorizer)?;
        let audit = self.audit.ok_or(BuildError::MissingAuditSink)?;
        Ok(SecurityLayer::from_inner(Inner {
            authenticator: self.authenticator,
            allow_anonymous: self.allow_anonymous,
            authorizer,
            rate_limiter: self.rate_limiter,
            validators: self.validators,
            redactor: self.redactor,
            classifier: self.classifier,
            redact_arguments: self.redact_arguments,
            audit,
            audit_failure: self.audit_failure,
            provenance: self.provenance,
            audit_failures: AtomicU64::new(0),
            alert: self.alert,
            server_id: self.server_id,
        }))
    }
}

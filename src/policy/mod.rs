//! The policy file: one TOML file that configures a whole [`SecurityLayer`].
//!
//! Unknown keys are errors, and every error names the key path and the reason. Secrets never
//! live in the file: API keys are stored as SHA-256 hashes (`key_sha256`), and a `key` field is
//! refused outright. Everything is checked when the file is read (hashes decoded, patterns
//! compiled, detectors known), so a policy that loads is a policy that builds.
//!
//! ```
//! use mcp_security::policy::Policy;
//!
//! let err = Policy::from_toml_str(r#"
//!     [[tools]]
//!     name = "query_database"
//!     allowed_hosts = ["bot"]
//!     arguments.limit = { type = "number", minimum = 1 }
//! "#).unwrap_err();
//! assert!(err.to_string().starts_with("tools[0].arguments.limit"), "{err}");
//! ```
//!
//! The full format is in `docs/policy.md`.

mod authn;
mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::audit::{AuditFailureMode, FileSink, FileSinkConfig, FsyncPolicy};
use crate::authn::{ApiKeyAuthenticator, ApiKeyEntry, Authenticator};
use crate::authz::{
    AclAuthorizer, Conditions, HostSet, PromptRule, ResourcePermission, ResourceRule, TimeWindow,
    ToolRule,
};
use crate::context::Credentials;
use crate::layer::{BuildError, SecurityLayer, SecurityLayerBuilder};
use crate::ratelimit::{MemoryRateLimiter, Rate, RateLimiter, RateRule, Target};
use crate::redact::{
    Category, Classifier, CustomDetector, Detector, Level, PatternRedactor, RedactionStyle,
    Validator,
};
use crate::validate::{
    ArgumentConstraints, ArgumentKind, ArgumentRule, ArgumentType, FrameLimits, Invisible,
    PathGuard, ResourceUriValidator, RuleSet, SsrfGuard, SystemResolver, ToolSchemas,
};

/// The environment variable a stdio server reads its caller's API key from when the policy does
/// not name one.
pub const DEFAULT_API_KEY_ENV: &str = "MCP_API_KEY";

/// Reloads a policy file into a serving [`SecurityLayer`].
///
/// A reload reads, checks and builds the whole file first and swaps it in only when all of
/// that succeeded: a file with an error leaves the old policy serving, and the error is
/// returned to be reported. Requests already admitted finish under the policy they started with.
///
/// ```
/// use mcp_security::policy::{Policy, PolicyReloader};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("policy.toml");
/// let audit = dir.path().join("audit.jsonl");
/// std::fs::write(&path, format!("[auth]\nanonymous = true\n[audit]\npath = {audit:?}\n"))?;
/// let layer = Policy::load(&path)?.build()?;
/// let mut reloader = PolicyReloader::new(&path, layer.clone());
/// std::fs::write(&path, "[auth]\nanonymous = maybe\n")?;
/// assert!(reloader.reload().is_err()); // the old policy keeps serving
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PolicyReloader {
    path: PathBuf,
    layer: SecurityLayer,
    seen: Option<(std::time::SystemTime, u64)>,
    settled: bool,
    applied: Option<[u8; 32]>,
}

impl PolicyReloader {
    /// A reloader of the file at `path` into `layer` (and every clone of it), taking the file's
    /// current content as the one in force.
    pub fn new(path: impl AsRef<Path>, layer: SecurityLayer) -> Self {
        let path = path.as_ref().to_path_buf();
        let seen = Self::stamp(&path);
        let applied = std::fs::read(&path).ok().map(|c| Self::digest(&c));
        PolicyReloader {
            path,
            layer,
            seen,
            settled: true,
            applied,
        }
    }

    fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn digest(content: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(content).into()
    }

    fn apply(&mut self, content: &[u8]) -> Result<(), PolicyError> {
        let text = std::str::from_utf8(content)
            .map_err(|_| invalid("(root)", "the policy file is not UTF-8 text"))?;
        let next = Self::parse_at(text, &self.path)?.build()?;
        self.layer.reload(&next);
        self.applied = Some(Self::digest(content));
        Ok(())
    }

    fn parse_at(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        Policy::parse(text, path.parent())
    }

    /// Reads, checks and builds the file now, then puts it in force.
    ///
    /// # Errors
    /// The [`PolicyError`] of a file that does not load or build; the old policy keeps serving.
    pub fn reload(&mut self) -> Result<(), PolicyError> {
        self.seen = Self::stamp(&self.path);
        self.settled = true;
        let content = std::fs::read(&self.path).map_err(|source| PolicyError::Read {
            path: self.path.clone(),
            source,
        })?;
        self.apply(&content)
    }

    /// Polls the file: `Ok(true)` when a new policy was put in force.
    ///
    /// A change is applied only once the file has stayed the same (modification time and size)
    /// for one whole poll, so a file still being written is not read half-way; and only when
    /// its content differs from the policy in force. Write policies by atomic rename all the
    /// same. A file that failed to load is not retried until it changes again.
    ///
    /// # Errors
    /// As [`reload`](Self::reload).
    pub fn reload_if_changed(&mut self) -> Result<bool, PolicyError> {
        let now = Self::stamp(&self.path);
        if now != self.seen {
            self.seen = now;
            self.settled = false;
            return Ok(false);
        }
        if self.settled {
            return Ok(false);
        }
        self.settled = true;
        let content = std::fs::read(&self.path).map_err(|source| PolicyError::Read {
            path: self.path.clone(),
            source,
        })?;
        if self.applied == Some(Self::digest(&content)) {
            return Ok(false);
        }
        self.apply(&content).map(|()| true)
    }

    /// Looks at the file every `every` on the current tokio runtime and reloads it when it
    /// changed, calling `report` with each outcome (`Ok(true)` reloaded, `Err` kept the old
    /// policy). Stops when the returned handle is aborted.
    #[cfg(feature = "rmcp")]
    pub fn spawn_watch(
        mut self,
        every: std::time::Duration,
        report: impl Fn(Result<bool, PolicyError>) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match self.reload_if_changed() {
                    Ok(false) => {}
                    outcome => report(outcome),
                }
            }
        })
    }
}

/// A policy that could not be read or built. The message starts with the key path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key has a bad value, a wrong type, or is unknown.
    #[error("{path}: {reason}")]
    Invalid {
        /// The key path (`tools[0].arguments.limit.min`), or `(root)`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The audit file could not be opened.
    #[error("audit.path: cannot open `{path}`: {reason}")]
    Audit {
        /// The audit file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The layer could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// A parsed and checked policy, ready to build layers.
#[derive(Debug, Clone)]
pub struct Policy {
    authenticator: Option<Arc<dyn Authenticator>>,
    anonymous: bool,
    api_key_env: Option<String>,
    authorizer: Arc<AclAuthorizer>,
    rate_limits: Option<RateBackend>,
    frame: FrameLimits,
    uris: ResourceUriValidator,
    arguments: Option<ArgumentConstraints>,
    schemas: Option<ToolSchemas>,
    redactor: Option<PatternRedactor>,
    classifier: Option<Classifier>,
    redact_arguments: bool,
    audit_path: Option<PathBuf>,
    audit_config: Option<FileSinkConfig>,
    audit_failure: AuditFailureMode,
    server_id: Option<Arc<str>>,
    hosts: Vec<String>,
    http: Option<crate::adapters::http::HttpConfig>,
    proxy: crate::adapters::proxy::ProxyConfig,
}

impl Policy {
    /// Reads and checks the policy file at `path`. A relative `audit.path` is resolved against
    /// the policy file's directory.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the key and the reason.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path.parent())
    }

    /// Parses and checks a policy held in a string. A relative `audit.path` is resolved against
    /// the current directory.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the key and the reason.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        Self::parse(text, None)
    }

    fn parse(text: &str, base: Option<&Path>) -> Result<Self, PolicyError> {
        let f = file::parse(text)?;

        let mut entries = Vec::with_capacity(f.auth.api_keys.len());
        for (i, k) in f.auth.api_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.api_keys[{i}].{field}");
            if k.key.is_some() {
                return Err(invalid(
                    at("key"),
                    "api keys are never stored in clear: use key_sha256 (mcp-security hash-key prints it)",
                ));
            }
            if k.host.trim().is_empty() {
                return Err(invalid(at("host"), "must not be empty"));
            }
            let mut entry = ApiKeyEntry::from_sha256_hex(&k.host, &k.key_sha256)
                .map_err(|e| invalid(at("key_sha256"), e.to_string()))?;
            if let Some(exp) = &k.expires {
                let when: DateTime<Utc> = DateTime::parse_from_rfc3339(&exp.to_string())
                    .map_err(|_| invalid(at("expires"), "must be an RFC 3339 date-time with an offset, such as 2027-01-01T00:00:00Z"))?
                    .with_timezone(&Utc);
                entry = entry.with_expires(when);
            }
            if let Some(nbf) = &k.not_before {
                let when: DateTime<Utc> = DateTime::parse_from_rfc3339(&nbf.to_string())
                    .map_err(|_| invalid(at("not_before"), "must be an RFC 3339 date-time with an offset, such as 2027-01-01T00:00:00Z"))?
                    .with_timezone(&Utc);
                entry = entry.with_not_before(when);
            }
            let nets = parse_nets(&at("allowed_ips"), &k.allowed_ips)?;
            entries.push(
                entry
                    .with_allowed_ips(nets)
                    .with_scopes(k.scopes.iter().map(String::as_str)),
            );
        }
        let mut hosts: Vec<String> = f.auth.api_keys.iter().map(|k| k.host.clone()).collect();
        hosts.extend(f.auth.client_certificates.iter().map(|c| c.host.clone()));
        let http = f
            .http
            .as_ref()
            .map(|h| http_config(h, f.server.resource.as_deref()))
            .transpose()?;
        let http_anonymous = http.as_ref().is_some_and(|h| h.anonymous.is_some());
        let proxy = proxy_config(&f)?;
        // With only the HTTP layer's named anonymous access, or only the proxy's named client,
        // the layer still gets an authenticator: one with no keys, which refuses every
        // credential presented.
        let api_keys = (!entries.is_empty() || http_anonymous || proxy.identity.is_some())
            .then(|| Arc::new(ApiKeyAuthenticator::new(entries)) as Arc<dyn Authenticator>);
        // RFC 8707: tokens are for this server's canonical URI; a JWT audience that names
        // another resource than the one the HTTP layer advertises is a misconfiguration that
        // would accept tokens meant elsewhere, or refuse every token.
        if let (Some(resource), Some(jwt)) = (f.server.resource.as_deref(), f.auth.jwt.as_ref())
            && jwt.audience != resource
        {
            return Err(invalid(
                "auth.jwt.audience",
                "must equal server.resource, the canonical URI tokens are issued for",
            ));
        }
        let authenticator = authn::compose(&f.auth, base, api_keys)?;
        if authenticator.is_none()
            && !f.auth.anonymous
            && !http_anonymous
            && proxy.identity.is_none()
        {
            return Err(invalid(
                "auth",
                "no way to authenticate: add [[auth.api_keys]], [auth.jwt] or [[auth.client_certificates]], or set anonymous = true",
            ));
        }

        let mut acl = AclAuthorizer::builder();
        let mut constraints = ArgumentConstraints::new();
        let mut rates: Vec<RateRule> = Vec::new();
        let mut constrained_tools: Vec<(&str, String)> = Vec::new();
        let mut constrained_prompts: Vec<(&str, String)> = Vec::new();
        for (i, t) in f.tools.iter().enumerate() {
            let at = format!("tools[{i}]");
            let common = rule_common(&at, &t.rule(), &mut rates)?;
            acl = acl.tool(common.apply(ToolRule::new(t.name.clone(), common.hosts.clone())));
            if !t.arguments.is_empty() || t.additional_arguments == Some(false) {
                constrained_once(&at, &t.name, &mut constrained_tools)?;
                let rules = argument_rules(&format!("{at}.arguments"), &t.arguments)?;
                constraints =
                    constraints.tool(t.name.clone(), rules, t.additional_arguments == Some(false));
            }
        }
        for (i, p) in f.prompts.iter().enumerate() {
            let at = format!("prompts[{i}]");
            let common = rule_common(&at, &p.rule(), &mut rates)?;
            acl = acl.prompt(common.apply(PromptRule::new(p.name.clone(), common.hosts.clone())));
            if !p.arguments.is_empty() || p.additional_arguments == Some(false) {
                constrained_once(&at, &p.name, &mut constrained_prompts)?;
                let rules = argument_rules(&format!("{at}.arguments"), &p.arguments)?;
                constraints = constraints.prompt(
                    p.name.clone(),
                    rules,
                    p.additional_arguments == Some(false),
                );
            }
        }
        for (i, r) in f.resources.iter().enumerate() {
            let at = format!("resources[{i}]");
            let common = rule_common(&at, &r.rule(), &mut rates)?;
            let mut perms = Vec::new();
            for (j, p) in r.permissions.iter().enumerate() {
                perms.push(match p.as_str() {
                    "read" => ResourcePermission::Read,
                    "write" => ResourcePermission::Write,
                    "execute" => ResourcePermission::Execute,
                    _ => {
                        return Err(invalid(
                            format!("{at}.permissions[{j}]"),
                            "must be \"read\", \"write\" or \"execute\"",
                        ));
                    }
                });
            }
            if r.permissions.is_empty() {
                perms.push(ResourcePermission::Read);
            }
            acl = acl.resource(common.apply(
                ResourceRule::new(r.uri.clone(), common.hosts.clone()).with_permissions(perms),
            ));
        }
        for m in &f.authorization.allow_methods {
            acl = acl.allow_method(m.clone());
        }
        let authorizer = Arc::new(
            acl.build()
                .map_err(|e| invalid("tools/resources/prompts", e.to_string()))?,
        );
        if f.rate_limit.per_caller.is_none() && f.rate_limit.burst.is_some() {
            return Err(invalid("rate_limit.burst", "needs rate_limit.per_caller"));
        }
        if let Some(limit) = &f.rate_limit.per_caller {
            let rate = parse_rate(
                "rate_limit.per_caller",
                limit,
                f.rate_limit.burst,
                "rate_limit.burst",
            )?;
            rates.push(RateRule::new("rate_limit.per_caller", Target::Any, rate));
        }
        let rate_limits = rate_backend(&f.rate_limit, rates)?;

        let v = &f.validation;
        let (frame, uris, paths, urls) = validation(v)?;
        let constraints = constraints
            .with_path_guard(paths.clone())
            .with_url_guard(urls.clone());
        let schemas = match v.tool_schemas.as_deref() {
            Some("off") => None,
            None | Some("when_declared") => Some(ToolSchemas::new(paths, urls)),
            Some("required") => Some(ToolSchemas::new(paths, urls).require_schema(true)),
            Some(_) => {
                return Err(invalid(
                    "validation.tool_schemas",
                    "must be \"when_declared\", \"required\" or \"off\"",
                ));
            }
        }
        .map(|s| s.infer_argument_kinds(v.infer_argument_kinds.unwrap_or(true)));

        let (redactor, classifier) = redaction(&f.redaction, base)?;
        // A clearance for a host nobody authenticates as is a typo that would leave the real
        // host on the default clearance.
        for (j, cl) in f.redaction.clearance.iter().enumerate() {
            // Token hosts come from the issuer, so with [auth.jwt] any name may be a host.
            let known = hosts.contains(&cl.host)
                || (f.auth.anonymous && cl.host == "anonymous")
                || f.auth.jwt.is_some()
                || f.http
                    .as_ref()
                    .and_then(|h| h.anonymous.as_ref())
                    .is_some_and(|a| a.host == cl.host);
            if !known {
                return Err(invalid(
                    format!("redaction.clearance[{j}].host"),
                    "names no host with an api key (or \"anonymous\")",
                ));
            }
        }

        let audit_config = match &f.audit {
            Some(a) => Some(audit_sink_config(a, base)?),
            None => None,
        };
        let (audit_path, audit_failure) = match &f.audit {
            Some(a) => {
                let mode = match a.on_failure.as_deref() {
                    None | Some("deny") => AuditFailureMode::Deny,
                    Some("continue") => AuditFailureMode::Continue,
                    Some(_) => {
                        return Err(invalid(
                            "audit.on_failure",
                            "must be \"deny\" or \"continue\"",
                        ));
                    }
                };
                let p = match base {
                    Some(b) if a.path.is_relative() => b.join(&a.path),
                    _ => a.path.clone(),
                };
                (Some(p), mode)
            }
            None => (None, AuditFailureMode::Deny),
        };

        Ok(Policy {
            authenticator,
            anonymous: f.auth.anonymous,
            api_key_env: f.auth.api_key_env,
            authorizer,
            rate_limits,
            frame,
            uris,
            arguments: (!constraints.is_empty()).then_some(constraints),
            schemas,
            redactor,
            classifier,
            redact_arguments: f.redaction.arguments,
            audit_path,
            audit_config,
            audit_failure,
            server_id: f.server.name.map(Arc::from),
            hosts,
            http,
            proxy,
        })
    }

    /// A builder with everything but the audit sink set: for callers that audit elsewhere
    /// (dry runs, tests). [`SecurityLayerBuilder::build`] still refuses to build without a sink.
    pub fn builder_without_audit(&self) -> SecurityLayerBuilder {
        let mut b = SecurityLayer::builder()
            .authorizer_arc(self.authorizer.clone())
            .audit_failure_mode(self.audit_failure);
        if let Some(id) = &self.server_id {
            b = b.server_id(id.clone());
        }
        if let Some(a) = &self.authenticator {
            b = b.authenticator_arc(a.clone());
        }
        if self.anonymous {
            b = b.allow_anonymous();
        }
        if let Some(r) = &self.rate_limits {
            b = b.rate_limiter_arc(r.limiter());
        }
        b = b.validator(self.frame).validator(self.uris.clone());
        if let Some(c) = &self.arguments {
            b = b.validator(c.clone());
        }
        if let Some(s) = &self.schemas {
            b = b.validator(s.clone());
        }
        if let Some(r) = &self.redactor {
            b = b.redactor(r.clone());
        }
        if let Some(c) = &self.classifier {
            b = b.classifier(c.clone());
        }
        if self.redact_arguments {
            b = b.redact_arguments();
        }
        b
    }

    /// A builder with every component set, the audit file opened: a hash-chained
    /// [`FileSink`], shared with any layer of this process already writing that file (a
    /// reloaded policy continues the same chain).
    ///
    /// # Errors
    /// [`PolicyError::Invalid`] when the policy has no `[audit]` section;
    /// [`PolicyError::Audit`] when the audit file cannot be opened.
    pub fn builder(&self) -> Result<SecurityLayerBuilder, PolicyError> {
        let config = self.audit_config.as_ref().ok_or_else(|| {
            invalid(
                "audit",
                "missing: every decision is audited, so set audit.path",
            )
        })?;
        let sink = FileSink::shared(config.clone()).map_err(|e| PolicyError::Audit {
            path: config.path().to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(self.builder_without_audit().audit_sink_arc(sink))
    }

    /// The audit file sink's settings, from `[audit]`.
    pub fn audit_sink_config(&self) -> Option<&FileSinkConfig> {
        self.audit_config.as_ref()
    }

    /// Builds the layer the policy describes.
    ///
    /// # Errors
    /// As [`Policy::builder`].
    pub fn build(&self) -> Result<SecurityLayer, PolicyError> {
        Ok(self.builder()?.build()?)
    }

    /// The frame limits of the `[validation]` table, for transports that check raw bytes
    /// before parsing ([`FrameLimits::check_raw`]).
    pub fn frame_limits(&self) -> FrameLimits {
        self.frame
    }

    /// Checks a resource URI the way `resources/read` would, validation only (no identity, no
    /// authorization): syntax, scheme, roots and symlinks.
    ///
    /// # Errors
    /// The [`ValidationError`](crate::validate::ValidationError) that refuses it.
    pub fn check_uri(&self, uri: &str) -> Result<(), crate::validate::ValidationError> {
        use crate::validate::{Frame, InputValidator};
        let action = crate::Action::ReadResource { uri };
        self.frame.check_frame(&Frame::new(&action, None))?;
        self.uris.check_frame(&Frame::new(&action, None))?;
        self.uris.validate(
            &action,
            &crate::Identity::anonymous(),
            &crate::RequestContext::new(crate::Transport::DryRun),
        )
    }

    /// The redactor the `[redaction]` table describes, if it enables any detector.
    pub fn redactor(&self) -> Option<&PatternRedactor> {
        self.redactor.as_ref()
    }

    /// The audit file, resolved.
    pub fn audit_path(&self) -> Option<&Path> {
        self.audit_path.as_deref()
    }

    /// The environment variable a stdio server reads its caller's API key from
    /// (`auth.api_key_env`).
    pub fn api_key_env(&self) -> Option<&str> {
        self.api_key_env.as_deref()
    }

    /// The credentials of a stdio server's one caller: the API key in the environment variable
    /// `auth.api_key_env` (default [`DEFAULT_API_KEY_ENV`]), as the MCP specification asks of
    /// stdio servers. An unset variable gives no credentials, which authentication refuses.
    pub fn stdio_credentials(&self) -> Credentials {
        Credentials::from_env(self.api_key_env().unwrap_or(DEFAULT_API_KEY_ENV))
    }

    /// What the HTTP layer enforces (the `[http]` table), when the policy has one.
    pub fn http(&self) -> Option<&crate::adapters::http::HttpConfig> {
        self.http.as_ref()
    }

    /// What the stdio proxy enforces (the `[proxy]` and `[server_requests]` tables); the
    /// defaults when the policy has neither.
    pub fn proxy(&self) -> &crate::adapters::proxy::ProxyConfig {
        &self.proxy
    }

    /// Which requests a server may send its client (`[server_requests] allow`): for the proxy
    /// and for hosts using [`SecureClient`](crate::adapters::rmcp::SecureClient).
    pub fn server_requests(&self) -> &crate::authz::ServerRequestGate {
        &self.proxy.server_requests
    }

    /// Whether `host` has an API key in the policy.
    pub fn knows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }
}

/// The `[proxy]` and `[server_requests]` tables.
fn proxy_config(f: &file::PolicyFile) -> Result<crate::adapters::proxy::ProxyConfig, PolicyError> {
    use crate::adapters::proxy::{LOADER_VARIABLES, ProxyConfig};
    use crate::authz::{SERVER_REQUEST_METHODS, ServerRequestGate};
    let p = &f.proxy;
    let mut c = ProxyConfig::default();
    if let Some(id) = &p.identity {
        if id.trim().is_empty() {
            return Err(invalid("proxy.identity", "must not be empty"));
        }
        c.identity = Some(Arc::from(id.as_str()));
    }
    for (i, v) in p.keep_env.iter().enumerate() {
        if !LOADER_VARIABLES.contains(&v.as_str()) {
            return Err(invalid(
                format!("proxy.keep_env[{i}]"),
                "is not a variable the proxy removes (only loader variables such as NODE_OPTIONS are)",
            ));
        }
    }
    c.keep_env.clone_from(&p.keep_env);
    if let Some(n) = p.max_line_bytes {
        if n < 1024 {
            return Err(invalid("proxy.max_line_bytes", "must be at least 1024"));
        }
        c.max_line_bytes = n;
    }
    if let Some(n) = p.max_pending {
        if n == 0 {
            return Err(invalid("proxy.max_pending", "must be at least 1"));
        }
        c.max_pending = n;
    }
    for (i, m) in f.server_requests.allow.iter().enumerate() {
        if m != "ping" && !SERVER_REQUEST_METHODS.contains(&m.as_str()) {
            return Err(invalid(
                format!("server_requests.allow[{i}]"),
                "must be \"sampling/createMessage\", \"elicitation/create\", \"roots/list\" or \"ping\"",
            ));
        }
    }
    c.server_requests = ServerRequestGate::new(f.server_requests.allow.iter().map(String::as_str));
    Ok(c)
}

/// The `[validation]` table: frame limits, the URI validator, and the path and URL guards that
/// resource URIs, declared argument kinds and inferred argument kinds share.
fn validation(
    v: &file::Validation,
) -> Result<
    (
        FrameLimits,
        ResourceUriValidator,
        Arc<PathGuard>,
        Arc<SsrfGuard>,
    ),
    PolicyError,
> {
    let defaults = FrameLimits::default();
    let max_bytes = v.max_frame_bytes.unwrap_or(defaults.max_bytes());
    let invisible = match v.invisible.as_deref() {
        None => Invisible::Refuse,
        Some(s) => Invisible::parse(s).ok_or_else(|| {
            invalid(
                "validation.invisible",
                "must be \"refuse\", \"strip\" or \"allow\"",
            )
        })?,
    };
    let mut frame = FrameLimits::new(max_bytes, v.max_depth.unwrap_or(defaults.max_depth()))
        .with_invisible(invisible);
    if let Some(n) = v.max_string_bytes {
        frame = frame.with_max_string_bytes(n);
    }
    if let Some(n) = v.max_array_len {
        frame = frame.with_max_array_len(n);
    }
    if let Some(n) = v.max_arguments {
        frame = frame.with_max_arguments(n);
    }
    for (j, root) in v.roots.iter().enumerate() {
        if !root.starts_with('/') || root.split('/').any(|s| s == "..") {
            return Err(invalid(
                format!("validation.roots[{j}]"),
                "must be an absolute path without `..`",
            ));
        }
    }
    let paths = if v.roots.is_empty() {
        PathGuard::unconfined()
    } else {
        PathGuard::new(v.roots.iter()).resolve_symlinks(v.resolve_symlinks.unwrap_or(true))
    };
    let paths = Arc::new(paths);
    let uris = ResourceUriValidator::new()
        .with_schemes(v.schemes.iter().cloned())
        .with_path_guard(paths.clone());
    let u = &v.urls;
    let mut urls = SsrfGuard::new()
        .allow_private(u.allow_private)
        .with_allowed_hosts(u.allowed_hosts.iter().cloned())
        .with_blocked_hosts(u.blocked_hosts.iter().cloned());
    if let Some(schemes) = &u.schemes {
        if schemes.is_empty() {
            return Err(invalid("validation.urls.schemes", "must not be empty"));
        }
        urls = urls.with_schemes(schemes.iter().cloned());
    }
    if u.resolve {
        urls = urls.with_resolver(Arc::new(SystemResolver));
    }
    Ok((frame, uris, paths, Arc::new(urls)))
}

/// The `[http]` table as an [`HttpConfig`](crate::adapters::http::HttpConfig); the resource is
/// `[server] resource`.
fn http_config(
    h: &file::Http,
    resource: Option<&str>,
) -> Result<crate::adapters::http::HttpConfig, PolicyError> {
    use crate::adapters::http::{AnonymousAccess, HttpConfig};
    fn at(key: &'static str) -> impl Fn(crate::adapters::http::HttpConfigError) -> PolicyError {
        move |e| invalid(key, e.to_string())
    }
    let mut c = HttpConfig::new();
    if let Some(p) = &h.path {
        c = c.with_path(p.clone()).map_err(at("http.path"))?;
    }
    if let Some(r) = resource {
        c = c.with_resource(r).map_err(at("server.resource"))?;
    }
    c = c
        .with_authorization_servers(h.authorization_servers.iter().cloned())
        .map_err(at("http.authorization_servers"))?
        .with_scopes_supported(&h.scopes_supported)
        .map_err(at("http.scopes_supported"))?
        .with_required_scopes(&h.required_scopes)
        .map_err(at("http.required_scopes"))?;
    if let Some(hosts) = &h.allowed_hosts {
        c = c
            .with_allowed_hosts(hosts)
            .map_err(at("http.allowed_hosts"))?;
    }
    if let Some(origins) = &h.allowed_origins {
        c = c
            .with_allowed_origins(origins)
            .map_err(at("http.allowed_origins"))?;
    }
    if let Some(n) = h.max_body_bytes {
        c = c
            .with_max_body_bytes(n)
            .map_err(at("http.max_body_bytes"))?;
    }
    if let Some(n) = h.max_token_bytes {
        c = c
            .with_max_token_bytes(n)
            .map_err(at("http.max_token_bytes"))?;
    }
    if let Some(n) = h.max_sessions {
        c = c.with_max_sessions(n).map_err(at("http.max_sessions"))?;
    }
    if let Some(a) = &h.anonymous {
        if a.from.is_empty() {
            return Err(invalid(
                "http.anonymous.from",
                "list the networks anonymous callers may come from (such as 127.0.0.1/32)",
            ));
        }
        let nets = parse_nets("http.anonymous.from", &a.from)?;
        let anon = AnonymousAccess::new(a.host.as_str(), nets)
            .map_err(at("http.anonymous.host"))?
            .with_scopes(&a.scopes)
            .map_err(at("http.anonymous.scopes"))?;
        c = c.with_anonymous(anon);
    }
    Ok(c)
}

fn argument_rules(
    at: &str,
    specs: &BTreeMap<String, file::ArgSpec>,
) -> Result<Vec<ArgumentRule>, PolicyError> {
    let mut rules = Vec::with_capacity(specs.len());
    for (name, s) in specs {
        let at = |field: &str| format!("{at}.{name}.{field}");
        let mut r = ArgumentRule::new(name.as_str());
        // A constrained argument must be present unless the policy says otherwise: a missing
        // argument must not slip past the constraint meant to check it.
        if s.required == Some(false) {
            r = r.optional();
        }
        if let Some(t) = &s.ty {
            let ty = ArgumentType::parse(t).ok_or_else(|| {
                invalid(
                    at("type"),
                    "must be one of string, number, integer, boolean, array, object",
                )
            })?;
            r = r.with_type(ty);
        }
        // TOML spells `nan`: a NaN bound compares false both ways, so it would bound nothing.
        for (key, bound) in [("min", s.min), ("max", s.max)] {
            if bound.is_some_and(f64::is_nan) {
                return Err(invalid(at(key), "must be a number, not nan"));
            }
        }
        if let (Some(lo), Some(hi)) = (s.min, s.max)
            && lo > hi
        {
            return Err(invalid(at("min"), "is greater than max"));
        }
        if let Some(m) = s.min {
            r = r.with_min(m);
        }
        if let Some(m) = s.max {
            r = r.with_max(m);
        }
        if let Some(n) = s.max_length {
            r = r.with_max_length(n);
        }
        if let Some(vals) = &s.allowed_values {
            let json: Result<Vec<serde_json::Value>, _> =
                vals.iter().map(serde_json::to_value).collect();
            r = r.with_allowed_values(json.map_err(|_| {
                invalid(
                    at("allowed_values"),
                    "values must be plain strings, numbers or booleans",
                )
            })?);
        }
        if let Some(p) = &s.pattern {
            r = r
                .with_pattern(p)
                .map_err(|_| invalid(at("pattern"), "is not a valid regular expression"))?;
        }
        if let Some(k) = &s.kind {
            let kind = ArgumentKind::parse(k)
                .ok_or_else(|| invalid(at("kind"), "must be \"path\" or \"url\""))?;
            r = r.with_kind(kind);
        }
        if let Some(c) = &s.allowed_characters {
            r = r.with_allowed_characters(c).map_err(|_| {
                invalid(
                    at("allowed_characters"),
                    "is not a valid character class (e.g. \"A-Za-z0-9_.-\")",
                )
            })?;
        }
        for (j, p) in s.disallowed_patterns.iter().enumerate() {
            r = r.with_disallowed_pattern(p).map_err(|_| {
                invalid(
                    at(&format!("disallowed_patterns[{j}]")),
                    "is not a valid regular expression",
                )
            })?;
        }
        for (j, set) in s.reject.iter().enumerate() {
            let set = RuleSet::parse(set).ok_or_else(|| {
                invalid(
                    at(&format!("reject[{j}]")),
                    "must be \"sql_injection\", \"shell_metacharacters\" or \"argument_injection\"",
                )
            })?;
            r = r.rejecting(set);
        }
        if s.escape_html {
            r = r.escaping_html();
        }
        rules.push(r);
    }
    Ok(rules)
}

/// What every rule kind shares, read and checked.
struct Common {
    id: crate::RuleId,
    hosts: HostSet,
    scopes: Vec<String>,
    deny: bool,
    conditions: Conditions,
}

/// The rule builders all take the same common settings.
trait CommonRule: Sized {
    fn set_id(self, id: crate::RuleId) -> Self;
    fn set_scopes(self, scopes: Vec<String>) -> Self;
    fn set_deny(self) -> Self;
    fn set_conditions(self, c: Conditions) -> Self;
}

macro_rules! common_rule {
    ($t:ty) => {
        impl CommonRule for $t {
            fn set_id(self, id: crate::RuleId) -> Self {
                self.with_id(id)
            }
            fn set_scopes(self, scopes: Vec<String>) -> Self {
                self.with_scopes(scopes)
            }
            fn set_deny(self) -> Self {
                self.deny()
            }
            fn set_conditions(self, c: Conditions) -> Self {
                self.with_conditions(c)
            }
        }
    };
}
common_rule!(ToolRule);
common_rule!(PromptRule);
common_rule!(ResourceRule);

impl Common {
    fn apply<R: CommonRule>(&self, rule: R) -> R {
        let rule = rule
            .set_id(self.id.clone())
            .set_scopes(self.scopes.clone())
            .set_conditions(self.conditions.clone());
        if self.deny { rule.set_deny() } else { rule }
    }
}

fn parse_rate(
    at: &str,
    text: &str,
    burst: Option<u32>,
    burst_at: &str,
) -> Result<Rate, PolicyError> {
    let rate: Rate = text
        .parse()
        .map_err(|e: crate::ratelimit::RateParseError| invalid(at, e.to_string()))?;
    match burst {
        None => Ok(rate),
        Some(b) => Ok(rate.with_burst(
            std::num::NonZeroU32::new(b).ok_or_else(|| invalid(burst_at, "must be at least 1"))?,
        )),
    }
}

fn rule_common(
    at: &str,
    r: &file::RuleFields<'_>,
    rates: &mut Vec<RateRule>,
) -> Result<Common, PolicyError> {
    if r.allowed_hosts.is_empty() && r.scopes.is_empty() {
        return Err(invalid(
            format!("{at}.allowed_hosts"),
            "must name at least one host, or \"*\" (or give scopes)",
        ));
    }
    let deny = match r.effect {
        None | Some("allow") => false,
        Some("deny") => true,
        Some(_) => {
            return Err(invalid(
                format!("{at}.effect"),
                "must be \"allow\" or \"deny\"",
            ));
        }
    };
    let mut conditions = Conditions::none();
    if let Some(c) = r.conditions {
        if deny {
            return Err(invalid(
                format!("{at}.conditions"),
                "conditions apply to allow rules only: a deny rule always denies",
            ));
        }
        if c.hours.is_some() || !c.weekdays.is_empty() || c.timezone.is_some() {
            let tz = c.timezone.as_deref().unwrap_or("UTC");
            let window = TimeWindow::parse(c.hours.as_deref(), &c.weekdays, tz).map_err(|e| {
                let field = match e {
                    crate::authz::TimeWindowError::Timezone => "timezone",
                    crate::authz::TimeWindowError::Weekday => "weekdays",
                    _ => "hours",
                };
                invalid(format!("{at}.conditions.{field}"), e.to_string())
            })?;
            conditions = conditions.with_window(window);
        }
        if !c.cidrs.is_empty() {
            let nets = parse_nets(&format!("{at}.conditions.cidrs"), &c.cidrs)?;
            conditions = conditions.with_cidrs(nets);
        }
        if let Some(rate) = &c.rate {
            let rate = parse_rate(
                &format!("{at}.conditions.rate"),
                rate,
                c.burst,
                &format!("{at}.conditions.burst"),
            )?;
            // The limit follows its rule: it counts exactly the calls this rule allows.
            rates.push(RateRule::new(
                at.to_owned(),
                Target::Rule(crate::RuleId::new(at.to_owned())),
                rate,
            ));
        } else if c.burst.is_some() {
            return Err(invalid(format!("{at}.conditions.burst"), "needs a rate"));
        }
    }
    Ok(Common {
        id: crate::RuleId::new(at.to_owned()),
        hosts: if r.allowed_hosts.is_empty() {
            HostSet::Only(Vec::new())
        } else {
            HostSet::only(r.allowed_hosts)
        },
        scopes: r.scopes.to_vec(),
        deny,
        conditions,
    })
}

fn parse_nets(at: &str, list: &[String]) -> Result<Vec<IpNet>, PolicyError> {
    list.iter()
        .enumerate()
        .map(|(j, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        format!("{at}[{j}]"),
                        "must be an IP address or CIDR network",
                    )
                })
        })
        .collect()
}

/// The configured rate-limit store.
#[derive(Debug, Clone)]
enum RateBackend {
    Memory(Arc<MemoryRateLimiter>),
    #[cfg(feature = "redis")]
    Redis(Arc<crate::ratelimit::RedisRateLimiter>),
}

impl RateBackend {
    fn limiter(&self) -> Arc<dyn RateLimiter> {
        match self {
            RateBackend::Memory(m) => m.clone(),
            #[cfg(feature = "redis")]
            RateBackend::Redis(r) => r.clone(),
        }
    }
}

fn rate_backend(
    cfg: &file::RateLimit,
    rules: Vec<RateRule>,
) -> Result<Option<RateBackend>, PolicyError> {
    if rules.is_empty() {
        if cfg.backend.is_some() || cfg.redis_url.is_some() {
            return Err(invalid(
                "rate_limit",
                "a backend is configured but no rule has a rate",
            ));
        }
        return Ok(None);
    }
    match cfg.backend.as_deref() {
        None | Some("memory") => {
            let redis_only = [
                ("redis_url", cfg.redis_url.is_some()),
                ("key_prefix", cfg.key_prefix.is_some()),
                ("on_failure", cfg.on_failure.is_some()),
                ("timeout_ms", cfg.timeout_ms.is_some()),
            ];
            if let Some((key, _)) = redis_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    format!("rate_limit.{key}"),
                    "applies to backend = \"redis\" only",
                ));
            }
            let m =
                MemoryRateLimiter::new(rules).map_err(|e| invalid("rate_limit", e.to_string()))?;
            Ok(Some(RateBackend::Memory(Arc::new(m))))
        }
        #[cfg(feature = "redis")]
        Some("redis") => {
            use crate::ratelimit::{RedisFailureMode, RedisRateLimiter};
            let url = cfg.redis_url.as_deref().ok_or_else(|| {
                invalid(
                    "rate_limit.redis_url",
                    "is required with backend = \"redis\"",
                )
            })?;
            let mode = match cfg.on_failure.as_deref() {
                None | Some("deny") => RedisFailureMode::Deny,
                Some("allow") => RedisFailureMode::Allow,
                Some(_) => {
                    return Err(invalid(
                        "rate_limit.on_failure",
                        "must be \"deny\" or \"allow\"",
                    ));
                }
            };
            let timeout = std::time::Duration::from_millis(cfg.timeout_ms.unwrap_or(100));
            let r = RedisRateLimiter::new(
                url,
                rules,
                cfg.key_prefix.as_deref().unwrap_or("mcp-security"),
                mode,
                timeout,
            )
            .map_err(|e| invalid("rate_limit.redis_url", e.to_string()))?;
            Ok(Some(RateBackend::Redis(Arc::new(r))))
        }
        #[cfg(not(feature = "redis"))]
        Some("redis") => Err(invalid(
            "rate_limit.backend",
            "\"redis\" needs the crate's `redis` feature",
        )),
        Some(_) => Err(invalid(
            "rate_limit.backend",
            "must be \"memory\" or \"redis\"",
        )),
    }
}

/// Argument constraints are looked up by exact name, so they may only be given on a rule that
/// names one tool (or prompt) exactly, and only once per name: a glob's constraints would
/// silently apply to nothing, and a second entry would silently replace the first.
fn constrained_once<'n>(
    at: &str,
    name: &'n str,
    seen: &mut Vec<(&'n str, String)>,
) -> Result<(), PolicyError> {
    if name.contains(['*', '?']) {
        return Err(invalid(
            format!("{at}.arguments"),
            "argument constraints need an exact name, not a pattern",
        ));
    }
    if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
        return Err(invalid(
            format!("{at}.arguments"),
            format!("constraints for this name are already given in {first}"),
        ));
    }
    seen.push((name, at.to_owned()));
    Ok(())
}

fn level(at: &str, s: &str) -> Result<Level, PolicyError> {
    Level::parse(s)
        .ok_or_else(|| invalid(at, "must be public, internal, confidential or restricted"))
}

fn category(at: &str, s: &str) -> Result<Category, PolicyError> {
    Category::parse(s).ok_or_else(|| invalid(at, "must be PII, PHI, PCI or SECRET"))
}

/// The redactor and classifier the `[redaction]` table describes.
fn redaction(
    r: &file::Redaction,
    base: Option<&Path>,
) -> Result<(Option<PatternRedactor>, Option<Classifier>), PolicyError> {
    let mut detectors = Vec::new();
    for (j, name) in r.detectors.iter().enumerate() {
        if name == "all" {
            detectors.extend(Detector::ALL);
            continue;
        }
        detectors.push(Detector::from_name(name).ok_or_else(|| {
            invalid(format!("redaction.detectors[{j}]"), "unknown detector (known: \"all\" or an entity type such as \"credit_card\", \"us_ssn\", \"email\")")
        })?);
    }
    let mut custom = Vec::new();
    for (j, c) in r.custom.iter().enumerate() {
        let at = format!("redaction.custom[{j}]");
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Err(invalid(
                format!("{at}.name"),
                "must be an entity type in upper case, such as EMPLOYEE_ID",
            ));
        }
        if regex_automata::meta::Regex::new(&c.pattern).is_err() {
            return Err(invalid(
                format!("{at}.pattern"),
                "is not a valid regular expression",
            ));
        }
        let mut d = CustomDetector::new(
            c.name.as_str(),
            c.pattern.clone(),
            category(&format!("{at}.category"), &c.category)?,
        );
        match c.validator.as_deref() {
            None => {}
            Some("luhn") => d = d.with_validator(Validator::Luhn),
            Some(_) => return Err(invalid(format!("{at}.validator"), "must be \"luhn\"")),
        }
        custom.push(d);
    }
    let style = match r.style.as_deref() {
        None | Some("mask") => RedactionStyle::Mask,
        Some("partial") => RedactionStyle::Partial,
        Some("remove") => RedactionStyle::Remove,
        Some("hash") => {
            let path = r.hash_key_file.as_ref().ok_or_else(|| {
                invalid(
                    "redaction.hash_key_file",
                    "is required with style = \"hash\"",
                )
            })?;
            let path = match base {
                Some(b) if path.is_relative() => b.join(path),
                _ => path.clone(),
            };
            let key = std::fs::read(&path).map_err(|e| {
                invalid(
                    "redaction.hash_key_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            if key.len() < 16 {
                return Err(invalid(
                    "redaction.hash_key_file",
                    "the key must be at least 16 bytes",
                ));
            }
            RedactionStyle::Hash(key.into())
        }
        Some(_) => {
            return Err(invalid(
                "redaction.style",
                "must be \"mask\", \"partial\", \"hash\" or \"remove\"",
            ));
        }
    };
    if r.hash_key_file.is_some() && !matches!(style, RedactionStyle::Hash(_)) {
        return Err(invalid(
            "redaction.hash_key_file",
            "applies to style = \"hash\" only",
        ));
    }
    let redactor = if detectors.is_empty() && custom.is_empty() {
        None
    } else {
        Some(
            PatternRedactor::with(detectors, custom, style)
                .map_err(|e| invalid("redaction", e.to_string()))?,
        )
    };

    let mut classifier = None;
    if r.classification.is_some() || !r.clearance.is_empty() {
        if redactor.is_none() {
            return Err(invalid(
                "redaction.classification",
                "classifies what the detectors find: enable some detectors",
            ));
        }
        let spec = r.classification.as_ref();
        let mut c = Classifier::new();
        if let Some(spec) = spec {
            for (cat, lvl) in &spec.levels {
                c = c.with_level(
                    category(&format!("redaction.classification.levels.{cat}"), cat)?,
                    level(&format!("redaction.classification.levels.{cat}"), lvl)?,
                );
            }
            for (lvl, days) in &spec.retention_days {
                c = c.with_retention(
                    level(
                        &format!("redaction.classification.retention_days.{lvl}"),
                        lvl,
                    )?,
                    *days,
                );
            }
            for (j, lvl) in spec.encryption_required.iter().enumerate() {
                c = c.with_encryption_required(level(
                    &format!("redaction.classification.encryption_required[{j}]"),
                    lvl,
                )?);
            }
            if let Some(d) = &spec.default_clearance {
                c = c.with_default_clearance(level(
                    "redaction.classification.default_clearance",
                    d,
                )?);
            }
        }
        for (j, cl) in r.clearance.iter().enumerate() {
            c = c.with_clearance(
                cl.host.as_str(),
                level(&format!("redaction.clearance[{j}].level"), &cl.level)?,
            );
        }
        classifier = Some(c);
    }
    Ok((redactor, classifier))
}

/// The file sink's settings from `[audit]`; the signing key is read here so a bad key file is
/// a policy error, not a failure at the first request.
fn audit_sink_config(a: &file::Audit, base: Option<&Path>) -> Result<FileSinkConfig, PolicyError> {
    let resolve = |p: &Path| match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p.to_path_buf(),
    };
    let mut c = FileSinkConfig::new(resolve(&a.path));
    let interval = Duration::from_millis(a.group_commit_ms.unwrap_or(5));
    c = c.fsync(match a.fsync.as_deref() {
        Some("group") => FsyncPolicy::GroupCommit(interval),
        None | Some("always") => FsyncPolicy::Always,
        Some("os") => FsyncPolicy::OsBuffered,
        Some(_) => {
            return Err(invalid(
                "audit.fsync",
                "must be \"always\", \"group\" or \"os\"",
            ));
        }
    });
    if a.group_commit_ms.is_some() && a.fsync.as_deref() != Some("group") {
        return Err(invalid(
            "audit.group_commit_ms",
            "applies only with fsync = \"group\"",
        ));
    }
    if let Some(bytes) = a.rotate_bytes {
        if bytes < 4096 {
            return Err(invalid(
                "audit.rotate_bytes",
                "must be at least 4096 (0 is not allowed; omit the key for the default)",
            ));
        }
        c = c.rotate_at(Some(bytes));
    }
    if let Some(q) = a.queue {
        if q == 0 {
            return Err(invalid("audit.queue", "must be at least 1"));
        }
        c = c.queue_capacity(q);
    }
    if a.checkpoint_every == Some(0) || a.checkpoint_seconds == Some(0) {
        return Err(invalid(
            if a.checkpoint_every == Some(0) {
                "audit.checkpoint_every"
            } else {
                "audit.checkpoint_seconds"
            },
            "must be at least 1",
        ));
    }
    if let Some(n) = a.checkpoint_every {
        c = c.checkpoint_every(Some(n));
    }
    if let Some(s) = a.checkpoint_seconds {
        c = c.checkpoint_interval(Some(Duration::from_secs(s)));
    }
    match &a.signing_key_file {
        Some(k) => {
            let key = crate::audit::read_signing_key(resolve(k))
                .map_err(|e| invalid("audit.signing_key_file", e.to_string()))?;
            c = c.signing_key(key);
        }
        None if a.checkpoint_every.is_some() || a.checkpoint_seconds.is_some() => {
            return Err(invalid(
                "audit.signing_key_file",
                "missing: checkpoints are signed, so checkpoint_every / checkpoint_seconds need a key",
            ));
        }
        None => {}
    }
    Ok(c)
}

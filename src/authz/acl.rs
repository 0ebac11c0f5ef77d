//! Deny-by-default access-control lists for tools, resources, prompts and methods.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Authorizer, Conditions, Explanation, RuleTrace};
use crate::context::{Identity, RequestContext};
use crate::decision::{Decision, Denial, DenyKind, RuleId, Stage};
use crate::glob::Glob;
pub use crate::glob::GlobError;
use crate::message::Action;

const DEFAULT_DENY: RuleId = RuleId::from_static("default-deny");
const PROTOCOL: RuleId = RuleId::from_static("protocol");

/// The hosts a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostSet {
    /// Every authenticated caller (`"*"` in the policy file).
    Any,
    /// Only the named hosts.
    Only(Vec<Arc<str>>),
}

impl HostSet {
    /// Only the named hosts; `"*"` among them means any.
    pub fn only<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>) -> Self {
        let hosts: Vec<Arc<str>> = hosts.into_iter().map(|h| Arc::from(h.as_ref())).collect();
        if hosts.iter().any(|h| &**h == "*") {
            HostSet::Any
        } else {
            HostSet::Only(hosts)
        }
    }

    fn contains(&self, host: &str) -> bool {
        match self {
            HostSet::Any => true,
            HostSet::Only(hosts) => hosts.iter().any(|h| &**h == host),
        }
    }
}

/// Whether a rule grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Effect {
    /// The rule grants access (when its conditions hold).
    Allow,
    /// The rule refuses access; a matching deny rule overrides every allow rule.
    Deny,
}

impl Effect {
    fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// What every kind of rule has: a name or URI pattern, who it is for, its effect and conditions.
#[derive(Debug, Clone)]
struct RuleSpec {
    id: Option<RuleId>,
    pattern: String,
    hosts: HostSet,
    scopes: Vec<Arc<str>>,
    effect: Effect,
    conditions: Conditions,
}

impl RuleSpec {
    fn new(pattern: String, hosts: HostSet) -> Self {
        RuleSpec {
            id: None,
            pattern,
            hosts,
            scopes: Vec::new(),
            effect: Effect::Allow,
            conditions: Conditions::none(),
        }
    }
}

macro_rules! rule_builders {
    ($t:ident) => {
        impl $t {
            /// Names the rule in audit records and explanations.
            pub fn with_id(mut self, id: RuleId) -> Self {
                self.spec.id = Some(id);
                self
            }

            /// Also applies to callers holding any of these scopes (from a token), whatever
            /// their host.
            pub fn with_scopes<S: Into<Arc<str>>>(
                mut self,
                scopes: impl IntoIterator<Item = S>,
            ) -> Self {
                self.spec.scopes = scopes.into_iter().map(Into::into).collect();
                self
            }

            /// Makes this a deny rule: it refuses whatever other rules allow.
            pub fn deny(mut self) -> Self {
                self.spec.effect = Effect::Deny;
                self
            }

            /// Conditions that must also hold for an allow rule to grant access.
            pub fn with_conditions(mut self, conditions: Conditions) -> Self {
                self.spec.conditions = conditions;
                self
            }
        }
    };
}

/// Who may call a tool (or every tool matching a glob).
#[derive(Debug, Clone)]
pub struct ToolRule {
    spec: RuleSpec,
}

impl ToolRule {
    /// Allows `hosts` to call the tool `name` (a glob: `"files_*"`).
    pub fn new(name: impl Into<String>, hosts: HostSet) -> Self {
        ToolRule {
            spec: RuleSpec::new(name.into(), hosts),
        }
    }
}
rule_builders!(ToolRule);

/// What a resource rule permits. MCP methods map to permissions as follows: `resources/read`,
/// `resources/subscribe` and `resources/unsubscribe` need `Read`. `Write` and `Execute` exist
/// for parity with the seed's resource ACLs; no MCP resource method needs them today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourcePermission {
    /// Read the resource or subscribe to its changes.
    Read,
    /// Reserved: no MCP resource method writes.
    Write,
    /// Reserved: no MCP resource method executes.
    Execute,
}

/// Who may read or subscribe to resources whose URI matches a glob.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    spec: RuleSpec,
    permissions: Vec<ResourcePermission>,
}

impl ResourceRule {
    /// Allows `hosts` to read resources matching `uri` (`"file:///srv/data/**"`).
    pub fn new(uri: impl Into<String>, hosts: HostSet) -> Self {
        ResourceRule {
            spec: RuleSpec::new(uri.into(), hosts),
            permissions: vec![ResourcePermission::Read],
        }
    }

    /// Sets the permitted operations (default: read).
    pub fn with_permissions(
        mut self,
        permissions: impl IntoIterator<Item = ResourcePermission>,
    ) -> Self {
        self.permissions = permissions.into_iter().collect();
        self
    }
}
rule_builders!(ResourceRule);

/// Who may get a prompt (or every prompt matching a glob).
#[derive(Debug, Clone)]
pub struct PromptRule {
    spec: RuleSpec,
}

impl PromptRule {
    /// Allows `hosts` to get the prompt `name` (a glob).
    pub fn new(name: impl Into<String>, hosts: HostSet) -> Self {
        PromptRule {
            spec: RuleSpec::new(name.into(), hosts),
        }
    }
}
rule_builders!(PromptRule);

#[derive(Debug)]
struct Compiled {
    id: RuleId,
    pattern: Glob,
    hosts: HostSet,
    scopes: Vec<Arc<str>>,
    effect: Effect,
    conditions: Conditions,
    permissions: Vec<ResourcePermission>,
}

impl Compiled {
    fn for_caller(&self, identity: &Identity) -> bool {
        self.hosts.contains(identity.host()) || self.scopes.iter().any(|s| identity.has_scope(s))
    }
}

/// The rules of one kind, indexed: exact names by hash, globs scanned. A decision costs a hash
/// lookup plus the globs, however many exact rules the policy has.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<Compiled>,
    exact: HashMap<String, Vec<usize>>,
    globs: Vec<usize>,
}

impl RuleSet {
    fn push(&mut self, rule: Compiled, literal: Option<&str>) {
        let i = self.rules.len();
        match literal {
            Some(name) => self.exact.entry(name.to_owned()).or_default().push(i),
            None => self.globs.push(i),
        }
        self.rules.push(rule);
    }

    /// The rules whose pattern matches `name`, in policy order.
    fn matching<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Compiled> + 's {
        let exact = self.exact.get(name).map(Vec::as_slice).unwrap_or_default();
        let globs = self
            .globs
            .iter()
            .filter(move |&&i| self.rules.get(i).is_some_and(|r| r.pattern.matches(name)));
        // Both lists are in policy order; merge them so the first matching rule wins reports.
        Merge {
            a: exact.iter().peekable(),
            b: globs.peekable(),
        }
        .filter_map(move |i| self.rules.get(*i))
    }
}

/// Merges two ascending index iterators.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'x, A: Iterator<Item = &'x usize>, B: Iterator<Item = &'x usize>> Iterator for Merge<A, B> {
    type Item = &'x usize;
    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x <= y => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// Builds an [`AclAuthorizer`]; see [`AclAuthorizer::builder`].
#[derive(Debug, Default)]
pub struct AclBuilder {
    tools: Vec<ToolRule>,
    resources: Vec<ResourceRule>,
    prompts: Vec<PromptRule>,
    methods: Vec<String>,
}

impl AclBuilder {
    /// Adds a tool rule.
    pub fn tool(mut self, rule: ToolRule) -> Self {
        self.tools.push(rule);
        self
    }

    /// Adds a resource rule.
    pub fn resource(mut self, rule: ResourceRule) -> Self {
        self.resources.push(rule);
        self
    }

    /// Adds a prompt rule.
    pub fn prompt(mut self, rule: PromptRule) -> Self {
        self.prompts.push(rule);
        self
    }

    /// Allows a JSON-RPC method beyond the protocol basics to every authenticated caller
    /// (`"completion/complete"`, `"logging/setLevel"`, a custom method or notification).
    pub fn allow_method(mut self, method: impl Into<String>) -> Self {
        self.methods.push(method.into());
        self
    }

    fn compile(
        specs: impl Iterator<Item = (RuleSpec, Vec<ResourcePermission>)>,
        kind: &str,
    ) -> Result<RuleSet, GlobError> {
        let mut set = RuleSet::default();
        for (i, (spec, permissions)) in specs.enumerate() {
            let pattern = Glob::new(&spec.pattern)?;
            let literal = pattern.is_literal().then_some(spec.pattern.as_str());
            let rule = Compiled {
                id: spec
                    .id
                    .clone()
                    .unwrap_or_else(|| RuleId::new(format!("{kind}[{i}]"))),
                hosts: spec.hosts.clone(),
                scopes: spec.scopes.clone(),
                effect: spec.effect,
                conditions: spec.conditions.clone(),
                permissions,
                pattern,
            };
            set.push(rule, literal);
        }
        Ok(set)
    }

    /// Compiles every pattern and indexes the rules.
    ///
    /// # Errors
    /// [`GlobError`] for a pattern that is empty or does not compile.
    pub fn build(self) -> Result<AclAuthorizer, GlobError> {
        Ok(AclAuthorizer {
            tools: Self::compile(
                self.tools.into_iter().map(|r| (r.spec, Vec::new())),
                "tools",
            )?,
            resources: Self::compile(
                self.resources.into_iter().map(|r| (r.spec, r.permissions)),
                "resources",
            )?,
            prompts: Self::compile(
                self.prompts.into_iter().map(|r| (r.spec, Vec::new())),
                "prompts",
            )?,
            methods: self.methods,
        })
    }
}

/// Access-control lists: deny by default, explicit deny overrides allow.
///
/// - `initialize`, `ping`, `server/discover`, the `*/list` requests and the protocol's own
///   notifications (`initialized`, `cancelled`, `progress`, `roots/list_changed`) are allowed to
///   every authenticated caller (rule `protocol`); list results are then filtered per item.
/// - A rule applies to a caller when its pattern matches the tool, prompt or resource and it lists
///   the caller's host (or `*`), or a scope the caller holds.
/// - Any applicable deny rule refuses. Otherwise the first applicable allow rule whose conditions
///   hold (time window, source networks) grants. An applicable allow rule whose conditions fail
///   refuses *visibly* ([`DenyKind::Forbidden`], "outside the allowed hours"). With no applicable
///   rule the target is *hidden* ([`DenyKind::NotFound`]): it reads exactly like an unknown one.
/// - A resource URI with dot segments or encoded separators matches no rule, whatever the
///   glob says: `file:///srv/data/../../etc/passwd` is not under `file:///srv/data/**`.
/// - Any other method is denied unless allowed by [`AclBuilder::allow_method`].
///
/// Exact names are indexed by hash, so deciding costs the same with ten rules or a hundred
/// thousand; glob rules are matched one by one.
#[derive(Debug)]
pub struct AclAuthorizer {
    tools: RuleSet,
    resources: RuleSet,
    prompts: RuleSet,
    methods: Vec<String>,
}

/// Records what each rule did, for explanations; a no-op when not explaining.
trait Tracer {
    fn note(&mut self, rule: &Compiled, outcome: &'static str);
}

impl Tracer for () {
    fn note(&mut self, _rule: &Compiled, _outcome: &'static str) {}
}

impl Tracer for Vec<RuleTrace> {
    fn note(&mut self, rule: &Compiled, outcome: &'static str) {
        self.push(RuleTrace {
            rule: rule.id.clone(),
            effect: rule.effect.as_str(),
            outcome,
        });
    }
}

impl AclAuthorizer {
    /// An empty list (everything but the protocol basics denied); add rules with the builder.
    pub fn builder() -> AclBuilder {
        AclBuilder::default()
    }

    fn decide(
        set: &RuleSet,
        identity: &Identity,
        name: &str,
        need: Option<ResourcePermission>,
        hidden: &'static str,
        cx: &RequestContext,
        trace: &mut impl Tracer,
    ) -> Decision {
        let mut grant: Option<&Compiled> = None;
        let mut refusal: Option<(&Compiled, &'static str)> = None;
        for rule in set.matching(name) {
            if !rule.for_caller(identity) {
                trace.note(rule, "not for this caller");
                continue;
            }
            if rule.effect == Effect::Deny {
                trace.note(rule, "denies");
                return Decision::Deny(
                    Denial::new(Stage::Authorization, DenyKind::NotFound, hidden)
                        .with_rule(rule.id.clone()),
                );
            }
            if let Some(p) = need
                && !rule.permissions.contains(&p)
            {
                trace.note(rule, "does not grant this permission");
                refusal.get_or_insert((rule, "operation not permitted on this resource"));
                continue;
            }
            match rule.conditions.check(cx) {
                Ok(()) if grant.is_none() => {
                    trace.note(rule, "allows");
                    grant = Some(rule);
                }
                Ok(()) => trace.note(rule, "allows (an earlier rule already did)"),
                Err(why) => {
                    trace.note(rule, why);
                    refusal.get_or_insert((rule, why));
                }
            }
        }
        match (grant, refusal) {
            (Some(rule), _) => Decision::Allow(Some(rule.id.clone())),
            // The caller may see the target, so say plainly why this call is refused.
            (None, Some((rule, why))) => Decision::Deny(
                Denial::new(Stage::Authorization, DenyKind::Forbidden, why)
                    .with_rule(rule.id.clone()),
            ),
            (None, None) => Decision::Deny(
                Denial::new(Stage::Authorization, DenyKind::NotFound, hidden)
                    .with_rule(DEFAULT_DENY),
            ),
        }
    }

    fn authorize_traced(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
        trace: &mut impl Tracer,
    ) -> Decision {
        match *action {
            Action::Initialize | Action::Ping | Action::List(_) => Decision::Allow(Some(PROTOCOL)),
            Action::CallTool { name, .. } => Self::decide(
                &self.tools,
                identity,
                name,
                None,
                "tool not found",
                cx,
                trace,
            ),
            Action::GetPrompt { name, .. } => Self::decide(
                &self.prompts,
                identity,
                name,
                None,
                "prompt not found",
                cx,
                trace,
            ),
            Action::ReadResource { uri } | Action::SubscribeResource { uri, .. } => {
                if !is_plain_uri(uri) {
                    return Decision::Deny(
                        Denial::new(
                            Stage::Authorization,
                            DenyKind::NotFound,
                            "resource not found",
                        )
                        .with_rule(DEFAULT_DENY),
                    );
                }
                // Rules meet the URI without query, fragment or trailing slash, so a deny rule
                // cannot be stepped around by decorating the URI.
                Self::decide(
                    &self.resources,
                    identity,
                    crate::uripath::match_key(uri),
                    Some(ResourcePermission::Read),
                    "resource not found",
                    cx,
                    trace,
                )
            }
            Action::Notification { method } if is_protocol_notification(method) => {
                Decision::Allow(Some(PROTOCOL))
            }
            Action::Other {
                method: "server/discover",
            } => Decision::Allow(Some(PROTOCOL)),
            Action::Notification { method } | Action::Other { method } => {
                if self.methods.iter().any(|m| m == method) {
                    Decision::Allow(Some(RuleId::from_static("authorization.allow_methods")))
                } else {
                    Decision::Deny(
                        Denial::new(
                            Stage::Authorization,
                            DenyKind::Forbidden,
                            "method not allowed",
                        )
                        .with_rule(DEFAULT_DENY),
                    )
                }
            }
        }
    }
}

/// Whether a URI is free of the tricks that make a glob match something it should not.
fn is_plain_uri(uri: &str) -> bool {
    crate::uripath::problem(uri).is_none()
}

fn is_protocol_notification(method: &str) -> bool {
    matches!(
        method,
        "notifications/initialized"
            | "notifications/cancelled"
            | "notifications/progress"
            | "notifications/roots/list_changed"
    )
}

impl Authorizer for AclAuthorizer {
    fn authorize(&self, identity: &Identity, action: &Action<'_>, cx: &RequestContext) -> Decision {
        self.authorize_traced(identity, action, cx, &mut ())
    }

    fn explain(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        cx: &RequestContext,
    ) -> Explanation {
        let mut rules = Vec::new();
        let decision = self.authorize_traced(identity, action, cx, &mut rules);
        Explanation::new(decision, rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Transport;

    fn acl() -> AclAuthorizer {
        let built = AclAuthorizer::builder()
            .tool(ToolRule::new(
                "query_database",
                HostSet::only(["analytics-bot"]),
            ))
            .tool(ToolRule::new("files_*", HostSet::only(["*"])))
            .resource(ResourceRule::new(
                "file:///srv/data/**",
                HostSet::only(["analytics-bot"]),
            ))
            .resource(ResourceRule::new("file:///srv/feeds/*", HostSet::Any))
            .resource(
                ResourceRule::new("file:///srv/drop/*", HostSet::Any)
                    .with_permissions([ResourcePermission::Write]),
            )
            .build();
        built.unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn decide(host: &str, action: Action<'_>) -> Decision {
        acl().authorize(
            &Identity::new(host),
            &action,
            &RequestContext::new(Transport::Stdio),
        )
    }

    #[test]
    fn tools_are_denied_by_default_and_hidden() {
        assert!(
            decide(
                "analytics-bot",
                Action::CallTool {
                    name: "query_database",
                    arguments: None
                }
            )
            .is_allow()
        );
        let d = decide(
            "limited",
            Action::CallTool {
                name: "query_database",
                arguments: None,
            },
        );
        assert!(matches!(d, Decision::Deny(ref x) if x.kind() == DenyKind::NotFound));
        assert!(
            !decide(
                "analytics-bot",
                Action::CallTool {
                    name: "delete_all_data",
                    arguments: None
                }
            )
            .is_allow()
        );
        assert!(
            decide(
                "anyone",
                Action::CallTool {
                    name: "files_list",
                    arguments: None
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "anyone",
                Action::CallTool {
                    name: "files_x/y",
                    arguments: None
                }
            )
            .is_allow()
        );
    }

    #[test]
    fn resources_match_globs_and_refuse_traversal() {
        assert!(
            decide(
                "analytics-bot",
                Action::ReadResource {
                    uri: "file:///srv/data/a/b.csv"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "analytics-bot",
                Action::ReadResource {
                    uri: "file:///etc/passwd"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "analytics-bot",
                Action::ReadResource {
                    uri: "file:///srv/data/../../etc/passwd"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "analytics-bot",
                Action::ReadResource {
                    uri: "file:///srv/data/%2e%2e/x"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "limited",
                Action::ReadResource {
                    uri: "file:///srv/data/a"
                }
            )
            .is_allow()
        );
        // Subscribing needs read.
        assert!(
            decide(
                "analytics-bot",
                Action::SubscribeResource {
                    uri: "file:///srv/data/a",
                    unsubscribe: false
                }
            )
            .is_allow()
        );
        assert!(
            decide(
                "x",
                Action::SubscribeResource {
                    uri: "file:///srv/feeds/a",
                    unsubscribe: false
                }
            )
            .is_allow()
        );
        // Visible but without the read permission: refused visibly.
        let d = decide(
            "x",
            Action::ReadResource {
                uri: "file:///srv/drop/a",
            },
        );
        assert!(
            matches!(d, Decision::Deny(ref x) if x.kind() == DenyKind::Forbidden),
            "{d:?}"
        );
    }

    #[test]
    fn protocol_methods_allowed_others_denied() {
        assert!(decide("x", Action::Ping).is_allow());
        assert!(
            decide(
                "x",
                Action::Notification {
                    method: "notifications/cancelled"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "x",
                Action::Other {
                    method: "logging/setLevel"
                }
            )
            .is_allow()
        );
        assert!(
            !decide(
                "x",
                Action::Notification {
                    method: "notifications/custom"
                }
            )
            .is_allow()
        );
    }
}

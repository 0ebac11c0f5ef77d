//! Deny-by-default access-control lists for tools, resources, prompts and methods.

use std::sync::Arc;

use regex::Regex;

use super::Authorizer;
use crate::context::{Identity, RequestContext};
use crate::decision::{Decision, Denial, DenyKind, RuleId, Stage};
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

/// A name or URI pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern: {0}")]
pub struct GlobError(&'static str);

/// A glob compiled once: `*` matches within one path segment, `**` across segments, `?` one
/// character; everything else is literal.
#[derive(Debug, Clone)]
struct Glob {
    literal: Option<Box<str>>,
    regex: Option<Regex>,
}

impl Glob {
    fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError("pattern is empty"));
        }
        if !pattern.contains(['*', '?']) {
            return Ok(Glob {
                literal: Some(pattern.into()),
                regex: None,
            });
        }
        let mut re = String::with_capacity(pattern.len() * 2 + 4);
        re.push_str("^(?s:");
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    re.push_str(".*");
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                other => re.push_str(&regex::escape(other.encode_utf8(&mut [0u8; 4]))),
            }
        }
        re.push_str(")$");
        let regex = Regex::new(&re).map_err(|_| GlobError("pattern does not compile"))?;
        Ok(Glob {
            literal: None,
            regex: Some(regex),
        })
    }

    fn matches(&self, s: &str) -> bool {
        match (&self.literal, &self.regex) {
            (Some(lit), _) => **lit == *s,
            (None, Some(re)) => re.is_match(s),
            (None, None) => false,
        }
    }
}

/// Who may call a tool (or every tool matching a glob).
#[derive(Debug, Clone)]
pub struct ToolRule {
    id: Option<RuleId>,
    name: String,
    hosts: HostSet,
}

impl ToolRule {
    /// Allows `hosts` to call the tool `name` (a glob: `"files_*"`).
    pub fn new(name: impl Into<String>, hosts: HostSet) -> Self {
        ToolRule {
            id: None,
            name: name.into(),
            hosts,
        }
    }

    /// Names the rule in audit records (default `tools[<index>]`).
    pub fn with_id(mut self, id: RuleId) -> Self {
        self.id = Some(id);
        self
    }
}

/// What a resource rule permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourcePermission {
    /// `resources/read`
    Read,
    /// `resources/subscribe` and `resources/unsubscribe`
    Subscribe,
}

/// Who may read or subscribe to resources whose URI matches a glob.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    id: Option<RuleId>,
    uri: String,
    hosts: HostSet,
    permissions: Vec<ResourcePermission>,
}

impl ResourceRule {
    /// Allows `hosts` to read resources matching `uri` (`"file:///srv/data/**"`).
    pub fn new(uri: impl Into<String>, hosts: HostSet) -> Self {
        ResourceRule {
            id: None,
            uri: uri.into(),
            hosts,
            permissions: vec![ResourcePermission::Read],
        }
    }

    /// Sets the permitted operations (default: read only).
    pub fn with_permissions(
        mut self,
        permissions: impl IntoIterator<Item = ResourcePermission>,
    ) -> Self {
        self.permissions = permissions.into_iter().collect();
        self
    }

    /// Names the rule in audit records (default `resources[<index>]`).
    pub fn with_id(mut self, id: RuleId) -> Self {
        self.id = Some(id);
        self
    }
}

/// Who may get a prompt (or every prompt matching a glob).
#[derive(Debug, Clone)]
pub struct PromptRule {
    id: Option<RuleId>,
    name: String,
    hosts: HostSet,
}

impl PromptRule {
    /// Allows `hosts` to get the prompt `name` (a glob).
    pub fn new(name: impl Into<String>, hosts: HostSet) -> Self {
        PromptRule {
            id: None,
            name: name.into(),
            hosts,
        }
    }

    /// Names the rule in audit records (default `prompts[<index>]`).
    pub fn with_id(mut self, id: RuleId) -> Self {
        self.id = Some(id);
        self
    }
}

#[derive(Debug)]
struct Compiled<E> {
    id: RuleId,
    pattern: Glob,
    hosts: HostSet,
    extra: E,
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

    /// Compiles every pattern.
    ///
    /// # Errors
    /// [`GlobError`] for a pattern that is empty or does not compile.
    pub fn build(self) -> Result<AclAuthorizer, GlobError> {
        let tools = self
            .tools
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Compiled {
                    id: r.id.unwrap_or_else(|| RuleId::new(format!("tools[{i}]"))),
                    pattern: Glob::new(&r.name)?,
                    hosts: r.hosts,
                    extra: (),
                })
            })
            .collect::<Result<_, GlobError>>()?;
        let resources = self
            .resources
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Compiled {
                    id: r
                        .id
                        .unwrap_or_else(|| RuleId::new(format!("resources[{i}]"))),
                    pattern: Glob::new(&r.uri)?,
                    hosts: r.hosts,
                    extra: r.permissions,
                })
            })
            .collect::<Result<_, GlobError>>()?;
        let prompts = self
            .prompts
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Compiled {
                    id: r.id.unwrap_or_else(|| RuleId::new(format!("prompts[{i}]"))),
                    pattern: Glob::new(&r.name)?,
                    hosts: r.hosts,
                    extra: (),
                })
            })
            .collect::<Result<_, GlobError>>()?;
        Ok(AclAuthorizer {
            tools,
            resources,
            prompts,
            methods: self.methods,
        })
    }
}

/// Access-control lists: deny by default.
///
/// - `initialize`, `ping`, `server/discover`, the `*/list` requests and the protocol's own notifications
///   (`initialized`, `cancelled`, `progress`, `roots/list_changed`) are allowed to every
///   authenticated caller (rule `protocol`); list results are then filtered per item.
/// - A tool, prompt or resource is allowed when a rule matches its name or URI and lists the
///   caller's host. When no rule lists the caller, the target is *hidden*: the denial is
///   [`DenyKind::NotFound`], so it reads exactly like an unknown target.
/// - A resource URI with dot segments or encoded separators matches no rule, whatever the
///   glob says: `file:///srv/data/../../etc/passwd` is not under `file:///srv/data/**`.
/// - Any other method is denied unless allowed by [`AclBuilder::allow_method`].
#[derive(Debug)]
pub struct AclAuthorizer {
    tools: Vec<Compiled<()>>,
    resources: Vec<Compiled<Vec<ResourcePermission>>>,
    prompts: Vec<Compiled<()>>,
    methods: Vec<String>,
}

impl AclAuthorizer {
    /// An empty list (everything but the protocol basics denied); add rules with the builder.
    pub fn builder() -> AclBuilder {
        AclBuilder::default()
    }

    fn named<E>(rules: &[Compiled<E>], host: &str, name: &str, what: &'static str) -> Decision {
        match rules
            .iter()
            .find(|r| r.pattern.matches(name) && r.hosts.contains(host))
        {
            Some(r) => Decision::Allow(Some(r.id.clone())),
            None => Decision::Deny(
                Denial::new(Stage::Authorization, DenyKind::NotFound, what).with_rule(DEFAULT_DENY),
            ),
        }
    }

    fn resource(&self, host: &str, uri: &str, need: ResourcePermission) -> Decision {
        let hidden = || {
            Decision::Deny(
                Denial::new(
                    Stage::Authorization,
                    DenyKind::NotFound,
                    "resource not found",
                )
                .with_rule(DEFAULT_DENY),
            )
        };
        if !is_plain_uri(uri) {
            return hidden();
        }
        let mut visible: Option<&RuleId> = None;
        for rule in self
            .resources
            .iter()
            .filter(|r| r.pattern.matches(uri) && r.hosts.contains(host))
        {
            if rule.extra.contains(&need) {
                return Decision::Allow(Some(rule.id.clone()));
            }
            visible.get_or_insert(&rule.id);
        }
        match visible {
            // The caller may see the resource, so say plainly that this operation is refused.
            Some(id) => Decision::Deny(
                Denial::new(
                    Stage::Authorization,
                    DenyKind::Forbidden,
                    "operation not permitted on this resource",
                )
                .with_rule(id.clone()),
            ),
            None => hidden(),
        }
    }
}

/// Whether a URI is free of the tricks that make a glob match something it should not: dot
/// segments, percent-encoded dots, slashes or backslashes, backslashes, and control characters.
fn is_plain_uri(uri: &str) -> bool {
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    let lower_has = |needle: &str| {
        uri.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if lower_has("%2e") || lower_has("%2f") || lower_has("%5c") || lower_has("%00") {
        return false;
    }
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    !path.split('/').any(|seg| seg == "." || seg == "..")
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
    fn authorize(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        _cx: &RequestContext,
    ) -> Decision {
        let host = identity.host();
        match *action {
            Action::Initialize | Action::Ping | Action::List(_) => Decision::Allow(Some(PROTOCOL)),
            Action::CallTool { name, .. } => Self::named(&self.tools, host, name, "tool not found"),
            Action::GetPrompt { name, .. } => {
                Self::named(&self.prompts, host, name, "prompt not found")
            }
            Action::ReadResource { uri } => self.resource(host, uri, ResourcePermission::Read),
            Action::SubscribeResource { uri, .. } => {
                self.resource(host, uri, ResourcePermission::Subscribe)
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
            .resource(
                ResourceRule::new("file:///srv/feeds/*", HostSet::Any)
                    .with_permissions([ResourcePermission::Read, ResourcePermission::Subscribe]),
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
        let sub = decide(
            "analytics-bot",
            Action::SubscribeResource {
                uri: "file:///srv/data/a",
                unsubscribe: false,
            },
        );
        assert!(matches!(sub, Decision::Deny(ref x) if x.kind() == DenyKind::Forbidden));
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

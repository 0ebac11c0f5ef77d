//! Per-tool argument constraints from the policy: type, range, allowed values, pattern, length.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::sanitize::{self, RuleSet};
use super::{ArgumentsOf, InputValidator, PathGuard, SsrfGuard, ValidationError, unicode};
use crate::context::{Identity, RequestContext};
use crate::message::Action;

/// The JSON type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgumentType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl ArgumentType {
    /// Parses the policy spelling (`"string"`, `"number"`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ArgumentType::String,
            "number" => ArgumentType::Number,
            "integer" => ArgumentType::Integer,
            "boolean" => ArgumentType::Boolean,
            "array" => ArgumentType::Array,
            "object" => ArgumentType::Object,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ArgumentType::String => "a string",
            ArgumentType::Number => "a number",
            ArgumentType::Integer => "an integer",
            ArgumentType::Boolean => "a boolean",
            ArgumentType::Array => "an array",
            ArgumentType::Object => "an object",
        }
    }

    fn admits(self, v: &Value) -> bool {
        match self {
            ArgumentType::String => v.is_string(),
            ArgumentType::Number => v.is_number(),
            ArgumentType::Integer => v.is_i64() || v.is_u64(),
            ArgumentType::Boolean => v.is_boolean(),
            ArgumentType::Array => v.is_array(),
            ArgumentType::Object => v.is_object(),
        }
    }
}

/// An argument that breaks a constraint. The argument is named as the policy names it; the value
/// is never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintError {
    /// A required argument is missing.
    #[error("argument `{0}` is required")]
    Missing(Arc<str>),
    /// Wrong JSON type.
    #[error("argument `{name}` must be {expected}")]
    WrongType {
        /// The argument.
        name: Arc<str>,
        /// What it must be.
        expected: &'static str,
    },
    /// Below the minimum.
    #[error("argument `{0}` is below the minimum")]
    BelowMinimum(Arc<str>),
    /// Above the maximum.
    #[error("argument `{0}` is above the maximum")]
    AboveMaximum(Arc<str>),
    /// Longer than allowed.
    #[error("argument `{0}` is longer than the maximum length")]
    TooLong(Arc<str>),
    /// Not one of the allowed values.
    #[error("argument `{0}` is not one of the allowed values")]
    NotAllowed(Arc<str>),
    /// Does not match the allowed pattern.
    #[error("argument `{0}` does not match the allowed pattern")]
    PatternMismatch(Arc<str>),
    /// An argument the policy does not list, for a tool whose policy refuses extra arguments.
    /// Its name is request data, so it is not repeated.
    #[error("an argument is not allowed for this tool")]
    Unexpected,
    /// A path argument that is malformed or leaves the allowed roots.
    #[error("argument `{name}`: {problem}")]
    Path {
        /// The argument.
        name: Arc<str>,
        /// What is wrong with the path.
        problem: &'static str,
    },
    /// A URL argument the SSRF guard refuses.
    #[error("argument `{name}`: {problem}")]
    Url {
        /// The argument.
        name: Arc<str>,
        /// What is wrong with the URL.
        problem: &'static str,
    },
    /// A character outside the argument's allowed characters.
    #[error("argument `{0}` contains characters that are not allowed")]
    Characters(Arc<str>),
    /// A value matching a disallowed pattern.
    #[error("argument `{0}` matches a disallowed pattern")]
    Disallowed(Arc<str>),
    /// A value falling in a built-in rule set (SQL injection, shell metacharacters, ...).
    #[error("argument `{name}` {what}")]
    RuleSet {
        /// The argument.
        name: Arc<str>,
        /// What the value looks like.
        what: &'static str,
    },
    /// A value that breaks the tool's own input schema.
    #[error("argument `{name}` does not satisfy the tool's input schema ({keyword})")]
    Schema {
        /// Where in the arguments (a JSON Pointer without the leading `/`).
        name: Arc<str>,
        /// The schema keyword that failed (`type`, `maxLength`, `required`, ...).
        keyword: Arc<str>,
    },
}

/// What an argument holds, when it is something the server will use to reach a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgumentKind {
    /// A file system path: checked by the [`PathGuard`] (shape, roots, symlinks).
    Path,
    /// A URL the server will fetch: checked by the [`SsrfGuard`]. A `file:` URL is refused
    /// unless the guard allows the scheme, and is then checked as a path.
    Url,
}

impl ArgumentKind {
    /// Parses the policy spelling (`"path"`, `"url"`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "path" => ArgumentKind::Path,
            "url" => ArgumentKind::Url,
            _ => return None,
        })
    }

    /// Checks `value` (a string, or an array of strings) as this kind of argument.
    pub(crate) fn check(
        self,
        name: &Arc<str>,
        value: &Value,
        paths: &PathGuard,
        urls: &SsrfGuard,
    ) -> Result<(), ConstraintError> {
        let one = |s: &str| match self {
            ArgumentKind::Path => paths.check(s).map_err(|problem| ConstraintError::Path {
                name: name.clone(),
                problem,
            }),
            ArgumentKind::Url => {
                let r = match s.get(..5) {
                    Some(p) if p.eq_ignore_ascii_case("file:") && urls.allows_scheme("file") => {
                        crate::validate::uri::file_uri_path(s).and_then(|p| paths.check_decoded(&p))
                    }
                    _ => urls.check(s),
                };
                r.map_err(|problem| ConstraintError::Url {
                    name: name.clone(),
                    problem,
                })
            }
        };
        match value {
            Value::String(s) => one(s),
            Value::Array(items) => items.iter().try_for_each(|v| match v {
                Value::String(s) => one(s),
                _ => Err(ConstraintError::WrongType {
                    name: name.clone(),
                    expected: "a string or an array of strings",
                }),
            }),
            _ => Err(ConstraintError::WrongType {
                name: name.clone(),
                expected: "a string or an array of strings",
            }),
        }
    }
}

/// Where an argument is: a top-level name, or a JSON Pointer into the arguments object.
#[derive(Debug, Clone)]
enum Path {
    Name(Arc<str>),
    /// RFC 6901 segments, unescaped; a `*` segment stands for every element of an array (or
    /// every value of an object).
    Pointer(Vec<String>),
}

/// The constraints on one argument.
///
/// The argument is named either by its top-level name (`"limit"`) or by a JSON Pointer into the
/// arguments object (`"/filter/limit"`, `"/items/*/qty"` where `*` checks every element). A
/// constrained argument must be present unless [`optional`](Self::optional): a missing value is
/// a denial, not a pass.
#[derive(Debug, Clone)]
pub struct ArgumentRule {
    name: Arc<str>,
    path: Path,
    required: bool,
    ty: Option<ArgumentType>,
    min: Option<f64>,
    max: Option<f64>,
    max_length: Option<usize>,
    allowed_values: Option<Vec<Value>>,
    pattern: Option<Regex>,
    kind: Option<ArgumentKind>,
    allowed_characters: Option<Regex>,
    disallowed: Vec<Regex>,
    rule_sets: Vec<RuleSet>,
    escape_html: bool,
}

impl ArgumentRule {
    /// No constraint yet on the argument `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        let path = match name.strip_prefix('/') {
            Some(pointer) => Path::Pointer(
                pointer
                    .split('/')
                    .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
                    .collect(),
            ),
            None => Path::Name(name.clone()),
        };
        ArgumentRule {
            name,
            path,
            required: true,
            ty: None,
            min: None,
            max: None,
            max_length: None,
            allowed_values: None,
            pattern: None,
            kind: None,
            allowed_characters: None,
            disallowed: Vec::new(),
            rule_sets: Vec::new(),
            escape_html: false,
        }
    }

    /// The argument is a path or a URL, checked by the guards the constraints hold.
    pub fn with_kind(mut self, kind: ArgumentKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Every character of the value must be in `class`, the inside of a regex character class
    /// (`"A-Za-z0-9 _.-"`).
    ///
    /// # Errors
    /// [`regex::Error`] when the class does not compile.
    pub fn with_allowed_characters(mut self, class: &str) -> Result<Self, regex::Error> {
        self.allowed_characters = Some(Regex::new(&format!("^[{class}]*$"))?);
        Ok(self)
    }

    /// The value must not contain a match of `pattern` anywhere (checked on its NFKC form).
    ///
    /// # Errors
    /// [`regex::Error`] when the pattern does not compile.
    pub fn with_disallowed_pattern(mut self, pattern: &str) -> Result<Self, regex::Error> {
        self.disallowed.push(sanitize::compile(pattern)?);
        Ok(self)
    }

    /// The value must not fall in the built-in `set` (SQL injection, shell metacharacters,
    /// argument injection).
    pub fn rejecting(mut self, set: RuleSet) -> Self {
        if !self.rule_sets.contains(&set) {
            self.rule_sets.push(set);
        }
        self
    }

    /// The handler receives the value with `& < > " '` escaped as HTML entities.
    pub fn escaping_html(mut self) -> Self {
        self.escape_html = true;
        self
    }

    /// Whether the text rules (characters, patterns, rule sets) have anything to check.
    fn has_text_rules(&self) -> bool {
        self.allowed_characters.is_some()
            || !self.disallowed.is_empty()
            || !self.rule_sets.is_empty()
    }

    /// The text rules on one string, matched against its NFKC form without invisible
    /// characters.
    fn check_text(&self, s: &str) -> Result<(), ConstraintError> {
        let form = unicode::matching_form(s);
        if let Some(re) = &self.allowed_characters
            && !re.is_match(&form)
        {
            return Err(ConstraintError::Characters(self.name.clone()));
        }
        if self.disallowed.iter().any(|re| re.is_match(&form)) {
            return Err(ConstraintError::Disallowed(self.name.clone()));
        }
        if let Some(set) = self.rule_sets.iter().find(|set| set.matches(&form)) {
            return Err(ConstraintError::RuleSet {
                name: self.name.clone(),
                what: set.describe(),
            });
        }
        Ok(())
    }

    /// The argument must be present (the default).
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The argument may be absent; when present, it is checked.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Checks the argument wherever its path leads in `args`.
    fn check_in(
        &self,
        args: Option<&Map<String, Value>>,
        g: Guards<'_>,
    ) -> Result<(), ConstraintError> {
        match &self.path {
            Path::Name(n) => self.check(args.and_then(|a| a.get(&**n)), g),
            Path::Pointer(segs) => {
                let Some(args) = args else {
                    return self.check(None, g);
                };
                let mut result = Ok(());
                visit_args(args, segs, &mut |v| {
                    if result.is_ok() {
                        result = self.check(v, g);
                    }
                });
                result
            }
        }
    }

    /// The argument must have this JSON type.
    pub fn with_type(mut self, ty: ArgumentType) -> Self {
        self.ty = Some(ty);
        self
    }

    /// A number at least `min`.
    pub fn with_min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }

    /// A number at most `max`.
    pub fn with_max(mut self, max: f64) -> Self {
        self.max = Some(max);
        self
    }

    /// A string of at most `n` characters, or an array of at most `n` items.
    pub fn with_max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// One of these values exactly.
    pub fn with_allowed_values(mut self, values: impl IntoIterator<Item = Value>) -> Self {
        self.allowed_values = Some(values.into_iter().collect());
        self
    }

    /// A string the whole of which matches `pattern`.
    ///
    /// # Errors
    /// [`regex::Error`] when the pattern does not compile.
    pub fn with_pattern(mut self, pattern: &str) -> Result<Self, regex::Error> {
        // Anchored on both ends: a pattern is an allow-list of the whole value, never a search.
        self.pattern = Some(Regex::new(&format!("^(?:{pattern})$"))?);
        Ok(self)
    }

    /// Whether this rule constrains the top-level argument `key` (itself, or something in it).
    fn names_top_level(&self, key: &str) -> bool {
        match &self.path {
            Path::Name(n) => **n == *key,
            Path::Pointer(segs) => segs.first().is_some_and(|s| s == key || s == "*"),
        }
    }

    fn check(&self, value: Option<&Value>, g: Guards<'_>) -> Result<(), ConstraintError> {
        let name = || self.name.clone();
        let Some(v) = value else {
            return if self.required {
                Err(ConstraintError::Missing(name()))
            } else {
                Ok(())
            };
        };
        if let Some(ty) = self.ty
            && !ty.admits(v)
        {
            return Err(ConstraintError::WrongType {
                name: name(),
                expected: ty.name(),
            });
        }
        if self.min.is_some() || self.max.is_some() {
            let n = v.as_f64().ok_or_else(|| ConstraintError::WrongType {
                name: name(),
                expected: "a number",
            })?;
            if self.min.is_some_and(|m| n < m) {
                return Err(ConstraintError::BelowMinimum(name()));
            }
            if self.max.is_some_and(|m| n > m) {
                return Err(ConstraintError::AboveMaximum(name()));
            }
        }
        if let Some(limit) = self.max_length {
            let len = match v {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                _ => 0,
            };
            if len > limit {
                return Err(ConstraintError::TooLong(name()));
            }
        }
        if let Some(allowed) = &self.allowed_values
            && !allowed.contains(v)
        {
            return Err(ConstraintError::NotAllowed(name()));
        }
        if let Some(re) = &self.pattern {
            let s = v.as_str().ok_or_else(|| ConstraintError::WrongType {
                name: name(),
                expected: "a string",
            })?;
            if !re.is_match(s) {
                return Err(ConstraintError::PatternMismatch(name()));
            }
        }
        if let Some(kind) = self.kind {
            kind.check(&self.name, v, g.paths, g.urls)?;
        }
        if self.has_text_rules() {
            match v {
                Value::String(s) => self.check_text(s)?,
                Value::Array(items) => {
                    for item in items {
                        let s = item.as_str().ok_or_else(|| ConstraintError::WrongType {
                            name: name(),
                            expected: "a string or an array of strings",
                        })?;
                        self.check_text(s)?;
                    }
                }
                _ => {
                    return Err(ConstraintError::WrongType {
                        name: name(),
                        expected: "a string or an array of strings",
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies the rule's rewrites (HTML escaping) wherever its path leads.
    fn rewrite(&self, args: &mut Map<String, Value>) {
        if !self.escape_html {
            return;
        }
        let escape = |v: &mut Value| match v {
            Value::String(s) => *s = sanitize::escape_html(s),
            Value::Array(items) => {
                for item in items {
                    if let Value::String(s) = item {
                        *s = sanitize::escape_html(s);
                    }
                }
            }
            _ => {}
        };
        match &self.path {
            Path::Name(n) => {
                if let Some(v) = args.get_mut(&**n) {
                    escape(v);
                }
            }
            Path::Pointer(segs) => {
                let Some((first, rest)) = segs.split_first() else {
                    return;
                };
                if first == "*" {
                    args.values_mut().for_each(|v| visit_mut(v, rest, &escape));
                } else if let Some(v) = args.get_mut(first.as_str()) {
                    visit_mut(v, rest, &escape);
                }
            }
        }
    }
}

/// The guards path and URL arguments are checked with.
#[derive(Debug, Clone, Copy)]
struct Guards<'a> {
    paths: &'a PathGuard,
    urls: &'a SsrfGuard,
}

/// [`visit`] for rewriting: calls `f` on every value `segs` leads to.
fn visit_mut(value: &mut Value, segs: &[String], f: &dyn Fn(&mut Value)) {
    let Some((first, rest)) = segs.split_first() else {
        f(value);
        return;
    };
    match (first.as_str(), value) {
        ("*", Value::Object(m)) => m.values_mut().for_each(|v| visit_mut(v, rest, f)),
        ("*", Value::Array(items)) => items.iter_mut().for_each(|v| visit_mut(v, rest, f)),
        (key, Value::Object(m)) => {
            if let Some(v) = m.get_mut(key) {
                visit_mut(v, rest, f);
            }
        }
        (index, Value::Array(items)) => {
            if let Some(v) = index.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                visit_mut(v, rest, f);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone, Default)]
struct ToolConstraints {
    rules: Vec<ArgumentRule>,
    deny_unknown: bool,
}

/// Argument constraints for tools (and prompts), keyed by exact name.
///
/// ```
/// use mcp_security::validate::{ArgumentConstraints, ArgumentRule, ArgumentType, InputValidator};
/// use mcp_security::{Action, Identity, RequestContext, Transport};
/// use serde_json::json;
///
/// let v = ArgumentConstraints::new().tool(
///     "query_database",
///     [ArgumentRule::new("query").required().with_type(ArgumentType::String)
///         .with_pattern(r"SELECT [\w, *]+ FROM \w+")?],
///     false,
/// );
/// let args = json!({"query": "'; DROP TABLE users; --"});
/// let call = Action::CallTool { name: "query_database", arguments: args.as_object() };
/// let cx = RequestContext::new(Transport::Stdio);
/// assert!(v.validate(&call, &Identity::new("h"), &cx).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ArgumentConstraints {
    tools: HashMap<String, ToolConstraints>,
    prompts: HashMap<String, ToolConstraints>,
    paths: Arc<PathGuard>,
    urls: Arc<SsrfGuard>,
}

impl ArgumentConstraints {
    /// No constraints.
    pub fn new() -> Self {
        ArgumentConstraints::default()
    }

    /// Constrains the arguments of tool `name`; with `deny_unknown`, arguments the rules do not
    /// name are refused.
    pub fn tool(
        mut self,
        name: impl Into<String>,
        rules: impl IntoIterator<Item = ArgumentRule>,
        deny_unknown: bool,
    ) -> Self {
        self.tools.insert(
            name.into(),
            ToolConstraints {
                rules: rules.into_iter().collect(),
                deny_unknown,
            },
        );
        self
    }

    /// Constrains the arguments of prompt `name`.
    pub fn prompt(
        mut self,
        name: impl Into<String>,
        rules: impl IntoIterator<Item = ArgumentRule>,
        deny_unknown: bool,
    ) -> Self {
        self.prompts.insert(
            name.into(),
            ToolConstraints {
                rules: rules.into_iter().collect(),
                deny_unknown,
            },
        );
        self
    }

    /// Checks arguments of kind [`ArgumentKind::Path`] with `guard` (default: shape checks
    /// only, no roots).
    pub fn with_path_guard(mut self, guard: Arc<PathGuard>) -> Self {
        self.paths = guard;
        self
    }

    /// Checks arguments of kind [`ArgumentKind::Url`] with `guard` (default: [`SsrfGuard::new`]).
    pub fn with_url_guard(mut self, guard: Arc<SsrfGuard>) -> Self {
        self.urls = guard;
        self
    }

    /// Whether no tool or prompt has constraints.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.prompts.is_empty()
    }
}

/// Calls `f` on every value `segs` leads to from `value`, and with `None` for every branch
/// where the path does not exist. A `*` segment fans out over array elements and object values
/// (an empty container calls nothing); a numeric segment indexes an array.
fn visit<'v>(value: &'v Value, segs: &[String], f: &mut dyn FnMut(Option<&'v Value>)) {
    let Some((first, rest)) = segs.split_first() else {
        f(Some(value));
        return;
    };
    match (first.as_str(), value) {
        ("*", Value::Object(m)) => m.values().for_each(|v| visit(v, rest, f)),
        ("*", Value::Array(items)) => items.iter().for_each(|v| visit(v, rest, f)),
        (key, Value::Object(m)) => match m.get(key) {
            Some(v) => visit(v, rest, f),
            None => f(None),
        },
        (index, Value::Array(items)) => {
            match index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => visit(v, rest, f),
                None => f(None),
            }
        }
        _ => f(None),
    }
}

/// [`visit`] from the arguments object itself.
fn visit_args<'v>(
    args: &'v Map<String, Value>,
    segs: &[String],
    f: &mut dyn FnMut(Option<&'v Value>),
) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if first == "*" {
        args.values().for_each(|v| visit(v, rest, f));
    } else {
        match args.get(first.as_str()) {
            Some(v) => visit(v, rest, f),
            None => f(None),
        }
    }
}

fn check_all(
    c: &ToolConstraints,
    args: Option<&Map<String, Value>>,
    g: Guards<'_>,
) -> Result<(), ConstraintError> {
    for rule in &c.rules {
        rule.check_in(args, g)?;
    }
    if c.deny_unknown
        && let Some(args) = args
        && args
            .keys()
            .any(|k| !c.rules.iter().any(|r| r.names_top_level(k)))
    {
        return Err(ConstraintError::Unexpected);
    }
    Ok(())
}

impl InputValidator for ArgumentConstraints {
    fn validate(
        &self,
        action: &Action<'_>,
        _identity: &Identity,
        _cx: &RequestContext,
    ) -> Result<(), ValidationError> {
        let found = match *action {
            Action::CallTool { name, arguments } => self.tools.get(name).map(|c| (c, arguments)),
            Action::GetPrompt { name, arguments } => self.prompts.get(name).map(|c| (c, arguments)),
            _ => None,
        };
        let g = Guards {
            paths: &self.paths,
            urls: &self.urls,
        };
        match found {
            Some((c, args)) => check_all(c, args, g).map_err(ValidationError::from),
            None => Ok(()),
        }
    }

    fn rewrite_arguments(&self, target: ArgumentsOf<'_>, args: &mut Map<String, Value>) {
        let found = match target {
            ArgumentsOf::Tool(name) => self.tools.get(name),
            ArgumentsOf::Prompt(name) => self.prompts.get(name),
        };
        if let Some(c) = found {
            for rule in &c.rules {
                rule.rewrite(args);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Transport;
    use serde_json::json;

    fn constraints() -> ArgumentConstraints {
        let query = ArgumentRule::new("query")
            .required()
            .with_type(ArgumentType::String)
            .with_max_length(200)
            .with_pattern(r"SELECT [\w, *]+ FROM \w+( WHERE \w+ = \d+)?");
        ArgumentConstraints::new().tool(
            "query_database",
            [
                query.unwrap_or_else(|e| unreachable!("{e}")),
                ArgumentRule::new("limit")
                    .optional()
                    .with_type(ArgumentType::Integer)
                    .with_min(1.0)
                    .with_max(1000.0),
                ArgumentRule::new("table")
                    .optional()
                    .with_allowed_values([json!("orders"), json!("customers")]),
            ],
            true,
        )
    }

    fn check(args: Value) -> Result<(), ValidationError> {
        let call = Action::CallTool {
            name: "query_database",
            arguments: args.as_object(),
        };
        constraints().validate(
            &call,
            &Identity::new("h"),
            &RequestContext::new(Transport::Stdio),
        )
    }

    #[test]
    fn each_constraint() {
        assert_eq!(
            check(json!({"query": "SELECT id FROM orders", "limit": 5, "table": "orders"})),
            Ok(())
        );
        let err = |e: ConstraintError| Err(ValidationError::Argument(e));
        assert_eq!(
            check(json!({"query": "'; DROP TABLE users; --"})),
            err(ConstraintError::PatternMismatch("query".into()))
        );
        assert_eq!(
            check(json!({})),
            err(ConstraintError::Missing("query".into()))
        );
        assert_eq!(
            check(json!({"query": 3})),
            err(ConstraintError::WrongType {
                name: "query".into(),
                expected: "a string"
            })
        );
        assert_eq!(
            check(json!({"query": "SELECT a FROM b", "limit": 0})),
            err(ConstraintError::BelowMinimum("limit".into()))
        );
        assert_eq!(
            check(json!({"query": "SELECT a FROM b", "limit": 5000})),
            err(ConstraintError::AboveMaximum("limit".into()))
        );
        assert_eq!(
            check(json!({"query": "SELECT a FROM b", "table": "users"})),
            err(ConstraintError::NotAllowed("table".into()))
        );
        assert_eq!(
            check(json!({"query": "SELECT a FROM b", "x": 1})),
            err(ConstraintError::Unexpected)
        );
        assert_eq!(
            check(json!({"query": format!("SELECT {} FROM b", "a".repeat(300))})),
            err(ConstraintError::TooLong("query".into()))
        );
    }

    #[test]
    fn pointers_and_arrays() {
        let c = ArgumentConstraints::new().tool(
            "order",
            [
                ArgumentRule::new("/items/*/qty")
                    .with_type(ArgumentType::Integer)
                    .with_min(1.0)
                    .with_max(10.0),
                ArgumentRule::new("/shipping/country")
                    .with_allowed_values([json!("DE"), json!("FR")]),
                ArgumentRule::new("/note").optional().with_max_length(5),
            ],
            false,
        );
        let check = |args: Value| {
            let call = Action::CallTool {
                name: "order",
                arguments: args.as_object(),
            };
            c.validate(
                &call,
                &Identity::new("h"),
                &RequestContext::new(Transport::Stdio),
            )
        };
        let ok = json!({"items": [{"qty": 1}, {"qty": 10}], "shipping": {"country": "DE"}});
        assert_eq!(check(ok), Ok(()));
        let err = |e: ConstraintError| Err(ValidationError::Argument(e));
        // Every element is checked, and a missing element field is a denial.
        assert_eq!(
            check(json!({"items": [{"qty": 1}, {"qty": 11}], "shipping": {"country": "DE"}})),
            err(ConstraintError::AboveMaximum("/items/*/qty".into()))
        );
        assert_eq!(
            check(json!({"items": [{"qty": 1}, {}], "shipping": {"country": "DE"}})),
            err(ConstraintError::Missing("/items/*/qty".into()))
        );
        assert_eq!(
            check(json!({"items": [], "shipping": {"country": "DE"}})),
            Ok(())
        );
        assert_eq!(
            check(json!({"items": [], "shipping": {}})),
            err(ConstraintError::Missing("/shipping/country".into()))
        );
        assert_eq!(
            check(json!({"items": [], "shipping": {"country": "US"}})),
            err(ConstraintError::NotAllowed("/shipping/country".into()))
        );
        assert_eq!(
            check(json!({"items": [], "shipping": {"country": "DE"}, "note": "too long"})),
            err(ConstraintError::TooLong("/note".into()))
        );
        assert_eq!(
            check(json!({"shipping": {"country": "DE"}})),
            err(ConstraintError::Missing("/items/*/qty".into()))
        );
    }

    #[test]
    fn messages_never_echo_values() {
        let e = check(json!({"query": "'; DROP TABLE users; --"}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("DROP"), "{e}");
        assert!(e.contains("`query`"));
    }
}

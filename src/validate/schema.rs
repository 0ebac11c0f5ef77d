//! What the server declared about its tools: each tool's `inputSchema`, checked on every call,
//! and which of its arguments are paths or URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

#[cfg(feature = "schema")]
use super::ConstraintError;
use super::arguments::ArgumentKind;
use super::{InputValidator, PathGuard, SsrfGuard, ToolSchema, ValidationError};
use crate::context::{Identity, RequestContext};
use crate::message::Action;

/// Bounds on a schema before it is compiled: a server's schema is input too.
#[cfg(feature = "schema")]
const MAX_SCHEMA_NODES: usize = 20_000;
#[cfg(feature = "schema")]
const MAX_SCHEMA_DEPTH: usize = 64;
#[cfg(feature = "schema")]
const MAX_COMPOSITION_BRANCHES: usize = 256;
/// Compiled validators kept for schemas no tool uses any more (a server that relists).
const MAX_CACHED: usize = 4096;

/// One tool, compiled.
#[derive(Debug)]
struct Compiled {
    #[cfg(feature = "schema")]
    validator: Result<jsonschema::Validator, &'static str>,
    /// The same schema split per property, when its top level is plain enough for that to
    /// mean the same thing: arguments are then validated where they lie, without copying.
    #[cfg(feature = "schema")]
    split: Option<Split>,
    /// Top-level arguments that are paths or URLs, from `format` and names.
    kinds: Vec<(Arc<str>, ArgumentKind)>,
}

/// Each tool's own `inputSchema`, compiled once and cached by schema hash, checked on every
/// `tools/call`; and the path and URL arguments the schema implies, checked by the path guard
/// and the SSRF guard.
///
/// The server adapter feeds it what the server declares ([`SecurityLayer::observe_tools`]
/// on `tools/list`, and the handler's own tool definition for a tool called before any
/// listing). With the crate feature `schema`, arguments are validated against JSON Schema
/// 2020-12 (the MCP default): no remote or file `$ref` is ever fetched (such a schema is
/// refused), pattern keywords run on a linear-time engine (a backtracking one, bounded, only
/// for patterns that need lookaround), and schemas over 20,000 nodes, 64 levels or 256
/// composition branches are refused. A tool whose schema cannot be compiled cannot be called
/// (fail closed).
///
/// Which arguments are paths: string properties named `path`, `paths`, `directory`, `dir`,
/// `folder`, `cwd`, or ending in `_path`, `_dir`, `_directory`, `Path`, `Dir`. URLs: `format`
/// `uri`, `uri-reference`, `iri`, `iri-reference` or `url`, and names `url`, `urls`, `uri`,
/// `href`, `endpoint`, `webhook`, or ending in `_url`, `_uri`, `Url`, `Uri`.
///
/// [`SecurityLayer::observe_tools`]: crate::SecurityLayer::observe_tools
#[derive(Debug, Clone)]
pub struct ToolSchemas {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    by_name: ArcSwap<HashMap<String, Arc<Compiled>>>,
    /// Only touched when tools are observed, never on a call.
    by_hash: Mutex<HashMap<[u8; 32], Arc<Compiled>>>,
    paths: Arc<PathGuard>,
    urls: Arc<SsrfGuard>,
    require: bool,
    infer: bool,
}

impl ToolSchemas {
    /// A registry that checks path arguments with `paths` and URL arguments with `urls`.
    pub fn new(paths: Arc<PathGuard>, urls: Arc<SsrfGuard>) -> Self {
        ToolSchemas {
            shared: Arc::new(Shared {
                by_name: ArcSwap::from_pointee(HashMap::new()),
                by_hash: Mutex::new(HashMap::new()),
                paths,
                urls,
                require: false,
                infer: true,
            }),
        }
    }

    /// Refuses calls to tools whose schema was never declared (default: such calls pass
    /// unchecked, and the handler answers for an unknown tool).
    pub fn require_schema(self, yes: bool) -> Self {
        self.with(|s| s.require = yes)
    }

    /// Whether path and URL arguments are inferred from the schema (default: on).
    pub fn infer_argument_kinds(self, yes: bool) -> Self {
        self.with(|s| s.infer = yes)
    }

    fn with(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = match Arc::try_unwrap(self.shared) {
            Ok(s) => s,
            // Configured after being shared: start from a copy of the settings.
            Err(arc) => Shared {
                by_name: ArcSwap::new(arc.by_name.load_full()),
                by_hash: Mutex::new(HashMap::new()),
                paths: arc.paths.clone(),
                urls: arc.urls.clone(),
                require: arc.require,
                infer: arc.infer,
            },
        };
        f(&mut shared);
        ToolSchemas {
            shared: Arc::new(shared),
        }
    }

    /// Records the schemas of `tools`, compiling only those not seen before.
    pub fn observe(&self, tools: &[ToolSchema<'_>]) {
        if tools.is_empty() {
            return;
        }
        let s = &*self.shared;
        let mut by_hash = s.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::clone(&s.by_name.load());
        for t in tools {
            let hash = schema_hash(t.input_schema);
            let compiled = by_hash
                .entry(hash)
                .or_insert_with(|| Arc::new(compile(t.input_schema, s.infer)))
                .clone();
            next.insert(t.name.to_owned(), compiled);
        }
        if by_hash.len() > MAX_CACHED {
            // Keep what tools use now; drop the rest.
            let live: Vec<*const Compiled> = next.values().map(Arc::as_ptr).collect();
            by_hash.retain(|_, c| live.contains(&Arc::as_ptr(c)));
        }
        s.by_name.store(Arc::new(next));
    }

    /// Whether the schema of tool `name` is known.
    pub fn knows(&self, name: &str) -> bool {
        self.shared.by_name.load().contains_key(name)
    }

    fn check(&self, name: &str, args: Option<&Map<String, Value>>) -> Result<(), ValidationError> {
        let s = &*self.shared;
        let map = s.by_name.load();
        let Some(tool) = map.get(name) else {
            return if s.require {
                Err(ValidationError::UnknownSchema)
            } else {
                Ok(())
            };
        };
        #[cfg(feature = "schema")]
        {
            let validator = tool
                .validator
                .as_ref()
                .map_err(|why| ValidationError::SchemaUnusable(why))?;
            match &tool.split {
                Some(split) => split.check(args)?,
                None => {
                    // jsonschema validates a `&Value` and the action borrows a `Map`: for a
                    // schema that cannot be split, the map is copied into a value.
                    let instance = Value::Object(args.cloned().unwrap_or_default());
                    if let Err(e) = validator.validate(&instance) {
                        return Err(schema_error(&e, None).into());
                    }
                }
            }
        }
        if let Some(args) = args {
            for (arg, kind) in &tool.kinds {
                if let Some(v) = args.get(&**arg) {
                    kind.check(arg, v, &s.paths, &s.urls)?;
                }
            }
        }
        Ok(())
    }
}

impl InputValidator for ToolSchemas {
    fn validate(
        &self,
        action: &Action<'_>,
        _identity: &Identity,
        _cx: &RequestContext,
    ) -> Result<(), ValidationError> {
        match *action {
            Action::CallTool { name, arguments } => self.check(name, arguments),
            _ => Ok(()),
        }
    }

    fn observe_tools(&self, tools: &[ToolSchema<'_>]) {
        self.observe(tools);
    }

    fn needs_tool_schema(&self, name: &str) -> bool {
        !self.knows(name)
    }
}

fn schema_hash(schema: &Map<String, Value>) -> [u8; 32] {
    let mut h = Sha256::new();
    // serde_json writes a map in its iteration order; two orders of one schema compile twice,
    // which costs time, not safety.
    if serde_json::to_writer(HashWriter(&mut h), schema).is_err() {
        h.update(b"unserialisable");
    }
    h.finalize().into()
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn compile(schema: &Map<String, Value>, infer: bool) -> Compiled {
    let kinds = if infer {
        infer_kinds(schema)
    } else {
        Vec::new()
    };
    #[cfg(feature = "schema")]
    let validator = build_validator(schema);
    Compiled {
        // Split only a schema that compiles whole: the whole one is the reference.
        #[cfg(feature = "schema")]
        split: validator.as_ref().ok().and_then(|_| Split::new(schema)),
        #[cfg(feature = "schema")]
        validator,
        kinds,
    }
}

/// An object schema made only of `type: object`, `properties`, `required` and a boolean
/// `additionalProperties` (plus annotations), with no references: validating it is validating
/// each present property against its own schema, checking the required names, and refusing
/// unlisted names when additional properties are off. That is what most tool schemas are.
#[cfg(feature = "schema")]
#[derive(Debug)]
struct Split {
    properties: HashMap<String, jsonschema::Validator>,
    required: Vec<String>,
    additional: bool,
}

#[cfg(feature = "schema")]
impl Split {
    fn new(schema: &Map<String, Value>) -> Option<Split> {
        const PLAIN: &[&str] = &[
            "type",
            "properties",
            "required",
            "additionalProperties",
            "$schema",
            "title",
            "description",
            "$comment",
            "examples",
            "default",
        ];
        if !schema.keys().all(|k| PLAIN.contains(&k.as_str())) {
            return None;
        }
        if schema.get("type").is_some_and(|t| t != "object") {
            return None;
        }
        let additional = match schema.get("additionalProperties") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return None,
        };
        let required = match schema.get("required") {
            None => Vec::new(),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
            Some(_) => return None,
        };
        let mut properties = HashMap::new();
        if let Some(props) = schema.get("properties") {
            for (name, sub) in props.as_object()? {
                // A reference would resolve against the whole document, which a property's
                // schema alone does not have.
                if mentions_ref(sub) {
                    return None;
                }
                let mut sub = sub.clone();
                if let (Some(d), Value::Object(m)) = (schema.get("$schema"), &mut sub) {
                    m.entry("$schema").or_insert_with(|| d.clone());
                }
                properties.insert(name.clone(), validator_for(&sub).ok()?);
            }
        }
        Some(Split {
            properties,
            required,
            additional,
        })
    }

    fn check(&self, args: Option<&Map<String, Value>>) -> Result<(), ConstraintError> {
        let empty = Map::new();
        let args = args.unwrap_or(&empty);
        if let Some(missing) = self.required.iter().find(|r| !args.contains_key(*r)) {
            return Err(ConstraintError::Schema {
                name: Arc::from(missing.as_str()),
                keyword: Arc::from("required"),
            });
        }
        for (k, v) in args {
            match self.properties.get(k) {
                Some(validator) => {
                    if let Err(e) = validator.validate(v) {
                        return Err(schema_error(&e, Some(k)));
                    }
                }
                None if !self.additional => {
                    return Err(ConstraintError::Schema {
                        name: Arc::from("(arguments)"),
                        keyword: Arc::from("additionalProperties"),
                    });
                }
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(feature = "schema")]
fn mentions_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            k == "$ref" || k == "$dynamicRef" || k == "$recursiveRef" || mentions_ref(v)
        }),
        Value::Array(items) => items.iter().any(mentions_ref),
        _ => false,
    }
}

#[cfg(feature = "schema")]
fn build_validator(schema: &Map<String, Value>) -> Result<jsonschema::Validator, &'static str> {
    let mut stats = Stats::default();
    stats.walk(schema, 0)?;
    validator_for(&Value::Object(schema.clone()))
}

/// Compiles `value` (checked for size and references already) under the MCP defaults.
#[cfg(feature = "schema")]
fn validator_for(value: &Value) -> Result<jsonschema::Validator, &'static str> {
    let value = value.clone();
    let has_draft = value.get("$schema").is_some();
    let mut opts = jsonschema::options();
    if !has_draft {
        opts = opts.with_draft(jsonschema::Draft::Draft202012);
    }
    match opts
        .clone()
        .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(1 << 20))
        .build(&value)
    {
        Ok(v) => Ok(v),
        // A pattern with lookaround needs the backtracking engine: allowed, with a bound on
        // the work one match may do.
        Err(_) => opts
            .with_pattern_options(
                jsonschema::PatternOptions::fancy_regex()
                    .backtrack_limit(100_000)
                    .size_limit(1 << 20),
            )
            .build(&value)
            .map_err(|_| "the tool's input schema could not be compiled"),
    }
}

#[cfg(feature = "schema")]
#[derive(Default)]
struct Stats {
    nodes: usize,
    branches: usize,
}

#[cfg(feature = "schema")]
impl Stats {
    fn walk(&mut self, schema: &Map<String, Value>, depth: usize) -> Result<(), &'static str> {
        for (k, v) in schema {
            if matches!(k.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef")
                && v.as_str().is_some_and(|r| !r.starts_with('#'))
            {
                return Err("the tool's input schema refers to an external document");
            }
            if matches!(k.as_str(), "allOf" | "anyOf" | "oneOf") {
                self.branches += v.as_array().map_or(0, Vec::len);
            }
            self.value(v, depth + 1)?;
        }
        if self.branches > MAX_COMPOSITION_BRANCHES {
            return Err("the tool's input schema composes too many branches");
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), &'static str> {
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            return Err("the tool's input schema is too large");
        }
        if depth > MAX_SCHEMA_DEPTH {
            return Err("the tool's input schema nests too deeply");
        }
        match v {
            Value::Object(m) => self.walk(m, depth),
            Value::Array(items) => items.iter().try_for_each(|i| self.value(i, depth + 1)),
            _ => Ok(()),
        }
    }
}

/// A schema error as the caller may see it: where, and which keyword; never the value.
#[cfg(feature = "schema")]
fn schema_error(e: &jsonschema::ValidationError<'_>, under: Option<&str>) -> ConstraintError {
    use jsonschema::error::ValidationErrorKind as K;
    // Only names the schema declares: the error's instance path is made of the request's own
    // keys wherever the schema allows any (`additionalProperties`, `patternProperties`), and
    // a key can be a secret (`{"env": {"AWS_SECRET_ACCESS_KEY": 1}}`). `under` is a property
    // the schema declares; a missing property's name comes from the schema too.
    let name: Arc<str> = match (e.kind(), under) {
        (K::Required { property }, None) if e.instance_path().as_str().is_empty() => property
            .as_str()
            .map_or(Arc::from("(arguments)"), Arc::from),
        (_, Some(k)) => Arc::from(k),
        _ => Arc::from("(arguments)"),
    };
    ConstraintError::Schema {
        name,
        keyword: Arc::from(e.kind().keyword()),
    }
}

const URL_FORMATS: &[&str] = &["uri", "uri-reference", "iri", "iri-reference", "url"];
const PATH_NAMES: &[&str] = &["path", "paths", "directory", "dir", "folder", "cwd"];
const URL_NAMES: &[&str] = &["url", "urls", "uri", "href", "endpoint", "webhook"];

fn infer_kinds(schema: &Map<String, Value>) -> Vec<(Arc<str>, ArgumentKind)> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, sub) in props {
        let Some(sub) = sub.as_object() else { continue };
        // The property's own type, or its items' type for an array.
        let ty = sub.get("type").and_then(Value::as_str);
        let target = match ty {
            Some("array") => sub.get("items").and_then(Value::as_object).unwrap_or(sub),
            _ => sub,
        };
        let stringy = match target.get("type") {
            None => true,
            Some(Value::String(t)) => t == "string",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
            Some(_) => false,
        };
        if !stringy {
            continue;
        }
        let format = target.get("format").and_then(Value::as_str);
        let kind = if format.is_some_and(|f| URL_FORMATS.contains(&f)) || url_name(name) {
            ArgumentKind::Url
        } else if path_name(name) {
            ArgumentKind::Path
        } else {
            continue;
        };
        out.push((Arc::from(name.as_str()), kind));
    }
    out
}

fn path_name(n: &str) -> bool {
    let lower = n.to_ascii_lowercase();
    PATH_NAMES.contains(&lower.as_str())
        || ["_path", "_paths", "_dir", "_directory"]
            .iter()
            .any(|s| lower.ends_with(s))
        || ((n.ends_with("Path") || n.ends_with("Dir") || n.ends_with("Paths")) && n.len() > 4)
}

fn url_name(n: &str) -> bool {
    let lower = n.to_ascii_lowercase();
    URL_NAMES.contains(&lower.as_str())
        || ["_url", "_urls", "_uri"].iter().any(|s| lower.ends_with(s))
        || ((n.ends_with("Url") || n.ends_with("Uri") || n.ends_with("Urls")) && n.len() > 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_from_names_and_formats() {
        let schema = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "repo_path": {"type": "string"},
                "filePath": {"type": "string"},
                "paths": {"type": "array", "items": {"type": "string"}},
                "target": {"type": "string", "format": "uri"},
                "url": {"type": "string"},
                "callbackUrl": {"type": "string"},
                "count": {"type": "integer"},
                "pathological": {"type": "integer"},
                "name": {"type": "string"}
            }
        });
        let kinds = infer_kinds(schema.as_object().unwrap_or_else(|| unreachable!()));
        let mut got: Vec<(String, ArgumentKind)> =
            kinds.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("callbackUrl".into(), ArgumentKind::Url),
                ("filePath".into(), ArgumentKind::Path),
                ("path".into(), ArgumentKind::Path),
                ("paths".into(), ArgumentKind::Path),
                ("repo_path".into(), ArgumentKind::Path),
                ("target".into(), ArgumentKind::Url),
                ("url".into(), ArgumentKind::Url),
            ]
        );
    }

    #[cfg(feature = "schema")]
    #[test]
    fn errors_name_only_what_the_schema_declares() {
        let schemas = ToolSchemas::new(Arc::default(), Arc::default());
        let schema = json!({
            "type": "object",
            "properties": {"env": {"type": "object", "additionalProperties": {"type": "string"}}},
            "additionalProperties": {"type": "string"}
        });
        let schema = schema.as_object().unwrap_or_else(|| unreachable!());
        schemas.observe(&[ToolSchema {
            name: "run",
            input_schema: schema,
        }]);
        for args in [
            json!({"env": {"AWS_SECRET_ACCESS_KEY": 1}}),
            json!({"AWS_SECRET_ACCESS_KEY": 1}),
        ] {
            let args = args.as_object().unwrap_or_else(|| unreachable!());
            let e = schemas
                .check("run", Some(args))
                .err()
                .unwrap_or_else(|| unreachable!("refused"));
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("AWS_SECRET"), "{shown}");
        }
    }

    #[cfg(feature = "schema")]
    #[test]
    fn split_agrees_with_the_whole_schema() {
        use proptest::prelude::*;
        let schema = json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 5},
                "n": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                "o": {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]}
            },
            "required": ["title"],
            "additionalProperties": false
        });
        let map = schema.as_object().unwrap_or_else(|| unreachable!());
        let split = Split::new(map).unwrap_or_else(|| unreachable!("splittable"));
        let whole = build_validator(map).unwrap_or_else(|_| unreachable!());
        let value = prop_oneof![
            Just(json!(null)),
            Just(json!("")),
            Just(json!("abc")),
            Just(json!("abcdef")),
            Just(json!(0)),
            Just(json!(3)),
            Just(json!(2.5)),
            Just(json!(["a"])),
            Just(json!(["a", "c"])),
            Just(json!(["a", "b", "a"])),
            Just(json!({"x": true})),
            Just(json!({"y": 1})),
        ];
        let key = prop_oneof![
            Just("title"),
            Just("n"),
            Just("tags"),
            Just("o"),
            Just("extra")
        ];
        let args = prop::collection::btree_map(key, value, 0..5);
        proptest!(ProptestConfig::with_cases(500), |(args in args)| {
            let m: Map<String, Value> = args.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let whole_ok = whole.is_valid(&Value::Object(m.clone()));
            prop_assert_eq!(split.check(Some(&m)).is_ok(), whole_ok, "{:?}", m);
        });
    }
}

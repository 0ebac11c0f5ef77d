//! Tool arguments from arbitrary JSON through the frame limits, the tool's input schema and
//! the policy's argument rules: no input panics.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcp_security::validate::{
    ArgumentConstraints, ArgumentKind, ArgumentRule, ArgumentsOf, Frame, FrameLimits,
    InputValidator, Invisible, PathGuard, RuleSet, SsrfGuard, ToolSchema, ToolSchemas,
};
use mcp_security::{Action, Identity, RequestContext, Transport};
use serde_json::{Value, json};

struct Validators {
    limits: FrameLimits,
    strip: FrameLimits,
    rules: ArgumentConstraints,
    schemas: ToolSchemas,
}

fn validators() -> &'static Validators {
    static V: OnceLock<Validators> = OnceLock::new();
    V.get_or_init(|| {
        let paths = Arc::new(PathGuard::new(["/srv/data"]).resolve_symlinks(false));
        let urls = Arc::new(SsrfGuard::new());
        let rule = |name: &str| ArgumentRule::new(name).optional();
        let rules = ArgumentConstraints::new()
            .tool(
                "t",
                [
                    rule("q").rejecting(RuleSet::SqlInjection),
                    rule("cmd").rejecting(RuleSet::ShellMetacharacters).rejecting(RuleSet::ArgumentInjection),
                    rule("/items/*/name").escaping_html(),
                    rule("dest").with_kind(ArgumentKind::Path),
                ],
                false,
            )
            .with_path_guard(paths.clone())
            .with_url_guard(urls.clone());
        let schemas = ToolSchemas::new(paths, urls);
        let schema = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "url": {"type": "string", "format": "uri"},
                "n": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}}},
                "choice": {"oneOf": [{"type": "string"}, {"type": "number"}]}
            },
            "additionalProperties": false
        });
        if let Value::Object(s) = &schema {
            schemas.observe(&[ToolSchema { name: "t", input_schema: s }]);
        }
        Validators {
            limits: FrameLimits::new(1 << 16, 16),
            strip: FrameLimits::new(1 << 16, 16).with_invisible(Invisible::Strip),
            rules,
            schemas,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let v = validators();
    let _ = v.limits.check_raw(data);
    let Ok(Value::Object(mut args)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let action = Action::CallTool {
        name: "t",
        arguments: Some(&args),
    };
    let id = Identity::new("fuzz");
    let cx = RequestContext::new(Transport::DryRun);
    let _ = v.limits.check_frame(&Frame::new(&action, Some(data.len())));
    let _ = v.rules.validate(&action, &id, &cx);
    let _ = v.schemas.validate(&action, &id, &cx);
    v.rules.rewrite_arguments(ArgumentsOf::Tool("t"), &mut args);
    v.strip.rewrite_arguments(ArgumentsOf::Tool("t"), &mut args);
    // Stripping is complete: what it leaves has nothing left to strip.
    let action = Action::CallTool {
        name: "t",
        arguments: Some(&args),
    };
    let _ = v.strip.check_frame(&Frame::new(&action, None));
});

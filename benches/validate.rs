//! Validating a typical `tools/call`: frame limits (depth, sizes, invisible characters), the
//! tool's own input schema (compiled once, cached), a path argument confined to a root with
//! symlinks resolved on a real directory, and a URL argument through the SSRF guard. Then each
//! part alone, so the figures say where the time goes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_security::validate::{
    ArgumentConstraints, ArgumentRule, Frame, FrameLimits, InputValidator, PathGuard, RuleSet,
    SsrfGuard, ToolSchema, ToolSchemas,
};
use mcp_security::{Action, Identity, RequestContext, Transport};
use serde_json::{Value, json};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("data");
    std::fs::create_dir_all(root.join("reports/2026")).unwrap();
    std::fs::write(root.join("reports/2026/q3.csv"), "x").unwrap();
    let root_s = root.display().to_string();

    let schema = json!({
        "type": "object",
        "properties": {
            "path": {"type": "string", "maxLength": 4096},
            "url": {"type": "string", "format": "uri"},
            "format": {"enum": ["csv", "json", "parquet"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
            "note": {"type": "string", "maxLength": 200}
        },
        "required": ["path", "url"],
        "additionalProperties": false
    });
    let args = json!({
        "path": format!("{root_s}/reports/2026/q3.csv"),
        "url": "https://api.example.com/v1/upload?dataset=q3",
        "format": "csv",
        "limit": 500,
        "note": "Quarterly export for Zoë's team"
    });
    let args = args.as_object().unwrap();
    let action = Action::CallTool {
        name: "export",
        arguments: Some(args),
    };
    let id = Identity::new("bench");
    let cx = RequestContext::new(Transport::InProcess);

    let resolving = Arc::new(PathGuard::new([root_s.as_str()]));
    let lexical = Arc::new(PathGuard::new([root_s.as_str()]).resolve_symlinks(false));
    let urls = Arc::new(SsrfGuard::new());
    let frame = FrameLimits::default();
    let schemas = |paths: Arc<PathGuard>| {
        let s = ToolSchemas::new(paths, urls.clone());
        s.observe(&[ToolSchema {
            name: "export",
            input_schema: schema.as_object().unwrap(),
        }]);
        s
    };
    let full = schemas(resolving.clone());
    let full_lexical = schemas(lexical.clone());
    let rules = ArgumentConstraints::new().tool(
        "export",
        [ArgumentRule::new("note").rejecting(RuleSet::SqlInjection)],
        false,
    );
    // The checks must pass, or the benchmark measures an early exit.
    assert!(frame.check_frame(&Frame::new(&action, None)).is_ok());
    assert!(full.validate(&action, &id, &cx).is_ok());
    assert!(rules.validate(&action, &id, &cx).is_ok());

    let mut g = c.benchmark_group("validate");
    g.bench_function(
        "tools/call: frame + schema + path (symlinks resolved) + url + rule set",
        |b| {
            b.iter(|| {
                let a = black_box(&action);
                frame.check_frame(&Frame::new(a, None)).unwrap();
                full.validate(a, &id, &cx).unwrap();
                rules.validate(a, &id, &cx).unwrap();
            })
        },
    );
    g.bench_function(
        "tools/call: frame + schema + path (lexical only) + url + rule set",
        |b| {
            b.iter(|| {
                let a = black_box(&action);
                frame.check_frame(&Frame::new(a, None)).unwrap();
                full_lexical.validate(a, &id, &cx).unwrap();
                rules.validate(a, &id, &cx).unwrap();
            })
        },
    );
    g.bench_function("frame limits (walk, sizes, invisible characters)", |b| {
        b.iter(|| {
            frame
                .check_frame(&Frame::new(black_box(&action), None))
                .unwrap()
        })
    });
    let path = args["path"].as_str().unwrap();
    g.bench_function("path guard, symlinks resolved", |b| {
        b.iter(|| resolving.check(black_box(path)).unwrap())
    });
    g.bench_function("path guard, lexical", |b| {
        b.iter(|| lexical.check(black_box(path)).unwrap())
    });
    let url = args["url"].as_str().unwrap();
    g.bench_function("ssrf guard", |b| {
        b.iter(|| urls.check(black_box(url)).unwrap())
    });
    let note = args["note"].as_str().unwrap();
    g.bench_function("sql injection rule set", |b| {
        b.iter(|| RuleSet::SqlInjection.matches(black_box(note)))
    });
    let bare = ToolSchemas::new(lexical.clone(), urls.clone()).infer_argument_kinds(false);
    bare.observe(&[ToolSchema {
        name: "export",
        input_schema: schema.as_object().unwrap(),
    }]);
    g.bench_function(
        "schema only (cached validator, split per property: no copy)",
        |b| b.iter(|| bare.validate(black_box(&action), &id, &cx).unwrap()),
    );
    let value = Value::Object(args.clone());
    let compiled = jsonschema_validator(&schema);
    g.bench_function(
        "schema only, jsonschema on a value (no copy): the floor",
        |b| b.iter(|| assert!(compiled.is_valid(black_box(&value)))),
    );
    g.finish();
}

fn jsonschema_validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);

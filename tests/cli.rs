//! `mcp-security check` and `hash-key`, run as the real binary.

#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");
// sha256("test") and sha256("old")
const TEST_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OLD_HASH: &str = "cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4";

fn policy(dir: &Path) -> PathBuf {
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[[auth.api_keys]]
host = "analytics-bot"
key_sha256 = "{TEST_HASH}"
expires = "2027-01-01T00:00:00Z"
allowed_ips = ["10.0.0.0/8"]

[[auth.api_keys]]
host = "old-bot"
key_sha256 = "{OLD_HASH}"

[[tools]]
name = "query_database"
allowed_hosts = ["analytics-bot"]
arguments.limit = {{ type = "integer", min = 1, max = 1000 }}

[[resources]]
uri = "file:///srv/data/**"
allowed_hosts = ["analytics-bot"]

[audit]
path = "audit.jsonl"
"#
        ),
    )
    .unwrap();
    p
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn check(dir: &Path, request: &str, extra: &[&str]) -> (i32, Value, String) {
    let req = dir.join("req.json");
    std::fs::write(&req, request).unwrap();
    let p = policy(dir);
    let mut args = vec![
        "check",
        "--policy",
        p.to_str().unwrap(),
        "--request",
        req.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args, None);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        value,
        String::from_utf8(out.stderr).unwrap(),
    )
}

const QUERY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query_database","arguments":{"limit":5}}}"#;

#[test]
fn allow_and_deny_with_stage_reason_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let at = ["--at", "2026-06-01T12:00:00Z", "--ip", "10.1.2.3"];
    let (code, v, _) = check(
        dir.path(),
        QUERY,
        &[&["--api-key", "test"][..], &at[..]].concat(),
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"decision": "allow", "stage": null, "reason": null, "rule": "tools[0]"})
    );

    let delete =
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_all_data"}}"#;
    let (code, v, _) = check(
        dir.path(),
        delete,
        &[&["--api-key", "test"][..], &at[..]].concat(),
    );
    assert_eq!(code, 1);
    assert_eq!(
        v,
        serde_json::json!({"decision": "deny", "stage": "authorization", "reason": "tool not found", "rule": "default-deny"})
    );

    let too_many = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"query_database","arguments":{"limit":5000}}}"#;
    let (code, v, _) = check(
        dir.path(),
        too_many,
        &[&["--api-key", "test"][..], &at[..]].concat(),
    );
    assert_eq!(
        (code, v["stage"].as_str(), v["reason"].as_str()),
        (
            1,
            Some("validation"),
            Some("invalid arguments: argument `limit` is above the maximum")
        )
    );

    // The dry run writes no audit log.
    assert!(!dir.path().join("audit.jsonl").exists());
}

#[test]
fn authentication_cases() {
    let dir = tempfile::tempdir().unwrap();
    let (code, v, _) = check(
        dir.path(),
        QUERY,
        &["--api-key", "wrong", "--ip", "10.0.0.1"],
    );
    assert_eq!(
        (code, v["stage"].as_str(), v["reason"].as_str()),
        (1, Some("authentication"), Some("unauthenticated"))
    );
    // Expired at the given time.
    let (code, v, _) = check(
        dir.path(),
        QUERY,
        &[
            "--api-key",
            "test",
            "--ip",
            "10.0.0.1",
            "--at",
            "2027-06-01T00:00:00Z",
        ],
    );
    assert_eq!((code, v["stage"].as_str()), (1, Some("authentication")));
    // From outside the allowed network.
    let (code, _, _) = check(
        dir.path(),
        QUERY,
        &[
            "--api-key",
            "test",
            "--ip",
            "192.0.2.7",
            "--at",
            "2026-06-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 1);
    // No credentials at all.
    let (code, v, _) = check(dir.path(), QUERY, &[]);
    assert_eq!((code, v["stage"].as_str()), (1, Some("authentication")));
    // --host asserts an identity without a key.
    let (code, _, _) = check(dir.path(), QUERY, &["--host", "analytics-bot"]);
    assert_eq!(code, 0);
    let (code, v, _) = check(dir.path(), QUERY, &["--host", "old-bot"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("tool not found")));
}

#[test]
fn resources_batches_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path());
    let batch = r#"[
        {"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///srv/data/a.csv"}},
        {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/passwd"}},
        {"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file://../../etc/passwd"}},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":7}}
    ]"#;
    let out = run(
        &[
            "check",
            "--policy",
            p.to_str().unwrap(),
            "--request",
            "-",
            "--host",
            "analytics-bot",
        ],
        Some(batch),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let decisions: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny", "allow", "deny"]);
    assert_eq!(v[4]["stage"], "frame");
    assert_eq!(v[4]["reason"], "parameter `name` must be a string");
    assert_eq!(v[1]["stage"], "authorization");
    assert_eq!(v[2]["stage"], "frame");
    assert_eq!(
        v[2]["reason"],
        "invalid resource uri: uri contains dot segments"
    );
}

#[test]
fn usage_request_and_policy_errors_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = check(dir.path(), "{not json", &["--host", "analytics-bot"]);
    assert_eq!(code, 2);
    assert!(err.contains("request: message is not valid json"), "{err}");
    let (code, _, err) = check(dir.path(), r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("a response is not a request"), "{err}");
    let (code, _, err) = check(dir.path(), QUERY, &["--at", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--at must be an RFC 3339"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[tools]]\nname = \"x\"\nallowed_hosts = [\"a\"]\npriority = 1\n[[auth.api_keys]]\nhost = \"a\"\nkey_sha256 = \"00\"\n").unwrap();
    let req = dir.path().join("r.json");
    std::fs::write(&req, QUERY).unwrap();
    let out = run(
        &[
            "check",
            "--policy",
            bad.to_str().unwrap(),
            "--request",
            req.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("tools[0]") && err.contains("unknown field `priority`"),
        "{err}"
    );

    let out = run(
        &[
            "check",
            "--policy",
            "/nonexistent/p.toml",
            "--request",
            req.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot read policy file")
    );

    let out = run(&["check", "--policy", bad.to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --request is a usage error"
    );
}

#[test]
fn hash_key_prints_the_sha256() {
    let out = run(&["hash-key"], Some("test\n"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), TEST_HASH);
    let out = run(&["hash-key"], Some(""));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn redact_text_and_json_offsets() {
    let input = "mail jane@example.com\ncard 4111 1111 1111 1111 ok\n";
    let out = run(&["redact"], Some(input));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "mail [EMAIL REDACTED]\ncard [CREDIT_CARD REDACTED] ok\n"
    );
    let out = run(&["redact", "--json"], Some(input));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    for f in findings {
        let (s, e) = (
            f["start"].as_u64().unwrap() as usize,
            f["end"].as_u64().unwrap() as usize,
        );
        let value = &input[s..e];
        assert!(
            value == "jane@example.com" || value == "4111 1111 1111 1111",
            "{value}"
        );
    }
    assert_eq!(findings[0]["type"], "EMAIL");
    assert_eq!(findings[1]["type"], "CREDIT_CARD");
    // A policy with no detector is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["redact", "--policy", policy(dir.path()).to_str().unwrap()],
        Some(input),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_uri_applies_the_validation_table() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("data");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    let p = base.join("policy.toml");
    std::fs::write(
        &p,
        format!(
            "[auth]\nanonymous = true\n\n[validation]\nroots = [\"{}\"]\nschemes = [\"file\"]\n\n[audit]\npath = \"audit.jsonl\"\n",
            root.display()
        ),
    )
    .unwrap();
    let p = p.to_str().unwrap();
    let r = root.display();
    for (uri, allowed) in [
        (format!("file://{r}/a..b.txt"), true),
        (format!("file://{r}/etc/passwd"), false),
        (format!("file://{r}_evil/x"), false),
        (format!("file://{r}/%2e%2e/x"), false),
        ("https://example.com/".to_owned(), false),
    ] {
        let out = run(&["check-uri", "--policy", p, &uri], None);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = if allowed { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{uri}: {v}");
        assert_eq!(
            v["decision"],
            if allowed { "allow" } else { "deny" },
            "{uri}"
        );
    }
}

#[test]
fn check_with_tools_uses_their_schemas_and_raw_limits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(
        &p,
        "[auth]\nanonymous = true\n\n[[tools]]\nname = \"*\"\nallowed_hosts = [\"*\"]\n\n[validation]\nmax_depth = 8\n\n[audit]\npath = \"audit.jsonl\"\n",
    )
    .unwrap();
    let tools = dir.path().join("tools.json");
    std::fs::write(
        &tools,
        r#"{"tools": [{"name": "fetch", "inputSchema": {"type": "object", "properties": {"url": {"type": "string", "format": "uri"}, "max": {"type": "integer"}}}}]}"#,
    )
    .unwrap();
    let (p, t) = (p.to_str().unwrap(), tools.to_str().unwrap());
    let ask = |req: &str| {
        let out = run(
            &["check", "--policy", p, "--request", "-", "--tools", t],
            Some(req),
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v)
    };
    let (code, v) = ask(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fetch","arguments":{"url":"http://169.254.169.254/"}}}"#,
    );
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("argument `url`"),
        "{v}"
    );
    let (code, v) = ask(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fetch","arguments":{"url":"https://example.com/","max":"ten"}}}"#,
    );
    assert_eq!(code, Some(1), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("schema"), "{v}");
    let (code, v) = ask(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fetch","arguments":{"url":"https://example.com/","max":10}}}"#,
    );
    assert_eq!(code, Some(0), "{v}");
    // Too deep for the raw pre-parse check: refused before parsing, at the frame stage.
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"fetch","arguments":{{"x":{}1{}}}}}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    let (code, v) = ask(&deep);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["stage"], "frame", "{v}");
}

#[test]
fn gen_key_prints_a_fresh_key_and_its_hash() {
    let parse = |out: Output| {
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("key = "))
            .unwrap()
            .to_owned();
        let hash = text
            .lines()
            .find_map(|l| l.strip_prefix("key_sha256 = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        (key, hash)
    };
    let (k1, h1) = parse(run(&["gen-key"], None));
    let (k2, h2) = parse(run(&["gen-key"], None));
    assert_ne!(k1, k2, "two keys from the OS RNG must differ");
    assert_ne!(h1, h2);
    assert!(k1.starts_with("mcps_") && k1.len() == 5 + 43, "{k1}");
    // The printed hash is what hash-key computes, so it can be pasted into the policy.
    let out = run(&["hash-key"], Some(&k1));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), h1);
}

//! Interop with the official Python MCP SDK (PyPI `mcp`): its client against the secured example
//! servers, over stdio (`examples/stdio_server.rs`, the key in `MCP_API_KEY`) and over Streamable
//! HTTP (`examples/http_server.rs`, the key as a bearer token), each in both protocol eras (the
//! `initialize` handshake of 2025-11-25 and the stateless 2026-07-28 that opens with
//! `server/discover`).
//!
//! The servers are the example binaries `cargo test` builds into `target/debug/examples/`, started
//! here as real processes on 127.0.0.1 with a policy written for the run (fresh random keys, a
//! real audit file). `tests/interop/python_client.py` drives them and prints what it got back as
//! JSON; the assertions are all here. The audit log is checked afterwards: every refusal recorded,
//! the hash chain intact across the server processes that wrote it, no key, e-mail address or
//! card number in it.
//!
//! Needs `python3` with `mcp` 2.x (`.ci/run` installs the pinned version); skips loudly without
//! it, and fails instead under `MCP_SECURITY_REQUIRE_EXTERNAL=1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The script's own steps are bounded at 30 s each; this bounds a whole run of it.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// Values the demo server and the script put in front of the layer; none may come back raw.
const RAW_VALUES: &[&str] = &[
    "jane.doe@example.com",
    "jane.roe@example.org",
    "ops@example.com",
    "boss@example.com",
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
];

struct Keys {
    analytics: String,
    limited: String,
    noscope: String,
    wrong: String,
}

fn random_key(label: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("mcpk_{label}_{hex}")
}

impl Keys {
    fn generate() -> Self {
        Keys {
            analytics: random_key("analytics"),
            limited: random_key("limited"),
            noscope: random_key("noscope"),
            wrong: random_key("wrong"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.analytics, &self.limited, &self.noscope, &self.wrong]
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `delete_all_data` is granted to analytics-bot only from TEST-NET-1, so from loopback (and
/// over stdio, which has no address) it is visible to it but refused: `-31403`.
fn policy(keys: &Keys, audit: &Path) -> String {
    format!(
        r#"
[server]
name = "interop"

[[auth.api_keys]]
host = "analytics-bot"
key_sha256 = "{analytics}"
scopes = ["mcp:tools"]

[[auth.api_keys]]
host = "limited-host"
key_sha256 = "{limited}"
scopes = ["mcp:tools"]

[[auth.api_keys]]
host = "noscope-host"
key_sha256 = "{noscope}"

[[tools]]
name = "echo"
allowed_hosts = ["*"]

[[tools]]
name = "who_am_i"
allowed_hosts = ["*"]

[[tools]]
name = "query_database"
allowed_hosts = ["analytics-bot"]
additional_arguments = false
arguments.query = {{ type = "string", required = true, max_length = 500, pattern = "SELECT [A-Za-z0-9_, *]+ FROM [A-Za-z0-9_]+" }}
arguments.limit = {{ type = "integer", min = 1, max = 1000, required = false }}

[[tools]]
name = "delete_all_data"
allowed_hosts = ["analytics-bot"]
conditions = {{ cidrs = ["192.0.2.0/24"] }}

[[resources]]
uri = "file:///srv/data/**"
allowed_hosts = ["analytics-bot"]

[[prompts]]
name = "summarize"
allowed_hosts = ["analytics-bot"]

[validation]
schemes = ["file"]
roots = ["/srv/data"]

[redaction]
detectors = ["email", "credit_card"]

[http]
scopes_supported = ["mcp:tools"]
required_scopes = ["mcp:tools"]

[audit]
path = "{audit}"
on_failure = "deny"
"#,
        analytics = sha256_hex(&keys.analytics),
        limited = sha256_hex(&keys.limited),
        noscope = sha256_hex(&keys.noscope),
        audit = audit.display(),
    )
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    manifest_dir().join("tests/interop/python_client.py")
}

/// An example binary built by this `cargo test` run: `target/debug/examples/NAME`, beside the
/// `deps/` directory this test runs from. `cargo test` builds every example before it runs any
/// test, but `cargo test --test interop_python` alone does not, and a binary older than its
/// sources would test yesterday's code: both are failures that say what to run. "Its sources"
/// are the files cargo's dep-info (`NAME.d`) lists for it: the example and the library.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(name);
    let rebuild = "run `cargo test --all-features` (it builds the examples first), or \
                   `cargo build --examples --features http` before `--test interop_python`";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {rebuild}", bin.display()));
    let dep_info = std::fs::read_to_string(bin.with_extension("d")).unwrap_or_default();
    // `BIN: SRC SRC ...`, spaces inside a path escaped as `\ `.
    let sources = dep_info.split_once(": ").map_or("", |(_, s)| s);
    for source in sources.replace("\\ ", "\0").split_whitespace() {
        let source = PathBuf::from(source.replace('\0', " "));
        let Ok(changed) = std::fs::metadata(&source).and_then(|m| m.modified()) else {
            continue; // a file since deleted: cargo rebuilds on its own then
        };
        assert!(
            changed <= built,
            "{} is older than {}: {rebuild}",
            bin.display(),
            source.display()
        );
    }
    bin
}

/// `python3` with an `mcp` the script can use (its version), or the reason there is none.
fn python_with_sdk() -> Result<(PathBuf, String), String> {
    let python = external::find("python3").ok_or("python3 is not installed")?;
    let out = Command::new(&python)
        .arg(script())
        .arg("probe")
        .output()
        .map_err(|e| format!("python3 could not be run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default().to_owned();
        return Err(format!(
            "{} cannot run the interop client: {last}",
            python.display()
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok((python, v["mcp"].as_str().unwrap_or_default().to_owned()))
}

/// Runs the script with the keys in its environment, bounded by [`SCRIPT_DEADLINE`]; returns
/// its summary and its stdout as text.
fn run_client(python: &Path, keys: &Keys, args: &[&str], with_noscope: bool) -> (Value, String) {
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .args(args)
        .env_remove("MCP_API_KEY")
        .env("INTEROP_KEY", &keys.analytics)
        .env("INTEROP_LIMITED_KEY", &keys.limited)
        .env("INTEROP_WRONG_KEY", &keys.wrong)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if with_noscope {
        cmd.env("INTEROP_NOSCOPE_KEY", &keys.noscope);
    } else {
        cmd.env_remove("INTEROP_NOSCOPE_KEY");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "python_client.py {args:?} ran past {SCRIPT_DEADLINE:?}; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "python_client.py {args:?} failed ({status}); stderr:\n{err}"
    );
    let summary = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("python_client.py printed no JSON ({e}):\n{out}\nstderr:\n{err}")
    });
    (summary, out)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// A tool result the script recorded: `(isError, text)`; panics on a JSON-RPC error.
fn tool(step: &Value, what: &str) -> (bool, String) {
    let ok = step
        .get("ok")
        .unwrap_or_else(|| panic!("{what}: expected a result, got {step}"));
    (
        ok["is_error"].as_bool().unwrap(),
        ok["text"].as_str().unwrap().to_owned(),
    )
}

/// A JSON-RPC error the script recorded: `(code, message)`; panics on a result.
fn error(step: &Value, what: &str) -> (i64, String) {
    let e = step
        .get("error")
        .unwrap_or_else(|| panic!("{what}: expected an error, got {step}"));
    let code = e["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: not a JSON-RPC error: {e}"));
    (code, e["message"].as_str().unwrap().to_owned())
}

/// What every transport and era must show for the two allowed hosts.
fn assert_in_band(s: &Value, era: &str) {
    let ctx = format!("{} {era}", s["transport"].as_str().unwrap_or_default());
    let a = &s["authorized"];
    assert_eq!(a["handshake"], json!({"ok": null}), "{ctx}: {a}");
    let version = if era == "legacy" {
        "2025-11-25"
    } else {
        "2026-07-28"
    };
    assert_eq!(a["protocol_version"], version, "{ctx}");

    // Listed: exactly what this host may call. delete_all_data is refused from here, so it is
    // not listed either (a list shows what a call would be allowed to do).
    assert_eq!(
        a["tools"]["ok"],
        json!(["echo", "query_database", "who_am_i"]),
        "{ctx}"
    );
    assert_eq!(
        tool(&a["who_am_i"], "who_am_i"),
        (false, "you are analytics-bot".to_owned()),
        "{ctx}"
    );
    // Redaction covers what the handler echoes back from the arguments, too.
    assert_eq!(
        tool(&a["echo"], "echo"),
        (
            false,
            "mail [EMAIL REDACTED], card [CREDIT_CARD REDACTED]".to_owned()
        ),
        "{ctx}"
    );
    assert_eq!(
        tool(&a["query"], "query"),
        (
            false,
            "1 row for `SELECT id FROM orders`: customer [EMAIL REDACTED] paid with card \
             [CREDIT_CARD REDACTED]"
                .to_owned()
        ),
        "{ctx}"
    );
    assert_eq!(
        tool(&a["invalid_limit"], "invalid_limit"),
        (
            true,
            "invalid arguments: argument `limit` is above the maximum".to_owned()
        ),
        "{ctx}"
    );
    assert_eq!(
        tool(&a["sql_injection"], "sql_injection"),
        (
            true,
            "invalid arguments: argument `query` does not match the allowed pattern".to_owned()
        ),
        "{ctx}"
    );
    assert_eq!(
        error(&a["forbidden_tool"], "forbidden_tool"),
        (-31403, "not allowed from this address".to_owned()),
        "{ctx}"
    );
    assert_eq!(
        error(&a["unknown_tool"], "unknown_tool"),
        (-32602, "tool not found".to_owned()),
        "{ctx}"
    );
    assert_eq!(
        a["resources"]["ok"],
        json!(["file:///srv/data/report.csv"]),
        "{ctx}"
    );
    assert_eq!(
        a["resource"]["ok"], "id,owner\n1,[EMAIL REDACTED]\n",
        "{ctx}"
    );
    // -32002 for handshake-era peers; rmcp answers -32602 to 2026-07-28 peers.
    let not_found = if era == "legacy" { -32002 } else { -32602 };
    assert_eq!(
        error(&a["hidden_resource"], "hidden_resource"),
        (not_found, "resource not found".to_owned()),
        "{ctx}"
    );
    assert_eq!(a["prompts"]["ok"], json!(["summarize"]), "{ctx}");
    assert_eq!(
        a["prompt"]["ok"], "Summarize; escalate to [EMAIL REDACTED]",
        "{ctx}"
    );

    // A host allowed only echo and who_am_i: the rest does not exist for it.
    let l = &s["limited"];
    assert_eq!(l["handshake"], json!({"ok": null}), "{ctx}: {l}");
    assert_eq!(l["tools"]["ok"], json!(["echo", "who_am_i"]), "{ctx}");
    assert_eq!(
        tool(&l["who_am_i"], "limited who_am_i"),
        (false, "you are limited-host".to_owned()),
        "{ctx}"
    );
    assert_eq!(
        error(&l["hidden_tool"], "limited hidden_tool"),
        (-32602, "tool not found".to_owned()),
        "{ctx}"
    );
    assert_eq!(l["resources"]["ok"], json!([]), "{ctx}");
}

fn assert_nothing_raw(text: &str, keys: &Keys, what: &str) {
    for raw in RAW_VALUES.iter().copied().chain(keys.all()) {
        assert!(!text.contains(raw), "{what} holds a raw value: {raw}");
    }
    // The cards as bare digit runs too, in case something normalised the spaces away.
    for card in ["4111111111111111", "5555555555554444"] {
        assert!(!text.contains(card), "{what} holds a card number");
    }
}

/// The audit log's records, once it is shown intact as one chain (written by every server
/// process of the test in turn) and free of keys, personal data and argument values.
fn read_audit(path: &Path, keys: &Keys) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert_nothing_raw(&text, keys, "the audit log");
    assert!(
        !text.contains("DROP TABLE"),
        "the audit log holds an argument"
    );
    let report = mcp_security::audit::verify_files(&[path.to_path_buf()], None, None).unwrap();
    assert!(report.is_intact(), "audit chain broken: {report:?}");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(report.events, records.len() as u64);
    records
}

fn count(records: &[Value], want: &Value) -> usize {
    let want = want.as_object().unwrap();
    records
        .iter()
        .filter(|r| want.iter().all(|(k, v)| &r[k] == v))
        .count()
}

fn assert_in_band_audit(records: &[Value], transport: &str) {
    let cases = [
        json!({"method": "tools/call", "target": "delete_all_data", "host": "analytics-bot",
               "outcome": "deny", "deny_kind": "forbidden", "rule": "tools[3]"}),
        json!({"method": "tools/call", "target": "no_such_tool", "host": "analytics-bot",
               "outcome": "deny", "deny_kind": "not_found", "rule": "default-deny"}),
        json!({"method": "tools/call", "target": "query_database", "host": "limited-host",
               "outcome": "deny", "deny_kind": "not_found", "rule": "default-deny"}),
        json!({"method": "resources/read", "target": "file:///etc/passwd", "host": "analytics-bot",
               "outcome": "deny", "deny_kind": "not_found"}),
        json!({"method": "tools/call", "target": "query_database", "host": "analytics-bot",
               "outcome": "deny", "deny_kind": "invalid_arguments",
               "reason": "invalid arguments: argument `limit` is above the maximum"}),
        json!({"method": "tools/call", "target": "query_database", "host": "analytics-bot",
               "outcome": "deny", "deny_kind": "invalid_arguments",
               "reason": "invalid arguments: argument `query` does not match the allowed pattern"}),
        // The allowed query and echo, each with two redactions (an e-mail address, a card).
        json!({"method": "tools/call", "target": "query_database", "host": "analytics-bot",
               "outcome": "allow", "redactions": 2}),
        json!({"method": "tools/call", "target": "echo", "host": "analytics-bot",
               "outcome": "allow", "redactions": 2}),
    ];
    for mut case in cases {
        case["transport"] = json!(transport);
        assert_eq!(count(records, &case), 2, "one per era: {case}");
    }
}

#[test]
fn python_sdk_over_stdio() {
    let (python, version) = match python_with_sdk() {
        Ok(found) => found,
        Err(why) => return external::skip("python_sdk_over_stdio", &why),
    };
    eprintln!("python MCP SDK {version} over stdio");
    let server = example("stdio_server");
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let audit = dir.path().join("audit.jsonl");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy(&keys, &audit)).unwrap();

    for era in ["legacy", "modern"] {
        let (s, text) = run_client(
            &python,
            &keys,
            &[
                "stdio",
                "--server",
                server.to_str().unwrap(),
                "--policy",
                policy_path.to_str().unwrap(),
                "--era",
                era,
            ],
            false,
        );
        assert_eq!(s["sdk"]["version"], version.as_str());
        assert_in_band(&s, era);
        // Over stdio the layer answers in-band: the first request of a connection whose key is
        // wrong or missing (initialize, or server/discover in 2026-07-28) gets -31401.
        for case in ["wrong_key", "missing_key"] {
            assert_eq!(
                error(&s[case]["handshake"], case),
                (-31401, "unauthenticated".to_owned()),
                "stdio {era} {case}"
            );
            // 2026-07-28 has no handshake to fail: a call made without server/discover is
            // refused on its own.
            if era == "modern" {
                assert_eq!(
                    error(&s[case]["direct_call"], case),
                    (-31401, "unauthenticated".to_owned()),
                    "stdio {era} {case}"
                );
            }
        }
        assert_nothing_raw(&text, &keys, "the client's view");
    }

    let records = read_audit(&audit, &keys);
    assert!(records.iter().all(|r| r["transport"] == "stdio"));
    assert_in_band_audit(&records, "stdio");
    for (method, target) in [
        ("initialize", Value::Null),
        ("server/discover", Value::Null),
        ("tools/call", json!("who_am_i")),
    ] {
        let refused = json!({"method": method, "target": target, "outcome": "deny",
                             "deny_kind": "unauthenticated", "stage": "authentication"});
        assert_eq!(
            count(&records, &refused),
            2,
            "wrong and missing key: {refused}"
        );
    }
}

/// The HTTP example server, killed on drop.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(policy: &Path, log: &Path) -> HttpServer {
        let port = external::free_port();
        let mut child = Command::new(example("http_server"))
            .arg("--policy")
            .arg(policy)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        // It prints where it listens once the socket is bound.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let server = HttpServer { child, url };
        assert_eq!(
            line.trim(),
            format!("listening on {}", server.url),
            "http_server did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        server
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exchanges(step: &Value) -> Vec<(String, u64, Option<String>)> {
    step["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["method"].as_str().unwrap().to_owned(),
                x["status"].as_u64().unwrap(),
                x["www_authenticate"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn python_sdk_over_streamable_http() {
    let (python, version) = match python_with_sdk() {
        Ok(found) => found,
        Err(why) => return external::skip("python_sdk_over_streamable_http", &why),
    };
    eprintln!("python MCP SDK {version} over Streamable HTTP");
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let audit = dir.path().join("audit.jsonl");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy(&keys, &audit)).unwrap();
    let server = HttpServer::start(&policy_path, &dir.path().join("server.log"));
    let metadata = server
        .url
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");

    for era in ["legacy", "modern"] {
        let (s, text) = run_client(
            &python,
            &keys,
            &["http", "--url", &server.url, "--era", era],
            true,
        );
        assert_eq!(s["sdk"]["version"], version.as_str());
        assert_in_band(&s, era);
        // Everything the allowed host sent got through the HTTP layer: refusals were in-band.
        let statuses = exchanges(&s["authorized"]);
        assert!(
            statuses
                .iter()
                .all(|(_, status, challenge)| *status < 300 && challenge.is_none()),
            "http {era}: {statuses:?}"
        );
        // Refused callers are stopped by the HTTP layer at their first request, before rmcp:
        // 401 with the RFC 9728 challenge (which the SDK reports as a JSON-RPC error), 403
        // insufficient_scope for a known key without the required scope.
        let cases = [
            (
                "wrong_key",
                401,
                format!(
                    r#"Bearer resource_metadata="{metadata}", error="invalid_token", scope="mcp:tools""#
                ),
            ),
            (
                "missing_key",
                401,
                format!(r#"Bearer resource_metadata="{metadata}", scope="mcp:tools""#),
            ),
            (
                "no_scope",
                403,
                format!(
                    r#"Bearer resource_metadata="{metadata}", error="insufficient_scope", scope="mcp:tools""#
                ),
            ),
        ];
        for (case, status, challenge) in cases {
            let mut steps = vec!["handshake"];
            if era == "modern" {
                steps.push("direct_call");
            }
            for step in &steps {
                assert!(
                    s[case][step].get("error").is_some(),
                    "http {era} {case} {step}: {}",
                    s[case]
                );
            }
            // One refused POST per request, and nothing else got through.
            let refused = ("POST".to_owned(), status, Some(challenge));
            assert_eq!(
                exchanges(&s[case]),
                vec![refused; steps.len()],
                "http {era} {case}"
            );
        }
        assert_nothing_raw(&text, &keys, "the client's view");
    }

    let records = read_audit(&audit, &keys);
    assert_in_band_audit(&records, "http");
    let unauthenticated = json!({"transport": "http", "method": "http", "target": "/mcp",
                                 "outcome": "deny", "deny_kind": "unauthenticated"});
    assert_eq!(
        count(&records, &unauthenticated),
        6,
        "wrong and missing key: the handshake per era, the direct call in 2026-07-28"
    );
    let no_scope = json!({"transport": "http", "method": "http", "host": "noscope-host",
                          "outcome": "deny", "deny_kind": "forbidden",
                          "rule": "http.required_scopes"});
    assert_eq!(count(&records, &no_scope), 3, "as above");
    drop(server);
}

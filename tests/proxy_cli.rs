//! `mcp-security proxy` as a process, in front of a small SDK-less Python MCP server
//! (tests/proxy/raw_server.py): what only a real child process shows. The environment the
//! server gets, output that is not MCP, id bookkeeping, oversized lines, server requests, and
//! the server dying under pending requests.

#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");
const KEY: &str = "proxy-test-key-0123456789abcdef";

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn policy(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("policy.toml");
    let tools: String = ["echo", "slow", "pid", "env", "leak", "noisy", "ask_roots"]
        .iter()
        .map(|t| format!("[[tools]]\nname = \"{t}\"\nallowed_hosts = [\"desktop\"]\n\n"))
        .collect();
    std::fs::write(
        &p,
        format!(
            r#"
[[auth.api_keys]]
host = "desktop"
key_sha256 = "{}"

{tools}
[redaction]
detectors = ["email", "credit_card"]

[proxy]
max_line_bytes = 4096

[audit]
path = "audit.jsonl"
fsync = "os"

{extra}
"#,
            sha256_hex(KEY)
        ),
    )
    .unwrap();
    p
}

/// The proxy running in front of raw_server.py, with a thread turning its stdout into lines.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Run {
    /// `None` (after a loud skip) when python3 is not installed.
    fn start(test: &str, extra_policy: &str, key: &str) -> Option<Run> {
        let Some(python) = external::find("python3") else {
            external::skip(test, "python3 is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let policy = policy(&path, extra_policy);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy/raw_server.py");
        let mut child = Command::new(BIN)
            .arg("proxy")
            .arg("--policy")
            .arg(&policy)
            .arg("--")
            .arg(python)
            .arg(script)
            .env("MCP_API_KEY", key)
            // Loader variables the server must not see, and one ordinary variable it must.
            // Empty: present (the server must not see it at all) without the dynamic loader of
            // the proxy itself complaining about a library that is not there.
            .env("LD_PRELOAD", "")
            .env("NODE_OPTIONS", "--require /nonexistent/evil.js")
            .env("PYTHONSTARTUP", "/nonexistent/evil.py")
            .env("PROXY_TEST_KEEP", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Some(Run {
            stdin: child.stdin.take(),
            child,
            lines,
            _dir: dir,
            dir: path,
        })
    }

    fn send(&mut self, v: &Value) {
        self.send_raw(&v.to_string());
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line on the proxy's stdout, which must be a JSON-RPC message.
    fn recv(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("an answer from the proxy within 20 s");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the proxy wrote something that is not JSON: {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        v
    }

    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let v = self.recv();
        assert_eq!(v["id"], id, "answer to another request: {v}");
        v
    }

    fn call(&mut self, id: i64, tool: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
    }

    fn handshake(&mut self) {
        let init = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {"roots": {}},
                   "clientInfo": {"name": "proxy-test", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "raw-server", "{init}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    /// Closes the proxy's stdin and waits for it to exit.
    fn finish(&mut self) -> ExitStatus {
        self.stdin = None;
        self.wait()
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text_of(v: &Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {v}"))
}

#[test]
fn the_proxy_enforces_the_policy_on_a_real_child() {
    let Some(mut p) = Run::start("the_proxy_enforces_the_policy_on_a_real_child", "", KEY) else {
        return;
    };
    p.handshake();

    // Lists are filtered: a tool the caller may not use is not there.
    let list = p.request(1, "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"hidden_admin"),
        "{names:?}"
    );

    assert_eq!(
        text_of(&p.call(2, "echo", json!({"text": "hello"}))),
        "hello"
    );
    // Hidden reads as unknown, and the server never sees the call.
    let hidden = p.call(3, "hidden_admin", json!({}));
    assert_eq!(hidden["error"]["code"], -32602, "{hidden}");

    // Results are redacted on the way out.
    let leak = text_of(&p.call(4, "leak", json!({}))).to_owned();
    assert!(
        leak.contains("[EMAIL REDACTED]") && leak.contains("[CREDIT_CARD REDACTED]"),
        "{leak}"
    );
    assert!(
        !leak.contains("jane.doe") && !leak.contains("4111 1111"),
        "{leak}"
    );

    // The server's environment: loader variables and the client's key removed, the rest kept.
    let env: Value = serde_json::from_str(text_of(&p.call(5, "env", json!({})))).unwrap();
    assert_eq!(
        env,
        json!({"LD_PRELOAD": false, "NODE_OPTIONS": false, "PYTHONSTARTUP": false,
               "MCP_API_KEY": false, "HOME": true, "PROXY_TEST_KEEP": true})
    );

    // A line the server prints that is not MCP never reaches the client: the next line is the
    // tool's answer (recv fails on anything that is not JSON-RPC).
    assert_eq!(text_of(&p.call(6, "noisy", json!({}))), "after the noise");

    // The server asking for the client's roots is refused by default; the server gets the
    // error, the client never sees the request.
    let roots = text_of(&p.call(7, "ask_roots", json!({}))).to_owned();
    assert!(
        roots.contains("server request not allowed by policy"),
        "{roots}"
    );

    // Duplicate ids while the first is pending are refused; the first still completes.
    p.send(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                   "params": {"name": "slow", "arguments": {"seconds": 0.5}}}));
    p.send(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "dup"}}}));
    let dup = p.recv();
    assert_eq!(
        (dup["id"].clone(), dup["error"]["code"].clone()),
        (json!(8), json!(-32600)),
        "{dup}"
    );
    assert_eq!(dup["error"]["message"], "duplicate request id");
    let first = p.recv();
    assert_eq!((first["id"].clone(), text_of(&first)), (json!(8), "done"));

    // Malformed and oversized lines get a clear error; the proxy keeps serving.
    p.send_raw("{not json");
    let bad = p.recv();
    assert_eq!(
        (bad["id"].clone(), bad["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    p.send_raw(&format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(10_000)
    ));
    let long = p.recv();
    assert_eq!(long["error"]["code"], -32600, "{long}");
    assert!(
        long["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes"),
        "{long}"
    );
    assert_eq!(
        text_of(&p.call(10, "echo", json!({"text": "still here"}))),
        "still here"
    );

    // A batch: each element on its own.
    p.send(&json!([
        {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b1"}}},
        {"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": {"name": "hidden_admin", "arguments": {}}}
    ]));
    let mut got = [p.recv(), p.recv()];
    got.sort_by_key(|v| v["id"].as_i64());
    assert_eq!(text_of(&got[0]), "b1");
    assert_eq!(got[1]["error"]["code"], -32602);

    // The client closing its input ends the server and the proxy, cleanly.
    assert!(p.finish().success());

    let records = p.audit();
    let raw = std::fs::read_to_string(p.dir.join("audit.jsonl")).unwrap();
    assert!(!raw.contains(KEY) && !raw.contains("jane.doe") && !raw.contains("4111 1111"));
    let has = |method: &str, target: &str, outcome: &str| {
        records
            .iter()
            .any(|r| r["method"] == method && r["target"] == target && r["outcome"] == outcome)
    };
    assert!(has("tools/call", "echo", "allow"));
    assert!(has("tools/call", "hidden_admin", "deny"));
    assert!(records.iter().any(|r| r["method"] == "roots/list"
        && r["outcome"] == "deny"
        && r["rule"] == "server_requests"));
    assert!(
        records
            .iter()
            .any(|r| r["method"] == "(server output)" && r["outcome"] == "deny")
    );
    let leak_rec = records
        .iter()
        .find(|r| r["target"] == "leak" && r["outcome"] == "allow")
        .unwrap();
    assert_eq!(leak_rec["redactions"], 2);

    // The log verifies.
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(p.dir.join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_server_request_passes_when_the_policy_allows_it() {
    let Some(mut p) = Run::start(
        "a_server_request_passes_when_the_policy_allows_it",
        "[server_requests]\nallow = [\"roots/list\"]\n",
        KEY,
    ) else {
        return;
    };
    p.handshake();
    p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "ask_roots", "arguments": {}}}));
    let ask = p.recv();
    assert_eq!(
        (ask["method"].clone(), ask["id"].clone()),
        (json!("roots/list"), json!("srv-roots")),
        "{ask}"
    );
    p.send(&json!({"jsonrpc": "2.0", "id": "srv-roots",
                   "result": {"roots": [{"uri": "file:///tmp/project", "name": "project"}]}}));
    let answer = p.recv();
    assert_eq!(answer["id"], 1);
    assert!(text_of(&answer).contains("file:///tmp/project"), "{answer}");
    // A response to a request nobody sent is dropped (and audited), not forwarded.
    p.send(&json!({"jsonrpc": "2.0", "id": "srv-roots", "result": {"roots": []}}));
    assert_eq!(text_of(&p.call(2, "echo", json!({"text": "ok"}))), "ok");
    assert!(p.finish().success());
    let records = p.audit();
    assert!(
        records
            .iter()
            .any(|r| r["method"] == "roots/list" && r["outcome"] == "allow")
    );
    assert!(
        records
            .iter()
            .any(|r| r["method"] == "(response from client)" && r["outcome"] == "deny")
    );
}

#[test]
fn a_wrong_key_is_refused_before_the_server_sees_anything() {
    let Some(mut p) = Run::start(
        "a_wrong_key_is_refused_before_the_server_sees_anything",
        "",
        "not-the-key",
    ) else {
        return;
    };
    let init = p.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "proxy-test", "version": "1"}}),
    );
    assert_eq!(init["error"]["code"], -31401, "{init}");
    assert_eq!(init["error"]["message"], "unauthenticated");
    assert!(p.finish().success());
    let raw = std::fs::read_to_string(p.dir.join("audit.jsonl")).unwrap();
    assert!(!raw.contains("not-the-key"));
}

#[test]
fn killing_the_server_answers_every_pending_request_and_fails_the_proxy() {
    let Some(mut p) = Run::start(
        "killing_the_server_answers_every_pending_request_and_fails_the_proxy",
        "",
        KEY,
    ) else {
        return;
    };
    p.handshake();
    let pid: i32 = text_of(&p.call(1, "pid", json!({}))).parse().unwrap();
    // Two requests pending: the server sleeps in the first, the second waits in its input.
    p.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "slow", "arguments": {"seconds": 60}}}));
    p.send(
        &json!({"jsonrpc": "2.0", "id": "three", "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "never"}}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = p.recv();
        assert_eq!(v["error"]["code"], -32603, "{v}");
        assert_eq!(v["error"]["message"], "server exited before answering");
        ids.push(v["id"].clone());
    }
    ids.sort_by_key(Value::to_string);
    assert_eq!(ids, vec![json!("three"), json!(2)]);
    // The proxy exits on its own, with a failure, although its stdin is still open.
    let status = p.wait();
    assert!(!status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let records = p.audit();
    let cancelled = records
        .iter()
        .filter(|r| r["outcome"] == "cancelled")
        .count();
    assert_eq!(cancelled, 2, "{records:#?}");
}

#[test]
fn a_tool_called_before_any_listing_is_checked_against_its_own_schema() {
    let Some(mut p) = Run::start(
        "a_tool_called_before_any_listing_is_checked_against_its_own_schema",
        "",
        KEY,
    ) else {
        return;
    };
    p.handshake();
    // No tools/list from the client: the proxy asks the server for the schema itself, and
    // `text` must be a string there.
    let r = p.call(1, "echo", json!({"text": 5}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let why = text_of(&r);
    assert!(why.contains("`text`") && !why.contains('5'), "{why}");
    assert_eq!(text_of(&p.call(2, "echo", json!({"text": "fine"}))), "fine");
    assert!(p.finish().success());
}

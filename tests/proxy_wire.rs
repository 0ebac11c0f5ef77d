//! The stdio proxy against messages no SDK would write, byte for byte: what the server is sent
//! must be exactly what the proxy checked, and what the client is sent exactly what the proxy
//! filtered. Parsers differ on duplicate keys (serde_json keeps the last copy, others the
//! first) and on case (Go's `encoding/json` folds it), so the proxy re-encodes what it parsed,
//! keeps only the JSON-RPC members, and refuses keys that differ only in case.

#![cfg(feature = "proxy")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::time::Duration;

use demo::{DemoKeys, demo_policy};
use mcp_security::Credentials;
use mcp_security::adapters::proxy::Proxy;
use mcp_security::policy::Policy;
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf,
};

/// Both far ends of a relay: the client's (write requests, read answers) and the server's
/// (read what the proxy forwards, write answers).
struct Wire {
    client_tx: WriteHalf<DuplexStream>,
    client_rx: Lines<BufReader<ReadHalf<DuplexStream>>>,
    server_tx: WriteHalf<DuplexStream>,
    server_rx: Lines<BufReader<ReadHalf<DuplexStream>>>,
    _audit: tempfile::TempDir,
}

/// A relay enforcing the demo policy for the `analytics-bot` key (which may not call
/// `delete_all_data`).
fn wire() -> Wire {
    wire_with(|keys| keys.analytics.clone())
}

/// A relay enforcing the demo policy for the client key `key` picks.
fn wire_with(key: impl FnOnce(&DemoKeys) -> String) -> Wire {
    wire_policy(key, "")
}

/// The same, with `extra` added to the demo policy.
fn wire_policy(key: impl FnOnce(&DemoKeys) -> String, extra: &str) -> Wire {
    let keys = DemoKeys::generate();
    let key = key(&keys);
    let audit = tempfile::tempdir().unwrap();
    let policy = demo_policy(&keys, &audit.path().join("audit.jsonl")) + extra;
    let policy = Policy::from_toml_str(&policy).unwrap();
    let proxy = Proxy::new(policy.build().unwrap(), policy.proxy().clone())
        .with_credentials(Credentials::api_key(key.as_str()));
    let (client_end, proxy_client_side) = tokio::io::duplex(64 * 1024);
    let (server_end, proxy_server_side) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (ci, co) = tokio::io::split(proxy_client_side);
        let (so, si) = tokio::io::split(proxy_server_side);
        proxy.relay(ci, co, si, so).await
    });
    let (client_read, client_tx) = tokio::io::split(client_end);
    let (server_read, server_tx) = tokio::io::split(server_end);
    Wire {
        client_tx,
        client_rx: BufReader::new(client_read).lines(),
        server_tx,
        server_rx: BufReader::new(server_read).lines(),
        _audit: audit,
    }
}

async fn write_line(w: &mut WriteHalf<DuplexStream>, line: &str) {
    w.write_all(line.as_bytes()).await.unwrap();
    w.write_all(b"\n").await.unwrap();
    w.flush().await.unwrap();
}

async fn next_line(r: &mut Lines<BufReader<ReadHalf<DuplexStream>>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), r.next_line())
        .await
        .expect("a line within 10 s")
        .unwrap()
        .expect("the stream is still open")
}

#[tokio::test]
async fn keys_that_differ_only_in_case_are_refused_before_the_server_sees_them() {
    let mut w = wire();
    // Checked as a ping, run as a tool call by a server whose parser folds case.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"delete_all_data","arguments":{}}}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "an object has keys that differ only in case"
    );
    // Deeper down too, and with the folds that are not ASCII (`ſ` is an `s` to Go).
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"argumentſ":{"text":"other"}}}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (json!(2), json!(-32600)),
        "{answer}"
    );
    // The server saw neither: the first line it gets is the ping sent next.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    )
    .await;
    let forwarded: Value = serde_json::from_str(&next_line(&mut w.server_rx).await).unwrap();
    assert_eq!(
        forwarded,
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    );
}

#[tokio::test]
async fn the_server_is_sent_what_was_checked_and_nothing_else() {
    let mut w = wire();
    // A duplicate key: serde_json reads the last copy, the ping; a first-copy parser would
    // read the tool call. The server is sent the ping alone, re-encoded.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all_data"},"method":"ping","extra":{"method":"tools/call"}}"#,
    )
    .await;
    let raw = next_line(&mut w.server_rx).await;
    assert!(
        !raw.contains("tools/call") && !raw.contains("extra"),
        "{raw}"
    );
    let forwarded: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        forwarded,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"name": "delete_all_data"}})
    );

    // The server answers with both a result and an error: the client gets the error alone,
    // and no member the proxy does not read.
    write_line(
        &mut w.server_tx,
        r#"{"jsonrpc":"2.0","id":1,"result":{"leak":"unfiltered"},"error":{"code":-32000,"message":"boom"},"Result":{"leak":"unfiltered"}}"#,
    )
    .await;
    let raw = next_line(&mut w.client_rx).await;
    assert!(!raw.contains("unfiltered"), "{raw}");
    let answer: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "boom"}})
    );

    // A result whose keys differ only in case becomes an error: a client that folds case
    // could read the copy no filter looked at.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    let _ = next_line(&mut w.server_rx).await;
    write_line(
        &mut w.server_tx,
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"Tools":[{"name":"delete_all_data","inputSchema":{"type":"object"}}]}}"#,
    )
    .await;
    let raw = next_line(&mut w.client_rx).await;
    assert!(!raw.contains("delete_all_data"), "{raw}");
    let answer: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (json!(2), json!(-32603)),
        "{answer}"
    );
}

#[tokio::test]
async fn a_cancelled_id_stays_taken_and_its_late_answer_is_dropped() {
    let mut w = wire();
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
    )
    .await;
    let _ = next_line(&mut w.server_rx).await;
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#,
    )
    .await;
    let _ = next_line(&mut w.server_rx).await;
    // Reusing the id at once: the server may still answer the listing, which would then be
    // matched to this call and never filtered.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(
        (answer["id"].clone(), answer["error"]["message"].clone()),
        (json!(5), json!("duplicate request id")),
        "{answer}"
    );
    // The late, unfiltered answer to the cancelled listing never reaches the client: the next
    // line it reads is the answer to its next request.
    write_line(
        &mut w.server_tx,
        r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"delete_all_data","inputSchema":{"type":"object"}}]}}"#,
    )
    .await;
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#,
    )
    .await;
    let forwarded: Value = serde_json::from_str(&next_line(&mut w.server_rx).await).unwrap();
    assert_eq!(forwarded["id"], 6);
    write_line(&mut w.server_tx, r#"{"jsonrpc":"2.0","id":6,"result":{}}"#).await;
    let raw = next_line(&mut w.client_rx).await;
    assert!(!raw.contains("delete_all_data"), "{raw}");
    assert_eq!(
        serde_json::from_str::<Value>(&raw).unwrap(),
        json!({"jsonrpc": "2.0", "id": 6, "result": {}})
    );
    // An id a JavaScript server would round is refused.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
}

/// The fetch exists only to check arguments against the tool's `inputSchema`.
#[cfg(feature = "schema")]
#[tokio::test]
async fn only_a_caller_who_may_call_the_tool_makes_the_proxy_list_the_servers_tools() {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    // A wrong key: refused, and the server is not asked for its tools on its behalf.
    let mut w = wire_with(|_| "mcpk_wrong".to_owned());
    write_line(&mut w.client_tx, call).await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert!(answer["error"].is_object(), "{answer}");
    // (The client's every request is refused, so silence is all the server can show: the
    // refusal above was written after the point where the listing would have been sent.)
    let heard = tokio::time::timeout(Duration::from_millis(500), w.server_rx.next_line()).await;
    assert!(heard.is_err(), "the server was sent {heard:?}");

    // The right key: the proxy lists the tools first, to check the call's arguments.
    let mut w = wire();
    write_line(&mut w.client_tx, call).await;
    let first: Value = serde_json::from_str(&next_line(&mut w.server_rx).await).unwrap();
    assert_eq!(first["method"], "tools/list", "{first}");
}

#[tokio::test]
async fn a_completion_for_a_hidden_prompt_reads_as_not_found() {
    // `completion/complete` is allowed; the prompt `summarize` is the analytics bot's only.
    let mut w = wire_policy(
        |keys| keys.limited.clone(),
        "\n[authorization]\nallow_methods = [\"completion/complete\"]\n",
    );
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summarize"},"argument":{"name":"a","value":"b"}}}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(
        (answer["id"].clone(), answer["error"]["message"].clone()),
        (json!(1), json!("not found")),
        "{answer}"
    );
    // A reference kind the proxy cannot judge is refused too; the server sees neither.
    write_line(
        &mut w.client_tx,
        r#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/other","name":"x"},"argument":{"name":"a","value":"b"}}}"#,
    )
    .await;
    let answer: Value = serde_json::from_str(&next_line(&mut w.client_rx).await).unwrap();
    assert_eq!(answer["error"]["message"], "not found", "{answer}");
    let heard = tokio::time::timeout(Duration::from_millis(300), w.server_rx.next_line()).await;
    assert!(heard.is_err(), "the server was sent {heard:?}");
}

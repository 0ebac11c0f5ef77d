//! Bad input on the wire: malformed JSON-RPC, wrong types, oversized frames and unknown methods
//! sent as raw bytes to a wrapped rmcp server. Each gets a clear error; nothing panics; the
//! server keeps serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use demo::{DemoKeys, DemoServer, demo_policy};
use mcp_security::adapters::rmcp::SecureServer;
use mcp_security::policy::Policy;
use mcp_security::{Credentials, Message, MessageError};
use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Raw {
    write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    read: BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    _dir: tempfile::TempDir,
}

impl Raw {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = DemoKeys::generate();
        let layer = Policy::from_toml_str(&demo_policy(&keys, &dir.path().join("audit.jsonl")))
            .unwrap()
            .build()
            .unwrap();
        let server = SecureServer::new(DemoServer, layer)
            .with_credentials(Credentials::api_key(keys.analytics.clone()));
        let (server_io, client_io) = tokio::io::duplex(1024 * 1024);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let (r, w) = tokio::io::split(client_io);
        let mut raw = Raw {
            write: w,
            read: BufReader::new(r),
            _dir: dir,
        };
        let init = raw
            .ask(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}))
            .await;
        assert!(init["result"].is_object(), "{init}");
        raw.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        raw
    }

    async fn send_line(&mut self, line: &str) {
        self.write.write_all(line.as_bytes()).await.unwrap();
        self.write.write_all(b"\n").await.unwrap();
        self.write.flush().await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let mut line = String::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.read.read_line(&mut line),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "server closed the connection");
        serde_json::from_str(&line).unwrap()
    }

    async fn ask(&mut self, v: Value) -> Value {
        self.send_line(&v.to_string()).await;
        self.next().await
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let mut s = Raw::start().await;

    // Unknown method.
    let r = s
        .ask(json!({"jsonrpc":"2.0","id":1,"method":"no/such/method"}))
        .await;
    assert_eq!(r["id"], 1);
    assert!(r["error"]["code"].is_i64(), "{r}");

    // Wrong types: tools/call with a numeric name, arguments as an array.
    let r = s
        .ask(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":42}}))
        .await;
    assert_eq!(
        (r["id"].as_i64(), r["error"]["code"].as_i64()),
        (Some(2), Some(-32602)),
        "{r}"
    );
    assert_eq!(r["error"]["message"], "parameter `name` must be a string");
    let r = s.ask(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":[1,2]}})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // Oversized frame: arguments over the policy's 64 KiB limit, refused before authentication.
    let big = "x".repeat(100 * 1024);
    let r = s.ask(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text": big}}})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(
        r["error"]["message"],
        "request is larger than the limit of 65536 bytes"
    );

    // Too deep.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let r = s.ask(json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"d": deep}}})).await;
    assert_eq!(
        r["error"]["message"], "request nests deeper than the limit of 16 levels",
        "{r}"
    );

    // Malformed JSON: the transport answers a parse error, or skips the line; either way the
    // server still answers the next request.
    s.send_line("{this is not json").await;
    let r = s.ask(json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"still here"}}})).await;
    let r = if r["id"] == 6 { r } else { s.next().await };
    assert_eq!(r["result"]["content"][0]["text"], "still here", "{r}");
}

#[test]
fn the_core_parser_names_each_problem() {
    let cases: &[(&[u8], MessageError)] = &[
        (b"{this is not json", MessageError::NotJson),
        (b"[]", MessageError::EmptyBatch),
        (b"\"ping\"", MessageError::NotObject),
        (
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            MessageError::WrongVersion,
        ),
        (
            br#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            MessageError::InvalidId,
        ),
        (
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            MessageError::InvalidId,
        ),
        (br#"{"jsonrpc":"2.0","id":1}"#, MessageError::MissingMethod),
    ];
    for (input, want) in cases {
        assert_eq!(
            Message::parse(input).err().as_ref(),
            Some(want),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    let m = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}"#)
        .unwrap();
    assert_eq!(
        m.envelopes()[0].action().err(),
        Some(MessageError::MissingParam { field: "uri" })
    );
    assert_eq!(
        MessageError::MissingParam { field: "uri" }.to_string(),
        "missing parameter `uri`"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes never panic the parser, and every error says something.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for msg in errors(&bytes) {
                prop_assert!(!msg.is_empty());
            }
        }

        /// Arbitrary JSON-RPC-shaped messages with arbitrary params never panic either.
        #[test]
        fn shaped_messages_never_panic(
            method in prop_oneof![Just("tools/call".to_owned()), Just("resources/read".to_owned()), Just("prompts/get".to_owned()), "[a-z/]{0,12}"],
            params in arb_json(3),
            id in prop_oneof![Just(json!(1)), Just(json!("a")), Just(Value::Null), Just(json!(1.5)), Just(json!({}))],
        ) {
            // The marker stands for a secret in a parameter: no error may repeat it.
            let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"name": params, "x": "SECRET-7f3a"}});
            let bytes = serde_json::to_vec(&msg).unwrap();
            for e in errors(&bytes) {
                prop_assert!(!e.contains("SECRET-7f3a"), "{}", e);
            }
        }
    }

    /// Every error message parsing `bytes` produces, down to each envelope's action.
    fn errors(bytes: &[u8]) -> Vec<String> {
        match Message::parse(bytes) {
            Err(e) => vec![e.to_string()],
            Ok(m) => m
                .envelopes()
                .iter()
                .filter_map(|e| e.action().err().map(|e| e.to_string()))
                .collect(),
        }
    }

    fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,16}".prop_map(Value::from),
        ];
        leaf.prop_recursive(depth, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

//! Audit through the layer: the event fields, security alerts, the policy's `[audit]` keys and
//! failure modes, the wrapped rmcp server's log (no raw argument values), fan-out, and the
//! `audit verify` / `audit keygen` CLI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::path::Path;
use std::sync::{Arc, Mutex};

use demo::{DemoKeys, sha256_hex};
use mcp_security::audit::{
    AlertKind, FanOutSink, MemorySink, SecurityAlert, TamperKind, read_verifying_key, verify_files,
};
use mcp_security::authn::{ApiKeyAuthenticator, ApiKeyEntry};
use mcp_security::authz::{AclAuthorizer, HostSet, ToolRule};
use mcp_security::policy::Policy;
use mcp_security::ratelimit::{MemoryRateLimiter, Rate, RateRule, Target};
use mcp_security::{Action, Credentials, DenyKind, RequestContext, Stage, Transport};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::time::Duration;

type Alerts = Arc<Mutex<Vec<(AlertKind, Option<String>)>>>;

fn collector() -> (Alerts, impl Fn(&SecurityAlert<'_>) + Send + Sync + 'static) {
    let alerts: Alerts = Arc::default();
    let a = alerts.clone();
    let hook = move |al: &SecurityAlert<'_>| {
        a.lock()
            .unwrap()
            .push((al.kind, al.event.map(|e| e.event_id.to_string())));
    };
    (alerts, hook)
}

#[tokio::test]
async fn records_carry_the_seed_fields_and_alerts_fire_for_security_events() {
    let audit = Arc::new(MemorySink::new());
    let (alerts, hook) = collector();
    let layer = mcp_security::SecurityLayer::builder()
        .authenticator(ApiKeyAuthenticator::new([ApiKeyEntry::from_key(
            "bot", "k-1",
        )]))
        .authorizer(
            AclAuthorizer::builder()
                .tool(ToolRule::new("echo", HostSet::only(["bot"])))
                .build()
                .unwrap(),
        )
        .rate_limiter(
            MemoryRateLimiter::new([RateRule::new(
                "two_per_minute",
                Target::Any,
                Rate::new(NonZeroU32::new(2).unwrap(), Duration::from_secs(60)),
            )])
            .unwrap(),
        )
        .audit_sink(audit.clone())
        .alert_hook(hook)
        .server_id("files-server")
        .build()
        .unwrap();
    let cx = RequestContext::new(Transport::InProcess)
        .with_credentials(Credentials::api_key("k-1"))
        .with_peer_addr("10.1.2.3".parse().unwrap())
        .with_user_agent("test-agent/1.0")
        .with_session_id("s-1");
    let echo = Action::CallTool {
        name: "echo",
        arguments: None,
    };
    layer.evaluate(&echo, &cx, None).await.unwrap();
    layer.evaluate(&echo, &cx, None).await.unwrap();
    let limited = layer.evaluate(&echo, &cx, None).await.unwrap_err();
    assert_eq!(limited.kind(), DenyKind::RateLimited);
    let bad =
        RequestContext::new(Transport::InProcess).with_credentials(Credentials::api_key("nope"));
    let unauth = layer.evaluate(&echo, &bad, None).await.unwrap_err();
    assert_eq!(unauth.stage(), Stage::Authentication);

    let recs = audit.records();
    assert_eq!(recs.len(), 4);
    let ok = &recs[0];
    assert_eq!(ok["event_type"], "tool_invocation");
    assert_eq!(ok["tool_name"], "echo");
    assert_eq!(ok["server_id"], "files-server");
    assert_eq!(ok["user_agent"], "test-agent/1.0");
    assert_eq!(ok["peer_addr"], "10.1.2.3");
    assert_eq!(ok["session_id"], "s-1");
    assert_eq!(ok["host"], "bot");
    assert_eq!(ok["outcome"], "allow");
    assert_eq!(ok["event_id"].as_str().unwrap().len(), 32);
    assert_ne!(recs[0]["event_id"], recs[1]["event_id"]);
    assert_eq!(recs[2]["event_type"], "security_event");
    assert_eq!(recs[2]["stage"], "rate_limit");
    assert_eq!(recs[3]["event_type"], "authentication");

    let alerts = alerts.lock().unwrap().clone();
    assert_eq!(
        alerts.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![
            AlertKind::RateLimitExceeded,
            AlertKind::AuthenticationFailure
        ]
    );
    // Each alert points at its audit record.
    assert_eq!(alerts[0].1.as_deref(), recs[2]["event_id"].as_str());
    assert_eq!(alerts[1].1.as_deref(), recs[3]["event_id"].as_str());
}

fn classified_policy(audit: &Path, on_failure: &str) -> String {
    format!(
        r#"
[server]
name = "classified"
[[auth.api_keys]]
host = "limited-host"
key_sha256 = "{}"
[[tools]]
name = "*"
allowed_hosts = ["*"]
[redaction]
detectors = ["credit_card"]
[redaction.classification]
levels = {{ PCI = "restricted" }}
[[redaction.clearance]]
host = "limited-host"
level = "internal"
[audit]
path = "{}"
on_failure = "{on_failure}"
"#,
        sha256_hex("k-limited"),
        audit.display()
    )
}

#[tokio::test]
async fn withholding_restricted_data_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let policy =
        Policy::from_toml_str(&classified_policy(&dir.path().join("a.jsonl"), "deny")).unwrap();
    let (alerts, hook) = collector();
    let layer = policy.builder().unwrap().alert_hook(hook).build().unwrap();
    let cx = RequestContext::new(Transport::InProcess)
        .with_credentials(Credentials::api_key("k-limited"));
    let action = Action::CallTool {
        name: "lookup",
        arguments: None,
    };
    let admission = layer.admit(&action, &cx, None).await.unwrap();
    let mut result = json!({"card": "4111 1111 1111 1111"});
    let report = layer.redact_value(&mut result);
    let classification = layer.classify(&admission, &report).unwrap_err();
    layer
        .complete(
            admission,
            &action,
            &cx,
            mcp_security::Completion::Withheld { classification },
        )
        .await
        .unwrap();
    assert_eq!(
        alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.0)
            .collect::<Vec<_>>(),
        vec![AlertKind::RestrictedDataDenied]
    );
}

#[tokio::test]
async fn on_failure_deny_refuses_and_continue_answers_counts_and_alerts() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here; nothing to test");
        return;
    }
    let cx = RequestContext::new(Transport::InProcess)
        .with_credentials(Credentials::api_key("k-limited"));
    let action = Action::CallTool {
        name: "lookup",
        arguments: None,
    };
    // /dev/full accepts the open and refuses every write.
    let deny = Policy::from_toml_str(&classified_policy(Path::new("/dev/full"), "deny"))
        .unwrap()
        .build()
        .unwrap();
    let d = deny.evaluate(&action, &cx, None).await.unwrap_err();
    assert_eq!((d.stage(), d.kind()), (Stage::Audit, DenyKind::Unavailable));
    assert_eq!(deny.audit_failures(), 1);
    drop(deny);

    let (alerts, hook) = collector();
    let cont = Policy::from_toml_str(&classified_policy(Path::new("/dev/full"), "continue"))
        .unwrap()
        .builder()
        .unwrap()
        .alert_hook(hook)
        .build()
        .unwrap();
    cont.evaluate(&action, &cx, None).await.unwrap();
    cont.evaluate(&action, &cx, None).await.unwrap();
    assert_eq!(cont.audit_failures(), 2);
    let kinds: Vec<AlertKind> = alerts.lock().unwrap().iter().map(|a| a.0).collect();
    assert_eq!(
        kinds,
        vec![AlertKind::AuditFailure, AlertKind::AuditFailure]
    );
}

#[tokio::test]
async fn fan_out_writes_every_sink_and_fails_when_one_fails() {
    let a = Arc::new(MemorySink::new());
    let b = Arc::new(MemorySink::new());
    let fan = FanOutSink::new([a.clone() as Arc<_>, b.clone() as Arc<_>]);
    let layer = mcp_security::SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(
            AclAuthorizer::builder()
                .tool(ToolRule::new("echo", HostSet::Any))
                .build()
                .unwrap(),
        )
        .audit_sink(fan)
        .build()
        .unwrap();
    let cx = RequestContext::new(Transport::InProcess);
    let echo = Action::CallTool {
        name: "echo",
        arguments: None,
    };
    layer.evaluate(&echo, &cx, None).await.unwrap();
    assert_eq!(a.records().len(), 1);
    assert_eq!(a.records(), b.records());

    if Path::new("/dev/full").exists() {
        let full = mcp_security::audit::FileSink::open(
            mcp_security::audit::FileSinkConfig::new("/dev/full").rotate_at(None),
        )
        .unwrap();
        let fan = FanOutSink::new([a.clone() as Arc<_>, Arc::new(full) as Arc<_>]);
        let layer = mcp_security::SecurityLayer::builder()
            .allow_anonymous()
            .authorizer(
                AclAuthorizer::builder()
                    .tool(ToolRule::new("echo", HostSet::Any))
                    .build()
                    .unwrap(),
            )
            .audit_sink(fan)
            .build()
            .unwrap();
        let d = layer.evaluate(&echo, &cx, None).await.unwrap_err();
        assert_eq!(d.stage(), Stage::Audit);
        // The healthy sink still got the record.
        assert_eq!(a.records().len(), 2);
    }
}

#[tokio::test]
async fn a_reload_is_audited_as_a_configuration_change() {
    let audit = Arc::new(MemorySink::new());
    let build = || {
        mcp_security::SecurityLayer::builder()
            .allow_anonymous()
            .authorizer(AclAuthorizer::builder().build().unwrap())
            .audit_sink_arc(audit.clone())
            .build()
            .unwrap()
    };
    let layer = build();
    layer
        .reload_audited(&build(), "policy.toml changed")
        .await
        .unwrap();
    let recs = audit.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["event_type"], "configuration_change");
    assert_eq!(recs[0]["method"], "policy/reload");
    assert_eq!(recs[0]["detail"], "policy.toml changed");
}

#[test]
fn the_policy_audit_keys_are_checked_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "[auth]\nanonymous = true\n[audit]\npath = {:?}\n",
        dir.path().join("a.jsonl")
    );
    let cases = [
        ("fsync = \"sometimes\"", "audit.fsync"),
        (
            "fsync = \"always\"\ngroup_commit_ms = 3",
            "audit.group_commit_ms",
        ),
        ("rotate_bytes = 10", "audit.rotate_bytes"),
        ("queue = 0", "audit.queue"),
        (
            "checkpoint_every = 0\nsigning_key_file = \"k\"",
            "audit.checkpoint_every",
        ),
        ("checkpoint_every = 10", "audit.signing_key_file"),
        (
            "signing_key_file = \"missing.key\"",
            "audit.signing_key_file",
        ),
        ("on_failure = \"maybe\"", "audit.on_failure"),
        ("bogus = 1", "audit.bogus"),
    ];
    for (extra, key) in cases {
        let text = format!("{base}{extra}\n");
        let e = Policy::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.starts_with(key), "{extra}: {e}");
    }
    let ok = format!(
        "{base}fsync = \"group\"\ngroup_commit_ms = 2\nrotate_bytes = 1048576\nqueue = 64\non_failure = \"continue\"\n"
    );
    Policy::from_toml_str(&ok).unwrap();
}

fn call(name: &'static str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name);
    p.arguments = args.as_object().cloned();
    p
}

const BIN: Option<&str> = option_env!("CARGO_BIN_EXE_mcp-security");

/// The wrapped rmcp server with the policy's chained, signed log: argument values never reach
/// it, and `mcp-security audit verify` accepts it (and names a change).
#[tokio::test]
async fn the_server_wrappers_log_holds_no_argument_values_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keys = DemoKeys::generate();
    let audit = dir.path().join("audit.jsonl");
    let key_file = dir.path().join("audit.key");
    let k = mcp_security::audit::generate_signing_key().unwrap();
    std::fs::write(&key_file, mcp_security::audit::signing_key_pem(&k).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("audit.pub"),
        mcp_security::audit::verifying_key_pem(&k.verifying_key()).unwrap(),
    )
    .unwrap();
    let policy = demo::demo_policy(&keys, &audit).replace(
        "on_failure = \"deny\"",
        "on_failure = \"deny\"\nsigning_key_file = \"audit.key\"\nfsync = \"always\"\ncheckpoint_every = 3",
    );
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    {
        let layer = Policy::load(&policy_path).unwrap().build().unwrap();
        let client = demo::connect(&layer, &keys.analytics).await.unwrap();
        let secrets = [
            "SELECT card FROM orders WHERE id = 424242",
            "hunter2-not-a-detector-match",
        ];
        client
            .call_tool(call(
                "query_database",
                json!({"query": secrets[0], "limit": 77}),
            ))
            .await
            .unwrap();
        client
            .call_tool(call("echo", json!({"text": secrets[1]})))
            .await
            .unwrap();
        // Refused at validation: the value still stays out of the log.
        let _ = client
            .call_tool(call(
                "query_database",
                json!({"query": "DROP TABLE x; hunter3"}),
            ))
            .await;
        client.cancel().await.unwrap();
        let log = std::fs::read_to_string(&audit).unwrap();
        for s in secrets.iter().chain(&["424242", "hunter3", "DROP TABLE"]) {
            assert!(!log.contains(s), "argument value {s:?} in the audit log");
        }
        assert!(log.contains("\"tool_name\":\"query_database\""));
        assert!(log.contains("\"server_id\":\"demo\""));
    }
    // The layer (and its sink) is dropped: the final checkpoint is written.
    let pubkey = read_verifying_key(dir.path().join("audit.pub")).unwrap();
    let r = verify_files(std::slice::from_ref(&audit), Some(&pubkey), None).unwrap();
    assert!(r.is_intact(), "{:?}", r.problem);
    assert!(r.checkpoints >= 2 && r.unsigned_tail == 0, "{r:?}");

    let Some(bin) = BIN else {
        return;
    };
    let out = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--key")
        .arg(dir.path().join("audit.pub"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("OK: "), "{stdout}");

    // Change one record: exit 1, the record named.
    let text = std::fs::read_to_string(&audit).unwrap();
    std::fs::write(
        &audit,
        text.replacen("\"host\":\"analytics-bot\"", "\"host\":\"admin\"", 1),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["audit", "verify", "--json"])
        .arg(&audit)
        .arg("--key")
        .arg(dir.path().join("audit.pub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problem"]["kind"], TamperKind::Modified.as_str());
    assert!(v["problem"]["line"].as_u64().unwrap() >= 1);
    assert_eq!(v["problem"]["event_id"].as_str().unwrap().len(), 32);
}

#[test]
fn the_cli_makes_a_key_and_refuses_to_overwrite_it() {
    let Some(bin) = BIN else {
        eprintln!("the cli feature is off; nothing to test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("audit.key");
    let out = std::process::Command::new(bin)
        .args(["audit", "keygen", "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let k = mcp_security::audit::read_signing_key(&out_path).unwrap();
    let p = read_verifying_key(dir.path().join("audit.key.pub")).unwrap();
    assert_eq!(k.verifying_key(), p);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the private key is readable by others");
    }
    let again = std::process::Command::new(bin)
        .args(["audit", "keygen", "--out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    // Missing file: a usage error, exit 2.
    let missing = std::process::Command::new(bin)
        .args(["audit", "verify"])
        .arg(dir.path().join("nope.jsonl"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

/// The `tracing` sink emits one structured event per record, with the record's fields.
#[cfg(feature = "tracing")]
#[test]
fn the_tracing_sink_emits_one_structured_event_per_record() {
    use mcp_security::audit::{AuditEvent, AuditSink, EventType, TracingSink};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Target, level and fields of one captured event.
    type Captured = (String, String, Vec<(String, String)>);
    #[derive(Default)]
    struct Capture(Mutex<Vec<Captured>>);
    struct Fields(Vec<(String, String)>);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }
    impl Subscriber for &'static Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, e: &Event<'_>) {
            let mut f = Fields(Vec::new());
            e.record(&mut f);
            self.0.lock().unwrap().push((
                e.metadata().target().to_owned(),
                e.metadata().level().to_string(),
                f.0,
            ));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let capture: &'static Capture = Box::leak(Box::default());
    tracing::subscriber::with_default(capture, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let cid = mcp_security::CorrelationId::Number(9);
            let e = AuditEvent::system(EventType::ConfigurationChange, "policy/reload", &cid)
                .with_detail("reloaded");
            TracingSink::new().record(&e).await.unwrap();
        });
    });
    let events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 1);
    let (target, level, fields) = &events[0];
    assert_eq!(
        (target.as_str(), level.as_str()),
        ("mcp_security::audit", "INFO")
    );
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("event_type"), "configuration_change");
    assert_eq!(get("method"), "policy/reload");
    assert_eq!(get("event_id").len(), 32);
    let record: Value = serde_json::from_str(&get("record")).unwrap();
    assert_eq!(record["detail"], "reloaded");
    assert_eq!(record["correlation_id"], 9);
}

//! Authentication as the policy composes it: API key rotation and reasons in the audit log,
//! anonymous only when asked for, several authenticators in one chain, stdio identity from the
//! environment.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mcp_security::audit::MemorySink;
use mcp_security::authn::AuthnError;
use mcp_security::policy::Policy;
use mcp_security::{Action, AuthMethod, Credentials, RequestContext, SecurityLayer, Transport};

/// The hex SHA-256 of a key, as `key_sha256` holds it.
fn sha(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn layer(policy: &str) -> (SecurityLayer, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let layer = Policy::from_toml_str(policy)
        .unwrap()
        .builder_without_audit()
        .audit_sink(sink.clone())
        .build()
        .unwrap();
    (layer, sink)
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

const PING: Action<'static> = Action::CallTool {
    name: "ping",
    arguments: None,
};

/// Runs `cx` through the layer; returns the client-facing text of a refusal and the audit
/// record's detail (the internal reason).
async fn refused(
    layer: &SecurityLayer,
    sink: &MemorySink,
    cx: &RequestContext,
) -> (String, String) {
    let denial = layer.evaluate(&PING, cx, None).await.unwrap_err();
    let record = sink.records().pop().unwrap();
    (denial.to_string(), record.to_string())
}

#[tokio::test]
async fn api_key_rotation_and_every_reason_audited_behind_one_generic_message() {
    let policy = format!(
        r#"
[[auth.api_keys]]
host = "bot"
key_sha256 = "{old}"
expires = 2026-06-01T00:00:00Z

[[auth.api_keys]]
host = "bot"
key_sha256 = "{new}"
not_before = 2026-05-01T00:00:00Z

[[auth.api_keys]]
host = "lan"
key_sha256 = "{lan}"
allowed_ips = ["10.0.0.0/8", "fd00::/8"]

[[tools]]
name = "ping"
allowed_hosts = ["bot", "lan"]
"#,
        old = sha("old-key"),
        new = sha("new-key"),
        lan = sha("lan-key"),
    );
    let (layer, sink) = layer(&policy);
    let cx = |key: &str, when: &str| {
        RequestContext::new(Transport::Http)
            .with_credentials(Credentials::api_key(key))
            .with_received_at(at(when))
    };
    // Overlap: during May both keys of "bot" work.
    assert!(
        layer
            .evaluate(&PING, &cx("old-key", "2026-04-15T00:00:00Z"), None)
            .await
            .is_ok()
    );
    assert!(
        layer
            .evaluate(&PING, &cx("old-key", "2026-05-15T00:00:00Z"), None)
            .await
            .is_ok()
    );
    assert!(
        layer
            .evaluate(&PING, &cx("new-key", "2026-05-15T00:00:00Z"), None)
            .await
            .is_ok()
    );
    assert!(
        layer
            .evaluate(&PING, &cx("new-key", "2026-07-01T00:00:00Z"), None)
            .await
            .is_ok()
    );

    let mapped: std::net::IpAddr = "::ffff:10.9.8.7".parse().unwrap();
    assert!(
        layer
            .evaluate(
                &PING,
                &cx("lan-key", "2026-05-15T00:00:00Z").with_peer_addr(mapped),
                None
            )
            .await
            .is_ok()
    );

    let cases: [(RequestContext, &str); 5] = [
        (
            cx("new-key", "2026-04-15T00:00:00Z"),
            "credentials not yet valid",
        ),
        (cx("old-key", "2026-07-01T00:00:00Z"), "credentials expired"),
        (
            cx("wrong-key", "2026-05-15T00:00:00Z"),
            "credentials not recognised",
        ),
        (
            cx("lan-key", "2026-05-15T00:00:00Z")
                .with_peer_addr("::ffff:192.0.2.1".parse().unwrap()),
            "credentials not allowed from this address",
        ),
        (
            RequestContext::new(Transport::Http),
            "no credentials presented",
        ),
    ];
    for (cx, reason) in cases {
        let (client, audit) = refused(&layer, &sink, &cx).await;
        assert_eq!(client, "denied at authentication: unauthenticated");
        assert!(audit.contains(reason), "{reason}: {audit}");
        assert!(
            !audit.contains("-key"),
            "the key must never reach the audit log"
        );
    }
}

#[tokio::test]
async fn anonymous_only_when_asked_for_and_never_over_a_bad_credential() {
    let keys = format!(
        "[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"{}\"\n[[tools]]\nname = \"ping\"\nallowed_hosts = [\"bot\", \"anonymous\"]\n",
        sha("good")
    );
    // Not asked for: nothing presented is refused.
    let (strict, _) = layer(&keys);
    assert_eq!(
        strict
            .identify(&RequestContext::new(Transport::Http))
            .await
            .unwrap_err(),
        AuthnError::Missing
    );
    // Asked for by name: nothing presented is the anonymous identity...
    let (open, sink) = layer(&format!("[auth]\nanonymous = true\n{keys}"));
    let id = open
        .identify(&RequestContext::new(Transport::Http))
        .await
        .unwrap();
    assert_eq!(
        (id.host(), id.method()),
        ("anonymous", AuthMethod::Anonymous)
    );
    // ...but a wrong key is still wrong, not anonymous.
    let bad = RequestContext::new(Transport::Http).with_credentials(Credentials::api_key("bad"));
    let (_, audit) = refused(&open, &sink, &bad).await;
    assert!(audit.contains("credentials not recognised"), "{audit}");
    // A policy with no way to authenticate and no anonymous access does not load.
    let e = Policy::from_toml_str("[[tools]]\nname = \"ping\"\nallowed_hosts = [\"bot\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("auth: no way to authenticate"), "{e}");
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn a_chain_keeps_the_most_specific_reason() {
    let dir = tempfile::tempdir().unwrap();
    // An Ed25519 JWK (RFC 8037 example key): the JWT authenticator needs a usable key to load.
    std::fs::write(
        dir.path().join("jwks.json"),
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    let policy = format!(
        r#"
[[auth.api_keys]]
host = "bot"
key_sha256 = "{}"

[auth.jwt]
issuer = "https://auth.example.test"
audience = "https://mcp.example.test/mcp"
jwks_file = "{}/jwks.json"

[[tools]]
name = "ping"
allowed_hosts = ["bot"]
"#,
        sha("good"),
        dir.path().display()
    );
    let (layer, sink) = layer(&policy);
    // The API key works through the chain.
    let good = RequestContext::new(Transport::Http).with_credentials(Credentials::api_key("good"));
    assert_eq!(layer.identify(&good).await.unwrap().host(), "bot");
    // A bad API key: the JWT authenticator saw nothing (Missing), the API key authenticator
    // refused it (Invalid): the audit keeps Invalid.
    let bad = RequestContext::new(Transport::Http).with_credentials(Credentials::api_key("bad"));
    let (_, audit) = refused(&layer, &sink, &bad).await;
    assert!(audit.contains("credentials not recognised"), "{audit}");
    // A malformed bearer token: the JWT reason is kept over the API key's Missing.
    let junk = RequestContext::new(Transport::Http).with_credentials(Credentials::bearer("junk"));
    let (_, audit) = refused(&layer, &sink, &junk).await;
    assert!(audit.contains("credentials malformed"), "{audit}");
    // Nothing at all: Missing.
    let (_, audit) = refused(&layer, &sink, &RequestContext::new(Transport::Http)).await;
    assert!(audit.contains("no credentials presented"), "{audit}");
}

/// The stdio identity comes from the environment variable the policy names. Environment
/// variables are process-wide, so the check runs in a child process of this test binary.
#[test]
fn stdio_identity_from_the_environment() {
    const MODE: &str = "MCPS_TEST_STDIO_CHILD";
    const VAR: &str = "MCPS_TEST_STDIO_KEY";
    let policy = format!(
        "[auth]\napi_key_env = \"{VAR}\"\n[[auth.api_keys]]\nhost = \"desktop\"\nkey_sha256 = \"{}\"\n",
        sha("from-env")
    );
    if let Ok(mode) = std::env::var(MODE) {
        let p = Policy::from_toml_str(&policy).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let layer = p
            .builder_without_audit()
            .audit_sink(MemorySink::new())
            .build()
            .unwrap();
        let cx = RequestContext::new(Transport::Stdio).with_credentials(p.stdio_credentials());
        let got = rt.block_on(layer.identify(&cx));
        match mode.as_str() {
            "with-key" => assert_eq!(got.unwrap().host(), "desktop"),
            "empty" | "unset" => assert_eq!(got.unwrap_err(), AuthnError::Missing),
            "wrong" => assert_eq!(got.unwrap_err(), AuthnError::Invalid),
            other => panic!("unknown mode {other}"),
        }
        return;
    }
    for (mode, value) in [
        ("with-key", Some("from-env")),
        ("empty", Some("")),
        ("unset", None),
        ("wrong", Some("not-the-key")),
    ] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "stdio_identity_from_the_environment",
                "--test-threads=1",
            ])
            .env(MODE, mode)
            .env_remove(VAR);
        if let Some(v) = value {
            child.env(VAR, v);
        }
        let out = child.output().unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // The child really ran the test (and was not filtered out).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{mode}"
        );
    }
}

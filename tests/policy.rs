//! The policy file: every error names the key path and the reason; secrets never in clear.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use mcp_security::audit::MemorySink;
use mcp_security::authz::AclAuthorizer;
use mcp_security::policy::Policy;
use mcp_security::{BuildError, SecurityLayer};

const KEY: &str = r#"
[[auth.api_keys]]
host = "bot"
key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;

fn err(toml: &str) -> String {
    match Policy::from_toml_str(toml) {
        Ok(_) => panic!("policy should be refused:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_error_names_its_key_path() {
    let cases: &[(&str, &str)] = &[
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\npriority = 1\n",
            "tools[0].priority: unknown field `priority`",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\narguments.limit = { minimum = 1 }\n",
            "tools[0].arguments.limit.minimum: unknown field `minimum`",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\narguments.limit = { type = \"float\" }\n",
            "tools[0].arguments.limit.type: must be one of",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\narguments.limit = { min = 5, max = 1 }\n",
            "tools[0].arguments.limit.min: is greater than max",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\narguments.limit = { max = nan }\n",
            "tools[0].arguments.limit.max: must be a number, not nan",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"bot\"]\narguments.q = { pattern = \"(\" }\n",
            "tools[0].arguments.q.pattern: is not a valid regular expression",
        ),
        (
            "[[tools]]\nname = \"x\"\n",
            "tools[0].allowed_hosts: must name at least one host",
        ),
        (
            "[[tools]]\nname = 3\nallowed_hosts = [\"bot\"]\n",
            "tools[0].name: invalid type",
        ),
        (
            "[[resources]]\nuri = \"file:///a/**\"\nallowed_hosts = [\"bot\"]\npermissions = [\"delete\"]\n",
            "resources[0].permissions[0]: must be \"read\", \"write\" or \"execute\"",
        ),
        (
            "[validation]\nroots = [\"srv\"]\n",
            "validation.roots[0]: must be an absolute path",
        ),
        (
            "[redaction]\ndetectors = [\"email\", \"horoscope\"]\n",
            "redaction.detectors[1]: unknown detector",
        ),
        (
            "[audit]\npath = \"a.jsonl\"\non_failure = \"shrug\"\n",
            "audit.on_failure: must be \"deny\" or \"continue\"",
        ),
        (
            "[unknown_table]\n",
            "unknown_table: unknown field `unknown_table`",
        ),
    ];
    for (body, want) in cases {
        let e = err(&format!("{KEY}{body}"));
        assert!(
            e.starts_with(want),
            "for\n{body}\nwant `{want}...`, got `{e}`"
        );
        assert!(e.contains("line ") || !e.contains("unknown field"), "{e}");
    }
}

#[test]
fn api_key_errors() {
    let e = err("[[auth.api_keys]]\nhost = \"bot\"\nkey = \"sk-live-123\"\n");
    assert!(
        e.starts_with("auth.api_keys[0].key: api keys are never stored in clear"),
        "{e}"
    );
    assert!(
        !e.contains("sk-live-123"),
        "the error echoed the secret: {e}"
    );
    let e = err("[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"abc\"\n");
    assert!(
        e.starts_with(
            "auth.api_keys[0].key_sha256: a sha-256 key hash must be 64 hexadecimal characters"
        ),
        "{e}"
    );
    let e = err(&format!("{KEY}expires = \"next tuesday\"\n"));
    assert!(
        e.starts_with("auth.api_keys[0].expires: must be an RFC 3339"),
        "{e}"
    );
    let e = err(&format!("{KEY}allowed_ips = [\"10.0.0.0/33\"]\n"));
    assert!(
        e.starts_with("auth.api_keys[0].allowed_ips[0]: must be an IP address or CIDR"),
        "{e}"
    );
    let e = err("[auth]\nanonymous = false\n");
    assert!(e.starts_with("auth: no way to authenticate"), "{e}");
    let e = err("[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\n");
    assert!(e.starts_with("auth: no way to authenticate"), "{e}");
}

#[test]
fn valid_policies_load_and_build() {
    let p = Policy::from_toml_str(&format!(
        "{KEY}expires = 2027-01-01T00:00:00Z\nallowed_ips = [\"10.0.0.0/8\", \"192.0.2.1\"]\n"
    ))
    .unwrap();
    // Without an [audit] section the policy loads, but does not build a layer.
    let e = p.build().unwrap_err().to_string();
    assert!(e.starts_with("audit: missing"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("{KEY}[audit]\npath = \"logs.jsonl\"\n")).unwrap();
    let p = Policy::load(&path).unwrap();
    assert_eq!(
        p.audit_path(),
        Some(dir.path().join("logs.jsonl").as_path())
    );
    p.build().unwrap();
    let e = Policy::from_toml_str(&format!(
        "{KEY}[audit]\npath = \"/nonexistent-dir/a.jsonl\"\n"
    ))
    .unwrap()
    .build()
    .unwrap_err();
    assert!(e.to_string().starts_with("audit.path: cannot open"), "{e}");
}

#[test]
fn builder_refuses_to_guess() {
    let acl = || AclAuthorizer::builder().build().unwrap();
    let e = SecurityLayer::builder()
        .authorizer(acl())
        .audit_sink(MemorySink::new())
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MissingAuthenticator);
    let e = SecurityLayer::builder()
        .allow_anonymous()
        .audit_sink(MemorySink::new())
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MissingAuthorizer);
    let e = SecurityLayer::builder()
        .allow_anonymous()
        .authorizer(acl())
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MissingAuditSink);
    assert!(
        SecurityLayer::builder()
            .allow_anonymous()
            .authorizer(acl())
            .audit_sink(MemorySink::new())
            .build()
            .is_ok()
    );
}

#[cfg(feature = "jwt")]
#[test]
fn jwt_audience_must_be_the_servers_canonical_uri() {
    let e = err(r#"
[server]
resource = "https://mcp.example.com/mcp"

[auth.jwt]
issuer = "https://issuer.example.com"
audience = "https://other.example.com/mcp"
jwks_url = "https://issuer.example.com/jwks.json"

[audit]
path = "audit.jsonl"
"#);
    assert!(e.starts_with("auth.jwt.audience"), "{e}");
    assert!(e.contains("server.resource"), "{e}");
}

#[test]
fn proxy_and_server_request_tables_are_checked() {
    let base = "[proxy]\nidentity = \"desktop\"\n";
    assert!(
        err(&format!("{base}keep_env = [\"HOME\"]\n"))
            .contains("proxy.keep_env[0]: is not a variable the proxy removes")
    );
    assert!(
        err(&format!("{base}max_line_bytes = 10\n"))
            .contains("proxy.max_line_bytes: must be at least 1024")
    );
    assert!(
        err(&format!("{base}max_pending = 0\n")).contains("proxy.max_pending: must be at least 1")
    );
    assert!(err("[proxy]\nidentity = \" \"\n").contains("proxy.identity: must not be empty"));
    assert!(
        err(&format!(
            "{base}[server_requests]\nallow = [\"tools/call\"]\n"
        ))
        .contains("server_requests.allow[0]: must be")
    );
    assert!(err(&format!("{base}shell = true\n")).contains("proxy.shell: unknown field"));

    // A proxy-only policy builds; its layer refuses any key, and the gate is deny by default.
    let p = Policy::from_toml_str(&format!(
        "{base}keep_env = [\"NODE_OPTIONS\"]\n[server_requests]\nallow = [\"roots/list\"]\n"
    ))
    .unwrap();
    assert_eq!(p.proxy().identity.as_deref(), Some("desktop"));
    assert!(!p.proxy().removed_env().any(|v| v == "NODE_OPTIONS"));
    assert!(p.proxy().removed_env().any(|v| v == "LD_PRELOAD"));
    assert!(p.server_requests().permits("roots/list"));
    assert!(!p.server_requests().permits("sampling/createMessage"));
    let defaults = Policy::from_toml_str(base).unwrap();
    assert!(!defaults.server_requests().permits("roots/list"));
}

//! The authorization engine through a policy file: conditions, scopes, deny rules, rate limits,
//! explanations, bad policies, and hot reload under a real rmcp client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "../examples/support/demo.rs"]
mod demo;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mcp_security::policy::{Policy, PolicyReloader};
use mcp_security::{
    Action, Credentials, DenyKind, Identity, RequestContext, SecurityLayer, Stage, Transport,
};
use rmcp::model::{CallToolRequestParams, ErrorCode};

// sha256("test") and sha256("old")
const BOT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER: &str = "cba06b5736faf67e54b07b561eae94395e774c517a7d910a54369e1263ccfbd4";

fn policy(dir: &Path) -> String {
    format!(
        r#"
[[auth.api_keys]]
host = "bot"
key_sha256 = "{BOT}"
scopes = ["reports:read"]

[[auth.api_keys]]
host = "other"
key_sha256 = "{OTHER}"

[[tools]]
name = "report"
allowed_hosts = ["bot"]
conditions = {{ hours = "08-18", weekdays = ["mon", "tue", "wed", "thu", "fri"], timezone = "Europe/Berlin", cidrs = ["10.0.0.0/8"] }}

[[tools]]
name = "scoped"
scopes = ["reports:read"]

[[tools]]
name = "files_*"
allowed_hosts = ["*"]

[[tools]]
name = "files_secret"
allowed_hosts = ["*"]
effect = "deny"

[[tools]]
name = "limited"
allowed_hosts = ["*"]
conditions = {{ rate = "2/min" }}

[audit]
path = "{}"
"#,
        dir.join("audit.jsonl").display()
    )
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cx(key: &str, when: &str, ip: &str) -> RequestContext {
    RequestContext::new(Transport::DryRun)
        .with_credentials(Credentials::api_key(key))
        .with_received_at(at(when))
        .with_peer_addr(ip.parse().unwrap())
}

async fn decide(
    layer: &SecurityLayer,
    tool: &str,
    cx: &RequestContext,
) -> Result<Option<String>, mcp_security::Denial> {
    let action = Action::CallTool {
        name: tool,
        arguments: None,
    };
    layer
        .evaluate(&action, cx, None)
        .await
        .map(|r| r.map(|r| r.to_string()))
}

// Monday 2026-07-13 10:00 in Berlin is 08:00 UTC (summer time).
const MONDAY_10_BERLIN: &str = "2026-07-13T08:00:00Z";

#[tokio::test]
async fn conditions_scopes_deny_rules_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Policy::from_toml_str(&policy(dir.path()))
        .unwrap()
        .build()
        .unwrap();
    let bot = cx("test", MONDAY_10_BERLIN, "10.1.2.3");

    assert_eq!(
        decide(&layer, "report", &bot).await.unwrap().as_deref(),
        Some("tools[0]")
    );
    let evening = cx("test", "2026-07-13T18:30:00Z", "10.1.2.3");
    let d = decide(&layer, "report", &evening).await.unwrap_err();
    assert_eq!(
        (d.stage(), d.kind(), d.reason()),
        (
            Stage::Authorization,
            DenyKind::Forbidden,
            "outside the allowed hours"
        )
    );
    let saturday = cx("test", "2026-07-11T08:00:00Z", "10.1.2.3");
    assert_eq!(
        decide(&layer, "report", &saturday)
            .await
            .unwrap_err()
            .reason(),
        "outside the allowed hours"
    );
    let outside = cx("test", MONDAY_10_BERLIN, "192.0.2.1");
    assert_eq!(
        decide(&layer, "report", &outside)
            .await
            .unwrap_err()
            .reason(),
        "not allowed from this address"
    );
    // Another host does not even see the tool.
    let other = cx("old", MONDAY_10_BERLIN, "10.1.2.3");
    assert_eq!(
        decide(&layer, "report", &other).await.unwrap_err().kind(),
        DenyKind::NotFound
    );

    // A scope grants what a host list does not.
    assert!(decide(&layer, "scoped", &bot).await.is_ok());
    assert_eq!(
        decide(&layer, "scoped", &other).await.unwrap_err().kind(),
        DenyKind::NotFound
    );

    // An explicit deny overrides the glob that allows it.
    assert!(decide(&layer, "files_list", &other).await.is_ok());
    let d = decide(&layer, "files_secret", &other).await.unwrap_err();
    assert_eq!(
        (d.kind(), d.rule().map(|r| r.as_str())),
        (DenyKind::NotFound, Some("tools[3]"))
    );

    // Two calls a minute per caller, with a retry-after; each caller has its own allowance.
    assert!(decide(&layer, "limited", &bot).await.is_ok());
    assert!(decide(&layer, "limited", &bot).await.is_ok());
    let d = decide(&layer, "limited", &bot).await.unwrap_err();
    assert_eq!(
        (d.stage(), d.kind(), d.rule().map(|r| r.as_str())),
        (Stage::RateLimit, DenyKind::RateLimited, Some("tools[4]"))
    );
    assert!(d.retry_after().unwrap() > Duration::from_secs(20));
    assert!(decide(&layer, "limited", &other).await.is_ok());
}

#[tokio::test]
async fn explanations_list_each_matching_rule() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Policy::from_toml_str(&policy(dir.path()))
        .unwrap()
        .build()
        .unwrap();
    let evening = cx("test", "2026-07-13T18:30:00Z", "10.1.2.3");
    let who = layer.identify(&evening).await.unwrap();
    let e = layer.explain(
        &who,
        &Action::CallTool {
            name: "report",
            arguments: None,
        },
        &evening,
    );
    assert!(!e.decision().is_allow());
    assert_eq!(e.rules().len(), 1);
    assert_eq!(
        (e.rules()[0].rule.as_str(), e.rules()[0].outcome),
        ("tools[0]", "outside the allowed hours")
    );

    let e = layer.explain(
        &Identity::new("anyone"),
        &Action::CallTool {
            name: "files_secret",
            arguments: None,
        },
        &evening,
    );
    let outcomes: Vec<(&str, &str)> = e
        .rules()
        .iter()
        .map(|r| (r.rule.as_str(), r.outcome))
        .collect();
    assert_eq!(outcomes, [("tools[2]", "allows"), ("tools[3]", "denies")]);
}

#[test]
fn bad_authorization_policies_name_the_key() {
    let key = format!("[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"{BOT}\"\n");
    let cases: &[(&str, &str)] = &[
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { timezone = \"Mars/Olympus\" }\n",
            "tools[0].conditions.timezone: timezone must be an IANA name",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { hours = \"9-9\" }\n",
            "tools[0].conditions.hours: hours must be",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { weekdays = [\"caturday\"] }\n",
            "tools[0].conditions.weekdays: weekdays are",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { cidrs = [\"10.0.0.0/40\"] }\n",
            "tools[0].conditions.cidrs[0]: must be an IP address or CIDR",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { rate = \"lots\" }\n",
            "tools[0].conditions.rate: a rate is written",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { burst = 5 }\n",
            "tools[0].conditions.burst: needs a rate",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\neffect = \"deny\"\nconditions = { hours = \"08-18\" }\n",
            "tools[0].conditions: conditions apply to allow rules only",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\neffect = \"maybe\"\n",
            "tools[0].effect: must be \"allow\" or \"deny\"",
        ),
        (
            "[[tools]]\nname = \"files_*\"\nallowed_hosts = [\"*\"]\narguments.path = { type = \"string\" }\n",
            "tools[0].arguments: argument constraints need an exact name",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\narguments.a = { type = \"string\" }\n[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\narguments.b = { type = \"string\" }\n",
            "tools[1].arguments: constraints for this name are already given in tools[0]",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\narguments.q = { pattern = \"[\" }\n",
            "tools[0].arguments.q.pattern: is not a valid regular expression",
        ),
        (
            "[[tools]]\nname = \"x\"\nallowed_hosts = [\"*\"]\nconditions = { rate = \"1/s\" }\n[rate_limit]\ntimeout_ms = 5\n",
            "rate_limit.timeout_ms: applies to backend = \"redis\" only",
        ),
        (
            "[rate_limit]\nbackend = \"carrier-pigeon\"\nper_caller = \"1/s\"\n",
            "rate_limit.backend: must be \"memory\" or \"redis\"",
        ),
    ];
    for (body, want) in cases {
        let e = Policy::from_toml_str(&format!("{key}{body}"))
            .expect_err(body)
            .to_string();
        assert!(
            e.starts_with(want),
            "for\n{body}\nwant `{want}...`, got `{e}`"
        );
    }
}

fn call(name: &'static str) -> CallToolRequestParams {
    CallToolRequestParams::new(name)
}

#[tokio::test]
async fn hot_reload_under_a_real_client() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let path = dir.path().join("policy.toml");
    let write = |tools: &str| {
        std::fs::write(
            &path,
            format!("[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"{BOT}\"\n{tools}\n[audit]\npath = \"{}\"\n", audit.display()),
        )
        .unwrap()
    };
    write("[[tools]]\nname = \"echo\"\nallowed_hosts = [\"bot\"]\n");
    let layer = Policy::load(&path).unwrap().build().unwrap();
    let mut reloader = PolicyReloader::new(&path, layer.clone());

    let client = demo::connect(&layer, "test").await.unwrap();
    assert!(client.call_tool(call("echo")).await.is_ok());
    assert!(client.call_tool(call("who_am_i")).await.is_err());

    // A new policy: who_am_i instead of echo. The serving connection follows it.
    write("[[tools]]\nname = \"who_am_i\"\nallowed_hosts = [\"bot\"]\n");
    // The first look sees the change, the next (the file unchanged since) applies it.
    assert!(!reloader.reload_if_changed().unwrap());
    assert!(reloader.reload_if_changed().unwrap());
    assert!(client.call_tool(call("echo")).await.is_err());
    assert_eq!(
        client.call_tool(call("who_am_i")).await.unwrap().content[0]
            .as_text()
            .unwrap()
            .text,
        "you are bot"
    );

    // A broken file is reported and the last good policy keeps serving.
    std::fs::write(
        &path,
        "[[tools]]\nname = \"echo\"\nallowed_hosts = [\"bot\"]\nunknown = 1\n",
    )
    .unwrap();
    let e = reloader.reload().unwrap_err().to_string();
    assert!(e.starts_with("tools[0].unknown: unknown field"), "{e}");
    assert!(client.call_tool(call("who_am_i")).await.is_ok());
    assert!(client.call_tool(call("echo")).await.is_err());
    assert!(
        !reloader.reload_if_changed().unwrap_or(true),
        "an unchanged broken file is not retried"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rate_limited_calls_say_when_to_retry_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let layer = Policy::from_toml_str(&policy(dir.path()))
        .unwrap()
        .build()
        .unwrap();
    let client = demo::connect(&layer, "old").await.unwrap();
    // The demo server has no `limited` tool; the handler's own error is fine, the limit is ours.
    let _ = client.call_tool(call("limited")).await;
    let _ = client.call_tool(call("limited")).await;
    match client.call_tool(call("limited")).await {
        Err(rmcp::service::ServiceError::McpError(e)) => {
            assert_eq!(e.code, ErrorCode(mcp_security::RATE_LIMITED));
            assert_eq!(e.message, "rate limit exceeded");
            assert!(e.data.unwrap()["retryAfterMs"].as_u64().unwrap() > 20_000);
        }
        other => panic!("expected a rate-limit error, got {other:?}"),
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_admitted_request_finishes_under_the_policy_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let policy = |tool: &str, audit: &str| {
        format!(
            "[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"{BOT}\"\n[[tools]]\nname = \"{tool}\"\nallowed_hosts = [\"bot\"]\n[audit]\npath = \"{}\"\n",
            dir.path().join(audit).display()
        )
    };
    let layer = Policy::from_toml_str(&policy("echo", "a.jsonl"))
        .unwrap()
        .build()
        .unwrap();
    let next = Policy::from_toml_str(&policy("other", "b.jsonl"))
        .unwrap()
        .build()
        .unwrap();
    let cx =
        RequestContext::new(Transport::InProcess).with_credentials(Credentials::api_key("test"));
    let echo = Action::CallTool {
        name: "echo",
        arguments: None,
    };

    let admitted = layer.admit(&echo, &cx, None).await.unwrap();
    layer.reload(&next);
    // New requests see the new policy at once...
    assert!(layer.admit(&echo, &cx, None).await.is_err());
    // ...while the one already admitted completes, and is audited, under the old one.
    layer
        .complete(admitted, &echo, &cx, mcp_security::Completion::ok(0))
        .await
        .unwrap();
    let old = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    assert_eq!(old.lines().count(), 1);
    assert!(
        old.contains(r#""outcome":"allow""#) && old.contains(r#""rule":"tools[0]""#),
        "{old}"
    );
    let new = std::fs::read_to_string(dir.path().join("b.jsonl")).unwrap();
    assert_eq!(new.lines().count(), 1);
    assert!(new.contains(r#""outcome":"deny""#), "{new}");
}

#[tokio::test]
async fn deny_rules_hold_however_the_uri_is_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[auth.api_keys]]\nhost = \"bot\"\nkey_sha256 = \"{BOT}\"\n\
         [[resources]]\nuri = \"file:///srv/**\"\nallowed_hosts = [\"*\"]\n\
         [[resources]]\nuri = \"file:///srv/secret.txt\"\nallowed_hosts = [\"*\"]\neffect = \"deny\"\n\
         [[resources]]\nuri = \"file:///srv/**/private/*\"\nallowed_hosts = [\"*\"]\neffect = \"deny\"\n\
         [validation]\nroots = [\"/srv\"]\nschemes = [\"file\"]\n[audit]\npath = \"{}\"\n",
        dir.path().join("a.jsonl").display()
    );
    let layer = Policy::from_toml_str(&toml).unwrap().build().unwrap();
    let cx = RequestContext::new(Transport::DryRun).with_credentials(Credentials::api_key("test"));
    let read = |uri: &'static str| {
        let layer = layer.clone();
        let cx = cx.clone();
        async move {
            layer
                .evaluate(&Action::ReadResource { uri }, &cx, None)
                .await
        }
    };
    assert!(read("file:///srv/public.txt").await.is_ok());
    for uri in [
        "file:///srv/secret.txt",
        "file:///srv/secret.txt?x=1",
        "file:///srv/secret.txt#f",
        "file:///srv/secret.txt/",
        "file:///srv/secret.txt;v=1",
        "file:///srv/%73ecret.txt",
        "file:///srv/private/x",
        "file:///srv/a/private/x",
    ] {
        assert!(read(uri).await.is_err(), "{uri} got past the deny rule");
    }
}

#[tokio::test]
async fn a_rate_limit_follows_its_rule_and_reveals_nothing_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[auth.api_keys]]\nhost = \"free\"\nkey_sha256 = \"{BOT}\"\n\
         [[auth.api_keys]]\nhost = \"premium\"\nkey_sha256 = \"{OTHER}\"\n\
         [[tools]]\nname = \"search\"\nallowed_hosts = [\"free\"]\nconditions = {{ rate = \"1/min\" }}\n\
         [[tools]]\nname = \"search\"\nallowed_hosts = [\"premium\"]\n\
         [[tools]]\nname = \"admin_only\"\nallowed_hosts = [\"admin\"]\nconditions = {{ rate = \"1/min\" }}\n\
         [audit]\npath = \"{}\"\n",
        dir.path().join("a.jsonl").display()
    );
    let layer = Policy::from_toml_str(&toml).unwrap().build().unwrap();
    let free =
        RequestContext::new(Transport::DryRun).with_credentials(Credentials::api_key("test"));
    let premium =
        RequestContext::new(Transport::DryRun).with_credentials(Credentials::api_key("old"));
    let search = Action::CallTool {
        name: "search",
        arguments: None,
    };
    assert!(layer.evaluate(&search, &free, None).await.is_ok());
    assert_eq!(
        layer
            .evaluate(&search, &free, None)
            .await
            .unwrap_err()
            .kind(),
        DenyKind::RateLimited
    );
    // The free tier's limit is not premium's.
    for _ in 0..3 {
        assert!(layer.evaluate(&search, &premium, None).await.is_ok());
    }
    // A hidden tool stays hidden however often it is called: no limit ever shows.
    let admin = Action::CallTool {
        name: "admin_only",
        arguments: None,
    };
    for _ in 0..3 {
        assert_eq!(
            layer
                .evaluate(&admin, &free, None)
                .await
                .unwrap_err()
                .reason(),
            "tool not found"
        );
    }
}

#[test]
fn clearance_for_an_unknown_host_is_refused() {
    let toml = format!(
        "[[auth.api_keys]]\nhost = \"premium\"\nkey_sha256 = \"{BOT}\"\n\
         [redaction]\ndetectors = [\"all\"]\n[[redaction.clearance]]\nhost = \"premuim\"\nlevel = \"public\"\n"
    );
    let e = Policy::from_toml_str(&toml).unwrap_err().to_string();
    assert!(
        e.starts_with("redaction.clearance[0].host: names no host"),
        "{e}"
    );
    let e = Policy::from_toml_str(&format!(
        "[[auth.api_keys]]\nhost = \"x\"\nkey_sha256 = \"{BOT}\"\n[rate_limit]\nburst = 5\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("rate_limit.burst: needs rate_limit.per_caller"),
        "{e}"
    );
}

//! Rate limits shared by two replicas through a real redis-server started by the test.

#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use mcp_security::policy::Policy;
use mcp_security::{
    Action, Credentials, DenyKind, RequestContext, SecurityLayer, Stage, Transport,
};

const BOT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn replica(
    url: &str,
    prefix: &str,
    on_failure: &str,
    dir: &std::path::Path,
    n: u32,
) -> SecurityLayer {
    let toml = format!(
        r#"
[[auth.api_keys]]
host = "bot"
key_sha256 = "{BOT}"

[[tools]]
name = "search"
allowed_hosts = ["*"]
conditions = {{ rate = "3/min" }}

[rate_limit]
backend = "redis"
redis_url = "{url}"
key_prefix = "{prefix}"
on_failure = "{on_failure}"
timeout_ms = 200

[audit]
path = "{}"
"#,
        dir.join(format!("audit-{n}.jsonl")).display()
    );
    Policy::from_toml_str(&toml).unwrap().build().unwrap()
}

async fn search(layer: &SecurityLayer) -> Result<(), mcp_security::Denial> {
    let cx =
        RequestContext::new(Transport::InProcess).with_credentials(Credentials::api_key("test"));
    layer
        .evaluate(
            &Action::CallTool {
                name: "search",
                arguments: None,
            },
            &cx,
            None,
        )
        .await
        .map(|_| ())
}

#[tokio::test]
async fn two_replicas_share_one_limit_and_fail_closed_without_redis() {
    let Some(mut redis) = external::Redis::start() else {
        return external::skip(
            "two_replicas_share_one_limit",
            "redis-server is not installed",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test-{}", std::process::id());
    let a = replica(&redis.url(), &prefix, "deny", dir.path(), 1);
    let b = replica(&redis.url(), &prefix, "deny", dir.path(), 2);
    let open = replica(
        &redis.url(),
        &format!("{prefix}-open"),
        "allow",
        dir.path(),
        3,
    );

    // Three a minute, across both replicas.
    assert!(search(&a).await.is_ok());
    assert!(search(&b).await.is_ok());
    assert!(search(&a).await.is_ok());
    let d = search(&b).await.unwrap_err();
    assert_eq!(
        (d.stage(), d.kind()),
        (Stage::RateLimit, DenyKind::RateLimited)
    );
    let wait = d.retry_after().unwrap();
    assert!(
        wait > std::time::Duration::from_secs(10) && wait <= std::time::Duration::from_secs(20),
        "{wait:?}"
    );
    assert!(search(&a).await.is_err());
    assert!(search(&open).await.is_ok());

    // Redis goes away: the default refuses, the fail-open replica lets calls through.
    redis.stop();
    let d = search(&a).await.unwrap_err();
    assert_eq!(
        (d.stage(), d.kind(), d.reason()),
        (
            Stage::RateLimit,
            DenyKind::Unavailable,
            "rate limiter unavailable"
        )
    );
    assert!(search(&open).await.is_ok());
    // The refusal is audited with what failed.
    let log = std::fs::read_to_string(dir.path().join("audit-1.jsonl")).unwrap();
    assert!(
        log.lines().last().unwrap().contains("redis unreachable"),
        "{log}"
    );
}

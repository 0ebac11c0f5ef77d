//! Rate limits shared by replicas through Redis: one atomic GCRA round trip per check.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{RateLimitError, RateLimiter, RateRule, RuleIndex};
use crate::context::{Identity, RequestContext};
use crate::decision::RuleId;
use crate::glob::GlobError;
use crate::message::Action;

/// GCRA in one script, on the Redis server's clock so every replica shares one time line.
/// KEYS[1]: the (rule, caller) key. ARGV[1]: emission interval in µs. ARGV[2]: burst tolerance
/// in µs, (burst - 1) × interval. Returns {1, 0} when allowed, {0, µs to wait} when not.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// What a check does when Redis cannot answer (down, slow past the timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RedisFailureMode {
    /// Refuse the request (fail closed). The default.
    #[default]
    Deny,
    /// Let the request through unlimited (fail open) while Redis is unreachable.
    Allow,
}

/// Rate limits in Redis, shared by every replica that points at the same server and prefix.
///
/// Each check is one `EVALSHA` of a GCRA script, atomic on the server; keys expire when their
/// allowance is full again. The connection is made on first use and re-made after failures;
/// a check that fails or takes longer than the timeout follows the [`RedisFailureMode`].
pub struct RedisRateLimiter {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    index: RuleIndex<()>,
    prefix: Arc<str>,
    script: redis::Script,
    on_failure: RedisFailureMode,
    timeout: Duration,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's URL can hold a password: it is not printed.
        f.debug_struct("RedisRateLimiter")
            .field("rules", &self.index)
            .field("prefix", &self.prefix)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The Redis limiter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The URL is not a Redis URL.
    #[error("not a valid redis url")]
    Url,
    /// A rule's pattern does not compile.
    #[error(transparent)]
    Pattern(#[from] GlobError),
}

impl RedisRateLimiter {
    /// A limiter for `rules` on the Redis server at `url` (`redis://127.0.0.1:6379`), with keys
    /// under `prefix`. Nothing connects until the first check.
    ///
    /// # Errors
    /// [`RedisSetupError`] for a bad URL or pattern.
    pub fn new(
        url: &str,
        rules: impl IntoIterator<Item = RateRule>,
        prefix: &str,
        on_failure: RedisFailureMode,
        timeout: Duration,
    ) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(url).map_err(|_| RedisSetupError::Url)?;
        Ok(RedisRateLimiter {
            client,
            conn: OnceCell::new(),
            index: RuleIndex::new(rules, |_| ())?,
            prefix: prefix.into(),
            script: redis::Script::new(GCRA),
            on_failure,
            timeout,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await?;
        Ok(conn.clone())
    }

    async fn check_rule(
        &self,
        rule: &RateRule,
        subject: &str,
    ) -> Result<(i64, i64), redis::RedisError> {
        let mut conn = self.connection().await?;
        let rate = rule.rate();
        let interval = i64::try_from(rate.emission_interval().as_micros()).unwrap_or(i64::MAX);
        let tolerance = interval.saturating_mul(i64::from(rate.burst().get()) - 1);
        let key = format!("{}:{}:{}", self.prefix, rule.id(), subject);
        self.script
            .key(key)
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut conn)
            .await
    }

    fn failed(&self) -> Result<(), RateLimitError> {
        match self.on_failure {
            RedisFailureMode::Deny => Err(RateLimitError::Unavailable("redis unreachable")),
            RedisFailureMode::Allow => Ok(()),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
        _cx: &RequestContext,
    ) -> Result<(), RateLimitError> {
        let mut rules: Vec<&RateRule> = Vec::new();
        // try_each is synchronous; collect the applicable rules, then do the round trips.
        let _ = self.index.try_each::<()>(action, allowed_by, |rule, ()| {
            rules.push(rule);
            Ok(())
        });
        for rule in rules {
            match tokio::time::timeout(self.timeout, self.check_rule(rule, identity.subject()))
                .await
            {
                Ok(Ok((1, _))) => {}
                Ok(Ok((_, wait_us))) => {
                    return Err(RateLimitError::Limited {
                        retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
                        rule: rule.id().clone(),
                    });
                }
                Ok(Err(_)) | Err(_) => self.failed()?,
            }
        }
        Ok(())
    }
}

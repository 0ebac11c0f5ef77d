//! In-process rate limits: GCRA per (rule, caller), on a sharded concurrent map.

use std::sync::Arc;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};

use super::{RateLimitError, RateLimiter, RateRule, RuleIndex};
use crate::context::{Identity, RequestContext};
use crate::decision::RuleId;
use crate::glob::GlobError;
use crate::message::Action;

type Keyed = Gcra<Arc<str>, DefaultKeyedStateStore<Arc<str>>, DefaultClock>;

/// Rate limits for one process.
///
/// Each rule has its own GCRA limiter keyed by the caller's subject, on governor's sharded
/// (dashmap) store: a check is a hash, a shard lookup and one compare-and-swap, with no lock
/// shared by all requests. The subject key is the identity's own shared string, so a check
/// allocates nothing once the caller has been seen.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    index: RuleIndex<Keyed>,
    clock: DefaultClock,
}

impl MemoryRateLimiter {
    /// A limiter enforcing `rules`.
    ///
    /// # Errors
    /// [`GlobError`] for a target pattern that does not compile.
    pub fn new(rules: impl IntoIterator<Item = RateRule>) -> Result<Self, GlobError> {
        let clock = DefaultClock::default();
        let index = RuleIndex::new(rules, |rule| {
            let rate = rule.rate();
            let quota = Quota::with_period(rate.emission_interval())
                .unwrap_or_else(|| Quota::per_second(rate.burst()))
                .allow_burst(rate.burst());
            Gcra::dashmap_with_clock(quota, clock.clone())
        })?;
        Ok(MemoryRateLimiter { index, clock })
    }

    /// Checks without awaiting: the in-memory check never waits.
    ///
    /// # Errors
    /// [`RateLimitError::Limited`] when over a limit.
    pub fn check_now(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
    ) -> Result<(), RateLimitError> {
        let key = identity.subject_shared();
        self.index.try_each(action, allowed_by, |rule, limiter| {
            limiter
                .check_key(key)
                .map_err(|not_until| RateLimitError::Limited {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    rule: rule.id().clone(),
                })
        })
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
        _cx: &RequestContext,
    ) -> Result<(), RateLimitError> {
        self.check_now(identity, action, allowed_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{Rate, Target};

    #[test]
    fn per_caller_per_rule_with_retry_after() {
        let rate: Rate = "3/min".parse().unwrap_or_else(|e| unreachable!("{e}"));
        let limiter = MemoryRateLimiter::new([
            RateRule::new("tools[0]", Target::Tool("search".into()), rate),
            RateRule::new(
                "tools[1]",
                Target::Tool("files_*".into()),
                rate.with_burst(std::num::NonZeroU32::MIN),
            ),
        ])
        .unwrap_or_else(|e| unreachable!("{e}"));
        let a = Identity::new("a");
        let b = Identity::new("b");
        let search = Action::CallTool {
            name: "search",
            arguments: None,
        };
        for _ in 0..3 {
            assert!(limiter.check_now(&a, &search, None).is_ok());
        }
        match limiter.check_now(&a, &search, None) {
            Err(RateLimitError::Limited { retry_after, rule }) => {
                assert_eq!(rule.as_str(), "tools[0]");
                assert!(
                    retry_after > std::time::Duration::from_secs(15),
                    "{retry_after:?}"
                );
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        // Another caller has its own allowance; another tool is not limited.
        assert!(limiter.check_now(&b, &search, None).is_ok());
        assert!(
            limiter
                .check_now(
                    &a,
                    &Action::CallTool {
                        name: "echo",
                        arguments: None
                    },
                    None
                )
                .is_ok()
        );
        // Globs apply too, with their own burst.
        let files = Action::CallTool {
            name: "files_read",
            arguments: None,
        };
        assert!(limiter.check_now(&a, &files, None).is_ok());
        assert!(limiter.check_now(&a, &files, None).is_err());
    }
}

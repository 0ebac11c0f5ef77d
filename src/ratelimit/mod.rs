//! Rate limiting: how often may this identity do this? The [`RateLimiter`] trait and its
//! built-ins.
//!
//! A limit is a GCRA quota (`60/min` with a burst) per (identity, rule): each rule with a
//! `rate` condition in the policy has its own limit, and each caller its own allowance under it.
//! The layer checks limits after authorization, with the rule that allowed the call, so a
//! limit applies only to the callers its rule applies to, and a refused or hidden call never
//! reveals a limit. A refusal says when to
//! retry. [`MemoryRateLimiter`] serves one process without a global lock; `RedisRateLimiter`
//! (feature `redis`) shares limits between replicas.
//!
//! ```
//! use mcp_security::ratelimit::{MemoryRateLimiter, Rate, RateLimiter, RateRule, Target};
//! use mcp_security::{Action, Identity, RequestContext, Transport};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let rate: Rate = "2/min".parse()?;
//! let limiter = MemoryRateLimiter::new([RateRule::new("tools[0]", Target::Tool("search".into()), rate)])?;
//! let (who, cx) = (Identity::new("bot"), RequestContext::new(Transport::Stdio));
//! let call = Action::CallTool { name: "search", arguments: None };
//! assert!(limiter.check(&who, &call, None, &cx).await.is_ok());
//! assert!(limiter.check(&who, &call, None, &cx).await.is_ok());
//! assert!(limiter.check(&who, &call, None, &cx).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;

pub use memory::MemoryRateLimiter;
#[cfg(feature = "redis")]
pub use redis::{RedisFailureMode, RedisRateLimiter, RedisSetupError};

use std::fmt::{self, Debug};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::context::{Identity, RequestContext};
use crate::decision::RuleId;
use crate::message::Action;

/// A rate: `count` operations per `period`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
}

/// A rate that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate is written N/s, N/min, N/hour or N/day with N from 1 to 4294967295")]
pub struct RateParseError;

impl FromStr for Rate {
    type Err = RateParseError;

    /// Reads `"60/min"` (also `s`, `sec`, `second`, `m`, `minute`, `h`, `hour`, `d`, `day`).
    /// The burst defaults to the count.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) = s.trim().split_once('/').ok_or(RateParseError)?;
        let count: NonZeroU32 = n.trim().parse().map_err(|_| RateParseError)?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(RateParseError),
        };
        Ok(Rate {
            count,
            period: Duration::from_secs(secs),
            burst: count,
        })
    }
}

impl Rate {
    /// `count` per `period`, burst `count`.
    pub fn new(count: NonZeroU32, period: Duration) -> Self {
        Rate {
            count,
            period,
            burst: count,
        }
    }

    /// Sets how many operations may come at once.
    pub fn with_burst(mut self, burst: NonZeroU32) -> Self {
        self.burst = burst;
        self
    }

    /// The time one operation's allowance takes to come back.
    pub fn emission_interval(&self) -> Duration {
        self.period / self.count.get()
    }

    /// The burst.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }
}

/// What a rate rule applies to: a tool, prompt or resource name (globs allowed, as in the ACL),
/// or every request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// `tools/call` of a tool whose name matches.
    Tool(String),
    /// `prompts/get` of a prompt whose name matches.
    Prompt(String),
    /// `resources/read` or subscription of a URI that matches.
    Resource(String),
    /// Every call that the named authorization rule allowed (`conditions.rate` on a rule): the
    /// limit then follows the rule's hosts, scopes and conditions exactly.
    Rule(RuleId),
    /// Every request.
    Any,
}

/// One limit: a rule id, what it applies to, and the rate per caller.
#[derive(Debug, Clone)]
pub struct RateRule {
    id: RuleId,
    target: Target,
    rate: Rate,
}

impl RateRule {
    /// A limit of `rate` per caller on `target`, reported as rule `id`.
    pub fn new(id: impl Into<Arc<str>>, target: Target, rate: Rate) -> Self {
        RateRule {
            id: RuleId::new(id),
            target,
            rate,
        }
    }

    /// The rule id.
    pub fn id(&self) -> &RuleId {
        &self.id
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }
}

/// Why a check refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Over the limit; retry after the given time.
    #[error("rate limit exceeded; retry after {} ms", retry_after.as_millis())]
    Limited {
        /// When the next call would be allowed.
        retry_after: Duration,
        /// The rule that limited.
        rule: RuleId,
    },
    /// The limiter could not decide (its store is unreachable) and fails closed.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(&'static str),
}

/// Checks (and counts) one operation against the limits that apply to it.
///
/// Async because a shared store (Redis) is a network round trip away.
#[async_trait]
pub trait RateLimiter: Debug + Send + Sync {
    /// Counts `action` by `identity`, or refuses it.
    ///
    /// # Errors
    /// [`RateLimitError::Limited`] when over a limit, [`RateLimitError::Unavailable`] when the
    /// limiter cannot decide and fails closed.
    async fn check(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
        cx: &RequestContext,
    ) -> Result<(), RateLimitError>;
}

#[async_trait]
impl<T: RateLimiter + ?Sized> RateLimiter for Arc<T> {
    async fn check(
        &self,
        identity: &Identity,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
        cx: &RequestContext,
    ) -> Result<(), RateLimitError> {
        (**self).check(identity, action, allowed_by, cx).await
    }
}

/// The rules of a limiter, indexed so a check touches only the rules for its target.
pub(crate) struct RuleIndex<L> {
    exact_tools: std::collections::HashMap<String, Vec<usize>>,
    exact_prompts: std::collections::HashMap<String, Vec<usize>>,
    /// Rules that follow an authorization rule, by its id.
    by_rule: std::collections::HashMap<String, Vec<usize>>,
    /// Rules with globs, resources, and `Any`: checked by matching.
    scanned: Vec<usize>,
    pub(crate) rules: Vec<(RateRule, crate::glob::Glob, L)>,
}

impl<L> Debug for RuleIndex<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleIndex")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl<L> RuleIndex<L> {
    pub(crate) fn new(
        rules: impl IntoIterator<Item = RateRule>,
        mut make: impl FnMut(&RateRule) -> L,
    ) -> Result<Self, crate::glob::GlobError> {
        let mut index = RuleIndex {
            exact_tools: Default::default(),
            exact_prompts: Default::default(),
            by_rule: Default::default(),
            scanned: Vec::new(),
            rules: Vec::new(),
        };
        for rule in rules {
            let i = index.rules.len();
            let pattern = match &rule.target {
                Target::Tool(p) | Target::Prompt(p) | Target::Resource(p) => p.as_str(),
                Target::Any => "**",
                Target::Rule(_) => "**",
            };
            let glob = crate::glob::Glob::new(pattern)?;
            match (&rule.target, glob.is_literal()) {
                (Target::Rule(id), _) => index
                    .by_rule
                    .entry(id.as_str().to_owned())
                    .or_default()
                    .push(i),
                (Target::Tool(name), true) => {
                    index.exact_tools.entry(name.clone()).or_default().push(i)
                }
                (Target::Prompt(name), true) => {
                    index.exact_prompts.entry(name.clone()).or_default().push(i)
                }
                _ => index.scanned.push(i),
            }
            let limiter = make(&rule);
            index.rules.push((rule, glob, limiter));
        }
        Ok(index)
    }

    /// Calls `f` on every rule that applies to `action` (exact names first, then patterns),
    /// stopping at the first error. Allocates nothing.
    pub(crate) fn try_each<'s, E>(
        &'s self,
        action: &Action<'_>,
        allowed_by: Option<&RuleId>,
        mut f: impl FnMut(&'s RateRule, &'s L) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(rule) = allowed_by {
            for &i in self
                .by_rule
                .get(rule.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some((rate, _, limiter)) = self.rules.get(i) {
                    f(rate, limiter)?;
                }
            }
        }
        let (exact, name) = match *action {
            Action::CallTool { name, .. } => (self.exact_tools.get(name), Some(name)),
            Action::GetPrompt { name, .. } => (self.exact_prompts.get(name), Some(name)),
            Action::ReadResource { uri } | Action::SubscribeResource { uri, .. } => {
                (None, Some(uri))
            }
            _ => (None, None),
        };
        for &i in exact.map(Vec::as_slice).unwrap_or_default() {
            if let Some((rule, _, limiter)) = self.rules.get(i) {
                f(rule, limiter)?;
            }
        }
        let kind = action_kind(action);
        for &i in &self.scanned {
            let Some((rule, glob, limiter)) = self.rules.get(i) else {
                continue;
            };
            let hit = match (&rule.target, kind, name) {
                (Target::Any, _, _) => true,
                (Target::Rule(_), _, _) => false,
                (Target::Tool(_), Kind::Tool, Some(n))
                | (Target::Prompt(_), Kind::Prompt, Some(n))
                | (Target::Resource(_), Kind::Resource, Some(n)) => glob.matches(n),
                _ => false,
            };
            if hit {
                f(rule, limiter)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tool,
    Prompt,
    Resource,
    Other,
}

fn action_kind(action: &Action<'_>) -> Kind {
    match action {
        Action::CallTool { .. } => Kind::Tool,
        Action::GetPrompt { .. } => Kind::Prompt,
        Action::ReadResource { .. } | Action::SubscribeResource { .. } => Kind::Resource,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let r: Rate = "60/min".parse().unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(r.emission_interval(), Duration::from_secs(1));
        assert_eq!(r.burst().get(), 60);
        assert!("0/min".parse::<Rate>().is_err());
        assert!("10/fortnight".parse::<Rate>().is_err());
        assert!("ten/min".parse::<Rate>().is_err());
        assert_eq!(
            "5/s".parse::<Rate>().map(|r| r.emission_interval()),
            Ok(Duration::from_millis(200))
        );
    }
}

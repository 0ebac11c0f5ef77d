//! Authorization and rate limiting: decision cost against policy size, the in-memory rate-limit
//! check alone and under two-thread contention, and the Redis check on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

#[path = "../tests/support/external.rs"]
mod external;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcp_security::authz::{AclAuthorizer, Authorizer, HostSet, ToolRule};
use mcp_security::ratelimit::{MemoryRateLimiter, Rate, RateLimiter, RateRule, Target};
use mcp_security::{Action, Identity, RequestContext, Transport};

fn acl(rules: usize) -> AclAuthorizer {
    let mut b = AclAuthorizer::builder();
    for i in 0..rules {
        b = b.tool(ToolRule::new(
            format!("tool_{i}"),
            HostSet::only([format!("host_{}", i % 50)]),
        ));
    }
    // A few globs, as real policies have.
    b = b
        .tool(ToolRule::new("files_*", HostSet::Any))
        .tool(ToolRule::new("admin_*", HostSet::only(["admin"])));
    b.build().unwrap()
}

fn authorize(c: &mut Criterion) {
    let mut g = c.benchmark_group("authorize");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let cx = RequestContext::new(Transport::Stdio);
    for n in [10usize, 1_000, 100_000] {
        let acl = acl(n);
        let last = format!("tool_{}", n - 1);
        let who = Identity::new(format!("host_{}", (n - 1) % 50));
        g.bench_with_input(BenchmarkId::new("allow_exact_name", n), &n, |b, _| {
            b.iter(|| {
                black_box(acl.authorize(
                    &who,
                    &Action::CallTool {
                        name: black_box(&last),
                        arguments: None,
                    },
                    &cx,
                ))
            })
        });
        g.bench_with_input(BenchmarkId::new("deny_unknown_tool", n), &n, |b, _| {
            b.iter(|| {
                black_box(acl.authorize(
                    &who,
                    &Action::CallTool {
                        name: black_box("no_such_tool"),
                        arguments: None,
                    },
                    &cx,
                ))
            })
        });
    }
    g.finish();
}

fn rate_limits(c: &mut Criterion) {
    let rate: Rate = "1000000000/s".parse().unwrap();
    let limiter = Arc::new(
        MemoryRateLimiter::new([RateRule::new(
            "tools[0]",
            Target::Tool("search".into()),
            rate,
        )])
        .unwrap(),
    );
    let who = Identity::new("bot");
    let call = Action::CallTool {
        name: "search",
        arguments: None,
    };
    let mut g = c.benchmark_group("rate_limit_memory");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("check_one_thread", |b| {
        b.iter(|| black_box(limiter.check_now(&who, &call, None)))
    });
    // Two threads on the same limiter: wall time per check, same caller (one hot key) and
    // different callers (different shards).
    for (name, same) in [
        ("check_two_threads_same_caller", true),
        ("check_two_threads_two_callers", false),
    ] {
        let limiter = limiter.clone();
        g.bench_function(name, move |b| {
            b.iter_custom(|iters| {
                let per = (iters / 2).max(1);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let limiter = limiter.clone();
                        s.spawn(move || {
                            let who = Identity::new(if same || t == 0 { "bot" } else { "other" });
                            let call = Action::CallTool {
                                name: "search",
                                arguments: None,
                            };
                            for _ in 0..per {
                                black_box(limiter.check_now(&who, &call, None)).ok();
                            }
                        });
                    }
                });
                // Wall time for 2 × per checks, scaled to `iters`: the time per check with both
                // threads running (perfect scaling would halve the one-thread figure).
                Duration::from_secs_f64(
                    start.elapsed().as_secs_f64() * iters as f64 / (2 * per) as f64,
                )
            })
        });
    }
    g.finish();
}

fn redis(c: &mut Criterion) {
    let Some(server) = external::Redis::start() else {
        eprintln!("\n*** SKIPPED rate_limit_redis: redis-server is not installed ***\n");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate: Rate = "1000000000/s".parse().unwrap();
    let limiter = mcp_security::ratelimit::RedisRateLimiter::new(
        &server.url(),
        [RateRule::new(
            "tools[0]",
            Target::Tool("search".into()),
            rate,
        )],
        "bench",
        mcp_security::ratelimit::RedisFailureMode::Deny,
        Duration::from_secs(1),
    )
    .unwrap();
    let who = Identity::new("bot");
    let cx = RequestContext::new(Transport::Stdio);
    let call = Action::CallTool {
        name: "search",
        arguments: None,
    };
    rt.block_on(limiter.check(&who, &call, None, &cx)).unwrap();
    let mut g = c.benchmark_group("rate_limit_redis");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("check_loopback", |b| {
        b.to_async(&rt)
            .iter(|| async { limiter.check(&who, &call, None, &cx).await.unwrap() })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, authorize, rate_limits, redis);
criterion_main!(benches);

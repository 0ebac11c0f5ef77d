//! What `HttpSecurityLayer` adds to one HTTP request, in process (no sockets): the same request
//! through a trivial inner service alone and through the layer, in the same run.
//!
//! The layer's allow path: Host and Origin checks, bearer extraction, API-key authentication
//! (SHA-256 of the token, constant-time scan), the required-scope check, reading the body into
//! one buffer, removing `Authorization` and inserting the identity. Refusals also write an audit
//! record (encoded and written to /dev/null here, so millions of them do not grow a file).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark harness"
)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use mcp_security::SecurityLayer;
use mcp_security::adapters::http::{HttpConfig, HttpSecurityLayer};
use mcp_security::audit::JsonLinesSink;
use mcp_security::authn::{ApiKeyAuthenticator, ApiKeyEntry};
use mcp_security::authz::AclAuthorizer;
use tower_layer::Layer;
use tower_service::Service;

/// Answers 200 with an empty body: the cost of everything but the layer.
#[derive(Clone)]
struct Ok200;

impl Service<Request<Full<Bytes>>> for Ok200 {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        std::hint::black_box(&req);
        ready(Ok(Response::new(Full::new(Bytes::new()))))
    }
}

const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;

fn request(token: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys: Vec<ApiKeyEntry> = (0..4)
        .map(|i| {
            ApiKeyEntry::from_key(&format!("host-{i}"), &format!("key-{i}"))
                .with_scopes(["mcp:tools"])
        })
        .collect();
    let security = SecurityLayer::builder()
        .authenticator(ApiKeyAuthenticator::new(keys))
        .authorizer(AclAuthorizer::builder().build().unwrap())
        .audit_sink(JsonLinesSink::open("/dev/null").unwrap())
        .build()
        .unwrap();
    let config = HttpConfig::new()
        .with_resource("http://127.0.0.1:8080/mcp")
        .unwrap()
        .with_required_scopes(["mcp:tools"])
        .unwrap();
    let layered = HttpSecurityLayer::new(config, security).layer(Ok200);

    let mut g = c.benchmark_group("http_layer");
    g.bench_function("inner service alone", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = Ok200;
            async move { s.call(request(Some("key-3"))).await.unwrap() }
        })
    });
    g.bench_function("layer, allowed (bearer API key, scope)", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = layered.clone();
            async move {
                let r = s.call(request(Some("key-3"))).await.unwrap();
                assert_eq!(r.status(), 200);
                r
            }
        })
    });
    g.bench_function("layer, refused 401 (no token, audited)", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = layered.clone();
            async move {
                let r = s.call(request(None)).await.unwrap();
                assert_eq!(r.status(), 401);
                r
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

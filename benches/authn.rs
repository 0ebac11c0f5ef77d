//! Authentication costs: an API-key check (1, 4 and 100 stored keys), a JWT verified cold
//! (RS256, ES256, EdDSA: signature and claims checked) beside `jsonwebtoken::decode` (its
//! pure-Rust backend) on the same token in the same run, and a JWT answered warm from the
//! verified-token cache beside the SHA-256 of the token alone.
//!
//! Every authenticator future here completes without waiting (no I/O on these paths), so each
//! is polled once with a no-op waker instead of going through a runtime.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark harness"
)]

#[path = "../tests/support/jwt.rs"]
mod support;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, Validation};
use mcp_security::authn::{
    ApiKeyAuthenticator, ApiKeyEntry, Authenticator, JwksSource, JwtAuthenticator, JwtConfig,
};
use mcp_security::{Credentials, RequestContext, Transport};
use ring::signature;
use sha2::Digest;
use support::*;

/// Polls a future that must be ready at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("benchmarked path waited"),
    }
}

fn api_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("authn/api_key");
    for n in [1usize, 4, 100] {
        let auth = ApiKeyAuthenticator::new(
            (0..n).map(|i| ApiKeyEntry::from_key(&format!("host-{i}"), &format!("key-{i:04}"))),
        );
        // The last key: the scan is constant-time anyway, so the position does not matter.
        let cx = RequestContext::new(Transport::Http)
            .with_credentials(Credentials::api_key(format!("key-{:04}", n - 1)));
        g.bench_function(format!("{n} keys, valid"), |b| {
            b.iter(|| ready(auth.authenticate(black_box(&cx))).unwrap())
        });
    }
    g.finish();
}

fn jwt(c: &mut Criterion) {
    let rsa = rsa_key("rsa-1");
    let ec = p256_key("ec-1");
    let ed = ed25519_key("ed-1");
    let set = jwks(&[&rsa, &ec, &ed]);

    let mut g = c.benchmark_group("authn/jwt");
    for key in [&rsa, &ec, &ed] {
        let name = format!("{:?}", key.alg);
        // Cold: a one-entry cache already holding another live token, so every verification
        // misses and its insert is refused (the cost of a full cache is included).
        let cold = JwtAuthenticator::new(
            JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Inline(set.clone()))
                .with_cache_capacity(1),
        )
        .unwrap();
        let filler = RequestContext::new(Transport::Http)
            .with_credentials(Credentials::bearer(sign(key, &claims("filler"))));
        ready(cold.authenticate(&filler)).unwrap();
        let token = sign(key, &claims("analytics-bot"));
        let cx = RequestContext::new(Transport::Http)
            .with_credentials(Credentials::bearer(token.as_str()));
        g.bench_function(format!("cold {name} ({} B token)", token.len()), |b| {
            b.iter(|| ready(cold.authenticate(black_box(&cx))).unwrap())
        });
        assert_eq!(cold.cached_tokens(), 1);

        // The library alone, same key and token, same checks: what our cold path adds.
        let decoding =
            DecodingKey::from_jwk(&serde_json::from_value(key.jwk.clone()).unwrap()).unwrap();
        let mut v = Validation::new(key.alg);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.validate_nbf = true;
        g.bench_function(format!("jsonwebtoken::decode {name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &v).unwrap()
            })
        });

        // The signature check alone (ring), on the same token: the floor of the cold path.
        let (message, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let jwk = &key.jwk;
        let field = |f: &str| URL_SAFE_NO_PAD.decode(jwk[f].as_str().unwrap()).unwrap();
        let verify: Box<dyn Fn() -> bool> = match key.alg {
            jsonwebtoken::Algorithm::RS256 => {
                let (n, e) = (field("n"), field("e"));
                Box::new(move || {
                    signature::RsaPublicKeyComponents { n: &n, e: &e }
                        .verify(
                            &signature::RSA_PKCS1_2048_8192_SHA256,
                            message.as_bytes(),
                            &sig,
                        )
                        .is_ok()
                })
            }
            jsonwebtoken::Algorithm::ES256 => {
                let mut point = vec![4u8];
                point.extend(field("x"));
                point.extend(field("y"));
                Box::new(move || {
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                        .verify(message.as_bytes(), &sig)
                        .is_ok()
                })
            }
            _ => {
                let x = field("x");
                Box::new(move || {
                    signature::UnparsedPublicKey::new(&signature::ED25519, &x)
                        .verify(message.as_bytes(), &sig)
                        .is_ok()
                })
            }
        };
        assert!(verify());
        g.bench_function(format!("signature only {name} (ring)"), |b| {
            b.iter(|| black_box(verify()))
        });

        // Warm: the same token again, answered from the cache.
        let warm = JwtAuthenticator::new(JwtConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::Inline(set.clone()),
        ))
        .unwrap();
        ready(warm.authenticate(&cx)).unwrap();
        g.bench_function(format!("warm {name} (cache hit)"), |b| {
            b.iter(|| ready(warm.authenticate(black_box(&cx))).unwrap())
        });
        assert_eq!(
            warm.signature_verifications(),
            1,
            "warm path verified again"
        );
        g.bench_function(format!("sha256 of the {name} token alone (ring)"), |b| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(token.as_bytes())))
        });
        g.bench_function(
            format!("sha256 of the {name} token alone (sha2, the cache key)"),
            |b| b.iter(|| sha2::Sha256::digest(black_box(token.as_bytes()))),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = api_keys, jwt
}
criterion_main!(benches);

//! The JWT resource server with real keys (RSA 2048, P-256, Ed25519) generated here, tokens
//! signed here, and a JWKS served over real HTTP on 127.0.0.1.

#![cfg(feature = "jwt")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/jwt.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_security::audit::MemorySink;
use mcp_security::authn::JwtAlgorithm;
use mcp_security::authn::{
    Authenticator, AuthnError, HostClaim, JwksSource, JwtAuthenticator, JwtConfig, JwtConfigError,
};
use mcp_security::policy::Policy;
use mcp_security::{Action, AuthMethod, Credentials, RequestContext, Transport};
use serde_json::json;
use support::*;

fn cx(token: &str) -> RequestContext {
    RequestContext::new(Transport::Http).with_credentials(Credentials::bearer(token))
}

fn inline(keys: &[&TestKey]) -> JwtAuthenticator {
    JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Inline(jwks(keys)))
            .with_leeway(Duration::from_secs(5)),
    )
    .unwrap()
}

#[tokio::test]
async fn valid_tokens_for_each_algorithm_give_the_identity_and_scopes() {
    let (rsa, ec, ed) = (shared_rsa(), p256_key("ec-1"), ed25519_key("ed-1"));
    let auth = inline(&[rsa, &ec, &ed]);
    for key in [rsa, &ec, &ed] {
        let id = auth
            .authenticate(&cx(&sign(key, &claims("analytics-bot"))))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(id.host(), "analytics-bot");
        assert_eq!(id.subject(), "analytics-bot");
        assert_eq!(id.method(), AuthMethod::Bearer);
        let scopes: Vec<&str> = id.scopes().collect();
        assert_eq!(scopes, ["tools:read", "tools:call", "files:read"]);
        assert!(id.expires().is_some());
    }
}

#[tokio::test]
async fn host_comes_from_the_configured_claim() {
    let ed = ed25519_key("ed-1");
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Inline(jwks(&[&ed])))
            .with_host_claim(HostClaim::AuthorizedParty),
    )
    .unwrap();
    let mut c = claims("user-42");
    c["azp"] = json!("claude-desktop");
    let id = auth.authenticate(&cx(&sign(&ed, &c))).await.unwrap();
    assert_eq!((id.host(), id.subject()), ("claude-desktop", "user-42"));
    // The configured host claim is required.
    let err = auth
        .authenticate(&cx(&sign(&ed, &claims("user-42"))))
        .await
        .unwrap_err();
    assert_eq!(err, AuthnError::MissingClaim("azp"));
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_reason() {
    let rsa = shared_rsa();
    let ed = ed25519_key("ed-1");
    let auth = inline(&[rsa, &ed]);
    let refuse = |token: String| {
        let auth = auth.clone();
        async move { auth.authenticate(&cx(&token)).await.unwrap_err() }
    };

    let mut c = claims("bot");
    c["aud"] = json!("https://evil.example.test/mcp");
    assert_eq!(refuse(sign(rsa, &c)).await, AuthnError::WrongAudience);

    let mut c = claims("bot");
    c["iss"] = json!("https://auth.example.test/"); // exact match: a trailing slash differs
    assert_eq!(refuse(sign(rsa, &c)).await, AuthnError::WrongIssuer);

    let mut c = claims("bot");
    c["exp"] = json!(now() - 60); // beyond the 5 s leeway
    assert_eq!(refuse(sign(&ed, &c)).await, AuthnError::Expired);

    let mut c = claims("bot");
    c["nbf"] = json!(now() + 60);
    assert_eq!(refuse(sign(&ed, &c)).await, AuthnError::NotYetValid);

    // Within the leeway, an nbf a little ahead is accepted.
    let mut c = claims("bot");
    c["nbf"] = json!(now() + 2);
    assert!(auth.authenticate(&cx(&sign(&ed, &c))).await.is_ok());

    for missing in ["exp", "iss", "aud"] {
        let mut c = claims("bot");
        c.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            refuse(sign(&ed, &c)).await,
            AuthnError::MissingClaim(missing),
            "{missing}"
        );
    }

    // Signed claims swapped for other claims: the signature no longer matches.
    let good = sign(rsa, &claims("bot"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
    parts[1] = &forged;
    assert_eq!(refuse(parts.join(".")).await, AuthnError::BadSignature);

    // alg: none, with and without a signature segment.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"rsa-1"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("bot").to_string());
    assert_eq!(
        refuse(format!("{header}.{body}.")).await,
        AuthnError::AlgorithmNotAllowed
    );

    // HS256 with the RSA public key (PEM) as the HMAC secret: the classic confusion attack.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let pem = rsa.public_pem.as_deref().unwrap();
    let hs = jsonwebtoken::encode(
        &h,
        &claims("bot"),
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(refuse(hs).await, AuthnError::AlgorithmNotAllowed);

    // An EdDSA token naming the RSA key: the key's algorithm must be the token's.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(&h, &claims("bot"), &ed.encoding).unwrap();
    assert_eq!(refuse(confused).await, AuthnError::AlgorithmNotAllowed);

    // A kid nobody published.
    let stranger = ed25519_key("ed-unknown");
    assert_eq!(
        refuse(sign(&stranger, &claims("bot"))).await,
        AuthnError::UnknownKey
    );

    // Oversized: refused before any parsing (this one is not even a JWT).
    assert_eq!(refuse("a".repeat(8 * 1024 + 1)).await, AuthnError::TooLarge);

    // A bad signature on an otherwise valid ES256 token (same kid, other key).
    let ec = p256_key("ec-1");
    let ec_auth = inline(&[&ec]);
    let impostor = p256_key("ec-1");
    assert_eq!(
        ec_auth
            .authenticate(&cx(&sign(&impostor, &claims("bot"))))
            .await
            .unwrap_err(),
        AuthnError::BadSignature
    );
    // `aud` as a single string, `exp` with a fraction: accepted.
    let mut c = claims("bot");
    c["aud"] = json!(AUDIENCE);
    c["exp"] = json!(now() as f64 + 600.5);
    assert!(ec_auth.authenticate(&cx(&sign(&ec, &c))).await.is_ok());

    for junk in ["", "not-a-jwt", "a.b.c", "e30.e30.", "...", "a.b.c.d"] {
        assert_eq!(refuse(junk.into()).await, AuthnError::Malformed, "{junk:?}");
    }
    assert_eq!(
        auth.authenticate(&RequestContext::new(Transport::Http))
            .await
            .unwrap_err(),
        AuthnError::Missing
    );
    // None of the refused tokens reached the cache.
    assert_eq!(auth.cached_tokens(), 1);
}

#[tokio::test]
async fn the_cache_answers_repeats_without_verifying_and_expires_at_exp() {
    let rsa = shared_rsa();
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Inline(jwks(&[rsa])))
            .with_leeway(Duration::ZERO),
    )
    .unwrap();
    let token = sign(rsa, &claims("bot"));
    let t0 = Instant::now();
    auth.authenticate(&cx(&token)).await.unwrap();
    let cold = t0.elapsed();
    assert_eq!(auth.signature_verifications(), 1);
    let t1 = Instant::now();
    for _ in 0..100 {
        assert_eq!(auth.authenticate(&cx(&token)).await.unwrap().host(), "bot");
    }
    let warm = t1.elapsed() / 100;
    assert_eq!(auth.signature_verifications(), 1, "hits must not verify");
    assert!(warm < cold, "warm {warm:?} vs cold {cold:?}");

    // A token cached until its exp is verified again (and refused) once exp has passed.
    let mut c = claims("short-lived");
    c["exp"] = json!(now() + 2);
    let short = sign(rsa, &c);
    auth.authenticate(&cx(&short)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(
        auth.authenticate(&cx(&short)).await.unwrap_err(),
        AuthnError::Expired
    );
    assert_eq!(auth.signature_verifications(), 3);
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let ed = ed25519_key("ed-1");
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Inline(jwks(&[&ed]))).with_cache_capacity(4),
    )
    .unwrap();
    for i in 0..10 {
        let t = sign(&ed, &claims(&format!("bot-{i}")));
        auth.authenticate(&cx(&t)).await.unwrap();
    }
    assert_eq!(auth.cached_tokens(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_jwks_is_fetched_and_the_new_kid_accepted() {
    let old = ed25519_key("2026-01");
    let server = JwksServer::start(jwks(&[&old])).await;
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()))
            .with_refetch_interval(Duration::from_millis(200)),
    )
    .unwrap();
    // Nothing is fetched until a token needs a key.
    assert_eq!(server.requests(), 0);
    auth.authenticate(&cx(&sign(&old, &claims("bot"))))
        .await
        .unwrap();
    assert_eq!(server.requests(), 1);

    // The issuer rotates: new key published, old one withdrawn.
    let new = p256_key("2026-02");
    server.serve(jwks(&[&new]));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let id = auth
        .authenticate(&cx(&sign(&new, &claims("bot"))))
        .await
        .unwrap();
    assert_eq!(id.host(), "bot");
    assert_eq!(server.requests(), 2);
    assert_eq!(auth.jwks_fetches(), 2);
    // Tokens of the withdrawn key are no longer accepted, not even from the cache.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        auth.authenticate(&cx(&sign(&old, &claims("bot"))))
            .await
            .unwrap_err(),
        AuthnError::UnknownKey
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_stops_verifying_once_the_key_set_is_too_old() {
    let a = ed25519_key("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()))
            .with_refetch_interval(Duration::from_millis(100))
            .with_max_key_age(Duration::from_secs(1)),
    )
    .unwrap();
    let first = sign(&a, &claims("bot"));
    auth.authenticate(&cx(&first)).await.unwrap();
    // Inside the max age, another token of a known key needs no fetch.
    auth.authenticate(&cx(&sign(&a, &claims("bot-2"))))
        .await
        .unwrap();
    assert_eq!(server.requests(), 1);
    assert_eq!(auth.cached_tokens(), 2);

    // The issuer withdraws key `a` (no unknown kid will ever ask for a refetch).
    let b = ed25519_key("b");
    server.serve(jwks(&[&b]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The next cold verification refreshes the stale set first, and `a` is gone...
    assert_eq!(
        auth.authenticate(&cx(&sign(&a, &claims("bot-3"))))
            .await
            .unwrap_err(),
        AuthnError::UnknownKey
    );
    assert_eq!(server.requests(), 2);
    // ...and so are the tokens it had cached.
    assert_eq!(auth.cached_tokens(), 0);
    assert_eq!(
        auth.authenticate(&cx(&first)).await.unwrap_err(),
        AuthnError::UnknownKey
    );
    assert!(
        auth.authenticate(&cx(&sign(&b, &claims("bot"))))
            .await
            .is_ok()
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_unknown_kids_costs_at_most_one_fetch_per_interval() {
    let known = ed25519_key("known");
    let server = JwksServer::start(jwks(&[&known])).await;
    let auth = JwtAuthenticator::new(
        JwtConfig::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()))
            .with_refetch_interval(Duration::from_secs(60)),
    )
    .unwrap();
    let strangers: Vec<String> = (0..50)
        .map(|i| sign(&ed25519_key(&format!("k{i}")), &claims("bot")))
        .collect();
    // Fifty concurrent misses before any key is known: one fetch, shared by all.
    let tasks: Vec<_> = strangers
        .iter()
        .cloned()
        .map(|t| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.authenticate(&cx(&t)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), AuthnError::UnknownKey);
    }
    assert_eq!(server.requests(), 1);
    // The shared fetch loaded the known key: no fetch needed for it.
    auth.authenticate(&cx(&sign(&known, &claims("bot"))))
        .await
        .unwrap();
    // Another burst inside the interval: no fetch at all.
    for t in &strangers {
        assert_eq!(
            auth.authenticate(&cx(t)).await.unwrap_err(),
            AuthnError::UnknownKey
        );
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(auth.jwks_fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_jwks_fails_closed() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let auth = JwtAuthenticator::new(
        JwtConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::Url(format!("http://127.0.0.1:{port}/jwks.json")),
        )
        .with_fetch_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let ed = ed25519_key("ed-1");
    // The first token triggers the fetch; the next, inside the refetch interval, does not fetch
    // again but still reports the JWKS as unavailable (not as an unknown key).
    for _ in 0..2 {
        assert!(matches!(
            auth.authenticate(&cx(&sign(&ed, &claims("bot"))))
                .await
                .unwrap_err(),
            AuthnError::Unavailable(_)
        ));
    }
    assert_eq!(auth.jwks_fetches(), 1);
    assert!(matches!(
        auth.refresh_keys().await,
        Err(AuthnError::Unavailable(_))
    ));
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    for bad in [
        "none", "None", "HS256", "HS384", "HS512", "PS256", "RS512", "ES384", "",
    ] {
        assert_eq!(JwtAlgorithm::from_name(bad), None, "{bad}");
    }
    // A URL source builds outside any runtime (Policy::load is synchronous) and fetches nothing yet.
    let url = JwtAuthenticator::new(JwtConfig::new(
        ISSUER,
        AUDIENCE,
        JwksSource::Url("https://auth.example.test/.well-known/jwks.json".into()),
    ))
    .unwrap();
    assert_eq!(url.jwks_fetches(), 0);
    let ed = ed25519_key("ed-1");
    let src = || JwksSource::Inline(jwks(&[&ed]));
    let err = |c: JwtConfig| JwtAuthenticator::new(c).unwrap_err();
    assert_eq!(
        err(JwtConfig::new("", AUDIENCE, src())),
        JwtConfigError::Empty("issuer")
    );
    assert_eq!(
        err(JwtConfig::new(ISSUER, AUDIENCE, src()).with_leeway(Duration::from_secs(301))),
        JwtConfigError::Leeway
    );
    assert_eq!(
        err(JwtConfig::new(ISSUER, AUDIENCE, src()).with_algorithms([])),
        JwtConfigError::Algorithms
    );
    assert_eq!(
        err(JwtConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::Url("http://auth.example.test/jwks".into())
        )),
        JwtConfigError::Url
    );
    assert!(matches!(
        err(JwtConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::Inline(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.into())
        )),
        JwtConfigError::Jwks(_)
    ));
}

#[tokio::test]
async fn policy_jwt_table_drives_authentication_and_scopes_reach_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let ed = ed25519_key("ed-1");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&ed])).unwrap();
    let policy = format!(
        r#"
[auth.jwt]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks_file = "jwks.json"
algorithms = ["EdDSA"]
leeway_seconds = 10

[[tools]]
name = "query_database"
scopes = ["db:query"]
"#
    );
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, &policy).unwrap();
    let p = Policy::load(&path).unwrap();
    let sink = std::sync::Arc::new(MemorySink::new());
    let layer = p
        .builder_without_audit()
        .audit_sink(sink.clone())
        .build()
        .unwrap();
    let call = Action::CallTool {
        name: "query_database",
        arguments: None,
    };
    let mut c = claims("any-client");
    c["scope"] = json!("db:query");
    assert!(
        layer
            .evaluate(&call, &cx(&sign(&ed, &c)), None)
            .await
            .is_ok()
    );
    // Authenticated, but without the scope the authorizer refuses.
    c["scope"] = json!("db:read");
    c["scp"] = json!([]);
    assert!(
        layer
            .evaluate(&call, &cx(&sign(&ed, &c)), None)
            .await
            .is_err()
    );
    // A wrong audience: the client sees "unauthenticated", the audit log the reason.
    c["aud"] = json!("https://elsewhere.example.test");
    let denial = layer
        .evaluate(&call, &cx(&sign(&ed, &c)), None)
        .await
        .unwrap_err();
    assert_eq!(
        denial.to_string(),
        "denied at authentication: unauthenticated"
    );
    let last = sink.records().pop().unwrap().to_string();
    assert!(last.contains("token audience not accepted"), "{last}");

    // Keys that cannot work are refused when the policy loads, naming the key.
    let bad = policy.replace("algorithms = [\"EdDSA\"]", "algorithms = [\"HS256\"]");
    let e = Policy::from_toml_str(&bad).unwrap_err().to_string();
    assert!(e.starts_with("auth.jwt.algorithms"), "{e}");
    let both = policy.replace(
        "jwks_file = \"jwks.json\"",
        "jwks_file = \"jwks.json\"\njwks_url = \"https://a.example.test/jwks\"",
    );
    let e = Policy::from_toml_str(&both).unwrap_err().to_string();
    assert!(e.contains("exactly one of jwks_url and jwks_file"), "{e}");
}

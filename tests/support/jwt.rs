//! Real signing keys and a real JWKS HTTP server on loopback, for the JWT tests and benches.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_core::OsRng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const ISSUER: &str = "https://auth.example.test";
pub(crate) const AUDIENCE: &str = "https://mcp.example.test/mcp";

/// A signing key and its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
    /// The public key as SPKI PEM (RSA only): the HS256 confusion attack's "secret".
    pub(crate) public_pem: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn rsa_key(kid: &str) -> TestKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let sk = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let pk = sk.to_public_key();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(sk.to_pkcs1_der().unwrap().as_bytes()),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&pk.n().to_bytes_be()), "e": b64(&pk.e().to_bytes_be())}),
        public_pem: Some(pk.to_public_key_pem(LineEnding::LF).unwrap()),
    }
}

/// One RSA key per test binary: 2048-bit generation is slow in debug builds.
pub(crate) fn shared_rsa() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_key("rsa-1"))
}

pub(crate) fn p256_key(kid: &str) -> TestKey {
    use p256::pkcs8::EncodePrivateKey;
    let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
    let point = sk.verifying_key().to_encoded_point(false);
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(sk.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
        public_pem: None,
    }
}

pub(crate) fn ed25519_key(kid: &str) -> TestKey {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
    TestKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(sk.to_pkcs8_der().unwrap().as_bytes()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": b64(&sk.verifying_key().to_bytes())}),
        public_pem: None,
    }
}

pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that pass every check, for `sub`.
pub(crate) fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": [AUDIENCE, "https://other.example.test"], "sub": sub,
        "exp": now() + 600, "iat": now(), "scope": "tools:read tools:call", "scp": ["files:read"]})
}

pub(crate) fn sign(key: &TestKey, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}

/// A JWKS document served over HTTP/1.1 on 127.0.0.1, replaceable at run time, counting the
/// requests it answers.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    pub(crate) requests: Arc<AtomicUsize>,
    body: Arc<Mutex<String>>,
}

impl JwksServer {
    pub(crate) async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new(body));
        let (count, doc) = (requests.clone(), body.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (count, doc) = (count.clone(), doc.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    assert!(req.starts_with(b"GET /jwks.json HTTP/1.1\r\n"));
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = doc.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        JwksServer {
            url,
            requests,
            body,
        }
    }

    pub(crate) fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

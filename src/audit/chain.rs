//! The hash chain's record format and the checkpoint signing keys.
//!
//! A chained log is JSON lines, one record per line, either an event or a checkpoint. The chain
//! fields come first, then the record's own fields as canonical JSON (keys in byte order, no
//! whitespace; see [`to_canonical_json`](super::to_canonical_json)):
//!
//! ```text
//! {"hash":"<64 hex>","prev":"<64 hex>","seq":7,"event_id":"...","event_type":"tool_invocation",...}
//! {"hash":"...","prev":"...","seq":8,"checkpoint":{"key_id":"<16 hex>","signature":"<128 hex>","time":"..."}}
//! ```
//!
//! `seq` counts records from 0 across rotated files; `prev` is the previous record's `hash`
//! ([`GENESIS`], 64 zeros, for the first); `hash` is `SHA-256(prev as 32 bytes || U)` where `U`
//! is the line without its `hash`: `{"prev":"<64 hex>","seq":N,` followed by the record's
//! canonical fields (`{"prev":"...","seq":N}` for a record without fields).
//! A checkpoint signs [`checkpoint_message`]: its own `seq` (the number of records before it)
//! and its `prev` (the hash of the last of them), which by the chain commits to every one.

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The `prev` of the first record of a log.
pub const GENESIS: [u8; 32] = [0; 32];

/// The domain separation prefix of a signed checkpoint.
pub const CHECKPOINT_DOMAIN: &[u8] = b"mcp-security audit checkpoint v1\n";

/// `SHA-256(prev || unhashed)`: a record's hash from the previous hash and the canonical bytes
/// of the record without its `hash` field.
pub fn chain_hash(prev: &[u8; 32], unhashed: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(unhashed);
    h.finalize().into()
}

/// The bytes a checkpoint signs: the domain, the number of records it covers (big-endian u64)
/// and the hash of the last of them.
pub fn checkpoint_message(records: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 8 + 32);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&records.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// A short id of a public key: the first 8 bytes of its SHA-256, in hex. Written into each
/// checkpoint so a verifier given the wrong key says so.
pub fn key_id(key: &VerifyingKey) -> String {
    let d = Sha256::digest(key.as_bytes());
    crate::hex::encode(d.get(..8).unwrap_or_default())
}

/// A key file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the key file: {0}")]
    Io(#[from] std::io::Error),
    /// The file holds neither a PEM key of the right kind nor 64 hex digits.
    #[error("the key file holds no ed25519 key (expected PKCS#8 / SPKI PEM, or 64 hex digits)")]
    Format,
    /// No OS randomness to generate a key from.
    #[error("no operating-system randomness to generate a key")]
    Random,
}

/// Reads an ed25519 signing key: a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`, as written
/// by [`signing_key_pem`] or `openssl genpkey -algorithm ed25519`), or the 32-byte seed as
/// 64 hex digits.
///
/// # Errors
/// [`KeyError`] when the file cannot be read or holds no such key.
pub fn read_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path)?;
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(t).map_err(|_| KeyError::Format);
    }
    crate::hex::parse_sha256(t)
        .map(|seed| SigningKey::from_bytes(&seed))
        .ok_or(KeyError::Format)
}

/// Reads an ed25519 public key: an SPKI PEM file (`-----BEGIN PUBLIC KEY-----`, as written by
/// [`verifying_key_pem`] or `openssl pkey -pubout`), or 64 hex digits.
///
/// # Errors
/// [`KeyError`] when the file cannot be read or holds no such key.
pub fn read_verifying_key(path: impl AsRef<Path>) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path)?;
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(t).map_err(|_| KeyError::Format);
    }
    crate::hex::parse_sha256(t)
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or(KeyError::Format)
}

/// A new signing key from the operating system's randomness.
///
/// # Errors
/// [`KeyError::Random`] when the OS has no randomness to give.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|_| KeyError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The key as PKCS#8 PEM, for a key file.
///
/// # Errors
/// [`KeyError::Format`] if encoding fails (it does not for a valid key).
pub fn signing_key_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.as_str().to_owned())
        .map_err(|_| KeyError::Format)
}

/// The public key as SPKI PEM, for the verifier.
///
/// # Errors
/// [`KeyError::Format`] if encoding fails (it does not for a valid key).
pub fn verifying_key_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeyError::Format)
}

/// Appends one record line, `{"hash":H,"prev":P,"seq":N,<fields of body>}` and a newline, to
/// `out`, and returns `H`. `body` must be a canonical JSON object.
pub(crate) fn record_line(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    prev: &[u8; 32],
    seq: u64,
    body: &[u8],
) -> [u8; 32] {
    let mut prev_hex = [0u8; 64];
    hex_into(prev, &mut prev_hex);
    let mut seq_buf = [0u8; 20];
    let seq_text = decimal(seq, &mut seq_buf);
    // The body's fields without its braces.
    let fields = body
        .strip_prefix(b"{")
        .and_then(|b| b.strip_suffix(b"}"))
        .unwrap_or_default();
    scratch.clear();
    scratch.extend_from_slice(b"{\"prev\":\"");
    scratch.extend_from_slice(&prev_hex);
    scratch.extend_from_slice(b"\",\"seq\":");
    scratch.extend_from_slice(seq_text);
    if !fields.is_empty() {
        scratch.push(b',');
        scratch.extend_from_slice(fields);
    }
    scratch.push(b'}');
    let hash = chain_hash(prev, scratch);
    out.extend_from_slice(b"{\"hash\":\"");
    let mut hash_hex = [0u8; 64];
    hex_into(&hash, &mut hash_hex);
    out.extend_from_slice(&hash_hex);
    out.extend_from_slice(b"\",");
    // `scratch` without its opening brace: "prev":...,"seq":N,fields}
    out.extend_from_slice(scratch.get(1..).unwrap_or_default());
    out.push(b'\n');
    hash
}

fn hex_into(bytes: &[u8; 32], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(b >> 4)];
            *lo = DIGITS[usize::from(b & 0xf)];
        }
    }
}

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// The unhashed bytes of a parsed record: its `prev` and `seq`, then the rest of its fields
/// canonically. `None` when the record lacks chain fields.
pub(crate) fn unhashed_bytes(record: &serde_json::Value, out: &mut Vec<u8>) -> Option<()> {
    let map = record.as_object()?;
    let prev = map.get("prev")?.as_str()?;
    let seq = map.get("seq")?.as_u64()?;
    out.clear();
    out.extend_from_slice(b"{\"prev\":");
    super::canonical::write_value(&serde_json::Value::String(prev.to_owned()), out);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    let mark = out.len();
    out.push(b',');
    if super::canonical::write_fields_except(map, &["hash", "prev", "seq"], out) == 0 {
        out.truncate(mark);
    }
    out.push(b'}');
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn line_is_canonical_and_hash_recomputes() {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let h = record_line(&mut out, &mut scratch, &GENESIS, 0, br#"{"a":1,"z":[2]}"#);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with(r#"{"hash":""#), "{text}");
        assert!(text.ends_with(r#","prev":"0000000000000000000000000000000000000000000000000000000000000000","seq":0,"a":1,"z":[2]}
"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut unhashed = Vec::new();
        unhashed_bytes(&v, &mut unhashed).unwrap();
        assert_eq!(chain_hash(&GENESIS, &unhashed), h);
        assert_eq!(v["hash"], crate::hex::encode(&h));
        // A record without fields.
        out.clear();
        let h = record_line(&mut out, &mut scratch, &h, 1, b"{}");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        unhashed_bytes(&v, &mut unhashed).unwrap();
        assert_eq!(
            chain_hash(
                &crate::hex::parse_sha256(v["prev"].as_str().unwrap()).unwrap(),
                &unhashed
            ),
            h
        );
    }

    #[test]
    fn keys_round_trip_through_pem_and_hex() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signing_key().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, signing_key_pem(&key).unwrap()).unwrap();
        assert_eq!(read_signing_key(&p).unwrap().to_bytes(), key.to_bytes());
        let pubp = dir.path().join("k.pub");
        std::fs::write(&pubp, verifying_key_pem(&key.verifying_key()).unwrap()).unwrap();
        assert_eq!(read_verifying_key(&pubp).unwrap(), key.verifying_key());
        std::fs::write(&pubp, crate::hex::encode(key.verifying_key().as_bytes())).unwrap();
        assert_eq!(read_verifying_key(&pubp).unwrap(), key.verifying_key());
        std::fs::write(&pubp, "nope").unwrap();
        assert!(matches!(read_verifying_key(&pubp), Err(KeyError::Format)));
    }
}

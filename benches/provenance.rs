//! Provenance costs: SHA-256 of a 256 MiB artifact (ours, streamed, against `sha256sum` on the
//! same file in the same run), signature verification per algorithm, and checking a tool
//! listing against its pins.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmarks fail loudly"
)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use mcp_security::provenance::digest::{HashAlgorithm, digest_path, sha256_path};
use mcp_security::provenance::pinning::{PinPolicy, PinStore};
use mcp_security::provenance::{Artifact, Keyring};
use rand::rngs::OsRng;
use rsa::pkcs8::LineEnding;
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use sha2::Sha256;

const SIZE: usize = 256 * 1024 * 1024;

fn big_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    // Pseudo-random content (xorshift), so nothing compresses or short-circuits.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1024 * 1024];
    for _ in 0..SIZE / chunk.len() {
        for b in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
    f
}

fn hashing(c: &mut Criterion) {
    let file = big_file();
    let path = file.path().to_path_buf();
    // Same answer from both, or the comparison means nothing.
    let ours = sha256_path(&path).unwrap().hex();
    let out = Command::new("sha256sum").arg(&path).output();
    let have_sha256sum = match &out {
        Ok(o) if o.status.success() => {
            let theirs = String::from_utf8_lossy(&o.stdout);
            assert!(theirs.starts_with(&ours), "sha256sum disagrees");
            true
        }
        _ => {
            eprintln!("sha256sum not found: only our hasher is measured");
            false
        }
    };
    let mut g = c.benchmark_group("sha256_256MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("mcp_security_streamed", |b| {
        b.iter(|| sha256_path(&path).unwrap())
    });
    if have_sha256sum {
        g.bench_function("sha256sum_process", |b| {
            b.iter(|| {
                let o = Command::new("sha256sum").arg(&path).output().unwrap();
                assert!(o.status.success());
            })
        });
    }
    g.bench_function("mcp_security_streamed_sha512", |b| {
        b.iter(|| digest_path(&path, HashAlgorithm::Sha512).unwrap())
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let digest = Artifact::from_bytes("a", b"server artifact")
        .sha256()
        .unwrap();
    let mut g = c.benchmark_group("verify_signature");

    let ed = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let pem = ed
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    let ring = Keyring::from_toml_str(&format!(
        "[[publisher]]\nid = \"p\"\nscheme = \"ed25519\"\nkey = \"\"\"\n{pem}\"\"\"\n"
    ))
    .unwrap();
    let sig = ed.sign(digest.bytes()).to_bytes();
    g.bench_function("ed25519", |b| {
        b.iter(|| ring.verify_digest(&digest, &sig, Some("p")).unwrap())
    });

    for bits in [2048, 4096] {
        let key = RsaPrivateKey::new(&mut OsRng, bits).unwrap();
        let pem =
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&key.to_public_key(), LineEnding::LF)
                .unwrap();
        for (scheme, sig) in [
            (
                "rsa-pkcs1v15-sha256",
                key.sign(Pkcs1v15Sign::new::<Sha256>(), digest.bytes())
                    .unwrap(),
            ),
            (
                "rsa-pss-sha256",
                key.sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), digest.bytes())
                    .unwrap(),
            ),
        ] {
            let ring = Keyring::from_toml_str(&format!(
                "[[publisher]]\nid = \"p\"\nscheme = \"{scheme}\"\nkey = \"\"\"\n{pem}\"\"\"\n"
            ))
            .unwrap();
            g.bench_function(format!("{scheme}_{bits}"), |b| {
                b.iter(|| ring.verify_digest(&digest, &sig, Some("p")).unwrap())
            });
        }
    }
    g.finish();
}

fn pinning(c: &mut Criterion) {
    // 50 tools shaped like a filesystem server's: fingerprint (RFC 8785 + SHA-256) and
    // poisoning scan of each, on every tools/list.
    let tools: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i}"),
                "description": "Read the complete contents of a file from the file system. Handles various text encodings and provides detailed error messages if the file cannot be read.",
                "inputSchema": {"type": "object", "properties": {
                    "path": {"type": "string", "description": "Absolute path of the file"},
                    "encoding": {"type": "string", "enum": ["utf-8", "latin-1"], "default": "utf-8"}},
                    "required": ["path"]},
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            })
        })
        .collect();
    let mut pins = PinStore::new();
    pins.pin_all(tools.iter());
    let policy = PinPolicy::default();
    c.bench_function("pin_check_50_tools", |b| {
        b.iter(|| {
            let r = pins.check(tools.iter(), &policy);
            assert!(r.is_clean());
        })
    });
}

criterion_group!(benches, hashing, signatures, pinning);
criterion_main!(benches);

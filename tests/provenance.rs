//! Provenance: artifact and tree digests, ed25519 / RSA signatures against a keyring,
//! build attestations, the trusted server catalog. Keys are generated here.

#![cfg(feature = "provenance")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

#[path = "support/external.rs"]
mod external;

use std::path::Path;
use std::sync::OnceLock;

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use mcp_security::provenance::attestation::{AttestationPolicy, BuildAttestation};
use mcp_security::provenance::catalog::{Catalog, Environment, Severity, TrustReason};
use mcp_security::provenance::digest::{HashAlgorithm, digest_path};
use mcp_security::provenance::{
    Artifact, ArtifactDigest, Checksum, Keyring, ProvenanceError, ProvenanceVerifier, PublicKey,
    Publisher, SignatureScheme, SignatureVerifier,
};
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPublicKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use sha2::{Digest as _, Sha256, Sha512};

fn rsa_key(bits: usize) -> &'static RsaPrivateKey {
    static K2048: OnceLock<RsaPrivateKey> = OnceLock::new();
    static K4096: OnceLock<RsaPrivateKey> = OnceLock::new();
    let cell = if bits == 2048 { &K2048 } else { &K4096 };
    cell.get_or_init(|| RsaPrivateKey::new(&mut OsRng, bits).unwrap())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// An artifact file of 300 KB (several 64 KiB buffers) and its SHA-256.
fn artifact(dir: &Path) -> (std::path::PathBuf, ArtifactDigest) {
    let p = dir.join("server.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&p, &data).unwrap();
    let d = Artifact::from_path(&p).sha256().unwrap();
    assert_eq!(d.bytes(), &<[u8; 32]>::from(Sha256::digest(&data)));
    (p, d)
}

fn flip_file_bit(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    b[123_456] ^= 0x10;
    std::fs::write(p, b).unwrap();
}

enum Signer {
    Ed(Box<ed25519_dalek::SigningKey>),
    Rsa(&'static RsaPrivateKey, SignatureScheme),
}

impl Signer {
    fn sign(&self, digest: &ArtifactDigest) -> Vec<u8> {
        match self {
            Signer::Ed(k) => k.sign(digest.bytes()).to_bytes().to_vec(),
            Signer::Rsa(k, SignatureScheme::RsaPkcs1v15Sha256) => k
                .sign(Pkcs1v15Sign::new::<Sha256>(), digest.bytes())
                .unwrap(),
            Signer::Rsa(k, _) => k
                .sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), digest.bytes())
                .unwrap(),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        match self {
            Signer::Ed(_) => SignatureScheme::Ed25519,
            Signer::Rsa(_, s) => *s,
        }
    }

    fn public_pem(&self) -> String {
        match self {
            Signer::Ed(k) => k
                .verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap(),
            Signer::Rsa(k, _) => k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }
}

fn keyring_toml(entries: &[(&str, &Signer)]) -> String {
    entries
        .iter()
        .map(|(id, s)| {
            format!(
                "[[publisher]]\nid = \"{id}\"\nscheme = \"{}\"\nkey = \"\"\"\n{}\"\"\"\n",
                s.scheme().as_str(),
                s.public_pem()
            )
        })
        .collect()
}

/// The full signature matrix for one signer: good verifies (file, raw and base64 signature,
/// through the keyring and the ProvenanceVerifier); flipped artifact, digest and signature
/// fail; a keyring without this key fails; a required unknown publisher fails.
fn signature_matrix(signer: &Signer, other: &Signer) {
    let dir = tempfile::tempdir().unwrap();
    let (path, digest) = artifact(dir.path());
    let sig = signer.sign(&digest);
    let ring = Keyring::from_toml_str(&keyring_toml(&[("acme", signer)])).unwrap();

    let proof = ring.verify_digest(&digest, &sig, Some("acme")).unwrap();
    assert_eq!(proof.value().publisher, "acme");
    assert_eq!(proof.value().scheme, signer.scheme());
    assert_eq!(proof.value().digest, digest);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&sig) + "\n";
    assert!(ring.verify_digest(&digest, b64.as_bytes(), None).is_ok());

    let verifier = SignatureVerifier::new(ring.clone(), sig.clone()).from_publisher("acme");
    let v = block_on(verifier.verify(&Artifact::from_path(&path))).unwrap();
    assert_eq!(v.value(), &digest);

    // A flipped bit in the digest.
    let mut d = *digest.bytes();
    d[5] ^= 1;
    let flipped_digest = ArtifactDigest::from_bytes(d);
    let wrong = ring.verify_digest(&flipped_digest, &sig, None);
    assert!(
        matches!(wrong, Err(ProvenanceError::SignatureInvalid { .. })),
        "{wrong:?}"
    );
    // A flipped bit in the signature, at the start, middle and end.
    for i in [0, sig.len() / 2, sig.len() - 1] {
        let mut bad = sig.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(
                ring.verify_digest(&digest, &bad, Some("acme")),
                Err(ProvenanceError::SignatureInvalid { publisher: Some(_) })
            ),
            "signature bit {i}"
        );
    }
    // Truncated and empty signatures.
    assert!(ring.verify_digest(&digest, &sig[1..], None).is_err());
    assert!(ring.verify_digest(&digest, b"", None).is_err());
    // A flipped bit in the artifact.
    flip_file_bit(&path);
    let e = block_on(verifier.verify(&Artifact::from_path(&path))).unwrap_err();
    assert!(matches!(e, ProvenanceError::SignatureInvalid { .. }), "{e}");
    // An untrusted key: the keyring holds only `other`.
    let untrusted = Keyring::from_toml_str(&keyring_toml(&[("other", other)])).unwrap();
    let e = untrusted.verify_digest(&digest, &sig, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "signature does not verify with any trusted key"
    );
    let e = untrusted
        .verify_digest(&digest, &sig, Some("acme"))
        .unwrap_err();
    assert!(matches!(e, ProvenanceError::UnknownPublisher { .. }), "{e}");
    // Both in the keyring, the right one found, but requiring `other` fails.
    let both =
        Keyring::from_toml_str(&keyring_toml(&[("other", other), ("acme", signer)])).unwrap();
    assert_eq!(
        both.verify_digest(&digest, &sig, None)
            .unwrap()
            .value()
            .publisher,
        "acme"
    );
    assert!(both.verify_digest(&digest, &sig, Some("other")).is_err());
}

#[test]
fn ed25519_signatures() {
    let a = Signer::Ed(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    let b = Signer::Ed(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    signature_matrix(&a, &b);
}

#[test]
fn rsa_2048_pkcs1v15_signatures() {
    let ed = Signer::Ed(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    signature_matrix(
        &Signer::Rsa(rsa_key(2048), SignatureScheme::RsaPkcs1v15Sha256),
        &ed,
    );
}

#[test]
fn rsa_2048_pss_signatures() {
    signature_matrix(
        &Signer::Rsa(rsa_key(2048), SignatureScheme::RsaPssSha256),
        &Signer::Rsa(rsa_key(4096), SignatureScheme::RsaPssSha256),
    );
}

#[test]
fn rsa_4096_pkcs1v15_signatures() {
    signature_matrix(
        &Signer::Rsa(rsa_key(4096), SignatureScheme::RsaPkcs1v15Sha256),
        &Signer::Rsa(rsa_key(2048), SignatureScheme::RsaPkcs1v15Sha256),
    );
}

#[test]
fn rsa_4096_pss_signatures() {
    let ed = Signer::Ed(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    signature_matrix(
        &Signer::Rsa(rsa_key(4096), SignatureScheme::RsaPssSha256),
        &ed,
    );
}

#[test]
fn the_scheme_is_fixed_per_key() {
    // A PKCS#1 v1.5 signature does not verify for a publisher registered as PSS, and back.
    let dir = tempfile::tempdir().unwrap();
    let (_, digest) = artifact(dir.path());
    let pkcs = Signer::Rsa(rsa_key(2048), SignatureScheme::RsaPkcs1v15Sha256);
    let pss = Signer::Rsa(rsa_key(2048), SignatureScheme::RsaPssSha256);
    let pss_ring = Keyring::from_toml_str(&keyring_toml(&[("acme", &pss)])).unwrap();
    assert!(
        pss_ring
            .verify_digest(&digest, &pkcs.sign(&digest), None)
            .is_err()
    );
    let pkcs_ring = Keyring::from_toml_str(&keyring_toml(&[("acme", &pkcs)])).unwrap();
    assert!(
        pkcs_ring
            .verify_digest(&digest, &pss.sign(&digest), None)
            .is_err()
    );
    // An ed25519 key registered for an RSA scheme is refused when the keyring loads.
    let ed = Signer::Ed(Box::new(ed25519_dalek::SigningKey::generate(&mut OsRng)));
    let text = keyring_toml(&[("acme", &ed)]).replace("ed25519", "rsa-pss-sha256");
    let e = Keyring::from_toml_str(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "publisher `acme`: key type does not match the scheme"
    );
}

#[test]
fn key_formats_and_sizes() {
    let ed = ed25519_dalek::SigningKey::generate(&mut OsRng);
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.encode(ed.verifying_key().as_bytes());
    assert!(matches!(
        PublicKey::parse("p", &raw).unwrap(),
        PublicKey::Ed25519(_)
    ));
    let der = ed.verifying_key().to_public_key_der().unwrap();
    let der_b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    assert!(matches!(
        PublicKey::parse("p", &der_b64).unwrap(),
        PublicKey::Ed25519(_)
    ));
    let pkcs1 = rsa_key(2048)
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    assert!(matches!(
        PublicKey::parse("p", &pkcs1).unwrap(),
        PublicKey::Rsa(_)
    ));
    for bad in [
        "",
        "not base64 !!",
        "AAAA",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    ] {
        assert!(
            matches!(
                PublicKey::parse("p", bad),
                Err(ProvenanceError::BadKey { .. })
            ),
            "{bad:?}"
        );
    }
    // 1024 bits: too small, refused when parsed.
    let small = RsaPrivateKey::new(&mut OsRng, 1024)
        .unwrap()
        .to_public_key();
    let pem = small.to_public_key_pem(LineEnding::LF).unwrap();
    let e = PublicKey::parse("weak", &pem).unwrap_err();
    assert_eq!(
        e.to_string(),
        "publisher `weak`: rsa key has 1024 bits; 2048 to 4096 are accepted"
    );
    // 4104 bits: too large (a verification cost attack), refused by Publisher::new.
    let n = rsa::BigUint::from(1u8) << 4103usize | rsa::BigUint::from(1u8);
    let big = rsa::RsaPublicKey::new_with_max_size(n, rsa::BigUint::from(65537u32), 8192).unwrap();
    let e = Publisher::new("huge", PublicKey::Rsa(big), SignatureScheme::RsaPssSha256).unwrap_err();
    assert!(
        matches!(e, ProvenanceError::RsaKeySize { bits: 4104, .. }),
        "{e}"
    );
    // Duplicate publisher ids.
    let s = Signer::Ed(Box::new(ed));
    let e = Keyring::from_toml_str(&keyring_toml(&[("a", &s), ("a", &s)])).unwrap_err();
    assert_eq!(e.to_string(), "keyring: publisher `a` appears twice");
    assert!(Keyring::from_toml_str("[[publisher]]\nid = 1").is_err());
    assert!(Keyring::from_toml_str("unknown = 1").is_err());
}

#[test]
fn openssl_made_rsa_signatures_verify() {
    // The documented interop: `openssl dgst -sha256 -sign` over the file is our PKCS#1 v1.5
    // signature; with PSS options it is our PSS signature.
    let Some(openssl) = external::find("openssl") else {
        external::skip(
            "openssl_made_rsa_signatures_verify",
            "openssl is not installed",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, digest) = artifact(dir.path());
    let key_pem = dir.path().join("key.pem");
    std::fs::write(
        &key_pem,
        rsa_key(2048)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    for (scheme, extra) in [
        (SignatureScheme::RsaPkcs1v15Sha256, &[][..]),
        (
            SignatureScheme::RsaPssSha256,
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ][..],
        ),
    ] {
        let sig_path = dir.path().join("sig");
        let status = std::process::Command::new(&openssl)
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key_pem)
            .args(extra)
            .arg("-out")
            .arg(&sig_path)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let signer = Signer::Rsa(rsa_key(2048), scheme);
        let ring = Keyring::from_toml_str(&keyring_toml(&[("acme", &signer)])).unwrap();
        let sig = std::fs::read(&sig_path).unwrap();
        assert!(
            ring.verify_digest(&digest, &sig, None).is_ok(),
            "{scheme:?}"
        );
    }
}

#[test]
fn sha512_and_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let (path, sha256) = artifact(dir.path());
    let data = std::fs::read(&path).unwrap();
    let d512 = digest_path(&path, HashAlgorithm::Sha512).unwrap();
    assert_eq!(d512.bytes(), Sha512::digest(&data).as_slice());
    let good = Checksum::from_hex(HashAlgorithm::Sha512, &d512.hex()).unwrap();
    assert_eq!(
        good.check(&Artifact::from_path(&path)).unwrap().value(),
        &d512
    );
    let good256 = Checksum::from_hex(HashAlgorithm::Sha256, &sha256.hex()).unwrap();
    assert!(good256.check(&Artifact::from_bytes("b", &data)).is_ok());
    assert!(Checksum::from_hex(HashAlgorithm::Sha512, &sha256.hex()).is_err());
    assert!(Checksum::from_hex(HashAlgorithm::Sha256, &"g".repeat(64)).is_err());
    flip_file_bit(&path);
    assert!(matches!(
        good.check(&Artifact::from_path(&path)),
        Err(ProvenanceError::DigestMismatch)
    ));
}

fn tree(root: &Path, files: &[(&str, &[u8])]) {
    for (rel, content) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn tree_digest(root: &Path) -> String {
    Artifact::from_path(root).sha256().unwrap().hex()
}

#[test]
fn tree_digest_follows_the_documented_encoding() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &[("a", b"x"), ("d/b", b"yz")]);
    let mut stream = b"mcp-security-tree-v1\n".to_vec();
    let mut entry = |path: &str, kind: u8, content: &[u8]| {
        stream.extend((path.len() as u64).to_be_bytes());
        stream.extend(path.as_bytes());
        stream.push(kind);
        stream.extend((content.len() as u64).to_be_bytes());
        stream.extend(content);
    };
    entry("a", b'f', b"x");
    entry("d", b'd', b"");
    entry("d/b", b'f', b"yz");
    assert_eq!(tree_digest(dir.path()), hex(&Sha256::digest(&stream)));
    let d512 = digest_path(dir.path(), HashAlgorithm::Sha512).unwrap();
    assert_eq!(d512.bytes(), Sha512::digest(&stream).as_slice());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(unix)]
#[test]
fn tree_digest_is_stable_and_sensitive() {
    use std::os::unix::fs::PermissionsExt;
    let files: &[(&str, &[u8])] = &[
        ("bin/server", b"#!/bin/sh\necho hi\n"),
        ("lib/a.js", b"module.exports = 1"),
        ("lib/b.js", b"module.exports = 2"),
        ("README", b"read me"),
        ("a.txt", b"dot sorts before slash"),
    ];
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    tree(one.path(), files);
    // The same tree created in the reverse order digests the same.
    let mut rev = files.to_vec();
    rev.reverse();
    tree(two.path(), &rev);
    let base = tree_digest(one.path());
    assert_eq!(base, tree_digest(two.path()));
    assert_eq!(base, tree_digest(one.path()), "stable across runs");

    // Content change.
    std::fs::write(two.path().join("lib/b.js"), b"module.exports = 3").unwrap();
    assert_ne!(base, tree_digest(two.path()));
    std::fs::write(two.path().join("lib/b.js"), b"module.exports = 2").unwrap();
    assert_eq!(base, tree_digest(two.path()));
    // Rename.
    std::fs::rename(two.path().join("lib/b.js"), two.path().join("lib/c.js")).unwrap();
    assert_ne!(base, tree_digest(two.path()));
    std::fs::rename(two.path().join("lib/c.js"), two.path().join("lib/b.js")).unwrap();
    // Moving a file into another directory.
    std::fs::rename(two.path().join("README"), two.path().join("lib/README")).unwrap();
    assert_ne!(base, tree_digest(two.path()));
    std::fs::rename(two.path().join("lib/README"), two.path().join("README")).unwrap();
    assert_eq!(base, tree_digest(two.path()));
    // Mode: the execute bit counts; other permission bits do not.
    let server = two.path().join("bin/server");
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = tree_digest(two.path());
    assert_ne!(base, exec);
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(exec, tree_digest(two.path()));
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(base, tree_digest(two.path()));
    // An empty directory counts.
    std::fs::create_dir(two.path().join("empty")).unwrap();
    assert_ne!(base, tree_digest(two.path()));
    std::fs::remove_dir(two.path().join("empty")).unwrap();
    assert_eq!(base, tree_digest(two.path()));

    // A symlink is recorded as a link (its target path), never followed.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret");
    std::fs::write(&target, b"v1").unwrap();
    std::os::unix::fs::symlink(&target, two.path().join("link")).unwrap();
    let with_link = tree_digest(two.path());
    assert_ne!(base, with_link);
    std::fs::write(&target, b"v2, outside the tree").unwrap();
    assert_eq!(with_link, tree_digest(two.path()));
    std::fs::remove_file(two.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("other"), two.path().join("link")).unwrap();
    assert_ne!(with_link, tree_digest(two.path()));
    // A symlink to a directory is not walked.
    std::fs::remove_file(two.path().join("link")).unwrap();
    std::os::unix::fs::symlink(two.path(), two.path().join("loop")).unwrap();
    assert_ne!(base, tree_digest(two.path()));
    std::fs::remove_file(two.path().join("loop")).unwrap();
    assert_eq!(base, tree_digest(two.path()));

    // A special file (a unix socket) is refused, naming it.
    let sock = two.path().join("lib/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = Artifact::from_path(two.path()).sha256().unwrap_err();
    assert!(
        matches!(&e, ProvenanceError::SpecialFile { path } if path == &sock),
        "{e}"
    );
    // So is a special file given as the artifact itself.
    assert!(matches!(
        Artifact::from_path(&sock).sha256(),
        Err(ProvenanceError::SpecialFile { .. })
    ));
    // A missing artifact names the path.
    let e = Artifact::from_path(&one.path().join("missing"))
        .sha256()
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

const COMMIT: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

#[test]
fn attestation_fields_checked_against_the_policy() {
    let digest = Artifact::from_bytes("a", b"artifact").sha256().unwrap();
    let att = BuildAttestation::from_json(
        format!(
            r#"{{"builder": "https://github.com/actions/runner", "source_repository": "https://github.com/acme/fs",
                "commit": "{COMMIT}", "artifact_sha256": "{}"}}"#,
            digest.hex()
        )
        .as_bytes(),
    )
    .unwrap();
    let policy = AttestationPolicy {
        builders: vec!["https://github.com/actions/runner".into()],
        source_repositories: vec!["https://github.com/acme/fs".into()],
        commits: vec![],
    };
    assert_eq!(policy.check(&att, &digest).unwrap().value(), &att);
    let field =
        |p: &AttestationPolicy, a: &BuildAttestation, d: &ArtifactDigest| match p.check(a, d) {
            Err(ProvenanceError::AttestationMismatch { field }) => field,
            other => panic!("{other:?}"),
        };
    let other = Artifact::from_bytes("b", b"other").sha256().unwrap();
    assert_eq!(field(&policy, &att, &other), "artifact_sha256");
    let mut a = att.clone();
    a.builder = "https://evil.example/runner".into();
    assert_eq!(field(&policy, &a, &digest), "builder");
    let mut a = att.clone();
    a.source_repository = "https://github.com/acme/fs-fork".into();
    assert_eq!(field(&policy, &a, &digest), "source_repository");
    let mut a = att.clone();
    a.commit = "main".into();
    assert_eq!(field(&policy, &a, &digest), "commit");
    let pinned = AttestationPolicy {
        commits: vec!["0".repeat(40)],
        ..policy.clone()
    };
    assert_eq!(field(&pinned, &att, &digest), "commit");
    assert!(BuildAttestation::from_json(b"{\"builder\": 1}").is_err());
    assert!(BuildAttestation::from_json(b"not json").is_err());
}

const CATALOG: &str = r#"
[policy.staging]
max_risk = 50
block_severity = "high"

[[server]]
name = "filesystem"
publisher = "acme"
risk_score = 10
environments = ["dev", "staging", "production"]

[[server.version]]
version = "1.0.0"
released = 2025-01-10

[[server.version]]
version = "1.1.0"
released = 2025-03-02

[[server.version]]
version = "1.2.0"
released = 2025-06-20

[[server.version]]
version = "2.0.0-beta.1"
released = 2025-07-01
environments = ["dev"]

[[server.vulnerability]]
id = "CVE-2025-0001"
severity = "critical"
affected = "<1.1.0"
patched = "1.1.0"

[[server.vulnerability]]
id = "GHSA-aaaa-bbbb-cccc"
severity = "medium"
affected = ">=1.1.0, <1.2.0"
patched = "1.2.0"

[[server]]
name = "risky"
risk_score = 60
environments = ["dev", "staging", "production"]

[[server.version]]
version = "0.3.0"
released = 2024-12-01
"#;

#[test]
fn catalog_decisions() {
    use Environment::*;
    let c = Catalog::from_toml_str(CATALOG).unwrap();
    let d = c.is_server_trusted("filesystem", "1.2.0", Production);
    assert!(d.is_trusted(), "{d:?}");
    assert_eq!(d.risk_score, 10);
    assert!(d.vulnerabilities.is_empty());

    let d = c.is_server_trusted("unknown", "1.0.0", Dev);
    assert_eq!(d.reason, TrustReason::UnknownServer);
    assert!(!d.is_trusted());
    assert_eq!(
        c.is_server_trusted("filesystem", "1.3.0", Dev).reason,
        TrustReason::UnknownVersion
    );
    assert_eq!(
        c.is_server_trusted("filesystem", "not-semver", Dev).reason,
        TrustReason::UnknownVersion
    );
    // Critical: refused everywhere (dev blocks critical by default).
    let d = c.is_server_trusted("filesystem", "1.0.0", Dev);
    assert_eq!(
        d.reason,
        TrustReason::Vulnerable {
            id: "CVE-2025-0001".into(),
            severity: Severity::Critical,
            patched: Some("1.1.0".into())
        }
    );
    assert_eq!(d.risk_score, 50);
    assert_eq!(
        d.reason.to_string(),
        "affected by CVE-2025-0001 (critical), patched in 1.1.0"
    );
    // Medium: allowed in dev and staging (blocks high and up), refused in production.
    assert!(c.is_server_trusted("filesystem", "1.1.0", Dev).is_trusted());
    let d = c.is_server_trusted("filesystem", "1.1.0", Staging);
    assert!(d.is_trusted(), "{d:?}");
    assert_eq!(d.risk_score, 15);
    assert_eq!(d.vulnerabilities, ["GHSA-aaaa-bbbb-cccc"]);
    assert!(matches!(
        c.is_server_trusted("filesystem", "1.1.0", Production)
            .reason,
        TrustReason::Vulnerable {
            severity: Severity::Medium,
            ..
        }
    ));
    // A version narrowed to dev.
    assert!(
        c.is_server_trusted("filesystem", "2.0.0-beta.1", Dev)
            .is_trusted()
    );
    assert_eq!(
        c.is_server_trusted("filesystem", "2.0.0-beta.1", Staging)
            .reason,
        TrustReason::EnvironmentNotAllowed
    );
    // Risk 60: fine in dev (100), over staging's 50 and production's default 40.
    assert!(c.is_server_trusted("risky", "0.3.0", Dev).is_trusted());
    assert_eq!(
        c.is_server_trusted("risky", "0.3.0", Staging).reason,
        TrustReason::RiskTooHigh {
            score: 60,
            limit: 50
        }
    );
    assert_eq!(
        c.is_server_trusted("risky", "0.3.0", Production).reason,
        TrustReason::RiskTooHigh {
            score: 60,
            limit: 40
        }
    );
}

#[test]
fn catalog_file_errors_name_the_problem() {
    let cases = [
        (
            "[[server]]\nname = \"a\"\nrisk_score = 101\nenvironments = []",
            "risk_score",
        ),
        (
            "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = [\"moon\"]",
            "moon",
        ),
        (
            "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = []\n[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = []",
            "twice",
        ),
        (
            "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = []\n[[server.version]]\nversion = \"1\"\nreleased = 2025-01-01",
            "semver",
        ),
        (
            "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = []\n[[server.vulnerability]]\nid = \"X\"\nseverity = \"high\"\naffected = \"garbage!!\"",
            "semver requirement",
        ),
        (
            "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = []\nextra = 1",
            "extra",
        ),
    ];
    for (text, needle) in cases {
        let e = Catalog::from_toml_str(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} should mention {needle}");
    }
}

#[test]
fn catalog_pins_the_artifact_digest() {
    let digest = Artifact::from_bytes("a", b"artifact").sha256().unwrap();
    let text = format!(
        "[[server]]\nname = \"a\"\nrisk_score = 1\nenvironments = [\"dev\"]\n[[server.version]]\nversion = \"1.0.0\"\nreleased = 2025-01-01\nsha256 = \"{}\"",
        digest.hex()
    );
    let c = Catalog::from_toml_str(&text).unwrap();
    assert!(c.check_digest("a", "1.0.0", &digest).is_ok());
    let other = Artifact::from_bytes("b", b"other").sha256().unwrap();
    assert!(matches!(
        c.check_digest("a", "1.0.0", &other),
        Err(ProvenanceError::DigestMismatch)
    ));
}

mod props {
    use mcp_security::provenance::attestation::BuildAttestation;
    use mcp_security::provenance::catalog::Catalog;
    use mcp_security::provenance::pinning::{PinStore, scan_text};
    use mcp_security::provenance::{Keyring, PublicKey, jcs};
    use proptest::prelude::*;
    use serde_json::Value;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Short dyadic fractions (at most 15 significant digits), which serde_json's default
            // float parser reads exactly; it can be an ulp off on longer ones (see the jcs
            // module docs). Arbitrary doubles are covered by jcs_numbers_round_trip.
            (-(1i32 << 20)..(1i32 << 20), 0..5u32)
                .prop_map(|(i, k)| Value::from(f64::from(i) / f64::from(1u32 << k))),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn file_parsers_never_panic(text in "\\PC{0,300}") {
            let _ = Keyring::from_toml_str(&text);
            let _ = Catalog::from_toml_str(&text);
            let _ = BuildAttestation::from_json(text.as_bytes());
            let _ = PinStore::from_json(text.as_bytes());
            let _ = PublicKey::parse("p", &text);
            let _ = scan_text("description", &text, &["send_email", "fetch"]);
        }

        #[test]
        fn jcs_is_json_and_a_fixed_point(v in json_value()) {
            let canonical = jcs::to_string(&v);
            let reparsed: Value = serde_json::from_str(&canonical).unwrap();
            // Numbers go through f64, as RFC 8785 says; everything else is unchanged.
            prop_assert_eq!(jcs::to_string(&reparsed), canonical.clone());
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let again: Value = serde_json::from_str(&pretty).unwrap();
            prop_assert_eq!(jcs::to_string(&again), canonical);
        }

        #[test]
        fn jcs_numbers_round_trip(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let s = jcs::to_string(&Value::from(f));
            let back: f64 = s.parse().unwrap();
            prop_assert_eq!(back, if f == 0.0 { 0.0 } else { f });
        }
    }
}

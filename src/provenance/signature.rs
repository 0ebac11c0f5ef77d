//! Signatures over an artifact's SHA-256 digest, checked against a keyring of trusted publishers.
//!
//! # What is signed
//! Every scheme signs the artifact's SHA-256 digest (for a directory, the tree digest of
//! [`digest`](super::digest)), so a large artifact is hashed once, streamed:
//! - `ed25519`: the Ed25519 signature (64 bytes) of the 32 digest bytes;
//! - `rsa-pkcs1v15-sha256`: RSASSA-PKCS1-v1_5 with SHA-256, the digest used as the message hash
//!   (so for a file it is exactly `openssl dgst -sha256 -sign key.pem -out sig FILE`);
//! - `rsa-pss-sha256`: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
//!   (`openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sign ...`).
//!
//! RSA keys must have 2048 to 4096 bits: smaller keys are breakable, larger ones make
//! verification a denial-of-service vector.
//!
//! # The keyring file (TOML)
//! ```toml
//! [[publisher]]
//! id = "acme"                      # named in reports and in the catalog's `publisher`
//! scheme = "ed25519"               # or "rsa-pkcs1v15-sha256", "rsa-pss-sha256"
//! key = "MCowBQYDK2VwAyEA..."      # PEM ("PUBLIC KEY" or "RSA PUBLIC KEY"), or base64 of
//!                                  # the DER SubjectPublicKeyInfo, or of a raw 32-byte ed25519 key
//! ```
//! The scheme is fixed per key, so a signature can never be checked under a weaker scheme
//! than the publisher uses.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use sha2::Sha256;

use super::{Artifact, ArtifactDigest, ProvenanceError, ProvenanceVerifier, Verified};

/// The smallest RSA modulus accepted, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits.
pub const RSA_MAX_BITS: usize = 4096;

/// A signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// Ed25519 over the 32 digest bytes.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "rsa-pkcs1v15-sha256")]
    RsaPkcs1v15Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    #[serde(rename = "rsa-pss-sha256")]
    RsaPssSha256,
}

impl SignatureScheme {
    /// The name used in the keyring file.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::Ed25519 => "ed25519",
            SignatureScheme::RsaPkcs1v15Sha256 => "rsa-pkcs1v15-sha256",
            SignatureScheme::RsaPssSha256 => "rsa-pss-sha256",
        }
    }
}

/// A publisher's public key.
#[derive(Clone)]
pub enum PublicKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An RSA key of 2048 to 4096 bits.
    Rsa(rsa::RsaPublicKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::Ed25519(_) => f.write_str("PublicKey::Ed25519"),
            PublicKey::Rsa(k) => write!(f, "PublicKey::Rsa({} bits)", k.n().bits()),
        }
    }
}

impl PublicKey {
    /// Parses a PEM key (`PUBLIC KEY` or `RSA PUBLIC KEY`), base64 DER SubjectPublicKeyInfo,
    /// or base64 of a raw 32-byte Ed25519 key.
    ///
    /// # Errors
    /// [`ProvenanceError::BadKey`] when the text is none of these, or an RSA key is too small
    /// or too large.
    pub fn parse(publisher: &str, text: &str) -> Result<Self, ProvenanceError> {
        let bad = |reason: &'static str| ProvenanceError::BadKey {
            publisher: publisher.to_owned(),
            reason,
        };
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            PublicKey::Rsa(
                rsa::RsaPublicKey::from_pkcs1_pem(text).map_err(|_| bad("invalid rsa pem"))?,
            )
        } else if text.starts_with("-----BEGIN PUBLIC KEY-----") {
            if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(text) {
                PublicKey::Ed25519(k)
            } else {
                PublicKey::Rsa(
                    rsa::RsaPublicKey::from_public_key_pem(text)
                        .map_err(|_| bad("pem is neither an ed25519 nor an rsa public key"))?,
                )
            }
        } else {
            let compact: String = text.split_whitespace().collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| bad("key is neither pem nor base64"))?;
            if let Ok(raw) = <[u8; 32]>::try_from(der.as_slice()) {
                PublicKey::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(&raw)
                        .map_err(|_| bad("invalid ed25519 key"))?,
                )
            } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(&der) {
                PublicKey::Ed25519(k)
            } else {
                PublicKey::Rsa(
                    rsa::RsaPublicKey::from_public_key_der(&der)
                        .map_err(|_| bad("der is neither an ed25519 nor an rsa public key"))?,
                )
            }
        };
        key.check_size(publisher)?;
        Ok(key)
    }

    fn check_size(&self, publisher: &str) -> Result<(), ProvenanceError> {
        if let PublicKey::Rsa(k) = self {
            let bits = k.n().bits();
            if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                return Err(ProvenanceError::RsaKeySize {
                    publisher: publisher.to_owned(),
                    bits,
                });
            }
        }
        Ok(())
    }

    fn fits(&self, scheme: SignatureScheme) -> bool {
        matches!(
            (self, scheme),
            (PublicKey::Ed25519(_), SignatureScheme::Ed25519)
                | (
                    PublicKey::Rsa(_),
                    SignatureScheme::RsaPkcs1v15Sha256 | SignatureScheme::RsaPssSha256
                )
        )
    }

    /// The signature length this key produces.
    fn signature_len(&self) -> usize {
        match self {
            PublicKey::Ed25519(_) => ed25519_dalek::SIGNATURE_LENGTH,
            PublicKey::Rsa(k) => k.size(),
        }
    }

    fn verify(&self, scheme: SignatureScheme, digest: &[u8; 32], sig: &[u8]) -> bool {
        match (self, scheme) {
            (PublicKey::Ed25519(k), SignatureScheme::Ed25519) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                k.verify_strict(digest, &sig).is_ok()
            }
            (PublicKey::Rsa(k), SignatureScheme::RsaPkcs1v15Sha256) => k
                .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, sig)
                .is_ok(),
            (PublicKey::Rsa(k), SignatureScheme::RsaPssSha256) => {
                k.verify(rsa::Pss::new::<Sha256>(), digest, sig).is_ok()
            }
            _ => false,
        }
    }
}

/// A trusted publisher: an id, a key and the one scheme it signs with.
#[derive(Debug, Clone)]
pub struct Publisher {
    id: String,
    key: PublicKey,
    scheme: SignatureScheme,
}

impl Publisher {
    /// A publisher.
    ///
    /// # Errors
    /// [`ProvenanceError::BadKey`] when the key cannot make `scheme` signatures,
    /// [`ProvenanceError::RsaKeySize`] for an RSA key outside 2048..=4096 bits.
    pub fn new(
        id: impl Into<String>,
        key: PublicKey,
        scheme: SignatureScheme,
    ) -> Result<Self, ProvenanceError> {
        let id = id.into();
        key.check_size(&id)?;
        if !key.fits(scheme) {
            return Err(ProvenanceError::BadKey {
                publisher: id,
                reason: "key type does not match the scheme",
            });
        }
        Ok(Publisher { id, key, scheme })
    }

    /// The publisher's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The scheme it signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// What a good signature proves: this digest was signed by this trusted publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDigest {
    /// The signed SHA-256 digest.
    pub digest: ArtifactDigest,
    /// The publisher whose key verified the signature.
    pub publisher: String,
    /// The scheme.
    pub scheme: SignatureScheme,
}

/// The trusted publishers.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    publishers: Vec<Publisher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    #[serde(default)]
    publisher: Vec<PublisherEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherEntry {
    id: String,
    scheme: SignatureScheme,
    key: String,
}

impl Keyring {
    /// An empty keyring: it trusts nobody.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds a trusted publisher.
    ///
    /// # Errors
    /// [`ProvenanceError::Keyring`] when the id is already taken.
    pub fn add(&mut self, publisher: Publisher) -> Result<(), ProvenanceError> {
        if self.get(&publisher.id).is_some() {
            return Err(ProvenanceError::Keyring(format!(
                "publisher `{}` appears twice",
                publisher.id
            )));
        }
        self.publishers.push(publisher);
        Ok(())
    }

    /// Parses the keyring file format (see the module docs).
    ///
    /// # Errors
    /// [`ProvenanceError::Keyring`] for a malformed file, or the key errors of
    /// [`PublicKey::parse`] and [`Publisher::new`].
    pub fn from_toml_str(text: &str) -> Result<Self, ProvenanceError> {
        let file: KeyringFile =
            toml::from_str(text).map_err(|e| ProvenanceError::Keyring(e.message().to_owned()))?;
        let mut ring = Keyring::new();
        for entry in file.publisher {
            let key = PublicKey::parse(&entry.id, &entry.key)?;
            ring.add(Publisher::new(entry.id, key, entry.scheme)?)?;
        }
        Ok(ring)
    }

    /// Reads and parses a keyring file.
    ///
    /// # Errors
    /// [`ProvenanceError::Read`], or as [`Keyring::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ProvenanceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(super::digest::read_err(path))?;
        Self::from_toml_str(&text)
    }

    /// The publisher with this id.
    pub fn get(&self, id: &str) -> Option<&Publisher> {
        self.publishers.iter().find(|p| p.id == id)
    }

    /// The number of trusted publishers.
    pub fn len(&self) -> usize {
        self.publishers.len()
    }

    /// Whether the keyring trusts nobody.
    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }

    /// Verifies `signature` over `digest`: with `publisher`'s key when given, otherwise with
    /// every trusted key in turn. `signature` may be raw bytes or base64 text.
    ///
    /// # Errors
    /// [`ProvenanceError::UnknownPublisher`] for a publisher not in the keyring;
    /// [`ProvenanceError::SignatureInvalid`] when no trusted key verifies the signature
    /// (a bad signature, another digest, or an untrusted key).
    pub fn verify_digest(
        &self,
        digest: &ArtifactDigest,
        signature: &[u8],
        publisher: Option<&str>,
    ) -> Result<Verified<SignedDigest>, ProvenanceError> {
        let candidates: Vec<&Publisher> = match publisher {
            Some(id) => vec![
                self.get(id)
                    .ok_or_else(|| ProvenanceError::UnknownPublisher {
                        publisher: id.to_owned(),
                    })?,
            ],
            None => self.publishers.iter().collect(),
        };
        for p in candidates {
            let Some(sig) = decode_signature(signature, p.key.signature_len()) else {
                continue;
            };
            if p.key.verify(p.scheme, digest.bytes(), &sig) {
                return Ok(Verified::new(SignedDigest {
                    digest: digest.clone(),
                    publisher: p.id.clone(),
                    scheme: p.scheme,
                }));
            }
        }
        Err(ProvenanceError::SignatureInvalid {
            publisher: publisher.map(str::to_owned),
        })
    }
}

/// Raw bytes of the expected length, or base64 text decoding to that length (raw signatures
/// never have a base64 reading of the same length, so the two cannot be confused).
fn decode_signature(sig: &[u8], len: usize) -> Option<Vec<u8>> {
    if sig.len() == len {
        return Some(sig.to_vec());
    }
    let compact: Vec<u8> = sig
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    (decoded.len() == len).then_some(decoded)
}

/// A [`ProvenanceVerifier`]: the artifact's SHA-256 must carry a good signature from a
/// trusted publisher.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    keyring: Keyring,
    signature: Vec<u8>,
    publisher: Option<String>,
}

impl SignatureVerifier {
    /// Checks artifacts against `signature` (raw or base64) with any key of `keyring`.
    pub fn new(keyring: Keyring, signature: impl Into<Vec<u8>>) -> Self {
        SignatureVerifier {
            keyring,
            signature: signature.into(),
            publisher: None,
        }
    }

    /// Requires the signature to come from this publisher.
    pub fn from_publisher(mut self, id: impl Into<String>) -> Self {
        self.publisher = Some(id.into());
        self
    }

    /// Hashes the artifact and verifies the signature, returning who signed it.
    ///
    /// # Errors
    /// Hashing errors, and those of [`Keyring::verify_digest`].
    pub fn verify_signed(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<SignedDigest>, ProvenanceError> {
        let digest = artifact.sha256()?;
        self.keyring
            .verify_digest(&digest, &self.signature, self.publisher.as_deref())
    }
}

#[async_trait::async_trait]
impl ProvenanceVerifier for SignatureVerifier {
    async fn verify(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<ArtifactDigest>, ProvenanceError> {
        self.verify_signed(artifact)
            .map(|v| Verified::new(v.into_inner().digest))
    }
}

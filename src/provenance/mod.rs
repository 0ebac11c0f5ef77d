//! Provenance: refuse server artifacts and tool definitions that cannot be verified.
//!
//! A [`ProvenanceVerifier`] checks an [`Artifact`] and returns a [`Verified`] proof, never a
//! `bool`: code that needs a verified artifact asks for a `Verified<ArtifactDigest>` and so
//! cannot be handed an unchecked one.
//!
//! ```
//! use mcp_security::provenance::{Artifact, ProvenanceVerifier, Sha256Checksum};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! let bytes = b"#!/bin/sh\necho server\n";
//! let expected = Sha256Checksum::digest_hex(bytes);
//! let verifier = Sha256Checksum::from_hex(&expected)?;
//! let proof = verifier.verify(&Artifact::from_bytes("server.sh", bytes)).await?;
//! assert_eq!(proof.value().hex(), expected);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

//!
//! # The parts
//! - [`digest`]: streamed SHA-256 / SHA-512 of a file or a directory tree (a documented
//!   canonical encoding), and [`Checksum`] to pin either.
//! - `signature` (feature `provenance`): ed25519 and RSA (PKCS#1 v1.5, PSS) signatures over
//!   the digest, checked against a [`Keyring`] of trusted publishers.
//! - [`attestation`]: build attestations (builder, source repository, commit) checked against
//!   an [`AttestationPolicy`].
//! - `catalog` (feature `provenance`): the trusted server catalog, `is_server_trusted`.
//! - `depscan` (feature `provenance`): lockfiles matched against an offline OSV database.
//! - [`pinning`]: tool definition fingerprints (RFC 8785), rug-pull detection and
//!   tool-poisoning scans, used by the rmcp `SecureClient`.

pub mod attestation;
#[cfg(feature = "provenance")]
#[cfg_attr(docsrs, doc(cfg(feature = "provenance")))]
pub mod catalog;
mod checksum;
#[cfg(feature = "provenance")]
#[cfg_attr(docsrs, doc(cfg(feature = "provenance")))]
pub mod depscan;
pub mod digest;
pub mod jcs;
pub mod pinning;
#[cfg(feature = "provenance")]
#[cfg_attr(docsrs, doc(cfg(feature = "provenance")))]
pub mod signature;

pub use attestation::{AttestationPolicy, BuildAttestation};
#[cfg(feature = "provenance")]
pub use catalog::{Catalog, Environment, Severity, TrustDecision, TrustReason};
pub use checksum::{Checksum, Sha256Checksum};
pub use digest::{Digest, HashAlgorithm};
#[cfg(feature = "provenance")]
pub use signature::{
    Keyring, PublicKey, Publisher, SignatureScheme, SignatureVerifier, SignedDigest,
};

use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

/// Something to verify: bytes in memory, or a file read in a stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Artifact<'a> {
    /// Bytes in memory.
    Bytes {
        /// A name for error reports.
        name: &'a str,
        /// The content.
        bytes: &'a [u8],
    },
    /// A file on disk.
    File(&'a Path),
}

impl<'a> Artifact<'a> {
    /// An artifact held in memory.
    pub fn from_bytes(name: &'a str, bytes: &'a [u8]) -> Self {
        Artifact::Bytes { name, bytes }
    }

    /// A file or a directory tree, read when verified.
    pub fn from_path(path: &'a Path) -> Self {
        Artifact::File(path)
    }

    /// The artifact's SHA-256 (for a directory, the tree digest of [`digest`]), streamed.
    ///
    /// # Errors
    /// As [`digest::digest_path`].
    pub fn sha256(&self) -> Result<ArtifactDigest, ProvenanceError> {
        match self {
            Artifact::Bytes { bytes, .. } => {
                use sha2::Digest as _;
                Ok(ArtifactDigest(sha2::Sha256::digest(bytes).into()))
            }
            Artifact::File(path) => digest::sha256_path(path),
        }
    }

    /// The artifact's digest with `algorithm`.
    ///
    /// # Errors
    /// As [`digest::digest_path`].
    pub fn digest(&self, algorithm: HashAlgorithm) -> Result<Digest, ProvenanceError> {
        match self {
            Artifact::Bytes { bytes, .. } => Ok(digest::digest_bytes(bytes, algorithm)),
            Artifact::File(path) => digest::digest_path(path, algorithm),
        }
    }
}

/// The SHA-256 digest of a verified artifact.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ArtifactDigest([u8; 32]);

impl ArtifactDigest {
    /// A digest value (not a proof: [`Verified`] is the proof).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ArtifactDigest(bytes)
    }

    /// The digest bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as lowercase hex.
    pub fn hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl Debug for ArtifactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactDigest({})", self.hex())
    }
}

/// Proof that a value passed verification. Only verifiers in this crate construct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub(crate) fn new(value: T) -> Self {
        Verified(value)
    }

    /// The verified value.
    pub fn value(&self) -> &T {
        &self.0
    }

    /// The verified value, taken out.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why verification failed. Each variant says what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    /// The artifact's digest is not the expected one.
    #[error("artifact digest does not match the expected sha-256")]
    DigestMismatch,
    /// The expected digest is malformed.
    #[error("expected digest must be 64 hexadecimal characters")]
    BadExpectedDigest,
    /// The artifact could not be read.
    #[error("artifact `{path}` could not be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A FIFO, socket or device where a file, directory or link was expected.
    #[error("`{path}` is a special file (fifo, socket or device); refused")]
    SpecialFile {
        /// The entry.
        path: PathBuf,
    },
    /// A file or link target whose name is not UTF-8 cannot be encoded canonically.
    #[error("`{path}` has a name that is not utf-8; refused")]
    NonUtf8Path {
        /// The entry.
        path: PathBuf,
    },
    /// A file changed length while it was hashed.
    #[error("`{path}` changed while it was hashed")]
    ChangedWhileHashing {
        /// The file.
        path: PathBuf,
    },
    /// A publisher key could not be used.
    #[error("publisher `{publisher}`: {reason}")]
    BadKey {
        /// The publisher.
        publisher: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An RSA key outside 2048..=4096 bits.
    #[error("publisher `{publisher}`: rsa key has {bits} bits; 2048 to 4096 are accepted")]
    RsaKeySize {
        /// The publisher.
        publisher: String,
        /// The modulus size.
        bits: usize,
    },
    /// The keyring file is malformed.
    #[error("keyring: {0}")]
    Keyring(String),
    /// A signature was required from a publisher the keyring does not hold.
    #[error("publisher `{publisher}` is not in the keyring")]
    UnknownPublisher {
        /// The publisher.
        publisher: String,
    },
    /// No trusted key verifies the signature over the digest.
    #[error("signature does not verify with {}", match publisher { Some(p) => format!("publisher `{p}`'s key"), None => "any trusted key".to_owned() })]
    SignatureInvalid {
        /// The publisher whose key was required, if one was.
        publisher: Option<String>,
    },
    /// The attestation file is malformed.
    #[error("attestation: {0}")]
    Attestation(String),
    /// An attestation field is not what the policy allows.
    #[error("attestation field `{field}` is not allowed by the policy")]
    AttestationMismatch {
        /// `artifact_sha256`, `builder`, `source_repository` or `commit`.
        field: &'static str,
    },
    /// The catalog file is malformed.
    #[error("catalog: {0}")]
    Catalog(String),
}

/// Verifies artifacts before they are trusted.
///
/// Async because verification may read large files or fetch keys. Every error path must fail:
/// there is no "could not check, so accept".
#[async_trait]
pub trait ProvenanceVerifier: Debug + Send + Sync {
    /// Verifies `artifact`.
    ///
    /// # Errors
    /// A [`ProvenanceError`] saying what failed.
    async fn verify(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<ArtifactDigest>, ProvenanceError>;
}

#[async_trait]
impl<T: ProvenanceVerifier + ?Sized> ProvenanceVerifier for Arc<T> {
    async fn verify(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<ArtifactDigest>, ProvenanceError> {
        (**self).verify(artifact).await
    }
}

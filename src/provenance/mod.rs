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

mod checksum;

pub use checksum::Sha256Checksum;

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

    /// A file, read when verified.
    pub fn from_path(path: &'a Path) -> Self {
        Artifact::File(path)
    }
}

/// The SHA-256 digest of a verified artifact.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ArtifactDigest([u8; 32]);

impl ArtifactDigest {
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

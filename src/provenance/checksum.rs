//! SHA-256 checksum verification.

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::{
    Artifact, ArtifactDigest, Digest as AnyDigest, HashAlgorithm, ProvenanceError,
    ProvenanceVerifier, Verified,
};

/// Accepts an artifact (file, tree or bytes) whose SHA-256 or SHA-512 equals a pinned digest.
#[derive(Debug, Clone)]
pub struct Checksum {
    algorithm: HashAlgorithm,
    expected: Vec<u8>,
}

impl Checksum {
    /// Pins a digest given as hex: 64 characters for SHA-256, 128 for SHA-512.
    ///
    /// # Errors
    /// [`ProvenanceError::BadExpectedDigest`] for anything else.
    pub fn from_hex(algorithm: HashAlgorithm, hex: &str) -> Result<Self, ProvenanceError> {
        let len = match algorithm {
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        };
        if hex.len() != len {
            return Err(ProvenanceError::BadExpectedDigest);
        }
        let expected = hex
            .as_bytes()
            .chunks_exact(64)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(crate::hex::parse_sha256)
            })
            .collect::<Option<Vec<[u8; 32]>>>()
            .ok_or(ProvenanceError::BadExpectedDigest)?
            .concat();
        Ok(Checksum {
            algorithm,
            expected,
        })
    }

    /// Hashes the artifact (streamed) and compares in constant time.
    ///
    /// # Errors
    /// [`ProvenanceError::DigestMismatch`], or a hashing error.
    pub fn check(&self, artifact: &Artifact<'_>) -> Result<Verified<AnyDigest>, ProvenanceError> {
        let actual = artifact.digest(self.algorithm)?;
        if bool::from(actual.bytes().ct_eq(&self.expected)) {
            Ok(Verified::new(actual))
        } else {
            Err(ProvenanceError::DigestMismatch)
        }
    }
}

/// Accepts an artifact whose SHA-256 equals a pinned digest.
///
/// Files are hashed in 64 KiB chunks, so large artifacts never sit in memory whole; a
/// directory is hashed as a tree (see [`digest`](super::digest)).
#[derive(Debug, Clone)]
pub struct Sha256Checksum {
    expected: [u8; 32],
}

impl Sha256Checksum {
    /// Pins the digest given as 64 hex characters.
    ///
    /// # Errors
    /// [`ProvenanceError::BadExpectedDigest`] when `hex` is not 64 hex characters.
    pub fn from_hex(hex: &str) -> Result<Self, ProvenanceError> {
        Ok(Sha256Checksum {
            expected: crate::hex::parse_sha256(hex).ok_or(ProvenanceError::BadExpectedDigest)?,
        })
    }

    /// The SHA-256 of `bytes` as lowercase hex (to pin a known-good artifact).
    pub fn digest_hex(bytes: &[u8]) -> String {
        crate::hex::sha256_hex(bytes)
    }
}

#[async_trait]
impl ProvenanceVerifier for Sha256Checksum {
    async fn verify(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<ArtifactDigest>, ProvenanceError> {
        let actual = *artifact.sha256()?.bytes();
        if bool::from(actual.ct_eq(&self.expected)) {
            Ok(Verified::new(ArtifactDigest(actual)))
        } else {
            Err(ProvenanceError::DigestMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => unreachable!("runtime: {e}"),
        }
    }

    #[test]
    fn good_flipped_and_file() {
        let data = b"server binary".to_vec();
        let v = Sha256Checksum::from_hex(&Sha256Checksum::digest_hex(&data))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(block_on(v.verify(&Artifact::from_bytes("a", &data))).is_ok());
        let mut flipped = data.clone();
        flipped[0] ^= 1;
        assert!(matches!(
            block_on(v.verify(&Artifact::from_bytes("a", &flipped))),
            Err(ProvenanceError::DigestMismatch)
        ));
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let p = dir.path().join("bin");
        std::fs::write(&p, &data).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(block_on(v.verify(&Artifact::from_path(&p))).is_ok());
        let missing = dir.path().join("missing");
        assert!(matches!(
            block_on(v.verify(&Artifact::from_path(&missing))),
            Err(ProvenanceError::Read { .. })
        ));
        assert!(matches!(
            Sha256Checksum::from_hex("00"),
            Err(ProvenanceError::BadExpectedDigest)
        ));
    }
}

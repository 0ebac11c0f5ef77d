//! SHA-256 checksum verification.

use std::fs::File;
use std::io::Read;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Artifact, ArtifactDigest, ProvenanceError, ProvenanceVerifier, Verified};

/// Accepts an artifact whose SHA-256 equals a pinned digest.
///
/// Files are hashed in 64 KiB chunks, so large artifacts never sit in memory whole.
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

    fn digest(artifact: &Artifact<'_>) -> Result<[u8; 32], ProvenanceError> {
        match artifact {
            Artifact::Bytes { bytes, .. } => Ok(Sha256::digest(bytes).into()),
            Artifact::File(path) => {
                let read_err = |source| ProvenanceError::Read {
                    path: path.to_path_buf(),
                    source,
                };
                let mut file = File::open(path).map_err(read_err)?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(buf.get(..n).unwrap_or_default());
                }
                Ok(hasher.finalize().into())
            }
        }
    }
}

#[async_trait]
impl ProvenanceVerifier for Sha256Checksum {
    async fn verify(
        &self,
        artifact: &Artifact<'_>,
    ) -> Result<Verified<ArtifactDigest>, ProvenanceError> {
        let actual = Self::digest(artifact)?;
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

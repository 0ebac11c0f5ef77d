//! Build attestations: who built an artifact, from which repository and commit.
//!
//! The attestation file is JSON:
//! ```json
//! {
//!   "builder": "https://github.com/actions/runner",
//!   "source_repository": "https://github.com/acme/fs-server",
//!   "commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
//!   "artifact_sha256": "<64 hex: the artifact (or tree) this attestation is about>"
//! }
//! ```
//! The `artifact_sha256` binds the attestation to one artifact, so an attestation for another
//! build cannot be replayed. Sign the attestation file itself (its SHA-256, with a keyring
//! key) to make its fields trustworthy; `mcp-security verify-server --attestation-signature`
//! checks that.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ArtifactDigest, ProvenanceError, Verified};

/// The claims of a build attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildAttestation {
    /// The builder's identity (a URI).
    pub builder: String,
    /// The source repository (a URI).
    pub source_repository: String,
    /// The full commit id (40 or 64 hex characters).
    pub commit: String,
    /// The SHA-256 of the artifact this attestation describes, as hex.
    pub artifact_sha256: String,
}

impl BuildAttestation {
    /// Parses the JSON form.
    ///
    /// # Errors
    /// [`ProvenanceError::Attestation`] for malformed JSON or a missing field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProvenanceError> {
        serde_json::from_slice(bytes).map_err(|e| {
            ProvenanceError::Attestation(format!("malformed attestation: {}", e.classify_str()))
        })
    }

    /// Reads and parses an attestation file.
    ///
    /// # Errors
    /// [`ProvenanceError::Read`], or as [`BuildAttestation::from_json`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ProvenanceError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ProvenanceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes)
    }
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid json",
            serde_json::error::Category::Data => "missing, unknown or mistyped field",
            serde_json::error::Category::Eof => "truncated json",
        }
    }
}

/// What an attestation must say. An empty list allows any value for that field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationPolicy {
    /// Allowed builders (exact match).
    #[serde(default)]
    pub builders: Vec<String>,
    /// Allowed source repositories (exact match).
    #[serde(default)]
    pub source_repositories: Vec<String>,
    /// Allowed commits (exact, case-insensitive); empty: any well-formed commit.
    #[serde(default)]
    pub commits: Vec<String>,
}

impl AttestationPolicy {
    /// Checks `attestation` against this policy and binds it to `digest`.
    ///
    /// # Errors
    /// [`ProvenanceError::AttestationMismatch`] naming the field that failed: `artifact_sha256`,
    /// `builder`, `source_repository` or `commit`.
    pub fn check(
        &self,
        attestation: &BuildAttestation,
        digest: &ArtifactDigest,
    ) -> Result<Verified<BuildAttestation>, ProvenanceError> {
        let mismatch = |field: &'static str| ProvenanceError::AttestationMismatch { field };
        if !attestation
            .artifact_sha256
            .eq_ignore_ascii_case(&digest.hex())
        {
            return Err(mismatch("artifact_sha256"));
        }
        if !self.builders.is_empty() && !self.builders.contains(&attestation.builder) {
            return Err(mismatch("builder"));
        }
        if !self.source_repositories.is_empty()
            && !self
                .source_repositories
                .contains(&attestation.source_repository)
        {
            return Err(mismatch("source_repository"));
        }
        let commit = &attestation.commit;
        let well_formed =
            matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed
            || (!self.commits.is_empty()
                && !self.commits.iter().any(|c| c.eq_ignore_ascii_case(commit)))
        {
            return Err(mismatch("commit"));
        }
        Ok(Verified::new(attestation.clone()))
    }
}

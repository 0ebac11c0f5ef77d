//! Streamed SHA-256 / SHA-512 digests of a file, bytes, or a directory tree.
//!
//! # The directory tree encoding (version 1)
//! A tree's digest is the hash of this byte stream, so anyone can recompute it:
//!
//! 1. the 21 bytes `mcp-security-tree-v1\n` (plus nothing else: a version tag so a future
//!    encoding never collides with this one);
//! 2. then, for every entry under the root (the root itself excluded), in ascending byte order
//!    of its relative path written with `/` separators (UTF-8; a name that is not UTF-8 is
//!    refused):
//!    - the path length as a big-endian `u64`, then the path bytes;
//!    - one type byte: `d` directory, `f` regular file, `x` regular file with any execute bit
//!      set (as git, the other permission bits are left out: they follow the umask), `l`
//!      symbolic link;
//!    - the content length as a big-endian `u64`, then the content: the file's bytes, the
//!      link's target path bytes (links are recorded, never followed), nothing for a directory.
//!
//! Anything else (a FIFO, socket or device) is refused with [`ProvenanceError::SpecialFile`]:
//! reading one could block or never end. A file whose length changes while it is hashed is
//! refused with [`ProvenanceError::ChangedWhileHashing`].
//!
//! Lengths before contents make the stream unambiguous: no two different trees give the
//! same bytes. Every read goes through one fixed 64 KiB buffer.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256, Sha512};

use super::{ArtifactDigest, ProvenanceError};

/// The buffer every file is read through.
pub const BUFFER_SIZE: usize = 64 * 1024;

const TREE_TAG: &[u8] = b"mcp-security-tree-v1\n";

/// A hash function for artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-256 (32 bytes).
    Sha256,
    /// SHA-512 (64 bytes).
    Sha512,
}

impl HashAlgorithm {
    /// `sha256` or `sha512`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }
}

/// A digest and the algorithm that made it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: HashAlgorithm,
    bytes: Vec<u8>,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The digest bytes (32 or 64).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The digest as lowercase hex.
    pub fn hex(&self) -> String {
        crate::hex::encode(&self.bytes)
    }

    /// As an [`ArtifactDigest`], when this is a SHA-256 digest.
    pub fn as_sha256(&self) -> Option<ArtifactDigest> {
        let bytes: [u8; 32] = self.bytes.as_slice().try_into().ok()?;
        (self.algorithm == HashAlgorithm::Sha256).then_some(ArtifactDigest(bytes))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({}:{})", self.algorithm.as_str(), self.hex())
    }
}

/// The digest of the file, or of the directory tree, at `path` (symbolic link at `path`
/// itself is followed once: it names the artifact; links inside a tree are recorded).
///
/// # Errors
/// [`ProvenanceError::Read`] when something cannot be read, [`ProvenanceError::SpecialFile`],
/// [`ProvenanceError::NonUtf8Path`] or [`ProvenanceError::ChangedWhileHashing`].
pub fn digest_path(path: &Path, algorithm: HashAlgorithm) -> Result<Digest, ProvenanceError> {
    let bytes = match algorithm {
        HashAlgorithm::Sha256 => hash_path::<Sha256>(path)?.to_vec(),
        HashAlgorithm::Sha512 => hash_path::<Sha512>(path)?.to_vec(),
    };
    Ok(Digest { algorithm, bytes })
}

/// The digest of bytes in memory.
pub fn digest_bytes(bytes: &[u8], algorithm: HashAlgorithm) -> Digest {
    let bytes = match algorithm {
        HashAlgorithm::Sha256 => Sha256::digest(bytes).to_vec(),
        HashAlgorithm::Sha512 => Sha512::digest(bytes).to_vec(),
    };
    Digest { algorithm, bytes }
}

/// The SHA-256 of the file or tree at `path`, as [`digest_path`] computes it.
///
/// # Errors
/// As [`digest_path`].
pub fn sha256_path(path: &Path) -> Result<ArtifactDigest, ProvenanceError> {
    Ok(ArtifactDigest(hash_path::<Sha256>(path)?.into()))
}

pub(crate) fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProvenanceError + '_ {
    move |source| ProvenanceError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn hash_path<H: sha2::Digest>(path: &Path) -> Result<sha2::digest::Output<H>, ProvenanceError> {
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    let mut hasher = H::new();
    let mut buf = vec![0u8; BUFFER_SIZE];
    if meta.is_dir() {
        hasher.update(TREE_TAG);
        let mut entries = Vec::new();
        collect(path, "", &mut entries)?;
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (rel, full, meta) in &entries {
            hasher.update((rel.len() as u64).to_be_bytes());
            hasher.update(rel.as_bytes());
            let kind = entry_kind(full, meta)?;
            hasher.update([kind]);
            match kind {
                b'd' => hasher.update(0u64.to_be_bytes()),
                b'l' => {
                    let target = std::fs::read_link(full).map_err(read_err(full))?;
                    let target = target
                        .to_str()
                        .ok_or_else(|| ProvenanceError::NonUtf8Path { path: full.clone() })?;
                    hasher.update((target.len() as u64).to_be_bytes());
                    hasher.update(target.as_bytes());
                }
                _ => {
                    hasher.update(meta.len().to_be_bytes());
                    stream_file(&mut hasher, full, meta.len(), &mut buf)?;
                }
            }
        }
    } else if meta.is_file() {
        stream_file(&mut hasher, path, meta.len(), &mut buf)?;
    } else {
        return Err(ProvenanceError::SpecialFile {
            path: path.to_path_buf(),
        });
    }
    Ok(hasher.finalize())
}

/// Every entry below `dir`, with its relative path, recursively; links are not followed.
fn collect(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf, Metadata)>,
) -> Result<(), ProvenanceError> {
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let full = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| ProvenanceError::NonUtf8Path { path: full.clone() })?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&full).map_err(read_err(&full))?;
        let is_dir = meta.file_type().is_dir();
        out.push((rel.clone(), full.clone(), meta));
        if is_dir {
            collect(&full, &rel, out)?;
        }
    }
    Ok(())
}

fn entry_kind(path: &Path, meta: &Metadata) -> Result<u8, ProvenanceError> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        Ok(b'l')
    } else if ft.is_dir() {
        Ok(b'd')
    } else if ft.is_file() {
        Ok(if is_executable(meta) { b'x' } else { b'f' })
    } else {
        Err(ProvenanceError::SpecialFile {
            path: path.to_path_buf(),
        })
    }
}

#[cfg(unix)]
fn is_executable(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &Metadata) -> bool {
    false
}

/// Feeds exactly `expected` bytes of the file into `hasher`, through `buf`.
fn stream_file<H: sha2::Digest>(
    hasher: &mut H,
    path: &Path,
    expected: u64,
    buf: &mut [u8],
) -> Result<(), ProvenanceError> {
    let mut file = File::open(path).map_err(read_err(path))?;
    let mut total = 0u64;
    loop {
        let n = match file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(path)(e)),
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > expected {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    if total != expected {
        return Err(ProvenanceError::ChangedWhileHashing {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_digest_matches_one_shot() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let p = dir.path().join("a");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap_or_else(|e| unreachable!("{e}"));
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let streamed = digest_path(&p, alg).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(streamed, digest_bytes(&data, alg));
        }
    }
}

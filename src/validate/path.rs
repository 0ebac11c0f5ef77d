//! Paths: shape checks, confinement to roots by whole components, and symlink resolution.

use std::borrow::Cow;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::unicode;

/// A root directory, as written and as the file system resolves it.
#[derive(Debug, Clone)]
struct Root {
    /// The root's components, for comparing without building a path.
    segments: Vec<String>,
    lexical: PathBuf,
    /// The root with its own symlinks resolved, when it exists (`/tmp` may live elsewhere).
    canonical: Option<PathBuf>,
    /// The root directory, held open: the kernel resolves paths beneath it in one call.
    #[cfg(target_os = "linux")]
    handle: Option<Arc<rustix::fd::OwnedFd>>,
}

/// Checks file system paths (tool arguments, the path of `file:` URIs) and confines them to
/// roots.
///
/// Refused whatever the roots: empty paths, control characters and NUL bytes, backslashes (not
/// a separator here, but one on the server's neighbour), percent-encoded dots, separators and
/// NULs, `~` at the start (home directory expansion), `$VAR`, `${VAR}`, `$(...)` and backticks
/// (shell expansion), and `..` segments, also when Unicode normalisation makes them (`．．`).
///
/// With roots: the path must be absolute and lie under a root, compared component by
/// component (`/srv/data` does not admit `/srv/data_evil`). With symlink resolution (on by
/// default), every existing prefix of the path is resolved, so a link inside a root cannot lead
/// outside it, and a path through a dangling link is refused (it would be created wherever the
/// link points).
///
/// ```
/// use mcp_security::validate::PathGuard;
///
/// let guard = PathGuard::new(["/srv/data"]).resolve_symlinks(false);
/// assert!(guard.check("/srv/data/reports/a..b.txt").is_ok());
/// assert!(guard.check("/srv/data_evil/x").is_err());
/// assert!(guard.check("/srv/data/../../etc/passwd").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct PathGuard {
    roots: Vec<Root>,
    resolve: bool,
}

impl PathGuard {
    /// A guard confining paths to `roots` (absolute directories), resolving symlinks.
    pub fn new<S: AsRef<str>>(roots: impl IntoIterator<Item = S>) -> Self {
        let roots = roots
            .into_iter()
            .map(|r| {
                let lexical = normalise_root(r.as_ref());
                let canonical = std::fs::canonicalize(&lexical).ok();
                let segments = segments(r.as_ref()).map(str::to_owned).collect();
                #[cfg(target_os = "linux")]
                let handle = canonical.as_ref().and_then(|c| {
                    use rustix::fs::{Mode, OFlags};
                    rustix::fs::open(
                        c,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .ok()
                    .map(Arc::new)
                });
                Root {
                    segments,
                    lexical,
                    canonical,
                    #[cfg(target_os = "linux")]
                    handle,
                }
            })
            .collect();
        PathGuard {
            roots,
            resolve: true,
        }
    }

    /// Shape checks only: any absolute or relative path without traversal.
    pub fn unconfined() -> Self {
        PathGuard {
            roots: Vec::new(),
            resolve: false,
        }
    }

    /// Whether to resolve symlinks against the file system (default: on). Off, only the
    /// spelling of the path is checked: for servers whose paths are not local files.
    pub fn resolve_symlinks(mut self, on: bool) -> Self {
        self.resolve = on;
        self
    }

    /// Whether any root is configured.
    pub fn is_confined(&self) -> bool {
        !self.roots.is_empty()
    }

    /// Checks a plain path (a tool argument).
    ///
    /// # Errors
    /// What is wrong with it, in words that never repeat the path.
    pub fn check(&self, path: &str) -> Result<(), &'static str> {
        if path.is_empty() {
            return Err("path is empty");
        }
        if let Some(p) = encoded_traversal(path) {
            return Err(p);
        }
        self.check_decoded(path)
    }

    /// Checks a path already percent-decoded from a `file:` URI.
    pub(crate) fn check_decoded(&self, path: &str) -> Result<(), &'static str> {
        shape(path)?;
        // A server (or the file system) that normalises Unicode sees the NFKC form: check that
        // too, so `．．／` cannot become `../` behind the check.
        let normal = unicode::matching_form(path);
        if let Cow::Owned(n) = &normal {
            shape(n)?;
        }
        if self.roots.is_empty() {
            return Ok(());
        }
        if !path.starts_with('/') {
            return Err("path must be absolute");
        }
        // The first root the path lies under, lexically.
        let root = self.roots.iter().find(|r| {
            let mut parts = segments(path);
            r.segments
                .iter()
                .all(|seg| parts.next() == Some(seg.as_str()))
        });
        let Some(root) = root else {
            return Err("path is outside the allowed roots");
        };
        if self.resolve {
            if beneath(root, segments(path).skip(root.segments.len())) {
                return Ok(());
            }
            // The roots were resolved when the guard was built (operators own them); only the
            // components below the root are walked, one `readlink` each.
            let below = segments(path).skip(root.segments.len());
            let resolved = resolve_from(root.canonical.as_deref().unwrap_or(&root.lexical), below)?;
            let inside = self
                .roots
                .iter()
                .any(|r| resolved.starts_with(r.canonical.as_deref().unwrap_or(&r.lexical)));
            if !inside {
                return Err("path resolves outside the allowed roots");
            }
        }
        Ok(())
    }
}

fn normalise_root(root: &str) -> PathBuf {
    lexical(root)
}

/// The components of a path, without `.` and empty ones (`..` was refused before).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty() && *s != ".")
}

/// The path with `.` segments and repeated separators removed (`..` was refused before).
fn lexical(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        if let Component::Normal(seg) = c {
            out.push(seg);
        }
    }
    out
}

/// Percent-escapes that decode to a dot, a separator, a NUL or another escape: a path is not a
/// URI, so an escape in it is meant for a server that decodes.
fn encoded_traversal(path: &str) -> Option<&'static str> {
    let b = path.as_bytes();
    let encoded = b.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                // `%c0`/`%e0`: the lead bytes of overlong encodings of `.` and `/`.
                .is_some_and(|c| matches!(c, b'.' | b'/' | b'\\' | 0 | b'%' | 0xc0 | 0xc1 | 0xe0))
    });
    encoded.then_some("path contains percent-encoded dots, separators or nul bytes")
}

/// Refusals that hold whatever the roots. One pass over the bytes for the ASCII checks; the
/// character-level ones only for text that is not ASCII.
fn shape(path: &str) -> Result<(), &'static str> {
    let b = path.as_bytes();
    if b.starts_with(b"//") {
        // POSIX leaves a leading `//` to the implementation, and elsewhere it is a network share.
        return Err("path starts with `//` (a network path on some systems)");
    }
    if b.first() == Some(&b'~') {
        return Err("path starts with `~` (home directory expansion)");
    }
    let mut segment_start = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            0..=0x1f | 0x7f => return Err("path contains control characters"),
            b'\\' => return Err("path contains a backslash"),
            b'`' => return Err("path contains a variable or command expansion"),
            b'$' if b.get(i + 1).is_some_and(|&n| {
                n == b'{' || n == b'(' || n == b'_' || n.is_ascii_alphabetic()
            }) =>
            {
                return Err("path contains a variable or command expansion");
            }
            b'/' => {
                if &b[segment_start..i] == b".." {
                    return Err("path contains `..` segments");
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    if &b[segment_start..] == b".." {
        return Err("path contains `..` segments");
    }
    if !path.is_ascii() {
        if path.chars().any(char::is_control) {
            return Err("path contains control characters");
        }
        if unicode::has_invisible(path) {
            return Err("path contains invisible characters");
        }
    }
    Ok(())
}

/// Whether the kernel can open `below` beneath `root` without ever leaving it, every link
/// followed (`openat2` with `RESOLVE_BENEATH`): one system call for the common case of a path
/// that exists. `false` says nothing (a missing component, an absolute link that stays inside,
/// an older kernel): the caller then walks the path itself.
#[cfg(target_os = "linux")]
fn beneath<'a>(root: &Root, below: impl Iterator<Item = &'a str>) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Some(dir) = &root.handle else {
        return false;
    };
    let mut rest = String::new();
    for seg in below {
        if !rest.is_empty() {
            rest.push('/');
        }
        rest.push_str(seg);
    }
    if rest.is_empty() {
        return true;
    }
    rustix::fs::openat2(
        &**dir,
        rest.as_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn beneath<'a>(_root: &Root, _below: impl Iterator<Item = &'a str>) -> bool {
    false
}

/// Resolves `below` (components without `.` or `..`) from `base`, an existing directory
/// already resolved: every existing prefix is followed where it really goes, a link to a link
/// included. The part that does not exist yet is appended as written; a link that points
/// nowhere is refused (whatever is created through it lands wherever it points).
fn resolve_from<'a>(
    base: &Path,
    below: impl Iterator<Item = &'a str>,
) -> Result<PathBuf, &'static str> {
    let mut cur = base.to_path_buf();
    let mut below = below.peekable();
    while let Some(seg) = below.next() {
        let next = cur.join(seg);
        // `readlink` answers the only question asked here (is it a link, does it exist) without
        // filling a stat buffer: not a link is EINVAL, missing is ENOENT.
        match std::fs::read_link(&next) {
            Ok(_) => match std::fs::canonicalize(&next) {
                Ok(target) => cur = target,
                Err(_) => return Err("path goes through a dangling symbolic link"),
            },
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput) => cur = next,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound) => {
                cur = next;
                for rest in below {
                    cur.push(rest);
                }
                return Ok(cur);
            }
            // ENOTDIR (a file used as a directory), EACCES, ELOOP ...: not resolvable.
            Err(_) => return Err("path could not be resolved"),
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let g = PathGuard::unconfined();
        for ok in [
            "/srv/data/a..b.txt",
            "src/main.rs",
            "/srv/./data//x",
            "/home/o'brien/notes.md",
            "/srv/données/été.txt",
            "/price$5.txt",
        ] {
            assert_eq!(g.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../etc/passwd",
            "/srv/data/../../etc",
            "~/.ssh/id_rsa",
            "~root/x",
            "$HOME/.ssh",
            "${HOME}/x",
            "/tmp/$(id)",
            "/tmp/`id`",
            "a\\..\\b",
            "/srv/%2e%2e/etc",
            "/srv/%252e%252e/etc",
            "/srv/%c0%ae%c0%ae/etc",
            "/srv/a\0b",
            "/srv/．．/etc",
            "/srv/a\n",
        ] {
            assert!(g.check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn confinement_by_component() {
        let g = PathGuard::new(["/srv/data/"]).resolve_symlinks(false);
        assert_eq!(g.check("/srv/data"), Ok(()));
        assert_eq!(g.check("/srv/data/x/y"), Ok(()));
        assert!(g.check("/srv/data_evil/x").is_err());
        assert!(g.check("/srv/database").is_err());
        assert!(g.check("relative/x").is_err());
        assert!(g.check("/etc/passwd").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_fast_path_proves_only_what_stays_beneath() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let base = std::fs::canonicalize(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let root = base.join("root");
        let mk = |r: std::io::Result<()>| r.unwrap_or_else(|e| unreachable!("{e}"));
        mk(std::fs::create_dir_all(root.join("sub")));
        mk(std::fs::write(root.join("sub/f"), "x"));
        mk(std::os::unix::fs::symlink("sub", root.join("rel_in")));
        mk(std::os::unix::fs::symlink("../", root.join("rel_out")));
        mk(std::os::unix::fs::symlink(
            root.join("sub"),
            root.join("abs_in"),
        ));
        let g = PathGuard::new([root.display().to_string()]);
        let r = &g.roots[0];
        let fast = |p: &str| beneath(r, segments(p));
        assert!(r.handle.is_some());
        assert!(fast("sub/f"));
        assert!(fast("rel_in/f"));
        assert!(!fast("rel_out/root/sub/f"), "leaves the root on the way");
        assert!(!fast("abs_in/f"), "absolute links are left to the walk");
        assert!(!fast("sub/missing"));
        // The walk then decides: the absolute link inside is fine, the way out is not.
        let at = |p: &str| format!("{}/{p}", root.display());
        assert_eq!(g.check(&at("abs_in/f")), Ok(()));
        assert_eq!(g.check(&at("sub/missing")), Ok(()));
        // Out and back in ends inside: the walk accepts what the kernel's stricter rule did not.
        assert_eq!(g.check(&at("rel_out/root/sub/f")), Ok(()));
        assert!(g.check(&at("rel_out/elsewhere")).is_err());
    }
}

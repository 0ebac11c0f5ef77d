//! Properties of the path and URL guards over generated input.
//!
//! - A path the guard accepts, once resolved by the file system, lies inside a root, whatever
//!   mix of `..`, `.`, empty segments, encodings, look-alike characters and symlinks (in,
//!   out, dangling, chained) it is built from.
//! - The URL guard never panics, and a URL it accepts whose host is an address names a public
//!   address.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mcp_security::validate::{PathGuard, SsrfGuard};
use proptest::prelude::*;

struct Tree {
    base: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

/// base/data (the root) with files, links in, out, dangling and chained; base/data_evil and
/// base/outside beside it.
fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("data");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("sub/file.txt"), "x").unwrap();
        std::fs::create_dir_all(base.join("data_evil")).unwrap();
        std::fs::create_dir_all(base.join("outside/nested")).unwrap();
        let link = |target: &Path, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
        link(&base.join("outside"), &root.join("out"));
        link(Path::new("../outside"), &root.join("rel_out"));
        link(&root.join("sub"), &root.join("in"));
        link(Path::new("sub/deeper"), &root.join("rel_in"));
        link(&root.join("missing"), &root.join("dangling"));
        link(&root.join("out"), &root.join("chain"));
        link(&root.join("sub/deeper/../.."), &root.join("sub/up"));
        link(&base.join("data_evil"), &root.join("sub/evil"));
        Tree {
            base,
            root,
            _dir: dir,
        }
    })
}

/// Where the file system really goes for `path`: the longest existing prefix canonicalised,
/// the rest appended.
fn really(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("data".to_owned()),
        Just("data_evil".to_owned()),
        Just("outside".to_owned()),
        Just("sub".to_owned()),
        Just("deeper".to_owned()),
        Just("file.txt".to_owned()),
        Just("out".to_owned()),
        Just("rel_out".to_owned()),
        Just("in".to_owned()),
        Just("rel_in".to_owned()),
        Just("dangling".to_owned()),
        Just("chain".to_owned()),
        Just("up".to_owned()),
        Just("evil".to_owned()),
        Just("new.txt".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("．．".to_owned()),
        Just("a..b".to_owned()),
        Just("~".to_owned()),
        "[a-z.]{1,4}",
    ]
}

fn path_from(prefix: u8, segs: &[String]) -> String {
    let t = tree();
    let start = match prefix % 4 {
        0 => t.root.display().to_string(),
        1 => t.base.display().to_string(),
        2 => String::new(),
        _ => format!("{}_evil", t.root.display()),
    };
    let mut p = start;
    for s in segs {
        p.push('/');
        p.push_str(s);
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_paths_resolve_inside_a_root(prefix in any::<u8>(), segs in prop::collection::vec(segment(), 0..7)) {
        let t = tree();
        let guard = PathGuard::new([t.root.display().to_string()]);
        let path = path_from(prefix, &segs);
        if guard.check(&path).is_ok() {
            let real = really(Path::new(&path));
            prop_assert!(
                real.starts_with(&t.root),
                "{path} was accepted but resolves to {}", real.display()
            );
        }
    }

    #[test]
    fn url_guard_never_panics_and_accepts_only_public_addresses(
        scheme in prop_oneof![Just("http".to_owned()), Just("https".to_owned()), Just("ftp".to_owned()), "[a-z]{1,5}"],
        user in prop_oneof![Just(String::new()), Just("a@".to_owned()), Just("a:b@".to_owned())],
        host in prop_oneof![
            "[0-9]{1,10}",
            "(0x)?[0-9a-f]{1,8}",
            "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}\\.?",
            "0[0-7]{1,4}(\\.0[0-7]{1,3}){0,3}",
            "\\[[0-9a-f:.]{2,30}\\]",
            "[a-z]{1,8}(\\.[a-z]{1,5}){0,2}\\.?",
        ],
        rest in "(:[0-9]{1,5})?(/[a-z%0-9]{0,6}){0,2}",
    ) {
        let raw = format!("{scheme}://{user}{host}{rest}");
        let guard = SsrfGuard::new();
        if guard.check(&raw).is_ok() {
            let url = url::Url::parse(&raw).unwrap();
            let ip = match url.host() {
                Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
                Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
                _ => None,
            };
            if let Some(ip) = ip {
                let inside = match ip {
                    std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local()
                        || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
                        || v4.octets()[0] == 0 || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])),
                    std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified()
                        || v6.to_ipv4_mapped().is_some_and(|m| m.is_private() || m.is_loopback())
                        || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
                };
                prop_assert!(!inside, "{raw} accepted but names {ip}");
            }
        }
    }
}

#[test]
fn the_generated_tree_has_both_outcomes() {
    // The property above is only worth something if the guard accepts some generated paths
    // and refuses others: pin a few of each.
    let t = tree();
    let guard = PathGuard::new([t.root.display().to_string()]);
    let r = t.root.display();
    for ok in [
        format!("{r}/in/file.txt"),
        format!("{r}/rel_in"),
        format!("{r}/sub/new.txt"),
        format!("{r}/a..b"),
    ] {
        assert!(guard.check(&ok).is_ok(), "{ok}");
    }
    for bad in [
        format!("{r}/out/nested"),
        format!("{r}/rel_out"),
        format!("{r}/chain/x"),
        format!("{r}/sub/evil"),
        format!("{r}/dangling"),
        format!("{r}_evil"),
    ] {
        assert!(guard.check(&bad).is_err(), "{bad}");
    }
}

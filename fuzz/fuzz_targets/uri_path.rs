//! Resource URIs, path arguments and URLs: no input panics, and what the path guard accepts
//! stays inside its root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_security::validate::{
    Frame, FrameLimits, InputValidator, PathGuard, ResourceUriValidator, SsrfGuard, unicode,
};
use mcp_security::{Action, Identity, RequestContext, Transport};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::new(1 << 16, 16);
    let _ = limits.check_raw(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = unicode::matching_form(s);
    let _ = unicode::strip_invisible(s);

    // Lexical confinement (no file system): an accepted path is under the root, without `..`.
    let guard = PathGuard::new(["/srv/data"]).resolve_symlinks(false);
    if guard.check(s).is_ok() {
        // Compare components, as the file system will: `.` and empty segments fall away.
        let segs: Vec<&str> = s.split('/').filter(|seg| !seg.is_empty() && *seg != ".").collect();
        assert!(s.starts_with('/'), "accepted a relative path: {s:?}");
        assert!(!segs.contains(&".."), "accepted `..`: {s:?}");
        assert!(segs.starts_with(&["srv", "data"]), "accepted outside the root: {s:?}");
    }
    let _ = PathGuard::unconfined().check(s);

    let uris = ResourceUriValidator::new()
        .with_schemes(["file", "https"])
        .with_path_guard(std::sync::Arc::new(guard));
    let action = Action::ReadResource { uri: s };
    let frame_ok = uris.check_frame(&Frame::new(&action, None)).is_ok();
    let cx = RequestContext::new(Transport::DryRun);
    let valid = uris.validate(&action, &Identity::new("fuzz"), &cx).is_ok();
    if valid && s.len() > 5 && s[..5].eq_ignore_ascii_case("file:") {
        assert!(
            frame_ok,
            "validate accepted what the frame check refused: {s:?}"
        );
    }

    let _ = SsrfGuard::new().check(s);
    let _ = SsrfGuard::new().allow_private(true).check(s);
});

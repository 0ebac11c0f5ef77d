//! The URI shapes that let a glob or a root prefix match something it should not. Shared by the
//! authorizer (which refuses to match such URIs) and the URI validator (which refuses them).

/// Why a URI's path is not plain; `None` when it is.
///
/// Refused: control characters, whitespace and backslashes; percent-encoded dots, slashes,
/// backslashes and NUL bytes; double encoding (`%25` followed by two hex digits); dot segments,
/// including `..;x` (a path parameter after the dots); and empty path segments (`/srv/data//etc`),
/// which path joins can turn into absolute paths.
pub(crate) fn problem(uri: &str) -> Option<&'static str> {
    if uri
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Some("uri contains whitespace, control characters or backslashes");
    }
    let hier = uri.split(['?', '#']).next().unwrap_or_default();
    // A file URI names a path and nothing else. What follows `?` or `#` is outside every check
    // of the path, yet a server that turns the URI into a path by cutting `file://` reads it as
    // part of the path (`file:///srv/public/x#/../../../etc/passwd`).
    if hier.len() < uri.len()
        && hier
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
    {
        return Some("file uri has a query or fragment");
    }
    if ["%2e", "%2f", "%5c"]
        .iter()
        .any(|n| contains_ignore_case(hier, n))
    {
        return Some("uri contains an encoded dot or path separator");
    }
    if contains_ignore_case(uri, "%00") {
        return Some("uri contains an encoded nul byte");
    }
    if double_encoded(uri) {
        return Some("uri is percent-encoded twice");
    }
    // A canonical URI never escapes letters, digits or `-._~`; one that does is spelled to slip
    // past a rule that names the plain form (`%73ecret` for `secret`).
    if encodes_unreserved(hier) {
        return Some("uri percent-encodes a character that needs no encoding");
    }
    // The path: after `scheme:` and, when present, after `//authority`.
    let after_scheme = hier.split_once(':').map_or(hier, |(_, rest)| rest);
    let path = match after_scheme.strip_prefix("//") {
        Some(rest) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            // `file://../x` names the "host" `..`: a relative path in disguise.
            if authority == "." || authority == ".." {
                return Some("uri contains dot segments");
            }
            path
        }
        None => after_scheme,
    };
    let mut segments = path.split('/');
    // A leading "/" yields one empty first segment; that one is the root, not an empty segment.
    if path.starts_with('/') {
        segments.next();
    }
    let segments: Vec<&str> = segments.collect();
    for (i, seg) in segments.iter().enumerate() {
        // `secret.txt;v=1` is `secret.txt` to many servers: path parameters are refused.
        if seg.contains(';') {
            return Some("uri contains path parameters");
        }
        if *seg == "." || *seg == ".." {
            return Some("uri contains dot segments");
        }
        // A trailing "/" is a directory, not an empty segment.
        if seg.is_empty() && i + 1 < segments.len() {
            return Some("uri contains empty path segments");
        }
    }
    None
}

pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn encodes_unreserved(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
    })
}

/// The part of a URI that rules are matched against: without query and fragment, and without
/// a trailing slash (so `secret.txt?x=1`, `secret.txt#f` and `secret.txt/` all meet the rule
/// written for `secret.txt`).
pub(crate) fn match_key(uri: &str) -> &str {
    let key = uri.split(['?', '#']).next().unwrap_or_default();
    match key.strip_suffix('/') {
        Some(trimmed) if !trimmed.ends_with('/') && !trimmed.ends_with(':') => trimmed,
        _ => key,
    }
}

fn double_encoded(uri: &str) -> bool {
    uri.as_bytes().windows(5).any(|w| {
        w[0] == b'%'
            && w[1] == b'2'
            && w[2] == b'5'
            && w[3].is_ascii_hexdigit()
            && w[4].is_ascii_hexdigit()
    })
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn match_keys() {
        use super::match_key;
        assert_eq!(
            match_key("file:///srv/secret.txt?x=1"),
            "file:///srv/secret.txt"
        );
        assert_eq!(
            match_key("file:///srv/secret.txt#f"),
            "file:///srv/secret.txt"
        );
        assert_eq!(
            match_key("file:///srv/secret.txt/"),
            "file:///srv/secret.txt"
        );
        assert_eq!(match_key("file:///"), "file:///");
        assert_eq!(match_key("https://h/"), "https://h");
    }

    #[test]
    fn plain_and_tricky() {
        for ok in [
            "file:///srv/data/a.csv",
            "file:///srv/data/",
            "https://h/a?x=..",
            "file://localhost/a/b",
            "mem:abc",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in [
            "file:///srv/data/../etc",
            "file:///srv/data/./x",
            "file:///srv/data/..;/x",
            "file:///srv/secret.txt;v=1",
            "file:///srv/%73ecret.txt",
            "file:///srv/data//etc/passwd",
            "file:///srv/data/%2e%2e/x",
            "file:///srv/data/%252e%252e/x",
            "file:///srv/data/a%2Fb",
            "file:///srv/a%00",
            "file:///srv/a b",
            "file:///srv/a\\b",
            "file:///srv/data/..",
            "file://..",
            "file://../etc/passwd",
            "file:///srv/public/x#/../../../etc/passwd",
            "FILE:///srv/public/x?/../../etc/passwd",
            "file:///srv/data/a.csv?v=1",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }
}

//! Resource URI syntax and confinement.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::{Frame, InputValidator, PathGuard, ValidationError, unicode};
use crate::context::{Identity, RequestContext};
use crate::message::Action;

const MAX_URI_LEN: usize = 8192;

/// Checks resource URIs (`resources/read`, `resources/subscribe`).
///
/// At the frame stage, for every caller: the URI has a scheme, no control characters or
/// backslashes, no dot segments and no percent-encoded dots, separators or NUL bytes; a `file:`
/// URI has an absolute path and an empty or `localhost` authority (`file://../../etc/passwd`
/// names the host `..` and is refused).
///
/// After authorization: the scheme is in the allowed list (when one is set) and a `file:` path
/// passes the [`PathGuard`]: it lies under one of the allowed roots (when roots are set),
/// compared segment by segment, with symlinks resolved (see [`with_path_guard`](Self::with_path_guard)).
///
/// ```
/// use mcp_security::validate::{Frame, InputValidator, ResourceUriValidator};
/// use mcp_security::Action;
///
/// let v = ResourceUriValidator::new().with_roots(["/srv/data"]);
/// let bad = Action::ReadResource { uri: "file://../../etc/passwd" };
/// assert!(v.check_frame(&Frame::new(&bad, None)).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResourceUriValidator {
    schemes: Vec<String>,
    paths: std::sync::Arc<PathGuard>,
}

impl ResourceUriValidator {
    /// Syntax checks only: any scheme, any path.
    pub fn new() -> Self {
        ResourceUriValidator::default()
    }

    /// Allows only these schemes (compared case-insensitively).
    pub fn with_schemes<S: Into<String>>(mut self, schemes: impl IntoIterator<Item = S>) -> Self {
        self.schemes = super::lowercased(schemes);
        self
    }

    /// Confines `file:` URIs to these absolute directories, resolving symlinks.
    pub fn with_roots<S: AsRef<str>>(mut self, roots: impl IntoIterator<Item = S>) -> Self {
        self.paths = std::sync::Arc::new(PathGuard::new(roots));
        self
    }

    /// Checks the path of `file:` URIs with `guard` (shared with path arguments).
    pub fn with_path_guard(mut self, guard: std::sync::Arc<PathGuard>) -> Self {
        self.paths = guard;
        self
    }
}

/// The scheme and the rest of a URI, when it has a syntactically valid scheme.
fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some((scheme, rest))
}

/// The decoded path of a `file:` URI's remainder (after `file:`), checked for shape.
fn file_path(rest: &str) -> Result<Cow<'_, str>, ValidationError> {
    let path = if let Some(after) = rest.strip_prefix("//") {
        let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
        if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
            return Err(ValidationError::InvalidUri(
                "file uri must have an empty or localhost authority",
            ));
        }
        path
    } else {
        rest
    };
    if !path.starts_with('/') {
        return Err(ValidationError::InvalidUri(
            "file uri must have an absolute path",
        ));
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    decode(path)
}

/// The decoded path of a `file:` URI (`file:///a/b`, `file://localhost/a/b`, `file:/a/b`).
pub(crate) fn file_uri_path(uri: &str) -> Result<Cow<'_, str>, &'static str> {
    if let Some(problem) = crate::uripath::problem(uri) {
        return Err(problem);
    }
    let rest = uri.get(5..).ok_or("uri has no scheme")?;
    file_path(rest).map_err(|e| match e {
        ValidationError::InvalidUri(p) => p,
        _ => "invalid file uri",
    })
}

fn decode(s: &str) -> Result<Cow<'_, str>, ValidationError> {
    percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| ValidationError::InvalidUri("uri is not valid utf-8 once decoded"))
}

fn check_syntax(uri: &str) -> Result<(), ValidationError> {
    if uri.len() > MAX_URI_LEN {
        return Err(ValidationError::InvalidUri("uri is too long"));
    }
    if let Some(problem) = crate::uripath::problem(uri) {
        return Err(ValidationError::InvalidUri(problem));
    }
    if unicode::has_invisible(uri) {
        return Err(ValidationError::InvalidUri(
            "uri contains invisible characters",
        ));
    }
    let (scheme, rest) =
        split_scheme(uri).ok_or(ValidationError::InvalidUri("uri has no scheme"))?;
    // Decoding must succeed (valid UTF-8) for the roots comparison to mean anything.
    decode(rest.split(['?', '#']).next().unwrap_or_default())?;
    if scheme.eq_ignore_ascii_case("file") {
        file_path(rest)?;
    }
    Ok(())
}

fn resource_uri<'a>(action: &Action<'a>) -> Option<&'a str> {
    match *action {
        Action::ReadResource { uri } | Action::SubscribeResource { uri, .. } => Some(uri),
        _ => None,
    }
}

impl InputValidator for ResourceUriValidator {
    fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ValidationError> {
        match resource_uri(frame.action()) {
            Some(uri) => check_syntax(uri),
            None => Ok(()),
        }
    }

    fn validate(
        &self,
        action: &Action<'_>,
        _identity: &Identity,
        _cx: &RequestContext,
    ) -> Result<(), ValidationError> {
        let Some(uri) = resource_uri(action) else {
            return Ok(());
        };
        // The frame stage ran already, but validate stands alone too: a caller that skips the
        // frame stage must not get past with a malformed URI.
        check_syntax(uri)?;
        let Some((scheme, rest)) = split_scheme(uri) else {
            return Err(ValidationError::InvalidUri("uri has no scheme"));
        };
        if !self.schemes.is_empty() && !self.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))
        {
            return Err(ValidationError::SchemeNotAllowed);
        }
        // Shape checks (`$VAR`, `．．`, invisible characters) hold for every `file:` path; the
        // roots and symlinks only when roots are set.
        if scheme.eq_ignore_ascii_case("file") {
            let path = file_path(rest)?;
            self.paths.check_decoded(&path).map_err(|problem| {
                if problem.contains("outside the allowed roots") {
                    ValidationError::OutsideRoots
                } else {
                    ValidationError::InvalidUri(problem)
                }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Transport;

    fn frame(uri: &str) -> Result<(), ValidationError> {
        let a = Action::ReadResource { uri };
        ResourceUriValidator::new().check_frame(&Frame::new(&a, None))
    }

    #[test]
    fn syntax() {
        assert_eq!(frame("file:///srv/data/a.txt"), Ok(()));
        assert_eq!(frame("file://localhost/srv/a"), Ok(()));
        assert_eq!(frame("https://example.com/a?b=c"), Ok(()));
        assert!(matches!(
            frame("file://../../etc/passwd"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///srv/data/../../etc/passwd"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///srv/data/%2e%2e/etc"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///srv/data/a%2f..%2fb"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///srv/a%00b"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("/etc/passwd"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:relative"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///a\\b"),
            Err(ValidationError::InvalidUri(_))
        ));
        assert!(matches!(
            frame("file:///a%ff"),
            Err(ValidationError::InvalidUri(_))
        ));
    }

    #[test]
    fn confinement() {
        let v = ResourceUriValidator::new()
            .with_schemes(["file"])
            .with_roots(["/srv/data/"]);
        let cx = RequestContext::new(Transport::Stdio);
        let id = Identity::new("h");
        let check = |uri: &str| v.validate(&Action::ReadResource { uri }, &id, &cx);
        assert_eq!(check("file:///srv/data/x"), Ok(()));
        assert_eq!(check("file:///srv/data"), Ok(()));
        assert_eq!(
            check("file:///srv/database/x"),
            Err(ValidationError::OutsideRoots)
        );
        assert_eq!(
            check("file:///etc/passwd"),
            Err(ValidationError::OutsideRoots)
        );
        assert_eq!(
            check("https://example.com/"),
            Err(ValidationError::SchemeNotAllowed)
        );
    }
}

//! The `Authorization: Bearer` header read, and the `WWW-Authenticate` challenge written
//! (RFC 6750 section 3, RFC 9728 section 5.1).

use std::fmt::Write as _;
use std::sync::Arc;

/// What the `Authorization` header(s) of a request hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// No `Authorization` header.
    Nothing,
    /// A bearer token.
    Bearer(&'a str),
    /// Several headers, a header over the size limit, not text, another scheme, or a token
    /// with characters a bearer token cannot have.
    Malformed,
}

/// Reads the bearer token from the `Authorization` header values. Exactly one header; the scheme
/// compared without case; the token must be a `b64token` (RFC 6750 section 2.1). Nothing of
/// the value ends up in an error.
pub(crate) fn bearer<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
    max_bytes: usize,
) -> Presented<'a> {
    let Some(first) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() || first.len() > max_bytes {
        return Presented::Malformed;
    }
    let Ok(value) = std::str::from_utf8(first) else {
        return Presented::Malformed;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Presented::Malformed;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Malformed;
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if b64token {
        Presented::Bearer(token)
    } else {
        Presented::Malformed
    }
}

/// Appends `value` as an HTTP quoted-string (RFC 9110 section 5.6.4): `"` and `\` escaped,
/// control characters and non-ASCII dropped, so a configured value can never break the header.
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '\t' | '!'..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}

/// Why the challenge is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeError {
    /// Nothing was presented: no error code (RFC 6750 section 3.1).
    None,
    /// The token was refused.
    InvalidToken,
    /// The request was malformed (several headers, another scheme).
    InvalidRequest,
    /// The token lacks scopes.
    InsufficientScope,
}

/// `Bearer resource_metadata="...", error="...", scope="..."`. The token never appears.
pub(crate) fn challenge(
    metadata_url: Option<&str>,
    error: ChallengeError,
    scopes: &[Arc<str>],
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("Bearer");
    let mut sep = " ";
    if let Some(url) = metadata_url {
        out.push_str(sep);
        out.push_str("resource_metadata=");
        push_quoted(&mut out, url);
        sep = ", ";
    }
    let code = match error {
        ChallengeError::None => None,
        ChallengeError::InvalidToken => Some("invalid_token"),
        ChallengeError::InvalidRequest => Some("invalid_request"),
        ChallengeError::InsufficientScope => Some("insufficient_scope"),
    };
    if let Some(code) = code {
        let _ = write!(out, "{sep}error=\"{code}\"");
        sep = ", ";
    }
    if !scopes.is_empty() {
        let joined = scopes.iter().map(|s| &**s).collect::<Vec<_>>().join(" ");
        out.push_str(sep);
        out.push_str("scope=");
        push_quoted(&mut out, &joined);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Presented<'_> {
        bearer(std::iter::once(v.as_bytes()), 64)
    }

    #[test]
    fn bearer_extraction() {
        assert_eq!(
            one("Bearer abc.def-_~+/=="),
            Presented::Bearer("abc.def-_~+/==")
        );
        assert_eq!(one("bEaReR  tok"), Presented::Bearer("tok"));
        assert_eq!(one("Basic dXNlcjpwYXNz"), Presented::Malformed);
        assert_eq!(one("Bearer"), Presented::Malformed);
        assert_eq!(one("Bearer a b"), Presented::Malformed);
        assert_eq!(one("Bearer ==="), Presented::Malformed);
        assert_eq!(
            one(&format!("Bearer {}", "a".repeat(80))),
            Presented::Malformed
        );
        assert_eq!(bearer(std::iter::empty(), 64), Presented::Nothing);
        let two = [b"Bearer a".as_slice(), b"Bearer b".as_slice()];
        assert_eq!(bearer(two.into_iter(), 64), Presented::Malformed);
    }

    #[test]
    fn challenge_escapes_values() {
        let c = challenge(
            Some("http://h/\"x\\y"),
            ChallengeError::InsufficientScope,
            &[Arc::from("a"), Arc::from("b:c")],
        );
        assert_eq!(
            c,
            r#"Bearer resource_metadata="http://h/\"x\\y", error="insufficient_scope", scope="a b:c""#
        );
        assert_eq!(challenge(None, ChallengeError::None, &[]), "Bearer");
    }

    /// The quoted-string after `name=` in `header`, unescaped.
    fn quoted_param(header: &str, name: &str) -> Option<String> {
        let start = header.find(&format!("{name}=\""))? + name.len() + 2;
        let mut out = String::new();
        let mut chars = header.get(start..)?.chars();
        loop {
            match chars.next()? {
                '\\' => out.push(chars.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn bearer_never_panics_and_never_returns_more_than_it_was_given(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Presented::Bearer(t) = bearer(std::iter::once(bytes.as_slice()), 256) {
                proptest::prop_assert!(t.len() < bytes.len());
                proptest::prop_assert!(t.bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn any_configured_value_stays_inside_its_quoted_string(url in ".{0,80}", scope in "[!#-\\[\\]-~]{1,20}") {
            let c = challenge(Some(&url), ChallengeError::InvalidToken, &[Arc::from(scope.as_str())]);
            proptest::prop_assert!(::http::HeaderValue::from_str(&c).is_ok());
            let kept: String = url.chars().filter(|c| matches!(c, ' ' | '\t' | '!'..='~')).collect();
            proptest::prop_assert_eq!(quoted_param(&c, "resource_metadata"), Some(kept));
            proptest::prop_assert_eq!(quoted_param(&c, "scope"), Some(scope));
            proptest::prop_assert_eq!(quoted_param(&c, "error"), Some("invalid_token".to_owned()));
        }
    }
}

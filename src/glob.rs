//! Globs for tool names and resource URIs, compiled once.

use regex::Regex;

/// A name or URI pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern: {0}")]
pub struct GlobError(&'static str);

/// A glob compiled once: `*` matches within one path segment, `**` across segments, `?` one
/// character; everything else is literal.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    literal: Option<Box<str>>,
    regex: Option<Regex>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError("pattern is empty"));
        }
        if !pattern.contains(['*', '?']) {
            return Ok(Glob {
                literal: Some(pattern.into()),
                regex: None,
            });
        }
        let mut re = String::with_capacity(pattern.len() * 2 + 4);
        re.push_str("^(?s:");
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            // `a/**/b` also matches `a/b`: the `**` may stand for no segment at all.
            if let Some(after) = rest.strip_prefix("/**/") {
                re.push_str("(?:/|/.*/)");
                rest = after;
                continue;
            }
            // `dir/**` also matches `dir` itself: a rule denying everything under a directory
            // must deny the directory's own URI (its listing) too.
            if rest == "/**" {
                re.push_str("(?:/.*)?");
                rest = "";
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if rest.starts_with('*') => {
                    rest = &rest[1..];
                    re.push_str(".*");
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                other => re.push_str(&regex::escape(other.encode_utf8(&mut [0u8; 4]))),
            }
        }
        re.push_str(")$");
        let regex = Regex::new(&re).map_err(|_| GlobError("pattern does not compile"))?;
        Ok(Glob {
            literal: None,
            regex: Some(regex),
        })
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        match (&self.literal, &self.regex) {
            (Some(lit), _) => **lit == *s,
            (None, Some(re)) => re.is_match(s),
            (None, None) => false,
        }
    }
}

impl Glob {
    /// Whether the pattern has no wildcard (an exact name, indexable by hash).
    pub(crate) fn is_literal(&self) -> bool {
        self.literal.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs() {
        let g = Glob::new("file:///srv/**/private/*").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(g.matches("file:///srv/private/x"));
        assert!(g.matches("file:///srv/a/b/private/x"));
        assert!(!g.matches("file:///srv/private/x/y"));
        let g = Glob::new("files_*").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(g.matches("files_read") && !g.matches("files_a/b"));
        // `dir/**` covers the directory's own URI as well as everything under it.
        let g = Glob::new("file:///srv/data/secret/**").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(g.matches("file:///srv/data/secret"));
        assert!(g.matches("file:///srv/data/secret/"));
        assert!(g.matches("file:///srv/data/secret/a/b"));
        assert!(!g.matches("file:///srv/data/secretive"));
    }
}

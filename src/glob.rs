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
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
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

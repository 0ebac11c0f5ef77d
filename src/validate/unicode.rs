//! Unicode: NFKC before matching, and the invisible characters that hide text from a reader.
//!
//! An argument that reads `ignore` to a person may hold `ig\u{200B}nore`; a model (or a server
//! that normalises) sees something else than the rule that checked it. So every pattern is
//! matched against the NFKC form of the value (`ｓｅｌｅｃｔ` is `select`, `．．` is `..`), and
//! the characters that render as nothing are refused (or stripped) before the handler sees them.

use std::borrow::Cow;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// What to do with invisible characters in arguments and URIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Invisible {
    /// Refuse the request (the default).
    #[default]
    Refuse,
    /// Remove them before the handler sees the value, and check what is left.
    Strip,
    /// Leave them alone.
    Allow,
}

impl Invisible {
    /// Parses the policy spelling (`"refuse"`, `"strip"`, `"allow"`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "refuse" => Invisible::Refuse,
            "strip" => Invisible::Strip,
            "allow" => Invisible::Allow,
            _ => return None,
        })
    }
}

/// The NFKC form of `s`, borrowed when `s` already is in NFKC (the common, ASCII case: no
/// allocation).
pub fn nfkc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

/// Whether `c`, seen after `prev`, is a character that renders as nothing and has no business
/// in an argument: zero-width characters, bidirectional controls (Trojan Source), Unicode tags
/// (used to smuggle instructions to models), variation selectors past the emoji ones, fillers.
///
/// Legitimate uses are kept: a zero-width joiner or non-joiner between two non-ASCII characters
/// (emoji sequences, Persian and Indic scripts), emoji variation selectors after a non-ASCII
/// character, and tag characters inside a flag sequence (🏴 + tags).
fn is_invisible(c: char, prev: Option<char>, in_flag: bool) -> bool {
    let non_ascii_before = prev.is_some_and(|p| !p.is_ascii());
    match c {
        // Zero-width joiner and non-joiner: fine inside non-ASCII text.
        '\u{200C}' | '\u{200D}' => !non_ascii_before,
        // Emoji variation selectors.
        '\u{FE00}'..='\u{FE0F}' => !non_ascii_before,
        // Tag characters: only inside a subdivision flag sequence.
        '\u{E0020}'..='\u{E007F}' => !in_flag,
        '\u{00AD}'               // soft hyphen
        | '\u{034F}'             // combining grapheme joiner
        | '\u{061C}'             // Arabic letter mark
        | '\u{115F}' | '\u{1160}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}' // Khmer invisible vowels
        | '\u{180B}'..='\u{180F}' // Mongolian selectors and vowel separator
        | '\u{200B}'             // zero-width space
        | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{206A}'..='\u{206F}' // deprecated format characters
        | '\u{3164}'             // Hangul filler
        | '\u{FEFF}'             // zero-width no-break space (BOM)
        | '\u{FFA0}'             // half-width Hangul filler
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        | '\u{1D173}'..='\u{1D17A}' // musical formatting
        | '\u{E0000}'..='\u{E001F}' // language tag and unassigned tags
        | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement (data smuggling)
        => true,
        _ => false,
    }
}

/// Calls `f` with the byte range of every invisible character in `s`.
fn each_invisible(s: &str, mut f: impl FnMut(usize, usize)) {
    if s.is_ascii() {
        return;
    }
    let mut prev = None;
    let mut in_flag = false;
    for (i, c) in s.char_indices() {
        if c == '\u{1F3F4}' {
            in_flag = true;
        } else if !('\u{E0020}'..='\u{E007F}').contains(&c) {
            in_flag = false;
        }
        if is_invisible(c, prev, in_flag) {
            f(i, i + c.len_utf8());
        }
        if c == '\u{E007F}' {
            in_flag = false;
        }
        prev = Some(c);
    }
}

/// Whether `s` holds an invisible character (see the module docs for which).
pub fn has_invisible(s: &str) -> bool {
    let mut found = false;
    each_invisible(s, |_, _| found = true);
    found
}

/// Every invisible character in `s`, in order (for reports that name them, such as the tool
/// description scan of [`provenance::pinning`](crate::provenance::pinning)).
pub fn invisible_chars(s: &str) -> Vec<char> {
    let mut out = Vec::new();
    each_invisible(s, |start, _| out.extend(s[start..].chars().next()));
    out
}

/// `s` without its invisible characters; borrowed when there are none.
pub fn strip_invisible(s: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut last = 0;
    each_invisible(s, |start, end| {
        let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(&s[last..start]);
        last = end;
    });
    match out {
        Some(mut o) => {
            o.push_str(&s[last..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(s),
    }
}

/// The form patterns are matched against: NFKC, with invisible characters removed (so
/// `ig\u{200B}nore` meets a rule written for `ignore`).
pub fn matching_form(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    match strip_invisible(s) {
        Cow::Borrowed(b) => nfkc(b),
        Cow::Owned(o) => Cow::Owned(nfkc(&o).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters() {
        assert!(!has_invisible("plain ascii"));
        assert!(!has_invisible("Zoë Ørsted, 東京"));
        assert!(has_invisible("ig\u{200B}nore"));
        assert!(has_invisible("abc\u{202E}txt.exe"));
        assert!(has_invisible("hi\u{E0041}\u{E0042}"));
        assert!(has_invisible("\u{FEFF}x"));
        assert!(
            has_invisible("a\u{200D}b"),
            "a joiner between ASCII letters hides"
        );
        // Legitimate: a family emoji (ZWJ sequence), a Persian word with ZWNJ, a heart with an
        // emoji selector, the flag of England (tag sequence).
        assert!(!has_invisible("👨\u{200D}👩\u{200D}👧"));
        assert!(!has_invisible("می\u{200C}خواهم"));
        assert!(!has_invisible("❤\u{FE0F}"));
        assert!(!has_invisible(
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}"
        ));
        assert!(
            has_invisible("🏴\u{E0067}\u{E007F}\u{E0067}"),
            "a tag after the flag ends is smuggled"
        );
    }

    #[test]
    fn strip_and_match() {
        assert_eq!(strip_invisible("ig\u{200B}no\u{202E}re"), "ignore");
        assert!(matches!(strip_invisible("plain"), Cow::Borrowed(_)));
        assert_eq!(matching_form("ｓｅｌｅｃｔ"), "select");
        assert_eq!(matching_form("．．／etc"), "../etc");
        assert_eq!(matching_form("u\u{200B}nion"), "union");
        assert!(matches!(matching_form("Zoë"), Cow::Borrowed(_)));
    }
}

//! The pattern engine: what each detector confirms, how values are replaced, and the first engine
//! (every pattern in one automaton) kept as the reference for `scan.rs`, which finds the candidates.

use std::fmt;
use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, PatternID};
use sha2::Sha256;

use super::detectors::{Category, Detector};
use super::scan::{Pattern, Scanner};
use super::{Redacted, RedactionReport, Redactor};

/// How a found value is replaced.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum RedactionStyle {
    /// `[EMAIL REDACTED]`: the type, nothing of the value. The default.
    #[default]
    Mask,
    /// `[CREDIT_CARD …1111]`: the type and the last four characters, for support work.
    Partial,
    /// `[EMAIL 3fa2b1c9]`: the type and a keyed hash (HMAC-SHA256, first 8 hex digits), so equal
    /// values correlate across records without being revealed. Keep the key secret.
    Hash(Arc<[u8]>),
    /// Nothing at all.
    Remove,
}

impl fmt::Debug for RedactionStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedactionStyle::Mask => "Mask",
            RedactionStyle::Partial => "Partial",
            // The key is a secret: never printed.
            RedactionStyle::Hash(_) => "Hash([key])",
            RedactionStyle::Remove => "Remove",
        })
    }
}

/// A check run on a custom detector's candidates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Validator {
    /// The digits pass the Luhn check.
    Luhn,
    /// Any predicate.
    Fn(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validator::Luhn => "Luhn",
            Validator::Fn(_) => "Fn",
        })
    }
}

/// A detector defined by the user: an entity type, a pattern and an optional validator.
#[derive(Debug, Clone)]
pub struct CustomDetector {
    entity: Arc<str>,
    pattern: String,
    category: Category,
    validator: Option<Validator>,
}

impl CustomDetector {
    /// Finds `pattern` (regex syntax; prefer `(?-u:\b)` to `\b`) and reports it as `entity`.
    pub fn new(
        entity: impl Into<Arc<str>>,
        pattern: impl Into<String>,
        category: Category,
    ) -> Self {
        CustomDetector {
            entity: entity.into(),
            pattern: pattern.into(),
            category,
            validator: None,
        }
    }

    /// Confirms each candidate with `validator`.
    pub fn with_validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Builtin(Detector),
    Custom(Option<Validator>),
}

#[derive(Debug, Clone)]
struct Spec {
    entity: Arc<str>,
    category: Category,
    kind: Kind,
}

/// One value found: its type, category and byte range in the scanned text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The entity type (`CREDIT_CARD`).
    pub entity: Arc<str>,
    /// Its category.
    pub category: Category,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset just past the last byte.
    pub end: usize,
}

/// The detectors could not be compiled (a custom pattern is not a valid regex).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redaction patterns do not compile")]
pub struct RedactorBuildError;

/// Finds sensitive values with every enabled detector in a single pass, and replaces them.
///
/// The scan moves forward once through the text, jumping between the places a value can start:
/// the literal prefixes of the secret formats (one multi-pattern automaton with a literal
/// prefilter), each `@`, `:` and `=`, and the starts of digit runs, where cards, SSNs, phones,
/// addresses and IBANs are checked by their shape. A candidate is confirmed by its detector's
/// validator (Luhn and the brand for cards, mod-97 for IBANs, issue rules for SSNs, entropy for
/// generic secrets ...); when it is not, the scan resumes one character on, so a value hidden
/// behind a failing prefix is still found. Where several detectors match at one position, the
/// first in [`Detector::ALL`] order (custom ones after) that is confirmed wins. Matches never
/// overlap: the scan moves past each finding. Text without findings is returned unchanged
/// (`None`), and redaction is idempotent: replacements match no detector.
#[derive(Debug, Clone)]
pub struct PatternRedactor {
    specs: Vec<Spec>,
    scanner: Scanner,
    /// Every pattern, for the one-automaton reference engine, built on first use.
    patterns: Arc<[String]>,
    one_automaton: OnceLock<Option<Regex>>,
    style: RedactionStyle,
}

impl PatternRedactor {
    /// A redactor for the built-in `detectors`, masking what it finds.
    ///
    /// # Errors
    /// [`RedactorBuildError`] if the patterns fail to compile (they are fixed, so this
    /// indicates a bug, reported rather than panicking).
    pub fn new(detectors: impl IntoIterator<Item = Detector>) -> Result<Self, RedactorBuildError> {
        Self::with(detectors, [], RedactionStyle::Mask)
    }

    /// A redactor for the built-in `detectors` (tried in [`Detector::ALL`] order) and `custom`
    /// ones (after them), replacing in `style`.
    ///
    /// # Errors
    /// [`RedactorBuildError`] when a custom pattern does not compile.
    pub fn with(
        detectors: impl IntoIterator<Item = Detector>,
        custom: impl IntoIterator<Item = CustomDetector>,
        style: RedactionStyle,
    ) -> Result<Self, RedactorBuildError> {
        let wanted: Vec<Detector> = detectors.into_iter().collect();
        let builtin: Vec<Detector> = Detector::ALL
            .into_iter()
            .filter(|d| wanted.contains(d))
            .collect();
        let custom: Vec<CustomDetector> = custom.into_iter().collect();
        let mut specs = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        for &d in &builtin {
            specs.push(Spec {
                entity: d.entity().into(),
                category: d.category(),
                kind: Kind::Builtin(d),
            });
            patterns.push(d.pattern().to_owned());
        }
        for c in &custom {
            specs.push(Spec {
                entity: c.entity.clone(),
                category: c.category,
                kind: Kind::Custom(c.validator.clone()),
            });
            patterns.push(c.pattern.clone());
        }
        let sources: Vec<Pattern<'_>> = builtin
            .iter()
            .map(|&d| Pattern::Builtin(d))
            .chain(custom.iter().map(|c| Pattern::Custom(&c.pattern)))
            .collect();
        let scanner = Scanner::new(&sources).ok_or(RedactorBuildError)?;
        Ok(PatternRedactor {
            specs,
            scanner,
            patterns: patterns.into(),
            one_automaton: OnceLock::new(),
            style,
        })
    }

    /// The entity types this redactor finds, in the order it tries them.
    pub fn entities(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| &*s.entity)
    }

    fn confirm(spec: &Spec, text: &str, m: std::ops::Range<usize>) -> Option<(usize, usize)> {
        match &spec.kind {
            Kind::Builtin(Detector::Email) => {
                // The leftmost match can start inside a longer local part that an earlier,
                // failed candidate covered: widen it so no prefix of the address survives.
                // Bounded like the local part itself (64), so the widening stays linear.
                let mut start = m.start;
                let mut widened = 0;
                while let Some(c) = text.get(..start).and_then(|s| s.chars().next_back()) {
                    if widened >= 64 || !(c.is_alphanumeric() || "._%+-".contains(c)) {
                        break;
                    }
                    start -= c.len_utf8();
                    widened += 1;
                }
                Some((start, m.end))
            }
            Kind::Builtin(d) => d.confirm(text, m),
            Kind::Custom(None) => Some((m.start, m.end)),
            Kind::Custom(Some(Validator::Luhn)) => text
                .get(m.clone())
                .filter(|s| super::detectors::luhn_valid(s))
                .map(|_| (m.start, m.end)),
            Kind::Custom(Some(Validator::Fn(f))) => text
                .get(m.clone())
                .filter(|s| f(s))
                .map(|_| (m.start, m.end)),
        }
    }

    /// Every value found in `text`, in order, not overlapping.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scanner.scan(
            text,
            |i, m| self.confirm_spec(i, text, m),
            |i, start, end| {
                if let Some(spec) = self.specs.get(i) {
                    out.push(Finding {
                        entity: spec.entity.clone(),
                        category: spec.category,
                        start,
                        end,
                    });
                }
            },
        );
        out
    }

    fn confirm_spec(
        &self,
        i: usize,
        text: &str,
        m: std::ops::Range<usize>,
    ) -> Option<(usize, usize)> {
        self.specs
            .get(i)
            .and_then(|spec| Self::confirm(spec, text, m))
    }

    /// The findings of [`scan`](Self::scan), found the slow, plain way: every pattern in one
    /// automaton (regex-automata's multi-pattern meta regex), searched again from each
    /// candidate. This was the first engine; it is kept as the reference the scanner is tested
    /// against and measured beside, and is not meant for production use. For a redactor with
    /// one detector, it is exactly that detector's regex and validator.
    #[doc(hidden)]
    pub fn scan_one_automaton(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        let any = self
            .one_automaton
            .get_or_init(|| Regex::new_many(&self.patterns).ok());
        let Some(any) = any else { return out };
        let mut at = 0;
        let mut last_end = 0;
        while at < text.len() {
            // The search sees the whole text, so word boundaries before `at` are honoured.
            let Some(m) = any.search(&Input::new(text).range(at..)) else {
                break;
            };
            let Some(first) = self.specs.get(m.pattern().as_usize()) else {
                break;
            };
            let mut hit = Self::confirm(first, text, m.range()).map(|span| (first, span));
            if hit.is_none() {
                // Leftmost-first reported the highest-priority pattern matching here; a later
                // one may match at the same start and be confirmed ("192.168.1.10 4111 ..."
                // is a failed card candidate and an address).
                for next in m.pattern().as_usize() + 1..self.specs.len() {
                    let Some(spec) = self.specs.get(next) else {
                        break;
                    };
                    let anchored = Input::new(text)
                        .range(m.start()..)
                        .anchored(Anchored::Pattern(PatternID::new_unchecked(next)));
                    if let Some(m2) = any.search(&anchored)
                        && let Some(span) = Self::confirm(spec, text, m2.range())
                    {
                        hit = Some((spec, span));
                        break;
                    }
                }
            }
            match hit {
                Some((spec, (start, end))) => {
                    let start = start.max(last_end);
                    if end > start {
                        out.push(Finding {
                            entity: spec.entity.clone(),
                            category: spec.category,
                            start,
                            end,
                        });
                        last_end = end;
                    }
                    at = end.max(m.start() + 1);
                }
                None => at = m.start() + 1,
            }
            while at < text.len() && !text.is_char_boundary(at) {
                at += 1;
            }
        }
        out
    }

    fn replacement(&self, entity: &str, value: &str, out: &mut String) {
        match &self.style {
            RedactionStyle::Mask => {
                out.push('[');
                out.push_str(entity);
                out.push_str(" REDACTED]");
            }
            RedactionStyle::Partial => {
                let tail: Vec<char> = value
                    .chars()
                    .rev()
                    .filter(char::is_ascii_alphanumeric)
                    .take(4)
                    .collect();
                out.push('[');
                out.push_str(entity);
                out.push_str(" …");
                out.extend(tail.iter().rev());
                out.push(']');
            }
            RedactionStyle::Hash(key) => {
                out.push('[');
                out.push_str(entity);
                out.push(' ');
                if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
                    mac.update(value.as_bytes());
                    let tag = mac.finalize().into_bytes();
                    out.push_str(&crate::hex::encode(tag.get(..4).unwrap_or_default()));
                }
                out.push(']');
            }
            RedactionStyle::Remove => {}
        }
    }
}

impl Redactor for PatternRedactor {
    fn redact_text(&self, text: &str) -> Option<Redacted> {
        // Replaced as found; counted per detector and reported once per detector at the end.
        // Both buffers are allocated at the first finding: most strings have none, and this
        // runs for every string of every result.
        let mut buf = String::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut last = 0;
        self.scanner.scan(
            text,
            |i, m| self.confirm_spec(i, text, m),
            |i, start, end| {
                let Some(spec) = self.specs.get(i) else {
                    return;
                };
                if counts.is_empty() {
                    buf.reserve(text.len());
                    counts.resize(self.specs.len(), 0);
                }
                buf.push_str(text.get(last..start).unwrap_or_default());
                self.replacement(
                    &spec.entity,
                    text.get(start..end).unwrap_or_default(),
                    &mut buf,
                );
                if let Some(n) = counts.get_mut(i) {
                    *n += 1;
                }
                last = end;
            },
        );
        if counts.is_empty() {
            return None;
        }
        buf.push_str(text.get(last..).unwrap_or_default());
        let mut report = RedactionReport::default();
        for (spec, &n) in self.specs.iter().zip(&counts) {
            if n > 0 {
                report.add_findings(&spec.entity, spec.category, n);
            }
        }
        Some(Redacted::new(buf, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r() -> PatternRedactor {
        PatternRedactor::new([Detector::Email, Detector::CreditCard])
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn red(t: &str) -> String {
        r().redact_text(t)
            .map(|x| x.text().to_owned())
            .unwrap_or_else(|| t.to_owned())
    }

    #[test]
    fn redacts_valid_and_keeps_invalid() {
        assert_eq!(r().redact_text("nothing here"), None);
        let out = r()
            .redact_text("a@b.io paid with 4111 1111 1111 1111, order 4111111111111112")
            .unwrap_or_default();
        assert_eq!(
            out.text(),
            "[EMAIL REDACTED] paid with [CREDIT_CARD REDACTED], order 4111111111111112"
        );
        assert_eq!(
            out.report().counts().collect::<Vec<_>>(),
            vec![("CREDIT_CARD", 1), ("EMAIL", 1)]
        );
    }

    #[test]
    fn cards_inside_longer_digit_runs_are_found() {
        assert_eq!(red("1 4111 1111 1111 1111"), "1 [CREDIT_CARD REDACTED]");
        assert_eq!(red("4111 1111 1111 1111 2"), "[CREDIT_CARD REDACTED] 2");
        assert_eq!(
            red("12-4111-1111-1111-1111-9"),
            "12-[CREDIT_CARD REDACTED]-9"
        );
        assert_eq!(red("1234 5678 9012 3456 7"), "1234 5678 9012 3456 7");
    }

    #[test]
    fn review_findings_stay_fixed() {
        assert_eq!(red("4111.1111.1111.1111"), "[CREDIT_CARD REDACTED]");
        assert_eq!(red("4111  1111\t1111 1111"), "[CREDIT_CARD REDACTED]");
        assert_eq!(red("card4111111111111111"), "card[CREDIT_CARD REDACTED]");
        assert_eq!(red("cc_4111111111111111x"), "cc_[CREDIT_CARD REDACTED]x");
        assert_eq!(red("jöhn@example.com"), "[EMAIL REDACTED]");
        assert_eq!(red("1234567890123@example.com"), "[EMAIL REDACTED]");
        assert_eq!(red("94111111111111111"), "94111111111111111");
    }

    #[test]
    fn styles() {
        let text = "card 4111 1111 1111 1111";
        let with = |style| {
            PatternRedactor::with([Detector::CreditCard], [], style)
                .unwrap_or_else(|e| unreachable!("{e}"))
        };
        let out = |style| {
            with(style)
                .redact_text(text)
                .map(|x| x.text().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(out(RedactionStyle::Partial), "card [CREDIT_CARD …1111]");
        assert_eq!(out(RedactionStyle::Remove), "card ");
        let h1 = out(RedactionStyle::Hash(Arc::from(&b"k1"[..])));
        let h2 = with(RedactionStyle::Hash(Arc::from(&b"k1"[..])))
            .redact_text("other 4111-1111-1111-1111")
            .map(|x| x.text().to_owned())
            .unwrap_or_default();
        assert!(
            h1.starts_with("card [CREDIT_CARD ") && h1.len() == "card [CREDIT_CARD 12345678]".len(),
            "{h1}"
        );
        // Same card, same tag (separators differ but the value is the matched text).
        assert_ne!(h1, out(RedactionStyle::Hash(Arc::from(&b"k2"[..]))));
        assert!(h2.starts_with("other [CREDIT_CARD "));
    }

    #[test]
    fn custom_detectors() {
        let emp = CustomDetector::new(
            "EMPLOYEE_ID",
            r"(?-u:\b)EMP-[0-9]{6}(?-u:\b)",
            Category::Pii,
        );
        let r = PatternRedactor::with([], [emp], RedactionStyle::Mask)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            r.redact_text("ask EMP-123456").map(|x| x.text().to_owned()),
            Some("ask [EMPLOYEE_ID REDACTED]".to_owned())
        );
        assert!(
            PatternRedactor::with(
                [],
                [CustomDetector::new("X", "(", Category::Pii)],
                RedactionStyle::Mask
            )
            .is_err()
        );
    }

    /// Values at the far end of what each pattern allows around its trigger (the `@`, the `:`
    /// or `=`, the passport number's digits): the scanner's windows must reach them.
    #[test]
    fn scanner_windows_reach_as_far_as_the_patterns() {
        let all = PatternRedactor::new(Detector::ALL).unwrap_or_else(|e| unreachable!("{e}"));
        let wide = "\u{1F600}";
        let cases = [
            // Passport: the label with a long s, 12 four-byte separators, `number.`, 4 more.
            (
                format!(
                    "pa\u{17f}\u{17f}port{}number.{}X12345678 ok",
                    wide.repeat(12),
                    wide.repeat(4)
                ),
                "US_PASSPORT",
            ),
            (
                format!("PASSPORT{}123456789", " ".repeat(12)),
                "US_PASSPORT",
            ),
            // AWS: 24 label characters each side of `secret`, spaces and quotes around `=`.
            (
                format!(
                    "Aw\u{17f}{}\u{17f}ecret{} \"'  = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
                    "_".repeat(24),
                    "-".repeat(24)
                ),
                "AWS_SECRET_KEY",
            ),
            // Generic: the longest keyword with a long s, 16 label characters, a quote and many
            // spaces before the operator; and a keyword with a Kelvin sign.
            (
                format!(
                    "cliEnt-\u{17f}ecret{}'{}:  X7dK29LmQp4vR8sT2wY6zA1b",
                    "a".repeat(16),
                    " ".repeat(40)
                ),
                "GENERIC_API_KEY",
            ),
            (
                "ACCESS_\u{212a}EY=X7dK29LmQp4vR8sT2wY6zA1b".to_owned(),
                "GENERIC_API_KEY",
            ),
            // E-mail: a 64-character local part of two-byte characters.
            (format!("{}@example.com", "\u{e9}".repeat(64)), "EMAIL"),
            // IPv6: four hex digits before the first colon.
            ("abcd:ef01::1".to_owned(), "IP_ADDRESS"),
        ];
        for (text, entity) in &cases {
            let fast = all.scan(text);
            assert_eq!(fast, all.scan_one_automaton(text), "{text:?}");
            assert!(
                fast.iter().any(|f| &*f.entity == *entity),
                "{entity} not found in {text:?}: {fast:?}"
            );
        }
    }

    #[test]
    fn idempotent_and_json_aware() {
        let once = r()
            .redact_text("x@y.com 5555555555554444")
            .unwrap_or_default();
        assert_eq!(r().redact_text(once.text()), None);
        let mut v = json!({"user": {"email": "x@y.com", "n": 4111111111111111u64, "list": ["ok", "z@z.org"]}});
        let rep = r().redact_value(&mut v);
        assert_eq!(rep.total(), 3);
        assert_eq!(v["user"]["email"], "[EMAIL REDACTED]");
        assert_eq!(v["user"]["n"], "[CREDIT_CARD REDACTED]");
        assert_eq!(v["user"]["list"][1], "[EMAIL REDACTED]");
    }
}

//! Pattern detectors run in one pass, with validation of each candidate.

use regex_automata::Input;
use regex_automata::meta::Regex;

use super::{Redacted, RedactionReport, Redactor};

/// A kind of sensitive value the [`PatternRedactor`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Detector {
    /// E-mail addresses.
    Email,
    /// Payment card numbers of 13 to 19 digits, optionally grouped by spaces or dashes, that
    /// pass the Luhn check (so order numbers and timestamps are left alone).
    CreditCard,
}

impl Detector {
    /// The policy file's name for the detector, also used in reports and replacements.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CreditCard => "credit_card",
        }
    }

    /// The detector with this policy name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Detector::Email,
            "credit_card" => Detector::CreditCard,
            _ => return None,
        })
    }

    fn pattern(self) -> &'static str {
        match self {
            // Local part, then a domain of dot-separated labels ending in a 2+ letter TLD.
            // Any local part without spaces or delimiters (Unicode letters included, so no
            // prefix of a non-ASCII name survives), then dot-separated labels and a TLD.
            Detector::Email => {
                r#"[^\s@<>()\[\]\\,;:"'`]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}"#
            }
            // Candidates only: 13 to 19 digits, groups separated by up to two spaces, tabs, dots
            // or dashes. No word boundaries (`card4111...` is still a card): the code checks that
            // no digit touches either end, and the Luhn check decides.
            Detector::CreditCard => r"[0-9](?:[ \t.\-]{0,2}[0-9]){12,18}",
        }
    }

    fn replacement(self) -> &'static str {
        match self {
            Detector::Email => "[REDACTED:email]",
            Detector::CreditCard => "[REDACTED:credit_card]",
        }
    }

    /// How much of `candidate` (a match of the pattern) is a confirmed finding, from its start:
    /// `None` when none of it is.
    fn confirm(self, candidate: &str, end_ok: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Detector::Email => Some(candidate.len()).filter(|&len| end_ok(len)),
            // The candidate pattern is greedy, so a card can sit inside a longer run of digit
            // groups ("4111 1111 1111 1111 2"). Try every prefix that ends at a group boundary,
            // longest first.
            Detector::CreditCard => {
                let separators = candidate
                    .char_indices()
                    .rev()
                    .filter(|&(_, c)| matches!(c, ' ' | '\t' | '.' | '-'))
                    .map(|(i, _)| i);
                std::iter::once(candidate.len())
                    .chain(separators)
                    .find(|&end| end_ok(end) && candidate.get(..end).is_some_and(luhn_valid))
            }
        }
    }
}

/// Whether the digits of `s` (ignoring spaces and dashes) are 13 to 19 long and pass Luhn.
fn luhn_valid(s: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for (i, d) in s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        count += 1;
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    (13..=19).contains(&count) && sum.is_multiple_of(10)
}

/// The detectors could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redaction patterns do not compile")]
pub struct RedactorBuildError;

/// Finds every enabled detector's values and replaces them.
///
/// Clean text costs one pass: all patterns are compiled into one automaton, and text in which it
/// finds no candidate is returned as is. Text with candidates is then scanned per detector, each
/// candidate confirmed by its detector's validator (Luhn for cards) and, when a candidate fails,
/// the scan resumes at its next group, so a value hidden behind a failing prefix
/// (`1 4111 1111 1111 1111`) is still found. Overlaps between detectors are resolved
/// deterministically: the earliest start wins, then the longest. Each value is replaced by
/// `[REDACTED:<detector>]`.
#[derive(Debug, Clone)]
pub struct PatternRedactor {
    detectors: Vec<Detector>,
    any: Option<Regex>,
    each: Vec<Regex>,
}

impl PatternRedactor {
    /// A redactor for `detectors`.
    ///
    /// # Errors
    /// [`RedactorBuildError`] if the patterns fail to compile (they are fixed, so this
    /// indicates a bug, reported rather than panicking).
    pub fn new(detectors: impl IntoIterator<Item = Detector>) -> Result<Self, RedactorBuildError> {
        let mut unique: Vec<Detector> = Vec::new();
        for d in detectors {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        let detectors = unique;
        let patterns: Vec<&str> = detectors.iter().map(|d| d.pattern()).collect();
        let any = if patterns.is_empty() {
            None
        } else {
            Some(Regex::new_many(&patterns).map_err(|_| RedactorBuildError)?)
        };
        let each = patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|_| RedactorBuildError))
            .collect::<Result<_, _>>()?;
        Ok(PatternRedactor {
            detectors,
            any,
            each,
        })
    }

    /// The enabled detectors.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Every confirmed finding of `detector` in `text`, as (start, end).
    fn spans(
        detector: Detector,
        regex: &Regex,
        text: &str,
        out: &mut Vec<(usize, usize, Detector)>,
    ) {
        let digit_at = |i: usize| text.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
        let mut at = 0;
        while at < text.len() {
            let Some(m) = regex.search(&Input::new(text).range(at..)) else {
                break;
            };
            let candidate = text.get(m.range()).unwrap_or_default();
            let touches_digit_before = m.start() > 0 && digit_at(m.start() - 1);
            // A card must not touch another digit on either side.
            let confirmed = if touches_digit_before && detector == Detector::CreditCard {
                None
            } else {
                detector.confirm(candidate, |len| {
                    detector != Detector::CreditCard || !digit_at(m.start() + len)
                })
            };
            match confirmed {
                Some(len) => {
                    out.push((m.start(), m.start() + len, detector));
                    at = m.start() + len.max(1);
                }
                // Not confirmed: a finding may still start at a later group of the candidate,
                // so resume just after its next separator (or one character on).
                None => {
                    at = candidate
                        .find([' ', '\t', '.', '-'])
                        .map_or(m.start() + 1, |i| m.start() + i + 1)
                        .max(m.start() + 1);
                }
            }
            while at < text.len() && !text.is_char_boundary(at) {
                at += 1;
            }
        }
    }
}

impl Redactor for PatternRedactor {
    fn redact_text(&self, text: &str) -> Option<Redacted> {
        // One pass decides the common case: no candidate at all, nothing to do.
        if !self.any.as_ref()?.is_match(text) {
            return None;
        }
        let mut spans = Vec::new();
        for (d, re) in self.detectors.iter().zip(&self.each) {
            Self::spans(*d, re, text, &mut spans);
        }
        if spans.is_empty() {
            return None;
        }
        // Earliest start first, then the longest; later overlapping spans are dropped.
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut buf = String::with_capacity(text.len());
        let mut report = RedactionReport::default();
        let mut last = 0;
        for (start, end, detector) in spans {
            if start < last {
                continue;
            }
            buf.push_str(text.get(last..start).unwrap_or_default());
            buf.push_str(detector.replacement());
            report.add(detector.name(), 1);
            last = end;
        }
        buf.push_str(text.get(last..).unwrap_or_default());
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

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("4111-1111-1111-1111"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("1234"));
    }

    #[test]
    fn redacts_valid_and_keeps_invalid() {
        assert_eq!(r().redact_text("nothing here"), None);
        let out = r().redact_text("a@b.io paid with 4111 1111 1111 1111, order 4111111111111112");
        let out = out.unwrap_or_default();
        assert_eq!(
            out.text(),
            "[REDACTED:email] paid with [REDACTED:credit_card], order 4111111111111112"
        );
        assert_eq!(
            out.report().counts().collect::<Vec<_>>(),
            vec![("credit_card", 1), ("email", 1)]
        );
    }

    #[test]
    fn cards_inside_longer_digit_runs_are_found() {
        let out = r().redact_text("1 4111 1111 1111 1111").unwrap_or_default();
        assert_eq!(out.text(), "1 [REDACTED:credit_card]");
        let out = r().redact_text("4111 1111 1111 1111 2").unwrap_or_default();
        assert_eq!(out.text(), "[REDACTED:credit_card] 2");
        let out = r()
            .redact_text("12-4111-1111-1111-1111-9")
            .unwrap_or_default();
        assert_eq!(out.text(), "12-[REDACTED:credit_card]-9");
        assert_eq!(r().redact_text("1234 5678 9012 3456 7"), None);
    }

    #[test]
    fn review_findings_stay_fixed() {
        let red = |t: &str| {
            r().redact_text(t)
                .map(|x| x.text().to_owned())
                .unwrap_or_else(|| t.to_owned())
        };
        assert_eq!(red("4111.1111.1111.1111"), "[REDACTED:credit_card]");
        assert_eq!(red("4111  1111\t1111 1111"), "[REDACTED:credit_card]");
        assert_eq!(red("card4111111111111111"), "card[REDACTED:credit_card]");
        assert_eq!(red("cc_4111111111111111x"), "cc_[REDACTED:credit_card]x");
        assert_eq!(red("jöhn@example.com"), "[REDACTED:email]");
        // A failing card candidate must not hide an e-mail that starts inside it.
        let both = PatternRedactor::new([Detector::CreditCard, Detector::Email])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            both.redact_text("1234567890123@example.com")
                .map(|x| x.text().to_owned()),
            Some("[REDACTED:email]".to_owned())
        );
        // Digits touching a card on either side: not a card.
        assert_eq!(red("94111111111111111"), "94111111111111111");
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
        assert_eq!(v["user"]["n"], "[REDACTED:credit_card]");
        assert_eq!(v["user"]["email"], "[REDACTED:email]");
        assert_eq!(v["user"]["list"][1], "[REDACTED:email]");
    }
}

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
            Detector::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            // Candidates only; the Luhn check decides. ASCII word boundaries keep the scan cheap.
            Detector::CreditCard => r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
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
    fn confirm(self, candidate: &str) -> Option<usize> {
        match self {
            Detector::Email => Some(candidate.len()),
            // The candidate pattern is greedy, so a card can sit inside a longer run of digit
            // groups ("4111 1111 1111 1111 2"). Try every prefix that ends at a group boundary,
            // longest first.
            Detector::CreditCard => {
                let ends = candidate
                    .char_indices()
                    .filter(|&(_, c)| c == ' ' || c == '-')
                    .map(|(i, _)| i)
                    .chain(std::iter::once(candidate.len()));
                let mut ends: Vec<usize> = ends.collect();
                ends.reverse();
                ends.into_iter()
                    .find(|&end| candidate.get(..end).is_some_and(luhn_valid))
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

/// Finds every enabled detector's matches in a single pass over the text.
///
/// All patterns are compiled into one automaton when the redactor is built; each match is then
/// confirmed by its detector's validator (Luhn for cards) before it is replaced by
/// `[REDACTED:<detector>]`.
#[derive(Debug, Clone)]
pub struct PatternRedactor {
    detectors: Vec<Detector>,
    regex: Option<Regex>,
}

impl PatternRedactor {
    /// A redactor for `detectors`.
    ///
    /// # Errors
    /// [`RedactorBuildError`] if the patterns fail to compile (they are fixed, so this
    /// indicates a bug, reported rather than panicking).
    pub fn new(detectors: impl IntoIterator<Item = Detector>) -> Result<Self, RedactorBuildError> {
        let mut detectors: Vec<Detector> = detectors.into_iter().collect();
        detectors.dedup();
        let regex = if detectors.is_empty() {
            None
        } else {
            let patterns: Vec<&str> = detectors.iter().map(|d| d.pattern()).collect();
            Some(Regex::new_many(&patterns).map_err(|_| RedactorBuildError)?)
        };
        Ok(PatternRedactor { detectors, regex })
    }

    /// The enabled detectors.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }
}

impl Redactor for PatternRedactor {
    fn redact_text(&self, text: &str) -> Option<Redacted> {
        let regex = self.regex.as_ref()?;
        let mut out: Option<(String, RedactionReport)> = None;
        let mut last = 0;
        let mut at = 0;
        while at < text.len() {
            // The search sees the whole text, so word boundaries before `at` are honoured.
            let Some(m) = regex.search(&Input::new(text).range(at..)) else {
                break;
            };
            let Some(&detector) = self.detectors.get(m.pattern().as_usize()) else {
                break;
            };
            let candidate = text.get(m.range()).unwrap_or_default();
            match detector.confirm(candidate) {
                Some(len) => {
                    let (buf, report) = out.get_or_insert_with(|| {
                        (
                            String::with_capacity(text.len()),
                            RedactionReport::default(),
                        )
                    });
                    buf.push_str(text.get(last..m.start()).unwrap_or_default());
                    buf.push_str(detector.replacement());
                    report.add(detector.name(), 1);
                    last = m.start() + len;
                    at = last;
                }
                // Not confirmed: a finding may still start at a later group of the candidate
                // ("1 4111 1111 1111 1111"), so resume just after the next separator.
                None => {
                    at = candidate
                        .find([' ', '-'])
                        .map_or(m.end(), |i| m.start() + i + 1)
                        .max(m.start() + 1);
                    while !text.is_char_boundary(at) {
                        at += 1;
                    }
                }
            }
        }
        let (mut buf, report) = out?;
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

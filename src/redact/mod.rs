//! Redaction: keep secrets and personal data out of results and logs.
//!
//! A [`Redactor`] rewrites text, and JSON values string by string, and reports what it found as
//! counts per detector, never the values. Redaction is idempotent: redacting a redacted text
//! finds nothing more.
//!
//! ```
//! use mcp_security::redact::{Detector, PatternRedactor, Redactor};
//!
//! let r = PatternRedactor::new([Detector::Email, Detector::CreditCard])?;
//! let out = r.redact_text("mail jane@example.com, card 4111 1111 1111 1111").unwrap_or_default();
//! assert_eq!(out.text(), "mail [EMAIL REDACTED], card [CREDIT_CARD REDACTED]");
//! assert_eq!(out.report().total(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classify;
mod detectors;
mod patterns;
mod scan;

pub use classify::{Classification, Classifier, Level};
pub use detectors::{Category, Detector};
pub use patterns::{
    CustomDetector, Finding, PatternRedactor, RedactionStyle, RedactorBuildError, Validator,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::Value;

/// What a redaction found: how many values of each entity type, and their categories. Holds
/// no values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactionReport {
    counts: BTreeMap<Arc<str>, u32>,
    categories: BTreeSet<Category>,
}

impl RedactionReport {
    /// Counts one finding of `entity` in `category`.
    pub fn add_finding(&mut self, entity: &Arc<str>, category: Category) {
        match self.counts.get_mut(entity) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(entity.clone(), 1);
            }
        }
        self.categories.insert(category);
    }

    /// Counts `n` findings of `entity` in `category`.
    pub(crate) fn add_findings(&mut self, entity: &Arc<str>, category: Category, n: u32) {
        match self.counts.get_mut(entity) {
            Some(c) => *c += n,
            None => {
                self.counts.insert(entity.clone(), n);
            }
        }
        self.categories.insert(category);
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &RedactionReport) {
        for (k, n) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += n;
        }
        self.categories.extend(other.categories.iter().copied());
    }

    /// The categories of what was found.
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        self.categories.iter().copied()
    }

    /// All findings.
    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Findings per entity type.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.counts.iter().map(|(k, n)| (&**k, *n))
    }
}

/// A redacted text and what was found in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    text: String,
    report: RedactionReport,
}

impl Redacted {
    /// A redacted text with its report.
    pub fn new(text: String, report: RedactionReport) -> Self {
        Redacted { text, report }
    }

    /// The redacted text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What was found.
    pub fn report(&self) -> &RedactionReport {
        &self.report
    }

    /// The redacted text and the report.
    pub fn into_parts(self) -> (String, RedactionReport) {
        (self.text, self.report)
    }
}

/// Finds sensitive values and replaces them.
///
/// Synchronous and CPU-only; patterns are compiled when the redactor is built.
pub trait Redactor: Debug + Send + Sync {
    /// Redacts `text`, returning `None` when nothing was found, so clean text costs no
    /// allocation.
    fn redact_text(&self, text: &str) -> Option<Redacted>;

    /// Redacts every string in `value`, and integers long enough to be card numbers (object keys
    /// are left alone: they are schema, not data).
    fn redact_value(&self, value: &mut Value) -> RedactionReport {
        let mut report = RedactionReport::default();
        redact_value_with(self, value, &mut report);
        report
    }
}

fn redact_value_with<R: Redactor + ?Sized>(r: &R, value: &mut Value, report: &mut RedactionReport) {
    match value {
        Value::String(s) => {
            if let Some(red) = r.redact_text(s) {
                let (text, rep) = red.into_parts();
                *s = text;
                report.merge(&rep);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_value_with(r, v, report)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| redact_value_with(r, v, report)),
        // A card number sent as a JSON number is still a card number. Only integers long enough
        // to be one are formatted, so ordinary numbers cost nothing.
        Value::Number(n) if n.as_u64().is_some_and(|u| u >= 1_000_000_000_000) => {
            if let Some(red) = r.redact_text(&n.to_string()) {
                let (text, rep) = red.into_parts();
                *value = Value::String(text);
                report.merge(&rep);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Redacts `text` in place, returning what was found.
pub fn redact_string<R: Redactor + ?Sized>(r: &R, text: &mut String) -> RedactionReport {
    match r.redact_text(text) {
        Some(red) => {
            let (t, rep) = red.into_parts();
            *text = t;
            rep
        }
        None => RedactionReport::default(),
    }
}

impl<T: Redactor + ?Sized> Redactor for Arc<T> {
    fn redact_text(&self, text: &str) -> Option<Redacted> {
        (**self).redact_text(text)
    }

    fn redact_value(&self, value: &mut Value) -> RedactionReport {
        (**self).redact_value(value)
    }
}

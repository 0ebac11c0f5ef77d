//! Data classification: how sensitive a result is, from what the redactor found in it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Category, RedactionReport};

/// A sensitivity level, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Level {
    /// Anyone may see it.
    Public,
    /// Inside the organisation.
    Internal,
    /// Need to know.
    Confidential,
    /// The most sensitive data: cards, credentials.
    Restricted,
}

impl Level {
    /// The policy spelling: `public`, `internal`, `confidential`, `restricted`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "public" => Level::Public,
            "internal" => Level::Internal,
            "confidential" => Level::Confidential,
            "restricted" => Level::Restricted,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How sensitive one result was: the highest level among its findings, their categories, and
/// what the policy says data of that level needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The level.
    pub level: Level,
    /// The categories found (`PII`, `PCI`, ...).
    pub categories: Vec<&'static str>,
    /// How long records of this level may be kept, when the policy says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Whether data of this level must be stored encrypted.
    pub encryption_required: bool,
}

/// Turns findings into a [`Classification`] and decides which hosts are cleared for it.
///
/// Each category maps to a level (defaults: `PCI` and `SECRET` restricted, `PHI` restricted,
/// `PII` confidential). A host's clearance is the highest level it may receive; a host the
/// policy does not name is cleared up to the default clearance (`restricted` unless set, so
/// classification denies nothing until the policy asks it to).
#[derive(Debug, Clone)]
pub struct Classifier {
    levels: [Level; 4],
    retention: [Option<u32>; 4],
    encryption: [bool; 4],
    clearance: HashMap<Arc<str>, Level>,
    default_clearance: Level,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            levels: [
                Level::Confidential,
                Level::Restricted,
                Level::Restricted,
                Level::Restricted,
            ],
            retention: [None; 4],
            encryption: [false; 4],
            clearance: HashMap::new(),
            default_clearance: Level::Restricted,
        }
    }
}

fn slot(c: Category) -> usize {
    match c {
        Category::Pii => 0,
        Category::Phi => 1,
        Category::Pci => 2,
        Category::Secret => 3,
    }
}

impl Classifier {
    /// The default mapping, every host cleared for everything.
    pub fn new() -> Self {
        Classifier::default()
    }

    /// Data of `category` is at `level`.
    pub fn with_level(mut self, category: Category, level: Level) -> Self {
        if let Some(l) = self.levels.get_mut(slot(category)) {
            *l = level;
        }
        self
    }

    /// Data at `level` may be kept `days` days.
    pub fn with_retention(mut self, level: Level, days: u32) -> Self {
        if let Some(r) = self.retention.get_mut(level.index()) {
            *r = Some(days);
        }
        self
    }

    /// Data at `level` must be stored encrypted.
    pub fn with_encryption_required(mut self, level: Level) -> Self {
        if let Some(e) = self.encryption.get_mut(level.index()) {
            *e = true;
        }
        self
    }

    /// `host` may receive results up to `level`.
    pub fn with_clearance(mut self, host: impl Into<Arc<str>>, level: Level) -> Self {
        self.clearance.insert(host.into(), level);
        self
    }

    /// Hosts the policy does not name may receive results up to `level`.
    pub fn with_default_clearance(mut self, level: Level) -> Self {
        self.default_clearance = level;
        self
    }

    /// The classification of a result with these findings; `None` when nothing was found.
    pub fn classify(&self, report: &RedactionReport) -> Option<Classification> {
        let mut level: Option<Level> = None;
        let mut categories = Vec::new();
        for c in report.categories() {
            let l = self
                .levels
                .get(slot(c))
                .copied()
                .unwrap_or(Level::Restricted);
            level = Some(level.map_or(l, |x| x.max(l)));
            categories.push(c.as_str());
        }
        let level = level?;
        Some(Classification {
            level,
            categories,
            retention_days: self.retention.get(level.index()).copied().flatten(),
            encryption_required: self.encryption.get(level.index()).copied().unwrap_or(true),
        })
    }

    /// Whether `host` may receive data at `level`.
    pub fn cleared(&self, host: &str, level: Level) -> bool {
        level
            <= self
                .clearance
                .get(host)
                .copied()
                .unwrap_or(self.default_clearance)
    }
}

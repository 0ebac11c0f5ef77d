//! OSV advisories (<https://ossf.github.io/osv-schema/>): parsing and version-range matching.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::pep440::Pep440;
use super::{Ecosystem, lockfiles::normalize_pypi};
use crate::provenance::catalog::Severity;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Advisory {
    pub(super) id: String,
    #[serde(default)]
    pub(super) aliases: Vec<String>,
    #[serde(default)]
    pub(super) summary: Option<String>,
    #[serde(default)]
    pub(super) withdrawn: Option<String>,
    #[serde(default)]
    pub(super) severity: Vec<SeverityEntry>,
    #[serde(default)]
    pub(super) affected: Vec<Affected>,
    #[serde(default)]
    pub(super) database_specific: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct SeverityEntry {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) score: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Affected {
    #[serde(default)]
    pub(super) package: Option<PackageRef>,
    #[serde(default)]
    pub(super) ranges: Vec<Range>,
    #[serde(default)]
    pub(super) versions: Vec<String>,
    #[serde(default)]
    pub(super) severity: Vec<SeverityEntry>,
    #[serde(default)]
    pub(super) database_specific: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct PackageRef {
    pub(super) ecosystem: String,
    pub(super) name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Range {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Event {
    #[serde(default)]
    introduced: Option<String>,
    #[serde(default)]
    fixed: Option<String>,
    #[serde(default)]
    last_affected: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// A version in one ecosystem's ordering.
#[derive(Debug, Clone)]
enum Ver {
    Semver(semver::Version),
    Pep440(Pep440),
}

impl Ver {
    fn parse(eco: Ecosystem, s: &str) -> Option<Ver> {
        match eco {
            Ecosystem::CratesIo | Ecosystem::Npm => {
                semver::Version::parse(s.strip_prefix('v').unwrap_or(s))
                    .ok()
                    .map(Ver::Semver)
            }
            Ecosystem::PyPI => Pep440::parse(s).map(Ver::Pep440),
        }
    }

    fn cmp(&self, other: &Ver) -> Option<Ordering> {
        match (self, other) {
            // Semver precedence ignores build metadata.
            (Ver::Semver(a), Ver::Semver(b)) => Some(a.cmp_precedence(b)),
            (Ver::Pep440(a), Ver::Pep440(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Whether an affected entry names this package (ecosystem and name, PyPI names normalised).
pub(super) fn names(affected: &Affected, eco: Ecosystem, name: &str) -> bool {
    let Some(p) = &affected.package else {
        return false;
    };
    // OSV ecosystems may carry a suffix (`Debian:12`); ours never do.
    if p.ecosystem != eco.osv_name() {
        return false;
    }
    match eco {
        Ecosystem::PyPI => normalize_pypi(&p.name) == name,
        _ => p.name == name,
    }
}

/// The outcome of matching one version against one affected entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    Affected,
    NotAffected,
    /// A range could not be evaluated (an unparseable version in it, or a GIT range alone).
    Unknown,
}

/// The OSV evaluation: the version is affected when it is listed in `versions`, or when a
/// SEMVER or ECOSYSTEM range's events, sorted by version, leave it affected
/// (`introduced` at or below it turns affected on; `fixed` at or below, or `last_affected`
/// below, turns it off). `limit` only bounds GIT ranges, which need the repository and are
/// not evaluated.
pub(super) fn matches(affected: &Affected, eco: Ecosystem, version: &str) -> Match {
    if affected.versions.iter().any(|v| v == version) {
        return Match::Affected;
    }
    let Some(v) = Ver::parse(eco, version) else {
        return Match::Unknown;
    };
    // Listed versions may be spelled differently (`1.0` and `1.0.0` are one PyPI version).
    if affected
        .versions
        .iter()
        .any(|l| Ver::parse(eco, l).is_some_and(|lv| lv.cmp(&v) == Some(Ordering::Equal)))
    {
        return Match::Affected;
    }
    let mut unknown = false;
    for range in &affected.ranges {
        if range.kind != "SEMVER" && range.kind != "ECOSYSTEM" {
            unknown |= affected.versions.is_empty();
            continue;
        }
        match in_range(&range.events, eco, &v) {
            Some(true) => return Match::Affected,
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        Match::Unknown
    } else {
        Match::NotAffected
    }
}

#[derive(Clone)]
enum Bound {
    Zero,
    At(Ver),
}

fn in_range(events: &[Event], eco: Ecosystem, v: &Ver) -> Option<bool> {
    // (version, kind): 0 introduced, 1 fixed, 2 last_affected.
    let mut parsed: Vec<(Bound, u8)> = Vec::with_capacity(events.len());
    for e in events {
        let (s, kind) = if let Some(s) = &e.introduced {
            (s, 0)
        } else if let Some(s) = &e.fixed {
            (s, 1)
        } else if let Some(s) = &e.last_affected {
            (s, 2)
        } else if e.limit.is_some() {
            continue;
        } else {
            return None;
        };
        let bound = if kind == 0 && s == "0" {
            Bound::Zero
        } else {
            Bound::At(Ver::parse(eco, s)?)
        };
        parsed.push((bound, kind));
    }
    let mut failed = false;
    parsed.sort_by(|a, b| match (&a.0, &b.0) {
        (Bound::Zero, Bound::Zero) => Ordering::Equal,
        (Bound::Zero, _) => Ordering::Less,
        (_, Bound::Zero) => Ordering::Greater,
        (Bound::At(x), Bound::At(y)) => x.cmp(y).unwrap_or_else(|| {
            failed = true;
            Ordering::Equal
        }),
    });
    if failed {
        return None;
    }
    let mut affected = false;
    for (bound, kind) in &parsed {
        let ord = match bound {
            Bound::Zero => Ordering::Greater,
            Bound::At(b) => v.cmp(b)?,
        };
        match kind {
            0 if ord != Ordering::Less => affected = true,
            1 if ord != Ordering::Less => affected = false,
            2 if ord == Ordering::Greater => affected = false,
            _ => {}
        }
    }
    Some(affected)
}

/// The advisory's severity: `database_specific.severity` (the affected entry's, then the
/// advisory's; GitHub's `MODERATE` is medium), else the highest CVSS v3 base score computed
/// from the vector, else `None`.
pub(super) fn severity(adv: &Advisory, affected: &Affected) -> Option<Severity> {
    let label = |ds: &Option<Value>| {
        ds.as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(Value::as_str)
            .and_then(Severity::parse)
    };
    label(&affected.database_specific)
        .or_else(|| label(&adv.database_specific))
        .or_else(|| {
            affected
                .severity
                .iter()
                .chain(&adv.severity)
                .filter(|s| s.kind.starts_with("CVSS_V3"))
                .filter_map(|s| cvss3_base_score(&s.score))
                .reduce(f64::max)
                .map(cvss_rating)
        })
}

fn cvss_rating(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// The CVSS v3.0/3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`).
pub(crate) fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut parts = vector.split('/');
    if !parts.next()?.starts_with("CVSS:3") {
        return None;
    }
    let (mut av, mut ac, mut pr, mut ui, mut s, mut c, mut i, mut a) =
        (None, None, None, None, None, None, None, None);
    for p in parts {
        let (k, v) = p.split_once(':')?;
        match k {
            "AV" => av = Some(v),
            "AC" => ac = Some(v),
            "PR" => pr = Some(v),
            "UI" => ui = Some(v),
            "S" => s = Some(v),
            "C" => c = Some(v),
            "I" => i = Some(v),
            "A" => a = Some(v),
            _ => {}
        }
    }
    let changed = match s? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let cia = |x: &str| match x {
        "H" => Some(0.56),
        "L" => Some(0.22),
        "N" => Some(0.0),
        _ => None,
    };
    let av = match av? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match ac? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (pr?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match ui? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let iss = 1.0 - (1.0 - cia(c?)?) * (1.0 - cia(i?)?) * (1.0 - cia(a?)?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Some(roundup(raw))
}

/// CVSS v3.1 Roundup: the smallest one-decimal number not below `x`, robust to float error.
fn roundup(x: f64) -> f64 {
    let int = (x * 100_000.0).round() as i64;
    if int % 10_000 == 0 {
        int as f64 / 100_000.0
    } else {
        ((int / 10_000) + 1) as f64 / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_scores() {
        // Scores from the NVD calculator.
        for (v, want) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", 5.9),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ] {
            assert_eq!(cvss3_base_score(v), Some(want), "{v}");
        }
        assert_eq!(cvss3_base_score("CVSS:4.0/AV:N"), None);
        assert_eq!(cvss3_base_score("garbage"), None);
    }
}

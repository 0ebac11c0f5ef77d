//! Dependency scan: lockfiles matched against an offline OSV advisory database.
//!
//! Reads `Cargo.lock` (crates.io packages), `package-lock.json` (lockfile v1 `dependencies`,
//! v2/v3 `packages`) and `requirements.txt` (`==` / `===` pins; other lines are reported as
//! unpinned, since they do not say which version is installed). Advisories are OSV JSON files
//! (one advisory per file, as in the `osv.dev` bulk exports), read from a directory tree.
//!
//! Ranges follow the OSV specification: SEMVER and ECOSYSTEM ranges with `introduced`,
//! `fixed` and `last_affected` events, plus explicit `versions` lists; versions compare as
//! semver for crates.io and npm, and by PEP 440 for PyPI. Withdrawn advisories are ignored.
//! Advisories whose id starts with `MAL-` (the OpenSSF malicious-packages feed) and entries
//! of the known-malicious list mark a package as malicious.
//!
//! The risk score adds the seed's weights (critical 40, high 20, medium 5, low 1; a
//! malicious package counts as critical), capped at 100. An advisory without a severity label
//! or CVSS v3 vector counts as medium ([`UNKNOWN_SEVERITY`]).
//!
//! # The known-malicious list
//! A text file, one package a line: `ECOSYSTEM NAME [VERSION]` (`crates.io`, `npm`, `PyPI`),
//! no version meaning every version; `#` starts a comment.
//! ```text
//! npm flatmap-stream 0.1.1
//! PyPI colourama
//! ```
//!
//! ```
//! use mcp_security::provenance::depscan::{AdvisoryDb, scan_lockfile};
//! let db = AdvisoryDb::from_json_documents([r#"{
//!   "id": "GHSA-xxxx", "database_specific": {"severity": "HIGH"},
//!   "affected": [{"package": {"ecosystem": "PyPI", "name": "Jinja2"},
//!                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.3"}]}]}]
//! }"#])?;
//! let report = scan_lockfile("requirements.txt", "jinja2==3.1.2\nrequests>=2\n", &db)?;
//! assert_eq!(report.findings.len(), 1);
//! assert_eq!(report.risk_score, 20);
//! assert_eq!(report.unpinned, ["requests>=2"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod lockfiles;
mod osv;
pub mod pep440;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::catalog::{Severity, risk_score};

/// The severity assumed for an advisory that gives none.
pub const UNKNOWN_SEVERITY: Severity = Severity::Medium;

/// A package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum Ecosystem {
    /// Rust crates.
    #[serde(rename = "crates.io")]
    CratesIo,
    /// npm.
    #[serde(rename = "npm")]
    Npm,
    /// The Python Package Index.
    #[serde(rename = "PyPI")]
    PyPI,
}

impl Ecosystem {
    /// The ecosystem's name in OSV.
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "crates.io" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            "PyPI" | "pypi" => Some(Ecosystem::PyPI),
            _ => None,
        }
    }
}

/// A locked package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name (PEP 503-normalised for PyPI).
    pub name: String,
    /// The locked version.
    pub version: String,
}

impl Package {
    fn new(ecosystem: Ecosystem, name: impl Into<String>, version: impl Into<String>) -> Self {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
        }
    }
}

/// An advisory that affects a locked package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The package.
    pub package: Package,
    /// The advisory id.
    pub id: String,
    /// Its aliases (CVE ids...).
    pub aliases: Vec<String>,
    /// Its severity (or [`UNKNOWN_SEVERITY`]).
    pub severity: Severity,
    /// Whether the advisory gave a severity.
    pub severity_known: bool,
    /// Its summary.
    pub summary: Option<String>,
    /// Whether the advisory says the package is malicious (`MAL-` ids).
    pub malicious: bool,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScanReport {
    /// Every package read from the lockfiles.
    pub packages: Vec<Package>,
    /// Advisories affecting them.
    pub findings: Vec<Finding>,
    /// Packages on the known-malicious list (or with a `MAL-` advisory).
    pub malicious: Vec<Package>,
    /// requirements.txt lines that pin no version, so could not be checked.
    pub unpinned: Vec<String>,
    /// (package, advisory id) pairs whose ranges could not be evaluated (unparseable versions,
    /// GIT ranges): neither counted as affected nor as safe.
    pub undetermined: Vec<(Package, String)>,
    /// The risk score, 0..=100.
    pub risk_score: u8,
}

impl ScanReport {
    /// Whether nothing vulnerable or malicious was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.malicious.is_empty()
    }

    fn finish(&mut self) {
        self.packages.sort();
        self.packages.dedup();
        self.malicious.sort();
        self.malicious.dedup();
        self.risk_score = risk_score(
            self.findings
                .iter()
                .filter(|f| !f.malicious)
                .map(|f| f.severity)
                .chain(self.malicious.iter().map(|_| Severity::Critical)),
        );
    }

    fn merge(&mut self, other: ScanReport) {
        self.packages.extend(other.packages);
        self.findings.extend(other.findings);
        self.malicious.extend(other.malicious);
        self.unpinned.extend(other.unpinned);
        self.undetermined.extend(other.undetermined);
        self.finish();
    }
}

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DepScanError {
    /// A file could not be read.
    #[error("`{path}` could not be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A lockfile is malformed.
    #[error("{file}: {reason}")]
    Lockfile {
        /// Which kind of lockfile.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file name is not a supported lockfile.
    #[error("`{0}` is not Cargo.lock, package-lock.json or requirements.txt")]
    UnknownLockfile(String),
    /// The directory holds no supported lockfile.
    #[error("no Cargo.lock, package-lock.json or requirements.txt in `{0}`")]
    NoLockfile(PathBuf),
    /// An advisory file is not OSV JSON.
    #[error("advisory `{name}` is not valid osv json: {reason}")]
    Advisory {
        /// The file (or document index).
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of the malicious-package list is malformed.
    #[error("malicious-package list line {0}: expected `ECOSYSTEM NAME [VERSION]`")]
    MaliciousList(usize),
}

/// The offline advisory database, and the known-malicious list.
#[derive(Debug, Clone, Default)]
pub struct AdvisoryDb {
    advisories: Vec<osv::Advisory>,
    malicious: Vec<(Ecosystem, String, Option<String>)>,
}

impl AdvisoryDb {
    /// Parses OSV JSON documents (one advisory each).
    ///
    /// # Errors
    /// [`DepScanError::Advisory`] for a document that is not OSV JSON.
    pub fn from_json_documents<'a>(
        docs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, DepScanError> {
        let mut db = AdvisoryDb::default();
        for (i, doc) in docs.into_iter().enumerate() {
            db.add(&i.to_string(), doc.as_bytes())?;
        }
        Ok(db)
    }

    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), DepScanError> {
        let adv: osv::Advisory =
            serde_json::from_slice(bytes).map_err(|e| DepScanError::Advisory {
                name: name.to_owned(),
                reason: match e.classify() {
                    serde_json::error::Category::Data => "missing or mistyped field",
                    _ => "invalid json",
                },
            })?;
        if adv.withdrawn.is_none() {
            self.advisories.push(adv);
        }
        Ok(())
    }

    /// Reads every `*.json` file under `dir` (recursively; links are not followed).
    ///
    /// # Errors
    /// [`DepScanError::Read`] or [`DepScanError::Advisory`].
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, DepScanError> {
        let mut db = AdvisoryDb::default();
        let mut stack = vec![dir.as_ref().to_path_buf()];
        while let Some(d) = stack.pop() {
            let read = |source| DepScanError::Read {
                path: d.clone(),
                source,
            };
            let mut entries: Vec<_> = std::fs::read_dir(&d)
                .map_err(read)?
                .collect::<Result<_, _>>()
                .map_err(read)?;
            entries.sort_by_key(std::fs::DirEntry::path);
            for e in entries {
                let path = e.path();
                let ft = e.file_type().map_err(|source| DepScanError::Read {
                    path: path.clone(),
                    source,
                })?;
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() && path.extension().is_some_and(|x| x == "json") {
                    let bytes = std::fs::read(&path).map_err(|source| DepScanError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    db.add(&path.display().to_string(), &bytes)?;
                }
            }
        }
        Ok(db)
    }

    /// Adds the known-malicious list (format in the module docs).
    ///
    /// # Errors
    /// [`DepScanError::MaliciousList`] naming the malformed line.
    pub fn with_malicious_list(mut self, text: &str) -> Result<Self, DepScanError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(eco), Some(name)) = (parts.next().and_then(Ecosystem::parse), parts.next())
            else {
                return Err(DepScanError::MaliciousList(i + 1));
            };
            let version = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(DepScanError::MaliciousList(i + 1));
            }
            let name = if eco == Ecosystem::PyPI {
                lockfiles::normalize_pypi(name)
            } else {
                name.to_owned()
            };
            self.malicious.push((eco, name, version));
        }
        Ok(self)
    }

    /// The number of advisories loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether no advisory is loaded.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// Matches packages against the advisories and the malicious list.
    pub fn scan(&self, packages: Vec<Package>) -> ScanReport {
        let mut report = ScanReport::default();
        let mut seen = BTreeSet::new();
        for p in &packages {
            if self.malicious.iter().any(|(e, n, v)| {
                *e == p.ecosystem && *n == p.name && v.as_ref().is_none_or(|v| *v == p.version)
            }) {
                report.malicious.push(p.clone());
            }
            for adv in &self.advisories {
                for aff in adv
                    .affected
                    .iter()
                    .filter(|a| osv::names(a, p.ecosystem, &p.name))
                {
                    match osv::matches(aff, p.ecosystem, &p.version) {
                        osv::Match::Affected => {
                            if !seen.insert((p.clone(), adv.id.clone())) {
                                continue;
                            }
                            let severity = osv::severity(adv, aff);
                            let malicious = adv.id.starts_with("MAL-");
                            if malicious {
                                report.malicious.push(p.clone());
                            }
                            report.findings.push(Finding {
                                package: p.clone(),
                                id: adv.id.clone(),
                                aliases: adv.aliases.clone(),
                                severity: severity.unwrap_or(UNKNOWN_SEVERITY),
                                severity_known: severity.is_some(),
                                summary: adv.summary.clone(),
                                malicious,
                            });
                        }
                        osv::Match::Unknown => {
                            report.undetermined.push((p.clone(), adv.id.clone()));
                        }
                        osv::Match::NotAffected => {}
                    }
                }
            }
        }
        report.packages = packages;
        report.finish();
        report
    }
}

/// Reads the packages of one lockfile; `file_name` picks the format.
///
/// # Errors
/// [`DepScanError::UnknownLockfile`] or [`DepScanError::Lockfile`].
pub fn read_lockfile(
    file_name: &str,
    text: &str,
) -> Result<(Vec<Package>, Vec<String>), DepScanError> {
    match file_name {
        "Cargo.lock" => Ok((lockfiles::cargo_lock(text)?, Vec::new())),
        "package-lock.json" | "npm-shrinkwrap.json" => {
            Ok((lockfiles::package_lock(text)?, Vec::new()))
        }
        n if n.ends_with(".txt") && n.contains("requirements") => Ok(lockfiles::requirements(text)),
        n => Err(DepScanError::UnknownLockfile(n.to_owned())),
    }
}

/// Scans one lockfile's text; `file_name` picks the format.
///
/// # Errors
/// As [`read_lockfile`].
pub fn scan_lockfile(
    file_name: &str,
    text: &str,
    db: &AdvisoryDb,
) -> Result<ScanReport, DepScanError> {
    let (packages, unpinned) = read_lockfile(file_name, text)?;
    let mut report = db.scan(packages);
    report.unpinned = unpinned;
    Ok(report)
}

/// Scans a lockfile, or every supported lockfile directly inside a directory.
///
/// # Errors
/// [`DepScanError::Read`], [`DepScanError::NoLockfile`], or a lockfile error.
pub fn scan_path(path: impl AsRef<Path>, db: &AdvisoryDb) -> Result<ScanReport, DepScanError> {
    let path = path.as_ref();
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| DepScanError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let name_of = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned()
    };
    if !path.is_dir() {
        return scan_lockfile(&name_of(path), &read(path)?, db);
    }
    let mut total = ScanReport::default();
    let mut any = false;
    for name in ["Cargo.lock", "package-lock.json", "requirements.txt"] {
        let p = path.join(name);
        if p.is_file() {
            any = true;
            total.merge(scan_lockfile(name, &read(&p)?, db)?);
        }
    }
    if !any {
        return Err(DepScanError::NoLockfile(path.to_path_buf()));
    }
    Ok(total)
}

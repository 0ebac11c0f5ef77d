//! The trusted server catalog: which servers and versions a host may run, where, and why not.
//!
//! # The catalog file (TOML)
//! ```toml
//! # Per environment: the highest risk allowed, and the lowest vulnerability severity that
//! # refuses a version. Defaults: dev 100 / "critical", staging 70 / "high",
//! # production 40 / "low" (any known vulnerability refuses a version in production).
//! [policy.production]
//! max_risk = 40
//! block_severity = "low"
//!
//! [[server]]
//! name = "filesystem"
//! publisher = "acme"              # optional: the keyring publisher that must sign it
//! risk_score = 10                 # 0..=100, the operator's assessment
//! environments = ["dev", "staging", "production"]
//! [server.attestation]            # optional: what its build attestation must say
//! builders = ["https://github.com/actions/runner"]
//! source_repositories = ["https://github.com/acme/fs-server"]
//!
//! [[server.version]]
//! version = "1.2.0"               # semver
//! released = 2025-01-10           # a TOML date
//! sha256 = "<64 hex>"             # optional: the artifact digest of this version
//! environments = ["dev"]          # optional: narrows the server's environments
//!
//! [[server.vulnerability]]
//! id = "CVE-2025-0001"
//! severity = "high"               # critical, high, medium, low
//! affected = ">=1.0.0, <1.2.0"    # a semver requirement
//! patched = "1.2.0"               # optional
//! ```
//!
//! A version's risk is the server's `risk_score` plus, for each known vulnerability that
//! affects it, the seed's severity weight (critical 40, high 20, medium 5, low 1), capped at 100.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::attestation::AttestationPolicy;
use super::{ArtifactDigest, ProvenanceError};

/// A vulnerability severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium (also "moderate" in advisories).
    #[serde(alias = "moderate")]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The seed's risk weight: critical 40, high 20, medium 5, low 1.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Critical => 40,
            Severity::High => 20,
            Severity::Medium => 5,
            Severity::Low => 1,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// Parses a severity label case-insensitively (`moderate` is `medium`).
    pub fn parse(label: &str) -> Option<Self> {
        match label.to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" => Some(Severity::Low),
            _ => None,
        }
    }
}

/// The sum of the severities' weights, capped at 100.
pub fn risk_score(severities: impl IntoIterator<Item = Severity>) -> u8 {
    let total: u32 = severities.into_iter().map(Severity::weight).sum();
    u8::try_from(total.min(100)).unwrap_or(100)
}

/// A deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development.
    Dev,
    /// Staging.
    Staging,
    /// Production.
    Production,
}

impl Environment {
    /// Parses `dev`, `staging` or `production`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dev" => Some(Environment::Dev),
            "staging" => Some(Environment::Staging),
            "production" => Some(Environment::Production),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvPolicy {
    max_risk: u8,
    block_severity: Severity,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTable {
    dev: Option<EnvPolicy>,
    staging: Option<EnvPolicy>,
    production: Option<EnvPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    policy: PolicyTable,
    #[serde(default)]
    server: Vec<ServerEntry>,
}

/// A server in the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The server's name.
    pub name: String,
    /// The keyring publisher that must sign its artifacts, if any.
    #[serde(default)]
    pub publisher: Option<String>,
    /// The operator's risk assessment, 0..=100.
    pub risk_score: u8,
    /// Where it may run.
    pub environments: Vec<Environment>,
    /// What its build attestations must say.
    #[serde(default)]
    pub attestation: Option<AttestationPolicy>,
    /// Known versions.
    #[serde(default, rename = "version")]
    pub versions: Vec<VersionEntry>,
    /// Known vulnerabilities.
    #[serde(default, rename = "vulnerability")]
    pub vulnerabilities: Vec<Vulnerability>,
}

/// A known version of a server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// The version (semver).
    pub version: String,
    /// Its release date.
    pub released: toml::value::Datetime,
    /// The SHA-256 of its artifact, as hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Narrower environments for this version.
    #[serde(default)]
    pub environments: Option<Vec<Environment>>,
}

/// A known vulnerability of a server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerability {
    /// Its id (CVE, GHSA...).
    pub id: String,
    /// Its severity.
    pub severity: Severity,
    /// The affected versions, as a semver requirement.
    pub affected: String,
    /// The first fixed version.
    #[serde(default)]
    pub patched: Option<String>,
}

/// A parsed, validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    policy: [EnvPolicy; 3],
    servers: Vec<ServerEntry>,
    affected: Vec<Vec<semver::VersionReq>>,
}

/// Why a server is or is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustReason {
    /// In the catalog, allowed here, no blocking vulnerability, risk within the limit.
    Trusted,
    /// No server of that name in the catalog.
    UnknownServer,
    /// The version is not listed for that server.
    UnknownVersion,
    /// The version or server is not allowed in this environment.
    EnvironmentNotAllowed,
    /// A known vulnerability at or above the environment's blocking severity affects it.
    Vulnerable {
        /// The vulnerability id.
        id: String,
        /// Its severity.
        severity: Severity,
        /// The fixed version, when known.
        patched: Option<String>,
    },
    /// The risk score exceeds the environment's limit.
    RiskTooHigh {
        /// The version's risk.
        score: u8,
        /// The environment's limit.
        limit: u8,
    },
}

impl fmt::Display for TrustReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustReason::Trusted => f.write_str("trusted"),
            TrustReason::UnknownServer => f.write_str("server is not in the catalog"),
            TrustReason::UnknownVersion => f.write_str("version is not in the catalog"),
            TrustReason::EnvironmentNotAllowed => {
                f.write_str("version is not allowed in this environment")
            }
            TrustReason::Vulnerable {
                id,
                severity,
                patched,
            } => {
                write!(f, "affected by {id} ({})", severity.as_str())?;
                if let Some(p) = patched {
                    write!(f, ", patched in {p}")?;
                }
                Ok(())
            }
            TrustReason::RiskTooHigh { score, limit } => {
                write!(f, "risk score {score} exceeds the limit {limit}")
            }
        }
    }
}

/// The catalog's answer for one server version in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDecision {
    /// Why.
    pub reason: TrustReason,
    /// The version's risk score (0 when the version is unknown).
    pub risk_score: u8,
    /// Ids of every known vulnerability affecting the version, blocking or not.
    pub vulnerabilities: Vec<String>,
}

impl TrustDecision {
    /// Whether the server may run.
    pub fn is_trusted(&self) -> bool {
        self.reason == TrustReason::Trusted
    }
}

const DEFAULT_POLICY: [EnvPolicy; 3] = [
    EnvPolicy {
        max_risk: 100,
        block_severity: Severity::Critical,
    },
    EnvPolicy {
        max_risk: 70,
        block_severity: Severity::High,
    },
    EnvPolicy {
        max_risk: 40,
        block_severity: Severity::Low,
    },
];

fn env_index(env: Environment) -> usize {
    match env {
        Environment::Dev => 0,
        Environment::Staging => 1,
        Environment::Production => 2,
    }
}

impl Catalog {
    /// Parses the catalog file format (see the module docs).
    ///
    /// # Errors
    /// [`ProvenanceError::Catalog`] naming what is wrong: malformed TOML, a duplicate server,
    /// a risk score above 100, a version or requirement that is not semver, a bad digest.
    pub fn from_toml_str(text: &str) -> Result<Self, ProvenanceError> {
        let bad = |m: String| ProvenanceError::Catalog(m);
        let file: CatalogFile = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        let mut policy = DEFAULT_POLICY;
        for (i, p) in [file.policy.dev, file.policy.staging, file.policy.production]
            .into_iter()
            .enumerate()
        {
            if let (Some(p), Some(slot)) = (p, policy.get_mut(i)) {
                if p.max_risk > 100 {
                    return Err(bad("policy max_risk must be 0 to 100".into()));
                }
                *slot = p;
            }
        }
        let mut affected = Vec::with_capacity(file.server.len());
        for (i, s) in file.server.iter().enumerate() {
            if file.server.iter().take(i).any(|o| o.name == s.name) {
                return Err(bad(format!("server `{}` appears twice", s.name)));
            }
            if s.risk_score > 100 {
                return Err(bad(format!(
                    "server `{}`: risk_score must be 0 to 100",
                    s.name
                )));
            }
            for v in &s.versions {
                semver::Version::parse(&v.version)
                    .map_err(|_| bad(format!("server `{}`: version is not semver", s.name)))?;
                if v.released.date.is_none() {
                    return Err(bad(format!("server `{}`: released must be a date", s.name)));
                }
                if let Some(d) = &v.sha256
                    && crate::hex::parse_sha256(d).is_none()
                {
                    return Err(bad(format!(
                        "server `{}`: sha256 must be 64 hex characters",
                        s.name
                    )));
                }
            }
            let reqs = s
                .vulnerabilities
                .iter()
                .map(|v| {
                    semver::VersionReq::parse(&v.affected).map_err(|_| {
                        bad(format!(
                            "server `{}`: vulnerability `{}` affected is not a semver requirement",
                            s.name, v.id
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            affected.push(reqs);
        }
        Ok(Catalog {
            policy,
            servers: file.server,
            affected,
        })
    }

    /// Reads and parses a catalog file.
    ///
    /// # Errors
    /// [`ProvenanceError::Read`], or as [`Catalog::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ProvenanceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(super::digest::read_err(path))?;
        Self::from_toml_str(&text)
    }

    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&ServerEntry> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// May `name` at `version` run in `environment`? The decision says why.
    pub fn is_server_trusted(
        &self,
        name: &str,
        version: &str,
        environment: Environment,
    ) -> TrustDecision {
        let deny = |reason| TrustDecision {
            reason,
            risk_score: 0,
            vulnerabilities: Vec::new(),
        };
        let Some(idx) = self.servers.iter().position(|s| s.name == name) else {
            return deny(TrustReason::UnknownServer);
        };
        let (Some(server), Some(reqs)) = (self.servers.get(idx), self.affected.get(idx)) else {
            return deny(TrustReason::UnknownServer);
        };
        let Ok(parsed) = semver::Version::parse(version) else {
            return deny(TrustReason::UnknownVersion);
        };
        // Compare parsed versions, so "1.2.0" and "1.2.0+build" are told apart only by semver.
        let Some(entry) = server
            .versions
            .iter()
            .find(|v| semver::Version::parse(&v.version).is_ok_and(|p| p == parsed))
        else {
            return deny(TrustReason::UnknownVersion);
        };
        let hits: Vec<&Vulnerability> = server
            .vulnerabilities
            .iter()
            .zip(reqs)
            .filter(|(_, req)| req.matches(&parsed))
            .map(|(v, _)| v)
            .collect();
        let risk = u8::try_from(
            (u32::from(server.risk_score) + hits.iter().map(|v| v.severity.weight()).sum::<u32>())
                .min(100),
        )
        .unwrap_or(100);
        let ids = hits.iter().map(|v| v.id.clone()).collect();
        let decide = |reason| TrustDecision {
            reason,
            risk_score: risk,
            vulnerabilities: ids,
        };
        let envs = entry.environments.as_ref().unwrap_or(&server.environments);
        if !server.environments.contains(&environment) || !envs.contains(&environment) {
            return decide(TrustReason::EnvironmentNotAllowed);
        }
        let policy = self
            .policy
            .get(env_index(environment))
            .copied()
            .unwrap_or(EnvPolicy {
                max_risk: 0,
                block_severity: Severity::Low,
            });
        if let Some(worst) = hits
            .iter()
            .filter(|v| v.severity >= policy.block_severity)
            .max_by_key(|v| v.severity)
        {
            return decide(TrustReason::Vulnerable {
                id: worst.id.clone(),
                severity: worst.severity,
                patched: worst.patched.clone(),
            });
        }
        if risk > policy.max_risk {
            return decide(TrustReason::RiskTooHigh {
                score: risk,
                limit: policy.max_risk,
            });
        }
        decide(TrustReason::Trusted)
    }

    /// Checks `digest` against the version's pinned `sha256`, when the catalog has one.
    ///
    /// # Errors
    /// [`ProvenanceError::DigestMismatch`] when the catalog pins another digest.
    pub fn check_digest(
        &self,
        name: &str,
        version: &str,
        digest: &ArtifactDigest,
    ) -> Result<(), ProvenanceError> {
        let pinned = self.server(name).and_then(|s| {
            s.versions
                .iter()
                .find(|v| v.version == version)
                .and_then(|v| v.sha256.as_deref())
        });
        match pinned.and_then(crate::hex::parse_sha256) {
            Some(p) if p != *digest.bytes() => Err(ProvenanceError::DigestMismatch),
            _ => Ok(()),
        }
    }
}

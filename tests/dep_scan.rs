//! Dependency scan: real lockfile shapes (this repository's own Cargo.lock, npm lockfile v1 and
//! v3, a pip-compile requirements.txt) against an OSV directory written here, with advisories
//! shaped as the published OSV entries (RustSec, GitHub, PyPA, OpenSSF malicious packages).

#![cfg(feature = "provenance")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::path::Path;

use mcp_security::provenance::Severity;
use mcp_security::provenance::depscan::{
    AdvisoryDb, DepScanError, Ecosystem, ScanReport, read_lockfile, scan_lockfile, scan_path,
};

const RUSTSEC_2023_0071: &str = r#"{
  "schema_version": "1.7.3",
  "id": "RUSTSEC-2023-0071",
  "modified": "2024-06-05T00:00:00Z",
  "published": "2023-11-22T12:00:00Z",
  "aliases": ["CVE-2023-49092", "GHSA-c38w-74pg-36hr"],
  "related": [],
  "summary": "Marvin Attack: potential key recovery through timing sidechannels",
  "details": "A timing side-channel in RSA decryption.",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
  "affected": [{
    "package": {"ecosystem": "crates.io", "name": "rsa", "purl": "pkg:cargo/rsa"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}]}],
    "ecosystem_specific": {"affects": {"arch": [], "os": [], "functions": []}},
    "database_specific": {"categories": ["crypto-failure"], "cvss": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", "informational": null}
  }],
  "references": [{"type": "PACKAGE", "url": "https://crates.io/crates/rsa"}],
  "database_specific": {"license": "CC0-1.0"}
}"#;

const RUSTSEC_2022_0013: &str = r#"{
  "id": "RUSTSEC-2022-0013",
  "modified": "2023-06-13T13:10:24Z",
  "published": "2022-03-08T12:00:00Z",
  "aliases": ["CVE-2022-24713", "GHSA-m5pq-gvj9-9vr8"],
  "summary": "Regexes with large repetitions on empty sub-expressions take a very long time to parse",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
  "affected": [{
    "package": {"ecosystem": "crates.io", "name": "regex", "purl": "pkg:cargo/regex"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}, {"fixed": "1.5.5"}]}],
    "database_specific": {"categories": ["denial-of-service"], "informational": null}
  }]
}"#;

const GHSA_LODASH: &str = r#"{
  "schema_version": "1.4.0",
  "id": "GHSA-jf85-cpcp-j695",
  "modified": "2023-11-01T00:00:00Z",
  "published": "2019-07-10T19:45:23Z",
  "aliases": ["CVE-2019-10744"],
  "summary": "Prototype Pollution in lodash",
  "affected": [{
    "package": {"ecosystem": "npm", "name": "lodash"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.17.12"}]}],
    "database_specific": {"source": "https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/2019/07/GHSA-jf85-cpcp-j695/GHSA-jf85-cpcp-j695.json"}
  }],
  "database_specific": {"cwe_ids": ["CWE-1321", "CWE-20"], "severity": "CRITICAL", "github_reviewed": true}
}"#;

const GHSA_MINIMIST: &str = r#"{
  "id": "GHSA-xvch-5gv4-984h",
  "aliases": ["CVE-2021-44906"],
  "summary": "Prototype Pollution in minimist",
  "affected": [
    {"package": {"ecosystem": "npm", "name": "minimist"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.2.4"}]}]},
    {"package": {"ecosystem": "npm", "name": "minimist"},
     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.6"}]}]}
  ],
  "database_specific": {"severity": "CRITICAL", "github_reviewed": true}
}"#;

const MAL_NPM: &str = r#"{
  "id": "MAL-2024-9999",
  "summary": "Malicious code in colors-helper-js (npm)",
  "details": "The package exfiltrates environment variables on install.",
  "affected": [{
    "package": {"ecosystem": "npm", "name": "colors-helper-js"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
    "database_specific": {"malicious-packages-origins": [{"source": "ghsa-malware", "id": "GHSA-xxxx-yyyy-zzzz"}]}
  }]
}"#;

const GHSA_JINJA2: &str = r#"{
  "id": "GHSA-h5c8-rqwp-cp95",
  "aliases": ["CVE-2024-22195"],
  "summary": "Jinja vulnerable to HTML attribute injection when passing user input as keys to xmlattr filter",
  "affected": [{
    "package": {"ecosystem": "PyPI", "name": "jinja2", "purl": "pkg:pypi/jinja2"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.3"}]}]
  }],
  "database_specific": {"severity": "MODERATE", "github_reviewed": true}
}"#;

const PYSEC_REQUESTS: &str = r#"{
  "id": "PYSEC-2023-74",
  "aliases": ["CVE-2023-32681", "GHSA-j8r2-6x86-q33q"],
  "details": "Requests leaks Proxy-Authorization headers to destination servers on redirects.",
  "affected": [{
    "package": {"ecosystem": "PyPI", "name": "requests", "purl": "pkg:pypi/requests"},
    "ranges": [{"type": "GIT", "repo": "https://github.com/psf/requests", "events": [{"introduced": "0"}, {"fixed": "74ea7cf7a6a27a4eeb2ae24e162bcc942a6706d5"}]},
               {"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}],
    "versions": ["2.3.0", "2.4.0", "2.30.0"]
  }],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}]
}"#;

/// `last_affected` and pre-releases: 4.2rc1..=4.2.1 affected, 4.2.2 not.
const PYPI_LAST_AFFECTED: &str = r#"{
  "id": "GHSA-test-last-affected",
  "summary": "A last_affected range",
  "affected": [{
    "package": {"ecosystem": "PyPI", "name": "Django"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "4.2rc1"}, {"last_affected": "4.2.1"}]}]
  }],
  "database_specific": {"severity": "LOW"}
}"#;

const WITHDRAWN: &str = r#"{
  "id": "GHSA-withdrawn-0000",
  "withdrawn": "2024-01-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}],
  "database_specific": {"severity": "CRITICAL"}
}"#;

fn osv_dir(dir: &Path) {
    let files = [
        ("crates/RUSTSEC-2023-0071.json", RUSTSEC_2023_0071),
        ("crates/RUSTSEC-2022-0013.json", RUSTSEC_2022_0013),
        ("npm/GHSA-jf85-cpcp-j695.json", GHSA_LODASH),
        ("npm/GHSA-xvch-5gv4-984h.json", GHSA_MINIMIST),
        ("npm/MAL-2024-9999.json", MAL_NPM),
        ("npm/GHSA-withdrawn-0000.json", WITHDRAWN),
        ("pypi/GHSA-h5c8-rqwp-cp95.json", GHSA_JINJA2),
        ("pypi/PYSEC-2023-74.json", PYSEC_REQUESTS),
        ("pypi/GHSA-test-last-affected.json", PYPI_LAST_AFFECTED),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    // Not an advisory: ignored by extension.
    std::fs::write(dir.join("README.md"), "osv export").unwrap();
}

fn db() -> AdvisoryDb {
    let dir = tempfile::tempdir().unwrap();
    osv_dir(dir.path());
    let db = AdvisoryDb::load_dir(dir.path()).unwrap();
    assert_eq!(db.len(), 8, "the withdrawn advisory is dropped");
    db
}

fn ids(r: &ScanReport, name: &str) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.package.name == name)
        .map(|f| f.id.clone())
        .collect()
}

#[test]
fn this_repositorys_cargo_lock() {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let r = scan_lockfile("Cargo.lock", &lock, &db()).unwrap();
    assert!(r.packages.len() > 100, "{}", r.packages.len());
    assert!(
        r.packages
            .iter()
            .all(|p| p.ecosystem == Ecosystem::CratesIo)
    );
    // The workspace member itself has no `source` and is not a crates.io release.
    assert!(!r.packages.iter().any(|p| p.name == "mcp-security"));
    // rsa 0.9.x is affected by the Marvin attack (no fixed version); CVSS 5.9 is medium.
    let rsa = r.findings.iter().find(|f| f.package.name == "rsa").unwrap();
    assert_eq!(rsa.id, "RUSTSEC-2023-0071");
    assert_eq!(rsa.severity, Severity::Medium);
    assert!(rsa.severity_known);
    assert!(rsa.aliases.contains(&"CVE-2023-49092".to_owned()));
    // regex is past the fix (1.5.5).
    assert!(r.packages.iter().any(|p| p.name == "regex"));
    assert!(ids(&r, "regex").is_empty());
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.risk_score, 5);
}

const PACKAGE_LOCK_V3: &str = r#"{
  "name": "mcp-fs-server",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "mcp-fs-server", "version": "1.0.0", "dependencies": {"lodash": "^4.17.11", "mkdirp": "^0.5.5"}},
    "node_modules/@babel/code-frame": {"version": "7.24.7", "resolved": "https://registry.npmjs.org/@babel/code-frame/-/code-frame-7.24.7.tgz", "integrity": "sha512-AAAA", "dev": true},
    "node_modules/lodash": {"version": "4.17.11", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.11.tgz", "integrity": "sha512-BBBB"},
    "node_modules/minimist": {"version": "1.2.8", "resolved": "https://registry.npmjs.org/minimist/-/minimist-1.2.8.tgz"},
    "node_modules/mkdirp": {"version": "0.5.5", "dependencies": {"minimist": "^1.2.5"}},
    "node_modules/mkdirp/node_modules/minimist": {"version": "1.2.5", "resolved": "https://registry.npmjs.org/minimist/-/minimist-1.2.5.tgz"},
    "node_modules/colors-helper-js": {"version": "1.0.3"},
    "node_modules/str": {"name": "string-width", "version": "4.2.3"},
    "node_modules/local-pkg": {"resolved": "packages/local-pkg", "link": true},
    "packages/local-pkg": {"name": "lodash", "version": "1.0.0"}
  }
}"#;

#[test]
fn package_lock_v3() {
    let r = scan_lockfile("package-lock.json", PACKAGE_LOCK_V3, &db()).unwrap();
    let names: Vec<String> = r
        .packages
        .iter()
        .map(|p| format!("{}@{}", p.name, p.version))
        .collect();
    assert_eq!(
        names,
        [
            "@babel/code-frame@7.24.7",
            "colors-helper-js@1.0.3",
            "lodash@4.17.11",
            "minimist@1.2.5",
            "minimist@1.2.8",
            "mkdirp@0.5.5",
            "string-width@4.2.3",
        ],
        "root, links and workspace folders are left out; aliases use their `name`"
    );
    assert_eq!(ids(&r, "lodash"), ["GHSA-jf85-cpcp-j695"]);
    // Only the nested, older minimist is affected (second range: 1.0.0..1.2.6).
    let minimist: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.package.name == "minimist")
        .collect();
    assert_eq!(minimist.len(), 1);
    assert_eq!(minimist[0].package.version, "1.2.5");
    assert_eq!(minimist[0].severity, Severity::Critical);
    // The MAL- advisory marks the package malicious.
    assert_eq!(r.malicious.len(), 1);
    assert_eq!(r.malicious[0].name, "colors-helper-js");
    assert!(r.findings.iter().any(|f| f.malicious));
    // 40 (lodash) + 40 (minimist) + 40 (malicious) = 120, capped.
    assert_eq!(r.risk_score, 100);
    assert!(!r.is_clean());
}

/// A lockfile written by npm itself (`npm install --package-lock-only lodash@4.17.11
/// mkdirp@0.5.5 @babel/code-frame@7.24.7 optimist@0.6.1`, npm 10, lockfile v3).
#[test]
fn a_lockfile_written_by_npm() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npm-v3");
    let r = scan_path(&dir, &db()).unwrap();
    assert_eq!(r.packages.len(), 18);
    assert!(r.packages.iter().any(|p| p.name == "@babel/highlight"));
    assert_eq!(ids(&r, "lodash"), ["GHSA-jf85-cpcp-j695"]);
    // Two minimists: the hoisted 1.2.8 is fixed, optimist's nested 0.0.10 is not.
    let m: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.package.name == "minimist")
        .map(|f| f.package.version.as_str())
        .collect();
    assert_eq!(m, ["0.0.10"]);
    assert!(r.malicious.is_empty());
    assert_eq!(r.risk_score, 80);
}

const PACKAGE_LOCK_V1: &str = r#"{
  "name": "legacy",
  "version": "0.1.0",
  "lockfileVersion": 1,
  "requires": true,
  "dependencies": {
    "lodash": {"version": "4.17.21", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz", "integrity": "sha512-CCCC"},
    "optimist": {
      "version": "0.6.1",
      "requires": {"minimist": "~0.0.1"},
      "dependencies": {
        "minimist": {"version": "0.0.10", "resolved": "https://registry.npmjs.org/minimist/-/minimist-0.0.10.tgz"}
      }
    },
    "my-fork": {"version": "git+https://github.com/me/fork.git#abc"}
  }
}"#;

#[test]
fn package_lock_v1() {
    let r = scan_lockfile("package-lock.json", PACKAGE_LOCK_V1, &db()).unwrap();
    assert_eq!(r.packages.len(), 3, "{:?}", r.packages);
    assert!(ids(&r, "lodash").is_empty(), "4.17.21 is fixed");
    let m = r
        .findings
        .iter()
        .find(|f| f.package.name == "minimist")
        .unwrap();
    assert_eq!(m.package.version, "0.0.10");
    assert_eq!(m.id, "GHSA-xvch-5gv4-984h");
    assert_eq!(r.risk_score, 40);
}

const REQUIREMENTS: &str = "\
#
# This file is autogenerated by pip-compile with Python 3.12
#
Jinja2==3.1.2 \\
    --hash=sha256:6088930bfe239f0e6710546ab9c19c9ef35e29792895fed6e6e31a023a182a61
MarkupSafe==2.1.5    # via jinja2
requests[socks]==2.30.0 ; python_version >= \"3.8\"
django===4.2.1
urllib3==2.2.2
flask>=2.0
numpy
-r base.txt
-e ./local-lib
pydantic==2.*
";

#[test]
fn requirements_txt() {
    let db = db();
    let r = scan_lockfile("requirements.txt", REQUIREMENTS, &db).unwrap();
    let names: Vec<String> = r
        .packages
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    assert_eq!(
        names,
        [
            "django==4.2.1",
            "jinja2==3.1.2",
            "markupsafe==2.1.5",
            "requests==2.30.0",
            "urllib3==2.2.2"
        ]
    );
    assert_eq!(
        r.unpinned,
        [
            "flask>=2.0",
            "numpy",
            "-r base.txt",
            "-e ./local-lib",
            "pydantic==2.*"
        ]
    );
    assert_eq!(ids(&r, "jinja2"), ["GHSA-h5c8-rqwp-cp95"]);
    // requests: listed in `versions` and inside the ECOSYSTEM range; the GIT range is skipped.
    let req = r
        .findings
        .iter()
        .find(|f| f.package.name == "requests")
        .unwrap();
    assert_eq!(req.severity, Severity::Medium, "CVSS 6.1");
    assert_eq!(ids(&r, "django"), ["GHSA-test-last-affected"]);
    // medium 5 + medium 5 + low 1
    assert_eq!(r.risk_score, 11);

    // PEP 440 ordering at the edges of the ranges.
    for (line, affected) in [
        ("jinja2==3.1.3", false),
        ("jinja2==3.1.3rc1", true),
        ("jinja2==3.1.2.post1", true),
        ("jinja2==3.1.3.post1", false),
        ("requests==2.2.1", false),
        ("requests==2.31.0", false),
        ("requests==2.31.0.dev1", true),
        ("django==4.2rc1", true),
        ("django==4.2b1", false),
        ("django==4.2", true),
        ("django==4.2.1", true),
        ("django==4.2.1.post1", false),
        ("django==4.2.2", false),
    ] {
        let r = scan_lockfile("requirements.txt", line, &db).unwrap();
        assert_eq!(!r.findings.is_empty(), affected, "{line}");
    }
}

#[test]
fn semver_range_edges() {
    let db = db();
    for (version, affected) in [
        ("4.17.11", true),
        ("4.17.12", false),
        ("4.17.12-beta.1", true),
        ("0.0.1", true),
        ("5.0.0", false),
    ] {
        let lock = format!(
            r#"{{"lockfileVersion": 3, "packages": {{"node_modules/lodash": {{"version": "{version}"}}}}}}"#
        );
        let r = scan_lockfile("package-lock.json", &lock, &db).unwrap();
        assert_eq!(!r.findings.is_empty(), affected, "lodash {version}");
    }
    for (version, affected) in [
        ("0.2.3", true),
        ("0.2.4", false),
        ("0.9.0", false),
        ("1.0.0", true),
        ("1.2.6", false),
    ] {
        let lock = format!(
            r#"{{"lockfileVersion": 3, "packages": {{"node_modules/minimist": {{"version": "{version}"}}}}}}"#
        );
        let r = scan_lockfile("package-lock.json", &lock, &db).unwrap();
        assert_eq!(!r.findings.is_empty(), affected, "minimist {version}");
    }
    // An unparseable locked version is neither affected nor safe: it is reported.
    let lock =
        r#"{"lockfileVersion": 3, "packages": {"node_modules/lodash": {"version": "latest"}}}"#;
    let r = scan_lockfile("package-lock.json", lock, &db).unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.undetermined.len(), 1);
}

#[test]
fn malicious_list_and_directory_scan() {
    let db = db()
        .with_malicious_list("# known bad\nnpm string-width 4.2.3\nPyPI UrlLib3\n")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("package-lock.json"), PACKAGE_LOCK_V3).unwrap();
    std::fs::write(dir.path().join("requirements.txt"), REQUIREMENTS).unwrap();
    let r = scan_path(dir.path(), &db).unwrap();
    let bad: Vec<&str> = r.malicious.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(bad, ["colors-helper-js", "string-width", "urllib3"]);
    assert_eq!(r.risk_score, 100);
    assert!(matches!(
        db.clone().with_malicious_list("npm"),
        Err(DepScanError::MaliciousList(1))
    ));
    assert!(matches!(
        db.clone().with_malicious_list("\ncargo serde"),
        Err(DepScanError::MaliciousList(2))
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        scan_path(empty.path(), &db),
        Err(DepScanError::NoLockfile(_))
    ));
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    assert!(matches!(
        read_lockfile("Cargo.lock", "[[package]]\nname = 1"),
        Err(DepScanError::Lockfile {
            file: "Cargo.lock",
            ..
        })
    ));
    assert!(read_lockfile("package-lock.json", "{").is_err());
    assert!(read_lockfile("package-lock.json", "{}").is_err());
    assert!(matches!(
        read_lockfile("yarn.lock", ""),
        Err(DepScanError::UnknownLockfile(_))
    ));
    assert!(AdvisoryDb::from_json_documents(["{\"id\": 5}"]).is_err());
    assert!(AdvisoryDb::from_json_documents(["[]"]).is_err());
    // Odd but valid OSV: no package, empty events, unknown range type.
    let db = AdvisoryDb::from_json_documents([
        r#"{"id": "A", "affected": [{"ranges": [{"type": "SEMVER", "events": []}]}]}"#,
        r#"{"id": "B", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER", "events": [{}]}]}]}"#,
        r#"{"id": "C", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "GIT", "events": [{"introduced": "abc"}]}]}]}"#,
    ])
    .unwrap();
    let lock = r#"{"lockfileVersion": 3, "packages": {"node_modules/x": {"version": "1.0.0"}}}"#;
    let r = scan_lockfile("package-lock.json", lock, &db).unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.undetermined.len(), 2, "{:?}", r.undetermined);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lockfile_readers_never_panic(text in "\\PC{0,400}") {
            for name in ["Cargo.lock", "package-lock.json", "requirements.txt"] {
                let _ = read_lockfile(name, &text);
            }
        }

        #[test]
        fn pep440_parse_never_panics_and_orders_totally(a in "[0-9a-z.!+_-]{0,20}", b in "[0-9a-z.!+_-]{0,20}") {
            use mcp_security::provenance::depscan::pep440::Pep440;
            if let (Some(x), Some(y)) = (Pep440::parse(&a), Pep440::parse(&b)) {
                prop_assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
            }
        }

        #[test]
        fn advisory_parser_never_panics(text in "\\PC{0,300}") {
            let _ = AdvisoryDb::from_json_documents([text.as_str()]);
        }
    }
}

//! Lockfile readers: Cargo.lock, package-lock.json (v1, v2, v3) and requirements.txt.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::{DepScanError, Ecosystem, Package};

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<CargoPackage>,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
}

/// Packages from crates.io in a Cargo.lock. Workspace members (no `source`) and git or path
/// dependencies are not crates.io releases, so advisories about a crate of the same name do
/// not apply to them: they are left out.
pub(super) fn cargo_lock(text: &str) -> Result<Vec<Package>, DepScanError> {
    let lock: CargoLock = toml::from_str(text).map_err(|e| DepScanError::Lockfile {
        file: "Cargo.lock",
        reason: e.message().to_owned(),
    })?;
    Ok(lock
        .package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .map(|p| Package::new(Ecosystem::CratesIo, p.name, p.version))
        .collect())
}

/// Packages in a package-lock.json: the v2/v3 `packages` map (keys are install paths such as
/// `node_modules/a/node_modules/@scope/b`), or the v1 nested `dependencies`. The root project
/// and linked workspace packages are left out.
pub(super) fn package_lock(text: &str) -> Result<Vec<Package>, DepScanError> {
    let bad = |reason: &str| DepScanError::Lockfile {
        file: "package-lock.json",
        reason: reason.to_owned(),
    };
    let root: Value = serde_json::from_str(text).map_err(|_| bad("invalid json"))?;
    let mut out = BTreeSet::new();
    if let Some(packages) = root.get("packages").and_then(Value::as_object) {
        for (path, entry) in packages {
            if path.is_empty() || entry.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let Some(idx) = path.rfind("node_modules/") else {
                // A workspace package outside node_modules: not from the registry.
                continue;
            };
            let derived = path.get(idx + "node_modules/".len()..).unwrap_or_default();
            let name = entry.get("name").and_then(Value::as_str).unwrap_or(derived);
            if let Some(version) = entry.get("version").and_then(Value::as_str) {
                out.insert((name.to_owned(), version.to_owned()));
            }
        }
    } else if let Some(deps) = root.get("dependencies").and_then(Value::as_object) {
        let mut stack: Vec<&serde_json::Map<String, Value>> = vec![deps];
        while let Some(map) = stack.pop() {
            for (name, entry) in map {
                if let Some(version) = entry.get("version").and_then(Value::as_str) {
                    // `file:` and `git+` versions are not registry releases.
                    if !version.contains(':') {
                        out.insert((name.clone(), version.to_owned()));
                    }
                }
                if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
                    stack.push(nested);
                }
            }
        }
    } else {
        return Err(bad("neither `packages` nor `dependencies`"));
    }
    Ok(out
        .into_iter()
        .map(|(n, v)| Package::new(Ecosystem::Npm, n, v))
        .collect())
}

/// The PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` as one `-`.
pub(crate) fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Pinned packages (`name==version`, `name===version`, extras and environment markers
/// allowed) in a requirements.txt, and the lines that pin nothing. An unpinned line
/// (`name>=1.0`, a bare name, `-r other.txt`, `-e .`, a URL) does not say which version pip
/// will install, so it cannot be matched against advisories: it is reported, never silently
/// taken as safe.
pub(super) fn requirements(text: &str) -> (Vec<Package>, Vec<String>) {
    let mut pinned = Vec::new();
    let mut unpinned = Vec::new();
    let mut logical = String::new();
    for raw in text.lines() {
        // Backslash continues a line.
        if let Some(part) = raw.strip_suffix('\\') {
            logical.push_str(part);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = match line
            .find(" #")
            .or_else(|| line.starts_with('#').then_some(0))
        {
            Some(i) => line.get(..i).unwrap_or_default().to_owned(),
            None => line,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // Hash options follow the requirement; environment markers follow `;`.
        let req = line.split(" --").next().unwrap_or_default();
        let req = req.split(';').next().unwrap_or_default().trim();
        let (name_part, version) = match req.split_once("===").or_else(|| req.split_once("==")) {
            Some((n, v)) => (n, v.trim()),
            None => {
                unpinned.push(line.to_owned());
                continue;
            }
        };
        let name = name_part.split('[').next().unwrap_or_default().trim();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        // `==1.*` and `==1.0, <2` are ranges, not pins.
        if !valid_name || version.is_empty() || version.contains(['*', ',', ' ', '<', '>', '!']) {
            unpinned.push(line.to_owned());
            continue;
        }
        pinned.push(Package::new(Ecosystem::PyPI, normalize_pypi(name), version));
    }
    (pinned, unpinned)
}

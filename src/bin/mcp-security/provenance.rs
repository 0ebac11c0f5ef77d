//! The provenance subcommands: `scan-deps`, `verify-server` and `pin`.

use std::path::{Path, PathBuf};

use mcp_security::provenance::attestation::BuildAttestation;
use mcp_security::provenance::depscan::{AdvisoryDb, scan_path};
use mcp_security::provenance::pinning::{PinPolicy, PinStore};
use mcp_security::provenance::{Artifact, Catalog, Environment, HashAlgorithm, Keyring};
use serde_json::{Value, json};

use super::Usage;

/// The `scan-deps` subcommand's arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ScanDepsArgs {
    /// A Cargo.lock, package-lock.json or requirements.txt, or a directory holding them.
    path: PathBuf,
    /// The OSV advisory directory (`*.json` files, searched recursively).
    #[arg(long)]
    osv: PathBuf,
    /// A known-malicious package list (`ECOSYSTEM NAME [VERSION]` per line).
    #[arg(long)]
    malicious: Option<PathBuf>,
}

/// Prints the report; `Ok(false)` (exit 1) when anything vulnerable or malicious was found.
pub(crate) fn scan_deps(args: ScanDepsArgs) -> Result<(Value, bool), Usage> {
    let mut db = AdvisoryDb::load_dir(&args.osv).map_err(|e| Usage(format!("osv: {e}")))?;
    if let Some(list) = &args.malicious {
        let text = std::fs::read_to_string(list)
            .map_err(|e| Usage(format!("cannot read `{}`: {e}", list.display())))?;
        db = db
            .with_malicious_list(&text)
            .map_err(|e| Usage(e.to_string()))?;
    }
    let report = scan_path(&args.path, &db).map_err(|e| Usage(e.to_string()))?;
    if !report.unpinned.is_empty() {
        eprintln!(
            "note: {} requirement(s) pin no version and were not checked",
            report.unpinned.len()
        );
    }
    let clean = report.is_clean();
    let value = serde_json::to_value(&report).map_err(|e| Usage(e.to_string()))?;
    Ok((value, clean))
}

/// The `verify-server` subcommand's arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyServerArgs {
    /// The server artifact: a file or a directory tree.
    artifact: PathBuf,
    /// The trusted server catalog (TOML).
    #[arg(long)]
    catalog: PathBuf,
    /// The keyring of trusted publishers (TOML).
    #[arg(long)]
    keyring: PathBuf,
    /// The server's name in the catalog.
    #[arg(long)]
    server: String,
    /// The server's version.
    #[arg(long = "server-version")]
    server_version: String,
    /// Where it is to run: dev, staging or production.
    #[arg(long, default_value = "production")]
    environment: String,
    /// The signature over the artifact's SHA-256 (raw bytes or base64). Required when the
    /// catalog names the server's publisher.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// The publisher that must have signed, when the catalog names none (default: any
    /// trusted key). It cannot differ from the catalog's publisher.
    #[arg(long)]
    publisher: Option<String>,
    /// The build attestation (JSON). Required when the catalog sets `[server.attestation]`.
    #[arg(long)]
    attestation: Option<PathBuf>,
    /// A signature over the attestation file's SHA-256, by a trusted publisher.
    #[arg(long, requires = "attestation")]
    attestation_signature: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, Usage> {
    std::fs::read(path).map_err(|e| Usage(format!("cannot read `{}`: {e}", path.display())))
}

/// Runs every check in order and stops at the first failure, which it names.
pub(crate) fn verify_server(args: VerifyServerArgs) -> Result<(Value, bool), Usage> {
    let environment = Environment::parse(&args.environment)
        .ok_or_else(|| Usage("--environment must be dev, staging or production".into()))?;
    let catalog = Catalog::load(&args.catalog).map_err(|e| Usage(e.to_string()))?;
    let keyring = Keyring::load(&args.keyring).map_err(|e| Usage(e.to_string()))?;
    let artifact = Artifact::from_path(&args.artifact);
    let sha256 = artifact.sha256().map_err(|e| Usage(e.to_string()))?;
    let sha512 = artifact
        .digest(HashAlgorithm::Sha512)
        .map_err(|e| Usage(e.to_string()))?;

    let decision = catalog.is_server_trusted(&args.server, &args.server_version, environment);
    let mut out = json!({
        "server": args.server,
        "version": args.server_version,
        "environment": environment.as_str(),
        "sha256": sha256.hex(),
        "sha512": sha512.hex(),
        "risk_score": decision.risk_score,
        "vulnerabilities": decision.vulnerabilities,
        "publisher": null,
    });
    let refuse = |mut out: Value, check: &str, reason: String| {
        out["decision"] = json!("refused");
        out["failed"] = json!(check);
        out["reason"] = json!(reason);
        Ok((out, false))
    };
    if !decision.is_trusted() {
        return refuse(out, "catalog", decision.reason.to_string());
    }
    if let Err(e) = catalog.check_digest(&args.server, &args.server_version, &sha256) {
        return refuse(out, "digest", e.to_string());
    }
    let entry = catalog.server(&args.server);
    let required = entry.and_then(|s| s.publisher.clone());
    // --publisher may narrow "any trusted key" to one, never replace the catalog's publisher.
    if let (Some(req), Some(given)) = (&required, &args.publisher)
        && req != given
    {
        return refuse(
            out,
            "signature",
            format!("the catalog requires publisher `{req}`"),
        );
    }
    let publisher = required.or_else(|| args.publisher.clone());
    match (&args.signature, &publisher) {
        (Some(sig), _) => match keyring.verify_digest(&sha256, &read(sig)?, publisher.as_deref()) {
            Ok(proof) => out["publisher"] = json!(proof.value().publisher),
            Err(e) => return refuse(out, "signature", e.to_string()),
        },
        (None, Some(p)) => {
            return refuse(
                out,
                "signature",
                format!("publisher `{p}` must sign this server; give --signature"),
            );
        }
        (None, None) => {}
    }
    let policy = entry.and_then(|s| s.attestation.clone());
    match (&args.attestation, policy) {
        (Some(path), policy) => {
            let bytes = read(path)?;
            if let Some(sig) = &args.attestation_signature {
                let digest = Artifact::from_bytes("attestation", &bytes)
                    .sha256()
                    .map_err(|e| Usage(e.to_string()))?;
                if let Err(e) = keyring.verify_digest(&digest, &read(sig)?, publisher.as_deref()) {
                    return refuse(out, "attestation_signature", e.to_string());
                }
            }
            let attestation = match BuildAttestation::from_json(&bytes) {
                Ok(a) => a,
                Err(e) => return refuse(out, "attestation", e.to_string()),
            };
            if let Err(e) = policy.unwrap_or_default().check(&attestation, &sha256) {
                return refuse(out, "attestation", e.to_string());
            }
            out["attestation"] = json!(attestation);
        }
        (None, Some(_)) => {
            return refuse(
                out,
                "attestation",
                "the catalog requires a build attestation; give --attestation".into(),
            );
        }
        (None, None) => {}
    }
    out["decision"] = json!("trusted");
    out["failed"] = Value::Null;
    out["reason"] = json!("trusted");
    Ok((out, true))
}

/// The `pin` subcommand's arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PinArgs {
    /// The pin file (JSON; created by --update).
    #[arg(long)]
    file: PathBuf,
    /// Write the pins: every listed tool without poisoning signs is (re-)pinned; pins of
    /// tools no longer listed are dropped.
    #[arg(long)]
    update: bool,
    /// Read a `tools/list` result from this file (`{"tools": [...]}`, a whole JSON-RPC
    /// response, or a bare array; `-` for standard input) instead of starting a server.
    #[arg(long, conflicts_with = "command")]
    tools_json: Option<String>,
    /// The stdio MCP server to start and list (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

fn tools_from_json(bytes: &[u8]) -> Result<Vec<Value>, Usage> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| Usage("tools json: invalid json".into()))?;
    let tools = v
        .get("result")
        .and_then(|r| r.get("tools"))
        .or_else(|| v.get("tools"))
        .unwrap_or(&v);
    tools
        .as_array()
        .cloned()
        .ok_or_else(|| Usage("tools json: expected a tools array".into()))
}

async fn tools_from_server(command: &[String]) -> Result<Vec<Value>, Usage> {
    use rmcp::ServiceExt;
    use rmcp::transport::TokioChildProcess;
    let Some((program, args)) = command.split_first() else {
        return Err(Usage(
            "give --tools-json FILE or -- COMMAND [ARGS...]".into(),
        ));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let transport =
        TokioChildProcess::new(cmd).map_err(|e| Usage(format!("cannot start `{program}`: {e}")))?;
    let client = ()
        .serve(transport)
        .await
        .map_err(|e| Usage(format!("server `{program}` did not initialize: {e}")))?;
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| Usage(format!("tools/list failed: {e}")))?;
    let _ = client.cancel().await;
    tools
        .iter()
        .map(|t| serde_json::to_value(t).map_err(|e| Usage(e.to_string())))
        .collect()
}

/// Checks (or with `--update`, writes) the pins; exit 1 when anything is new, changed,
/// removed or poisoned (with `--update`: poisoned only, since those are not pinned).
pub(crate) fn pin(args: PinArgs) -> Result<(Value, bool), Usage> {
    let tools = match &args.tools_json {
        Some(path) => tools_from_json(&super::read_request(path)?)?,
        None => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Usage(format!("cannot start: {e}")))?;
            rt.block_on(tools_from_server(&args.command))?
        }
    };
    let mut pins = PinStore::load(&args.file).map_err(|e| Usage(e.to_string()))?;
    let report = pins.check(tools.iter(), &PinPolicy::default());
    let ok = if args.update {
        let mut fresh = PinStore::new();
        let clean = tools
            .iter()
            .zip(&report.tools)
            .filter(|(_, c)| c.findings.is_empty())
            .map(|(t, _)| t);
        fresh.pin_all(clean);
        pins = fresh;
        pins.save(&args.file).map_err(|e| Usage(e.to_string()))?;
        report.tools.iter().all(|t| t.findings.is_empty())
    } else {
        report.is_clean()
    };
    let mut value = serde_json::to_value(&report).map_err(|e| Usage(e.to_string()))?;
    value["updated"] = json!(args.update);
    Ok((value, ok))
}

//! `mcp-security`: check policies against requests without running a server.
//!
//! ```text
//! mcp-security check --policy policy.toml --request req.json [--api-key K | --host H] [--ip A] [--at RFC3339]
//! mcp-security check-uri --policy policy.toml URI
//! mcp-security hash-key < key.txt
//! mcp-security scan-deps PATH --osv DIR [--malicious FILE]
//! mcp-security verify-server ARTIFACT --catalog C --keyring K --server NAME --server-version V
//!     [--environment dev|staging|production] [--signature SIG] [--publisher ID]
//!     [--attestation FILE [--attestation-signature SIG]]
//! mcp-security pin --file PINS [--update] (--tools-json FILE | -- COMMAND [ARGS...])
//! mcp-security gen-key
//! mcp-security audit verify FILE... [--key PUB] [--checkpoints FILE] [--json]
//! mcp-security audit keygen --out KEYFILE
//! mcp-security proxy --policy policy.toml -- COMMAND [ARGS...]
//! ```
//!
//! `proxy` starts COMMAND as a stdio MCP server and relays between it and the client on its own
//! stdin and stdout, enforcing the policy on every message; it writes only MCP messages to
//! stdout (diagnostics go to stderr), and exits with the server's status when the client
//! disconnects, or non-zero when the server exits under a connected client (2 for a usage or
//! policy error).
//!
//! `scan-deps`, `verify-server` and `pin` print a JSON report and exit 0 when clean or
//! trusted, 1 when something was found or refused, 2 for a usage or input error.
//!
//! `audit verify` exits 0 when the log verifies, 1 when it was tampered with (the first bad
//! record is named by file, line, sequence number and event id), 2 on a usage error.
//!
//! `check` prints one JSON object per request (an array for a batch) and exits 0 when every
//! request is allowed, 1 when any is denied, and 2 for a usage, request or policy error.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use mcp_security::audit::MemorySink;
use mcp_security::authn::AssertedIdentity;
use mcp_security::policy::Policy;
use mcp_security::{Credentials, EnvelopeKind, Identity, Message, RequestContext, Transport};
use serde_json::{Value, json};

#[path = "mcp-security/provenance.rs"]
mod provenance;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-security",
    version,
    about = "Security layer for MCP servers: policy checks and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate one JSON-RPC request (or batch) against a policy, without running any handler.
    Check(CheckArgs),
    /// Check a resource URI against the policy's `[validation]` table (syntax, scheme, roots,
    /// symlinks), without identity or authorization.
    CheckUri(CheckUriArgs),
    /// Print the SHA-256 of an API key read from standard input, for `key_sha256`.
    HashKey,
    /// Make a new random API key (256 bits from the OS) and print it with its `key_sha256`.
    GenKey,
    /// Redact standard input to standard output.
    Redact(RedactArgs),
    /// Match lockfiles against an offline OSV advisory database.
    ScanDeps(provenance::ScanDepsArgs),
    /// Verify a server artifact: catalog, digest, signature, build attestation.
    VerifyServer(provenance::VerifyServerArgs),
    /// Pin a server's tool definitions, or check them against the pins.
    Pin(provenance::PinArgs),
    /// Verify hash-chained audit logs, or make a checkpoint signing key.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run a stdio MCP server as a child process and enforce the policy on every message
    /// between it and the client on this process's stdin and stdout.
    Proxy(ProxyArgs),
}

/// The `proxy` arguments.
#[derive(Debug, clap::Args)]
struct ProxyArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The server to run (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs the proxy until the client or the server goes away; the exit code says which.
fn proxy(args: ProxyArgs) -> ExitCode {
    use mcp_security::adapters::proxy::Proxy;
    use mcp_security::policy::DEFAULT_API_KEY_ENV;

    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let policy = match Policy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => return fail(format!("policy: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let Some((program, rest)) = args.command.split_first() else {
        return fail("no server command given after --".into());
    };
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    let outcome = runtime.block_on(async {
        // Built inside the runtime: the audit sink and rate limiters may start tasks.
        let layer = policy.build().map_err(|e| format!("policy: {e}"))?;
        let var = policy.api_key_env().unwrap_or(DEFAULT_API_KEY_ENV);
        let proxy = Proxy::new(layer, policy.proxy().clone()).with_credential_env(var);
        proxy
            .run(command)
            .await
            .map_err(|e| match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            })
    });
    // The layer (and with it the audit sink, which writes its last checkpoint and fsyncs) was
    // dropped when `run` returned. Not waiting for the runtime's blocking threads: one may still
    // be parked in a read of stdin that will never return.
    runtime.shutdown_background();
    match outcome {
        Ok(exit) => ExitCode::from(u8::try_from(exit.code()).unwrap_or(1)),
        Err(msg) => fail(msg),
    }
}

/// `mcp-security audit ...`.
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and signed checkpoints of an audit log (every rotated file, in any
    /// order).
    Verify(AuditVerifyArgs),
    /// Write a new ed25519 checkpoint signing key (PKCS#8 PEM, mode 0600) to KEYFILE and its
    /// public key to KEYFILE.pub.
    Keygen(AuditKeygenArgs),
}

/// The `audit verify` arguments.
#[derive(Debug, clap::Args)]
struct AuditVerifyArgs {
    /// The log files (`audit.jsonl`, `audit.jsonl.1`, ...).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The public key the checkpoints are signed with (SPKI PEM or 64 hex digits). Without it
    /// only the chain is checked.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The signed checkpoints kept beside the log (default: FILE.checkpoints when present).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The `audit keygen` arguments.
#[derive(Debug, clap::Args)]
struct AuditKeygenArgs {
    /// Where to write the private key (refuses to overwrite).
    #[arg(long)]
    out: PathBuf,
}

/// The `redact` subcommand's arguments.
#[derive(Debug, clap::Args)]
struct RedactArgs {
    /// Print `{"text": ..., "findings": [{"type", "start", "end"}]}` with byte offsets into the
    /// input, instead of the redacted text alone.
    #[arg(long)]
    json: bool,
    /// Use the policy's `[redaction]` detectors and style (default: every built-in detector,
    /// masked).
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// The `check-uri` subcommand's arguments.
#[derive(Debug, clap::Args)]
struct CheckUriArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The URI to check.
    uri: String,
}

fn check_uri(args: CheckUriArgs) -> Result<(Value, bool), Usage> {
    let policy = Policy::load(&args.policy).map_err(|e| Usage(format!("policy: {e}")))?;
    Ok(match policy.check_uri(&args.uri) {
        Ok(()) => (json!({"decision": "allow", "reason": null}), true),
        Err(e) => (json!({"decision": "deny", "reason": e.to_string()}), false),
    })
}

/// A usage, input or policy problem: exit status 2, message on stderr.
struct Usage(String);

fn read_request(path: &str) -> Result<Vec<u8>, Usage> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Usage(format!("cannot read the request from stdin: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map_err(|e| Usage(format!("cannot read the request file `{path}`: {e}")))
    }
}

/// The `check` subcommand's arguments.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The JSON-RPC request: a file, or `-` for standard input.
    #[arg(long)]
    request: String,
    /// Authenticate with this API key, as a client would.
    #[arg(long, conflicts_with = "host")]
    api_key: Option<String>,
    /// Act as this host without authenticating: what may it do?
    #[arg(long)]
    host: Option<String>,
    /// The caller's IP address.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Evaluate at this time (RFC 3339), instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Also list the rules that matched each request and what each did.
    #[arg(long)]
    explain: bool,
    /// The server's tools (a `tools/list` result, or an array of tools) so arguments are
    /// checked against each tool's input schema and its path and URL arguments.
    #[arg(long)]
    tools: Option<PathBuf>,
}

/// Reads `{"tools": [...]}` or `[...]` and hands each tool's schema to the layer.
fn observe_tools(layer: &mcp_security::SecurityLayer, path: &PathBuf) -> Result<(), Usage> {
    let text = std::fs::read(path).map_err(|e| {
        Usage(format!(
            "cannot read the tools file `{}`: {e}",
            path.display()
        ))
    })?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| Usage(format!("tools file: not JSON: {e}")))?;
    let list = match &value {
        Value::Array(items) => items,
        Value::Object(o) => match o
            .get("tools")
            .or_else(|| o.get("result").and_then(|r| r.get("tools")))
        {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(Usage(
                    "tools file: expected a tools/list result or an array of tools".into(),
                ));
            }
        },
        _ => {
            return Err(Usage(
                "tools file: expected a tools/list result or an array of tools".into(),
            ));
        }
    };
    let mut declared = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let name = t.get("name").and_then(Value::as_str);
        let schema = t.get("inputSchema").and_then(Value::as_object);
        match (name, schema) {
            (Some(name), Some(input_schema)) => {
                declared.push(mcp_security::validate::ToolSchema { name, input_schema });
            }
            _ => {
                return Err(Usage(format!(
                    "tools file: tool {i} needs a string `name` and an object `inputSchema`"
                )));
            }
        }
    }
    layer.observe_tools(&declared);
    Ok(())
}

fn check(args: CheckArgs) -> Result<(Value, bool), Usage> {
    let CheckArgs {
        policy,
        request,
        api_key,
        host,
        ip,
        at,
        explain,
        tools,
    } = args;
    let policy = Policy::load(&policy).map_err(|e| Usage(format!("policy: {e}")))?;
    let bytes = read_request(&request)?;
    // Limits first, on the raw bytes, as a transport would before parsing.
    if let Err(e) = policy.frame_limits().check_raw(&bytes) {
        return Ok((
            json!({"decision": "deny", "stage": "frame", "reason": e.to_string(), "rule": "validation.frame"}),
            false,
        ));
    }
    let message = Message::parse(&bytes).map_err(|e| Usage(format!("request: {e}")))?;

    // A dry run never writes to the production audit log.
    let mut builder = policy.builder_without_audit().audit_sink(MemorySink::new());
    if let Some(h) = &host {
        if !policy.knows_host(h) {
            eprintln!("note: host `{h}` has no api key in the policy; evaluating it anyway");
        }
        builder = builder.authenticator(AssertedIdentity::new(Identity::new(h.as_str())));
    }
    let layer = builder.build().map_err(|e| Usage(format!("policy: {e}")))?;
    if let Some(t) = &tools {
        observe_tools(&layer, t)?;
    }

    let mut cx = RequestContext::new(Transport::DryRun);
    if let Some(key) = api_key {
        cx = cx.with_credentials(Credentials::api_key(key));
    }
    if let Some(ip) = ip {
        cx = cx.with_peer_addr(ip);
    }
    if let Some(at) = at {
        let when = DateTime::parse_from_rfc3339(&at).map_err(|_| {
            Usage("--at must be an RFC 3339 date-time, such as 2026-01-01T09:00:00Z".into())
        })?;
        cx = cx.with_received_at(when.with_timezone(&Utc));
    }

    if message
        .envelopes()
        .iter()
        .any(|e| *e.kind() == EnvelopeKind::Response)
    {
        return Err(Usage(
            "request: a response is not a request; give a request or notification".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Usage(format!("cannot start: {e}")))?;
    let verdicts = rt.block_on(layer.evaluate_message(&message, &cx));
    let all_allowed = verdicts.iter().all(Result::is_ok);
    let identity = if explain {
        rt.block_on(layer.identify(&cx)).ok()
    } else {
        None
    };
    let mut out: Vec<Value> = verdicts
        .into_iter()
        .zip(message.envelopes())
        .map(|(v, envelope)| {
            let mut verdict = verdict_json(v);
            if explain {
                verdict["explain"] = match (&identity, envelope.action()) {
                    (Some(id), Ok(action)) => {
                        let cx = cx.clone().with_correlation_id(envelope.id().clone());
                        let e = layer.explain(id, &action, &cx);
                        e.rules()
                            .iter()
                            .map(|r| json!({"rule": r.rule.to_string(), "effect": r.effect, "outcome": r.outcome}))
                            .collect()
                    }
                    _ => Value::Array(Vec::new()),
                };
            }
            verdict
        })
        .collect();
    let value = if message.is_batch() {
        Value::Array(out)
    } else {
        out.pop().unwrap_or(Value::Null)
    };
    Ok((value, all_allowed))
}

fn verdict_json(v: Result<Option<mcp_security::RuleId>, mcp_security::Denial>) -> Value {
    match v {
        Ok(rule) => {
            json!({"decision": "allow", "stage": null, "reason": null, "rule": rule.map(|r| r.to_string())})
        }
        Err(d) => {
            let mut out = json!({
                "decision": "deny",
                "stage": d.stage().as_str(),
                "reason": d.reason(),
                "rule": d.rule().map(|r| r.to_string()),
            });
            if let Some(after) = d.retry_after() {
                out["retry_after_ms"] = json!(after.as_millis());
            }
            out
        }
    }
}

fn redact(args: RedactArgs) -> Result<String, Usage> {
    use mcp_security::redact::{Detector, PatternRedactor, RedactionStyle, Redactor};
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Usage(format!("cannot read stdin as UTF-8 text: {e}")))?;
    let redactor = match &args.policy {
        Some(p) => Policy::load(p)
            .map_err(|e| Usage(format!("policy: {e}")))?
            .redactor()
            .cloned(),
        None => Some(
            PatternRedactor::with(Detector::ALL, [], RedactionStyle::Mask)
                .map_err(|e| Usage(e.to_string()))?,
        ),
    };
    let Some(redactor) = redactor else {
        return Err(Usage("policy: [redaction] enables no detector".into()));
    };
    let text = redactor
        .redact_text(&input)
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|| input.clone());
    if !args.json {
        return Ok(text);
    }
    let findings: Vec<Value> = redactor
        .scan(&input)
        .iter()
        .map(|f| json!({"type": &*f.entity, "start": f.start, "end": f.end}))
        .collect();
    Ok(json!({"text": text, "findings": findings}).to_string())
}

fn hash_key() -> Result<String, Usage> {
    let mut key = String::new();
    std::io::stdin()
        .read_to_string(&mut key)
        .map_err(|e| Usage(format!("cannot read the key from stdin: {e}")))?;
    let key = key.trim_end_matches(['\r', '\n']);
    if key.is_empty() {
        return Err(Usage("no key on stdin".into()));
    }
    use sha2::Digest;
    Ok(sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A key of 32 random bytes, base64url without padding (43 characters), prefixed so scanners
/// recognise it; printed with the hash line to paste into the policy.
fn gen_key() -> Result<String, Usage> {
    use base64::Engine;
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Usage(format!("no randomness from the os: {e}")))?;
    let key = format!(
        "mcps_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash: String = sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("key = {key}\nkey_sha256 = \"{hash}\""))
}

fn audit_verify(args: AuditVerifyArgs) -> Result<(String, bool), Usage> {
    use mcp_security::audit::{read_verifying_key, verify_files};
    let key = match &args.key {
        Some(k) => Some(read_verifying_key(k).map_err(|e| Usage(format!("--key: {e}")))?),
        None => None,
    };
    let r = verify_files(&args.files, key.as_ref(), args.checkpoints.as_deref())
        .map_err(|e| Usage(e.to_string()))?;
    let torn = r
        .incomplete_final_line
        .as_ref()
        .map(|(f, l)| format!("{}:{l}", f.display()));
    if args.json {
        let problem = r.problem.as_ref().map(|p| {
            json!({"kind": p.kind.as_str(), "file": p.file.display().to_string(), "line": p.line,
                   "seq": p.seq, "event_id": p.event_id, "detail": p.detail})
        });
        let v = json!({
            "ok": r.is_intact(), "files": r.files, "records": r.records, "events": r.events,
            "checkpoints": r.checkpoints, "signed_records": r.signed_records,
            "unsigned_tail": r.unsigned_tail, "signatures_checked": r.signatures_checked,
            "sidecar_checkpoints": r.sidecar_checkpoints, "incomplete_final_line": torn,
            "problem": problem,
        });
        return Ok((v.to_string(), r.is_intact()));
    }
    let mut out = match &r.problem {
        None => format!(
            "OK: {} records ({} events, {} checkpoints) in {} file(s); {} records signed{}; unsigned tail: {} records",
            r.records,
            r.events,
            r.checkpoints,
            r.files,
            r.signed_records,
            if r.signatures_checked {
                ""
            } else {
                " (signatures NOT checked: no --key)"
            },
            r.unsigned_tail
        ),
        Some(p) => format!("TAMPERED: {p}\n{} records verified before it", r.records),
    };
    if let Some(t) = torn {
        out.push_str(&format!(
            "\nnote: incomplete final line at {t} (the writer stopped mid-record; ignored)"
        ));
    }
    Ok((out, r.is_intact()))
}

fn audit_keygen(args: AuditKeygenArgs) -> Result<String, Usage> {
    use mcp_security::audit::{generate_signing_key, key_id, signing_key_pem, verifying_key_pem};
    let key = generate_signing_key().map_err(|e| Usage(e.to_string()))?;
    let pem = signing_key_pem(&key).map_err(|e| Usage(e.to_string()))?;
    let public = verifying_key_pem(&key.verifying_key()).map_err(|e| Usage(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&args.out)
        .map_err(|e| Usage(format!("cannot create `{}`: {e}", args.out.display())))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| Usage(format!("cannot write `{}`: {e}", args.out.display())))?;
    let mut pub_path = args.out.clone().into_os_string();
    pub_path.push(".pub");
    std::fs::write(&pub_path, public.as_bytes())
        .map_err(|e| Usage(format!("cannot write the public key: {e}")))?;
    Ok(format!(
        "wrote {} (private, keep it secret) and {} (public, for `audit verify --key`); key id {}",
        args.out.display(),
        PathBuf::from(pub_path).display(),
        key_id(&key.verifying_key())
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // The proxy owns stdout for MCP messages: it never prints a report.
        Command::Proxy(args) => return proxy(args),
        Command::Check(args) => check(args).map(|(v, ok)| (v.to_string(), ok)),
        Command::CheckUri(args) => check_uri(args).map(|(v, ok)| (v.to_string(), ok)),
        Command::HashKey => hash_key().map(|h| (h, true)),
        Command::GenKey => gen_key().map(|t| (t, true)),
        Command::Redact(args) => redact(args).map(|t| (t, true)),
        Command::ScanDeps(args) => provenance::scan_deps(args).map(|(v, ok)| (v.to_string(), ok)),
        Command::VerifyServer(args) => {
            provenance::verify_server(args).map(|(v, ok)| (v.to_string(), ok))
        }
        Command::Pin(args) => provenance::pin(args).map(|(v, ok)| (v.to_string(), ok)),
        Command::Audit(AuditCommand::Verify(args)) => audit_verify(args),
        Command::Audit(AuditCommand::Keygen(args)) => audit_keygen(args).map(|t| (t, true)),
    };
    match result {
        Ok((text, ok)) => {
            let mut stdout = std::io::stdout().lock();
            // Redacted text keeps its own final newline; everything else gets one.
            let newline = if text.ends_with('\n') { "" } else { "\n" };
            if write!(stdout, "{text}{newline}").is_err() {
                return ExitCode::from(2);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

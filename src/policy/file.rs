//! The policy file's shape, as serde reads it. Every table refuses unknown keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{PolicyError, invalid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub(super) server: Server,
    #[serde(default)]
    pub(super) auth: Auth,
    #[serde(default)]
    pub(super) authorization: Authorization,
    #[serde(default)]
    pub(super) tools: Vec<Tool>,
    #[serde(default)]
    pub(super) resources: Vec<Resource>,
    #[serde(default)]
    pub(super) prompts: Vec<Prompt>,
    #[serde(default)]
    pub(super) rate_limit: RateLimit,
    #[serde(default)]
    pub(super) validation: Validation,
    #[serde(default)]
    pub(super) redaction: Redaction,
    pub(super) audit: Option<Audit>,
    pub(super) http: Option<Http>,
    #[serde(default)]
    pub(super) server_requests: ServerRequests,
    #[serde(default)]
    pub(super) proxy: Proxy,
}

/// `[server_requests]`: which requests a server may send its client (proxy, SecureClient).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerRequests {
    #[serde(default)]
    pub(super) allow: Vec<String>,
}

/// `[proxy]`: the stdio proxy (`mcp-security proxy`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Proxy {
    pub(super) identity: Option<String>,
    #[serde(default)]
    pub(super) keep_env: Vec<String>,
    pub(super) max_line_bytes: Option<usize>,
    pub(super) max_pending: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Server {
    /// The canonical URI of the server (the JWT audience).
    pub(super) resource: Option<String>,
    /// A name for the server: the audit records' `server_id`.
    pub(super) name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Auth {
    #[serde(default)]
    pub(super) anonymous: bool,
    pub(super) api_key_env: Option<String>,
    #[serde(default)]
    pub(super) api_keys: Vec<ApiKey>,
    pub(super) jwt: Option<Jwt>,
    #[serde(default)]
    pub(super) client_certificates: Vec<ClientCertificate>,
}

/// `[auth.jwt]`: an OAuth 2.1 resource server (feature `jwt`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    not(feature = "jwt"),
    expect(
        dead_code,
        reason = "read with the `jwt` feature; without it the table is refused"
    )
)]
pub(super) struct Jwt {
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) jwks_url: Option<String>,
    pub(super) jwks_file: Option<PathBuf>,
    pub(super) algorithms: Option<Vec<String>>,
    pub(super) host_claim: Option<String>,
    pub(super) leeway_seconds: Option<u64>,
    pub(super) max_token_bytes: Option<usize>,
    pub(super) jwks_refetch_seconds: Option<u64>,
    pub(super) jwks_max_age_seconds: Option<u64>,
    pub(super) jwks_timeout_seconds: Option<u64>,
    pub(super) cache_entries: Option<usize>,
}

/// `[[auth.client_certificates]]`: a verified client certificate mapped to a host (feature `tls`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    not(feature = "tls"),
    expect(
        dead_code,
        reason = "read with the `tls` feature; without it the table is refused"
    )
)]
pub(super) struct ClientCertificate {
    pub(super) host: String,
    pub(super) subject_cn: Option<String>,
    pub(super) san: Option<String>,
    pub(super) sha256: Option<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

/// A date-time written bare (`2027-01-01T00:00:00Z`) or quoted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DateTimeSpec {
    Toml(toml::value::Datetime),
    Text(String),
}

impl std::fmt::Display for DateTimeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DateTimeSpec::Toml(d) => d.fmt(f),
            DateTimeSpec::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiKey {
    pub(super) host: String,
    #[serde(default)]
    pub(super) key_sha256: String,
    /// Present only to give a clear error: keys are never stored in clear.
    pub(super) key: Option<IgnoredAny>,
    pub(super) expires: Option<DateTimeSpec>,
    pub(super) not_before: Option<DateTimeSpec>,
    #[serde(default)]
    pub(super) allowed_ips: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Authorization {
    #[serde(default)]
    pub(super) allow_methods: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ArgSpec {
    #[serde(rename = "type")]
    pub(super) ty: Option<String>,
    pub(super) required: Option<bool>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) max_length: Option<usize>,
    pub(super) allowed_values: Option<Vec<toml::Value>>,
    pub(super) pattern: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) allowed_characters: Option<String>,
    #[serde(default)]
    pub(super) disallowed_patterns: Vec<String>,
    #[serde(default)]
    pub(super) reject: Vec<String>,
    #[serde(default)]
    pub(super) escape_html: bool,
}

/// Conditions on an allow rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConditionSpec {
    pub(super) hours: Option<String>,
    #[serde(default)]
    pub(super) weekdays: Vec<String>,
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) cidrs: Vec<String>,
    pub(super) rate: Option<String>,
    pub(super) burst: Option<u32>,
}

/// The fields every rule kind has. (Each kind spells them out rather than flattening this
/// struct, because serde cannot refuse unknown keys through `flatten`.)
pub(super) struct RuleFields<'a> {
    pub(super) allowed_hosts: &'a [String],
    pub(super) scopes: &'a [String],
    pub(super) effect: Option<&'a str>,
    pub(super) conditions: Option<&'a ConditionSpec>,
}

macro_rules! rule_fields {
    ($t:ty) => {
        impl $t {
            pub(super) fn rule(&self) -> RuleFields<'_> {
                RuleFields {
                    allowed_hosts: &self.allowed_hosts,
                    scopes: &self.scopes,
                    effect: self.effect.as_deref(),
                    conditions: self.conditions.as_ref(),
                }
            }
        }
    };
}
rule_fields!(Tool);
rule_fields!(Prompt);
rule_fields!(Resource);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tool {
    pub(super) name: String,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) effect: Option<String>,
    pub(super) conditions: Option<ConditionSpec>,
    #[serde(default)]
    pub(super) arguments: BTreeMap<String, ArgSpec>,
    pub(super) additional_arguments: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Prompt {
    pub(super) name: String,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) effect: Option<String>,
    pub(super) conditions: Option<ConditionSpec>,
    #[serde(default)]
    pub(super) arguments: BTreeMap<String, ArgSpec>,
    pub(super) additional_arguments: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resource {
    pub(super) uri: String,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) effect: Option<String>,
    pub(super) conditions: Option<ConditionSpec>,
    #[serde(default)]
    pub(super) permissions: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimit {
    pub(super) per_caller: Option<String>,
    pub(super) burst: Option<u32>,
    pub(super) backend: Option<String>,
    pub(super) redis_url: Option<String>,
    pub(super) key_prefix: Option<String>,
    pub(super) on_failure: Option<String>,
    pub(super) timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Validation {
    pub(super) max_frame_bytes: Option<usize>,
    pub(super) max_depth: Option<usize>,
    pub(super) max_string_bytes: Option<usize>,
    pub(super) max_array_len: Option<usize>,
    pub(super) max_arguments: Option<usize>,
    pub(super) invisible: Option<String>,
    #[serde(default)]
    pub(super) schemes: Vec<String>,
    #[serde(default)]
    pub(super) roots: Vec<String>,
    pub(super) resolve_symlinks: Option<bool>,
    pub(super) tool_schemas: Option<String>,
    pub(super) infer_argument_kinds: Option<bool>,
    #[serde(default)]
    pub(super) urls: Urls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Urls {
    pub(super) schemes: Option<Vec<String>>,
    #[serde(default)]
    pub(super) allow_private: bool,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(default)]
    pub(super) blocked_hosts: Vec<String>,
    #[serde(default)]
    pub(super) resolve: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Redaction {
    #[serde(default)]
    pub(super) detectors: Vec<String>,
    pub(super) style: Option<String>,
    pub(super) hash_key_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) arguments: bool,
    #[serde(default)]
    pub(super) custom: Vec<CustomDetectorSpec>,
    pub(super) classification: Option<ClassificationSpec>,
    #[serde(default)]
    pub(super) clearance: Vec<ClearanceSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomDetectorSpec {
    pub(super) name: String,
    pub(super) pattern: String,
    pub(super) category: String,
    pub(super) validator: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassificationSpec {
    #[serde(default)]
    pub(super) levels: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) retention_days: BTreeMap<String, u32>,
    #[serde(default)]
    pub(super) encryption_required: Vec<String>,
    pub(super) default_clearance: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClearanceSpec {
    pub(super) host: String,
    pub(super) level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Audit {
    pub(super) path: PathBuf,
    pub(super) on_failure: Option<String>,
    pub(super) signing_key_file: Option<PathBuf>,
    pub(super) fsync: Option<String>,
    pub(super) group_commit_ms: Option<u64>,
    pub(super) rotate_bytes: Option<u64>,
    pub(super) queue: Option<usize>,
    pub(super) checkpoint_every: Option<u64>,
    pub(super) checkpoint_seconds: Option<u64>,
}

/// The `[http]` table: what the HTTP layer enforces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Http {
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) authorization_servers: Vec<String>,
    #[serde(default)]
    pub(super) scopes_supported: Vec<String>,
    #[serde(default)]
    pub(super) required_scopes: Vec<String>,
    pub(super) allowed_hosts: Option<Vec<String>>,
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) max_token_bytes: Option<usize>,
    pub(super) max_sessions: Option<usize>,
    pub(super) anonymous: Option<HttpAnonymous>,
}

/// `[http.anonymous]`: callers presenting nothing from these networks become `host`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpAnonymous {
    pub(super) host: String,
    pub(super) from: Vec<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

/// Parses the file, turning serde's errors into "key path: reason (line N)".
pub(super) fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|s| text.get(..s.start).map_or(0, |t| t.matches('\n').count()) + 1);
        let path = if path == "." || path.is_empty() {
            "(root)".to_owned()
        } else {
            path
        };
        let reason = inner.message().trim().to_owned();
        match line {
            Some(l) => invalid(path, format!("{reason} (line {l})")),
            None => invalid(path, reason),
        }
    })
}

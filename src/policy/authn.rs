//! `[auth.jwt]` and `[[auth.client_certificates]]`: the authenticators beyond API keys, and
//! their composition into one chain.

use std::path::Path;
use std::sync::Arc;

use super::file::Auth;
use super::{PolicyError, invalid};
use crate::authn::{AnyOf, Authenticator};

/// The policy's authenticators, in the order a request tries them: client certificate, JWT,
/// API key. `None` when the policy configures none (anonymous-only).
pub(super) fn compose(
    auth: &Auth,
    base: Option<&Path>,
    api_keys: Option<Arc<dyn Authenticator>>,
) -> Result<Option<Arc<dyn Authenticator>>, PolicyError> {
    let mut chain: Vec<Arc<dyn Authenticator>> = Vec::new();
    if let Some(c) = certificates(auth)? {
        chain.push(c);
    }
    if let Some(j) = jwt(auth, base)? {
        chain.push(j);
    }
    chain.extend(api_keys);
    Ok(match chain.len() {
        0 => None,
        1 => chain.pop(),
        _ => Some(Arc::new(
            chain
                .into_iter()
                .fold(AnyOf::new(), |any, a| any.with_arc(a)),
        )),
    })
}

#[cfg(not(feature = "jwt"))]
fn jwt(auth: &Auth, _base: Option<&Path>) -> Result<Option<Arc<dyn Authenticator>>, PolicyError> {
    match auth.jwt {
        Some(_) => Err(invalid(
            "auth.jwt",
            "needs mcp-security built with the `jwt` feature",
        )),
        None => Ok(None),
    }
}

#[cfg(feature = "jwt")]
fn jwt(auth: &Auth, base: Option<&Path>) -> Result<Option<Arc<dyn Authenticator>>, PolicyError> {
    use std::time::Duration;

    use crate::authn::{HostClaim, JwksSource, JwtAlgorithm, JwtAuthenticator, JwtConfig};

    let Some(j) = &auth.jwt else {
        return Ok(None);
    };
    let source = match (&j.jwks_url, &j.jwks_file) {
        (Some(url), None) => JwksSource::Url(url.clone()),
        (None, Some(file)) => JwksSource::File(match base {
            Some(b) if file.is_relative() => b.join(file),
            _ => file.clone(),
        }),
        _ => {
            return Err(invalid(
                "auth.jwt",
                "set exactly one of jwks_url and jwks_file",
            ));
        }
    };
    let mut config = JwtConfig::new(j.issuer.clone(), j.audience.clone(), source);
    if let Some(algs) = &j.algorithms {
        let mut parsed = Vec::with_capacity(algs.len());
        for a in algs {
            parsed.push(JwtAlgorithm::from_name(a).ok_or_else(|| {
                invalid(
                    "auth.jwt.algorithms",
                    "each must be \"RS256\", \"ES256\" or \"EdDSA\"",
                )
            })?);
        }
        config = config.with_algorithms(parsed);
    }
    if let Some(c) = &j.host_claim {
        config = config.with_host_claim(HostClaim::from_name(c).ok_or_else(|| {
            invalid(
                "auth.jwt.host_claim",
                "must be \"sub\", \"azp\" or \"client_id\"",
            )
        })?);
    }
    if let Some(s) = j.leeway_seconds {
        config = config.with_leeway(Duration::from_secs(s));
    }
    if let Some(b) = j.max_token_bytes {
        config = config.with_max_token_bytes(b);
    }
    if let Some(s) = j.jwks_refetch_seconds {
        if s == 0 {
            return Err(invalid(
                "auth.jwt.jwks_refetch_seconds",
                "must be at least 1: it bounds how often a stranger can make us fetch",
            ));
        }
        config = config.with_refetch_interval(Duration::from_secs(s));
    }
    if let Some(s) = j.jwks_max_age_seconds {
        if s == 0 {
            return Err(invalid(
                "auth.jwt.jwks_max_age_seconds",
                "must be at least 1",
            ));
        }
        config = config.with_max_key_age(Duration::from_secs(s));
    }
    if let Some(s) = j.jwks_timeout_seconds {
        if s == 0 {
            return Err(invalid(
                "auth.jwt.jwks_timeout_seconds",
                "must be at least 1",
            ));
        }
        config = config.with_fetch_timeout(Duration::from_secs(s));
    }
    if let Some(n) = j.cache_entries {
        config = config.with_cache_capacity(n);
    }
    let a = JwtAuthenticator::new(config).map_err(|e| invalid("auth.jwt", e.to_string()))?;
    Ok(Some(Arc::new(a)))
}

#[cfg(not(feature = "tls"))]
fn certificates(auth: &Auth) -> Result<Option<Arc<dyn Authenticator>>, PolicyError> {
    if auth.client_certificates.is_empty() {
        Ok(None)
    } else {
        Err(invalid(
            "auth.client_certificates",
            "needs mcp-security built with the `tls` feature",
        ))
    }
}

#[cfg(feature = "tls")]
fn certificates(auth: &Auth) -> Result<Option<Arc<dyn Authenticator>>, PolicyError> {
    use crate::authn::{CertificateAuthenticator, CertificateMatch};
    use crate::context::Identity;

    if auth.client_certificates.is_empty() {
        return Ok(None);
    }
    let mut a = CertificateAuthenticator::new();
    for (i, c) in auth.client_certificates.iter().enumerate() {
        let at = |field: &str| format!("auth.client_certificates[{i}].{field}");
        if c.host.trim().is_empty() {
            return Err(invalid(at("host"), "must not be empty"));
        }
        let m = match (&c.subject_cn, &c.san, &c.sha256) {
            (Some(cn), None, None) => CertificateMatch::SubjectCn(cn.clone()),
            (None, Some(san), None) => CertificateMatch::San(san.clone()),
            (None, None, Some(hex)) => CertificateMatch::sha256_hex(hex)
                .map_err(|e| invalid(at("sha256"), e.to_string()))?,
            _ => {
                return Err(invalid(
                    format!("auth.client_certificates[{i}]"),
                    "set exactly one of subject_cn, san and sha256",
                ));
            }
        };
        a = a.map_identity(
            m,
            Identity::new(c.host.as_str()).with_scopes(c.scopes.iter().map(String::as_str)),
        );
    }
    Ok(Some(Arc::new(a)))
}

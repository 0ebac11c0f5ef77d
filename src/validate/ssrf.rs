//! URLs a server will fetch: the SSRF guard.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

use super::unicode;

/// Turns a host name into the addresses it resolves to. A trait so tests (and deployments with
/// their own DNS) can answer without the system resolver.
pub trait Resolver: Debug + Send + Sync {
    /// Every address `host` resolves to.
    ///
    /// # Errors
    /// When the name cannot be resolved; the guard then refuses the URL (fail closed).
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`). It blocks the calling thread for as long
/// as the lookup takes: use it where validation may block, or put a caching resolver in front.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// Checks URLs that a tool will fetch, so a caller cannot make the server reach its own
/// network (server-side request forgery).
///
/// The URL is parsed the way browsers and most HTTP clients parse it (WHATWG), so every
/// spelling of an address is seen as the address: `http://2130706433/`, `http://0x7f.1/`,
/// `http://0177.0.0.1/`, `http://127.1/`, `http://127.0.0.1./` are all 127.0.0.1. Refused by
/// default: schemes other than http and https; user info (`http://a@169.254.169.254/`: one
/// parser's user is another's host, and it carries credentials); backslashes, whitespace and
/// control characters; loopback, private, link-local, unique-local, CGNAT, `0.0.0.0/8`,
/// multicast, broadcast, documentation and reserved addresses, also inside IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4 IPv6 addresses; the names `localhost` (and `*.localhost`),
/// cloud metadata names (`metadata.google.internal`, `instance-data`, ...) and `*.internal`.
///
/// With a [`Resolver`], a name is resolved and every address it resolves to must pass too.
/// That check is advisory against DNS rebinding (the server resolves again later); it stops
/// names that simply point inside.
///
/// ```
/// use mcp_security::validate::SsrfGuard;
///
/// let guard = SsrfGuard::new();
/// assert!(guard.check("https://example.com/report.pdf").is_ok());
/// assert!(guard.check("http://169.254.169.254/latest/meta-data/").is_err());
/// assert!(guard.check("http://2130706433/").is_err());
/// assert!(guard.check("http://[::ffff:127.0.0.1]/").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct SsrfGuard {
    schemes: Vec<String>,
    allow_private: bool,
    blocked_hosts: Vec<String>,
    allowed_hosts: Vec<String>,
    resolver: Option<Arc<dyn Resolver>>,
}

impl Default for SsrfGuard {
    fn default() -> Self {
        SsrfGuard::new()
    }
}

/// Names of cloud metadata services: refused even when private addresses are allowed.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Names that reach the local machine or the cluster whatever DNS says.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "ip6-loopback",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// Domain suffixes that only ever name private things.
const BLOCKED_SUFFIXES: &[&str] = &[".localhost", ".internal", ".local", ".localdomain"];

impl SsrfGuard {
    /// http and https to public addresses only.
    pub fn new() -> Self {
        SsrfGuard {
            schemes: vec!["http".into(), "https".into()],
            allow_private: false,
            blocked_hosts: Vec::new(),
            allowed_hosts: Vec::new(),
            resolver: None,
        }
    }

    /// Allows these schemes instead of http and https.
    pub fn with_schemes<S: Into<String>>(mut self, schemes: impl IntoIterator<Item = S>) -> Self {
        self.schemes = super::lowercased(schemes);
        self
    }

    /// Allows private and local addresses (for servers whose job is the internal network).
    /// Metadata names stay refused.
    pub fn allow_private(mut self, yes: bool) -> Self {
        self.allow_private = yes;
        self
    }

    /// Refuses these host names too (and their subdomains).
    pub fn with_blocked_hosts<S: Into<String>>(
        mut self,
        hosts: impl IntoIterator<Item = S>,
    ) -> Self {
        self.blocked_hosts = hosts
            .into_iter()
            .map(|s| s.into().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Allows only these host names (and their subdomains); every other host is refused.
    pub fn with_allowed_hosts<S: Into<String>>(
        mut self,
        hosts: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_hosts = hosts
            .into_iter()
            .map(|s| s.into().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Resolves host names and checks every address they resolve to.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Whether `scheme` (lower case) is allowed.
    pub fn allows_scheme(&self, scheme: &str) -> bool {
        self.schemes.iter().any(|s| s == scheme)
    }

    /// Checks `raw`, a URL the server is asked to fetch.
    ///
    /// # Errors
    /// What is wrong with it, in words that never repeat the URL.
    pub fn check(&self, raw: &str) -> Result<(), &'static str> {
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("url contains whitespace or control characters");
        }
        if raw.contains('\\') {
            return Err("url contains a backslash");
        }
        if unicode::has_invisible(raw) {
            return Err("url contains invisible characters");
        }
        let url = Url::parse(raw).map_err(|_| "url is not an absolute url")?;
        if !self.schemes.iter().any(|s| s == url.scheme()) {
            return Err("url scheme is not allowed");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url carries user info");
        }
        let host = url.host().ok_or("url has no host")?;
        match host {
            Host::Ipv4(ip) => self.check_ip(IpAddr::V4(ip)),
            Host::Ipv6(ip) => self.check_ip(IpAddr::V6(ip)),
            Host::Domain(name) => {
                let name = name.trim_end_matches('.');
                self.check_name(name)?;
                if let Some(r) = &self.resolver {
                    let port = url.port_or_known_default().unwrap_or(0);
                    let addrs = r
                        .resolve(name, port)
                        .map_err(|_| "url host does not resolve")?;
                    if addrs.is_empty() {
                        return Err("url host does not resolve");
                    }
                    for ip in addrs {
                        self.check_ip(ip)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn check_name(&self, name: &str) -> Result<(), &'static str> {
        // The parser lowercased and IDNA-mapped the name (`ＬＯＣＡＬＨＯＳＴ` is `localhost`).
        let under = |list: &[String]| {
            list.iter().any(|h| {
                name == h
                    || name
                        .strip_suffix(h.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            })
        };
        if !self.allowed_hosts.is_empty() && !under(&self.allowed_hosts) {
            return Err("url host is not in the allowed hosts");
        }
        if under(&self.blocked_hosts) {
            return Err("url host is blocked");
        }
        if METADATA_NAMES.contains(&name) {
            return Err("url names a cloud metadata service");
        }
        if !self.allow_private
            && (LOCAL_NAMES.contains(&name) || BLOCKED_SUFFIXES.iter().any(|s| name.ends_with(s)))
        {
            return Err("url names a local or internal host");
        }
        Ok(())
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        if is_metadata(ip) {
            return Err("url names a cloud metadata service");
        }
        if !self.allow_private && !is_public(ip) {
            return Err("url names a non-public address");
        }
        Ok(())
    }
}

/// The IPv4 address an IPv6 address carries: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`, deprecated but still routed by some stacks), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(169, 254, 170, 2)
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

/// Ranges that are not the public internet (IANA special-purpose registries).
const V4_SPECIAL: &[(u8, u8, u8, u8, u8)] = &[
    (0, 0, 0, 0, 8),       // "this network"
    (10, 0, 0, 0, 8),      // private
    (100, 64, 0, 0, 10),   // CGNAT
    (127, 0, 0, 0, 8),     // loopback
    (169, 254, 0, 0, 16),  // link-local (and cloud metadata)
    (172, 16, 0, 0, 12),   // private
    (192, 0, 0, 0, 24),    // IETF protocol assignments
    (192, 0, 2, 0, 24),    // documentation
    (192, 88, 99, 0, 24),  // 6to4 relay anycast
    (192, 168, 0, 0, 16),  // private
    (198, 18, 0, 0, 15),   // benchmarking
    (198, 51, 100, 0, 24), // documentation
    (203, 0, 113, 0, 24),  // documentation
    (224, 0, 0, 0, 4),     // multicast
    (240, 0, 0, 0, 4),     // reserved, and broadcast
];

const V6_SPECIAL: &[([u16; 8], u8)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    ([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),     // Teredo (carries an obfuscated IPv4)
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // site-local (deprecated)
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_SPECIAL.iter().any(|&(a, b, c, d, len)| {
            Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).is_ok_and(|n| n.contains(&v4))
        }),
        IpAddr::V6(v6) => !V6_SPECIAL.iter().any(|(s, len)| {
            Ipv6Net::new(
                Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                *len,
            )
            .is_ok_and(|n| n.contains(&v6))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_inside_addresses() {
        let g = SsrfGuard::new();
        for bad in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://127.0.0.1./",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://a@169.254.169.254/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://10.0.0.1/",
            "http://192.168.1.1:8080/",
            "http://172.31.255.255/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://ｌｏｃａｌｈｏｓｔ/",
            "http://app.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://instance-data/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://example.com\\@127.0.0.1/",
            "http://exa mple.com/",
            "not a url",
        ] {
            assert!(g.check(bad).is_err(), "{bad}");
        }
        for ok in [
            "https://example.com/",
            "https://api.github.com/repos/a/b?x=1#f",
            "http://93.184.216.34:8080/x",
            "https://[2606:4700::1111]/",
            "https://bücher.example/",
        ] {
            assert_eq!(g.check(ok), Ok(()), "{ok}");
        }
    }

    #[derive(Debug)]
    struct Stub(Vec<IpAddr>);
    impl Resolver for Stub {
        fn resolve(&self, _h: &str, _p: u16) -> std::io::Result<Vec<IpAddr>> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn resolution_checks_every_address() {
        let public = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));
        let inside = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let g = SsrfGuard::new().with_resolver(Arc::new(Stub(vec![public, inside])));
        assert!(g.check("https://rebind.example/").is_err());
        let g = SsrfGuard::new().with_resolver(Arc::new(Stub(vec![public])));
        assert_eq!(g.check("https://fine.example/"), Ok(()));
        let g = SsrfGuard::new().with_resolver(Arc::new(Stub(vec![])));
        assert!(g.check("https://nx.example/").is_err());
    }
}

//! The tower [`HttpSecurityLayer`] and the [`HttpSecurityService`] it builds.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::header::{self, HeaderValue};
use ::http::{HeaderMap, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use super::challenge::{self, ChallengeError, Presented};
use super::config::{HttpConfig, split_authority};
use super::sessions::{Binding, SessionBindings};
use crate::decision::{Denial, DenyKind, RuleId, Stage};
use crate::{AuthMethod, Credentials, Identity, RequestContext, SecurityLayer, Transport};

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the layer returns: its own, or the inner service's.
pub type HttpBody = BoxBody<Bytes, BoxError>;

/// The header carrying the MCP session id.
const SESSION_HEADER: &str = "mcp-session-id";

/// The longest session id accepted (rmcp issues 36-character UUIDs).
const MAX_SESSION_ID_BYTES: usize = 256;

/// The caller the HTTP layer authenticated, in the request's extensions (and so in the
/// `http::request::Parts` rmcp hands to the handler).
///
/// Only this crate can make one, so its presence proves the layer ran: a client cannot
/// forge it, since extensions never come from the wire. `SecureServer` reads it to know the
/// caller of each request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    identity: Identity,
    peer: Option<SocketAddr>,
    /// The `Mcp-Session-Id` the layer checked, so the handler's context shares it.
    session: Option<Arc<str>>,
}

impl Authenticated {
    /// The authenticated caller.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The peer's socket address, when the server provided it (axum's `ConnectInfo`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

#[derive(Debug)]
struct Shared {
    config: HttpConfig,
    security: SecurityLayer,
    sessions: SessionBindings,
    metadata: Bytes,
    metadata_paths: [String; 2],
    challenge_missing: HeaderValue,
    challenge_invalid: HeaderValue,
    challenge_malformed: HeaderValue,
    challenge_scope: HeaderValue,
}

/// A tower [`Layer`] that secures the HTTP side of an MCP endpoint, in front of rmcp's
/// `StreamableHttpService` (or any service taking `Request<Full<Bytes>>`).
///
/// For each request, in order: `Host` and `Origin` checks (403), the protected resource
/// metadata at its well-known paths, 404 for any other path than the endpoint's, the body
/// size from `Content-Length` (413), the bearer token authenticated by the
/// [`SecurityLayer`]'s [`Authenticator`](crate::authn::Authenticator) (401 with a
/// `WWW-Authenticate` challenge), the required scopes (403 `insufficient_scope`), the session
/// binding (404), the body read up to the limit (413). Then the `Authorization` header is
/// removed, an [`Authenticated`] is put in the request's extensions, and the inner service is
/// called. Every refusal is audited through the `SecurityLayer`'s sink.
///
/// ```no_run
/// use mcp_security::adapters::http::{HttpConfig, HttpSecurityLayer};
/// use mcp_security::adapters::rmcp::SecureServer;
/// use mcp_security::policy::Policy;
/// use rmcp::transport::streamable_http_server::{
///     session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
/// };
/// use tower_layer::Layer;
///
/// #[derive(Clone)]
/// struct MyServer;
/// impl rmcp::ServerHandler for MyServer {}
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = Policy::load("policy.toml")?;
/// let layer = policy.build()?;
/// let config = policy.http().cloned().unwrap_or_default();
/// let mcp = StreamableHttpService::new(
///     {
///         let layer = layer.clone();
///         move || Ok(SecureServer::new(MyServer, layer.clone()))
///     },
///     LocalSessionManager::default().into(),
///     // The layer checks Host and Origin itself.
///     StreamableHttpServerConfig::default().disable_allowed_hosts(),
/// );
/// let app = axum::Router::new().fallback_service(HttpSecurityLayer::new(config, layer).layer(mcp));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpSecurityLayer {
    shared: Arc<Shared>,
}

fn header_value(s: &str) -> HeaderValue {
    // The challenge builder emits only visible ASCII and spaces, so this cannot fail; a bare
    // scheme is still a valid challenge if it somehow did.
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// The RFC 9728 metadata document.
fn metadata_json(config: &HttpConfig) -> Bytes {
    let mut doc = serde_json::Map::new();
    let resource = config.resource.clone().unwrap_or_default();
    doc.insert("resource".into(), resource.into());
    doc.insert(
        "authorization_servers".into(),
        config.authorization_servers.clone().into(),
    );
    if !config.scopes_supported.is_empty() {
        let scopes: Vec<&str> = config.scopes_supported.iter().map(|s| &**s).collect();
        doc.insert("scopes_supported".into(), scopes.into());
    }
    doc.insert("bearer_methods_supported".into(), vec!["header"].into());
    Bytes::from(serde_json::Value::Object(doc).to_string())
}

impl HttpSecurityLayer {
    /// A layer enforcing `config`, authenticating with `security`'s authenticator and auditing
    /// to its sink. Give it the same `SecurityLayer` the `SecureServer` behind it uses.
    pub fn new(config: HttpConfig, security: SecurityLayer) -> Self {
        let url = config.metadata_url();
        let url = url.as_deref();
        let required = &config.required_scopes;
        let shared = Shared {
            metadata: metadata_json(&config),
            metadata_paths: config.metadata_paths(),
            challenge_missing: header_value(&challenge::challenge(
                url,
                ChallengeError::None,
                required,
            )),
            challenge_invalid: header_value(&challenge::challenge(
                url,
                ChallengeError::InvalidToken,
                required,
            )),
            challenge_malformed: header_value(&challenge::challenge(
                url,
                ChallengeError::InvalidRequest,
                required,
            )),
            challenge_scope: header_value(&challenge::challenge(
                url,
                ChallengeError::InsufficientScope,
                required,
            )),
            sessions: SessionBindings::new(config.max_sessions),
            config,
            security,
        };
        HttpSecurityLayer {
            shared: Arc::new(shared),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HttpConfig {
        &self.shared.config
    }
}

impl<S> Layer<S> for HttpSecurityLayer {
    type Service = HttpSecurityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpSecurityService {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// The service [`HttpSecurityLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct HttpSecurityService<S> {
    shared: Arc<Shared>,
    inner: S,
}

fn text(status: StatusCode, body: &'static str) -> Response<HttpBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn challenged(
    status: StatusCode,
    body: &'static str,
    challenge: &HeaderValue,
) -> Response<HttpBody> {
    let mut r = text(status, body);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge.clone());
    r
}

/// `Some(value)` for exactly one header, `Err` for several.
fn single(
    headers: &HeaderMap,
    name: impl header::AsHeaderName,
) -> Result<Option<&HeaderValue>, ()> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// A refusal made by the layer itself, for the audit record.
fn deny(stage: Stage, kind: DenyKind, reason: &'static str, rule: &'static str) -> Denial {
    Denial::new(stage, kind, reason).with_rule(RuleId::from_static(rule))
}

impl Shared {
    /// The `Host` (HTTP/1.1) or the URI authority (HTTP/2), checked against the allowed hosts.
    fn host_allowed<B>(&self, req: &Request<B>) -> bool {
        let authority = match single(req.headers(), header::HOST) {
            Ok(Some(h)) => h.to_str().ok(),
            Ok(None) => req.uri().authority().map(|a| a.as_str()),
            Err(()) => None,
        };
        let Some((host, port)) = authority.and_then(split_authority) else {
            return false;
        };
        self.config
            .allowed_hosts
            .iter()
            .any(|p| p.matches(&host, port))
    }

    /// A request without `Origin` (not a browser) passes; one with an Origin passes only if it
    /// is listed (or, with no list, names an allowed host over http or https).
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let origin = match single(headers, header::ORIGIN) {
            Ok(None) => return true,
            Ok(Some(o)) => match o.to_str() {
                Ok(o) => o.to_ascii_lowercase(),
                Err(_) => return false,
            },
            Err(()) => return false,
        };
        if let Some(list) = &self.config.allowed_origins {
            return list.iter().any(|allowed| match allowed.strip_suffix(":*") {
                Some(prefix) => {
                    origin == prefix
                        || origin
                            .strip_prefix(prefix)
                            .and_then(|p| p.strip_prefix(':'))
                            .is_some_and(|p| p.parse::<u16>().is_ok())
                }
                None => origin == *allowed,
            });
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        if scheme != "http" && scheme != "https" {
            return false;
        }
        split_authority(authority).is_some_and(|(host, port)| {
            self.config
                .allowed_hosts
                .iter()
                .any(|p| p.matches(&host, port))
        })
    }

    fn context(&self, peer: Option<SocketAddr>, session: Option<Arc<str>>) -> RequestContext {
        let mut cx = RequestContext::new(Transport::Http);
        if let Some(p) = peer {
            cx = cx.with_peer_addr(p.ip().to_canonical());
        }
        if let Some(s) = session {
            cx = cx.with_session_id(s);
        }
        cx
    }

    /// Refuses a body over the limit (413) or one that could not be read (400), audited
    /// either way: the handler never sees the request.
    async fn body_refused(
        &self,
        cx: &RequestContext,
        path: &str,
        identity: Option<&Identity>,
        too_large: bool,
    ) -> Response<HttpBody> {
        let (status, reason, body) = if too_large {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                "request body too large",
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                "request body unreadable",
                "bad request: body unreadable",
            )
        };
        let denial = deny(Stage::Frame, DenyKind::InvalidRequest, reason, "http.body");
        self.refuse(cx, path, identity, denial).await;
        text(status, body)
    }

    async fn refuse(
        &self,
        cx: &RequestContext,
        path: &str,
        identity: Option<&Identity>,
        denial: Denial,
    ) {
        self.security
            .audit_refusal("http", Some(path), cx, identity, denial)
            .await;
    }
}

impl<S, B, ResB> Service<Request<B>> for HttpSecurityService<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + Sync + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service is driven to readiness in `call`, on the clone that serves the
        // request; refusals never need it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        Box::pin(handle(shared, inner, req))
    }
}

async fn handle<S, B, ResB>(
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<HttpBody>, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>>,
    B: Body,
    B::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + Sync + 'static,
    ResB::Error: Into<BoxError>,
{
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let path = req.uri().path().to_owned();
    let Ok(session) = single(req.headers(), SESSION_HEADER) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "bad request: several session ids",
        ));
    };
    // A session id is visible ASCII (the transport specification); bounded too, since it is
    // written to the audit record.
    let session: Option<Arc<str>> = match session.map(HeaderValue::as_bytes) {
        None => None,
        // Visible ASCII is UTF-8, so `from_utf8` keeps every id the check lets through. Shared
        // with the context and, through `Authenticated`, with the handler's context.
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_SESSION_ID_BYTES
                && id.iter().all(u8::is_ascii_graphic)
                && let Ok(id) = std::str::from_utf8(id) =>
        {
            Some(Arc::from(id))
        }
        Some(_) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "bad request: malformed session id",
            ));
        }
    };
    let cx = shared.context(peer, session.clone());

    // DNS rebinding: a page whose name now resolves to this server still sends its own name.
    // Host first, then Origin: each refusal audited at the frame stage, answered 403.
    let misdirected = if !shared.host_allowed(&req) {
        Some((
            "host not allowed",
            "http.host",
            "forbidden: host not allowed",
        ))
    } else if !shared.origin_allowed(req.headers()) {
        Some((
            "origin not allowed",
            "http.origin",
            "forbidden: origin not allowed",
        ))
    } else {
        None
    };
    if let Some((reason, rule, body)) = misdirected {
        let denial = deny(Stage::Frame, DenyKind::Forbidden, reason, rule);
        shared.refuse(&cx, &path, None, denial).await;
        return Ok(text(StatusCode::FORBIDDEN, body));
    }

    if shared.metadata_paths.contains(&path) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
        }
        let mut r = Response::new(
            Full::new(shared.metadata.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    if path != shared.config.path {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    }

    let max_body = shared.config.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Ok(shared.body_refused(&cx, &path, None, true).await);
    }

    let presented = challenge::bearer(
        req.headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
        shared.config.max_token_bytes,
    );
    let identity = match presented {
        Presented::Malformed => {
            shared
                .refuse(
                    &cx,
                    &path,
                    None,
                    deny(
                        Stage::Authentication,
                        DenyKind::Unauthenticated,
                        "unauthenticated",
                        "authentication",
                    ),
                )
                .await;
            return Ok(challenged(
                StatusCode::BAD_REQUEST,
                "bad request: malformed authorization",
                &shared.challenge_malformed,
            ));
        }
        Presented::Nothing => match &shared.config.anonymous {
            Some(anon) if anon.admits(cx.peer_addr()) => Identity::new(anon.host.clone())
                .with_scopes(anon.scopes.iter().cloned())
                .with_method(AuthMethod::Anonymous),
            _ => match shared
                .security
                .authenticate_request("http", Some(&path), &cx)
                .await
            {
                Ok(id) => id,
                Err(d) => return Ok(unauthenticated(&shared, &d, ChallengeError::None)),
            },
        },
        Presented::Bearer(token) => {
            let with_token = cx.clone().with_credentials(Credentials::bearer(token));
            match shared
                .security
                .authenticate_request("http", Some(&path), &with_token)
                .await
            {
                Ok(id) => id,
                Err(d) => return Ok(unauthenticated(&shared, &d, ChallengeError::InvalidToken)),
            }
        }
    };

    if !shared
        .config
        .required_scopes
        .iter()
        .all(|s| identity.has_scope(s))
    {
        shared
            .refuse(
                &cx,
                &path,
                Some(&identity),
                deny(
                    Stage::Authorization,
                    DenyKind::Forbidden,
                    "insufficient scope",
                    "http.required_scopes",
                ),
            )
            .await;
        return Ok(challenged(
            StatusCode::FORBIDDEN,
            "forbidden: insufficient scope",
            &shared.challenge_scope,
        ));
    }

    // 404, as for a session that does not exist: the spec's answer that makes a client start a
    // new session, and it does not confirm to a caller that someone else's session exists.
    // Without a session id, a stream resumed by `Last-Event-ID` alone is refused the same way:
    // with an event store, rmcp replays events by their id whatever the session (and with a
    // session id, ignores it), so the binding would not stand between a caller and another's
    // events. Resuming is only for the session's owner, who names it.
    let not_yours = match session.as_deref() {
        Some(id) => shared.sessions.check(id, &identity) == Binding::NotYours,
        None => req.headers().contains_key("last-event-id"),
    };
    if not_yours {
        shared
            .refuse(
                &cx,
                &path,
                Some(&identity),
                deny(
                    Stage::Authorization,
                    DenyKind::NotFound,
                    "session not found",
                    "http.session",
                ),
            )
            .await;
        return Ok(text(StatusCode::NOT_FOUND, "not found: session not found"));
    }

    let (mut parts, body) = req.into_parts();
    let bytes = match Limited::new(body, max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let too_large = e.downcast_ref::<LengthLimitError>().is_some();
            return Ok(shared
                .body_refused(&cx, &path, Some(&identity), too_large)
                .await);
        }
    };

    // No token passthrough: the handler gets the identity, never the credential.
    parts.headers.remove(header::AUTHORIZATION);
    parts.extensions.insert(Authenticated {
        identity: identity.clone(),
        peer,
        session: session.clone(),
    });
    let method = parts.method.clone();
    let req = Request::from_parts(parts, Full::new(bytes));

    std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
    let response = inner.call(req).await?;

    if response.status().is_success() {
        match (&session, method) {
            (Some(id), Method::DELETE) => shared.sessions.unbind(id),
            (None, _) => {
                if let Some(new_id) = response
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    shared.sessions.bind(new_id, &identity);
                }
            }
            (Some(_), _) => {}
        }
    }
    Ok(response.map(|b| b.map_err(Into::into).boxed()))
}

/// 401 with the challenge (503 when the authenticator could not run: the caller did nothing
/// wrong, and a 401 would send it to fetch a new token for nothing).
fn unauthenticated(shared: &Shared, d: &Denial, error: ChallengeError) -> Response<HttpBody> {
    if d.kind() == DenyKind::Unavailable {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "authentication unavailable",
        );
    }
    let challenge = match error {
        ChallengeError::None => &shared.challenge_missing,
        _ => &shared.challenge_invalid,
    };
    challenged(StatusCode::UNAUTHORIZED, "unauthorized", challenge)
}

/// The authenticated caller of an rmcp request served over Streamable HTTP, read from the
/// `http::request::Parts` rmcp puts into the request's extensions: the [`RequestContext`] the
/// pipeline uses for it. `None` when the request did not come through [`HttpSecurityLayer`].
pub(crate) fn request_context(ext: &rmcp::model::Extensions) -> Option<RequestContext> {
    let parts = ext.get::<::http::request::Parts>()?;
    let mut cx = RequestContext::new(Transport::Http);
    if let Some(a) = parts.extensions.get::<Authenticated>() {
        cx = cx.with_verified_identity(a.identity.clone());
        if let Some(p) = a.peer {
            cx = cx.with_peer_addr(p.ip().to_canonical());
        }
        // The header the layer checked (the same one rmcp routed by), without a second copy.
        if let Some(s) = &a.session {
            return Some(cx.with_session_id(s.clone()));
        }
    } else if let Some(p) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        cx = cx.with_peer_addr(p.0.ip().to_canonical());
    }
    if let Some(s) = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        cx = cx.with_session_id(s);
    }
    Some(cx)
}

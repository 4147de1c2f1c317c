//! The HTTP edge: `/ws` (the chat socket), the account endpoints under `/api`
//! ([`account`], [`password`]), the admin page's (`admin`), the file endpoints (`files`),
//! `/healthz`, `/metrics` ([`metrics`]), and the built client: from `--static-dir`, else
//! the copy inside the binary ([`embedded`]), else `dist/` when it exists. Every request
//! gets a request id and a log line ([`request_id`]).
//!
//! The WebSocket upgrade is done here rather than with axum's extractor: tungstenite
//! checks the handshake and builds the 101, hyper hands over the upgraded socket, and
//! the connection drives it with tokio-tungstenite over the raw stream (its frame
//! writer writes to that stream directly), with our own [`WebSocketConfig`]; no
//! compression is ever negotiated (see `docs/ARCHITECTURE.md`). Origin is checked
//! before the upgrade: a page on another site must not be able to open a socket with
//! our users' browsers (cross-site WebSocket hijacking). Then the session cookie: a
//! socket without a valid one is refused with 401 before the upgrade, unless guests
//! are allowed and there is no cookie at all.
//!
//! [`WebSocketConfig`]: tokio_tungstenite::tungstenite::protocol::WebSocketConfig

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Error as WsError, error::ProtocolError, handshake::server::create_response_with_body,
        protocol::Role,
    },
};
use tokio_util::task::TaskTracker;
use tower_http::services::{ServeDir, ServeFile};

use crate::{accounts::Accounts, admission::Admission, connection, health::Health, hub::HubSender};

mod account;
mod admin;
mod device;
mod embedded;
mod files;
mod headers;
pub mod host;
mod invites;
pub mod metrics;
mod password;
pub mod request_id;
mod throttle;

pub use device::{DeviceKeyError, Devices, KEY_FILE as DEVICE_KEY_FILE};

/// Path of the upload endpoint (its body gets more time: see `crate::listener`).
pub const UPLOAD_PATH: &str = "/api/files";
pub use host::{Hosts, PublicUrl};
pub use throttle::{Throttle, ThrottleLimits};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    /// Shared files: their rows, their bytes, their limits.
    pub files: Arc<crate::files::Files>,
    /// Whether a socket without a session cookie is let in as a guest.
    pub allow_guests: bool,
    /// Who may create an account (`--sign-up`); guests are `allow_guests` alone.
    pub sign_up: confab_shared::api::SignUpPolicy,
    /// Whether members, not only administrators, may make invite links.
    pub members_invite: bool,
    pub invite_limits: crate::invites::InviteLimits,
    /// How long a password reset link an administrator makes stays good.
    pub password_reset_lifetime: std::time::Duration,
    /// Mark session cookies `Secure` even when no proxy says the page came over TLS
    /// (`--secure-cookies`, or the server serves TLS itself).
    pub secure_cookies: bool,
    pub throttle: Arc<Throttle>,
    /// Signs and checks device cookies, which the throttle reads.
    pub devices: Arc<Devices>,
    pub hub: HubSender,
    /// Whether the hub thread and the store writer are alive: `/healthz` and the
    /// upgrade read it.
    pub health: Health,
    pub connection: connection::Settings,
    /// Origins allowed besides the page's own.
    pub allowed_origins: Arc<Origins>,
    /// Upgraded connections, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Caps on open connections, total and per address.
    pub admission: Admission,
    /// Reverse proxies whose `X-Forwarded-For` names the client (see [`client_ip`]).
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    /// Sign-ins, sign-ups and refusals are counted here for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Origins allowed to open the socket and call the account endpoints besides the
/// page's own (see [`origin_allowed`]).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// `--allowed-origin`, normalised by [`normalise_origin`].
    pub listed: Vec<String>,
    /// `--public-url`.
    pub public: Option<PublicUrl>,
}

/// Where the client is read from when no `--static-dir` is given and the binary
/// carries none: where `scripts/run.sh` and `trunk build --release` put it.
const DEFAULT_STATIC_DIR: &str = "dist";

/// The built web client the server serves, if any.
enum Client {
    /// A trunk-built folder (`--static-dir`, or `dist/`) and its `index.html`.
    Folder(PathBuf, String),
    /// The copy inside the binary and its `index.html`.
    Embedded(&'static embedded::Asset),
    /// None: only the socket and the API are served (the `trunk serve` flow).
    Missing,
}

impl Client {
    /// `--static-dir` wins, so development can serve a fresh build with a release
    /// binary; then the embedded copy; then `dist/` as a debug build always did.
    fn find(static_dir: Option<&Path>) -> Client {
        let folder = |dir: &Path| {
            std::fs::read_to_string(dir.join("index.html"))
                .ok()
                .map(|page| Client::Folder(dir.to_owned(), page))
        };
        let client = match static_dir {
            Some(dir) => folder(dir),
            None => embedded::index()
                .map(Client::Embedded)
                .or_else(|| folder(Path::new(DEFAULT_STATIC_DIR))),
        };
        let client = client.unwrap_or(Client::Missing);
        match &client {
            Client::Folder(dir, _) => {
                tracing::info!(static_dir = %dir.display(), "serving the web client from a folder");
            }
            Client::Embedded(_) => tracing::info!("serving the web client built into this binary"),
            Client::Missing => tracing::warn!(
                static_dir = %static_dir.unwrap_or(Path::new(DEFAULT_STATIC_DIR)).display(),
                "no built client here: serving the chat socket only (fine with `trunk serve`)"
            ),
        }
        client
    }
}

/// Builds the router. The client comes from `static_dir` when given, else from the
/// binary, else from `dist/` (see [`Client::find`]); without one, `/` explains how to
/// build it. Every route, the client's files included, answers only requests
/// addressed to one of `hosts` ([`host`]). `/metrics` answers with `scrape` (a token is
/// then needed), else 404.
pub fn router(
    state: AppState,
    static_dir: Option<&Path>,
    hosts: Hosts,
    scrape: Option<metrics::Scrape>,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/ws", get(upgrade))
        .nest(
            confab_shared::api::PREFIX,
            account::routes()
                .merge(admin::routes())
                .merge(password::routes())
                .merge(invites::routes())
                .merge(files::routes()),
        )
        .with_state(state)
        .merge(metrics::route(scrape));
    let (router, page) = match Client::find(static_dir) {
        Client::Folder(dir, page) => {
            let index = dir.join("index.html");
            // Unknown paths get the app itself, so a reload on any URL still works.
            let files = ServeDir::new(dir).fallback(ServeFile::new(index));
            (router.fallback_service(files), page)
        }
        Client::Embedded(index) => (
            router.fallback(embedded::serve),
            String::from_utf8_lossy(index.identity).into_owned(),
        ),
        Client::Missing => (router.fallback(no_client), String::new()),
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        Arc::new(hosts),
        host::check,
    ));
    let csp = headers::content_security_policy(&page);
    let router = match headers::layers(&csp) {
        Some(layers) => layers.into_iter().fold(router, Router::layer),
        None => {
            tracing::warn!("the Content-Security-Policy is not a valid header value: not sent");
            router
        }
    };
    request_id::layers(router)
}

/// 200 "ok" while the server can chat; 503 naming what stopped (the hub thread, the
/// store writer) once it cannot, until the process exits to be restarted.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.health.check() {
        Ok(()) => "ok".into_response(),
        Err(report) => (StatusCode::SERVICE_UNAVAILABLE, report).into_response(),
    }
}

async fn no_client() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "The Confab web client is not built here. Run scripts/run.sh for the one-command \
         production mode, or `trunk serve` and open http://127.0.0.1:8080 for development.\n",
    )
}

async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    // A socket now would be accepted and then dropped: say so instead, and the client
    // retries (with backoff) until the restarted server answers.
    if let Err(report) = state.health.check() {
        tracing::debug!(%peer, "refused WebSocket: {}", report.trim_end());
        return (StatusCode::SERVICE_UNAVAILABLE, report).into_response();
    }
    let headers = req.headers();
    if !origin_allowed(headers, &state.allowed_origins) {
        state
            .metrics
            .auth_refused(crate::metrics::AuthRefusal::ForeignOrigin);
        tracing::warn!(
            %peer,
            origin = %crate::logsafe::bytes(headers.get(header::ORIGIN).map_or(&[][..], |o| o.as_bytes())),
            "refused WebSocket from foreign origin"
        );
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let accept = match accept_handshake(&req) {
        Ok(accept) => accept,
        Err(refusal) => return refusal,
    };
    // The caps first: a client over them costs a counter, not a store lookup.
    let ticket = match state
        .admission
        .admit(client_ip(peer, headers, &state.trusted_proxies))
    {
        Ok(ticket) => ticket,
        Err(refused) => {
            tracing::debug!(%peer, ?refused, "connection refused");
            return (refused.status(), refused.message()).into_response();
        }
    };
    let Some(identity) = account::socket_identity(headers, &state).await else {
        state
            .metrics
            .auth_refused(crate::metrics::AuthRefusal::NoSession);
        tracing::debug!(%peer, "refused WebSocket without a valid session");
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let AppState {
        hub,
        connection: settings,
        tracker,
        ..
    } = state;
    // Two tasks: this one waits for the upgrade, then hands the socket to a task that
    // holds only what the connection needs for its whole life.
    let connections = tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(connection::websocket_config()),
                )
                .await;
                connections.spawn(connection::serve(ws, hub, settings, peer, identity, ticket));
            }
            Err(e) => tracing::debug!(%peer, "upgrade failed: {e}"),
        }
    });
    accept
}

/// The `101 Switching Protocols` that accepts a WebSocket handshake, or the refusal.
///
/// tungstenite checks the request (RFC 6455 §4.2.1) and builds the response with its
/// `Sec-WebSocket-Accept`; only the refusals are ours: **426** with the version we speak
/// when `Sec-WebSocket-Version` is not 13, **400** for anything else that is not a
/// WebSocket handshake.
#[allow(clippy::result_large_err)]
fn accept_handshake(req: &Request) -> Result<Response, Response> {
    create_response_with_body(req, Body::empty).map_err(|e| {
        let reason = match e {
            WsError::Protocol(ProtocolError::MissingSecWebSocketVersionHeader) => {
                let mut resp = (
                    StatusCode::UPGRADE_REQUIRED,
                    "unsupported WebSocket version\n",
                )
                    .into_response();
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
                return resp;
            }
            WsError::Protocol(ProtocolError::MissingSecWebSocketKey) => {
                "missing Sec-WebSocket-Key\n"
            }
            WsError::Protocol(ProtocolError::InvalidSecWebSocketKey) => {
                "invalid Sec-WebSocket-Key\n"
            }
            _ => "expected a WebSocket upgrade request\n",
        };
        (StatusCode::BAD_REQUEST, reason).into_response()
    })
}

/// Whether a handshake (or an account request) may proceed, judged by its `Origin`.
///
/// - No `Origin`: not a browser (browsers always send it on WebSocket handshakes), so
///   there is no victim's cookie jar to hijack.
/// - Listed with `--allowed-origin`, or the origin of `--public-url`. An origin on the
///   public URL's host with another scheme or port is refused: a page injected into
///   `http://` must not reach the `https://` server's sessions.
/// - Same origin as the host the browser addressed: the `Host` header, or the
///   `X-Forwarded-Host` a reverse proxy (nginx, `trunk serve`) sets when it rewrites
///   `Host`, as far as [`host::check`] left it in place (from a trusted proxy or a
///   loopback one). Comparing with it is safe because the attack this check stops runs
///   in a victim's browser, and pages cannot set that header on a WebSocket handshake.
///   The host itself was checked by [`host::check`] already.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &Origins) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = normalise_origin(origin);
    if allowed.listed.contains(&origin) {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false; // "null" and other opaque origins
    };
    if let Some(public) = &allowed.public {
        if origin == public.origin {
            return true;
        }
        if host::host_name(authority) == public.host {
            return false;
        }
    }
    let forwarded = headers
        .get_all("x-forwarded-host")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    headers
        .get_all(header::HOST)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .chain(forwarded)
        .any(|host| host.trim().eq_ignore_ascii_case(authority))
}

/// The address a request came from, for per-address limits. Behind a reverse proxy
/// every request comes from the proxy, which names the client in `X-Forwarded-For`;
/// only proxies listed with `--trusted-proxy` are believed, since anyone can send the
/// header. The list is read from the right (each proxy appends the address it got the
/// request from), skipping trusted proxies, so a client cannot choose its address by
/// sending a forged header of its own.
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    while let Some(hop) = hops.pop() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // Garbage in the chain: the last address known good is as far as it goes.
            Err(_) => break,
        }
    }
    client
}

/// Lower-cases an origin and drops a trailing slash, so configured values compare equal
/// to what browsers send.
pub fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, Version};

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        h
    }

    #[test]
    fn same_origin_passes() {
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:9000"), "127.0.0.1:9000"),
            &Origins::default()
        ));
        assert!(origin_allowed(
            &headers(Some("https://Chat.Example.com"), "chat.example.com"),
            &Origins::default()
        ));
    }

    #[test]
    fn foreign_origins_fail_unless_allowed() {
        let h = headers(Some("https://evil.example"), "127.0.0.1:9000");
        assert!(!origin_allowed(&h, &Origins::default()));
        assert!(origin_allowed(
            &h,
            &Origins {
                listed: vec![normalise_origin("https://EVIL.example/")],
                public: None,
            }
        ));
        // Same host, other port: a different origin.
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:8081"), "127.0.0.1:9000"),
            &Origins::default()
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:9000"),
            &Origins::default()
        ));
    }

    #[test]
    fn a_proxy_forwarded_host_counts_as_same_origin() {
        // What `trunk serve` sends: Host rewritten to the backend, the page's host kept.
        let mut h = headers(Some("http://127.0.0.1:8080"), "127.0.0.1");
        assert!(!origin_allowed(&h, &Origins::default()));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("127.0.0.1:8080"),
        );
        assert!(origin_allowed(&h, &Origins::default()));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("other.example"),
        );
        assert!(!origin_allowed(&h, &Origins::default()));
    }

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let proxy: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let trusted = [
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        ];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        // The client could have sent "6.6.6.6" itself; 203.0.113.7 is what our proxies saw.
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        // From anyone else the header means nothing.
        let direct: SocketAddr = "198.51.100.9:4000".parse().expect("addr");
        assert_eq!(client_ip(direct, &h, &trusted), direct.ip());
        assert_eq!(client_ip(proxy, &h, &[]), proxy.ip());
        // A trusted proxy without the header is the client as far as we know.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
        h.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(client_ip(proxy, &h, &trusted), proxy.ip());
    }

    #[test]
    fn with_a_public_url_its_origin_passes_and_its_host_under_another_scheme_does_not() {
        let public = Origins {
            listed: Vec::new(),
            public: Some(PublicUrl::parse("https://chat.example.com").expect("url")),
        };
        // Behind a proxy that does not say who the page asked for.
        let h = headers(Some("https://chat.example.com"), "127.0.0.1:9000");
        assert!(origin_allowed(&h, &public));
        assert!(!origin_allowed(&h, &Origins::default()));
        // Same host, plain HTTP: even though it is "same origin" as the Host.
        let h = headers(Some("http://chat.example.com"), "chat.example.com");
        assert!(!origin_allowed(&h, &public));
        assert!(origin_allowed(&h, &Origins::default()));
        // Someone on the machine itself, by address: same origin as ever.
        let h = headers(Some("http://127.0.0.1:9000"), "127.0.0.1:9000");
        assert!(origin_allowed(&h, &public));
    }

    #[test]
    fn no_origin_is_not_a_browser_and_passes() {
        assert!(origin_allowed(
            &headers(None, "127.0.0.1:9000"),
            &Origins::default()
        ));
    }

    /// A handshake request as a browser sends it, changed by `edit`.
    fn handshake(edit: impl FnOnce(&mut Request)) -> Request {
        let mut req = Request::new(Body::empty());
        let h = req.headers_mut();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        edit(&mut req);
        req
    }

    fn status(req: &Request) -> StatusCode {
        match accept_handshake(req) {
            Ok(resp) | Err(resp) => resp.status(),
        }
    }

    #[test]
    fn a_handshake_is_accepted_with_the_key_answered() {
        let resp = accept_handshake(&handshake(|_| {})).expect("accepted");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        // RFC 6455 §1.3's example.
        assert_eq!(
            resp.headers().get(header::SEC_WEBSOCKET_ACCEPT),
            Some(&HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        );
        assert_eq!(
            resp.headers().get(header::UPGRADE),
            Some(&HeaderValue::from_static("websocket"))
        );
        assert!(resp.headers().contains_key(header::CONNECTION));
    }

    #[test]
    fn anything_but_a_websocket_handshake_is_refused_with_400() {
        let refused: [(_, fn(&mut Request)); 6] = [
            ("a POST", |r| *r.method_mut() = Method::POST),
            ("HTTP/1.0", |r| *r.version_mut() = Version::HTTP_10),
            ("no Connection: Upgrade", |r| {
                r.headers_mut().remove(header::CONNECTION);
            }),
            ("no Upgrade: websocket", |r| {
                r.headers_mut().remove(header::UPGRADE);
            }),
            ("no key", |r| {
                r.headers_mut().remove(header::SEC_WEBSOCKET_KEY);
            }),
            ("a key that is not 16 bytes in base64", |r| {
                r.headers_mut().insert(
                    header::SEC_WEBSOCKET_KEY,
                    HeaderValue::from_static("c2hvcnQ="),
                );
            }),
        ];
        for (what, edit) in refused {
            assert_eq!(status(&handshake(edit)), StatusCode::BAD_REQUEST, "{what}");
        }
        assert_eq!(
            status(&Request::new(Body::empty())),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn another_websocket_version_is_refused_with_426_naming_ours() {
        for version in [Some("8"), None] {
            let resp = accept_handshake(&handshake(|r| {
                let h = r.headers_mut();
                h.remove(header::SEC_WEBSOCKET_VERSION);
                if let Some(v) = version {
                    h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static(v));
                }
            }))
            .expect_err("refused");
            assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED, "{version:?}");
            assert_eq!(
                resp.headers().get(header::SEC_WEBSOCKET_VERSION),
                Some(&HeaderValue::from_static("13"))
            );
        }
    }
}

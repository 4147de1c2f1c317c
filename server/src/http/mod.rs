//! The HTTP edge: `/ws` (the chat socket), the account endpoints under `/api`
//! ([`account`]), `/healthz`, and the built client.
//!
//! The WebSocket upgrade is done here by hand rather than with axum's extractor so the
//! connection is driven by tokio-tungstenite with our own [`WebSocketConfig`] and no
//! compression is ever negotiated (see `docs/ARCHITECTURE.md`). Origin is checked
//! before the upgrade: a page on another site must not be able to open a socket with
//! our users' browsers (cross-site WebSocket hijacking). Then the session cookie: a
//! socket without a valid one is refused with 401 before the upgrade, unless guests
//! are allowed and there is no cookie at all.
//!
//! [`WebSocketConfig`]: tokio_tungstenite::tungstenite::protocol::WebSocketConfig

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};
use tokio_util::task::TaskTracker;
use tower_http::services::{ServeDir, ServeFile};

use crate::{accounts::Accounts, admission::Admission, connection, hub::HubHandle};

mod account;

pub use account::{Throttle, ThrottleLimits};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    /// Whether a socket without a session cookie is let in as a guest.
    pub allow_guests: bool,
    /// Mark session cookies `Secure` even when no proxy says the page came over TLS.
    pub secure_cookies: bool,
    pub throttle: Arc<Throttle>,
    pub hub: HubHandle,
    pub connection: connection::Settings,
    /// Origins allowed besides the page's own, normalised by [`normalise_origin`].
    pub allowed_origins: Arc<Vec<String>>,
    /// Upgraded connections, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Caps on open connections, total and per address.
    pub admission: Admission,
    /// Reverse proxies whose `X-Forwarded-For` names the client (see [`client_ip`]).
    pub trusted_proxies: Arc<Vec<IpAddr>>,
}

/// Builds the router. The client is served from `static_dir` when it holds an
/// `index.html`; otherwise `/` explains how to build it.
pub fn router(state: AppState, static_dir: &Path) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/ws", get(upgrade))
        .nest(confab_shared::api::PREFIX, account::routes())
        .with_state(state);
    let index = static_dir.join("index.html");
    if index.is_file() {
        // Unknown paths get the app itself, so a reload on any URL still works.
        router.fallback_service(ServeDir::new(static_dir).fallback(ServeFile::new(index)))
    } else {
        router.fallback(no_client)
    }
}

async fn healthz() -> &'static str {
    "ok"
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
    let headers = req.headers();
    if !origin_allowed(headers, &state.allowed_origins) {
        tracing::warn!(%peer, origin = ?headers.get(header::ORIGIN), "refused WebSocket from foreign origin");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let key = match handshake_key(req.method(), headers) {
        Ok(key) => key,
        Err(resp) => return resp,
    };
    let Some(identity) = account::socket_identity(headers, &state).await else {
        tracing::debug!(%peer, "refused WebSocket without a valid session");
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
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
    let accept = derive_accept_key(key.as_bytes());
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
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// Checks the request is a WebSocket handshake (RFC 6455 §4.2.1) and returns its key.
#[allow(clippy::result_large_err)]
fn handshake_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, Response> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if method != Method::GET
        || !has_token(header::CONNECTION, "upgrade")
        || !has_token(header::UPGRADE, "websocket")
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade request\n",
        )
            .into_response());
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut resp = (
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version\n",
        )
            .into_response();
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(resp);
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or_else(|| (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n").into_response())
}

/// Whether a handshake may proceed, judged by its `Origin`.
///
/// - No `Origin`: not a browser (browsers always send it on WebSocket handshakes), so
///   there is no victim's cookie jar to hijack.
/// - Same origin as the host the browser addressed: the `Host` header, or the
///   `X-Forwarded-Host` a reverse proxy (nginx, `trunk serve`) sets when it rewrites
///   `Host`. Trusting the forwarded header is safe here because the attack this check
///   stops runs in a victim's browser, and pages cannot set that header on a WebSocket
///   handshake.
/// - Listed with `--allowed-origin`.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = normalise_origin(origin);
    if allowed.contains(&origin) {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false; // "null" and other opaque origins
    };
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
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("https://Chat.Example.com"), "chat.example.com"),
            &[]
        ));
    }

    #[test]
    fn foreign_origins_fail_unless_allowed() {
        let h = headers(Some("https://evil.example"), "127.0.0.1:9000");
        assert!(!origin_allowed(&h, &[]));
        assert!(origin_allowed(
            &h,
            &[normalise_origin("https://EVIL.example/")]
        ));
        // Same host, other port: a different origin.
        assert!(!origin_allowed(
            &headers(Some("http://127.0.0.1:8081"), "127.0.0.1:9000"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:9000"),
            &[]
        ));
    }

    #[test]
    fn a_proxy_forwarded_host_counts_as_same_origin() {
        // What `trunk serve` sends: Host rewritten to the backend, the page's host kept.
        let mut h = headers(Some("http://127.0.0.1:8080"), "127.0.0.1");
        assert!(!origin_allowed(&h, &[]));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("127.0.0.1:8080"),
        );
        assert!(origin_allowed(&h, &[]));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("other.example"),
        );
        assert!(!origin_allowed(&h, &[]));
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
    fn no_origin_is_not_a_browser_and_passes() {
        assert!(origin_allowed(&headers(None, "127.0.0.1:9000"), &[]));
    }

    #[test]
    fn handshake_requires_upgrade_headers() {
        let mut h = HeaderMap::new();
        assert!(handshake_key(&Method::GET, &h).is_err());
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        assert!(handshake_key(&Method::GET, &h).is_err(), "no key");
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(handshake_key(&Method::GET, &h).is_ok());
        assert!(handshake_key(&Method::POST, &h).is_err());
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let resp = handshake_key(&Method::GET, &h).expect_err("old version");
        assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
    }
}

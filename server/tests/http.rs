//! The HTTP edge: the Origin check before the WebSocket upgrade, `/healthz`, and the
//! built client served from the static folder.

mod common;

use common::{Client, http_get, open, start, start_with, ws_request};
use tokio_tungstenite::tungstenite::{
    Error as WsError,
    http::{HeaderValue, Request, header::ORIGIN},
};

fn with_origin(mut req: Request<()>, origin: &str) -> Request<()> {
    req.headers_mut().insert(
        ORIGIN,
        HeaderValue::from_str(origin).expect("valid header value"),
    );
    req
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_before_the_upgrade() {
    let server = start().await;
    // Another site, our host on another port, and the opaque origin of sandboxed pages.
    for origin in ["https://evil.example", "http://127.0.0.1:1", "null"] {
        let req = with_origin(ws_request(server.addr), origin);
        match open(server.addr, req).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403, "{origin}"),
            Err(other) => panic!("expected HTTP 403 for {origin}, got {other}"),
            Ok(_) => panic!("a page on {origin} must not get a socket"),
        }
    }
}

#[tokio::test]
async fn same_origin_and_configured_origins_are_accepted() {
    let server = start_with(|config| {
        config.allowed_origins = vec!["https://Chat.Example.com/".into()];
    })
    .await;
    let same_origin = format!("http://{}", server.addr);
    for origin in [same_origin.as_str(), "https://chat.example.com"] {
        let req = with_origin(ws_request(server.addr), origin);
        let ws = open(server.addr, req)
            .await
            .unwrap_or_else(|e| panic!("{origin} is allowed, got {e}"));
        // A working chat socket, not just a completed handshake.
        let mut c = Client { ws };
        c.hello(&format!("user-{}", origin.len())).await;
    }
}

#[tokio::test]
async fn a_page_behind_a_proxy_is_recognised_by_x_forwarded_host() {
    let server = start().await;
    // What `trunk serve` forwards: Host is the backend, the page's host is kept aside.
    let proxied = |forwarded: &str| {
        let mut req = with_origin(ws_request(server.addr), "http://127.0.0.1:8080");
        req.headers_mut().insert(
            "x-forwarded-host",
            HeaderValue::from_str(forwarded).expect("valid header value"),
        );
        req
    };
    let ws = open(server.addr, proxied("127.0.0.1:8080"))
        .await
        .expect("the proxied page's own origin is allowed");
    Client { ws }.hello("ada").await;
    match open(server.addr, proxied("other.example")).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("a mismatched forwarded host must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn the_socket_route_refuses_a_plain_get() {
    let server = start().await;
    assert_eq!(http_get(server.addr, "/ws").await.status, 400);
}

#[tokio::test]
async fn healthz_says_ok() {
    let server = start().await;
    let resp = http_get(server.addr, "/healthz").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn the_built_client_is_served_with_index_as_fallback() {
    const INDEX: &str = "<!doctype html><title>Confab test page</title>";
    const SCRIPT: &str = "console.log('confab test');";
    let server = start_with(|config| {
        std::fs::write(config.static_dir.join("index.html"), INDEX).expect("write index");
        std::fs::write(config.static_dir.join("app.js"), SCRIPT).expect("write script");
    })
    .await;

    for path in ["/", "/index.html", "/rooms/general"] {
        let resp = http_get(server.addr, path).await;
        assert_eq!((resp.status, resp.body.as_str()), (200, INDEX), "{path}");
        assert!(
            resp.headers
                .iter()
                .any(|h| h.starts_with("content-type: text/html")),
            "{path}: {:?}",
            resp.headers
        );
    }
    let resp = http_get(server.addr, "/app.js").await;
    assert_eq!((resp.status, resp.body.as_str()), (200, SCRIPT));
    let resp = http_get(server.addr, "/healthz").await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, "ok"),
        "routes win over files"
    );
}

#[tokio::test]
async fn without_a_built_client_the_root_explains_how_to_build_it() {
    let server = start().await;
    let resp = http_get(server.addr, "/").await;
    assert_eq!(resp.status, 404);
    assert!(
        resp.body.contains("scripts/run.sh") && resp.body.contains("trunk serve"),
        "{}",
        resp.body
    );
}

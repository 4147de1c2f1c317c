//! The HTTP edge: the Origin check before the WebSocket upgrade, `/healthz`, and the
//! built client served from the static folder.

mod common;

use std::time::Duration;

use common::{
    Client, http_get, open,
    process::{ServerProcess, free_addr},
    start, start_with, ws_request,
};
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
        let dir = config
            .static_dir
            .clone()
            .expect("the harness gives a static dir");
        std::fs::write(dir.join("index.html"), INDEX).expect("write index");
        std::fs::write(dir.join("app.js"), SCRIPT).expect("write script");
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

/// A TCP connection to `server` from the loopback address `from` (127.0.0.x are all
/// this machine, and count as different clients).
async fn tcp_from(from: &str, server: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("TCP connect")
}

/// Everything the server sends on `tcp` until it closes it, which must happen within
/// `within`.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    tokio::time::timeout(within, tcp.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection in time")
        .expect("read");
    String::from_utf8_lossy(&raw).into_owned()
}

/// A connection from `from` that the server admitted: one it neither answers nor closes
/// at once (a refusal is written and closed as the connection is accepted).
async fn admitted_from(from: &str, server: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let mut tcp = tcp_from(from, server).await;
        let mut byte = [0u8; 1];
        let answer = tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut byte)).await;
        if answer.is_err() {
            return tcp;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never admitted from {from}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the server serves a request on `tcp` (it was admitted).
///
/// A refused connection is closed without its request being read, so when the request
/// got there first the kernel answers the close with a reset, which may reach the client
/// before the refusal's bytes do: a reset, like a refusal, means "not served".
async fn served(tcp: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if let Err(e) = tcp.write_all(request).await {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "write: {e}");
        return false;
    }
    let mut raw = Vec::new();
    match tokio::time::timeout(common::TIMEOUT, tcp.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection in time")
    {
        Ok(_) => raw.starts_with(b"HTTP/1.1 200"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
        Err(e) => panic!("read: {e}"),
    }
}

#[tokio::test]
async fn http_connections_over_the_caps_are_refused_as_they_are_accepted() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let server = ServerProcess::start_with(
        addr,
        dir.path(),
        &[
            "--max-http-connections",
            "3",
            "--max-http-connections-per-ip",
            "2",
            // The idle connections below must outlive the test's steps.
            "--handshake-timeout-secs",
            "60",
        ],
    )
    .await;
    // The accept loop runs once a request is served; the connections before it (the
    // start-up probe, this one) end a moment after their close.
    assert!(served(&mut tcp_from("127.0.0.9", addr).await).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Idle connections (nothing sent: the slowloris stance), two from .1, one from .2.
    let mut a1 = tcp_from("127.0.0.1", addr).await;
    let _a2 = tcp_from("127.0.0.1", addr).await;
    let mut a3 = tcp_from("127.0.0.1", addr).await;
    let refused = read_until_closed(&mut a3, common::TIMEOUT).await;
    assert!(refused.starts_with("HTTP/1.1 429 "), "{refused}");
    assert!(refused.ends_with("too many connections from your address\n"));
    let mut b1 = tcp_from("127.0.0.2", addr).await;
    let mut c1 = tcp_from("127.0.0.3", addr).await;
    let refused = read_until_closed(&mut c1, common::TIMEOUT).await;
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(refused.contains("retry-after: 1\r\n"), "{refused}");

    // The admitted ones are served, and a closed connection gives its place back.
    assert!(served(&mut b1).await, "the connection from .2 was admitted");
    assert!(served(&mut a1).await, "the first from .1 was admitted");
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while !served(&mut tcp_from("127.0.0.1", addr).await).await {
        assert!(tokio::time::Instant::now() < deadline, "place never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A refusal is cheap: measured over many, while the caps are full. The connections
    // served above give their places back when their tasks end, a moment after the
    // client saw the close: keep trying until both of these are admitted, which leaves
    // the caps exactly full.
    let _b2 = admitted_from("127.0.0.2", addr).await;
    let _c2 = admitted_from("127.0.0.3", addr).await;
    let rss_before = server.rss_kib();
    let started = std::time::Instant::now();
    const REFUSED: u32 = 500;
    for _ in 0..REFUSED {
        let mut tcp = tcp_from("127.0.0.4", addr).await;
        let answer = read_until_closed(&mut tcp, common::TIMEOUT).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    }
    let each = started.elapsed() / REFUSED;
    eprintln!(
        "{REFUSED} connections refused, {each:?} each (connect to close), server RSS {rss_before} -> {} KiB",
        server.rss_kib()
    );
    server.terminate().await;
}

#[tokio::test]
async fn an_upgraded_websocket_no_longer_counts_as_an_http_connection() {
    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let server = ServerProcess::start_with(
        addr,
        dir.path(),
        &[
            "--max-http-connections",
            "2",
            "--max-http-connections-per-ip",
            "1",
        ],
    )
    .await;
    // Each handshake's HTTP connection leaves the count a moment after its 101 (when
    // hyper hands the socket over): a refusal in that moment is retried; a WebSocket
    // that still counted would be refused for good.
    let mut sockets = Vec::new();
    for i in 0..5 {
        let deadline = tokio::time::Instant::now() + common::TIMEOUT;
        let ws = loop {
            match open(addr, ws_request(addr)).await {
                Ok(ws) => break ws,
                Err(WsError::Http(resp)) if resp.status() == 429 => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "socket {i} refused for good"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("socket {i}: {e}"),
            }
        };
        let mut client = Client { ws };
        client.hello(&format!("ws{i}")).await;
        client.join("general").await;
        sockets.push(client);
    }
    server.terminate().await;
}

#[tokio::test]
async fn a_request_body_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::TempDir::new().expect("temporary dir");
    let addr = free_addr();
    let server = ServerProcess::start_with(addr, dir.path(), &["--body-timeout-secs", "2"]).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        format!(
            "POST /api/signin HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    let started = tokio::time::Instant::now();
    // One more byte every 500 ms (the whole body would take 50 s), until the server
    // answers.
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let closed_after = loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break started.elapsed(),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                assert!(started.elapsed() < Duration::from_secs(8), "still open after 8 s");
                // The server may have closed its side already.
                let _ = tcp.write_all(b" ").await;
            }
        }
    };
    let answer = String::from_utf8_lossy(&raw);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        closed_after >= Duration::from_millis(1900) && closed_after < Duration::from_secs(4),
        "answered and closed {closed_after:?} after the head, deadline 2 s"
    );
    eprintln!("trickled body: 408 and closed {closed_after:?} after the head (deadline 2 s)");

    // A body sent at once is not affected.
    let resp = common::sign_in(addr, "nobody", "not the password").await;
    assert_eq!(resp.status, 401);
    server.terminate().await;
}

/// The status of a request for `path` sent with `Host: host` and `extra` headers.
async fn status_for_host(
    addr: std::net::SocketAddr,
    path: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    if !extra
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(req.as_bytes()).await.expect("write");
    // The status line is enough (a 101 leaves the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(common::TIMEOUT, tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed without an answer");
        raw.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&raw);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// A WebSocket handshake's headers, with `Origin: origin`.
fn handshake_headers(origin: &str) -> [(&str, &str); 5] {
    [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Origin", origin),
    ]
}

#[tokio::test]
async fn requests_for_another_host_name_are_refused_with_421_on_every_route() {
    let server = start_with(|config| {
        let dir = config
            .static_dir
            .clone()
            .expect("the harness gives a static dir");
        std::fs::write(dir.join("index.html"), "<!doctype html>").expect("index");
        std::fs::write(dir.join("app.js"), "1;").expect("asset");
    })
    .await;
    let addr = server.addr;
    let port = addr.port();
    let evil = format!("rebound.evil.example:{port}");
    let evil_origin = format!("http://{evil}");
    for path in [
        "/",
        "/index.html",
        "/app.js",
        "/rooms/x",
        "/healthz",
        "/api/me",
    ] {
        assert_eq!(status_for_host(addr, path, &evil, &[]).await, 421, "{path}");
        // The header cannot vouch for the name: the test client is no trusted proxy.
        let forged = [("X-Forwarded-Host", "127.0.0.1")];
        assert_eq!(
            status_for_host(addr, path, &evil, &forged).await,
            421,
            "{path}"
        );
    }
    // The socket: refused before the Origin check (which the page's own origin passes).
    let ws = handshake_headers(&evil_origin);
    assert_eq!(status_for_host(addr, "/ws", &evil, &ws).await, 421);
    // An account request too (the body is never read).
    let resp = common::http_request(addr, "POST", "/api/signin", &[("Host", &evil)], None).await;
    assert!(resp.status == 421 || resp.status == 400, "{resp:?}");

    // By address or as localhost, any port: answered.
    for host in [
        addr.to_string(),
        format!("localhost:{port}"),
        "127.0.0.1".to_owned(),
        "[::1]:1".to_owned(),
    ] {
        assert_eq!(
            status_for_host(addr, "/healthz", &host, &[]).await,
            200,
            "{host}"
        );
        assert_eq!(
            status_for_host(addr, "/app.js", &host, &[]).await,
            200,
            "{host}"
        );
    }
    let origin = format!("http://localhost:{port}");
    let ws = handshake_headers(&origin);
    let host = format!("localhost:{port}");
    assert_eq!(status_for_host(addr, "/ws", &host, &ws).await, 101);
}

#[tokio::test]
async fn a_public_url_names_the_server_and_its_scheme_is_compared_with_the_origin() {
    let server = start_with(|config| {
        config.public_url =
            Some(confab_server::http::PublicUrl::parse("https://chat.example.com").expect("url"));
        config.allowed_hosts = vec!["chat.internal.lan".into()];
    })
    .await;
    let addr = server.addr;
    for host in [
        "chat.example.com",
        "Chat.Example.COM:443",
        "chat.internal.lan:9000",
    ] {
        assert_eq!(
            status_for_host(addr, "/healthz", host, &[]).await,
            200,
            "{host}"
        );
    }
    assert_eq!(
        status_for_host(addr, "/healthz", "evil.example", &[]).await,
        421
    );
    let ws = handshake_headers("https://chat.example.com");
    assert_eq!(
        status_for_host(addr, "/ws", "chat.example.com", &ws).await,
        101
    );
    // The same host over plain HTTP, or on another port, is another origin.
    for origin in ["http://chat.example.com", "https://chat.example.com:8443"] {
        let ws = handshake_headers(origin);
        assert_eq!(
            status_for_host(addr, "/ws", "chat.example.com", &ws).await,
            403,
            "{origin}"
        );
    }
    // By address, the page's own origin as ever.
    let own = format!("http://{addr}");
    let ws = handshake_headers(&own);
    assert_eq!(
        status_for_host(addr, "/ws", &addr.to_string(), &ws).await,
        101
    );
}

#[tokio::test]
async fn forwarded_host_and_proto_are_believed_from_a_trusted_proxy_only() {
    let trusted = start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
        config.allowed_hosts = vec!["chat.example.com".into()];
    })
    .await;
    // Behind the proxy, Host is whatever it uses for the backend; X-Forwarded-Host is
    // what the browser asked for.
    let asked = |name| [("X-Forwarded-Host", name)];
    let addr = trusted.addr;
    assert_eq!(
        status_for_host(addr, "/healthz", "backend", &asked("chat.example.com")).await,
        200
    );
    assert_eq!(
        status_for_host(addr, "/healthz", "127.0.0.1", &asked("evil.example")).await,
        421
    );
    // The session cookie is Secure when the trusted proxy says the page came over TLS.
    let sign_up = |addr, proto: &'static str| async move {
        common::http_post(
            addr,
            "/api/signup",
            &[("X-Forwarded-Proto", proto)],
            &serde_json::json!({"username": format!("u{}", common::fresh_client_id()), "password": common::PASSWORD}),
        )
        .await
    };
    let resp = sign_up(addr, "https").await;
    assert_eq!(resp.status, 201, "{resp:?}");
    assert!(resp.set_cookies[0].starts_with("__Host-"), "{resp:?}");

    // From anyone else, neither header counts.
    let untrusted = start_with(|config| {
        config.allowed_hosts = vec!["chat.example.com".into()];
    })
    .await;
    let addr = untrusted.addr;
    assert_eq!(
        status_for_host(addr, "/healthz", "backend", &asked("chat.example.com")).await,
        421
    );
    let resp = sign_up(addr, "https").await;
    assert_eq!(resp.status, 201, "{resp:?}");
    assert!(
        resp.set_cookies[0].starts_with("confab_session=")
            && !resp.set_cookies[0].contains("Secure"),
        "{resp:?}"
    );
}

#[tokio::test]
async fn the_trunk_serve_proxy_is_let_through_with_the_defaults() {
    // What trunk 0.21's proxy sends to the backend (captured from `trunk serve`): Host
    // rewritten to the backend's address without its port, the page's host in
    // X-Forwarded-Host, X-Forwarded-Proto http, the browser's Origin passed on.
    let server = start().await;
    let mut ws = handshake_headers("http://127.0.0.1:8080").to_vec();
    ws.push(("X-Forwarded-Host", "127.0.0.1:8080"));
    ws.push(("X-Forwarded-Proto", "http"));
    assert_eq!(
        status_for_host(server.addr, "/ws", "127.0.0.1", &ws).await,
        101
    );
    let mut ws = handshake_headers("http://localhost:8080").to_vec();
    ws.push(("X-Forwarded-Host", "localhost:8080"));
    assert_eq!(
        status_for_host(server.addr, "/ws", "127.0.0.1", &ws).await,
        101
    );
    let resp = common::http_request(
        server.addr,
        "GET",
        "/api/me",
        &[
            ("X-Forwarded-Host", "127.0.0.1:8080"),
            ("Origin", "http://127.0.0.1:8080"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status, 401, "answered (no session): {resp:?}");
}

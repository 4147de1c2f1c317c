//! Shared helpers for the integration tests: a real server on a random port and real
//! WebSocket clients speaking the wire protocol to it.
//!
//! Every wait is bounded by [`TIMEOUT`], so a test that does not get what it expects
//! fails with a message instead of hanging.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

pub mod both_stores;
pub mod process;
pub mod prometheus;
pub mod services;

use std::{net::SocketAddr, time::Duration};

use confab_server::config::Config;
use confab_shared::{ChatMessage, ClientMsg, ErrorCode, PROTOCOL_VERSION, SearchHit, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::timeout,
};
use tokio_tungstenite::{
    WebSocketStream, client_async,
    tungstenite::{Error as WsError, Message, client::IntoClientRequest, http::Request},
};

/// Upper bound for any single expectation.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A server running in-process until [`Server::shutdown`] or the end of the test.
pub struct Server {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
    _static_dir: TempDir,
    _data_dir: TempDir,
}

/// Starts a server with the default configuration and an empty static folder.
pub async fn start() -> Server {
    start_with(|_| {}).await
}

/// Starts a server after `configure` has adjusted its configuration. `static_dir` is
/// already an empty temporary folder, which `configure` may fill.
///
/// Guests are allowed unless `configure` says otherwise: most tests are about chat,
/// not accounts, and a guest is a connection with a name and nothing else to set up.
/// The account tests (`tests/accounts.rs`) turn it off.
pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a random port");
    let addr = listener.local_addr().expect("listener address");
    let static_dir = TempDir::new().expect("temporary static dir");
    let data_dir = TempDir::new().expect("temporary data dir");
    let mut config = Config::with_listen(addr, data_dir.path().to_owned());
    config.static_dir = Some(static_dir.path().to_owned());
    config.allow_guests = true;
    configure(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(confab_server::serve(listener, config, async {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop,
        handle,
        _static_dir: static_dir,
        _data_dir: data_dir,
    }
}

impl Server {
    /// Where this server keeps its database.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// Triggers shutdown; the returned handle resolves when `serve` returns.
    pub fn shutdown(self) -> JoinHandle<anyhow::Result<()>> {
        let _ = self.stop.send(());
        self.handle
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket with the given handshake request (lets tests add headers).
pub async fn open(addr: SocketAddr, req: Request<()>) -> Result<Ws, WsError> {
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    let (ws, _resp) = timeout(TIMEOUT, client_async(req, tcp))
        .await
        .expect("handshake timed out")?;
    Ok(ws)
}

/// The handshake request for `/ws` on `addr`, without an `Origin` header.
pub fn ws_request(addr: SocketAddr) -> Request<()> {
    format!("ws://{addr}/ws")
        .into_client_request()
        .expect("valid ws URL")
}

/// The password of every account the tests make.
pub const PASSWORD: &str = "correct horse battery";

/// Creates the account `username` (with [`PASSWORD`]) and returns its session cookie,
/// as a `Cookie` header value.
pub async fn sign_up(addr: SocketAddr, username: &str) -> String {
    let resp = http_post(
        addr,
        "/api/signup",
        &[],
        &serde_json::json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(resp.status, 201, "{resp:?}");
    resp.session_cookie().expect("a session cookie")
}

/// A plain text message to `room`, with a client id of its own.
fn text_message(room: &str, body: &str) -> ClientMsg {
    ClientMsg::Send {
        room: room.to_owned(),
        body: body.to_owned(),
        client_id: fresh_client_id(),
        reply_to: None,
        files: Vec::new(),
    }
}

/// `POST /api/signin` with `username` and `password`; the response as it came.
pub async fn sign_in(addr: SocketAddr, username: &str, password: &str) -> HttpResponse {
    http_post(
        addr,
        "/api/signin",
        &[],
        &serde_json::json!({"username": username, "password": password}),
    )
    .await
}

/// A WebSocket client speaking the chat protocol, over plain TCP unless told otherwise
/// (`tests/tls.rs` runs it over TLS).
pub struct Client<S = TcpStream> {
    pub ws: WebSocketStream<S>,
}

impl Client {
    /// Connects with a session cookie (see [`sign_up`]) and says hello, expecting a
    /// welcome.
    pub async fn signed_in(addr: SocketAddr, cookie: &str) -> Client {
        let mut req = ws_request(addr);
        req.headers_mut().insert(
            "cookie",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_str(cookie).expect("cookie"),
        );
        let mut c = Client {
            ws: open(addr, req).await.expect("a signed-in socket opens"),
        };
        c.send_json(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: None,
        })
        .await;
        match c.recv().await {
            ServerMsg::Welcome { .. } => c,
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Connects without saying hello.
    pub async fn connect(addr: SocketAddr) -> Client {
        let ws = open(addr, ws_request(addr))
            .await
            .expect("WebSocket handshake");
        Client { ws }
    }

    /// Connects and says hello as `name`, expecting a welcome.
    pub async fn named(addr: SocketAddr, name: &str) -> Client {
        let mut c = Client::connect(addr).await;
        c.hello(name).await;
        c
    }

    /// Connects, says hello and joins `room`.
    pub async fn in_room(addr: SocketAddr, name: &str, room: &str) -> Client {
        let mut c = Client::named(addr, name).await;
        c.join(room).await;
        c
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn send_json(&mut self, msg: &ClientMsg) {
        self.send_text(&msg.to_json()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a text frame");
    }

    /// The next protocol message, skipping control frames. Panics on a close frame,
    /// the end of the stream or a timeout.
    pub async fn recv(&mut self) -> ServerMsg {
        match timeout(TIMEOUT, self.next_text()).await {
            Ok(Ok(text)) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("server sent invalid JSON {text:?}: {e}")),
            Ok(Err(other)) => panic!("expected a message, got {other}"),
            Err(_) => panic!("no message within {TIMEOUT:?}"),
        }
    }

    /// Receives until a message satisfies `wanted`, skipping others (presence, room
    /// lists, ...), and returns it.
    pub async fn recv_until(&mut self, wanted: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let found = timeout(TIMEOUT, async {
            loop {
                let msg = self.recv().await;
                if wanted(&msg) {
                    return msg;
                }
            }
        });
        found
            .await
            .unwrap_or_else(|_| panic!("no matching message within {TIMEOUT:?}"))
    }

    /// Reads until the server's close frame and returns its code, then keeps reading
    /// until the stream ends so our reply completes the closing handshake.
    pub async fn expect_close(&mut self) -> u16 {
        let code = match timeout(TIMEOUT, self.next_text()).await {
            Ok(Err(Ending::Close(code))) => code,
            Ok(Ok(text)) => panic!("expected a close frame, got message {text}"),
            Ok(Err(other)) => panic!("expected a close frame, got {other}"),
            Err(_) => panic!("no close frame within {TIMEOUT:?}"),
        };
        let drained = timeout(TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        });
        drained.await.expect("stream ends after the close frame");
        code
    }

    /// The next text frame, answering pings (tungstenite does, on the next read).
    async fn next_text(&mut self) -> Result<String, Ending> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ending::Close(frame.map_or(1005, |f| u16::from(f.code))));
                }
                Some(Ok(other)) => return Err(Ending::Other(format!("frame {other:?}"))),
                Some(Err(e)) => return Err(Ending::Other(format!("read error: {e}"))),
                None => return Err(Ending::Other("end of stream".into())),
            }
        }
    }

    /// Says hello and returns the reply, whatever it is.
    pub async fn try_hello(&mut self, name: &str) -> ServerMsg {
        self.send_json(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: Some(name.to_owned()),
        })
        .await;
        self.recv().await
    }

    /// Says hello and expects a welcome; returns the name the server settled on.
    pub async fn hello(&mut self, name: &str) -> String {
        match self.try_hello(name).await {
            ServerMsg::Welcome { you, .. } => you.name,
            other => panic!("expected a welcome for {name:?}, got {other:?}"),
        }
    }

    /// Joins `room` and returns who is online in it and its history.
    pub async fn join(&mut self, room: &str) -> (Vec<String>, Vec<ChatMessage>) {
        self.send_json(&ClientMsg::Join {
            room: room.to_owned(),
            after: None,
        })
        .await;
        match self
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Joined {
                room: joined,
                online,
                history,
                ..
            } => {
                assert_eq!(joined, room);
                (online, history)
            }
            other => panic!("expected to join {room}, got {other:?}"),
        }
    }

    /// Every message of `room`, read through the protocol: a join, then pages of history
    /// backwards until there are no more.
    pub async fn whole_history(&mut self, room: &str) -> Vec<ChatMessage> {
        let (_, mut messages) = self.join(room).await;
        loop {
            let Some(oldest) = messages.first().map(|m| m.seq) else {
                return messages;
            };
            self.send_json(&ClientMsg::FetchHistory {
                room: room.into(),
                before: oldest,
                limit: Some(500),
            })
            .await;
            match self
                .recv_until(|m| matches!(m, ServerMsg::History { .. } | ServerMsg::Error { .. }))
                .await
            {
                ServerMsg::History {
                    messages: older,
                    more,
                    ..
                } => {
                    let done = !more || older.is_empty();
                    messages.splice(0..0, older);
                    if done {
                        return messages;
                    }
                }
                other => panic!("expected history, got {other:?}"),
            }
        }
    }

    /// Creates `room`; every identified client (this one included) receives the new
    /// room list.
    pub async fn create_room(&mut self, room: &str) {
        self.send_json(&ClientMsg::CreateRoom {
            room: room.to_owned(),
            private: false,
        })
        .await;
        self.expect_room_list_with(room).await;
    }

    /// Creates a private room titled `title` and returns the id the server gave it.
    pub async fn create_private(&mut self, title: &str) -> String {
        self.send_json(&ClientMsg::CreateRoom {
            room: title.to_owned(),
            private: true,
        })
        .await;
        let created = self
            .recv_until(|m| {
                matches!(
                    m,
                    ServerMsg::RoomsChanged {
                        created: Some(_),
                        ..
                    }
                )
            })
            .await;
        match created {
            ServerMsg::RoomsChanged {
                created: Some(id), ..
            } => id,
            other => unreachable!("filtered above: {other:?}"),
        }
    }

    /// Waits for a room list (or a change to it) that includes `room`.
    pub async fn expect_room_list_with(&mut self, room: &str) {
        self.recv_until(
            |m| matches!(m, ServerMsg::Rooms { rooms } | ServerMsg::RoomsChanged { rooms, .. } if rooms.iter().any(|r| r.name == room)),
        )
        .await;
    }

    /// Posts `body` to `room` without waiting for anything.
    pub async fn send_to(&mut self, room: &str, body: &str) {
        self.send_json(&text_message(room, body)).await;
    }

    /// Posts `body` to `room` and waits for its ack: the seq it was stored under.
    pub async fn send_acked(&mut self, room: &str, body: &str) -> u64 {
        self.acked(text_message(room, body)).await
    }

    /// Posts `body` to `room` and returns the server's copy, which the sender receives
    /// like everyone else.
    pub async fn say(&mut self, room: &str, body: &str) -> ChatMessage {
        self.send_to(room, body).await;
        self.next_message().await
    }

    /// The next chat message, skipping presence and other notifications. An error
    /// frame fails the test straight away rather than after the timeout.
    pub async fn next_message(&mut self) -> ChatMessage {
        let wanted = |m: &ServerMsg| matches!(m, ServerMsg::Message(_) | ServerMsg::Error { .. });
        match self.recv_until(wanted).await {
            ServerMsg::Message(m) => m,
            other => panic!("expected a chat message, got {other:?}"),
        }
    }

    /// Sends `msg` (a send, an edit, a reaction…) and waits for its ack; an error frame
    /// fails the test. The seq it was acked with.
    pub async fn acked(&mut self, msg: ClientMsg) -> u64 {
        self.send_json(&msg).await;
        match self
            .recv_until(|m| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Ack { seq, .. } => seq,
            other => panic!("expected an ack for {msg:?}, got {other:?}"),
        }
    }

    /// Searches `query` (a page after `before`): the hits and whether there are more, or
    /// the error's code.
    pub async fn search(
        &mut self,
        query: &str,
        before: Option<u64>,
    ) -> Result<(Vec<SearchHit>, bool), ErrorCode> {
        self.send_json(&ClientMsg::Search {
            query: query.into(),
            before,
        })
        .await;
        match self
            .recv_until(|m| matches!(m, ServerMsg::SearchResults { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::SearchResults {
                query: echoed,
                before: echoed_before,
                hits,
                more,
            } => {
                assert_eq!((echoed.as_str(), echoed_before), (query, before));
                Ok((hits, more))
            }
            ServerMsg::Error { code, .. } => Err(code),
            other => unreachable!("{other:?}"),
        }
    }

    /// Leaves `room`, expecting the `left` reply.
    pub async fn leave(&mut self, room: &str) {
        self.send_json(&ClientMsg::Leave {
            room: room.to_owned(),
        })
        .await;
        let left = ServerMsg::Left {
            room: room.to_owned(),
        };
        assert_eq!(self.recv().await, left);
    }

    /// The next frame must be an error with `code`; returns the room it names, if any.
    pub async fn expect_error(&mut self, code: ErrorCode) -> Option<String> {
        match self.recv().await {
            ServerMsg::Error {
                code: got, room, ..
            } => {
                assert_eq!(got, code, "error code");
                room
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
    }
}

/// Why [`Client::next_text`] got no text frame.
#[derive(Debug)]
enum Ending {
    /// A close frame with this code.
    Close(u16),
    /// Anything else, described.
    Other(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Close(code) => write!(f, "a close frame with code {code}"),
            Ending::Other(what) => f.write_str(what),
        }
    }
}

/// A plain HTTP response, as read off the socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, lower-cased.
    pub headers: Vec<String>,
    /// `Set-Cookie` values as sent (cookie values are case-sensitive).
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl HttpResponse {
    /// The session cookie this response set, as a `Cookie` request header value.
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .find(|c| {
                let value = c
                    .strip_prefix("__Host-confab_session=")
                    .or_else(|| c.strip_prefix("confab_session="));
                value.is_some_and(|v| !v.is_empty())
            })
            .map(str::to_owned)
    }

    /// The body, decoded as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON ({e}) in {self:?}"))
    }
}

/// Sends a bare HTTP/1.1 request for `path` over a raw socket and reads the whole
/// response (the request asks the server to close the connection after it).
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[], None).await
}

/// Posts `body` as JSON to `path` with extra `headers` (name, value).
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> HttpResponse {
    http_request(addr, "POST", path, headers, Some(&body.to_string())).await
}

/// Sends one HTTP/1.1 request over a raw socket and reads the whole response.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    http_exchange(tcp, &req).await
}

/// Writes `req` (a whole HTTP/1.1 request that asks for the connection to be closed)
/// on `stream` and reads the response to the end.
pub async fn http_exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    req: &str,
) -> HttpResponse {
    let exchange = async {
        stream
            .write_all(req.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(TIMEOUT, exchange)
        .await
        .expect("HTTP response within the timeout");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let lines: Vec<&str> = lines.collect();
    let set_cookies = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().to_owned())
        .collect();
    let headers: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
    assert!(
        !headers.iter().any(|h| h.starts_with("transfer-encoding:")),
        "tests expect a Content-Length body, got {headers:?}"
    );
    HttpResponse {
        status,
        headers,
        set_cookies,
        body: body.to_owned(),
    }
}

/// A client id never used before in this test process.
pub fn fresh_client_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "t{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

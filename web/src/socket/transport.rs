//! The transport loop: one task per session that opens the WebSocket, says hello,
//! pumps frames both ways through the [`Resume`](crate::resume::Resume) bookkeeping of
//! its [`Inner`], notices a dead connection (no pong, the browser offline, a handshake
//! nobody answers), and reconnects with backoff until the session ends.

use std::rc::Rc;

use confab_shared::{ClientMsg, ErrorCode, ServerMsg, close};
use futures::{FutureExt, SinkExt, StreamExt, channel::mpsc::UnboundedReceiver, select};
use gloo_net::websocket::{Message, State, WebSocketError, futures::WebSocket};
use gloo_timers::future::{IntervalStream, TimeoutFuture};

use super::{Chat, Inner};
use crate::{
    api::{self, Failure},
    backoff::backoff_ms,
    persist,
    state::{Action, AuthError, AuthForm, Conn},
};

/// After this many failed connections in a row, ask `/api/me` whether the session
/// still exists: a handshake refused for want of one looks like any other failure to
/// page scripts.
const RECHECK_AFTER_FAILURES: u32 = 3;
/// A WebSocket handshake unanswered this long is abandoned and tried again.
const CONNECT_TIMEOUT_MS: u32 = 8_000;
/// After this long without a frame from the server, ask it whether it is still there.
const PING_AFTER_QUIET_MS: f64 = 10_000.0;
/// A ping unanswered this long means the connection is gone, whatever the socket says.
const PONG_TIMEOUT_MS: f64 = 5_000.0;
/// How often the connection checks the two above.
const HEARTBEAT_TICK_MS: u32 = 1_000;

/// What the browser says about the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Network {
    Offline,
    Online,
}

/// Why a connection ended.
enum End {
    /// Closed or failed (or our name is still held by our previous, not yet timed-out
    /// session): retry with backoff.
    Lost,
    /// The session was ended here (signed out, another session started) or the page
    /// is going away.
    Shutdown,
    /// The server closed the socket because the session was signed out.
    SignedOut,
    /// An administrator disabled the account: signed out, and told why.
    Disabled,
    /// The guest's hello was refused: the user picks another name.
    Refused,
}

pub(super) async fn run(
    inner: Rc<Inner>,
    mut requests: UnboundedReceiver<ClientMsg>,
    mut network: UnboundedReceiver<Network>,
    run_id: u64,
) {
    let url = socket_url();
    let current = |inner: &Inner| inner.run_id.get() == run_id;
    let mut failures: u32 = 0;
    loop {
        let end = if browser_online() {
            connect_once(
                &inner,
                run_id,
                &url,
                &mut requests,
                &mut network,
                &mut failures,
            )
            .await
        } else {
            End::Lost
        };
        if !current(&inner) {
            return;
        }
        inner.open.set(false);
        inner.resume.borrow_mut().new_connection();
        match end {
            End::Shutdown => return,
            End::SignedOut => return inner.signed_out(None),
            End::Disabled => {
                inner.signed_out(None);
                inner.dispatch.emit(Action::AuthFailed(AuthError {
                    form: AuthForm::SignIn,
                    message: "An administrator disabled your account: you are signed out.".into(),
                    field: None,
                }));
                return;
            }
            End::Refused => {
                // Nor may a reload try the refused name again. What was written under
                // it is not sent under the next name the guest picks.
                inner.clear();
                persist::forget_guest_name();
                inner.dispatch.emit(Action::Conn(Conn::Idle));
                return;
            }
            End::Lost => {}
        }
        failures = failures.saturating_add(1);
        if failures >= RECHECK_AFTER_FAILURES {
            let gone = session_gone(inner.is_guest()).await;
            if !current(&inner) {
                return;
            }
            if let Some(guests_allowed) = gone {
                return inner.signed_out(Some(guests_allowed));
            }
        }
        let delay = backoff_ms(failures, js_sys::Math::random());
        let conn = if browser_online() {
            Conn::Reconnecting { retry_in_ms: delay }
        } else {
            Conn::NoNetwork
        };
        inner.dispatch.emit(Action::Conn(conn));
        // Back online means try now; while offline, the backoff still runs, in case the
        // browser's word is wrong.
        let mut wait = TimeoutFuture::new(delay).fuse();
        loop {
            select! {
                () = wait => break,
                event = network.next() => if event == Some(Network::Online) {
                    failures = 0;
                    break;
                },
            }
        }
        if !current(&inner) {
            return;
        }
    }
}

/// The browser's idea of whether there is a network at all (`navigator.onLine`).
fn browser_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// Whether the server says this session is over; `Some(guests_allowed)` when it is.
/// Anything but a clear "no" (the server is down, say) keeps the session.
async fn session_gone(guest: bool) -> Option<bool> {
    match api::me().await {
        Err(Failure::Refused { status: 401, error }) => {
            let guests_allowed = error.guests_allowed.unwrap_or(false);
            // A guest has no session cookie anyway: only guests being turned away ends it.
            (!guest || !guests_allowed).then_some(guests_allowed)
        }
        _ => None,
    }
}

async fn connect_once(
    inner: &Rc<Inner>,
    run_id: u64,
    url: &str,
    requests: &mut UnboundedReceiver<ClientMsg>,
    network: &mut UnboundedReceiver<Network>,
    failures: &mut u32,
) -> End {
    let Ok(mut ws) = WebSocket::open(url) else {
        return End::Lost;
    };
    // `poll_ready` waits while the socket is connecting; then it is open or failed. A
    // handshake nobody answers could keep it connecting for minutes: give up sooner.
    let opened = {
        let ready = futures::future::poll_fn(|cx| ws.poll_ready_unpin(cx)).fuse();
        let give_up = TimeoutFuture::new(CONNECT_TIMEOUT_MS).fuse();
        futures::pin_mut!(ready, give_up);
        select! {
            ready = ready => ready.is_ok(),
            () = give_up => false,
        }
    };
    if !opened || !matches!(ws.state(), State::Open) {
        let _ = ws.close(None, None);
        return End::Lost;
    }
    if inner.run_id.get() != run_id {
        // Signed out (or in as someone else) while connecting.
        return End::Shutdown;
    }
    let (mut tx, rx) = ws.split();
    let mut rx = rx.fuse();
    inner.open.set(true);
    inner.resume.borrow_mut().new_connection();
    inner.dispatch.emit(Action::Conn(Conn::Open));
    // Requests made while disconnected go out after the greeting; stale typing
    // notices are dropped. (Sends are never among them: the outbox holds those until
    // their room is joined.)
    let mut backlog = Vec::new();
    while let Ok(msg) = requests.try_recv() {
        if !matches!(msg, ClientMsg::Typing { .. }) {
            backlog.push(msg);
        }
    }
    let greeting = inner.resume.borrow().greeting();
    for msg in std::iter::once(greeting).chain(backlog) {
        if tx.send(Message::Text(msg.to_json())).await.is_err() {
            return End::Lost;
        }
    }
    let mut heartbeat = IntervalStream::new(HEARTBEAT_TICK_MS).fuse();
    let mut last_heard = js_sys::Date::now();
    let mut ping_sent: Option<f64> = None;
    loop {
        select! {
            _ = heartbeat.next() => {
                let now = js_sys::Date::now();
                match ping_sent {
                    Some(at) if now - at > PONG_TIMEOUT_MS => {
                        // No answer: the socket is as good as closed, whatever it says.
                        if let Ok(ws) = tx.reunite(rx.into_inner()) {
                            let _ = ws.close(Some(1000), Some("no answer to ping"));
                        }
                        return End::Lost;
                    }
                    None if now - last_heard > PING_AFTER_QUIET_MS => {
                        ping_sent = Some(now);
                        if tx.send(Message::Text(ClientMsg::Ping.to_json())).await.is_err() {
                            return End::Lost;
                        }
                    }
                    _ => {}
                }
            }
            event = network.next() => {
                if event == Some(Network::Offline) {
                    if let Ok(ws) = tx.reunite(rx.into_inner()) {
                        let _ = ws.close(Some(1000), Some("offline"));
                    }
                    return End::Lost;
                }
            }
            incoming = rx.next() => {
                last_heard = js_sys::Date::now();
                ping_sent = None;
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Bytes(_))) => continue,
                    // The close event, with the code that matters, always follows.
                    Some(Err(WebSocketError::ConnectionError)) => continue,
                    Some(Err(WebSocketError::ConnectionClose(e))) if e.code == close::SIGNED_OUT => {
                        return End::SignedOut;
                    }
                    Some(Err(WebSocketError::ConnectionClose(e))) if e.code == close::ACCOUNT_DISABLED => {
                        return End::Disabled;
                    }
                    Some(Err(_)) | None => return End::Lost,
                };
                let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                    continue;
                };
                if msg == ServerMsg::Pong {
                    // Heard from the server: that was all it was for.
                    continue;
                }
                // Hello goes first and the server answers in order, so an error before
                // the welcome is the hello's refusal.
                let refused_hello = matches!(msg, ServerMsg::Error { .. }) && !inner.resume.borrow().welcomed();
                match &msg {
                    ServerMsg::Welcome { .. } => *failures = 0,
                    // On a reconnect the server may not yet have noticed our old socket
                    // is dead; it will within its idle timeout.
                    ServerMsg::Error { code: ErrorCode::NameTaken, .. }
                        if refused_hello && inner.resume.borrow_mut().name_probably_held_by_us() => return End::Lost,
                    _ => {}
                }
                // The reducer sees the message before the outbox changes it answers
                // (an ack turns a pending message into a delivered one).
                inner.dispatch.emit(Action::Server { msg: msg.clone(), now: js_sys::Date::now() });
                if let ServerMsg::Error { code: ErrorCode::RateLimited, retry_after_ms, .. } = &msg {
                    // The refused request is not named; whatever of the outbox it was
                    // goes again once the server accepts requests.
                    let delay = retry_after_ms.unwrap_or(1_000).min(60_000);
                    Chat(Rc::clone(inner)).resend_outbox_after(u32::try_from(delay).unwrap_or(60_000));
                }
                if refused_hello {
                    // A guest picks another name, on a fresh socket. An account's hello
                    // is refused when its session has just ended: reconnecting finds out.
                    return if inner.is_guest() { End::Refused } else { End::Lost };
                }
                for next in inner.observe(&msg) {
                    if tx.send(Message::Text(next.to_json())).await.is_err() {
                        return End::Lost;
                    }
                }
            }
            request = requests.next() => {
                let Some(msg) = request else {
                    // The session ended: say so properly rather than just vanish.
                    if let Ok(ws) = tx.reunite(rx.into_inner()) {
                        let _ = ws.close(Some(1000), None);
                    }
                    return End::Shutdown;
                };
                if tx.send(Message::Text(msg.to_json())).await.is_err() {
                    return End::Lost;
                }
            }
        }
    }
}

/// `ws(s)://<this page's host>/ws`: the server (or `trunk serve`'s proxy) that served
/// the page also serves the socket.
fn socket_url() -> String {
    let location = web_sys::window().map(|w| w.location());
    let (protocol, host) = location
        .map(|l| {
            (
                l.protocol().unwrap_or_default(),
                l.host().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws")
}

//! The connection to the server. While a session is on (an account's cookie, or a
//! guest's name: see [`Chat::connect`]), one task keeps a WebSocket open, reconnects
//! with exponential backoff and jitter, and after every (re)connect says hello again and
//! does what [`Resume`] says: join every room the person follows from the last message
//! it has, and send what was written while disconnected. A socket can look open long
//! after the network is gone, so the task also listens to the browser's
//! `offline`/`online` events and pings the server after a quiet spell: no answer in time
//! counts as a drop.
//!
//! Components never see the socket. They call [`Chat`]'s methods, which record what
//! the user wants in the [`Resume`] and queue requests; everything the server says is
//! turned into [`Action`]s for the reducer.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use confab_shared::{ClientMsg, ErrorCode, ServerMsg, close};
use futures::{
    FutureExt, SinkExt, StreamExt,
    channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded},
    select,
};
use gloo_events::EventListener;
use gloo_net::websocket::{Message, State, WebSocketError, futures::WebSocket};
use gloo_timers::future::{IntervalStream, TimeoutFuture};
use yew::Callback;

use crate::{
    api::{self, Failure},
    backoff::backoff_ms,
    persist,
    resume::{Effects, GuestName, Resume},
    state::{Action, Conn, Pending, RoomTool},
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
enum Network {
    Offline,
    Online,
}

struct Inner {
    dispatch: Callback<Action>,
    /// Requests for the running session's task; `None` while there is no session.
    out: RefCell<Option<UnboundedSender<ClientMsg>>>,
    /// Changes with every connect and disconnect, so that the task of an ended session,
    /// whenever it wakes, stops without touching anything.
    run_id: Cell<u64>,
    resume: RefCell<Resume>,
    open: Cell<bool>,
    /// The window's `offline` and `online` listeners for the running session; dropping
    /// them stops the events.
    network: RefCell<Vec<EventListener>>,
}

/// Handle to the connection, shared through a Yew context.
#[derive(Clone)]
pub struct Chat(Rc<Inner>);

impl PartialEq for Chat {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Chat {
    /// A connection service with no session yet; server traffic will go to `dispatch`.
    /// Unsent messages remembered from an earlier visit are shown at once.
    pub fn new(dispatch: Callback<Action>) -> Chat {
        let inner = Rc::new(Inner {
            dispatch,
            out: RefCell::new(None),
            run_id: Cell::new(0),
            resume: RefCell::new(Resume::new(persist::load_outbox())),
            open: Cell::new(false),
            network: RefCell::new(Vec::new()),
        });
        inner.publish_outbox();
        Chat(inner)
    }

    /// Starts a session: as the account of the session cookie (`guest` `None`), or as
    /// a guest asking for that display name. Any running session ends first, since who
    /// we are is settled by the handshake and the hello.
    pub fn connect(&self, guest: Option<String>) {
        let inner = &self.0;
        inner.stop();
        let remembered = guest.is_some() && guest == persist::load_guest_name();
        inner.resume.borrow_mut().start(guest, remembered);
        let (out, requests) = unbounded();
        *inner.out.borrow_mut() = Some(out);
        let network = inner.listen_to_network();
        inner.dispatch.emit(Action::Conn(Conn::Connecting));
        wasm_bindgen_futures::spawn_local(run(
            Rc::clone(inner),
            requests,
            network,
            inner.run_id.get(),
        ));
    }

    /// Ends the session (signing out): closes the socket and forgets its rooms and
    /// unsent messages.
    pub fn disconnect(&self) {
        self.0.clear();
    }

    pub fn is_guest(&self) -> bool {
        self.0.resume.borrow().is_guest()
    }

    /// Unsent messages of someone else (another person used this browser before) must
    /// not go out as `user`'s.
    pub fn claim_outbox(&self, user: &str) {
        if self.0.resume.borrow_mut().claim_outbox(user) {
            self.0.publish_outbox();
        }
    }

    /// Creates a room; the server's answer names it, and the room is joined then (a
    /// private room's id is the server's choice).
    pub fn create_room(&self, room: &str, private: bool) {
        self.room_request(room, RoomTool::Create, room);
        self.request(ClientMsg::CreateRoom {
            room: room.to_owned(),
            private,
        });
    }

    pub fn join(&self, room: &str) {
        let join = self.0.resume.borrow_mut().join(room);
        self.request(join);
    }

    pub fn leave(&self, room: &str) {
        let leave = self.0.resume.borrow_mut().leave(room);
        self.0.dispatch.emit(Action::Leaving(room.to_owned()));
        self.request(leave);
    }

    /// Opens the direct conversation with `user` (a username); the server joins it for
    /// us and the reducer shows it then.
    pub fn open_direct(&self, user: &str) {
        let open = self.0.resume.borrow_mut().open_direct(user);
        self.0.dispatch.emit(Action::OpeningDirect(user.to_owned()));
        self.request(open);
    }

    pub fn invite(&self, room: &str, user: &str) {
        self.room_request(room, RoomTool::Invite, user);
        self.request(ClientMsg::Invite {
            room: room.to_owned(),
            user: user.to_owned(),
        });
    }

    pub fn rename_room(&self, room: &str, title: &str) {
        self.room_request(room, RoomTool::Rename, title);
        self.request(ClientMsg::RenameRoom {
            room: room.to_owned(),
            title: title.to_owned(),
        });
    }

    pub fn delete_room(&self, room: &str) {
        self.room_request(room, RoomTool::Delete, "");
        // The `left` that follows is the deletion we asked for, not news to announce.
        self.0.dispatch.emit(Action::Leaving(room.to_owned()));
        self.request(ClientMsg::DeleteRoom {
            room: room.to_owned(),
        });
    }

    pub fn remove(&self, room: &str, user: &str) {
        self.room_request(room, RoomTool::Remove, user);
        self.request(ClientMsg::Remove {
            room: room.to_owned(),
            user: user.to_owned(),
        });
    }

    fn room_request(&self, room: &str, tool: RoomTool, subject: &str) {
        self.0.dispatch.emit(Action::RoomRequest {
            room: room.to_owned(),
            tool,
            subject: subject.to_owned(),
        });
    }

    /// Queues a message. It shows as "sending…" until the server acknowledges it,
    /// survives reloads meanwhile, and goes out as soon as the room is joined.
    pub fn send(&self, room: &str, body: &str) {
        let pending = Pending {
            client_id: new_client_id(),
            room: room.to_owned(),
            body: body.to_owned(),
            failed: None,
        };
        let now = self.0.resume.borrow_mut().send(pending);
        if let Some(msg) = now {
            self.request(msg);
        }
        self.0.publish_outbox();
    }

    /// Sends a refused message again, under the same client id.
    pub fn retry(&self, client_id: &str) {
        let now = self.0.resume.borrow_mut().retry(client_id);
        if let Some(msg) = now {
            self.request(msg);
        }
        self.0.publish_outbox();
    }

    /// Gives up on an unsent message.
    pub fn discard(&self, client_id: &str) {
        self.0.resume.borrow_mut().discard(client_id);
        self.0.publish_outbox();
    }

    /// Sends again, after `delay_ms`, every unacknowledged message whose room is joined.
    /// Safe to repeat: the server stores a client id once.
    fn resend_outbox_after(&self, delay_ms: u32) {
        let chat = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            TimeoutFuture::new(delay_ms).await;
            let resend = chat.0.resume.borrow().resend_due();
            for msg in resend {
                chat.request(msg);
            }
        });
    }

    /// Asks for the messages before `before` in `room` (scrolling back).
    pub fn fetch_older(&self, room: &str, before: u64) {
        self.request(ClientMsg::FetchHistory {
            room: room.to_owned(),
            before,
            limit: None,
        });
    }

    pub fn typing(&self, room: &str) {
        if self.0.open.get() {
            self.request(ClientMsg::Typing {
                room: room.to_owned(),
            });
        }
    }

    /// Queues a request for the session's socket; without a session there is nobody
    /// to ask, and it is dropped.
    fn request(&self, msg: ClientMsg) {
        if let Some(out) = &*self.0.out.borrow() {
            // Fails only once the task has ended, and then the session has too.
            let _ = out.unbounded_send(msg);
        }
    }
}

impl Inner {
    /// Ends the running session's task, if any. Its requests channel closes, so the task
    /// closes its socket; a task asleep notices the new run id when it wakes.
    fn stop(&self) {
        self.run_id.set(self.run_id.get().wrapping_add(1));
        self.out.borrow_mut().take();
        self.network.borrow_mut().clear();
        self.open.set(false);
        self.resume.borrow_mut().new_connection();
    }

    /// Stops and forgets everything of the session: nothing may be sent later under
    /// the next person's name.
    fn clear(&self) {
        self.stop();
        if let Some(user) = self.resume.borrow().outbox().user.as_deref() {
            persist::forget_user(user);
        }
        self.resume.borrow_mut().clear();
        self.publish_outbox();
    }

    /// The server ended the session (signed out, expired, guests no longer allowed).
    fn signed_out(&self, guests_allowed: Option<bool>) {
        self.clear();
        persist::forget_guest_name();
        self.dispatch.emit(Action::SignedOut { guests_allowed });
    }

    fn is_guest(&self) -> bool {
        self.resume.borrow().is_guest()
    }

    /// Saves the outbox and shows it.
    fn publish_outbox(&self) {
        let outbox = self.resume.borrow().outbox().clone();
        persist::save_outbox(&outbox);
        self.dispatch.emit(Action::Outbox(outbox.pending));
    }

    /// Feeds a frame to the [`Resume`] and carries out what it says, but for the
    /// requests, which are returned for the socket.
    fn observe(&self, msg: &ServerMsg) -> Vec<ClientMsg> {
        let effects = self.resume.borrow_mut().observe(msg);
        let Effects {
            send,
            outbox_changed,
            following,
            guest_name,
        } = effects;
        match guest_name {
            Some(GuestName::Remember(name)) => persist::save_guest_name(&name),
            Some(GuestName::Forget) => persist::forget_guest_name(),
            None => {}
        }
        if outbox_changed {
            self.publish_outbox();
        }
        if let Some(following) = following {
            self.dispatch.emit(Action::Following(following));
        }
        send
    }

    /// Listens to the window's `offline` and `online` events for this session.
    fn listen_to_network(&self) -> UnboundedReceiver<Network> {
        let (tx, rx) = unbounded();
        let mut listeners = self.network.borrow_mut();
        listeners.clear();
        if let Some(window) = web_sys::window() {
            for (event, what) in [("offline", Network::Offline), ("online", Network::Online)] {
                let tx = tx.clone();
                listeners.push(EventListener::new(&window, event, move |_| {
                    let _ = tx.unbounded_send(what);
                }));
            }
        }
        rx
    }
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
    /// The guest's hello was refused: the user picks another name.
    Refused,
}

async fn run(
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

/// A fresh id for one sent message: random enough that two tabs never collide.
fn new_client_id() -> String {
    let random = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{:x}-{random:x}", js_sys::Date::now() as u64)
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

//! The connection to the server: one long-lived task that keeps a WebSocket open,
//! reconnects with exponential backoff and jitter, and after every (re)connect says
//! hello again, re-joins the user's rooms from the last message it has of each, and
//! sends what the user wrote while disconnected.
//!
//! Components never see the socket. They call [`Chat`]'s methods, which record what
//! the user wants (name, rooms, messages to deliver) and queue requests; everything the
//! server says is turned into [`Action`]s for the reducer.

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
};

use confab_shared::{ClientMsg, DEFAULT_ROOM, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use futures::{
    SinkExt, StreamExt,
    channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded},
    select,
};
use gloo_net::websocket::{Message, State, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use yew::Callback;

use crate::{
    persist,
    state::{Action, Conn, Pending},
};

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: f64 = 500.0;
const MAX_BACKOFF_MS: f64 = 15_000.0;
/// How often a `name_taken` is taken to mean "our previous session still holds it"
/// before the name is handed back to the user to change.
const MAX_NAME_HELD_RETRIES: u32 = 5;

/// What the user wants to be true on the server, replayed after every reconnect.
#[derive(Default)]
struct Wanted {
    name: Option<String>,
    rooms: BTreeSet<String>,
    /// Highest `seq` received per room: where a re-join resumes from.
    last_seq: BTreeMap<String, u64>,
}

struct Inner {
    out: UnboundedSender<ClientMsg>,
    dispatch: Callback<Action>,
    wanted: RefCell<Wanted>,
    /// Messages written but not acknowledged, oldest first; mirrored to local storage
    /// so they survive a reload.
    outbox: RefCell<Vec<Pending>>,
    open: Cell<bool>,
    /// Rooms joined on the current connection: sends to them can go out now.
    live: RefCell<BTreeSet<String>>,
    /// The current name was accepted before (this page or a previous one), so a
    /// `name_taken` on reconnecting most likely means our own old session holds it.
    name_was_ours: Cell<bool>,
    name_held_retries: Cell<u32>,
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
    /// Starts the connection task; server traffic goes to `dispatch`. A name and
    /// unsent messages remembered from an earlier visit are picked up.
    pub fn start(dispatch: Callback<Action>) -> Chat {
        let (out, requests) = unbounded();
        let name = persist::load_name();
        let inner = Rc::new(Inner {
            out,
            dispatch: dispatch.clone(),
            wanted: RefCell::new(Wanted {
                name: name.clone(),
                rooms: BTreeSet::from([DEFAULT_ROOM.to_owned()]),
                last_seq: BTreeMap::new(),
            }),
            outbox: RefCell::new(persist::load_outbox()),
            open: Cell::new(false),
            live: RefCell::new(BTreeSet::new()),
            name_was_ours: Cell::new(name.is_some()),
            name_held_retries: Cell::new(0),
        });
        if let Some(name) = name {
            dispatch.emit(Action::Resuming(name));
        }
        inner.publish_outbox();
        wasm_bindgen_futures::spawn_local(run(Rc::clone(&inner), requests));
        Chat(inner)
    }

    fn is_open(&self) -> bool {
        self.0.open.get()
    }

    /// Asks for a display name (and, once it is accepted, joins the user's rooms).
    pub fn hello(&self, name: &str) {
        self.0.wanted.borrow_mut().name = Some(name.to_owned());
        self.0.name_was_ours.set(false);
        if self.is_open() {
            for msg in self.0.greeting() {
                self.request(msg);
            }
        }
    }

    pub fn create_room(&self, room: &str) {
        self.request(ClientMsg::CreateRoom {
            room: room.to_owned(),
        });
        self.join(room);
    }

    pub fn join(&self, room: &str) {
        self.0.wanted.borrow_mut().rooms.insert(room.to_owned());
        let after = self.0.wanted.borrow().last_seq.get(room).copied();
        self.request(ClientMsg::Join {
            room: room.to_owned(),
            after,
        });
    }

    pub fn leave(&self, room: &str) {
        self.0.wanted.borrow_mut().rooms.remove(room);
        self.request(ClientMsg::Leave {
            room: room.to_owned(),
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
        if self.0.live.borrow().contains(room) {
            self.request(pending.to_send());
        }
        self.0.outbox.borrow_mut().push(pending);
        self.0.publish_outbox();
    }

    /// Sends a refused message again, under the same client id.
    pub fn retry(&self, client_id: &str) {
        let mut resend = None;
        if let Some(p) = self
            .0
            .outbox
            .borrow_mut()
            .iter_mut()
            .find(|p| p.client_id == client_id)
        {
            p.failed = None;
            if self.0.live.borrow().contains(&p.room) {
                resend = Some(p.to_send());
            }
        }
        if let Some(msg) = resend {
            self.request(msg);
        }
        self.0.publish_outbox();
    }

    /// Gives up on an unsent message.
    pub fn discard(&self, client_id: &str) {
        self.0
            .outbox
            .borrow_mut()
            .retain(|p| p.client_id != client_id);
        self.0.publish_outbox();
    }

    /// Sends again, after `delay_ms`, every unacknowledged message whose room is joined.
    /// Safe to repeat: the server stores a client id once.
    fn resend_outbox_after(&self, delay_ms: u32) {
        let chat = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            TimeoutFuture::new(delay_ms).await;
            let live = chat.0.live.borrow().clone();
            let resend: Vec<ClientMsg> = chat
                .0
                .outbox
                .borrow()
                .iter()
                .filter(|p| p.failed.is_none() && live.contains(&p.room))
                .map(Pending::to_send)
                .collect();
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
        if self.is_open() {
            self.request(ClientMsg::Typing {
                room: room.to_owned(),
            });
        }
    }

    fn request(&self, msg: ClientMsg) {
        // Fails only once the task has ended, which happens only when the page unloads.
        let _ = self.0.out.unbounded_send(msg);
    }
}

impl Pending {
    fn to_send(&self) -> ClientMsg {
        ClientMsg::Send {
            room: self.room.clone(),
            body: self.body.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

impl Inner {
    /// The first request of a fresh connection: hello with the wanted name. The rooms
    /// are joined once the name is accepted (see [`Inner::joins`]), so a refused name
    /// does not earn a second, confusing error for each join.
    fn greeting(&self) -> Vec<ClientMsg> {
        let wanted = self.wanted.borrow();
        wanted
            .name
            .iter()
            .map(|name| ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                name: name.clone(),
            })
            .collect()
    }

    /// A join per wanted room, each resuming after the last message we have of it.
    fn joins(&self) -> Vec<ClientMsg> {
        let wanted = self.wanted.borrow();
        wanted
            .rooms
            .iter()
            .map(|room| ClientMsg::Join {
                room: room.clone(),
                after: wanted.last_seq.get(room).copied(),
            })
            .collect()
    }

    fn saw(&self, room: &str, seq: u64) {
        let mut wanted = self.wanted.borrow_mut();
        let last = wanted.last_seq.entry(room.to_owned()).or_default();
        *last = (*last).max(seq);
    }

    /// Saves the outbox and shows it.
    fn publish_outbox(&self) {
        let outbox = self.outbox.borrow().clone();
        persist::save_outbox(&outbox);
        self.dispatch.emit(Action::Outbox(outbox));
    }

    /// Updates what the user wants from what the server answered, and returns the
    /// requests the answer calls for (the next page of a replay, queued sends).
    fn observe(&self, msg: &ServerMsg) -> Vec<ClientMsg> {
        match msg {
            ServerMsg::Message(m) => self.saw(&m.room, m.seq),
            ServerMsg::Joined { room, history, .. } => {
                if let Some(m) = history.last() {
                    self.saw(room, m.seq);
                }
                self.live.borrow_mut().insert(room.clone());
                return self
                    .outbox
                    .borrow()
                    .iter()
                    .filter(|p| p.room == *room && p.failed.is_none())
                    .map(Pending::to_send)
                    .collect();
            }
            ServerMsg::Replay { room, messages } => {
                if let Some(last) = messages.last().map(|m| m.seq) {
                    self.saw(room, last);
                    return vec![ClientMsg::Join {
                        room: room.clone(),
                        after: Some(last),
                    }];
                }
            }
            ServerMsg::Left { room } => {
                self.live.borrow_mut().remove(room);
            }
            ServerMsg::Ack { client_id, .. } => {
                self.outbox
                    .borrow_mut()
                    .retain(|p| p.client_id != *client_id);
                self.publish_outbox();
            }
            ServerMsg::Welcome { name, .. } => {
                self.name_was_ours.set(true);
                self.name_held_retries.set(0);
                persist::save_name(name);
                return self.joins();
            }
            ServerMsg::Error {
                client_id: Some(client_id),
                message,
                ..
            } => {
                if let Some(p) = self
                    .outbox
                    .borrow_mut()
                    .iter_mut()
                    .find(|p| p.client_id == *client_id)
                {
                    p.failed = Some(message.clone());
                }
                self.publish_outbox();
            }
            // A refused name must not be retried by the next reconnect.
            ServerMsg::Error {
                code: ErrorCode::NameTaken | ErrorCode::InvalidName,
                ..
            } => {
                self.wanted.borrow_mut().name = None;
                persist::forget_name();
            }
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                room: Some(room),
                ..
            } => {
                self.wanted.borrow_mut().rooms.remove(room);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Whether a `name_taken` should be waited out rather than shown.
    fn name_probably_held_by_us(&self) -> bool {
        if !self.name_was_ours.get() || self.name_held_retries.get() >= MAX_NAME_HELD_RETRIES {
            return false;
        }
        self.name_held_retries.set(self.name_held_retries.get() + 1);
        true
    }
}

/// Why a connection ended.
enum End {
    /// Closed or failed (or our name is still held by our previous, not yet timed-out
    /// session): retry with backoff.
    Lost,
    /// The page is going away.
    Shutdown,
}

async fn run(inner: Rc<Inner>, mut requests: UnboundedReceiver<ClientMsg>) {
    let url = socket_url();
    let mut failures: u32 = 0;
    loop {
        if let End::Shutdown = connect_once(&inner, &url, &mut requests, &mut failures).await {
            return;
        }
        inner.open.set(false);
        inner.live.borrow_mut().clear();
        failures = failures.saturating_add(1);
        let delay = backoff_ms(failures, js_sys::Math::random());
        inner
            .dispatch
            .emit(Action::Conn(Conn::Reconnecting { retry_in_ms: delay }));
        TimeoutFuture::new(delay).await;
    }
}

async fn connect_once(
    inner: &Rc<Inner>,
    url: &str,
    requests: &mut UnboundedReceiver<ClientMsg>,
    failures: &mut u32,
) -> End {
    let Ok(mut ws) = WebSocket::open(url) else {
        return End::Lost;
    };
    // `poll_ready` waits while the socket is connecting; then it is open or failed.
    if futures::future::poll_fn(|cx| ws.poll_ready_unpin(cx))
        .await
        .is_err()
        || !matches!(ws.state(), State::Open)
    {
        return End::Lost;
    }
    let (mut tx, rx) = ws.split();
    let mut rx = rx.fuse();
    inner.open.set(true);
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
    for msg in inner.greeting().into_iter().chain(backlog) {
        if tx.send(Message::Text(msg.to_json())).await.is_err() {
            return End::Lost;
        }
    }
    loop {
        select! {
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Bytes(_))) => continue,
                    Some(Err(_)) | None => return End::Lost,
                };
                let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                    continue;
                };
                match &msg {
                    ServerMsg::Welcome { .. } => *failures = 0,
                    // On a reconnect the server may not yet have noticed our old socket
                    // is dead; it will within its idle timeout.
                    ServerMsg::Error { code: ErrorCode::NameTaken, .. }
                        if inner.name_probably_held_by_us() => return End::Lost,
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
                for next in inner.observe(&msg) {
                    if tx.send(Message::Text(next.to_json())).await.is_err() {
                        return End::Lost;
                    }
                }
            }
            request = requests.next() => {
                let Some(msg) = request else {
                    return End::Shutdown;
                };
                if tx.send(Message::Text(msg.to_json())).await.is_err() {
                    return End::Lost;
                }
            }
        }
    }
}

/// Full-jitter exponential backoff: a random delay up to the doubled ceiling, so clients
/// dropped together by a restart do not all come back in the same instant.
fn backoff_ms(failures: u32, random: f64) -> u32 {
    let ceiling = (BASE_BACKOFF_MS * 2f64.powi(failures.min(16) as i32 - 1)).min(MAX_BACKOFF_MS);
    // Never less than a quarter of the ceiling, so retries do not spin.
    (ceiling * (0.25 + 0.75 * random.clamp(0.0, 1.0))) as u32
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling_with_jitter() {
        assert_eq!(backoff_ms(1, 1.0), 500);
        assert_eq!(backoff_ms(1, 0.0), 125);
        assert_eq!(backoff_ms(2, 1.0), 1000);
        assert_eq!(backoff_ms(3, 1.0), 2000);
        assert_eq!(backoff_ms(10, 1.0), 15_000);
        assert_eq!(backoff_ms(u32::MAX, 1.0), 15_000);
        assert!(backoff_ms(4, 0.5) < backoff_ms(4, 0.9));
    }
}

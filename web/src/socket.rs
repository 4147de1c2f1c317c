//! The connection to the server: one long-lived task that keeps a WebSocket open,
//! reconnects with exponential backoff and jitter, and after every (re)connect says
//! hello again and re-joins the user's rooms.
//!
//! Components never see the socket. They call [`Chat`]'s methods, which record what
//! the user wants (name, rooms) and queue the request; everything the server says is
//! turned into [`Action`]s for the reducer.

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

use crate::state::{Action, Conn};

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: f64 = 500.0;
const MAX_BACKOFF_MS: f64 = 15_000.0;

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
    wanted: RefCell<Wanted>,
    open: Cell<bool>,
    /// The server has accepted our name at least once: a later `name_taken` on a
    /// reconnect means our own old session still holds it, not someone else.
    welcomed: Cell<bool>,
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
    /// Starts the connection task; server traffic goes to `dispatch`.
    pub fn start(dispatch: Callback<Action>) -> Chat {
        let (out, requests) = unbounded();
        let inner = Rc::new(Inner {
            out,
            wanted: RefCell::new(Wanted {
                name: None,
                rooms: BTreeSet::from([DEFAULT_ROOM.to_owned()]),
                last_seq: BTreeMap::new(),
            }),
            open: Cell::new(false),
            welcomed: Cell::new(false),
        });
        wasm_bindgen_futures::spawn_local(run(Rc::clone(&inner), requests, dispatch));
        Chat(inner)
    }

    /// Whether requests go out now rather than after the next reconnect.
    pub fn is_open(&self) -> bool {
        self.0.open.get()
    }

    /// Asks for a display name (and, once it is accepted, joins the user's rooms).
    pub fn hello(&self, name: &str) {
        self.0.wanted.borrow_mut().name = Some(name.to_owned());
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

    /// Sends a message; `false` (and nothing sent) while disconnected, so the composer
    /// keeps the text.
    pub fn send(&self, room: &str, body: &str) -> bool {
        if !self.is_open() {
            return false;
        }
        self.request(ClientMsg::Send {
            room: room.to_owned(),
            body: body.to_owned(),
            client_id: new_client_id(),
        });
        true
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

impl Inner {
    /// The requests that put a fresh connection in the state the user wants.
    fn greeting(&self) -> Vec<ClientMsg> {
        let wanted = self.wanted.borrow();
        let Some(name) = &wanted.name else {
            return Vec::new();
        };
        let mut msgs = vec![ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.clone(),
        }];
        msgs.extend(wanted.rooms.iter().map(|room| ClientMsg::Join {
            room: room.clone(),
            after: wanted.last_seq.get(room).copied(),
        }));
        msgs
    }

    fn saw(&self, room: &str, seq: u64) {
        let mut wanted = self.wanted.borrow_mut();
        let last = wanted.last_seq.entry(room.to_owned()).or_default();
        *last = (*last).max(seq);
    }

    /// Updates what the user wants from what the server answered, and returns a
    /// request the answer calls for (the next page of a replay).
    fn observe(&self, msg: &ServerMsg) -> Option<ClientMsg> {
        match msg {
            ServerMsg::Message(m) => self.saw(&m.room, m.seq),
            ServerMsg::Joined { room, history, .. } => {
                if let Some(m) = history.last() {
                    self.saw(room, m.seq);
                }
            }
            ServerMsg::Replay { room, messages } => {
                let last = messages.last()?.seq;
                self.saw(room, last);
                return Some(ClientMsg::Join {
                    room: room.clone(),
                    after: Some(last),
                });
            }
            ServerMsg::Welcome { .. } => self.welcomed.set(true),
            // A refused first name must not be retried by the next reconnect.
            ServerMsg::Error {
                code: ErrorCode::NameTaken | ErrorCode::InvalidName,
                ..
            } if !self.welcomed.get() => self.wanted.borrow_mut().name = None,
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                room: Some(room),
                ..
            } => {
                self.wanted.borrow_mut().rooms.remove(room);
            }
            _ => {}
        }
        None
    }
}

/// Why a connection ended.
enum End {
    /// Closed or failed: retry with backoff.
    Lost,
    /// Our name is still held by our previous, not yet timed-out session: retry later.
    NameHeld,
    /// The page is going away.
    Shutdown,
}

async fn run(
    inner: Rc<Inner>,
    mut requests: UnboundedReceiver<ClientMsg>,
    dispatch: Callback<Action>,
) {
    let url = socket_url();
    let mut failures: u32 = 0;
    loop {
        match connect_once(&inner, &url, &mut requests, &dispatch, &mut failures).await {
            End::Shutdown => return,
            End::Lost | End::NameHeld => {}
        }
        inner.open.set(false);
        failures = failures.saturating_add(1);
        let delay = backoff_ms(failures, js_sys::Math::random());
        dispatch.emit(Action::Conn(Conn::Reconnecting { retry_in_ms: delay }));
        TimeoutFuture::new(delay).await;
    }
}

async fn connect_once(
    inner: &Inner,
    url: &str,
    requests: &mut UnboundedReceiver<ClientMsg>,
    dispatch: &Callback<Action>,
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
    dispatch.emit(Action::Conn(Conn::Open));
    for msg in inner.greeting() {
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
                    ServerMsg::Error { code: ErrorCode::NameTaken, .. } if inner.welcomed.get() => {
                        return End::NameHeld;
                    }
                    _ => {}
                }
                let follow_up = inner.observe(&msg);
                dispatch.emit(Action::Server { msg, now: js_sys::Date::now() });
                if let Some(next) = follow_up
                    && tx.send(Message::Text(next.to_json())).await.is_err()
                {
                    return End::Lost;
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

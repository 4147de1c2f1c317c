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

mod files;
mod transport;

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use confab_shared::{ClientMsg, ServerMsg};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use gloo_events::EventListener;
use gloo_timers::future::TimeoutFuture;
use yew::Callback;

use self::transport::Network;
use crate::{
    persist,
    resume::{Effects, GuestName, Resume},
    state::{Action, Conn, Pending, PendingChange, ReadingAction, RoomTool},
};

/// How long a `join` refused as `unavailable` waits before it is sent again: the server
/// is working through a wave of history reads (a restart's reconnects).
const REJOIN_DELAY_MS: u32 = 1_000;
/// How long a change refused as `unavailable` (storage busy) waits before the outbox
/// goes again.
const RESEND_DELAY_MS: u32 = 1_000;

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
    /// The files being shared, and their uploads.
    files: files::Files,
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
            files: files::Files::default(),
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
        wasm_bindgen_futures::spawn_local(transport::run(
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

    /// Queues a message (answering message `reply_to`, if any). It shows as
    /// "sending…" until the server acknowledges it, survives reloads meanwhile, and goes
    /// out as soon as the room is joined.
    pub fn send(&self, room: &str, body: &str, reply_to: Option<u64>) {
        self.queue(Pending {
            client_id: new_client_id(),
            room: room.to_owned(),
            body: body.to_owned(),
            failed: None,
            reply_to,
            change: None,
            files: Vec::new(),
        });
    }

    /// Queues a change to a message of `room` (an edit, a deletion, a reaction): like a
    /// message, it waits in the outbox until acknowledged.
    pub fn change(&self, room: &str, change: PendingChange) {
        self.queue(Pending {
            client_id: new_client_id(),
            room: room.to_owned(),
            body: String::new(),
            failed: None,
            reply_to: None,
            change: Some(change),
            files: Vec::new(),
        });
    }

    fn queue(&self, pending: Pending) {
        let now = self.0.resume.borrow_mut().send(pending);
        if let Some(msg) = now {
            self.request(msg);
        }
        self.0.publish_outbox();
    }

    /// Sends a refused message again, under the same client id (uploading its files
    /// first, if they are not).
    pub fn retry(&self, client_id: &str) {
        let now = self.0.resume.borrow_mut().retry(client_id);
        if let Some(msg) = now {
            self.request(msg);
        }
        self.0.publish_outbox();
        self.0.start_uploads();
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

    /// The person read `room` up to `seq` here: the marker moves at once on screen and,
    /// for an account, on the server, which tells the person's other sessions. Not
    /// queued while disconnected: the next `joined` brings the server's marker, and the
    /// room is marked again if the person is still looking.
    pub fn mark_read(&self, room: &str, seq: u64) {
        if self.0.open.get() && !self.is_guest() {
            self.request(ClientMsg::MarkRead {
                room: room.to_owned(),
                seq,
            });
        }
        self.0.dispatch.emit(Action::Reading(ReadingAction::Marked {
            room: room.to_owned(),
            seq,
        }));
    }

    /// Mutes or unmutes `room` for the person, on every device; shown at once when it
    /// could be sent (the server's room list confirms it).
    pub fn mute(&self, room: &str, muted: bool) {
        if !self.0.open.get() {
            return;
        }
        self.request(ClientMsg::Mute {
            room: room.to_owned(),
            muted,
        });
        self.0.dispatch.emit(Action::Reading(ReadingAction::Muted {
            room: room.to_owned(),
            muted,
        }));
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
        self.files.clear();
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

    /// Saves the outbox and shows it; the files of messages no longer in it are
    /// forgotten (their uploads stopped).
    fn publish_outbox(&self) {
        let stopped = {
            let resume = self.resume.borrow();
            self.files.keep_only(|key| resume.holds_file(key))
        };
        for key in stopped {
            self.dispatch
                .emit(Action::Uploads(crate::state::UploadAction::Finished {
                    key,
                }));
        }
        let outbox = self.resume.borrow().outbox().clone();
        persist::save_outbox(&outbox);
        self.dispatch.emit(Action::Outbox(outbox.pending));
    }

    /// Feeds a frame to the [`Resume`] and carries out what it says, but for the
    /// requests, which are returned for the socket.
    fn observe(self: &Rc<Self>, msg: &ServerMsg) -> Vec<ClientMsg> {
        let effects = self.resume.borrow_mut().observe(msg);
        let Effects {
            send,
            outbox_changed,
            following,
            guest_name,
            rejoin_later,
            resend_soon,
        } = effects;
        if resend_soon {
            Chat(Rc::clone(self)).resend_outbox_after(RESEND_DELAY_MS);
        }
        if !rejoin_later.is_empty() {
            self.rejoin_after(rejoin_later, REJOIN_DELAY_MS);
        }
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
        if matches!(msg, ServerMsg::Welcome { .. }) {
            self.restart_uploads();
        }
        send
    }

    /// Joins `rooms` again after `delay_ms`, on the same connection only (a new one
    /// joins every room anyway).
    fn rejoin_after(self: &Rc<Self>, rooms: Vec<String>, delay_ms: u32) {
        let inner = Rc::clone(self);
        let run = self.run_id.get();
        wasm_bindgen_futures::spawn_local(async move {
            TimeoutFuture::new(delay_ms).await;
            if inner.run_id.get() != run {
                return;
            }
            let joins = inner.resume.borrow().rejoin_due(&rooms);
            if let Some(out) = &*inner.out.borrow() {
                for msg in joins {
                    let _ = out.unbounded_send(msg);
                }
            }
        });
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

/// A fresh id for one sent message: random enough that two tabs never collide.
fn new_client_id() -> String {
    let random = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    format!("{:x}-{random:x}", js_sys::Date::now() as u64)
}

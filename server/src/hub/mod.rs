//! The hub: who is online, which rooms exist, who may see each, and where every
//! message goes.
//!
//! [`Hub`] is a state machine without network I/O: it takes validated [`Command`]s,
//! reads history from the [`Store`] when someone joins or scrolls back, hands every
//! write to the store's writer thread, and pushes encoded frames into each session's
//! [`Outbox`]. A message is acknowledged and delivered only when the writer reports it
//! committed ([`Hub::committed`]), so nobody ever sees a message that could still be
//! lost. [`HubHandle`] runs one `Hub` on a thread of its own: a single owner means no
//! locks on the hot path and one order of events that every client observes alike.
//!
//! Access control lives here too, in one rule: a session may know of a room only if
//! the room is public or the session's user is one of its members. Every request about
//! a room the session may not know is answered exactly as if the room did not exist.
//! Managing rooms (create, invite, remove, rename, delete, direct conversations) is in
//! [`rooms`].

mod handle;
mod rooms;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use confab_shared::{
    Body, ChatMessage, ClientId, DisplayName, ErrorCode, GUEST_PREFIX, PROTOCOL_VERSION, Person,
    PresenceEvent, RoomKind, RoomName, ServerMsg, Username, close, limits,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use handle::{EVENT_QUEUE, Event, HubHandle, TrySend};

use crate::{
    outbox::Outbox,
    store::{
        Appended, NewMessage, Store, StoreError, Write, Written,
        writer::{Outcome, WriterHandle},
    },
};

/// Identifies one connection for its whole life; never reused.
pub type SessionId = u64;

/// SHA-256 of a sign-in session's token: names the sign-in without being it.
pub type SessionKey = [u8; 32];

/// Who a connection is, established from its cookie before the WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Signed in to an account.
    User {
        username: String,
        display_name: String,
        admin: bool,
        /// The sign-in the socket was opened with, so signing out one device closes
        /// exactly that device's sockets.
        session: SessionKey,
    },
    /// Let in without an account (`--allow-guests`); names itself in `hello`.
    Guest,
}

/// A validated client request (see [`crate::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello {
        /// A guest's chosen display name; ignored for accounts.
        name: Option<DisplayName>,
    },
    ListRooms,
    CreateRoom {
        room: RoomName,
        private: bool,
    },
    Join {
        room: RoomName,
        after: Option<u64>,
    },
    Leave(RoomName),
    Send {
        room: RoomName,
        body: Body,
        client_id: ClientId,
    },
    FetchHistory {
        room: RoomName,
        before: u64,
        limit: usize,
    },
    Typing(RoomName),
    OpenDirect(Username),
    Invite {
        room: RoomName,
        user: Username,
    },
    Remove {
        room: RoomName,
        user: Username,
    },
    RenameRoom {
        room: RoomName,
        title: RoomName,
    },
    DeleteRoom(RoomName),
    Ping,
}

/// Who is waiting for a write: the sender of a message, to be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub session: SessionId,
    pub client_id: String,
}

/// The hub's end of the store writer.
pub type Writer = WriterHandle<Option<Waiter>>;

/// Tunables of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Most public and private rooms the hub holds (direct conversations are bounded
    /// by the number of accounts instead).
    pub max_rooms: usize,
    /// Messages a client receives when it joins a room afresh.
    pub history_on_join: usize,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_session: usize,
    /// Typing events one connection may have forwarded per second, over all its rooms.
    /// The per-room throttle alone would let a client in 100 rooms fan out 100
    /// indicators every throttle period.
    pub max_typing_per_sec: u32,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            max_rooms: 1000,
            history_on_join: limits::HISTORY_ON_JOIN,
            max_rooms_per_session: 100,
            max_typing_per_sec: 4,
        }
    }
}

#[derive(Debug)]
struct Session {
    outbox: Outbox,
    identity: Identity,
    /// `None` until a successful hello.
    person: Option<Person>,
    /// Rooms whose live traffic this session receives. A list rather than a set: a
    /// session is in a few rooms, and a B-tree's first node alone is ~300 bytes, per
    /// connection.
    rooms: Vec<String>,
    /// When this session's last typing event per room was forwarded.
    last_typing: HashMap<String, Instant>,
    /// Start of the current one-second typing window and the events forwarded in it.
    typing_window: (Instant, u32),
}

impl Session {
    /// The session's user handle, once it said hello.
    fn handle(&self) -> Option<&str> {
        self.person.as_ref().map(|p| p.user.as_str())
    }

    fn is_admin(&self) -> bool {
        matches!(self.identity, Identity::User { admin: true, .. })
    }

    fn is_guest(&self) -> bool {
        matches!(self.identity, Identity::Guest)
    }
}

#[derive(Debug)]
struct Room {
    kind: RoomKind,
    title: String,
    /// Handle of the creator; `None` for rooms from before accounts.
    owner: Option<String>,
    /// Everyone who belongs to the room, by handle: for public rooms those who joined
    /// and have not left, for the others those invited (and the creator).
    members: BTreeSet<String>,
    /// Sessions receiving the room's live traffic.
    online: BTreeSet<SessionId>,
    /// Handles with at least one session in `online`, and how many: a person with
    /// two tabs comes online once and goes offline once.
    present: BTreeMap<String, u32>,
    /// Highest sequence number delivered live. Replays stop here, live traffic starts
    /// after it: that is what makes resuming gap- and duplicate-free.
    last_seq: u64,
}

impl Room {
    fn new(kind: RoomKind, title: String, owner: Option<String>) -> Self {
        Self {
            kind,
            title,
            owner,
            members: BTreeSet::new(),
            online: BTreeSet::new(),
            present: BTreeMap::new(),
            last_seq: 0,
        }
    }

    /// The access rule (see the module documentation).
    fn visible_to(&self, handle: &str) -> bool {
        self.kind == RoomKind::Public || self.members.contains(handle)
    }

    /// Whether `session` may rename, delete and remove members.
    fn managed_by(&self, session: &Session) -> bool {
        session.is_admin() || (self.owner.is_some() && self.owner.as_deref() == session.handle())
    }
}

/// The chat state machine. See the module documentation.
pub struct Hub {
    settings: HubSettings,
    sessions: HashMap<SessionId, Session>,
    /// Guests online, by handle (guest names are unique among those online).
    guests: HashMap<String, SessionId>,
    /// Every account's display name, by username.
    directory: HashMap<String, String>,
    rooms: BTreeMap<String, Room>,
    /// The hub's read connection; writes go through `writer`.
    store: Box<dyn Store>,
    /// `None` once the hub stops, which lets the writer flush and finish.
    writer: Option<Writer>,
    /// Sessions whose queue overflowed during the current operation; removed at its end
    /// so that removal (which itself broadcasts) never happens mid-iteration.
    overflowed: Vec<SessionId>,
    shutting_down: bool,
}

impl Hub {
    /// A hub over the rooms, members and accounts in `store`.
    pub fn new(
        settings: HubSettings,
        mut store: Box<dyn Store>,
        writer: Writer,
    ) -> Result<Self, StoreError> {
        let rooms = store
            .rooms()?
            .into_iter()
            .map(|r| {
                let mut room = Room::new(r.kind, r.title, r.owner);
                // Guests were stored as members by early builds of protocol 3.
                room.members = r
                    .members
                    .into_iter()
                    .filter(|m| !m.starts_with(GUEST_PREFIX))
                    .collect();
                room.last_seq = r.last_seq;
                (r.name, room)
            })
            .collect();
        let directory = store
            .people()?
            .into_iter()
            .map(|p| (p.username, p.display_name))
            .collect();
        Ok(Self {
            settings,
            sessions: HashMap::new(),
            guests: HashMap::new(),
            directory,
            rooms,
            store,
            writer: Some(writer),
            overflowed: Vec::new(),
            shutting_down: false,
        })
    }

    /// Number of open connections, identified or not.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A new connection. It may only say hello until then.
    pub fn connect(&mut self, id: SessionId, outbox: Outbox, identity: Identity) {
        if self.shutting_down {
            outbox.close(close::GOING_AWAY, "server shutting down");
            return;
        }
        if let Identity::User {
            username,
            display_name,
            ..
        } = &identity
        {
            // Accounts made by `confab-server admin create` while the server runs
            // reach the hub this way.
            self.directory
                .entry(username.clone())
                .or_insert_with(|| display_name.clone());
        }
        self.sessions.insert(
            id,
            Session {
                outbox,
                identity,
                person: None,
                rooms: Vec::new(),
                last_typing: HashMap::new(),
                typing_window: (Instant::now(), 0),
            },
        );
    }

    /// The connection is gone: free its name and tell its rooms.
    pub fn disconnect(&mut self, id: SessionId) {
        self.remove_session(id);
        self.settle();
    }

    /// Asks one connection to close, after the frames already queued for it.
    pub fn kick(&mut self, id: SessionId, code: u16, reason: &str) {
        if let Some(session) = self.sessions.get(&id) {
            session.outbox.close(code, reason);
        }
    }

    /// Asks every connection to close with 1001 and refuses new ones.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        for session in self.sessions.values() {
            session
                .outbox
                .close(close::GOING_AWAY, "server shutting down");
        }
    }

    /// A new account: from now on it can be named, invited and messaged.
    pub fn user_added(&mut self, username: String, display_name: String) {
        self.directory.insert(username, display_name);
    }

    /// Closes the sockets of `username` opened with the sign-in `session` (all of the
    /// user's sockets when `None`): their cookie is no longer valid.
    pub fn signed_out(&mut self, username: &str, session: Option<SessionKey>) {
        for s in self.sessions.values() {
            if let Identity::User {
                username: user,
                session: key,
                ..
            } = &s.identity
                && user == username
                && session.is_none_or(|k| k == *key)
            {
                s.outbox.close(close::SIGNED_OUT, "signed out");
            }
        }
    }

    /// Applies one client request.
    pub fn handle(&mut self, id: SessionId, cmd: Command) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let result = match (session.person.is_some(), cmd) {
            (false, Command::Hello { name }) => self.hello(id, name),
            (true, Command::Hello { .. }) => Err(Refusal::new(
                ErrorCode::AlreadyIdentified,
                "this session already said hello",
            )),
            (false, _) => Err(Refusal::new(ErrorCode::HelloRequired, "say hello first")),
            (true, cmd) => self.apply(id, cmd),
        };
        if let Err(refusal) = result {
            self.reply(id, &refusal.into_msg());
        }
        self.settle();
    }

    fn apply(&mut self, id: SessionId, cmd: Command) -> Result<(), Refusal> {
        match cmd {
            Command::Hello { .. } => Ok(()), // answered in `handle`
            Command::ListRooms => {
                let rooms = self.room_list_for(id);
                self.reply(
                    id,
                    &ServerMsg::Rooms {
                        rooms,
                        created: None,
                    },
                );
                Ok(())
            }
            Command::CreateRoom { room, private } => self.create_room(id, room, private),
            Command::Join { room, after } => self.join(id, room, after),
            Command::Leave(room) => self.leave(id, room),
            Command::Send {
                room,
                body,
                client_id,
            } => self.post(id, room, body, client_id),
            Command::FetchHistory {
                room,
                before,
                limit,
            } => self.fetch_history(id, room, before, limit),
            Command::Typing(room) => self.typing(id, room),
            Command::OpenDirect(user) => self.open_direct(id, user),
            Command::Invite { room, user } => self.invite(id, room, user),
            Command::Remove { room, user } => self.remove(id, room, user),
            Command::RenameRoom { room, title } => self.rename(id, room, title),
            Command::DeleteRoom(room) => self.delete(id, room),
            Command::Ping => {
                self.reply(id, &ServerMsg::Pong);
                Ok(())
            }
        }
    }

    /// Answers a frame that could not be decoded or validated.
    pub fn reject(&mut self, id: SessionId, reply: &ServerMsg) {
        self.reply(id, reply);
        self.settle();
    }

    /// The writer committed (or failed) a batch: acknowledge and deliver, in order.
    pub fn committed(&mut self, outcomes: Vec<Outcome<Option<Waiter>>>) {
        for Outcome { tag, write, result } in outcomes {
            match (result, tag) {
                (Ok(Written::Appended(Appended::Stored(msg))), waiter) => {
                    self.ack(waiter, &msg);
                    self.deliver_live(msg);
                }
                (Ok(Written::Appended(Appended::Duplicate(msg))), waiter) => {
                    // Stored before (the client re-sent after losing our ack): confirm
                    // it again, deliver nothing twice.
                    self.ack(waiter, &msg);
                }
                (Ok(Written::Done), _) => {}
                (Err(e), Some(waiter)) => {
                    let room = match &write {
                        Write::Append(m) => Some(m.room.clone()),
                        _ => None,
                    };
                    self.reply(
                        waiter.session,
                        &ServerMsg::Error {
                            code: ErrorCode::Unavailable,
                            message: format!("the message could not be stored ({e}); retry"),
                            room,
                            client_id: Some(waiter.client_id),
                            retry_after_ms: None,
                        },
                    );
                }
                (Err(e), None) => tracing::error!(?write, "store write failed: {e}"),
            }
        }
        self.settle();
    }

    /// Stops the hub's use of storage: pending writes are flushed by the writer, which
    /// then ends.
    pub fn stop(&mut self) {
        self.writer = None;
    }

    fn ack(&mut self, waiter: Option<Waiter>, msg: &ChatMessage) {
        if let Some(Waiter { session, client_id }) = waiter {
            self.reply(
                session,
                &ServerMsg::Ack {
                    room: msg.room.clone(),
                    client_id,
                    id: msg.id,
                    seq: msg.seq,
                    ts: msg.ts,
                },
            );
        }
    }

    fn deliver_live(&mut self, msg: ChatMessage) {
        // A room deleted while its last messages were being committed: nobody is left
        // to deliver them to, and they are deleted with it.
        let Some(room) = self.rooms.get_mut(&msg.room) else {
            return;
        };
        room.last_seq = room.last_seq.max(msg.seq);
        let frame = encode(&ServerMsg::Message(msg));
        let online = room.online.iter().copied();
        deliver(&self.sessions, &mut self.overflowed, online, &frame);
    }

    fn submit(&self, write: Write, waiter: Option<Waiter>) -> Result<(), Refusal> {
        let busy = || {
            Refusal::new(
                ErrorCode::Unavailable,
                "the server cannot store this right now; retry shortly",
            )
        };
        self.writer
            .as_ref()
            .ok_or_else(busy)?
            .try_submit(write, waiter)
            .map_err(|_| busy())
    }

    /// A write whose loss would not lose a message (membership, room settings): logged
    /// rather than refused when the writer is saturated.
    fn submit_quietly(&self, write: Write) {
        if self.submit(write.clone(), None).is_err() {
            tracing::warn!(?write, "not stored: the store writer is busy");
        }
    }

    fn hello(&mut self, id: SessionId, name: Option<DisplayName>) -> Result<(), Refusal> {
        let Some(session) = self.sessions.get(&id) else {
            return Ok(());
        };
        let person = match (&session.identity, name) {
            (
                Identity::User {
                    username,
                    display_name,
                    ..
                },
                _,
            ) => Person {
                user: username.clone(),
                name: display_name.clone(),
                guest: false,
            },
            (Identity::Guest, None) => {
                return Err(Refusal::new(
                    ErrorCode::InvalidName,
                    "a guest says hello with the display name they want",
                ));
            }
            (Identity::Guest, Some(name)) => {
                let handle = format!("{GUEST_PREFIX}{}", name.key());
                if self.guests.contains_key(&handle) {
                    return Err(Refusal::new(
                        ErrorCode::NameTaken,
                        format!("a guest online is already called {name}"),
                    ));
                }
                self.guests.insert(handle.clone(), id);
                Person {
                    user: handle,
                    name: name.into_string(),
                    guest: true,
                }
            }
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            session.person = Some(person.clone());
        }
        let welcome = ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            you: person,
            rooms: self.room_list_for(id),
        };
        self.reply(id, &welcome);
        Ok(())
    }

    /// The room named `room`, if the session may know it exists.
    fn visible_room(&self, id: SessionId, room: &RoomName) -> Result<&Room, Refusal> {
        let handle = self.sessions.get(&id).and_then(Session::handle);
        match (self.rooms.get(room.as_str()), handle) {
            (Some(r), Some(handle)) if r.visible_to(handle) => Ok(r),
            _ => Err(unknown_room(room)),
        }
    }

    fn join(&mut self, id: SessionId, room: RoomName, after: Option<u64>) -> Result<(), Refusal> {
        self.visible_room(id, &room)?;
        let in_rooms = self.sessions.get(&id).map_or(0, |s| s.rooms.len());
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return Err(unknown_room(&room));
        };
        if !r.online.contains(&id) && in_rooms >= self.settings.max_rooms_per_session {
            return Err(Refusal::about(
                &room,
                ErrorCode::TooManyRooms,
                format!(
                    "one connection may be in at most {} rooms: leave one first",
                    self.settings.max_rooms_per_session
                ),
            ));
        }
        // Replay pages take a session off the live set (silently: the person is still
        // there) until the replay has caught up, so nothing arrives both replayed and
        // live. Within one call nothing else happens: the hub is single-threaded.
        let was_online = r.online.contains(&id);
        let last_seq = r.last_seq;
        let store_failed = |e: StoreError| {
            tracing::error!("reading history of #{room}: {e}");
            Refusal::about(
                &room,
                ErrorCode::Unavailable,
                "history is unavailable right now; retry".to_owned(),
            )
        };
        let history = match after {
            None => self
                .store
                .before(room.as_str(), last_seq + 1, self.settings.history_on_join)
                .map_err(store_failed)?,
            Some(after) if after >= last_seq => Vec::new(),
            Some(after) => {
                let page = self
                    .store
                    .after(room.as_str(), after, last_seq, limits::REPLAY_PAGE)
                    .map_err(store_failed)?;
                if page.last().is_some_and(|m| m.seq < last_seq) {
                    if was_online {
                        self.go_offline_quietly(id, room.as_str());
                    }
                    self.reply(
                        id,
                        &ServerMsg::Replay {
                            room: room.to_string(),
                            messages: page,
                        },
                    );
                    return Ok(());
                }
                page
            }
        };
        let new_member = !was_online && self.go_live(id, &room);
        let r = &self.rooms[room.as_str()];
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            members: r.members.iter().map(|m| self.person(m)).collect(),
            online: r.present.keys().cloned().collect(),
            history,
        };
        self.reply(id, &joined);
        if new_member {
            // Their other tabs and devices follow the rooms they belong to: the room
            // list tells them this one is theirs now.
            let user = self.handle_of(id);
            self.send_room_lists(|h| h == user, None);
        }
        Ok(())
    }

    /// Puts a session in a room's live set, making its user a member of a public room
    /// and announcing them if this is their first session there. Returns whether an
    /// account became a member just now.
    fn go_live(&mut self, id: SessionId, room: &RoomName) -> bool {
        let Some(person) = self.sessions.get(&id).and_then(|s| s.person.clone()) else {
            return false;
        };
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return false;
        };
        r.online.insert(id);
        let sessions_here = r.present.entry(person.user.clone()).or_insert(0);
        *sessions_here += 1;
        let arrived = *sessions_here == 1;
        let new_member = r.members.insert(person.user.clone());
        let stored_member = new_member && !person.guest;
        if let Some(session) = self.sessions.get_mut(&id)
            && !session.rooms.iter().any(|r| r == room.as_str())
        {
            session.rooms.push(room.to_string());
        }
        // Guests belong to a room only while they are there: storing them would keep
        // every name a guest ever used in the room's members for good.
        if stored_member {
            self.submit_quietly(Write::AddMember {
                room: room.to_string(),
                name: person.user.clone(),
            });
        }
        if arrived {
            let presence = ServerMsg::Presence {
                room: room.to_string(),
                who: person,
                event: PresenceEvent::Joined,
            };
            self.tell_others(room.as_str(), id, &presence);
        }
        stored_member
    }

    /// Sends `msg` to everyone live in `room` but session `except`.
    fn tell_others(&mut self, room: &str, except: SessionId, msg: &ServerMsg) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(msg);
        let others = r.online.iter().copied().filter(|m| *m != except);
        deliver(&self.sessions, &mut self.overflowed, others, &frame);
    }

    /// Takes a session out of a room's live set. Returns whether that was its user's
    /// last session there, so the caller announces the departure.
    fn go_offline_quietly(&mut self, id: SessionId, room: &str) -> bool {
        let handle = self
            .sessions
            .get(&id)
            .and_then(Session::handle)
            .map(str::to_owned);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.retain(|r| r != room);
            session.last_typing.remove(room);
        }
        let (Some(r), Some(handle)) = (self.rooms.get_mut(room), handle) else {
            return false;
        };
        if !r.online.remove(&id) {
            return false;
        }
        match r.present.get_mut(&handle) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                r.present.remove(&handle);
                true
            }
            None => false,
        }
    }

    /// Takes a session out of a room's live set and tells the others if its user is
    /// gone from the room.
    fn go_offline(&mut self, id: SessionId, room: &str) {
        let Some(person) = self.sessions.get(&id).and_then(|s| s.person.clone()) else {
            return;
        };
        if self.go_offline_quietly(id, room) {
            self.announce(room, person, PresenceEvent::Left);
        }
    }

    fn announce(&mut self, room: &str, who: Person, event: PresenceEvent) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(&ServerMsg::Presence {
            room: room.to_owned(),
            who,
            event,
        });
        let online = r.online.iter().copied();
        deliver(&self.sessions, &mut self.overflowed, online, &frame);
    }

    fn leave(&mut self, id: SessionId, room: RoomName) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let handle = self.handle_of(id);
        if self.rooms[room.as_str()].kind == RoomKind::Direct {
            // A conversation cannot be left, only closed on this device.
            self.go_offline(id, room.as_str());
            self.reply(
                id,
                &ServerMsg::Left {
                    room: room.into_string(),
                },
            );
            return Ok(());
        }
        let successor = self.hand_over(room.as_str(), &handle);
        self.end_membership(room.as_str(), &handle);
        if successor.is_some()
            && let Some(r) = self.rooms.get(room.as_str())
        {
            // Everyone left in the room sees who is in charge now.
            let members = r.members.clone();
            self.send_room_lists(|h| members.contains(h), None);
        }
        Ok(())
    }

    /// When the owner of a private room leaves it while others remain, ownership passes
    /// to one of them (someone online if anyone is, else the first by username): nobody
    /// else could ever manage the room again, as only members may see it. Returns the
    /// new owner.
    fn hand_over(&mut self, room: &str, leaving: &str) -> Option<String> {
        let r = self.rooms.get_mut(room)?;
        if r.kind != RoomKind::Private || r.owner.as_deref() != Some(leaving) {
            return None;
        }
        let others = || r.members.iter().filter(|m| *m != leaving);
        let successor = others()
            .find(|m| r.present.contains_key(*m))
            .or_else(|| others().next())?
            .clone();
        r.owner = Some(successor.clone());
        self.submit_quietly(Write::SetOwner {
            room: room.to_owned(),
            owner: successor.clone(),
        });
        Some(successor)
    }

    /// Removes `handle` from a room: every one of their sessions in it is told it
    /// left, the rest of the room sees them go, and a private room drops off their
    /// room list.
    fn end_membership(&mut self, room: &str, handle: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.members.remove(handle) {
            self.submit_quietly(Write::RemoveMember {
                room: room.to_owned(),
                name: handle.to_owned(),
            });
        }
        let theirs: Vec<SessionId> = self.rooms[room]
            .online
            .iter()
            .copied()
            .filter(|s| self.sessions.get(s).and_then(Session::handle) == Some(handle))
            .collect();
        for session in theirs {
            self.go_offline(session, room);
            self.reply(
                session,
                &ServerMsg::Left {
                    room: room.to_owned(),
                },
            );
        }
        // A private room drops off their list; a public one stays, no longer theirs.
        self.send_room_lists(|h| h == handle, None);
        if self.rooms[room].kind == RoomKind::Private {
            self.send_members(room);
        }
    }

    fn post(
        &mut self,
        id: SessionId,
        room: RoomName,
        body: Body,
        client_id: ClientId,
    ) -> Result<(), Refusal> {
        self.check_member(id, &room)
            .map_err(|r| r.for_send(&client_id))?;
        let Some(person) = self.sessions.get(&id).and_then(|s| s.person.as_ref()) else {
            return Ok(());
        };
        let msg = NewMessage {
            room: room.to_string(),
            from: person.user.clone(),
            name: person.name.clone(),
            body: body.into_string(),
            client_id: client_id.to_string(),
            ts: now_ms(),
        };
        let waiter = Waiter {
            session: id,
            client_id: client_id.to_string(),
        };
        self.submit(Write::Append(msg), Some(waiter))
            .map_err(|r| r.for_send(&client_id))?;
        if let Some(session) = self.sessions.get_mut(&id) {
            // The message ends the sender's typing indicator on every client; let the
            // next keystroke announce typing again straight away.
            session.last_typing.remove(room.as_str());
        }
        Ok(())
    }

    fn fetch_history(
        &mut self,
        id: SessionId,
        room: RoomName,
        before: u64,
        limit: usize,
    ) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let last_seq = self.rooms[room.as_str()].last_seq;
        let messages = self
            .store
            .before(room.as_str(), before.min(last_seq + 1), limit)
            .map_err(|e| {
                tracing::error!("reading history of #{room}: {e}");
                Refusal::about(
                    &room,
                    ErrorCode::Unavailable,
                    "history is unavailable right now; retry".to_owned(),
                )
            })?;
        let more = messages.first().is_some_and(|m| m.seq > 1);
        self.reply(
            id,
            &ServerMsg::History {
                room: room.into_string(),
                messages,
                more,
            },
        );
        Ok(())
    }

    fn typing(&mut self, id: SessionId, room: RoomName) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let now = Instant::now();
        // Clients throttle themselves; allow some slack for timer jitter, drop the rest.
        let min_gap = Duration::from_millis(limits::TYPING_THROTTLE_MS * 3 / 4);
        let Some(session) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        if matches!(session.last_typing.get(room.as_str()), Some(last) if now.duration_since(*last) < min_gap)
        {
            return Ok(());
        }
        let (window_start, forwarded) = &mut session.typing_window;
        if now.duration_since(*window_start) >= Duration::from_secs(1) {
            *window_start = now;
            *forwarded = 0;
        }
        if *forwarded >= self.settings.max_typing_per_sec {
            return Ok(());
        }
        *forwarded += 1;
        session.last_typing.insert(room.to_string(), now);
        let Some(who) = session.person.clone() else {
            return Ok(());
        };
        let typing = ServerMsg::Typing {
            room: room.to_string(),
            who,
        };
        self.tell_others(room.as_str(), id, &typing);
        Ok(())
    }

    /// Whether the session is in the room's live set. A room it may not know of is
    /// unknown, not merely not joined.
    fn check_member(&self, id: SessionId, room: &RoomName) -> Result<(), Refusal> {
        match self.rooms.get(room.as_str()) {
            Some(r) if r.online.contains(&id) => Ok(()),
            Some(_) => self
                .visible_room(id, room)
                .map(|_| ())
                .and(Err(not_in_room(room))),
            None => Err(unknown_room(room)),
        }
    }

    /// Removes a session everywhere, telling each of its rooms. Membership stays: the
    /// person is offline, not gone.
    fn remove_session(&mut self, id: SessionId) {
        let rooms: Vec<String> = match self.sessions.get(&id) {
            Some(session) => session.rooms.clone(),
            None => return,
        };
        for room in &rooms {
            self.go_offline(id, room);
        }
        if let Some(session) = self.sessions.remove(&id)
            && session.is_guest()
            && let Some(handle) = session.handle()
        {
            self.guests.remove(handle);
            for room in &rooms {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.members.remove(handle);
                }
            }
        }
    }

    /// Disconnects every session that could not take a frame during the last operation.
    /// Removing one broadcasts its departure, which may overflow another: loop until
    /// nothing is left.
    fn settle(&mut self) {
        while let Some(id) = self.overflowed.pop() {
            if let Some(session) = self.sessions.get(&id) {
                tracing::info!(
                    session = id,
                    "disconnecting slow consumer: outgoing queue full"
                );
                session
                    .outbox
                    .close(close::SLOW_CONSUMER, "too slow: outgoing queue full");
                self.remove_session(id);
            }
        }
    }

    fn reply(&mut self, id: SessionId, msg: &ServerMsg) {
        deliver(
            &self.sessions,
            &mut self.overflowed,
            std::iter::once(id),
            &encode(msg),
        );
    }

    fn handle_of(&self, id: SessionId) -> String {
        self.sessions
            .get(&id)
            .and_then(Session::handle)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Whether an account has this username. Asks the store before saying no: accounts
    /// can be made by the admin command, outside this process.
    fn known_user(&mut self, username: &str) -> bool {
        if self.directory.contains_key(username) {
            return true;
        }
        match self.store.person(username) {
            Ok(Some(p)) => {
                self.directory.insert(p.username, p.display_name);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("cannot read accounts: {e}");
                false
            }
        }
    }

    /// How clients should show the person with this handle.
    fn person(&self, handle: &str) -> Person {
        if let Some(key) = handle.strip_prefix(GUEST_PREFIX) {
            // An online guest's name as they typed it; an offline one's as stored.
            let name = self
                .guests
                .get(handle)
                .and_then(|id| self.sessions.get(id))
                .and_then(|s| s.person.as_ref())
                .map_or_else(|| key.to_owned(), |p| p.name.clone());
            return Person {
                user: handle.to_owned(),
                name,
                guest: true,
            };
        }
        Person {
            user: handle.to_owned(),
            name: self
                .directory
                .get(handle)
                .cloned()
                .unwrap_or_else(|| handle.to_owned()),
            guest: false,
        }
    }
}

/// Why the hub refused a request; becomes the requester's error frame.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
    room: Option<String>,
    client_id: Option<String>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
            client_id: None,
        }
    }

    fn about(room: &RoomName, code: ErrorCode, message: String) -> Self {
        Self {
            room: Some(room.to_string()),
            ..Self::new(code, message)
        }
    }

    /// Names the refused send, so the client can mark that message as failed.
    fn for_send(self, client_id: &ClientId) -> Self {
        Self {
            client_id: Some(client_id.to_string()),
            ..self
        }
    }

    fn into_msg(self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message,
            room: self.room,
            client_id: self.client_id,
            retry_after_ms: None,
        }
    }
}

fn unknown_room(room: &RoomName) -> Refusal {
    Refusal::about(
        room,
        ErrorCode::UnknownRoom,
        format!("there is no room #{room}"),
    )
}

fn not_in_room(room: &RoomName) -> Refusal {
    Refusal::about(room, ErrorCode::NotInRoom, format!("join #{room} first"))
}

/// Serializes once; every recipient shares the same bytes.
fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// Queues `frame` for each recipient, noting those whose queue is full.
fn deliver(
    sessions: &HashMap<SessionId, Session>,
    overflowed: &mut Vec<SessionId>,
    recipients: impl Iterator<Item = SessionId>,
    frame: &Utf8Bytes,
) {
    for id in recipients {
        if let Some(session) = sessions.get(&id)
            && session.outbox.push(frame.clone()).is_err()
        {
            overflowed.push(id);
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, as timestamps are stored and
/// sent (`ts`). A clock before 1970 reads as 0 rather than failing.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

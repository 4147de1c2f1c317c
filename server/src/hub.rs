//! The hub: who is online, which rooms exist, who is in each, and where every message
//! goes.
//!
//! [`Hub`] is a state machine without network I/O: it takes validated [`Command`]s,
//! reads history from the [`Store`] when someone joins or scrolls back, hands every
//! write to the store's writer thread, and pushes encoded frames into each session's
//! [`Outbox`]. A message is acknowledged and delivered only when the writer reports it
//! committed ([`Hub::committed`]), so nobody ever sees a message that could still be
//! lost. [`HubHandle`] runs one `Hub` on a thread of its own: a single owner means no
//! locks on the hot path and one order of events that every client observes alike.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use confab_shared::{
    Body, ChatMessage, ClientId, DisplayName, ErrorCode, PROTOCOL_VERSION, PresenceEvent, RoomInfo,
    RoomName, ServerMsg, close, limits,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{
    outbox::Outbox,
    store::{
        Appended, NewMessage, Store, StoreError, Write, Written,
        writer::{Outcome, WriterHandle},
    },
};

/// Identifies one connection for its whole life; never reused.
pub type SessionId = u64;

/// A validated client request (see [`crate::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello {
        name: DisplayName,
    },
    ListRooms,
    CreateRoom(RoomName),
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
    /// Most rooms the hub holds.
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
    /// `None` until a successful hello.
    name: Option<DisplayName>,
    /// Rooms whose live traffic this session receives.
    rooms: BTreeSet<String>,
    /// When this session's last typing event per room was forwarded.
    last_typing: HashMap<String, Instant>,
    /// Start of the current one-second typing window and the events forwarded in it.
    typing_window: (Instant, u32),
}

#[derive(Debug, Default)]
struct Room {
    /// Everyone who joined and has not left, by display name (stored).
    members: BTreeSet<String>,
    /// Sessions receiving the room's live traffic.
    online: BTreeSet<SessionId>,
    /// Highest sequence number delivered live. Replays stop here, live traffic starts
    /// after it: that is what makes resuming gap- and duplicate-free.
    last_seq: u64,
}

/// The chat state machine. See the module documentation.
pub struct Hub {
    settings: HubSettings,
    sessions: HashMap<SessionId, Session>,
    /// Lower-cased display name → the session using it.
    names: HashMap<String, SessionId>,
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
    /// A hub over the rooms and members in `store`.
    pub fn new(
        settings: HubSettings,
        mut store: Box<dyn Store>,
        writer: Writer,
    ) -> Result<Self, StoreError> {
        let rooms = store
            .rooms()?
            .into_iter()
            .map(|r| {
                (
                    r.name,
                    Room {
                        members: r.members.into_iter().collect(),
                        online: BTreeSet::new(),
                        last_seq: r.last_seq,
                    },
                )
            })
            .collect();
        Ok(Self {
            settings,
            sessions: HashMap::new(),
            names: HashMap::new(),
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

    /// A new connection. It may only say hello until it has a name.
    pub fn connect(&mut self, id: SessionId, outbox: Outbox) {
        if self.shutting_down {
            outbox.close(close::GOING_AWAY, "server shutting down");
            return;
        }
        self.sessions.insert(
            id,
            Session {
                outbox,
                name: None,
                rooms: BTreeSet::new(),
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

    /// Applies one client request.
    pub fn handle(&mut self, id: SessionId, cmd: Command) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let result = match (&session.name, cmd) {
            (None, Command::Hello { name }) => self.hello(id, name),
            (Some(_), Command::Hello { .. }) => Err(Refusal::new(
                ErrorCode::AlreadyIdentified,
                "this session already has a name",
            )),
            (None, _) => Err(Refusal::new(
                ErrorCode::HelloRequired,
                "say hello with a display name first",
            )),
            (Some(_), Command::ListRooms) => {
                let rooms = self.room_list();
                self.reply(id, &ServerMsg::Rooms { rooms });
                Ok(())
            }
            (Some(_), Command::CreateRoom(room)) => self.create_room(room),
            (Some(_), Command::Join { room, after }) => self.join(id, room, after),
            (Some(_), Command::Leave(room)) => self.leave(id, room),
            (
                Some(_),
                Command::Send {
                    room,
                    body,
                    client_id,
                },
            ) => self.post(id, room, body, client_id),
            (
                Some(_),
                Command::FetchHistory {
                    room,
                    before,
                    limit,
                },
            ) => self.fetch_history(id, room, before, limit),
            (Some(_), Command::Typing(room)) => self.typing(id, room),
        };
        if let Err(refusal) = result {
            self.reply(id, &refusal.into_msg());
        }
        self.settle();
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
        let Some(room) = self.rooms.get_mut(&msg.room) else {
            return;
        };
        debug_assert_eq!(msg.seq, room.last_seq + 1, "commits arrive in order");
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

    fn hello(&mut self, id: SessionId, name: DisplayName) -> Result<(), Refusal> {
        let key = name.key();
        if self.names.contains_key(&key) {
            return Err(Refusal::new(
                ErrorCode::NameTaken,
                format!("someone online is already called {name}"),
            ));
        }
        self.names.insert(key, id);
        let welcome = ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            rooms: self.room_list(),
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            session.name = Some(name);
        }
        self.reply(id, &welcome);
        Ok(())
    }

    fn create_room(&mut self, room: RoomName) -> Result<(), Refusal> {
        if self.rooms.contains_key(room.as_str()) {
            return Err(Refusal::about(
                &room,
                ErrorCode::RoomExists,
                format!("#{room} already exists"),
            ));
        }
        if self.rooms.len() >= self.settings.max_rooms {
            return Err(Refusal::about(
                &room,
                ErrorCode::TooManyRooms,
                format!(
                    "this server holds at most {} rooms",
                    self.settings.max_rooms
                ),
            ));
        }
        // Queued before any message to the room, so the writer stores it first.
        self.submit(
            Write::CreateRoom {
                room: room.to_string(),
                ts: now_ms(),
            },
            None,
        )?;
        self.rooms.insert(room.into_string(), Room::default());
        let frame = encode(&ServerMsg::Rooms {
            rooms: self.room_list(),
        });
        let everyone = self
            .sessions
            .iter()
            .filter(|(_, s)| s.name.is_some())
            .map(|(id, _)| *id);
        deliver(&self.sessions, &mut self.overflowed, everyone, &frame);
        Ok(())
    }

    fn join(&mut self, id: SessionId, room: RoomName, after: Option<u64>) -> Result<(), Refusal> {
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
        // Re-joining is how a client resumes: it leaves the live set until its replay
        // has caught up, so nothing arrives both replayed and live.
        let was_online = r.online.remove(&id);
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
                    if let Some(session) = self.sessions.get_mut(&id) {
                        session.rooms.remove(room.as_str());
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
        self.go_live(id, &room, was_online);
        let r = &self.rooms[room.as_str()];
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            members: r.members.iter().cloned().collect(),
            online: self.online_names(room.as_str()),
            history,
        };
        self.reply(id, &joined);
        Ok(())
    }

    fn go_live(&mut self, id: SessionId, room: &RoomName, was_online: bool) {
        let name = self.name_of(id);
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return;
        };
        r.online.insert(id);
        if r.members.insert(name.clone()) {
            let write = Write::AddMember {
                room: room.to_string(),
                name: name.clone(),
            };
            if self.submit(write, None).is_err() {
                tracing::warn!(%room, %name, "membership not stored: writer busy");
            }
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.insert(room.to_string());
        }
        if !was_online {
            let frame = encode(&ServerMsg::Presence {
                room: room.to_string(),
                name,
                event: PresenceEvent::Joined,
            });
            let others = self.rooms[room.as_str()]
                .online
                .iter()
                .copied()
                .filter(|m| *m != id);
            deliver(&self.sessions, &mut self.overflowed, others, &frame);
        }
    }

    fn leave(&mut self, id: SessionId, room: RoomName) -> Result<(), Refusal> {
        let name = self.name_of(id);
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return Err(unknown_room(&room));
        };
        if !r.online.remove(&id) {
            return Err(not_in_room(&room));
        }
        if r.members.remove(&name) {
            let write = Write::RemoveMember {
                room: room.to_string(),
                name,
            };
            if self.submit(write, None).is_err() {
                tracing::warn!(%room, "membership removal not stored: writer busy");
            }
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            session.rooms.remove(room.as_str());
            session.last_typing.remove(room.as_str());
        }
        self.announce_departure(id, room.as_str());
        self.reply(
            id,
            &ServerMsg::Left {
                room: room.into_string(),
            },
        );
        Ok(())
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
        let msg = NewMessage {
            room: room.to_string(),
            from: self.name_of(id),
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
        let frame = encode(&ServerMsg::Typing {
            room: room.to_string(),
            name: self.name_of(id),
        });
        let others = self.rooms[room.as_str()]
            .online
            .iter()
            .copied()
            .filter(|m| *m != id);
        deliver(&self.sessions, &mut self.overflowed, others, &frame);
        Ok(())
    }

    fn check_member(&self, id: SessionId, room: &RoomName) -> Result<(), Refusal> {
        match self.rooms.get(room.as_str()) {
            None => Err(unknown_room(room)),
            Some(r) if !r.online.contains(&id) => Err(not_in_room(room)),
            Some(_) => Ok(()),
        }
    }

    /// Removes a session everywhere, telling each of its rooms. Membership stays: the
    /// person is offline, not gone.
    fn remove_session(&mut self, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        if let Some(name) = &session.name {
            self.names.remove(&name.key());
        }
        for room in &session.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.online.remove(&id);
            }
            if let Some(name) = &session.name {
                let frame = encode(&ServerMsg::Presence {
                    room: room.clone(),
                    name: name.to_string(),
                    event: PresenceEvent::Left,
                });
                let online = self.rooms[room.as_str()].online.iter().copied();
                deliver(&self.sessions, &mut self.overflowed, online, &frame);
            }
        }
    }

    fn announce_departure(&mut self, id: SessionId, room: &str) {
        let frame = encode(&ServerMsg::Presence {
            room: room.to_owned(),
            name: self.name_of(id),
            event: PresenceEvent::Left,
        });
        let online = self.rooms[room].online.iter().copied();
        deliver(&self.sessions, &mut self.overflowed, online, &frame);
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

    fn name_of(&self, id: SessionId) -> String {
        self.sessions
            .get(&id)
            .and_then(|s| s.name.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn online_names(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = self.rooms[room]
            .online
            .iter()
            .map(|id| self.name_of(*id))
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        names
    }

    fn room_list(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .map(|(name, room)| RoomInfo {
                name: name.clone(),
                online: u32::try_from(room.online.len()).unwrap_or(u32::MAX),
            })
            .collect()
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

/// What connections (and the store writer) tell the hub thread.
#[derive(Debug)]
pub enum Event {
    Connect {
        id: SessionId,
        outbox: Outbox,
    },
    Command {
        id: SessionId,
        cmd: Command,
    },
    /// A frame that did not make a valid command, and the error frame it earns.
    Reject {
        id: SessionId,
        reply: ServerMsg,
    },
    Disconnect {
        id: SessionId,
    },
    /// Close a connection with this code and reason, after what is already queued.
    Kick {
        id: SessionId,
        code: u16,
        reason: &'static str,
    },
    /// A batch of writes is committed (or failed).
    Committed(Vec<Outcome<Option<Waiter>>>),
    /// Close every connection with 1001.
    Shutdown,
    /// Let go of storage and end the hub thread.
    Stop,
}

/// A cloneable way to reach the hub thread.
#[derive(Debug, Clone)]
pub struct HubHandle {
    events: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
}

/// How many events may wait for the hub. Connections wait when it is full, which slows
/// every sender down evenly instead of letting memory grow.
pub const EVENT_QUEUE: usize = 4096;

impl HubHandle {
    /// A handle and the receiving end for [`HubHandle::spawn`]. Split in two so the
    /// store writer can be given a handle before the hub exists.
    pub fn channel() -> (HubHandle, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (
            HubHandle {
                events: tx,
                ids: Arc::new(AtomicU64::new(1)),
            },
            rx,
        )
    }

    /// Runs `hub` on a thread of its own until [`Event::Stop`] (or every handle is
    /// dropped). A thread, not a task, because the hub reads history from storage
    /// synchronously.
    pub fn spawn(hub: Hub, events: mpsc::Receiver<Event>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("confab-hub".into())
            .spawn(move || run(hub, events))
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Delivers an event; `false` if the hub has stopped.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Tells the hub a session is gone, from code that cannot wait (a destructor): now
    /// if the queue has room, else from a task.
    pub fn leave(&self, id: SessionId) {
        if let Err(mpsc::error::TrySendError::Full(event)) =
            self.events.try_send(Event::Disconnect { id })
        {
            let events = self.events.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = events.send(event).await;
                });
            }
        }
    }

    /// Delivers an event from a thread outside the async runtime (the store writer).
    pub fn blocking_send(&self, event: Event) -> bool {
        self.events.blocking_send(event).is_ok()
    }
}

fn run(mut hub: Hub, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Connect { id, outbox } => hub.connect(id, outbox),
            Event::Command { id, cmd } => hub.handle(id, cmd),
            Event::Reject { id, reply } => hub.reject(id, &reply),
            Event::Disconnect { id } => hub.disconnect(id),
            Event::Kick { id, code, reason } => hub.kick(id, code, reason),
            Event::Committed(outcomes) => hub.committed(outcomes),
            Event::Shutdown => hub.shutdown(),
            Event::Stop => {
                hub.stop();
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::mpsc as std_mpsc, time::Duration};

    use super::*;
    use crate::{
        outbox::OutboxRx,
        store::{Durability, SqliteStore, writer},
    };

    type Reports = std_mpsc::Receiver<Vec<Outcome<Option<Waiter>>>>;

    /// A hub over a real store in a temporary directory, with the writer's reports
    /// applied by hand so each test decides when commits land.
    struct Fixture {
        hub: Hub,
        reports: Reports,
        writer: Writer,
        dir: tempfile::TempDir,
    }

    const BARRIER: SessionId = SessionId::MAX;

    impl Fixture {
        fn new() -> Self {
            Self::with(
                HubSettings::default(),
                tempfile::tempdir().expect("tempdir"),
            )
        }

        fn with(settings: HubSettings, dir: tempfile::TempDir) -> Self {
            let open = |d: &Path| SqliteStore::open(d, Durability::Process).expect("store");
            let (tx, reports) = std_mpsc::channel();
            let (writer, _thread) = writer::spawn(open(dir.path()), 1024, move |o| {
                let _ = tx.send(o);
            })
            .expect("writer");
            let hub = Hub::new(settings, Box::new(open(dir.path())), writer.clone()).expect("hub");
            Self {
                hub,
                reports,
                writer,
                dir,
            }
        }

        /// A new hub over the same data directory, as after a restart.
        fn restart(self) -> Self {
            let Fixture { hub, dir, .. } = self;
            drop(hub);
            Self::with(HubSettings::default(), dir)
        }

        /// Applies every commit of what was submitted so far.
        fn flush(&mut self) {
            let barrier = Some(Waiter {
                session: BARRIER,
                client_id: "barrier".into(),
            });
            let noop = Write::CreateRoom {
                room: DEFAULT_ROOM_NAME.into(),
                ts: 0,
            };
            self.writer.try_submit(noop, barrier).expect("writer queue");
            loop {
                let batch = self
                    .reports
                    .recv_timeout(Duration::from_secs(10))
                    .expect("writer reports");
                let (mine, rest): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .partition(|o| o.tag.as_ref().is_some_and(|w| w.session == BARRIER));
                self.hub.committed(rest);
                if !mine.is_empty() {
                    return;
                }
            }
        }

        fn connect(&mut self, id: SessionId, capacity: usize) -> Client {
            let (outbox, rx) = Outbox::new(capacity);
            self.hub.connect(id, outbox);
            Client { id, rx }
        }

        /// Connects, says hello and joins `general`; returns the client with its queue
        /// empty.
        fn member(&mut self, id: SessionId, name: &str) -> Client {
            // Roomy enough for the tests that send a few thousand messages unread.
            let mut c = self.connect(id, 8192);
            self.hub.handle(id, hello(name));
            self.hub.handle(id, join("general", None));
            c.drain();
            c
        }

        /// Sends and commits.
        fn say(&mut self, c: &Client, room_name: &str, body: &str, client_id: &str) {
            self.hub.handle(c.id, send(room_name, body, client_id));
            self.flush();
        }
    }

    const DEFAULT_ROOM_NAME: &str = confab_shared::DEFAULT_ROOM;

    struct Client {
        id: SessionId,
        rx: OutboxRx,
    }

    impl Client {
        fn drain(&mut self) -> Vec<ServerMsg> {
            let mut out = Vec::new();
            while let Some(frame) = self.rx.try_recv() {
                out.push(serde_json::from_str(frame.as_str()).expect("server JSON"));
            }
            out
        }

        fn close_code(&self) -> Option<u16> {
            self.rx.close_frame().map(|f| u16::from(f.code))
        }
    }

    fn hello(name: &str) -> Command {
        Command::Hello {
            name: DisplayName::parse(name).expect("name"),
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("room")
    }

    fn join(name: &str, after: Option<u64>) -> Command {
        Command::Join {
            room: room(name),
            after,
        }
    }

    fn send(room_name: &str, body: &str, client_id: &str) -> Command {
        Command::Send {
            room: room(room_name),
            body: Body::parse(body).expect("body"),
            client_id: ClientId::parse(client_id).expect("client id"),
        }
    }

    fn error_code(msgs: &[ServerMsg]) -> Option<ErrorCode> {
        msgs.iter().find_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    fn bodies(msgs: &[ServerMsg]) -> Vec<&str> {
        msgs.iter()
            .filter_map(|m| match m {
                ServerMsg::Message(m) => Some(m.body.as_str()),
                _ => None,
            })
            .collect()
    }

    fn seqs(msgs: &[ChatMessage]) -> Vec<u64> {
        msgs.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn hello_then_welcome_lists_general() {
        let mut f = Fixture::new();
        let mut c = f.connect(1, 8);
        f.hub.handle(1, hello("Ada"));
        match c.drain().as_slice() {
            [ServerMsg::Welcome { name, rooms, .. }] => {
                assert_eq!(name, "Ada");
                assert_eq!(rooms[0].name, "general");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn everything_but_hello_needs_a_name_first() {
        let mut f = Fixture::new();
        let mut c = f.connect(1, 8);
        f.hub.handle(1, join("general", None));
        assert_eq!(error_code(&c.drain()), Some(ErrorCode::HelloRequired));
    }

    #[test]
    fn names_are_unique_case_insensitively_and_freed_on_disconnect() {
        let mut f = Fixture::new();
        let _ada = f.member(1, "Ada");
        let mut other = f.connect(2, 8);
        f.hub.handle(2, hello("ada"));
        assert_eq!(error_code(&other.drain()), Some(ErrorCode::NameTaken));
        f.hub.disconnect(1);
        f.hub.handle(2, hello("ada"));
        assert!(matches!(
            other.drain().as_slice(),
            [ServerMsg::Welcome { .. }]
        ));
        f.hub.handle(2, hello("bob"));
        assert_eq!(
            error_code(&other.drain()),
            Some(ErrorCode::AlreadyIdentified)
        );
    }

    #[test]
    fn a_message_is_acked_then_delivered_only_after_commit() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        ada.drain();
        f.hub.handle(1, send("general", "  hi bob ", "c1"));
        assert!(ada.drain().is_empty(), "nothing before the commit");
        assert!(bob.drain().is_empty(), "nothing before the commit");
        f.flush();
        match ada.drain().as_slice() {
            [
                ServerMsg::Ack {
                    client_id, seq, id, ..
                },
                ServerMsg::Message(m),
            ] => {
                assert_eq!((client_id.as_str(), *seq, *id), ("c1", 1, m.id));
                assert_eq!(
                    (m.seq, m.from.as_str(), m.body.as_str()),
                    (1, "ada", "hi bob")
                );
                assert!(m.ts > 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(bodies(&bob.drain()), ["hi bob"]);
    }

    #[test]
    fn a_resent_client_id_is_acked_again_but_stored_and_delivered_once() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        ada.drain();
        f.say(&ada, "general", "once", "c1");
        ada.drain();
        bob.drain();
        f.say(&ada, "general", "once", "c1");
        assert!(matches!(
            ada.drain().as_slice(),
            [ServerMsg::Ack { seq: 1, .. }]
        ));
        assert!(bob.drain().is_empty());
    }

    #[test]
    fn rooms_are_isolated() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        f.hub.handle(1, Command::CreateRoom(room("ops")));
        f.hub.handle(1, join("ops", None));
        ada.drain();
        bob.drain();
        f.say(&ada, "ops", "secret plans", "c1");
        assert_eq!(bodies(&ada.drain()), ["secret plans"]);
        assert!(bob.drain().is_empty());
        f.hub.handle(2, send("ops", "let me in", "c2"));
        let refused = bob.drain();
        assert!(matches!(
            refused.as_slice(),
            [ServerMsg::Error { code: ErrorCode::NotInRoom, client_id: Some(c), .. }] if c == "c2"
        ));
        f.hub.handle(2, send("nowhere", "hello?", "c3"));
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::UnknownRoom));
        f.hub.handle(
            2,
            Command::FetchHistory {
                room: room("ops"),
                before: 100,
                limit: 10,
            },
        );
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::NotInRoom));
    }

    #[test]
    fn creating_a_room_tells_everyone_and_refuses_duplicates() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        ada.drain();
        f.hub.handle(1, Command::CreateRoom(room("ops")));
        for c in [&mut ada, &mut bob] {
            match c.drain().as_slice() {
                [ServerMsg::Rooms { rooms }] => {
                    let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
                    assert_eq!(names, ["general", "ops"]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        f.hub.handle(2, Command::CreateRoom(room("ops")));
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::RoomExists));
    }

    #[test]
    fn room_cap_is_enforced() {
        let settings = HubSettings {
            max_rooms: 2,
            ..HubSettings::default()
        };
        let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
        let mut ada = f.member(1, "ada");
        f.hub.handle(1, Command::CreateRoom(room("one")));
        f.hub.handle(1, Command::CreateRoom(room("two")));
        assert_eq!(error_code(&ada.drain()), Some(ErrorCode::TooManyRooms));
    }

    #[test]
    fn a_connection_may_be_in_a_limited_number_of_rooms() {
        let settings = HubSettings {
            max_rooms_per_session: 2,
            ..HubSettings::default()
        };
        let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
        let mut ada = f.member(1, "ada");
        for r in ["one", "two"] {
            f.hub.handle(1, Command::CreateRoom(room(r)));
        }
        f.hub.handle(1, join("one", None));
        ada.drain();
        f.hub.handle(1, join("two", None));
        assert_eq!(error_code(&ada.drain()), Some(ErrorCode::TooManyRooms));
        // Re-joining a room it is in is not a new room.
        f.hub.handle(1, join("one", None));
        assert!(matches!(ada.drain().as_slice(), [ServerMsg::Joined { .. }]));
        f.hub.handle(1, Command::Leave(room("one")));
        f.hub.handle(1, join("two", None));
        assert!(matches!(ada.drain().last(), Some(ServerMsg::Joined { .. })));
    }

    #[test]
    fn presence_on_join_leave_and_disconnect() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.connect(2, 64);
        f.hub.handle(2, hello("bob"));
        f.hub.handle(2, join("general", None));
        let joined = bob.drain();
        assert!(matches!(
            joined.last(),
            Some(ServerMsg::Joined { online, members, .. })
                if online == &["ada", "bob"] && members == &["ada", "bob"]
        ));
        assert_eq!(
            ada.drain(),
            [ServerMsg::Presence {
                room: "general".into(),
                name: "bob".into(),
                event: PresenceEvent::Joined
            }]
        );
        f.hub.handle(2, Command::Leave(room("general")));
        assert_eq!(
            bob.drain(),
            [ServerMsg::Left {
                room: "general".into()
            }]
        );
        assert!(matches!(
            ada.drain().as_slice(),
            [ServerMsg::Presence {
                event: PresenceEvent::Left,
                ..
            }]
        ));
        f.hub.handle(2, join("general", None));
        ada.drain();
        f.hub.disconnect(2);
        assert!(matches!(
            ada.drain().as_slice(),
            [ServerMsg::Presence { name, event: PresenceEvent::Left, .. }] if name == "bob"
        ));
    }

    #[test]
    fn joining_twice_resends_state_without_a_second_arrival() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        ada.drain();
        f.hub.handle(2, join("general", None));
        assert!(matches!(bob.drain().as_slice(), [ServerMsg::Joined { .. }]));
        assert!(ada.drain().is_empty());
    }

    #[test]
    fn a_fresh_join_delivers_recent_history_oldest_first() {
        let mut f = Fixture::new();
        let ada = f.member(1, "ada");
        for i in 0..150 {
            f.hub
                .handle(1, send("general", &format!("m{i}"), &format!("c{i}")));
        }
        f.flush();
        let mut bob = f.member(2, "bob");
        f.hub.handle(2, join("general", None));
        match bob.drain().as_slice() {
            [ServerMsg::Joined { history, .. }] => {
                assert_eq!(history.len(), limits::HISTORY_ON_JOIN);
                assert_eq!(history[0].body, "m50");
                assert_eq!(history[99].body, "m149");
                assert_eq!(history[99].seq, 150);
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(ada);
    }

    #[test]
    fn resuming_replays_in_pages_then_goes_live_without_gap_or_duplicate() {
        let mut f = Fixture::new();
        let ada = f.member(1, "ada");
        let total = limits::REPLAY_PAGE as u64 * 2 + 10;
        for i in 1..=total {
            f.hub
                .handle(1, send("general", &format!("m{i}"), &format!("c{i}")));
        }
        f.flush();
        let mut bob = f.connect(2, 4096);
        f.hub.handle(2, hello("bob"));
        bob.drain();
        let mut got = Vec::new();
        let mut after = 5;
        loop {
            f.hub.handle(2, join("general", Some(after)));
            match bob.drain().as_slice() {
                [ServerMsg::Replay { messages, .. }] => {
                    // While replaying, live messages are not delivered to bob.
                    got.extend(seqs(messages));
                    after = messages.last().expect("non-empty page").seq;
                    if got.len() == limits::REPLAY_PAGE {
                        f.say(&ada, "general", "during replay", "live-1");
                    }
                }
                [ServerMsg::Joined { history, .. }] => {
                    got.extend(seqs(history));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected: Vec<u64> = (6..=total + 1).collect();
        assert_eq!(
            got, expected,
            "every message after 5 exactly once, in order"
        );
        f.say(&ada, "general", "after", "live-2");
        assert_eq!(bodies(&bob.drain()), ["after"]);
    }

    #[test]
    fn scrolling_back_pages_older_messages() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        for i in 1..=30 {
            f.hub
                .handle(1, send("general", &format!("m{i}"), &format!("c{i}")));
        }
        f.flush();
        ada.drain();
        let fetch = |before| Command::FetchHistory {
            room: room("general"),
            before,
            limit: 20,
        };
        f.hub.handle(1, fetch(31));
        match ada.drain().as_slice() {
            [ServerMsg::History { messages, more, .. }] => {
                assert_eq!(seqs(messages), (11..=30).collect::<Vec<_>>());
                assert!(more);
            }
            other => panic!("unexpected {other:?}"),
        }
        f.hub.handle(1, fetch(11));
        match ada.drain().as_slice() {
            [ServerMsg::History { messages, more, .. }] => {
                assert_eq!(seqs(messages), (1..=10).collect::<Vec<_>>());
                assert!(!more);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rooms_members_and_history_survive_a_restart() {
        let mut f = Fixture::new();
        let ada = f.member(1, "ada");
        f.hub.handle(1, Command::CreateRoom(room("ops")));
        f.hub.handle(1, join("ops", None));
        f.say(&ada, "ops", "kept", "c1");
        f.hub.disconnect(1);
        f.flush();
        let mut f = f.restart();
        let mut bob = f.member(2, "bob");
        f.hub.handle(2, join("ops", None));
        match bob.drain().as_slice() {
            [
                ServerMsg::Joined {
                    members,
                    online,
                    history,
                    ..
                },
            ] => {
                assert_eq!(members, &["ada", "bob"]);
                assert_eq!(online, &["bob"]);
                assert_eq!(history.len(), 1);
                assert_eq!((history[0].body.as_str(), history[0].seq), ("kept", 1));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Sequence numbers continue where they stopped.
        f.say(&bob, "ops", "next", "c2");
        assert!(
            bob.drain()
                .iter()
                .any(|m| matches!(m, ServerMsg::Message(m) if m.seq == 2))
        );
    }

    #[test]
    fn sends_are_refused_as_unavailable_once_storage_is_gone() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        f.hub.stop();
        f.hub.handle(1, send("general", "lost?", "c1"));
        assert!(matches!(
            ada.drain().as_slice(),
            [ServerMsg::Error { code: ErrorCode::Unavailable, client_id: Some(c), .. }] if c == "c1"
        ));
    }

    #[test]
    fn typing_goes_to_others_and_is_throttled() {
        let mut f = Fixture::new();
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        ada.drain();
        f.hub.handle(1, Command::Typing(room("general")));
        f.hub.handle(1, Command::Typing(room("general")));
        assert!(ada.drain().is_empty(), "no echo of one's own typing");
        assert_eq!(
            bob.drain(),
            [ServerMsg::Typing {
                room: "general".into(),
                name: "ada".into()
            }],
            "the second event inside the throttle window is dropped"
        );
        // Sending a message resets the throttle.
        f.say(&ada, "general", "done", "c1");
        f.hub.handle(1, Command::Typing(room("general")));
        assert_eq!(bob.drain().len(), 2);
    }

    #[test]
    fn typing_is_capped_per_second_over_all_rooms() {
        let settings = HubSettings {
            max_typing_per_sec: 2,
            ..HubSettings::default()
        };
        let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
        let mut ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        for r in ["one", "two"] {
            f.hub.handle(1, Command::CreateRoom(room(r)));
        }
        f.flush();
        for r in ["one", "two"] {
            f.hub.handle(1, join(r, None));
            f.hub.handle(2, join(r, None));
        }
        ada.drain();
        bob.drain();
        for r in ["general", "one", "two"] {
            f.hub.handle(1, Command::Typing(room(r)));
        }
        let forwarded = bob.drain();
        assert_eq!(
            forwarded.len(),
            2,
            "only two of three rooms' indicators: {forwarded:?}"
        );
        assert!(
            forwarded
                .iter()
                .all(|m| matches!(m, ServerMsg::Typing { .. }))
        );
    }

    #[test]
    fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
        let mut f = Fixture::new();
        let ada = f.member(1, "ada");
        let mut bob = f.member(2, "bob");
        let mut slow = f.connect(3, 4);
        f.hub.handle(3, hello("slow"));
        f.hub.handle(3, join("general", None));
        bob.drain();
        for i in 0..10 {
            f.hub
                .handle(1, send("general", &format!("m{i}"), &format!("c{i}")));
        }
        f.flush();
        assert_eq!(slow.close_code(), Some(close::SLOW_CONSUMER));
        assert_eq!(f.hub.session_count(), 2);
        let got = bob.drain();
        assert_eq!(bodies(&got).len(), 10);
        assert!(got.iter().any(|m| matches!(
            m,
            ServerMsg::Presence { name, event: PresenceEvent::Left, .. } if name == "slow"
        )));
        // The slow client got what fitted, and nothing after its queue filled.
        assert_eq!(slow.drain().len(), 4);
        drop(ada);
    }

    #[test]
    fn shutdown_closes_everyone_with_going_away() {
        let mut f = Fixture::new();
        let a = f.member(1, "ada");
        let b = f.connect(2, 8);
        f.hub.shutdown();
        assert_eq!(a.close_code(), Some(close::GOING_AWAY));
        assert_eq!(b.close_code(), Some(close::GOING_AWAY));
        let late = f.connect(3, 8);
        assert_eq!(late.close_code(), Some(close::GOING_AWAY));
    }
}

//! The hub: who is online, which rooms exist, who is in each, and where every message
//! goes.
//!
//! [`Hub`] is a plain state machine with no I/O of its own: it takes validated
//! [`Command`]s and pushes encoded frames into each session's [`Outbox`]. That keeps
//! every chat rule testable without sockets. [`HubHandle`] runs one `Hub` on its own
//! task and is what connections talk to; owning the state from a single task means no
//! locks on the hot path and a total order of events that every client observes alike.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use confab_shared::{
    Body, ChatMessage, DEFAULT_ROOM, DisplayName, ErrorCode, PROTOCOL_VERSION, PresenceEvent,
    RoomInfo, RoomName, ServerMsg, close, limits,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{outbox::Outbox, store::History};

/// Identifies one connection for its whole life; never reused.
pub type SessionId = u64;

/// A validated client request (see [`crate::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello { name: DisplayName },
    ListRooms,
    CreateRoom(RoomName),
    Join(RoomName),
    Leave(RoomName),
    Send { room: RoomName, body: Body },
    Typing(RoomName),
}

/// Tunables of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Most rooms the hub holds.
    pub max_rooms: usize,
    /// Messages a client receives when it joins a room.
    pub history_on_join: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            max_rooms: 1000,
            history_on_join: limits::HISTORY_ON_JOIN,
        }
    }
}

#[derive(Debug)]
struct Session {
    outbox: Outbox,
    /// `None` until a successful hello.
    name: Option<DisplayName>,
    rooms: BTreeSet<String>,
    /// When this session's last typing event per room was forwarded.
    last_typing: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<SessionId>,
}

/// The chat state machine. See the module documentation.
pub struct Hub {
    settings: HubSettings,
    sessions: HashMap<SessionId, Session>,
    /// Lower-cased display name → the session using it.
    names: HashMap<String, SessionId>,
    rooms: BTreeMap<String, Room>,
    history: Box<dyn History>,
    next_message_id: u64,
    /// Sessions whose queue overflowed during the current operation; removed at its end
    /// so that removal (which itself broadcasts) never happens mid-iteration.
    overflowed: Vec<SessionId>,
    shutting_down: bool,
}

impl Hub {
    pub fn new(settings: HubSettings, history: Box<dyn History>) -> Self {
        let mut rooms = BTreeMap::new();
        rooms.insert(DEFAULT_ROOM.to_owned(), Room::default());
        Self {
            settings,
            sessions: HashMap::new(),
            names: HashMap::new(),
            rooms,
            history,
            next_message_id: 1,
            overflowed: Vec::new(),
            shutting_down: false,
        }
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
            },
        );
    }

    /// The connection is gone: free its name and tell its rooms.
    pub fn disconnect(&mut self, id: SessionId) {
        self.remove_session(id);
        self.settle();
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
        if let Err(Refusal {
            code,
            message,
            room,
        }) = match (&session.name, cmd) {
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
            (Some(_), Command::Join(room)) => self.join(id, room),
            (Some(_), Command::Leave(room)) => self.leave(id, room),
            (Some(_), Command::Send { room, body }) => self.post(id, room, body),
            (Some(_), Command::Typing(room)) => self.typing(id, room),
        } {
            self.reply(
                id,
                &ServerMsg::Error {
                    code,
                    message,
                    room,
                },
            );
        }
        self.settle();
    }

    /// Answers a frame that could not be decoded or validated.
    pub fn reject(&mut self, id: SessionId, reply: &ServerMsg) {
        self.reply(id, reply);
        self.settle();
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

    fn join(&mut self, id: SessionId, room: RoomName) -> Result<(), Refusal> {
        let Some(members) = self.rooms.get_mut(room.as_str()).map(|r| &mut r.members) else {
            return Err(unknown_room(&room));
        };
        // Joining twice is harmless (a client re-joining after a glitch): it gets the
        // room's state again, and nobody sees a second arrival.
        if members.insert(id) {
            let name = self.name_of(id);
            let frame = encode(&ServerMsg::Presence {
                room: room.to_string(),
                name,
                event: PresenceEvent::Joined,
            });
            let others = self.rooms[room.as_str()]
                .members
                .iter()
                .copied()
                .filter(|m| *m != id);
            deliver(&self.sessions, &mut self.overflowed, others, &frame);
            if let Some(session) = self.sessions.get_mut(&id) {
                session.rooms.insert(room.to_string());
            }
        }
        let joined = ServerMsg::Joined {
            room: room.to_string(),
            members: self.member_names(room.as_str()),
            history: self
                .history
                .recent(room.as_str(), self.settings.history_on_join),
        };
        self.reply(id, &joined);
        Ok(())
    }

    fn leave(&mut self, id: SessionId, room: RoomName) -> Result<(), Refusal> {
        let Some(r) = self.rooms.get_mut(room.as_str()) else {
            return Err(unknown_room(&room));
        };
        if !r.members.remove(&id) {
            return Err(not_in_room(&room));
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

    fn post(&mut self, id: SessionId, room: RoomName, body: Body) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let msg = ChatMessage {
            id: self.next_message_id,
            room: room.to_string(),
            from: self.name_of(id),
            body: body.into_string(),
            ts: now_ms(),
        };
        self.next_message_id += 1;
        self.history.append(&msg);
        if let Some(session) = self.sessions.get_mut(&id) {
            // The message ends the sender's typing indicator on every client; let the
            // next keystroke announce typing again straight away.
            session.last_typing.remove(room.as_str());
        }
        let frame = encode(&ServerMsg::Message(msg));
        let members = self.rooms[room.as_str()].members.iter().copied();
        deliver(&self.sessions, &mut self.overflowed, members, &frame);
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
        match session.last_typing.get(room.as_str()) {
            Some(last) if now.duration_since(*last) < min_gap => return Ok(()),
            _ => {
                session.last_typing.insert(room.to_string(), now);
            }
        }
        let frame = encode(&ServerMsg::Typing {
            room: room.to_string(),
            name: self.name_of(id),
        });
        let others = self.rooms[room.as_str()]
            .members
            .iter()
            .copied()
            .filter(|m| *m != id);
        deliver(&self.sessions, &mut self.overflowed, others, &frame);
        Ok(())
    }

    fn check_member(&self, id: SessionId, room: &RoomName) -> Result<(), Refusal> {
        match self.rooms.get(room.as_str()) {
            None => Err(unknown_room(room)),
            Some(r) if !r.members.contains(&id) => Err(not_in_room(room)),
            Some(_) => Ok(()),
        }
    }

    /// Removes a session everywhere, telling each of its rooms.
    fn remove_session(&mut self, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        if let Some(name) = &session.name {
            self.names.remove(&name.key());
        }
        for room in &session.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&id);
            }
            if let Some(name) = &session.name {
                let frame = encode(&ServerMsg::Presence {
                    room: room.clone(),
                    name: name.to_string(),
                    event: PresenceEvent::Left,
                });
                let members = self.rooms[room.as_str()].members.iter().copied();
                deliver(&self.sessions, &mut self.overflowed, members, &frame);
            }
        }
    }

    fn announce_departure(&mut self, id: SessionId, room: &str) {
        let frame = encode(&ServerMsg::Presence {
            room: room.to_owned(),
            name: self.name_of(id),
            event: PresenceEvent::Left,
        });
        let members = self.rooms[room].members.iter().copied();
        deliver(&self.sessions, &mut self.overflowed, members, &frame);
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

    fn member_names(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = self.rooms[room]
            .members
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
                online: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
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
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
        }
    }

    fn about(room: &RoomName, code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message,
            room: Some(room.to_string()),
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What connections tell the hub task.
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
    Shutdown,
}

/// A cloneable way to reach the hub task.
#[derive(Debug, Clone)]
pub struct HubHandle {
    events: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
}

/// How many events may wait for the hub. Connections wait when it is full, which slows
/// every sender down evenly instead of letting memory grow.
const EVENT_QUEUE: usize = 4096;

impl HubHandle {
    /// Runs `hub` on a task of its own. The task ends once every handle is dropped.
    pub fn spawn(hub: Hub) -> (HubHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let task = tokio::spawn(run(hub, rx));
        (
            HubHandle {
                events: tx,
                ids: Arc::new(AtomicU64::new(1)),
            },
            task,
        )
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Delivers an event; `false` if the hub has stopped.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }
}

async fn run(mut hub: Hub, mut events: mpsc::Receiver<Event>) {
    // Taking events in batches costs one wake-up per batch rather than per event.
    let mut batch = Vec::with_capacity(256);
    while events.recv_many(&mut batch, 256).await > 0 {
        for event in batch.drain(..) {
            match event {
                Event::Connect { id, outbox } => hub.connect(id, outbox),
                Event::Command { id, cmd } => hub.handle(id, cmd),
                Event::Reject { id, reply } => hub.reject(id, &reply),
                Event::Disconnect { id } => hub.disconnect(id),
                Event::Shutdown => hub.shutdown(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{outbox::OutboxRx, store::MemoryHistory};

    struct Client {
        id: SessionId,
        rx: OutboxRx,
    }

    impl Client {
        fn drain(&mut self) -> Vec<ServerMsg> {
            let mut out = Vec::new();
            while let Ok(frame) = self.rx.frames.try_recv() {
                out.push(serde_json::from_str(frame.as_str()).expect("server JSON"));
            }
            out
        }

        fn close_code(&self) -> Option<u16> {
            self.rx.close.borrow().as_ref().map(|f| u16::from(f.code))
        }
    }

    fn hub() -> Hub {
        Hub::new(HubSettings::default(), Box::new(MemoryHistory::new(500)))
    }

    fn connect(hub: &mut Hub, id: SessionId, capacity: usize) -> Client {
        let (outbox, rx) = Outbox::new(capacity);
        hub.connect(id, outbox);
        Client { id, rx }
    }

    fn hello(name: &str) -> Command {
        Command::Hello {
            name: DisplayName::parse(name).expect("name"),
        }
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("room")
    }

    /// Connects, says hello and joins `general`; returns the client with its queue empty.
    fn member(hub: &mut Hub, id: SessionId, name: &str) -> Client {
        let mut c = connect(hub, id, 1024);
        hub.handle(
            id,
            Command::Hello {
                name: DisplayName::parse(name).expect("name"),
            },
        );
        hub.handle(id, Command::Join(room("general")));
        c.drain();
        c
    }

    fn send(hub: &mut Hub, c: &Client, room_name: &str, body: &str) {
        hub.handle(
            c.id,
            Command::Send {
                room: room(room_name),
                body: Body::parse(body).expect("body"),
            },
        );
    }

    fn error_code(msgs: &[ServerMsg]) -> Option<ErrorCode> {
        msgs.iter().find_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn hello_then_welcome_lists_general() {
        let mut hub = hub();
        let mut c = connect(&mut hub, 1, 8);
        hub.handle(1, hello("Ada"));
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
        let mut hub = hub();
        let mut c = connect(&mut hub, 1, 8);
        hub.handle(1, Command::Join(room("general")));
        assert_eq!(error_code(&c.drain()), Some(ErrorCode::HelloRequired));
    }

    #[test]
    fn names_are_unique_case_insensitively_and_freed_on_disconnect() {
        let mut hub = hub();
        let _ada = member(&mut hub, 1, "Ada");
        let mut other = connect(&mut hub, 2, 8);
        hub.handle(2, hello("ada"));
        assert_eq!(error_code(&other.drain()), Some(ErrorCode::NameTaken));
        hub.disconnect(1);
        hub.handle(2, hello("ada"));
        assert!(matches!(
            other.drain().as_slice(),
            [ServerMsg::Welcome { .. }]
        ));
        hub.handle(2, hello("bob"));
        assert_eq!(
            error_code(&other.drain()),
            Some(ErrorCode::AlreadyIdentified)
        );
    }

    #[test]
    fn messages_reach_every_member_with_id_and_sender() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        ada.drain();
        send(&mut hub, &ada, "general", "  hi bob ");
        for msgs in [ada.drain(), bob.drain()] {
            match msgs.as_slice() {
                [ServerMsg::Message(m)] => {
                    assert_eq!(
                        (m.id, m.from.as_str(), m.body.as_str()),
                        (1, "ada", "hi bob")
                    );
                    assert!(m.ts > 0);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn rooms_are_isolated() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        hub.handle(1, Command::CreateRoom(room("ops")));
        hub.handle(1, Command::Join(room("ops")));
        ada.drain();
        bob.drain();
        send(&mut hub, &ada, "ops", "secret plans");
        assert!(matches!(ada.drain().as_slice(), [ServerMsg::Message(_)]));
        assert!(bob.drain().is_empty());
        send(&mut hub, &bob, "ops", "let me in");
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::NotInRoom));
        send(&mut hub, &bob, "nowhere", "hello?");
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::UnknownRoom));
    }

    #[test]
    fn creating_a_room_tells_everyone_and_refuses_duplicates() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        ada.drain();
        hub.handle(1, Command::CreateRoom(room("ops")));
        for c in [&mut ada, &mut bob] {
            match c.drain().as_slice() {
                [ServerMsg::Rooms { rooms }] => {
                    let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
                    assert_eq!(names, ["general", "ops"]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        hub.handle(2, Command::CreateRoom(room("ops")));
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::RoomExists));
    }

    #[test]
    fn room_cap_is_enforced() {
        let mut hub = Hub::new(
            HubSettings {
                max_rooms: 2,
                ..HubSettings::default()
            },
            Box::new(MemoryHistory::new(10)),
        );
        let mut ada = member(&mut hub, 1, "ada");
        hub.handle(1, Command::CreateRoom(room("one")));
        hub.handle(1, Command::CreateRoom(room("two")));
        assert_eq!(error_code(&ada.drain()), Some(ErrorCode::TooManyRooms));
    }

    #[test]
    fn presence_on_join_leave_and_disconnect() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = connect(&mut hub, 2, 64);
        hub.handle(2, hello("bob"));
        hub.handle(2, Command::Join(room("general")));
        let joined = bob.drain();
        assert!(matches!(
            joined.last(),
            Some(ServerMsg::Joined { members, .. }) if members == &["ada", "bob"]
        ));
        assert_eq!(
            ada.drain(),
            [ServerMsg::Presence {
                room: "general".into(),
                name: "bob".into(),
                event: PresenceEvent::Joined
            }]
        );
        hub.handle(2, Command::Leave(room("general")));
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
        hub.handle(2, Command::Join(room("general")));
        ada.drain();
        hub.disconnect(2);
        assert!(matches!(
            ada.drain().as_slice(),
            [ServerMsg::Presence { name, event: PresenceEvent::Left, .. }] if name == "bob"
        ));
    }

    #[test]
    fn joining_twice_resends_state_without_a_second_arrival() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        ada.drain();
        hub.handle(2, Command::Join(room("general")));
        assert!(matches!(bob.drain().as_slice(), [ServerMsg::Joined { .. }]));
        assert!(ada.drain().is_empty());
    }

    #[test]
    fn join_delivers_recent_history_oldest_first() {
        let mut hub = hub();
        let ada = member(&mut hub, 1, "ada");
        for i in 0..150 {
            send(&mut hub, &ada, "general", &format!("m{i}"));
        }
        let mut bob = member(&mut hub, 2, "bob");
        hub.handle(2, Command::Join(room("general")));
        match bob.drain().as_slice() {
            [ServerMsg::Joined { history, .. }] => {
                assert_eq!(history.len(), limits::HISTORY_ON_JOIN);
                assert_eq!(history[0].body, "m50");
                assert_eq!(history[99].body, "m149");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn typing_goes_to_others_and_is_throttled() {
        let mut hub = hub();
        let mut ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        ada.drain();
        hub.handle(1, Command::Typing(room("general")));
        hub.handle(1, Command::Typing(room("general")));
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
        send(&mut hub, &ada, "general", "done");
        hub.handle(1, Command::Typing(room("general")));
        assert_eq!(bob.drain().len(), 2);
    }

    #[test]
    fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
        let mut hub = hub();
        let ada = member(&mut hub, 1, "ada");
        let mut bob = member(&mut hub, 2, "bob");
        let mut slow = connect(&mut hub, 3, 4);
        hub.handle(3, hello("slow"));
        hub.handle(3, Command::Join(room("general")));
        bob.drain();
        for i in 0..10 {
            send(&mut hub, &ada, "general", &format!("m{i}"));
        }
        assert_eq!(slow.close_code(), Some(close::SLOW_CONSUMER));
        assert_eq!(hub.session_count(), 2);
        let got = bob.drain();
        let bodies: Vec<_> = got
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Message(m) => Some(m.body.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(bodies.len(), 10);
        assert!(got.iter().any(|m| matches!(
            m,
            ServerMsg::Presence { name, event: PresenceEvent::Left, .. } if name == "slow"
        )));
        // The slow client got what fitted, and nothing after its queue filled.
        assert_eq!(slow.drain().len(), 4);
    }

    #[test]
    fn shutdown_closes_everyone_with_going_away() {
        let mut hub = hub();
        let a = member(&mut hub, 1, "ada");
        let b = connect(&mut hub, 2, 8);
        hub.shutdown();
        assert_eq!(a.close_code(), Some(close::GOING_AWAY));
        assert_eq!(b.close_code(), Some(close::GOING_AWAY));
        let late = connect(&mut hub, 3, 8);
        assert_eq!(late.close_code(), Some(close::GOING_AWAY));
    }
}

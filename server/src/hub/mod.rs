//! The hub: who is online, which rooms exist, who may see each, and where every
//! message goes.
//!
//! [`Hub`] is a state machine without network I/O: it takes validated [`Command`]s,
//! reads history from the [`Store`] when someone joins or scrolls back, hands every
//! write to the store's writer thread, and pushes encoded frames into each connection's
//! [`SendQueue`]. A message is acknowledged and delivered only when the writer reports it
//! committed ([`Hub::committed`]), so nobody ever sees a message that could still be
//! lost. [`HubSender`] runs one `Hub` on a thread of its own: a single owner means no
//! locks on the hot path and one order of events that every client observes alike.
//!
//! Where each rule lives (each file adds methods to [`Hub`]):
//! - `mod.rs`: the state, building it from the store, and [`Hub::apply`], the one way
//!   in for client requests, which sends each [`Command`] to the file that owns it.
//! - `connections.rs`: connecting, hello, disconnecting, signing out, shutting down; who
//!   each person is and how they are shown.
//! - `membership.rs`: joining (and resuming without gaps or duplicates), leaving,
//!   presence, handing a private room on when its owner leaves, ending it when its last
//!   member does.
//! - `messages.rs`: sending, acknowledging and delivering after commit, the store
//!   writer's front and back doors, scrolling back, typing.
//! - `admin.rs`: administrators' deletions of any room or message, and closing a
//!   disabled account's sockets.
//! - `access.rs`: the one rule for who may know of a room, and its refusals.
//! - `delivery.rs`: encoding once, pushing into send queues, replies, disconnecting those
//!   whose queue overflowed.
//! - `rooms.rs`: creating, inviting, removing, renaming, deleting rooms; direct
//!   conversations; each person's room list; the per-person limit on room changes.
//! - `room_changes.rs`: telling sessions which rooms changed, coalesced, to those who may
//!   see them ([`Hub::tick`]).
//! - `pending.rs`: access changes (removing, deleting, inviting, renaming) held until
//!   their write is committed.
//! - `reads.rs`: history reads, off the hub's thread, and the live messages a joining
//!   connection is kept while its read is in flight.
//! - `search.rs`: searching the rooms a person may see, on the same reader threads.
//! - `thread.rs`: the thread that owns the hub, and the [`Event`]s it receives.
//! - `tests/`: the hub's tests, one file per file above, over a real store.

mod access;
mod admin;
mod changes;
mod cluster;
mod connections;
mod delivery;
mod membership;
mod messages;
mod pending;
mod reads;
mod room_changes;
mod rooms;
mod search;
mod thread;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use confab_shared::{
    Body, ClientId, DisplayName, Emoji, ErrorCode, GUEST_PREFIX, Person, RoomKind, RoomName,
    ServerMsg, Username, limits,
};

pub use cluster::{ClusterSettings, Look, LookDone, Looked};
pub use reads::{Done, Job, Read, ReadDone, ReadPool, Reader};
pub use thread::{EVENT_QUEUE, Event, HubSender, TrySend};

use crate::{
    ratelimit::{Bucket, RateLimit},
    send_queue::SendQueue,
    store::{Store, StoreError, Write, writer::WriterSender},
};

/// Identifies one connection for its whole life; never reused.
pub type ConnId = u64;

/// SHA-256 of a sign-in session's token: names the sign-in without being it.
pub type SessionKey = [u8; 32];

/// Which of a person's sign-ins a sign-out ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// One sign-in (signing out on this device, or a session that expired).
    One(SessionKey),
    /// Every sign-in (signing out everywhere).
    All,
    /// Every sign-in but this one: the device that changed the password, or asked to
    /// sign out its other sessions, stays signed in.
    AllBut(SessionKey),
}

impl Sessions {
    /// Whether the sign-in with `key` is one of these.
    pub fn covers(self, key: &SessionKey) -> bool {
        match self {
            Sessions::One(k) => k == *key,
            Sessions::All => true,
            Sessions::AllBut(k) => k != *key,
        }
    }
}

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
        /// When the session was checked, before the upgrade: a sign-out after it that
        /// the hub hears of before the socket arrives still closes the socket.
        checked_at: Instant,
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
        /// `None` only for a message that shares files and says nothing.
        body: Option<Body>,
        client_id: ClientId,
        reply_to: Option<u64>,
        /// Upload ids, well-formed and distinct, at most
        /// [`limits::MAX_FILES_PER_MESSAGE`]; whether they may be shared is decided by
        /// the store.
        files: Vec<String>,
    },
    /// An edit, deletion or reaction of message `seq`.
    Change {
        room: RoomName,
        seq: u64,
        client_id: ClientId,
        change: MessageChange,
    },
    MarkRead {
        room: RoomName,
        seq: u64,
    },
    Mute {
        room: RoomName,
        muted: bool,
    },
    FetchHistory {
        room: RoomName,
        before: u64,
        limit: usize,
    },
    FetchAround {
        room: RoomName,
        seq: u64,
    },
    Search {
        /// As the person typed it, repeated in the answer.
        text: String,
        query: crate::search::query::Query,
        before: Option<u64>,
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

/// What a [`Command::Change`] does to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    Edit(Body),
    Delete,
    React(Emoji),
    Unreact(Emoji),
}

/// Who is waiting for a write: the sender of a message, to be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub conn: ConnId,
    pub client_id: String,
}

/// The hub's end of the store writer.
pub type Writer = WriterSender<Option<Waiter>>;

/// Tunables of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Most public and private rooms the hub holds (direct conversations are bounded
    /// by the number of accounts instead).
    pub max_rooms: usize,
    /// Messages a client receives when it joins a room afresh.
    pub history_on_join: usize,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Typing events one connection may have forwarded per second, over all its rooms.
    /// The per-room throttle alone would let a client in 100 rooms fan out 100
    /// indicators every throttle period.
    pub max_typing_per_sec: u32,
    /// Room-list changes made by others reach each session at most once per this
    /// interval, collected in one `rooms_changed`.
    pub room_list_interval: Duration,
    /// Room changes (creating, renaming, deleting, inviting, removing) one person may
    /// make: a burst, then a sustained rate.
    pub room_changes: RateLimit,
    /// Live messages kept for a connection while its join's read is in flight; past
    /// that it is closed as a slow consumer (its queue would overflow on their way out).
    pub read_buffer: usize,
    /// `fetch_history`, `fetch_around` and `search` requests one connection may have
    /// waiting for a reader at once.
    pub history_reads_per_connection: usize,
    /// Edits one person may make: a burst, then a sustained rate.
    pub edits: RateLimit,
    /// How long one search may read before it answers with what it found
    /// (`--search-budget-ms`): long enough for any query over a million messages that the
    /// benchmark makes (docs/PERFORMANCE.md), short enough that a reader thread, which
    /// joins wait for too, is not held for long.
    pub search_budget: Duration,
    /// Whether this server is the only one using its store. A node of a cluster is
    /// not: a private room without members may be one another node is creating right
    /// now (its members' writes not yet committed), so it is not cleaned up at start.
    pub sole_server: bool,
    /// What the hub counts for `/metrics`; counts nothing by default (unit tests).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Default of [`HubSettings::edits`]: 10 at once, then 30 a minute.
pub const EDITS: RateLimit = RateLimit {
    per_sec: 0.5,
    burst: 10.0,
};

/// Default of [`HubSettings::room_changes`]: 10 at once, then 30 a minute.
pub const ROOM_CHANGES: RateLimit = RateLimit {
    per_sec: 0.5,
    burst: 10.0,
};

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            max_rooms: 1000,
            history_on_join: limits::HISTORY_ON_JOIN,
            max_rooms_per_connection: 100,
            max_typing_per_sec: 4,
            room_list_interval: Duration::from_secs(1),
            room_changes: ROOM_CHANGES,
            read_buffer: 1024,
            history_reads_per_connection: 4,
            edits: EDITS,
            search_budget: Duration::from_secs(1),
            sole_server: true,
            metrics: std::sync::Arc::default(),
        }
    }
}

#[derive(Debug)]
struct Conn {
    queue: SendQueue,
    identity: Identity,
    /// `None` until a successful hello.
    person: Option<Person>,
    /// Rooms whose live traffic this connection receives. A list rather than a set: a
    /// connection is in a few rooms, and a B-tree's first node alone is ~300 bytes, per
    /// connection.
    rooms: Vec<String>,
    /// When this connection's last typing event per room was forwarded.
    last_typing: HashMap<String, Instant>,
    /// Start of the current one-second typing window and the events forwarded in it.
    typing_window: (Instant, u32),
    /// Rooms this connection is joining, whose reads are in flight (see `reads.rs`).
    reading: Vec<String>,
    /// `fetch_history`, `fetch_around` and `search` reads of this connection in flight:
    /// bounded, so one client cannot fill the read queue that every join waits in.
    history_reads: usize,
}

impl Conn {
    /// The connection's username, once it said hello.
    fn username(&self) -> Option<&str> {
        self.person.as_ref().map(|p| p.user.as_str())
    }

    fn is_admin(&self) -> bool {
        matches!(self.identity, Identity::User { admin: true, .. })
    }

    fn is_guest(&self) -> bool {
        matches!(self.identity, Identity::Guest)
    }

    /// Rooms the connection is in or joining: what the per-connection room limit counts.
    fn room_count(&self) -> usize {
        self.rooms.len()
            + self
                .reading
                .iter()
                .filter(|r| !self.rooms.contains(r))
                .count()
    }
}

#[derive(Debug)]
struct Room {
    kind: RoomKind,
    title: String,
    /// Username of the creator; `None` for rooms from before accounts and rooms guests
    /// created (a guest owns nothing).
    owner: Option<String>,
    /// Everyone who belongs to the room, by username: for public rooms those who joined
    /// and have not left, for the others those invited (and the creator).
    members: BTreeSet<String>,
    /// Sessions receiving the room's live traffic.
    online: BTreeSet<ConnId>,
    /// Usernames with at least one connection in `online`, and how many: a person with
    /// two tabs comes online once and goes offline once.
    present: BTreeMap<String, u32>,
    /// Highest sequence number delivered live. Replays stop here, live traffic starts
    /// after it: that is what makes resuming gap- and duplicate-free.
    last_seq: u64,
    /// Connections joining the room whose reads are in flight, and the live messages
    /// kept for them meanwhile (see `reads.rs`).
    reading: BTreeMap<ConnId, reads::Pending>,
    /// Its order and news in a cluster (see `cluster.rs`).
    sync: cluster::RoomSync,
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
            reading: BTreeMap::new(),
            sync: cluster::RoomSync::default(),
        }
    }

    /// How many people belong to the room, as people are told: its members, and those
    /// online in it on other nodes that this node has not read as members yet. A node
    /// stores a public room's new member; the others hear of the arrival at once but read
    /// the membership only at their next look, so counting `members` alone would show
    /// people on this node fewer members than people on that one.
    fn member_count(&self) -> usize {
        let unread = self
            .sync
            .remote_users()
            .filter(|user| !self.members.contains(*user))
            .count();
        self.members.len() + unread
    }
}

/// The chat state machine. See the module documentation.
pub struct Hub {
    settings: HubSettings,
    conns: HashMap<ConnId, Conn>,
    /// Guests online, by username (guest names are unique among those online).
    guests: HashMap<String, ConnId>,
    /// Every account's display name, by username.
    directory: HashMap<String, String>,
    rooms: BTreeMap<String, Room>,
    /// The hub's read connection, for what it reads on its own thread (rooms and
    /// people at start, an account it has not heard of); writes go through `writer`,
    /// history reads through `reader`.
    store: Box<dyn Store>,
    reader: Reader,
    /// Numbers the reads, so a superseded one's answer is told apart.
    next_ticket: reads::Ticket,
    /// Answers of [`Reader::Inline`] reads, handled once the request that asked is done.
    inline_done: Vec<Done>,
    /// `None` once the hub stops, which lets the writer flush and finish.
    writer: Option<Writer>,
    /// Connections whose queue overflowed during the current operation; removed at its
    /// end so that removal (which itself broadcasts) never happens mid-iteration.
    overflowed: Vec<ConnId>,
    /// Recent sign-outs (username, which sessions, when), for a socket
    /// whose session was checked before the sign-out but which reaches the hub after it.
    signed_out: Vec<(String, Sessions, Instant)>,
    /// Room changes not yet sent to the sessions concerned (`room_changes.rs`).
    room_changes: room_changes::RoomChanges,
    /// Each person's allowance of room changes, by username; forgotten once full again.
    room_change_buckets: HashMap<String, Bucket>,
    /// Access changes waiting for their commit (`pending.rs`).
    pending_access: pending::PendingAccess,
    /// Rooms created and not yet stored, oldest first, with who asked: answered once
    /// stored (`rooms.rs`).
    creations: std::collections::VecDeque<(ConnId, String)>,
    /// Each person's allowance of edits, by username; forgotten once full again.
    edit_buckets: HashMap<String, Bucket>,
    /// The connections of each person who said hello, by username: for what concerns a
    /// person on every device (their read markers, their muted rooms).
    sessions: HashMap<String, Vec<ConnId>>,
    /// Rooms each person muted, by username.
    muted: HashMap<String, BTreeSet<String>>,
    /// The store's identity, told in every welcome.
    epoch: String,
    shutting_down: bool,
    /// Set on a node of a cluster (see `cluster.rs`).
    cluster: Option<cluster::Cluster>,
}

impl Hub {
    /// A hub over the rooms, members and accounts in `store`, reading history through
    /// `reader`.
    pub fn new(
        settings: HubSettings,
        mut store: Box<dyn Store>,
        writer: Writer,
        reader: Reader,
    ) -> Result<Self, StoreError> {
        let mut rooms: BTreeMap<String, Room> = store
            .rooms()?
            .into_iter()
            .map(|r| {
                // Rooms guests created before guests could own nothing were stored with
                // the guest as owner; a later guest of that name must not inherit them.
                let owner = r.owner.filter(|o| !o.starts_with(GUEST_PREFIX));
                let mut room = Room::new(r.kind, r.title, owner);
                // Guests were stored as members by early builds of protocol 3.
                room.members = r
                    .members
                    .into_iter()
                    .filter(|m| !m.starts_with(GUEST_PREFIX))
                    .collect();
                room.last_seq = r.last_seq;
                room.sync.known_as(r.head);
                (r.name, room)
            })
            .collect();
        // A private room without members is one nobody can see, join, manage or delete
        // (its last member left it before leaving took such a room along): it goes now
        // rather than count against the room cap for good.
        let orphans: Vec<String> = rooms
            .iter()
            .filter(|_| settings.sole_server)
            .filter(|(_, r)| r.kind == RoomKind::Private && r.members.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        for room in orphans {
            rooms.remove(&room);
            if writer
                .try_submit(Write::DeleteRoom { room: room.clone() }, None)
                .is_err()
            {
                tracing::warn!(
                    room,
                    "empty private room not deleted: the store writer is busy"
                );
            }
        }
        let mut muted: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (user, room) in store.mutes()? {
            muted.entry(user).or_default().insert(room);
        }
        let epoch = store.epoch()?;
        let directory = store
            .people()?
            .into_iter()
            .map(|p| (p.username, p.display_name))
            .collect();
        Ok(Self {
            settings,
            conns: HashMap::new(),
            guests: HashMap::new(),
            directory,
            rooms,
            store,
            reader,
            next_ticket: 1,
            inline_done: Vec::new(),
            writer: Some(writer),
            overflowed: Vec::new(),
            signed_out: Vec::new(),
            room_changes: room_changes::RoomChanges::default(),
            room_change_buckets: HashMap::new(),
            pending_access: pending::PendingAccess::default(),
            creations: std::collections::VecDeque::new(),
            edit_buckets: HashMap::new(),
            sessions: HashMap::new(),
            muted,
            epoch,
            shutting_down: false,
            cluster: None,
        })
    }

    /// Applies one client request.
    pub fn apply(&mut self, id: ConnId, cmd: Command) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let limit = limit_of(&cmd);
        let result = match (conn.person.is_some(), cmd) {
            (false, Command::Hello { name }) => self.hello(id, name),
            (true, Command::Hello { .. }) => Err(Refusal::new(
                ErrorCode::AlreadyIdentified,
                "this connection already said hello",
            )),
            (false, _) => Err(Refusal::new(ErrorCode::HelloRequired, "say hello first")),
            (true, cmd) => self.route(id, cmd),
        };
        if let Err(refusal) = result {
            if refusal.code == ErrorCode::RateLimited
                && let Some(limit) = limit
            {
                self.settings.metrics.rate_limited(limit);
            }
            self.reply(id, &refusal.into_msg());
        }
        self.finish_inline_reads();
        self.settle();
    }

    /// Sends an identified connection's request to the file that owns it.
    fn route(&mut self, id: ConnId, cmd: Command) -> Result<(), Refusal> {
        match cmd {
            Command::Hello { .. } => Ok(()), // answered in `apply`
            Command::ListRooms => {
                let rooms = self.room_list_for(id);
                self.reply(id, &ServerMsg::Rooms { rooms });
                Ok(())
            }
            Command::CreateRoom { room, private } => self.create_room(id, room, private),
            Command::Join { room, after } => self.join(id, room, after),
            Command::Leave(room) => self.leave(id, room),
            Command::Send {
                room,
                body,
                client_id,
                reply_to,
                files,
            } => self.post(id, room, body, client_id, reply_to, files),
            Command::Change {
                room,
                seq,
                client_id,
                change,
            } => self.change(id, room, seq, client_id, change),
            Command::MarkRead { room, seq } => self.mark_read(id, room, seq),
            Command::Mute { room, muted } => self.mute(id, room, muted),
            Command::FetchHistory {
                room,
                before,
                limit,
            } => self.fetch_history(id, room, before, limit),
            Command::FetchAround { room, seq } => self.fetch_around(id, room, seq),
            Command::Search {
                text,
                query,
                before,
            } => self.search(id, text, query, before),
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
    pub fn reject(&mut self, id: ConnId, reply: &ServerMsg) {
        self.reply(id, reply);
        self.settle();
    }
}

/// The rate limit a refusal of `cmd` as `rate_limited` comes from, for `/metrics`.
fn limit_of(cmd: &Command) -> Option<crate::metrics::Limit> {
    use crate::metrics::Limit;
    match cmd {
        Command::Change { .. } => Some(Limit::Edits),
        Command::CreateRoom { .. }
        | Command::Invite { .. }
        | Command::Remove { .. }
        | Command::RenameRoom { .. }
        | Command::DeleteRoom(_) => Some(Limit::RoomChanges),
        Command::FetchHistory { .. } | Command::FetchAround { .. } | Command::Search { .. } => {
            Some(Limit::HistoryReads)
        }
        _ => None,
    }
}

/// Why the hub refused a request; becomes the requester's error frame.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
    room: Option<String>,
    client_id: Option<String>,
    retry_after_ms: Option<u64>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
            client_id: None,
            retry_after_ms: None,
        }
    }

    fn about(room: &RoomName, code: ErrorCode, message: String) -> Self {
        Self {
            room: Some(room.to_string()),
            ..Self::new(code, message)
        }
    }

    /// Names the refused send or change, so the client can mark it as failed.
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
            retry_after_ms: self.retry_after_ms,
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
